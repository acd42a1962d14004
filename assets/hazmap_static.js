/*
 * The static point layers of hazmap's wall (regulated entities, monitoring points, sensitive
 * sites, registered vehicles, and over them the few stations, parking lots, service areas, repair
 * shops and hazard sources) on one canvas of their own, drawn from typed arrays (DESIGN.md §7:
 * thousands of Leaflet circle markers cost 50-200 ms on every pan or zoom; a canvas fed from
 * arrays, a few; and the few left on Leaflet's own canvas cost that canvas, a screen-sized layer
 * composited on every frame).
 *
 * The server (layers/static_canvas.py) sends each layer once, when its overlay is first switched
 * on, from a URL that carries the world's fingerprint (cached for good): ids, lon/lat quantised
 * to uint16 over the live layer's box, a class byte; areas also as simplified outline rings,
 * drawn from `outlineMinZoom` on. Positions are projected once (Web Mercator at zoom 0); a pan
 * or zoom redraws from those. Each point is a sprite (one per class and scale) whose pixels are
 * stamped into one ImageData, as the live layer does.
 *
 * The canvas lies in a pane just under Leaflet's overlay pane (which now holds only what a panel
 * draws: a truck's trail, an incident's evidence). Below the symbols' zoom the counted layers
 * (`counted`: entities, monitoring points, sensitive sites, vehicles) give way to the counts per
 * cell (assets/hazmap_counts.js); the others show at every zoom. It takes no pointer events: a
 * capture-phase click listener on the document (so it runs before the map container's own: the
 * live canvas's and the grid's) hit-tests it, unless a live truck or point or a point of Leaflet's
 * canvas (a panel's marks) lies there, and opens the details panel through the `hz-live-click`
 * store. The overlays of the layers control show and hide each layer (clientside callback
 * `hazmap_static.staticSync`).
 *
 * Each layer marks a performance entry `hazmap:layer:<name>` when first painted, and
 * window.hazmapStatic reports how many features each layer drew in the last paint.
 */
(function () {
    "use strict";

    var hazmap = (window.hazmap = window.hazmap || {});
    if (!window.L || !hazmap.CanvasLayer) {
        console.error("hazmap: Leaflet and assets/hazmap_canvas.js are not loaded before assets/hazmap_static.js");
        return;
    }
    var L = window.L;
    var PANE = "hzstatic";
    var PANE_Z = 395; // just under the overlay pane (400): a panel's marks stay on top
    var HIT_SLACK_PX = 3;
    var STATS_KEPT = 120;

    function screenScale() { // as assets/hazmap_map.js: sizes are set for a 1920x1080 wall
        return Math.max(1, Math.min(window.innerWidth / 1920, window.innerHeight / 1080));
    }

    function bytesOf(b64) {
        var bin = atob(b64), n = bin.length, out = new Uint8Array(n);
        for (var i = 0; i < n; i++) { out[i] = bin.charCodeAt(i); }
        return out;
    }
    function u16(b64) { var b = bytesOf(b64); return new Uint16Array(b.buffer, 0, b.length >> 1); }
    function u32(b64) { var b = bytesOf(b64); return new Uint32Array(b.buffer, 0, b.length >> 2); }

    var state = {
        config: null, map: null, started: false,
        layers: {}, // name -> {name, title, url, styles, counted, wanted, requested, data, drawn, painted, xs, ys}
        order: [],
        // paintMs: the page's own time a redraw; workerMs: the worker's stamping of it; waitMs: the page's
        // wait for the worker at the put of a move's redraw (0: done by then; a strip's put waits for
        // the whole of its stamping, as when the page stamped it)
        stats: {paintMs: [], decodeMs: [], workerMs: [], waitMs: [], worker: false}
    };

    function keep(list, value) {
        list.push(value);
        if (list.length > STATS_KEPT) { list.shift(); }
    }

    // Quantised lon/lat -> Web Mercator at zoom 0 divided by its scale: x, y in [0, 1).
    function projectAll(qx, qy, bbox, q) {
        var project = hazmap.unitProjector(state.map.options.crs), p = {x: 0, y: 0}, n = qx.length;
        var nx = new Float64Array(n), ny = new Float64Array(n);
        var dx = (bbox[2] - bbox[0]) / q, dy = (bbox[3] - bbox[1]) / q;
        for (var i = 0; i < n; i++) {
            project(bbox[1] + qy[i] * dy, bbox[0] + qx[i] * dx, p);
            nx[i] = p.x;
            ny[i] = p.y;
        }
        return [nx, ny];
    }

    function decode(entry, payload) {
        var t0 = performance.now();
        var xy = projectAll(u16(payload.lon), u16(payload.lat), payload.bbox, payload.quant_max);
        var o = payload.outlines;
        var oxy = projectAll(u16(o.lon), u16(o.lat), payload.bbox, payload.quant_max);
        var fi = payload.n > 65536 ? u32(o.ring_feature) : u16(o.ring_feature);
        entry.data = {
            n: payload.n, ids: payload.ids, classes: payload.classes, cls: bytesOf(payload.cls),
            nx: xy[0], ny: xy[1],
            rings: o.rings, ringFeature: fi, ringStart: u32(o.ring_start), rx: oxy[0], ry: oxy[1]
        };
        entry.slot = null; // id -> index, built on first search
        entry.xs = pointArray(payload.n);
        entry.ys = pointArray(payload.n);
        sendLayer(entry);
        keep(state.stats.decodeMs, performance.now() - t0);
    }

    // Whether a layer's symbols show at `zoom`: wanted, loaded, and (issue 15) a counted layer only
    // from the symbols' zoom on; below it its points show as counts per cell (assets/hazmap_counts.js).
    function shownAt(entry, zoom) {
        return entry.wanted && !!entry.data && !(entry.counted && hazmap.countsHide && hazmap.countsHide(zoom));
    }

    // --- sprites: each class's dot drawn once by the canvas, then stamped as pixels -------------
    // Stamping pixels into one ImageData is several times cheaper than drawImage or canvas paths per
    // feature on a software canvas (17,000 points: ~160 ms with drawImage; the live layer found 4x).
    // The glyph and the stamping are assets/hazmap_canvas_sprites.js's, which the worker runs too.
    var sprites = {};
    var scratch = document.createElement("canvas").getContext("2d", {willReadFrequently: true});

    function spriteOf(style, key, scale) {
        var id = key + "@" + scale;
        if (!sprites[id]) {
            var glyph = hazmap.pointGlyph(scratch, style, scale);
            sprites[id] = hazmap.spriteFromImage(glyph.data, glyph.size, glyph.reach);
        }
        return sprites[id];
    }

    function stylesOf(entry) {
        return entry.data.classes.map(function (key) { return entry.styles[key] || entry.styles.other; });
    }

    // --- the worker (assets/hazmap_static_worker.js) -------------------------------------------
    // Where the page is cross-origin isolated (app/webapp.py sends the headers; a secure context is
    // needed too: https, or the machine itself), the worker takes part in the stamping: a redraw is
    // cut into bands of rows which the worker and the page take one at a time (the page once it
    // comes to put the pixels). A zoom's redraw is posted as the zoom's first drawing (the map's
    // first `moveend` listener, set in start) and put at the end of the zoom's task (a microtask),
    // so the worker draws while the live and vector canvases do and the page finds little or nothing
    // left. Not isolated, one core, the worker not up yet or failed: the page stamps alone (the same code).
    var WORKER_WAIT_MS = 2000; // a worker that takes longer is given up: the page stamps from then on
    var BANDS = 8, BAND_ROWS = 64; // a job's bands: each costs a pass over every feature
    // off: the page stamps though the worker is up (a browser test compares the two)
    var worker = {thread: null, ready: false, off: false, sprites: {}};

    function workerScriptUrl() { // beside this script, with its prefix and Dash's cache-busting stamp
        var own = document.querySelector('script[src*="hazmap_static.js"]');
        return own ? own.src.replace("hazmap_static.js", "hazmap_static_worker.js") : null;
    }

    function startWorker() {
        var url = workerScriptUrl();
        // one core: the worker's stamping would take turns with the page's other drawing (and its wait)
        if (!window.crossOriginIsolated || typeof SharedArrayBuffer === "undefined" || !window.Worker || !url ||
            (navigator.hardwareConcurrency || 1) < 2) { return; }
        try {
            worker.thread = new Worker(url);
        } catch (error) {
            console.warn("hazmap static worker not started (" + error.message + "): the page stamps");
            return;
        }
        worker.thread.onmessage = function (event) {
            if (event.data && event.data.type === "ready") { worker.ready = true; }
        };
        worker.thread.onerror = function (event) {
            console.warn("hazmap static worker failed (" + (event.message || "error") + "): the page stamps");
            stopWorker();
        };
    }

    function stopWorker() {
        if (worker.thread) { worker.thread.terminate(); }
        worker.thread = null;
        worker.ready = false;
    }

    // A layer's layer points, shared with the worker (which reads them) when there is one.
    function pointArray(n) {
        return new Float32Array(worker.thread ? new SharedArrayBuffer(4 * n) : n);
    }

    function sendLayer(entry) {
        if (!worker.thread) { return; }
        var d = entry.data;
        worker.thread.postMessage({type: "layer", name: entry.name, n: d.n, nx: d.nx, ny: d.ny, cls: d.cls,
            xs: entry.xs, ys: entry.ys});
    }

    // --- the canvas ------------------------------------------------------------------------------
    var StaticCanvas = hazmap.CanvasLayer.extend({ // the lifecycle: assets/hazmap_canvas.js
        // padded and kept through pans within it, as assets/hazmap_vector.js; after a zoom the view
        // is drawn first and the padding in idle strips (hazmap.CanvasLayer `viewFirst`)
        options: {pane: PANE, className: "hz-static-canvas", padding: 0.25, keepWhileCovered: true, viewFirst: true},

        // After a pan or zoom (hazmap.CanvasLayer `_update`). `early`: from the map's first listener
        // of the move's end (start): the worker's job is posted and its pixels put at the end of the
        // task (a microtask), after the other canvases have drawn meanwhile.
        _update: function (early) {
            this._putLater = early === true; // _draw puts later only what it gave the worker
            try {
                hazmap.CanvasLayer.prototype._update.call(this);
            } finally {
                this._putLater = false;
            }
        },

        // The whole canvas, or `region` of it (layer points; `fresh`: the rest cleared, see
        // assets/hazmap_canvas.js): the points stamped into one ImageData (by the worker, when there
        // is one), put, outlines over it.
        _draw: function (region, fresh) {
            if (!this._ctx) { return; }
            this._finishJob(); // one job at a time: a pending one is put first
            var t0 = performance.now();
            var b = this._bounds, m = window.devicePixelRatio || 1, ctx = this._ctx;
            var origin = this._map.getPixelOrigin();
            var view = {
                scale: this._map.options.crs.scale(this._zoom), ox: origin.x, oy: origin.y, s: screenScale(), m: m,
                minX: b.min.x, minY: b.min.y, maxX: b.max.x, maxY: b.max.y, zoom: this._zoom
            };
            var canvas = this._container, W = canvas.width, H = canvas.height;
            if (!this._target || this._target.width !== W || this._target.height !== H) {
                this._target = hazmap.stampTarget(ctx.createImageData(W, H));
                this._shared = null;
            }
            // the region in canvas pixels: [x0, x1) x [y0, y1)
            var x0 = 0, y0 = 0, x1 = W, y1 = H;
            if (region) {
                x0 = Math.max(0, Math.floor((region.min.x - b.min.x) * m));
                y0 = Math.max(0, Math.floor((region.min.y - b.min.y) * m));
                x1 = Math.min(W, Math.ceil((region.max.x - b.min.x) * m));
                y1 = Math.min(H, Math.ceil((region.max.y - b.min.y) * m));
            }
            var c = this._covered(), s = view.s * m;
            var job = {t0: t0, t1: t0, spent: 0, view: view, region: region, fresh: fresh, clip: [x0, y0, x1, y1]};
            var shown = state.order.map(function (name) { return state.layers[name]; }).filter(function (entry) {
                var on = shownAt(entry, this._map.getZoom());
                if (!on) { entry.drawn = 0; }
                return on;
            }, this);
            // the layer points (after a move: a strip keeps the view's) and the drawn counts, here
            var covered = {minX: c.min.x, minY: c.min.y, maxX: c.max.x, maxY: c.max.y};
            job.layers = shown.map(function (entry) {
                if (!region || fresh) { hazmap.layerPoints(entry.data, entry.xs, entry.ys, view); }
                entry.drawn = hazmap.countDrawn(entry.xs, entry.ys, view, covered);
                return {entry: entry, d: entry.data, xs: entry.xs, ys: entry.ys, table: stylesOf(entry).map(
                    function (style, k) { return spriteOf(style, entry.name + ":" + entry.data.classes[k], s); })};
            });
            if (worker.ready && !worker.off && job.layers.length) {
                this._post(job);
                job.spent = performance.now() - t0; // the page's own time: before the put, and the put
                if (this._putLater) {
                    var self = this;
                    job.later = true;
                    Promise.resolve().then(function () { self._finishJob(); });
                    return;
                }
                this._finishJob();
                return;
            }
            this._stampHere(job, this._target);
            this._put(job);
        },

        // The job's region stamped by the page alone, into `target`, as one band.
        _stampHere: function (job, target) {
            hazmap.stampBand(job.layers, job.view, job.clip, target);
        },

        // The job to the worker, in bands of the region (at most BANDS, none under BAND_ROWS): its
        // pixels are those of a SharedArrayBuffer as large as the canvas.
        _post: function (job) {
            var W = this._target.width, H = this._target.height, scale = job.view.s * job.view.m;
            if (!this._shared) {
                var buffer = new SharedArrayBuffer(W * H * 4);
                this._shared = {buffer: buffer, target: hazmap.stampTarget({width: W, height: H,
                    data: new Uint8ClampedArray(buffer)})};
            }
            job.bands = Math.max(1, Math.min(BANDS, Math.floor((job.clip[3] - job.clip[1]) / BAND_ROWS)));
            job.ctrl = new Int32Array(new SharedArrayBuffer(16)); // next band, bands done, failed, worker µs
            var fresh = {}; // the sprites the worker has not had yet
            var layers = job.layers.map(function (layer) {
                var entry = layer.entry;
                return {name: entry.name, sprites: entry.data.classes.map(function (key, k) {
                    var id = entry.name + ":" + key + "@" + scale;
                    if (!worker.sprites[id]) { fresh[id] = worker.sprites[id] = layer.table[k]; }
                    return id;
                })};
            });
            worker.thread.postMessage({type: "draw", view: job.view, clip: job.clip, bands: job.bands,
                width: W, height: H, pixels: this._shared.buffer, ctrl: job.ctrl, layers: layers, newSprites: fresh});
            this._job = job;
        },

        // The posted job's pixels put: the bands the worker has not taken drawn here, then a wait
        // for those it is drawing (a spin on the shared count: the page's main thread may not block
        // in Atomics.wait). A band the worker failed, or a wait over WORKER_WAIT_MS, and the worker
        // is given up: the page draws the job itself, into its own pixels.
        _finishJob: function () {
            var job = this._job;
            if (!job) { return; }
            this._job = null;
            // every band drawn before anything else: the worker may not still be writing the shared
            // pixels when the next job starts (also when the layer left the map meanwhile)
            var ctrl = job.ctrl, layers = job.layers, view = job.view, target = this._shared.target;
            job.t1 = performance.now();
            hazmap.takeBands(ctrl, job.bands, function (k) {
                hazmap.stampBand(layers, view, hazmap.band(job.clip, k, job.bands), target);
            });
            var mine = performance.now(), give = mine + WORKER_WAIT_MS;
            while (Atomics.load(ctrl, 1) < job.bands && performance.now() < give) { /* spin */ }
            if (job.later) { keep(state.stats.waitMs, performance.now() - mine); }
            if (Atomics.load(ctrl, 1) < job.bands || Atomics.load(ctrl, 2)) {
                console.warn("hazmap static worker " + (Atomics.load(ctrl, 2) ? "failed" : "did not answer") +
                    ": the page stamps");
                stopWorker();
                if (this._map && this._ctx) {
                    this._stampHere(job, this._target);
                    this._put(job);
                }
                return;
            }
            if (!this._map || !this._ctx) { return; }
            job.byWorker = Atomics.load(ctrl, 3) > 0;
            keep(state.stats.workerMs, Atomics.load(ctrl, 3) / 1000);
            var from = target.pixels, to = this._target.pixels, W = this._target.width, clip = job.clip;
            if (!job.region) {
                to.set(from);
            } else {
                for (var row = clip[1]; row < clip[3]; row++) {
                    to.set(from.subarray(row * W + clip[0], row * W + clip[2]), row * W + clip[0]);
                }
            }
            this._put(job);
        },

        // The stamped pixels of the job's region put, the areas' outlines over them.
        _put: function (job) {
            var ctx = this._ctx, clip = job.clip, W = this._target.width, H = this._target.height;
            ctx.setTransform(1, 0, 0, 1, 0, 0);
            if (job.region && job.fresh) { ctx.clearRect(0, 0, W, H); }
            ctx.putImageData(this._target.image, 0, 0, clip[0], clip[1], clip[2] - clip[0], clip[3] - clip[1]);
            // the areas' outlines over the stamped points (putImageData replaces, it does not blend)
            job.layers.forEach(function (layer) {
                var entry = layer.entry;
                if (entry.data.rings && job.view.zoom >= state.config.outlineMinZoom) { this._outlines(entry, job.view, clip); }
                if (!entry.painted) {
                    entry.painted = true;
                    performance.mark("hazmap:layer:" + entry.name);
                }
            }, this);
            if (job.layers.length) { keep(state.stats.paintMs, job.spent + performance.now() - job.t1); }
            state.stats.worker = !!job.byWorker; // whether the worker drew any of the last paint's points
        },

        // Area outlines in their class colour, one path per class, within the clip rectangle.
        _outlines: function (entry, view, clip) {
            var d = entry.data, ctx = this._ctx, m = view.m;
            ctx.save();
            ctx.beginPath();
            ctx.rect(clip[0], clip[1], clip[2] - clip[0], clip[3] - clip[1]);
            ctx.clip();
            ctx.setTransform(m, 0, 0, m, -view.minX * m, -view.minY * m);
            ctx.lineJoin = "round";
            for (var c = 0; c < d.classes.length; c++) {
                var style = entry.styles[d.classes[c]] || entry.styles.other, any = false;
                ctx.beginPath();
                for (var r = 0; r < d.rings; r++) {
                    if (d.cls[d.ringFeature[r]] !== c) { continue; }
                    var a = d.ringStart[r], z = d.ringStart[r + 1];
                    for (var v = a; v < z; v++) {
                        var x = d.rx[v] * view.scale - view.ox, y = d.ry[v] * view.scale - view.oy;
                        if (v === a) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
                    }
                    any = true;
                }
                if (!any) { continue; }
                ctx.globalAlpha = 0.9;
                ctx.strokeStyle = style.color;
                ctx.lineWidth = Math.max(1, style.weight) * 1.5 * view.s;
                ctx.stroke();
                ctx.globalAlpha = Math.min(0.25, style.fillOpacity);
                ctx.fillStyle = style.color;
                ctx.fill("evenodd");
            }
            ctx.restore();
        },

        // The topmost feature drawn within reach of a layer point: {layer, id} or null.
        hitTest: function (x, y) {
            var s = screenScale();
            for (var k = state.order.length - 1; k >= 0; k--) {
                var entry = state.layers[state.order[k]];
                if (!shownAt(entry, this._map.getZoom())) { continue; }
                var d = entry.data, xs = entry.xs, ys = entry.ys, best = -1, bestD = Infinity;
                for (var i = 0; i < d.n; i++) {
                    if (xs[i] !== xs[i]) { continue; }
                    var style = entry.styles[d.classes[d.cls[i]]] || entry.styles.other;
                    var reach = (style.radius + style.weight) * s + HIT_SLACK_PX;
                    var dx = xs[i] - x, dy = ys[i] - y, dd = dx * dx + dy * dy;
                    if (dd <= reach * reach && dd < bestD) { best = i; bestD = dd; }
                }
                if (best >= 0) { return {layer: entry.name, id: d.ids[best]}; }
            }
            return null;
        }
    });

    // --- wiring ------------------------------------------------------------------------------------
    var layer = null;

    function whenMap(callback) {
        if (hazmap.leafletMap) { callback(hazmap.leafletMap); return; }
        setTimeout(function () { whenMap(callback); }, 50);
    }

    // A point of Leaflet's own canvas (a panel's marks: drawn above this canvas) that a click at
    // this layer point would reach.
    function pointFeatureAt(point) {
        var renderer = state.map._renderer;
        if (!renderer || !renderer._drawFirst) { return false; }
        for (var order = renderer._drawFirst; order; order = order.next) {
            var l = order.layer;
            if (l instanceof L.CircleMarker && l.options.interactive && l._containsPoint(point)) { return true; }
        }
        return false;
    }

    function hitAtEvent(event) {
        var map = state.map;
        if (!layer || !map || !layer._map || !map.getPane("mapPane").contains(event.target)) { return null; }
        var cp = map.mouseEventToContainerPoint(event);
        if (window.hazmapLive && window.hazmapLive.hitAt && window.hazmapLive.hitAt(cp.x, cp.y)) { return null; }
        var point = map.containerPointToLayerPoint(cp);
        var hit = layer.hitTest(point.x, point.y);
        return hit && !pointFeatureAt(point) ? hit : null;
    }

    function onCapturedClick(event) {
        if (state.map && state.map.dragging && state.map.dragging.moved()) { return; } // the end of a drag
        var hit = hitAtEvent(event);
        if (!hit) { return; }
        event.stopPropagation(); // neither the map's canvas nor the grid may also take this click
        window.dash_clientside.set_props("hz-live-click", {data: {layer: hit.layer, id: hit.id, at: Date.now()}});
    }

    var hoverRequest = null;
    function onMouseMove(event) {
        if (!layer || hoverRequest) { return; }
        hoverRequest = L.Util.requestAnimFrame(function () {
            hoverRequest = null;
            if (state.map) { state.map.getContainer().classList.toggle("hz-static-hover", !!hitAtEvent(event)); }
        });
    }

    function fetchLayer(entry) {
        entry.requested = true;
        // the page's head may have started it (assets/hazmap_preload.js): taken once
        ((window.hazmapPreload && window.hazmapPreload.take(entry.url)) || fetch(entry.url))
            .then(function (response) {
                if (!response.ok) { throw new Error(response.status + " " + entry.url); }
                return response.json();
            })
            .then(function (payload) {
                decode(entry, payload);
                sync(); // on the map with its first data, drawn
            })
            .catch(function (error) {
                entry.requested = false; // the next switch-on tries again
                console.warn("hazmap static layer " + entry.name + ": " + error.message);
            });
    }

    function start(config) {
        if (state.started) { return; }
        state.started = true;
        state.config = config;
        startWorker();
        config.layers.forEach(function (c) {
            state.order.push(c.name);
            state.layers[c.name] = {
                name: c.name, title: c.title, url: c.url, styles: c.styles, counted: c.counted !== false,
                wanted: false, requested: false,
                data: null, drawn: 0, painted: false, xs: new Float32Array(0), ys: new Float32Array(0)
            };
        });
        whenMap(function (map) {
            state.map = map;
            if (!map.getPane(PANE)) { map.createPane(PANE).style.zIndex = PANE_Z; }
            // the map's first listener of a move's end (the other canvases join the map later): this
            // canvas's job goes to the worker before they draw (StaticCanvas._update)
            map.on("moveend", function () { if (layer && layer._map) { layer._update(true); } });
            document.addEventListener("click", onCapturedClick, true);
            map.getContainer().addEventListener("mousemove", onMouseMove, true);
            layer = new StaticCanvas();
            sync();
        });
    }

    function sync() {
        if (!layer || !state.map) { return; }
        var any = false, loaded = false, pending = false;
        state.order.forEach(function (name) {
            var entry = state.layers[name];
            if (entry.wanted && !entry.requested) { fetchLayer(entry); }
            any = any || entry.wanted;
            loaded = loaded || (entry.wanted && !!entry.data);
            pending = pending || (entry.wanted && entry.requested && !entry.data);
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

    // Clientside callback (app/webapp.py): the layers control's shown overlays -> the canvas layers.
    function staticSync(shownTitles, config) {
        if (!config) { return; }
        start(config);
        var shown = shownTitles || [];
        state.order.forEach(function (name) {
            var entry = state.layers[name];
            entry.wanted = shown.indexOf(entry.title) >= 0;
        });
        sync();
    }

    window.dash_clientside = Object.assign({}, window.dash_clientside, {hazmap_static: {staticSync: staticSync}});

    // --- the read-only handle (browser tests, debugging at the wall) --------------------------------
    function slotOf(entry, id) {
        if (!entry.slot) {
            entry.slot = {};
            entry.data.ids.forEach(function (fid, i) { entry.slot[fid] = i; });
        }
        return entry.slot[id];
    }

    window.hazmapStatic = Object.freeze({
        // layer -> features drawn in the last paint (0 when hidden or not loaded yet)
        drawn: function () {
            var out = {};
            state.order.forEach(function (name) { out[name] = state.layers[name].drawn; });
            return out;
        },
        loaded: function () {
            var out = {};
            state.order.forEach(function (name) { out[name] = !!state.layers[name].data; });
            return out;
        },
        // [lon, lat] of a feature's drawn point (quantised), or null
        lonLatOf: function (name, id) {
            var entry = state.layers[name];
            if (!entry || !entry.data) { return null; }
            var i = slotOf(entry, id);
            if (i === undefined) { return null; }
            var p = L.point(entry.data.nx[i] * state.map.options.crs.scale(0), entry.data.ny[i] *
                state.map.options.crs.scale(0));
            var ll = state.map.options.crs.pointToLatLng(p, 0);
            return [ll.lng, ll.lat];
        },
        hitAt: function (x, y) { // what a click at container point [x, y] of the map would open
            if (!layer || !layer._map) { return null; }
            var p = state.map.containerPointToLayerPoint(L.point(x, y));
            return layer.hitTest(p.x, p.y);
        },
        canvas: function () { return layer && layer._map ? layer._container : null; },
        // true once a zoom's padding strips are drawn too (hazmap.CanvasLayer `viewFirst`)
        settled: function () { return !!layer && !!layer._map && layer.settled(); },
        // the whole canvas drawn again now, at once (the browser tests compare it with the strips')
        redraw: function () { if (layer && layer._map) { layer._drawAll(); } },
        stats: function () { return JSON.parse(JSON.stringify(state.stats)); },
        // false: the page stamps the points itself though the worker is up; true: the worker again
        stampOnWorker: function (on) { worker.off = !on; }
    });
})();
