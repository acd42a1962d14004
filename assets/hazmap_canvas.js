/*
 * The canvas lifecycle shared by hazmap's own canvas layers (assets/hazmap_live.js,
 * hazmap_grid.js, hazmap_static.js, hazmap_vector.js): an L.Renderer, so Leaflet positions
 * the canvas, pads it by `padding` beyond the view and scales it through zoom animations; the
 * subclass sets `options.pane` and `options.className` and implements `_draw(region, fresh)`
 * (all of its drawing, from its own arrays; a `viewFirst` layer also a region of its canvas).
 * `requestDraw()` coalesces redraws into one animation frame. The sprites the live and static
 * layers stamp into an ImageData are in assets/hazmap_canvas_sprites.js (also the static canvas's
 * worker's).
 *
 * Dash loads assets/ in alphabetical order after the component libraries (Leaflet included), so
 * this file runs after Leaflet and before every hazmap_*.js that extends it.
 */
(function () {
    "use strict";

    var hazmap = (window.hazmap = window.hazmap || {});
    if (!window.L) {
        console.error("hazmap: Leaflet (window.L) is not loaded before assets/hazmap_canvas.js");
        return;
    }
    var L = window.L;

    // Every renderer (ours, Leaflet's own canvas and the land's SVG) left where its canvas's
    // content belongs, on whole pixels, once a zoom is over. Leaflet's `_updateTransform`, run by the
    // `zoom` and `viewreset` events after a zoom without animation, places a canvas at
    // -size·(0.5 + padding) from the new centre: with the default padding 0.1 and a map 992 px tall
    // that is -99.2 px, and there the canvas stays (`viewreset` comes after `moveend`). A canvas at a
    // fraction of a pixel is resampled by the compositor every frame (4-5 ms a canvas in the bench's
    // traces, against ~1 ms on whole pixels) and blurred by that fraction. Its content is drawn for
    // its bounds (`_bounds.min`, whole pixels): at scale 1 that is where it goes.
    var updateTransform = L.Renderer.prototype._updateTransform;
    L.Renderer.include({
        _updateTransform: function (center, zoom) {
            updateTransform.call(this, center, zoom);
            if (this._bounds && this._container && this._map.getZoomScale(zoom, this._zoom) === 1) {
                L.DomUtil.setPosition(this._container, this._bounds.min);
            }
        }
    });

    // Lon/lat -> the map's CRS at zoom 0 divided by its scale (x, y in [0, 1)): what the canvas
    // layers store per point and vertex, projected once. For Web Mercator (the map's CRS but with a
    // GCJ-02 basemap) it is Leaflet's own formula written out (SphericalMercator.project, then
    // EPSG3857's transformation; the zoom-0 scale, 256, multiplies and divides exactly), giving the
    // same numbers without the L.LatLng and L.Point Leaflet makes per point: 50,000 points in ~3 ms
    // instead of ~10-12, and the first render projects some 60,000 at 15,000 trucks (issue 16;
    // tests/browser/test_canvas_redraws.py holds it to crs.latLngToPoint). Returns
    // project(lat, lng, out), setting out.x and out.y.
    hazmap.unitProjector = function (crs) {
        if (crs === L.CRS.EPSG3857) {
            var mercator = L.Projection.SphericalMercator, R = mercator.R, max = mercator.MAX_LATITUDE;
            var d = Math.PI / 180, a = 0.5 / (Math.PI * R);
            return function (lat, lng, out) {
                var sin = Math.sin(Math.max(Math.min(max, lat), -max) * d);
                out.x = a * (R * lng * d) + 0.5;
                out.y = -a * ((R * Math.log((1 + sin) / (1 - sin))) / 2) + 0.5;
            };
        }
        var s0 = crs.scale(0);
        return function (lat, lng, out) {
            var p = crs.latLngToPoint(L.latLng(lat, lng), 0);
            out.x = p.x / s0;
            out.y = p.y / s0;
        };
    };

    // The padding strips of every `viewFirst` layer (the static and vector canvases), run together:
    // each idle task draws the next strip of every layer waiting, 4 tasks a zoom instead of 4 per
    // layer, so fewer frames with a changed canvas. With software compositing a commit copies every
    // 2D canvas on the page, changed or not (~2 ms a screen-sized canvas, ~10 ms a commit at the
    // wall, issue 16). The first strips wait until the zoom's own frame and the next are out.
    var pads = [], gate = 0, open = true, idleQueued = false;
    var idle = window.requestIdleCallback || function (f) { return setTimeout(f, 16); };
    function queuePadding(layer, job, strips, covered) {
        pads = pads.filter(function (p) { return p.layer !== layer; });
        pads.push({layer: layer, job: job, strips: strips, covered: covered, i: 0});
        var mine = ++gate;
        open = false;
        var go = function () { if (gate === mine && !open) { open = true; idlePads(); } };
        L.Util.requestAnimFrame(function () { L.Util.requestAnimFrame(go); });
        setTimeout(go, 250); // no frames (a hidden page): the padding all the same
    }
    function idlePads() {
        if (open && !idleQueued && pads.length) { idleQueued = true; idle(drawPads, {timeout: 1000}); }
    }
    function drawPads() {
        idleQueued = false;
        if (!open) { return; } // a newer zoom's frames are still to come
        pads = pads.filter(function (p) { return p.job === p.layer._paddingJob && p.layer._map; });
        pads.forEach(function (p) {
            var s = p.strips[p.i];
            p.layer._drawnAt.bounds = p.covered[p.i];
            if (s.max.x > s.min.x && s.max.y > s.min.y) { p.layer._draw(s, false); }
            p.i += 1;
        });
        pads = pads.filter(function (p) { return p.i < p.strips.length; });
        idlePads();
    }

    hazmap.CanvasLayer = L.Renderer.extend({
        // keepWhileCovered: a layer whose drawing changes only with the view keeps its canvas
        // through a pan that stays within what it drew (same zoom, same pixel origin), and
        // redraws only when the view leaves it; `invalidate()` when its content changes.
        options: {padding: 0.1, className: "hz-canvas", keepWhileCovered: false},

        _initContainer: function () {
            var canvas = (this._container = document.createElement("canvas"));
            canvas.className = this.options.className;
            canvas.style.pointerEvents = "none"; // clicks are hit-tested from arrays, by each layer
            this._ctx = canvas.getContext("2d");
            this._drawnAt = null; // a new canvas holds nothing
        },

        _destroyContainer: function () {
            L.Util.cancelAnimFrame(this._drawRequest);
            this._drawRequest = null;
            this._paddingJob = (this._paddingJob || 0) + 1;
            this._drawnAt = null;
            L.DomUtil.remove(this._container);
            delete this._ctx;
        },

        // After a pan or zoom ends (not during a zoom animation: Leaflet scales the old canvas).
        // A zoom without animation calls this twice (viewreset, then moveend): the second finds
        // the same view drawn and returns. A `viewFirst` layer draws the view at once and the
        // padding around it afterwards, strip by strip in idle time (`_fillPadding`): a zoom
        // waits for 1/2.25 of the canvas, and no strip is a long task.
        _update: function () {
            if (this._map._animatingZoom && this._bounds) { return; }
            if (this.options.keepWhileCovered && this._covers()) { return; }
            L.Renderer.prototype._update.call(this);
            var b = this._bounds, origin = this._map.getPixelOrigin(), at = this._drawnAt;
            if (at && at.zoom === this._zoom && at.origin.equals(origin) && at.canvas.min.equals(b.min) &&
                at.canvas.max.equals(b.max)) { return; }
            var size = b.getSize(), m = window.devicePixelRatio || 1, canvas = this._container;
            L.DomUtil.setPosition(canvas, b.min);
            var width = Math.round(m * size.x), height = Math.round(m * size.y);
            if (canvas.width !== width || canvas.height !== height) { // same size: no new backing store
                canvas.width = width;
                canvas.height = height;
                canvas.style.width = size.x + "px";
                canvas.style.height = size.y + "px";
            }
            this._paddingJob = (this._paddingJob || 0) + 1; // strips of an older view are dropped
            if (!this.options.viewFirst) {
                this._drawnAt = {zoom: this._zoom, origin: origin, bounds: b, canvas: b};
                this._draw();
                return;
            }
            var view = this._viewBounds();
            this._drawnAt = {zoom: this._zoom, origin: origin, bounds: view, canvas: b};
            this._draw(view, true); // true: what lies outside the view is stale, cleared
            this._fillPadding(this._paddingJob);
        },

        // The map's view in layer points (whole pixels), within the canvas.
        _viewBounds: function () {
            var map = this._map, b = this._bounds, size = map.getSize();
            var min = map.containerPointToLayerPoint([0, 0]).floor(), max = min.add(size).add([1, 1]);
            return L.bounds(L.point(Math.max(min.x, b.min.x), Math.max(min.y, b.min.y)),
                L.point(Math.min(max.x, b.max.x), Math.min(max.y, b.max.y)));
        },

        // The padding around the view drawn in four strips, in idle tasks: left and right of the
        // view, then above and below the whole width, so that what is drawn stays one rectangle
        // (`_drawnAt.bounds`, what a pan may keep) after every strip. The strips of every layer
        // run together (`queuePadding`).
        _fillPadding: function (job) {
            var b = this._bounds, v = this._drawnAt.bounds;
            queuePadding(this, job, [
                L.bounds(L.point(b.min.x, v.min.y), L.point(v.min.x, v.max.y)),
                L.bounds(L.point(v.max.x, v.min.y), L.point(b.max.x, v.max.y)),
                L.bounds(b.min, L.point(b.max.x, v.min.y)),
                L.bounds(L.point(b.min.x, v.max.y), b.max)
            ], [
                L.bounds(L.point(b.min.x, v.min.y), v.max),
                L.bounds(L.point(b.min.x, v.min.y), L.point(b.max.x, v.max.y)),
                L.bounds(b.min, L.point(b.max.x, v.max.y)),
                b
            ]);
        },

        // Everything drawn from scratch (content changed): the whole canvas, no strip pending.
        _drawAll: function () {
            this._paddingJob = (this._paddingJob || 0) + 1;
            if (this._drawnAt) { this._drawnAt.bounds = this._drawnAt.canvas; }
            this._draw();
        },

        // What is drawn, in layer points: the canvas, or only part of it while strips are pending.
        _covered: function () { return this._drawnAt ? this._drawnAt.bounds : this._bounds; },

        // Drawn, padding included (no strip pending).
        settled: function () {
            var at = this._drawnAt;
            return !!at && at.bounds.min.equals(at.canvas.min) && at.bounds.max.equals(at.canvas.max);
        },

        _covers: function () {
            var at = this._drawnAt, map = this._map;
            if (!at || at.zoom !== map.getZoom() || !at.origin.equals(map.getPixelOrigin())) { return false; }
            var view = map.getPixelBounds(), origin = at.origin;
            return at.bounds.contains(L.bounds(view.min.subtract(origin), view.max.subtract(origin)));
        },

        invalidate: function () { this._drawnAt = null; },

        requestDraw: function () {
            if (this._map && !this._drawRequest) {
                this._drawRequest = L.Util.requestAnimFrame(function () {
                    this._drawRequest = null;
                    if (this._map) { this._drawAll(); }
                }, this);
            }
        },

        // All of the layer's drawing; `region` (layer points), when given, limits it to that part
        // of the canvas (a `viewFirst` layer's view, then its padding strips); `fresh`: the rest of
        // the canvas is to be cleared (the view), else left as it is (a strip).
        _draw: function (region, fresh) {}
    });

    // --- lines as hairlines --------------------------------------------------------------------------
    // A software canvas (Skia) strokes a line of at most one device pixel as a hairline, its
    // coverage scaled by the width: ~10x faster than a wider line, whose outline it builds and
    // fills (a zoom's 1.3-2.6 px roads and routes were 25-30 ms of raster at the city view). A line
    // `width` px wide is drawn as n hairlines side by side across it, each a lane of width / n
    // thickened by INK (the lanes' antialiasing overlaps, and overlapping ink blends rather than
    // adds): 0.9-1.03 of the line's ink, on the line's pixels (tests/browser/test_canvas_redraws.py).
    // A lane stays just under one device pixel (0.999: exactly 1 is not a hairline to Skia).
    // Returns the lanes' width and their offsets across the line (px; [0]: the line itself).
    var INK = 1.4;
    hazmap.hairlines = function (width, m) {
        var device = width * m, most = 0.999 / m;
        if (device <= 1) { return {width: Math.min(width, most), offsets: [0]}; }
        var n = Math.ceil(device * INK), lane = width / n, offsets = [];
        for (var i = 0; i < n; i++) { offsets.push(-width / 2 + lane * (i + 0.5)); }
        return {width: Math.min(lane * INK, most), offsets: offsets};
    };

    // The line through the first `n` points of xs, ys added to ctx's path once per offset in
    // `offsets`, moved that far (px) along its normal at each vertex (the mean of its segments'
    // unit normals there, computed once for all offsets: no mitre, a corner's lanes come a little
    // closer at a sharp turn).
    var normals = {x: new Float64Array(1024), y: new Float64Array(1024)};
    hazmap.offsetLines = function (ctx, xs, ys, n, offsets, closed) {
        if (n < 2) { return; }
        if (normals.x.length < n) { normals = {x: new Float64Array(2 * n), y: new Float64Array(2 * n)}; }
        var nx = normals.x, ny = normals.y, px = 0, py = 0, i; // px, py: the previous segment's unit normal
        if (closed) {
            var ex = xs[0] - xs[n - 1], ey = ys[0] - ys[n - 1], el = Math.sqrt(ex * ex + ey * ey);
            if (el > 0) { px = -ey / el; py = ex / el; }
        }
        for (i = 0; i < n; i++) {
            var qx = 0, qy = 0; // the next segment's unit normal
            if (i < n - 1 || closed) {
                var j = i < n - 1 ? i + 1 : 0, dx = xs[j] - xs[i], dy = ys[j] - ys[i], len = Math.sqrt(dx * dx + dy * dy);
                if (len > 0) { qx = -dy / len; qy = dx / len; }
            }
            var mx = px + qx, my = py + qy, ml = Math.sqrt(mx * mx + my * my);
            if (ml > 1e-9) { mx /= ml; my /= ml; } else { mx = qx || px; my = qy || py; }
            nx[i] = mx; ny[i] = my;
            px = qx; py = qy;
        }
        for (var k = 0; k < offsets.length; k++) {
            var d = offsets[k];
            ctx.moveTo(xs[0] + d * nx[0], ys[0] + d * ny[0]);
            for (i = 1; i < n; i++) { ctx.lineTo(xs[i] + d * nx[i], ys[i] + d * ny[i]); }
            if (closed) { ctx.closePath(); }
        }
    };
})();
