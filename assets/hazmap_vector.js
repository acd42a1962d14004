/*
 * The line and area layers of hazmap's wall (district areas, chemical parks, restricted zones,
 * roads, waybill routes) on one canvas of their own, drawn from typed arrays instead of one
 * Leaflet polyline per feature (13,000 of them at Ningbo scale: seconds to build at load,
 * hundreds of ms to clip and stroke on every pan).
 *
 * The server (layers/vector_canvas.py) sends per layer a meta (ids, class, area or line, each
 * feature's box) when its overlay is first switched on, then per zoom band the parts to draw
 * (areas' rings, each class's distinct line segments merged), simplified to half a pixel at the
 * band's last zoom, fetched when the map first shows that band, all under URLs that carry the
 * world's fingerprint (cached for good). Vertices are projected through the map's CRS once per
 * band; a redraw culls parts by their box, skips vertices within half a pixel of the last one
 * and strokes one path per class (areas filled, non-zero: holes come oriented the other way).
 *
 * A click or hover tests each feature's own geometry (`hit.bin`, fetched after the first paint)
 * in lon/lat around the pointer: lines within reach of their stroke, areas containing it. A point
 * on any other layer (the live trucks and points, the static canvas, Leaflet's own canvas) wins;
 * an area gives way to the risk grid's cell. The hit opens the details panel through the
 * `hz-live-click` store. The overlays of the layers control show and hide each layer (clientside
 * callback `hazmap_vector.vectorSync`).
 *
 * Over them, whatever overlays are shown, the district outlines of the always-drawn base
 * (layers/basemap.py: the city's orientation when no tile server answers; their GeoJSON, ten
 * features at Ningbo scale, projected once as a band is). They were the last lines on Leaflet's own
 * canvas, a screen-sized layer composited on every frame (5-15 ms of a zoom on a software
 * compositor); they take no clicks.
 *
 * Each layer marks a performance entry `hazmap:layer:<name>` when first painted, and
 * window.hazmapVector reports how many features each layer drew in the last paint (features
 * whose box meets the canvas; the outlines as `base`).
 */
(function () {
    "use strict";

    var hazmap = (window.hazmap = window.hazmap || {});
    if (!window.L || !hazmap.CanvasLayer) {
        console.error("hazmap: Leaflet and assets/hazmap_canvas.js are not loaded before assets/hazmap_vector.js");
        return;
    }
    var L = window.L;
    var PANE = "hzvector";
    var PANE_Z = 380; // over the risk grid (350), under the static points (395) and Leaflet's points (400)
    var FILL_BIT = 0x80000000; // a draw part's owner: top bit set for an area's ring (filled), the rest its class
    var HIT_SLACK_PX = 3;
    var STATS_KEPT = 120;
    var LINE_OPACITY = 0.95; // as assets/hazmap_map.js featureStyle
    var OUTLINE_OPACITY = 0.9; // the district outlines (layers/style.py BASE_HIDEOUT)

    function screenScale() { // as assets/hazmap_map.js: sizes are set for a 1920x1080 wall
        return Math.max(1, Math.min(window.innerWidth / 1920, window.innerHeight / 1080));
    }

    function u16(b64) {
        var bin = atob(b64), n = bin.length, out = new Uint8Array(n);
        for (var i = 0; i < n; i++) { out[i] = bin.charCodeAt(i); }
        return new Uint16Array(out.buffer, 0, n >> 1);
    }

    var state = {
        config: null, map: null, started: false,
        layers: {}, // name -> entry (see start)
        order: [],
        stats: {paintMs: [], decodeMs: []}
    };
    // The district outlines: {url, color, weight} from the config, their parts as a band, each
    // feature's lon/lat box (west, south, east, north), the features drawn in the last paint.
    var outlines = {config: null, requested: false, failed: false, band: null, box: null, n: 0, drawn: 0};

    function keep(list, value) {
        list.push(value);
        if (list.length > STATS_KEPT) { list.shift(); }
    }

    function bandIndex(entry, zoom) {
        var bands = entry.meta.bands, z = Math.floor(zoom);
        for (var i = bands.length - 1; i > 0; i--) {
            if (z >= bands[i].min_zoom) { return i; }
        }
        return 0;
    }

    // The binary of a band or of the hit geometry: part_start, owner, lon, lat (uint32 LE).
    function views(buffer, parts, vertices) {
        var at = 0;
        function next(n) { var v = new Uint32Array(buffer, at, n); at += 4 * n; return v; }
        return {start: next(parts + 1), owner: next(parts), qx: next(vertices), qy: next(vertices)};
    }

    // A band's vertices through the map's CRS (Web Mercator at zoom 0 / its scale: [0, 1)), with
    // each part's box, and its parts grouped by class (lines) and by class (rings, filled).
    function decodeBand(entry, index, buffer) {
        var t0 = performance.now(), band = entry.meta.bands[index], v = views(buffer, band.parts, band.vertices);
        var meta = entry.meta, bbox = meta.bbox, dx = (bbox[2] - bbox[0]) / meta.quant_max,
            dy = (bbox[3] - bbox[1]) / meta.quant_max;
        var project = hazmap.unitProjector(state.map.options.crs), p = {x: 0, y: 0}, n = band.vertices, P = band.parts;
        var nx = new Float64Array(n), ny = new Float64Array(n);
        for (var i = 0; i < n; i++) {
            project(bbox[1] + v.qy[i] * dy, bbox[0] + v.qx[i] * dx, p);
            nx[i] = p.x;
            ny[i] = p.y;
        }
        var box = new Float64Array(4 * P), nClasses = meta.classes.length;
        var lines = [], rings = [];
        for (var c = 0; c < nClasses; c++) { lines.push([]); rings.push([]); }
        for (var k = 0; k < P; k++) {
            var a = v.start[k], z = v.start[k + 1], x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
            for (var j = a; j < z; j++) {
                if (nx[j] < x0) { x0 = nx[j]; }
                if (nx[j] > x1) { x1 = nx[j]; }
                if (ny[j] < y0) { y0 = ny[j]; }
                if (ny[j] > y1) { y1 = ny[j]; }
            }
            box[4 * k] = x0; box[4 * k + 1] = y0; box[4 * k + 2] = x1; box[4 * k + 3] = y1;
            var owner = v.owner[k], cls = (owner & ~FILL_BIT) >>> 0;
            ((owner & FILL_BIT) ? rings : lines)[Math.min(cls, nClasses - 1)].push(k);
        }
        function packed(list) { return Int32Array.from(list); }
        entry.bands[index] = {start: v.start, nx: nx, ny: ny, box: box, lines: lines.map(packed), rings: rings.map(packed)};
        keep(state.stats.decodeMs, performance.now() - t0);
    }

    // The hit geometry in lon/lat (no projection: a click is turned back into lon/lat), with
    // each feature's first part (parts come ordered by feature).
    function decodeHit(entry, buffer) {
        var meta = entry.meta, P = meta.hit_parts, v = views(buffer, P, (buffer.byteLength / 4 - 2 * P - 1) / 2);
        var bbox = meta.bbox, dx = (bbox[2] - bbox[0]) / meta.quant_max, dy = (bbox[3] - bbox[1]) / meta.quant_max;
        var n = v.qx.length, lon = new Float64Array(n), lat = new Float64Array(n);
        for (var i = 0; i < n; i++) { lon[i] = bbox[0] + v.qx[i] * dx; lat[i] = bbox[1] + v.qy[i] * dy; }
        var first = new Uint32Array(meta.n + 1).fill(P);
        for (var k = P - 1; k >= 0; k--) { first[v.owner[k]] = k; }
        for (var f = meta.n - 1; f >= 0; f--) { if (first[f] > first[f + 1]) { first[f] = first[f + 1]; } }
        entry.hit = {start: v.start, lon: lon, lat: lat, first: first};
    }

    function decodeMeta(entry, meta) {
        var boxes = u16(meta.boxes), n = meta.n, bbox = meta.bbox, q = meta.box_quant_max;
        var sx = (bbox[2] - bbox[0]) / q, sy = (bbox[3] - bbox[1]) / q;
        var box = new Float64Array(4 * n); // lon/lat: west, south, east, north
        for (var i = 0; i < n; i++) {
            box[4 * i] = bbox[0] + boxes[4 * i] * sx;
            box[4 * i + 1] = bbox[1] + boxes[4 * i + 1] * sy;
            box[4 * i + 2] = bbox[0] + boxes[4 * i + 2] * sx;
            box[4 * i + 3] = bbox[1] + boxes[4 * i + 3] * sy;
        }
        entry.meta = meta;
        entry.box = box;
        entry.bands = meta.bands.map(function () { return null; });
        entry.bandRequested = meta.bands.map(function () { return false; });
    }

    // The outlines' GeoJSON (LineStrings and MultiLineStrings: the districts' boundaries) as a band
    // of lines, projected once as decodeBand does.
    function decodeOutlines(geojson) {
        var t0 = performance.now(), project = hazmap.unitProjector(state.map.options.crs), p = {x: 0, y: 0};
        var xs = [], ys = [], start = [0], featureBox = [];
        geojson.features.forEach(function (feature) {
            var g = feature.geometry, lines = !g ? [] : g.type === "LineString" ? [g.coordinates]
                : g.type === "MultiLineString" ? g.coordinates : [];
            var w = Infinity, so = Infinity, e = -Infinity, no = -Infinity;
            lines.forEach(function (line) {
                line.forEach(function (c) {
                    project(c[1], c[0], p);
                    xs.push(p.x);
                    ys.push(p.y);
                    w = Math.min(w, c[0]); e = Math.max(e, c[0]); so = Math.min(so, c[1]); no = Math.max(no, c[1]);
                });
                start.push(xs.length);
            });
            if (lines.length) { featureBox.push(w, so, e, no); }
        });
        var P = start.length - 1, nx = Float64Array.from(xs), ny = Float64Array.from(ys), box = new Float64Array(4 * P);
        for (var k = 0; k < P; k++) {
            var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
            for (var j = start[k]; j < start[k + 1]; j++) {
                x0 = Math.min(x0, nx[j]); x1 = Math.max(x1, nx[j]); y0 = Math.min(y0, ny[j]); y1 = Math.max(y1, ny[j]);
            }
            box[4 * k] = x0; box[4 * k + 1] = y0; box[4 * k + 2] = x1; box[4 * k + 3] = y1;
        }
        var all = new Int32Array(P);
        for (k = 0; k < P; k++) { all[k] = k; }
        outlines.band = {start: Uint32Array.from(start), nx: nx, ny: ny, box: box, lines: [all], rings: [new Int32Array(0)]};
        outlines.box = Float64Array.from(featureBox);
        outlines.n = featureBox.length / 4;
        keep(state.stats.decodeMs, performance.now() - t0);
    }

    function fetchOutlines() {
        outlines.requested = true;
        getJson(outlines.config.url)
            .then(function (geojson) {
                decodeOutlines(geojson);
                sync();
            })
            .catch(function (error) {
                outlines.failed = true; // drawn without them: not asked again until a reload
                console.warn("hazmap district outlines: " + error.message);
                sync();
            });
    }

    // The meta and the first band may have been started by the page's head (assets/hazmap_preload.js).
    function getJson(url) {
        return ((window.hazmapPreload && window.hazmapPreload.take(url)) || fetch(url)).then(function (response) {
            if (!response.ok) { throw new Error(response.status + " " + url); }
            return response.json();
        });
    }

    function getBinary(url) {
        return ((window.hazmapPreload && window.hazmapPreload.take(url)) || fetch(url)).then(function (response) {
            if (!response.ok) { throw new Error(response.status + " " + url); }
            return response.arrayBuffer();
        });
    }

    function baseUrl(entry) { return entry.url.replace(/\.json$/, ""); }

    function fetchBand(entry, index) {
        entry.bandRequested[index] = true;
        getBinary(baseUrl(entry) + "/" + index + ".bin")
            .then(function (buffer) {
                decodeBand(entry, index, buffer);
                if (layer) { layer.requestDraw(); }
            })
            .catch(function (error) {
                entry.bandRequested[index] = false; // the next redraw tries again
                console.warn("hazmap vector layer " + entry.name + " band " + index + ": " + error.message);
            });
    }

    function fetchHit(entry) {
        entry.hitRequested = true;
        getBinary(baseUrl(entry) + "/hit.bin")
            .then(function (buffer) { decodeHit(entry, buffer); })
            .catch(function (error) {
                entry.hitRequested = false;
                console.warn("hazmap vector layer " + entry.name + " hit geometry: " + error.message);
            });
    }

    // The meta and, at the same time, the band of the map's zoom (config.bands: each band's first zoom).
    function fetchLayer(entry) {
        entry.requested = true;
        var index = 0, zoom = Math.floor(state.map.getZoom());
        state.config.bands.forEach(function (first, i) { if (zoom >= first) { index = i; } });
        Promise.all([getJson(entry.url), getBinary(baseUrl(entry) + "/" + index + ".bin")])
            .then(function (got) {
                decodeMeta(entry, got[0]);
                entry.bandRequested[index] = true;
                decodeBand(entry, index, got[1]);
                sync(); // on the map with its first data, drawn
            })
            .catch(function (error) {
                entry.requested = false; // the next switch-on tries again
                console.warn("hazmap vector layer " + entry.name + ": " + error.message);
            });
    }

    // Lines wider than a device pixel as parallel hairlines (assets/hazmap_canvas.js `hazmap.hairlines`):
    // one part's kept vertices (layer px), reused from part to part.
    var kept = {x: new Float64Array(1024), y: new Float64Array(1024), n: 0};
    function keep2(x, y) {
        if (kept.n === kept.x.length) {
            var bx = new Float64Array(2 * kept.n), by = new Float64Array(2 * kept.n);
            bx.set(kept.x); by.set(kept.y);
            kept.x = bx; kept.y = by;
        }
        kept.x[kept.n] = x; kept.y[kept.n] = y; kept.n++;
    }

    // --- the canvas ------------------------------------------------------------------------------
    var VectorCanvas = hazmap.CanvasLayer.extend({ // the lifecycle: assets/hazmap_canvas.js
        // padded a quarter of the view each way and kept through pans within it: a pan redraws
        // (strokes every line on a software canvas: the costly part) only when it leaves that
        // after a zoom the view is drawn first and the padding in idle strips (`viewFirst`)
        options: {pane: PANE, className: "hz-vector-canvas", padding: 0.25, keepWhileCovered: true, viewFirst: true},

        // The whole canvas, or `region` of it (layer points; `fresh`: the rest cleared, see
        // assets/hazmap_canvas.js): the parts whose box meets it, stroked within it.
        _draw: function (region, fresh) {
            if (!this._ctx) { return; }
            var t0 = performance.now(), map = this._map, b = this._bounds, m = window.devicePixelRatio || 1;
            var ctx = this._ctx, canvas = this._container, origin = map.getPixelOrigin();
            var scale = map.options.crs.scale(this._zoom), s = screenScale(), area = region || b;
            ctx.save();
            ctx.setTransform(1, 0, 0, 1, 0, 0);
            if (!region || fresh) {
                ctx.clearRect(0, 0, canvas.width, canvas.height);
            }
            ctx.setTransform(m, 0, 0, m, -b.min.x * m, -b.min.y * m); // layer points
            if (region) {
                ctx.beginPath();
                ctx.rect(area.min.x, area.min.y, area.max.x - area.min.x, area.max.y - area.min.y);
                ctx.clip();
                if (!fresh) { ctx.clearRect(area.min.x, area.min.y, area.max.x - area.min.x, area.max.y - area.min.y); }
            }
            // butt ends and bevel joins: at 1-3 px they look as round ones do, and a software canvas
            // strokes them in about two thirds of the time
            ctx.lineCap = "butt";
            ctx.lineJoin = "bevel";
            var view = {
                scale: scale, ox: origin.x, oy: origin.y, s: s, m: m,
                minX: area.min.x, minY: area.min.y, maxX: area.max.x, maxY: area.max.y
            };
            // the features drawn so far: those whose box meets the part of the canvas drawn
            var c = this._covered(), h = c.getSize().y;
            var sw = map.layerPointToLatLng(c.min.add([0, h])), ne = map.layerPointToLatLng(c.max.subtract([0, h]));
            var lonLatBox = [Math.min(sw.lng, ne.lng), Math.min(sw.lat, ne.lat), Math.max(sw.lng, ne.lng), Math.max(sw.lat, ne.lat)];
            var painted = 0;
            for (var k = 0; k < state.order.length; k++) {
                var entry = state.layers[state.order[k]];
                entry.drawn = 0;
                if (!entry.wanted || !entry.meta) { continue; }
                var index = bandIndex(entry, this._zoom), band = entry.bands[index];
                if (!band && !entry.bandRequested[index]) { fetchBand(entry, index); }
                if (!band) { band = nearestLoaded(entry, index); } // until its own band arrives
                if (!band) { continue; }
                this._layer(entry, band, view);
                entry.drawn = countInBox(entry, lonLatBox);
                painted++;
                if (!entry.painted && entry.bands[index]) {
                    entry.painted = true;
                    performance.mark("hazmap:layer:" + entry.name);
                    if (!entry.hitRequested && !entry.hitQueued) { // clicks need it; the first render not
                        entry.hitQueued = true;
                        laterIdle(function (e) { if (!e.hitRequested) { fetchHit(e); } }, entry);
                    }
                }
            }
            outlines.drawn = 0;
            if (outlines.band) { // over the layers, whatever overlays are shown
                var ow = Math.max(0.5, outlines.config.weight * s), olanes = hazmap.hairlines(ow, m);
                if (this._path(outlines.band, outlines.band.lines[0], view, ow + 2, false, olanes.offsets)) {
                    this._stroke(outlines.config, olanes.width, OUTLINE_OPACITY);
                }
                outlines.drawn = countInBox({box: outlines.box, meta: {n: outlines.n}}, lonLatBox);
            }
            ctx.setLineDash([]);
            ctx.restore();
            if (painted) { keep(state.stats.paintMs, performance.now() - t0); }
        },

        // One path per class: its rings (filled, then stroked) and its lines; the first class
        // of the style (the most important) drawn last, on top. A line wider than a device pixel
        // is stroked as parallel hairlines across its width (`hazmap.hairlines`).
        _layer: function (entry, band, view) {
            var ctx = this._ctx, classes = entry.meta.classes;
            for (var c = classes.length - 1; c >= 0; c--) {
                var style = entry.styles[classes[c]] || entry.styles.other;
                var width = Math.max(0.5, style.weight * view.s);
                var reach = width + 2, lanes = hazmap.hairlines(width, view.m);
                var rings = band.rings[c], lines = band.lines[c];
                if (rings.length && this._path(band, rings, view, reach, true, null)) {
                    ctx.globalAlpha = style.fillOpacity;
                    ctx.fillStyle = style.color;
                    ctx.fill("nonzero");
                    if (lanes.offsets.length > 1) { this._path(band, rings, view, reach, true, lanes.offsets); }
                    this._stroke(style, lanes.width);
                }
                if (lines.length && this._path(band, lines, view, reach, false, lanes.offsets)) { this._stroke(style, lanes.width); }
            }
            ctx.globalAlpha = 1;
        },

        _stroke: function (style, width, opacity) {
            var ctx = this._ctx;
            ctx.globalAlpha = opacity === undefined ? LINE_OPACITY : opacity;
            ctx.strokeStyle = style.color;
            ctx.lineWidth = width;
            ctx.setLineDash(style.dashArray ? style.dashArray.split(/[ ,]+/).map(Number) : []);
            ctx.stroke();
        },

        // The parts whose box meets the canvas (widened by `reach` px), vertices within half a
        // pixel of the last one skipped; true when anything was added. `offsets` (layer px, or
        // null: the line itself): each part added once per offset, moved that far across it.
        _path: function (band, parts, view, reach, closed, offsets) {
            var ctx = this._ctx, scale = view.scale, ox = view.ox, oy = view.oy, nx = band.nx, ny = band.ny;
            var start = band.start, box = band.box, any = false;
            var minX = (view.minX - reach + ox) / scale, maxX = (view.maxX + reach + ox) / scale;
            var minY = (view.minY - reach + oy) / scale, maxY = (view.maxY + reach + oy) / scale;
            var across = offsets && offsets.length > 1;
            ctx.beginPath();
            for (var i = 0; i < parts.length; i++) {
                var k = parts[i], q = 4 * k;
                if (box[q] > maxX || box[q + 2] < minX || box[q + 1] > maxY || box[q + 3] < minY) { continue; }
                var a = start[k], z = start[k + 1];
                var lx = nx[a] * scale - ox, ly = ny[a] * scale - oy;
                if (across) { kept.n = 0; keep2(lx, ly); } else { ctx.moveTo(lx, ly); }
                for (var j = a + 1; j < z; j++) {
                    var x = nx[j] * scale - ox, y = ny[j] * scale - oy;
                    if (j < z - 1 && Math.abs(x - lx) < 0.5 && Math.abs(y - ly) < 0.5) { continue; }
                    if (across) { keep2(x, y); } else { ctx.lineTo(x, y); }
                    lx = x; ly = y;
                }
                if (across) {
                    hazmap.offsetLines(ctx, kept.x, kept.y, kept.n, offsets, closed);
                } else if (closed) { ctx.closePath(); }
                any = true;
            }
            return any;
        },

        // The topmost feature within reach of lon/lat at `zoom` (lines: of their stroke; areas:
        // containing it): {layer, id, area} or null. Layers whose hit geometry has not arrived yet
        // are skipped.
        hitTest: function (lon, lat, zoom) {
            var s = screenScale(), degX = 360 / (256 * Math.pow(2, zoom)), degY = degX * Math.cos(lat * Math.PI / 180);
            for (var k = state.order.length - 1; k >= 0; k--) {
                var entry = state.layers[state.order[k]];
                if (!entry.wanted || !entry.meta) { continue; }
                if (!entry.hit) { if (!entry.hitRequested) { fetchHit(entry); } continue; }
                var found = hitLayer(entry, lon, lat, degX, degY, s);
                if (found >= 0) { return {layer: entry.name, id: entry.meta.ids[found], area: !!entry.meta.area[found]}; }
            }
            return null;
        }
    });

    // Once the page is idle (within 2 s): the hit geometry's decode then leaves the first render
    // (the GeoJSON layers and the live canvas still building) alone.
    function laterIdle(f, arg) {
        if (window.requestIdleCallback) { window.requestIdleCallback(function () { f(arg); }, {timeout: 2000}); } else { setTimeout(f, 0, arg); }
    }

    function nearestLoaded(entry, index) {
        for (var d = 1; d < entry.bands.length; d++) {
            if (entry.bands[index - d]) { return entry.bands[index - d]; }
            if (entry.bands[index + d]) { return entry.bands[index + d]; }
        }
        return null;
    }

    function countInBox(entry, lb) {
        var box = entry.box, n = entry.meta.n, count = 0;
        for (var i = 0; i < n; i++) {
            var q = 4 * i;
            if (box[q] <= lb[2] && box[q + 2] >= lb[0] && box[q + 1] <= lb[3] && box[q + 3] >= lb[1]) { count++; }
        }
        return count;
    }

    // Squared distance in pixels from (px, py) to the segment a-b (all in pixels).
    function segmentDistance2(px, py, ax, ay, bx, by) {
        var vx = bx - ax, vy = by - ay, wx = px - ax, wy = py - ay, len = vx * vx + vy * vy;
        var t = len > 0 ? Math.max(0, Math.min(1, (wx * vx + wy * vy) / len)) : 0;
        var dx = wx - t * vx, dy = wy - t * vy;
        return dx * dx + dy * dy;
    }

    // The feature of one layer a pointer at lon/lat hits, or -1: the nearest line within reach,
    // else the last area containing it (even-odd over its rings: holes are outside).
    function hitLayer(entry, lon, lat, degX, degY, s) {
        var meta = entry.meta, hit = entry.hit, box = entry.box, n = meta.n, best = -1, bestD = Infinity, inArea = -1;
        var maxReach = 0;
        Object.keys(entry.styles).forEach(function (key) { maxReach = Math.max(maxReach, entry.styles[key].weight); });
        maxReach = maxReach * s / 2 + HIT_SLACK_PX;
        var rx = maxReach * degX, ry = maxReach * degY;
        for (var f = 0; f < n; f++) {
            var q = 4 * f;
            if (lon < box[q] - rx || lon > box[q + 2] + rx || lat < box[q + 1] - ry || lat > box[q + 3] + ry) { continue; }
            var area = meta.area[f], style = entry.styles[meta.classes[meta.cls[f]]] || entry.styles.other;
            var reach = style.weight * s / 2 + HIT_SLACK_PX, inside = false;
            for (var k = hit.first[f]; k < hit.first[f + 1]; k++) {
                var a = hit.start[k], z = hit.start[k + 1];
                for (var j = a + 1; j < z; j++) {
                    var x0 = (hit.lon[j - 1] - lon) / degX, y0 = (hit.lat[j - 1] - lat) / degY;
                    var x1 = (hit.lon[j] - lon) / degX, y1 = (hit.lat[j] - lat) / degY;
                    if (area) {
                        if ((y0 > 0) !== (y1 > 0) && 0 < x0 + (0 - y0) * (x1 - x0) / (y1 - y0)) { inside = !inside; }
                    } else {
                        var d = segmentDistance2(0, 0, x0, y0, x1, y1);
                        if (d <= reach * reach && d < bestD) { best = f; bestD = d; }
                    }
                }
            }
            if (inside) { inArea = f; }
        }
        return best >= 0 ? best : inArea;
    }

    // --- wiring ------------------------------------------------------------------------------------
    var layer = null;

    function whenMap(callback) {
        if (hazmap.leafletMap) { callback(hazmap.leafletMap); return; }
        setTimeout(function () { whenMap(callback); }, 50);
    }

    // A point feature of the map's own canvas (a hazard source, a station) at this layer point.
    function pointFeatureAt(point) {
        var renderer = state.map._renderer;
        if (!renderer || !renderer._drawFirst) { return false; }
        for (var order = renderer._drawFirst; order; order = order.next) {
            var l = order.layer;
            if (l instanceof L.CircleMarker && l.options.interactive && l._containsPoint(point)) { return true; }
        }
        return false;
    }

    function hitAtContainerPoint(cp, clientX, clientY) {
        var map = state.map;
        if (window.hazmapLive && window.hazmapLive.hitAt && window.hazmapLive.hitAt(cp.x, cp.y)) { return null; }
        if (window.hazmapStatic && window.hazmapStatic.hitAt && window.hazmapStatic.hitAt(cp.x, cp.y)) { return null; }
        if (pointFeatureAt(map.containerPointToLayerPoint(cp))) { return null; }
        var ll = map.containerPointToLatLng(cp), hit = layer.hitTest(ll.lng, ll.lat, map.getZoom());
        var grid = window.hazmapGrid;
        if (hit && hit.area && grid && grid.shown && clientX !== undefined && grid.cellAt(clientX, clientY)) {
            return null; // an area covers whole cells: it gives way to the risk grid
        }
        return hit;
    }

    function hitAtEvent(event) {
        var map = state.map;
        if (!layer || !map || !layer._map || !map.getPane("mapPane").contains(event.target)) { return null; }
        return hitAtContainerPoint(map.mouseEventToContainerPoint(event), event.clientX, event.clientY);
    }

    function onCapturedClick(event) {
        if (state.map && state.map.dragging && state.map.dragging.moved()) { return; } // the end of a drag
        var hit = hitAtEvent(event);
        if (!hit) { return; }
        event.stopPropagation(); // neither the grid nor the map's canvas may also take this click
        window.dash_clientside.set_props("hz-live-click", {data: {layer: hit.layer, id: hit.id, at: Date.now()}});
    }

    var hoverRequest = null;
    function onMouseMove(event) {
        if (!layer || hoverRequest) { return; }
        hoverRequest = L.Util.requestAnimFrame(function () {
            hoverRequest = null;
            if (state.map) { state.map.getContainer().classList.toggle("hz-vector-hover", !!hitAtEvent(event)); }
        });
    }

    function start(config) {
        if (state.started) { return; }
        state.started = true;
        state.config = config;
        outlines.config = config.outlines || null;
        config.layers.forEach(function (c) {
            state.order.push(c.name);
            state.layers[c.name] = {
                name: c.name, title: c.title, url: c.url, styles: c.styles, wanted: false, requested: false,
                meta: null, box: null, bands: [], bandRequested: [], hit: null, hitRequested: false, drawn: 0,
                painted: false
            };
        });
        whenMap(function (map) {
            state.map = map;
            if (!map.getPane(PANE)) { map.createPane(PANE).style.zIndex = PANE_Z; }
            document.addEventListener("click", onCapturedClick, true);
            map.getContainer().addEventListener("mousemove", onMouseMove, true);
            layer = new VectorCanvas();
            sync();
        });
    }

    function sync() {
        if (!layer || !state.map) { return; }
        var base = !!outlines.config && !outlines.failed; // the district outlines: always shown
        if (base && !outlines.requested) { fetchOutlines(); }
        var any = base, loaded = base && !!outlines.band, pending = base && !outlines.band;
        state.order.forEach(function (name) {
            var entry = state.layers[name];
            if (entry.wanted && !entry.requested) { fetchLayer(entry); }
            any = any || entry.wanted;
            loaded = loaded || (entry.wanted && !!entry.meta);
            pending = pending || (entry.wanted && entry.requested && !entry.meta);
        });
        // The canvas joins the map once the shown layers' data is in (fetchLayer calls back), and
        // is drawn as it joins: an empty full-screen canvas, or one redrawn per payload, composited
        // before the last payload arrives only delays the first render.
        if (loaded && !pending && !state.map.hasLayer(layer)) {
            state.map.addLayer(layer);
        } else if (!any && state.map.hasLayer(layer)) {
            state.map.removeLayer(layer);
        } else if (state.map.hasLayer(layer)) {
            layer.requestDraw();
        }
    }

    // Clientside callback (app/webapp.py): the layers control's shown overlays -> the vector layers.
    function vectorSync(shownTitles, config) {
        if (!config) { return; }
        start(config);
        var shown = shownTitles || [];
        state.order.forEach(function (name) {
            state.layers[name].wanted = shown.indexOf(state.layers[name].title) >= 0;
        });
        sync();
    }

    window.dash_clientside = Object.assign({}, window.dash_clientside, {hazmap_vector: {vectorSync: vectorSync}});

    // --- the read-only handle (browser tests, debugging at the wall) --------------------------------
    window.hazmapVector = Object.freeze({
        // layer -> features drawn in the last paint (0 when hidden or not loaded yet)
        drawn: function () {
            var out = {};
            state.order.forEach(function (name) { out[name] = state.layers[name].drawn; });
            if (outlines.config) { out.base = outlines.drawn; } // the district outlines
            return out;
        },
        // true once a layer's hit geometry is in (clicks and hover test it)
        clickable: function () {
            var out = {};
            state.order.forEach(function (name) { out[name] = !!state.layers[name].hit; });
            return out;
        },
        hitAt: function (x, y) { // what a click at container point [x, y] of the map would open
            if (!layer || !layer._map) { return null; }
            var box = state.map.getContainer().getBoundingClientRect();
            return hitAtContainerPoint(L.point(x, y), box.left + x, box.top + y);
        },
        // the zoom band each layer draws at the map's zoom, and what it holds
        band: function (name) {
            var entry = state.layers[name];
            if (!entry || !entry.meta) { return null; }
            var i = bandIndex(entry, state.map.getZoom());
            return {index: i, parts: entry.meta.bands[i].parts, vertices: entry.meta.bands[i].vertices, loaded: !!entry.bands[i]};
        },
        canvas: function () { return layer && layer._map ? layer._container : null; },
        // true once a zoom's padding strips are drawn too (hazmap.CanvasLayer `viewFirst`)
        settled: function () { return !!layer && !!layer._map && layer.settled(); },
        // the whole canvas drawn again now, at once (the browser tests compare it with the strips')
        redraw: function () { if (layer && layer._map) { layer._drawAll(); } },
        stats: function () { return JSON.parse(JSON.stringify(state.stats)); },
        // a redraw now, its pixels forced out (a 2D canvas rasterises lazily): [ms to draw, ms to raster]
        timedRedraw: function () {
            if (!layer || !layer._map) { return null; }
            var t0 = performance.now();
            layer._draw();
            var t1 = performance.now();
            layer._ctx.getImageData(0, 0, 1, 1);
            return [t1 - t0, performance.now() - t1];
        }
    });
})();
