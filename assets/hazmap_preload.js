/*
 * The wall's payloads, fetched from the page's head (issue 16: the first full render).
 *
 * Dash's bundles, its layout and its first callbacks take a second or more before the canvas
 * layers' scripts (assets/hazmap_static.js, hazmap_vector.js, hazmap_live.js) run and would ask
 * for their payloads. app/webapp.py inlines this file at the top of the page's <head> with
 * `window.hazmapPreloadConfig` (the URLs of the layers shown at start, all carrying the world's
 * version), so those requests start with the page instead, and parks each response's promise
 * here. A layer script takes its parked response once (`hazmapPreload.take(url)`) and fetches
 * itself when there is none: a later fetch of the same URL (a layer switched off and on, a
 * reload after a scope change) and any other URL (a new world version) go to the network.
 *
 * The vector layers' first band depends on the map's zoom, not known before Dash builds the map:
 * it is the zoom Leaflet's fitBounds will choose for the world's bounds on this window (the map
 * is the window below the header); a wrong guess costs one unused request, the layer fetching
 * the band it needs.
 *
 * Not an asset Dash serves itself (app/webapp.py `assets_ignore`): it must run before Dash's
 * scripts, which come at the end of the body.
 */
(function () {
    "use strict";

    var config = window.hazmapPreloadConfig;
    var parked = {}, taken = [];

    function park(url, init) {
        if (parked[url]) { return; }
        parked[url] = fetch(url, init);
        parked[url].catch(function () {}); // a failure is the taker's to report, when it takes it
    }

    // The zoom Leaflet's fitBounds gives `bounds` ([[south, west], [north, east]]) on a map of
    // `width` x `height` px (Web Mercator; L.Map.getBoundsZoom with zoomSnap).
    function fitZoom(fit, width, height) {
        function x(lon) { return (lon + 180) / 360 * 256; }
        function y(lat) {
            var s = Math.sin(lat * Math.PI / 180);
            return (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * 256;
        }
        var b = fit.bounds, pad = 2 * fit.padding;
        var scale = Math.min((width - pad) / (x(b[1][1]) - x(b[0][1])), (height - pad) / (y(b[0][0]) - y(b[1][0])));
        var zoom = Math.log(scale) / Math.LN2, snap = fit.zoomSnap;
        zoom = Math.floor(Math.round(zoom / (snap / 100)) * (snap / 100) / snap) * snap;
        return Math.max(fit.minZoom, Math.min(fit.maxZoom, zoom));
    }

    // Started once Dash's scripts are in (DOMContentLoaded: its renderer has just asked for the
    // layout), not from the head: started with the page, they held Dash's own start back (the map
    // came ~0.3 s later at load 3) more than they gained the layers.
    function start() {
        (config.preload || []).forEach(function (link) {
            var el = document.createElement("link");
            el.rel = "preload";
            el.as = link.as;
            if (link.as === "fetch") { el.crossOrigin = "anonymous"; }
            el.href = link.href;
            document.head.appendChild(el);
        });
        (config.urls || []).forEach(function (url) { park(url); });
        (config.noStore || []).forEach(function (url) { park(url, {cache: "no-store"}); });
        var vector = config.vector;
        if (vector && vector.bases.length) {
            var zoom = Math.floor(fitZoom(vector.fit, window.innerWidth,
                window.innerHeight * (1 - vector.fit.headerShare)));
            var index = 0;
            vector.bands.forEach(function (first, i) { if (zoom >= first) { index = i; } });
            vector.bases.forEach(function (base) { park(base + "/" + index + ".bin"); });
        }
    }
    if (config && window.fetch) {
        if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
    }

    window.hazmapPreload = Object.freeze({
        // The parked response promise of `url` (once), or null: fetch it yourself.
        take: function (url) {
            var got = parked[url];
            if (!got) { return null; }
            delete parked[url];
            taken.push(url);
            return got;
        },
        parked: function () { return Object.keys(parked); }, // not taken (yet)
        taken: function () { return taken.slice(); }
    });
})();
