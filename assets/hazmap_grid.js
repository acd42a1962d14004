/*
 * The risk grid of hazmap's wall: H3 hexagons coloured by their risk band, on a canvas of their
 * own under the map's features, the resolution following the zoom.
 *
 * The server (layers/grid.py) sends, every `pollMs`, the cells at the wanted resolution whose
 * score changed since the version the screen holds (state?res=R&since=N): per cell its H3 id,
 * score, band code (-1: scores 0, drop it) and five parts. The hexagon is drawn from the id
 * with h3-js (assets/h3-js.umd.js): no boundary travels. A zoom that changes the resolution
 * asks for the full grid at the new one. Hover shows a cell's parts (the cell under the mouse
 * is one h3 call, no hit-test); a click on a cell that no feature took opens it in the side
 * panel through the `hz-grid-click` store. The grid's overlay in the layers control shows and
 * hides it (the clientside callback `hazmap_grid.gridSync`). Colours and texts come from
 * layers/style.py and layers/grid.py.
 *
 * window.hazmapGrid: a read-only handle for the browser tests and for debugging at the wall.
 */
(function () {
    "use strict";

    var hazmap = (window.hazmap = window.hazmap || {});
    if (!window.L || !hazmap.CanvasLayer) {
        console.error("hazmap: Leaflet and assets/hazmap_canvas.js are not loaded before assets/hazmap_grid.js");
        return;
    }
    var L = window.L;
    var PANE = "hzgrid";
    var PANE_Z = 350; // above the tiles (200), below the features' canvas (400) and the live layer
    var STATS_KEPT = 120;
    var RINGS_KEPT = 60000; // projected hexagons cached (a few MB), cleared when exceeded

    var grid = {
        config: null, map: null, project: null, res: null, version: 0, polls: 0, failures: 0, timer: null, inFlight: false,
        loaded: false, // a first frame applied: the canvas joins the map
        cells: new Map(), // id -> {score, band, parts}
        rings: new Map(), // id -> Float64Array [x0, y0, x1, y1, ...] in Web Mercator at zoom 0 / scale
        stats: {paintMs: [], payloadChars: [], changedCells: []}
    };
    var layer = null, started = false, wanted = true, tip = null;

    function keep(list, value) {
        list.push(value);
        if (list.length > STATS_KEPT) { list.shift(); }
    }

    function h3lib() { return window.h3; }

    function resForZoom(zoom) {
        var pairs = grid.config.zoomResolutions, res = pairs[0][1];
        for (var i = 0; i < pairs.length; i++) { if (zoom >= pairs[i][0]) { res = pairs[i][1]; } }
        return res;
    }

    function ringOf(id) {
        var ring = grid.rings.get(id);
        if (ring) { return ring; }
        if (grid.rings.size > RINGS_KEPT) { grid.rings.clear(); }
        var boundary = h3lib().cellToBoundary(id), p = {x: 0, y: 0};
        ring = new Float64Array(boundary.length * 2);
        for (var i = 0; i < boundary.length; i++) {
            grid.project(boundary[i][0], boundary[i][1], p);
            ring[2 * i] = p.x;
            ring[2 * i + 1] = p.y;
        }
        grid.rings.set(id, ring);
        return ring;
    }

    function applyFrame(frame) {
        if (frame.res !== grid.res) { return false; } // asked before a zoom changed the resolution
        if (frame.full) { grid.cells.clear(); }
        var c = frame.cells;
        for (var i = 0; i < c.n; i++) {
            if (c.band[i] < 0) {
                grid.cells.delete(c.ids[i]);
            } else {
                grid.cells.set(c.ids[i], {score: c.score[i], band: c.band[i], parts: c.parts[i]});
            }
        }
        grid.version = frame.version;
        keep(grid.stats.changedCells, c.n);
        return true;
    }

    // --- the canvas ------------------------------------------------------------------------------
    var GridCanvas = hazmap.CanvasLayer.extend({ // the lifecycle: assets/hazmap_canvas.js
        options: {pane: PANE, className: "hz-grid-canvas"},

        // One path per band (few fills), hexagons outside the canvas skipped.
        _draw: function () {
            if (!this._ctx || !grid.config) { return; }
            var t0 = performance.now();
            var ctx = this._ctx, b = this._bounds, m = window.devicePixelRatio || 1;
            var scale = this._map.options.crs.scale(this._zoom), origin = this._map.getPixelOrigin();
            var ox = origin.x + b.min.x, oy = origin.y + b.min.y, w = b.max.x - b.min.x, h = b.max.y - b.min.y;
            ctx.setTransform(m, 0, 0, m, 0, 0);
            ctx.clearRect(0, 0, w, h);
            var bands = grid.config.bands, paths = bands.map(function () { return new Path2D(); });
            grid.cells.forEach(function (cell, id) {
                var ring = ringOf(id), n = ring.length, x0 = ring[0] * scale - ox, y0 = ring[1] * scale - oy;
                if (x0 < -200 || y0 < -200 || x0 > w + 200 || y0 > h + 200) { return; }
                var path = paths[cell.band];
                path.moveTo(x0, y0);
                for (var i = 2; i < n; i += 2) { path.lineTo(ring[i] * scale - ox, ring[i + 1] * scale - oy); }
                path.closePath();
            });
            ctx.lineWidth = 1;
            for (var k = 0; k < bands.length; k++) {
                ctx.globalAlpha = bands[k].opacity;
                ctx.fillStyle = bands[k].color;
                ctx.fill(paths[k]);
                ctx.globalAlpha = Math.min(1, bands[k].opacity + 0.35);
                ctx.strokeStyle = bands[k].color;
                ctx.stroke(paths[k]);
            }
            ctx.globalAlpha = 1;
            keep(grid.stats.paintMs, performance.now() - t0);
        }
    });

    // --- polling ---------------------------------------------------------------------------------
    function schedule(ms) {
        clearTimeout(grid.timer);
        grid.timer = setTimeout(poll, ms);
    }

    function poll() {
        if (grid.inFlight) { return; }
        if (!wanted) { schedule(grid.config.pollMs); return; }
        grid.inFlight = true;
        var res = grid.res;
        var url = grid.config.stateUrl + "?res=" + res + "&since=" + grid.version;
        fetch(url, {cache: "no-store"})
            .then(function (response) {
                return response.text().then(function (body) {
                    if (!response.ok) { throw new Error(response.status + " " + body); }
                    keep(grid.stats.payloadChars, body.length);
                    return JSON.parse(body);
                });
            })
            .then(function (frame) {
                if (applyFrame(frame)) {
                    grid.polls += 1;
                    if (!grid.loaded) { grid.loaded = true; syncLayer(); } else if (layer) { layer.requestDraw(); }
                }
            })
            .catch(function (error) {
                grid.failures += 1;
                if (grid.failures === 1 || grid.failures % 30 === 0) {
                    console.warn("hazmap risk grid: " + error.message + " (" + grid.failures + " failed polls)");
                }
            })
            .then(function () {
                grid.inFlight = false;
                schedule(res !== grid.res ? 0 : grid.config.pollMs); // a zoom meanwhile: ask again now
            });
    }

    function followZoom() {
        var res = resForZoom(grid.map.getZoom());
        if (res === grid.res) { return; }
        grid.res = res;
        grid.version = 0; // the full grid at the new resolution
        grid.cells.clear();
        if (layer) { layer.requestDraw(); }
        if (!grid.inFlight) { schedule(0); }
    }

    // --- hover and click -------------------------------------------------------------------------
    function cellAtLatLng(latlng) {
        if (!grid.res || !h3lib()) { return null; }
        var id = h3lib().latLngToCell(latlng.lat, latlng.lng, grid.res);
        return grid.cells.has(id) ? id : null;
    }

    function tipHtml(id) {
        var cell = grid.cells.get(id), c = grid.config, band = c.bands[cell.band];
        var rows = ["<div class='hz-grid-tip-title'><span class='hz-grid-tip-swatch' style='background:" + band.color +
            "'></span>" + band.label + " · " + c.scoreLabel + " " + cell.score.toFixed(1) + "</div>"];
        for (var i = 0; i < c.parts.length; i++) {
            if (cell.parts[i] > 0) {
                rows.push("<div class='hz-grid-tip-row'><span>" + c.partLabels[i] + "</span><b>" +
                    cell.parts[i].toFixed(1) + "</b></div>");
            }
        }
        return rows.join("");
    }

    // DOM listeners on the map's container (Leaflet's own map events do not reach us over an
    // interactive feature, which takes them), hover throttled to one per frame.
    function onMove(event) {
        if (!tip || grid.hoverRequest) { return; }
        grid.hoverRequest = L.Util.requestAnimFrame(function () {
            grid.hoverRequest = null;
            var map = grid.map, over = map.getPane("mapPane").contains(event.target);
            var id = over && wanted && layer && layer._map ? cellAtLatLng(map.mouseEventToLatLng(event)) : null;
            if (!id) { tip.style.display = "none"; tip.dataset.cell = ""; return; }
            if (tip.dataset.cell !== id) {
                tip.innerHTML = tipHtml(id);
                tip.dataset.cell = id;
            }
            var at = map.mouseEventToContainerPoint(event);
            tip.style.display = "block";
            tip.style.left = (at.x + 16) + "px";
            tip.style.top = (at.y + 16) + "px";
        });
    }

    // The feature of the map's own canvas a click at this layer point would reach (Leaflet's
    // canvas hit-test: the last drawn that contains it), or null.
    function featureAt(point) {
        var renderer = grid.map._renderer, hit = null;
        if (!renderer || !renderer._drawFirst) { return null; }
        for (var order = renderer._drawFirst; order; order = order.next) {
            var l = order.layer;
            if (l.options.interactive && l._containsPoint && l._containsPoint(point)) { hit = l; }
        }
        return hit;
    }

    // A click on a cell opens it, unless something more specific lies there: a live truck or
    // point (hazmap_live.js), a point or line feature. An area feature (a district, a park)
    // covers whole cells and gives way to the grid.
    function onClick(event) {
        if (!wanted || !layer || !layer._map) { return; }
        var map = grid.map;
        if (!map.getPane("mapPane").contains(event.target)) { return; } // a control, not the map
        if (map.dragging && map.dragging.moved()) { return; }
        var cp = map.mouseEventToContainerPoint(event);
        if (window.hazmapLive && window.hazmapLive.hitAt && window.hazmapLive.hitAt(cp.x, cp.y)) { return; }
        var id = cellAtLatLng(map.containerPointToLatLng(cp));
        if (!id) { return; }
        var feature = featureAt(map.containerPointToLayerPoint(cp));
        if (feature && !(feature instanceof L.Polygon)) { return; }
        event.stopPropagation();
        window.dash_clientside.set_props("hz-grid-click", {data: {cell: id, res: grid.res, at: Date.now()}});
    }

    function whenMap(callback) {
        if (hazmap.leafletMap && h3lib()) { callback(hazmap.leafletMap); return; }
        setTimeout(function () { whenMap(callback); }, 50);
    }

    function start(config) {
        if (started) { return; }
        started = true;
        grid.config = config;
        whenMap(function (map) {
            grid.map = map;
            grid.project = hazmap.unitProjector(map.options.crs);
            if (!map.getPane(PANE)) { map.createPane(PANE).style.zIndex = PANE_Z; }
            tip = document.createElement("div");
            tip.className = "hz-grid-tip";
            tip.style.display = "none";
            map.getContainer().appendChild(tip);
            map.getContainer().addEventListener("mousemove", onMove, true);
            map.getContainer().addEventListener("mouseleave", function () { tip.style.display = "none"; });
            map.getContainer().addEventListener("click", onClick, true);
            map.on("zoomend", followZoom);
            layer = new GridCanvas();
            grid.res = resForZoom(map.getZoom());
            syncLayer();
            poll();
        });
    }

    function syncLayer() {
        if (!layer || !grid.map) { return; }
        // on the map once its first frame is in: an empty screen-sized canvas drawn and composited
        // (twice) in the first render cost that render for nothing (issue 16)
        if (wanted && grid.loaded && !grid.map.hasLayer(layer)) {
            grid.map.addLayer(layer);
        } else if (!wanted && grid.map.hasLayer(layer)) {
            grid.map.removeLayer(layer);
            if (tip) { tip.style.display = "none"; }
        }
        if (wanted && grid.map.hasLayer(layer)) { layer.requestDraw(); }
    }

    // Clientside callback (app/webapp.py): the layers control's shown overlays -> the grid.
    function gridSync(shownTitles, config) {
        if (!config) { return; }
        wanted = (shownTitles || []).indexOf(config.title) >= 0;
        if (hazmap.counts) { hazmap.counts.sync(shownTitles, config.counts); } // assets/hazmap_counts.js
        start(config);
        syncLayer();
    }

    window.dash_clientside = Object.assign({}, window.dash_clientside, {hazmap_grid: {gridSync: gridSync}});

    // --- the read-only handle ----------------------------------------------------------------------
    var handle = {
        cells: function () { // id -> {score, band (name), parts}
            var out = {};
            grid.cells.forEach(function (cell, id) {
                out[id] = {score: cell.score, band: grid.config.bands[cell.band].name, parts: cell.parts.slice()};
            });
            return out;
        },
        cellPixel: function (id) { // [x, y] in the page (client coordinates) of the cell's centre
            if (!grid.map || !h3lib()) { return null; }
            var c = h3lib().cellToLatLng(id), p = grid.map.latLngToContainerPoint(L.latLng(c[0], c[1]));
            var box = grid.map.getContainer().getBoundingClientRect();
            return [p.x + box.left, p.y + box.top];
        },
        cellAt: function (x, y) { // the drawn cell at page point [x, y], or null
            if (!grid.map) { return null; }
            var box = grid.map.getContainer().getBoundingClientRect();
            return cellAtLatLng(grid.map.containerPointToLatLng(L.point(x - box.left, y - box.top)));
        },
        canvas: function () { return layer && layer._map ? layer._container : null; },
        stats: function () { return JSON.parse(JSON.stringify(grid.stats)); }
    };
    ["res", "version", "polls", "failures"].forEach(function (name) {
        Object.defineProperty(handle, name, {get: function () { return grid[name]; }, enumerable: true});
    });
    Object.defineProperty(handle, "shown", {get: function () { return wanted; }, enumerable: true});
    window.hazmapGrid = Object.freeze(handle);
})();
