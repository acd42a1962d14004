/*
 * An incident's evidence on the map (data/incident_view.py gathers it, layers/panels/incident.py
 * puts it in a hidden .hz-evidence element of the panel as data-evidence): the track and the
 * approved route's corridor for a route deviation, the site and the ring of its radius for a stop
 * near a sensitive site, the zone crossed and the entry point for a restricted zone, the monitoring
 * point for its alarm, the truck's positions for the other rules; for the impact view, the sites inside
 * its protective-action circle (the circles are hazmap_panel.js's). Drawn on one canvas renderer in
 * its own pane (a few shapes, no DOM markers), cleared when the panel closes or shows anything else.
 *
 * The impact view's "text the driver" button (layers/panels/impact.py) posts to the REST API here
 * too, as the incident panel's buttons do (session cookie + CSRF header): its answer state then
 * refreshes in the panel.
 *
 * window.hazmapEvidence.drawn(): what is drawn now, for the browser tests.
 */
(function () {
    "use strict";
    var hazmap = (window.hazmap = window.hazmap || {});
    var PANE = "hz-evidence-pane";
    var STYLE = {
        track: {color: "#ffe066", weight: 3, opacity: 0.95},
        route: {color: "#4fc3f7", weight: 2, opacity: 0.9, dashArray: "6 4"},
        corridor: {color: "#4fc3f7", weight: 1, opacity: 0.8, fillColor: "#4fc3f7", fillOpacity: 0.12},
        site: {color: "#ff4d6d", weight: 2, fillColor: "#ff4d6d", fillOpacity: 0.35},
        reach: {color: "#ff8c1a", weight: 2, dashArray: "5 4", fill: false},
        zone: {color: "#c77dff", weight: 2, fillColor: "#c77dff", fillOpacity: 0.22},
        position: {radius: 4, color: "#ffe066", weight: 1, fillColor: "#ffe066", fillOpacity: 0.9},
        marker: {radius: 8, color: "#ffffff", weight: 2, fillColor: "#e02020", fillOpacity: 1}
    };
    var group = null, renderer = null;
    var drawn = null;

    function whenMap(callback) {
        if (hazmap.leafletMap) { callback(hazmap.leafletMap); return; }
        setTimeout(function () { whenMap(callback); }, 50);
    }

    function latLngs(coords) { return coords.map(function (p) { return [p[1], p[0]]; }); }
    function polygons(rings) { return rings.map(function (polygon) { return polygon.map(latLngs); }); }

    function ensure(map) {
        if (group) { return; }
        if (!map.getPane(PANE)) { map.createPane(PANE).style.zIndex = 450; } // over the overlays, under markers
        renderer = L.canvas({pane: PANE, padding: 0.2});
        group = L.layerGroup().addTo(map);
    }

    function add(layer) { group.addLayer(layer); return layer; }
    function shape(kind) { return Object.assign({renderer: renderer, pane: PANE, interactive: false}, STYLE[kind]); }

    function clear() {
        if (group) { group.clearLayers(); }
        drawn = null;
    }

    function draw(map, e) {
        ensure(map);
        clear();
        if (!e) { return; }
        var bounds = L.latLngBounds([]);
        drawn = {id: e.id, kind: e.kind, track: [], route: 0, corridor: 0, site: null, zone: null, entry: null,
                 positions: [], point: null, at: e.at || null};
        if (e.corridor && e.corridor.length) {
            var corridor = add(L.polygon(polygons(e.corridor), shape("corridor")));
            drawn.corridor = e.corridor.length; drawn.corridor_m = e.corridor_m;
            bounds.extend(corridor.getBounds());
        }
        if (e.route && e.route.length > 1) {
            add(L.polyline(latLngs(e.route), shape("route")));
            drawn.route = e.route.length;
        }
        if (e.zone && e.zone.outline.length) {
            var zone = add(L.polygon(polygons(e.zone.outline), shape("zone")));
            drawn.zone = {id: e.zone.id, polygons: e.zone.outline.length};
            bounds.extend(zone.getBounds());
        }
        if (e.site) {
            if (e.site.reach && e.site.reach.length) {
                var reach = add(L.polygon(polygons(e.site.reach), shape("reach")));
                bounds.extend(reach.getBounds());
            }
            if (e.site.outline && e.site.outline.length) { add(L.polygon(polygons(e.site.outline), shape("site"))); }
            else if (e.site.centre) {  // a point site: its place
                add(L.circleMarker([e.site.centre[1], e.site.centre[0]], Object.assign(shape("site"), {radius: 7})));
            }
            drawn.site = {id: e.site.id, radius_m: e.site.radius_m, reach: (e.site.reach || []).length,
                          centre: e.site.centre};
        }
        if (e.track && e.track.length) {
            var line = add(L.polyline(e.track.map(function (p) { return [p[2], p[1]]; }), shape("track")));
            drawn.track = e.track.map(function (p) { return [p[1], p[2]]; });
            bounds.extend(line.getBounds());
        }
        (e.positions || []).forEach(function (p) {
            add(L.circleMarker([p[1], p[0]], shape("position")));
            drawn.positions.push([p[0], p[1]]);
            bounds.extend([p[1], p[0]]);
        });
        var where = e.point || e.entry || e.at;
        if (e.kind === "impact") { where = e.at; }
        if (e.point) { drawn.point = e.point; }
        if (e.entry) { drawn.entry = e.entry; }
        if (where) {
            add(L.circleMarker([where[1], where[0]], shape("marker")));
            drawn.marker = where;
            bounds.extend([where[1], where[0]]);
        }
        if (e.reach_m && where) {  // the impact view: its protective-action circle (drawn by hazmap_panel.js)
            bounds.extend(L.latLng(where[1], where[0]).toBounds(2 * e.reach_m));
            (e.sites || []).forEach(function (p) { add(L.circleMarker([p[1], p[0]], shape("position"))); });
            drawn.sites = (e.sites || []).length; drawn.reach_m = e.reach_m;
        }
        // The officer opened the incident to see this: fit it beside the panel (a 200 m corridor or a
        // site's radius is invisible at the city's zoom), no closer than a street.
        if (bounds.isValid()) {
            var panel = document.getElementById("hz-panel"), legend = document.getElementById("hz-legend");
            map.fitBounds(bounds, {paddingTopLeft: [(legend ? legend.offsetWidth : 0) + 40, 90], maxZoom: 16,
                                   paddingBottomRight: [(panel ? panel.offsetWidth : 0) + 40, 40], animate: false});
        }
    }

    var shown = null;

    function onPanelChange() {
        var node = document.querySelector("#hz-panel-body .hz-evidence");
        var text = node ? node.getAttribute("data-evidence") : null;
        if (text === shown) { return; }
        shown = text;
        var evidence = text ? JSON.parse(text) : null;
        whenMap(function (map) { draw(map, evidence); });
    }

    function watchPanel() {
        var body = document.getElementById("hz-panel-body");
        if (!body) { setTimeout(watchPanel, 100); return; }
        new MutationObserver(onPanelChange).observe(body, {childList: true, subtree: true});
        onPanelChange();
    }
    watchPanel();

    function cookie(name) {
        var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
        return match ? decodeURIComponent(match[1]) : "";
    }

    // The impact view's "text the driver": the panel stays open; its texts' table refreshes itself.
    document.addEventListener("click", function (event) {
        var button = event.target.closest && event.target.closest(".hz-impact-text");
        if (!button) { return; }
        event.stopPropagation();
        var id = button.getAttribute("data-incident");
        var message = document.getElementById("hz-impact-message");
        var result = document.getElementById("hz-impact-result");
        button.disabled = true;
        fetch(new URL("api/incidents/" + encodeURIComponent(id) + "/text", document.baseURI), {
            method: "POST", credentials: "same-origin",
            headers: {"Content-Type": "application/json", "X-CSRFToken": cookie("_csrf_token")},
            body: JSON.stringify({message: message ? message.value : ""})
        }).then(function (response) {
            return response.json().catch(function () { return {}; }).then(function (json) {
                if (!response.ok) { throw new Error(json.message || json.error || String(response.status)); }
                if (result) { result.textContent = "✓ " + ((json.changed || [{}])[0].delivery_id || ""); }
                if (message) { message.value = ""; }
            });
        }).catch(function (error) {
            if (result) { result.textContent = "text: " + error.message; }
        }).finally(function () { button.disabled = false; });
    }, true);

    window.hazmapEvidence = Object.freeze({
        drawn: function () { return drawn ? JSON.parse(JSON.stringify(drawn)) : null; }
    });
})();
