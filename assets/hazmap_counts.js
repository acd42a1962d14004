/*
 * Counts per cell of hazmap's point layers at city zoom: below `symbolMinZoom` (a setting:
 * app/settings.py point_symbols_min_zoom) thousands of symbols melt into blobs, so the static
 * canvas (assets/hazmap_static.js) and the live canvas (assets/hazmap_live.js) hide their symbols
 * (`hazmap.countsHide(zoom)`) and this layer draws, at each H3 cell's centre, how many points of
 * the shown layers lie in it. From that zoom on the symbols show and this canvas is empty.
 *
 * The server (layers/grid.py PointCounts, `/grid/<fingerprint>/counts?res=R`) sends per layer
 * (entities, monitoring points, sensitive sites, trucks) the cells and their counts at the
 * resolution the zoom asks (`zoomResolutions`), every `pollMs` while counts show (trucks move).
 * A layer is counted while one of its overlays is shown (`titles`); hazmap_grid.js hands on the
 * layers control's shown overlays (`hazmap.counts.sync`).
 *
 * window.hazmapCounts: a read-only handle for the browser tests and for debugging at the wall.
 */
(function () {
    "use strict";

    var hazmap = (window.hazmap = window.hazmap || {});
    if (!window.L || !hazmap.CanvasLayer) {
        console.error("hazmap: Leaflet and assets/hazmap_canvas.js are not loaded before assets/hazmap_counts.js");
        return;
    }
    var L = window.L;
    var PANE = "hzcounts";
    var PANE_Z = 640; // above the features and the live canvas, below tooltips (650) and popups (700)
    var FONT_PX = 13;

    var state = {
        config: null, map: null, res: null, version: -1, polls: 0, failures: 0, timer: null, inFlight: false,
        shown: {}, // layer name -> counted
        counts: {}, // layer name -> Map(cell id -> n)
        drawn: 0
    };
    var layer = null;

    function active(zoom) { return !!state.config && zoom < state.config.symbolMinZoom; }

    // Read by hazmap_static.js and hazmap_live.js: whether their symbols give way to the counts.
    hazmap.countsHide = function (zoom) { return active(zoom); };

    function resForZoom(zoom) {
        var pairs = state.config.zoomResolutions, res = pairs[0][1];
        for (var i = 0; i < pairs.length; i++) { if (zoom >= pairs[i][0]) { res = pairs[i][1]; } }
        return res;
    }

    // cell id -> {layer: n} over the shown layers
    function totals() {
        var out = new Map();
        state.config.layers.forEach(function (spec) {
            var counts = state.counts[spec.name];
            if (!state.shown[spec.name] || !counts) { return; }
            counts.forEach(function (n, id) {
                var cell = out.get(id);
                if (!cell) { cell = {}; out.set(id, cell); }
                cell[spec.name] = n;
            });
        });
        return out;
    }

    var CountsCanvas = hazmap.CanvasLayer.extend({ // the lifecycle: assets/hazmap_canvas.js
        options: {pane: PANE, className: "hz-counts-canvas"},

        _draw: function () {
            if (!this._ctx || !state.config) { return; }
            var ctx = this._ctx, b = this._bounds, m = window.devicePixelRatio || 1;
            var w = b.max.x - b.min.x, h = b.max.y - b.min.y;
            state.drawn = 0;
            // From the symbols' zoom on the canvas stays empty: hidden, the browser neither clears
            // nor composites a screen-sized transparent layer on every frame that redraws the map.
            var on = active(this._map.getZoom()) && !!window.h3;
            this._container.style.display = on ? "" : "none";
            if (!on) { return; }
            ctx.setTransform(m, 0, 0, m, 0, 0);
            ctx.clearRect(0, 0, w, h);
            var map = this._map, origin = map.getPixelOrigin();
            ctx.font = "600 " + FONT_PX + "px sans-serif";
            ctx.textAlign = "center";
            ctx.textBaseline = "middle";
            totals().forEach(function (cell, id) {
                var total = 0;
                for (var name in cell) { total += cell[name]; }
                if (!total) { return; }
                var c = window.h3.cellToLatLng(id), p = map.project(L.latLng(c[0], c[1]), map.getZoom());
                var x = p.x - origin.x - b.min.x, y = p.y - origin.y - b.min.y;
                if (x < -40 || y < -40 || x > w + 40 || y > h + 40) { return; }
                var label = String(total), r = Math.max(11, ctx.measureText(label).width / 2 + 6);
                ctx.beginPath();
                ctx.arc(x, y, r, 0, 2 * Math.PI);
                ctx.fillStyle = "rgba(15, 23, 42, 0.85)";
                ctx.fill();
                ctx.lineWidth = 1.5;
                ctx.strokeStyle = "rgba(226, 232, 240, 0.9)";
                ctx.stroke();
                ctx.fillStyle = "#f8fafc";
                ctx.fillText(label, x, y + 0.5);
                state.drawn += 1;
            });
        }
    });

    // --- polling ---------------------------------------------------------------------------------
    function schedule(ms) {
        clearTimeout(state.timer);
        state.timer = setTimeout(poll, ms);
    }

    function poll() {
        if (state.inFlight || !state.map) { return; }
        if (!active(state.map.getZoom())) { return; } // zoomend asks again when counts show
        state.inFlight = true;
        var res = resForZoom(state.map.getZoom());
        fetch(state.config.url + "?res=" + res, {cache: "no-store"})
            .then(function (response) {
                return response.json().then(function (body) {
                    if (!response.ok) { throw new Error(response.status + " " + (body.error || "")); }
                    return body;
                });
            })
            .then(function (frame) {
                if (frame.res !== resForZoom(state.map.getZoom())) { return; } // the zoom moved meanwhile
                var counts = {};
                Object.keys(frame.layers).forEach(function (name) {
                    var c = frame.layers[name], cells = new Map();
                    for (var i = 0; i < c.ids.length; i++) { cells.set(c.ids[i], c.n[i]); }
                    counts[name] = cells;
                });
                state.counts = counts;
                state.res = frame.res;
                state.version = frame.version;
                state.polls += 1;
                if (layer) { layer.requestDraw(); }
            })
            .catch(function (error) {
                state.failures += 1;
                if (state.failures === 1 || state.failures % 30 === 0) {
                    console.warn("hazmap counts: " + error.message + " (" + state.failures + " failed polls)");
                }
            })
            .then(function () {
                state.inFlight = false;
                schedule(state.res !== resForZoom(state.map.getZoom()) ? 0 : state.config.pollMs);
            });
    }

    function followZoom() {
        if (!state.map) { return; }
        var res = resForZoom(state.map.getZoom());
        if (res !== state.res) { state.counts = {}; state.res = null; }
        if (layer) { layer.requestDraw(); }
        if (active(state.map.getZoom()) && !state.inFlight) { schedule(0); }
    }

    function whenMap(callback) {
        if (hazmap.leafletMap && window.h3) { callback(hazmap.leafletMap); return; }
        setTimeout(function () { whenMap(callback); }, 50);
    }

    // From hazmap_grid.js's gridSync: the layers control's shown overlays and the counts' config.
    function sync(shownTitles, config) {
        if (!config) { return; }
        var shown = shownTitles || [];
        state.shown = {};
        config.layers.forEach(function (spec) {
            state.shown[spec.name] = spec.titles.some(function (t) { return shown.indexOf(t) >= 0; });
        });
        if (state.config) { if (layer) { layer.requestDraw(); } return; }
        state.config = config;
        whenMap(function (map) {
            state.map = map;
            if (!map.getPane(PANE)) { map.createPane(PANE).style.zIndex = PANE_Z; }
            layer = new CountsCanvas();
            map.addLayer(layer);
            map.on("zoomend", followZoom);
            followZoom();
        });
    }

    hazmap.counts = {sync: sync};

    // --- the read-only handle ----------------------------------------------------------------------
    var handle = {
        counts: function () { // cell id -> {layer: n}, the shown layers' as drawn
            var out = {};
            if (state.config) { totals().forEach(function (cell, id) { out[id] = Object.assign({}, cell); }); }
            return out;
        },
        active: function () { return !!state.map && active(state.map.getZoom()); },
        shownLayers: function () { return Object.keys(state.shown).filter(function (n) { return state.shown[n]; }); },
        cellPixel: function (id) { // [x, y] in the page (client coordinates) of the cell's centre
            if (!state.map || !window.h3) { return null; }
            var c = window.h3.cellToLatLng(id), p = state.map.latLngToContainerPoint(L.latLng(c[0], c[1]));
            var box = state.map.getContainer().getBoundingClientRect();
            return [p.x + box.left, p.y + box.top];
        },
        canvas: function () { return layer && layer._map ? layer._container : null; }
    };
    ["res", "version", "polls", "failures", "drawn"].forEach(function (name) {
        Object.defineProperty(handle, name, {get: function () { return state[name]; }, enumerable: true});
    });
    Object.defineProperty(handle, "symbolMinZoom", {
        get: function () { return state.config ? state.config.symbolMinZoom : null; }, enumerable: true
    });
    window.hazmapCounts = Object.freeze(handle);
})();
