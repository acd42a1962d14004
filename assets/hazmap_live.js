/*
 * The live layer of hazmap's wall: trucks where the feed says they are, monitoring points
 * coloured by their status, drawn from typed arrays on one canvas of their own (DESIGN.md §7:
 * replacing a GeoJSON's data costs 180-770 ms a tick, a canvas fed from typed arrays tens).
 *
 * The server (layers/live.py) sends the vehicle and point lists once (static.json), then
 * every `pollMs` what changed since the last version applied (state?since=N): per truck its
 * index, lon/lat quantised to uint16 over a box, a state byte and a heading byte; per point
 * its index and a status byte; base64, little-endian. Positions are projected once when they
 * change (to Web Mercator at zoom 0); a pan or zoom redraws from those without fetching.
 *
 * The canvas is an L.Renderer (so Leaflet positions it, pads it and scales it through zoom
 * animations like its own canvas), in a pane above the overlays, and takes no pointer
 * events: clicks reach the map's own canvas, except where a live truck or point is drawn
 * (a capture-phase listener hit-tests first and opens the details panel through the
 * `hz-live-click` store). The two live overlays of the layers control show and hide it
 * (the clientside callback `hazmap_live.liveSync`). Colours and sizes come from layers/style.py.
 *
 * The selected truck's trail. A truck opened in the details panel (a click on the live canvas
 * or on the vehicles layer: the clientside callback `hazmap_live.trailSync`) gets its pings of
 * the last 2 h from `trailUrl + id` (same uint16 box, seconds, speed bytes, stops), fetched
 * again after a poll whose frame moved that truck (or a full frame): it is the only change
 * that adds to the trail, and LiveState.trail scans every batch of the last 2 h, so the server
 * is asked every ~30 s, not every 2 s. The tail that ages out meanwhile is cut here, against
 * the feed's clock. Drawn on this canvas *under* the trucks and points ("destination-over"
 * after the stamped image): a dark casing, the line in one bright colour whose older parts
 * fade in five age bands, hollow dots at stops, a ring round the truck. Anything else opened,
 * or the panel closed, clears it.
 *
 * window.hazmapLive: a read-only handle for the browser tests and for debugging at the wall.
 */
(function () {
    "use strict";

    var hazmap = (window.hazmap = window.hazmap || {});
    if (!window.L || !hazmap.CanvasLayer) {
        console.error("hazmap: Leaflet and assets/hazmap_canvas.js are not loaded before assets/hazmap_live.js");
        return;
    }
    var L = window.L;
    var PANE = "hzlive";
    var PANE_Z = 450; // above the overlay canvas (400), below the district names and popups
    var ABSENT = 255; // state of a truck not drawn (no position, or off the map: the server's OFF_MAP)
    var HIT_SLACK_PX = 3;
    var STATS_KEPT = 120;
    var TRAIL_BANDS = 5; // age bands of the trail: full colour now, TRAIL_OLDEST_ALPHA at trail_s
    var TRAIL_OLDEST_ALPHA = 0.25;
    var CHUNK_MS = 8; // a poll's redraw: stamping per task (LiveCanvas.requestDraw)
    var chunkMs = CHUNK_MS; // the browser tests set it lower (handle.setChunkMs)
    var TRAIL_WIDTH_PX = 3, TRAIL_CASING_PX = 2, TRAIL_STOP_PX = 3.5, TRAIL_RING_PX = 11;

    function screenScale() { // as assets/hazmap_map.js: sizes are set for a 1920x1080 wall
        return Math.max(1, Math.min(window.innerWidth / 1920, window.innerHeight / 1080));
    }

    // --- decoding ----------------------------------------------------------------------------
    function bytesOf(b64) {
        var bin = atob(b64);
        var n = bin.length;
        var out = new Uint8Array(n);
        for (var i = 0; i < n; i++) { out[i] = bin.charCodeAt(i); }
        return out;
    }

    function u16(b64) { var b = bytesOf(b64); return new Uint16Array(b.buffer, 0, b.length >> 1); }
    function u32(b64) { var b = bytesOf(b64); return new Uint32Array(b.buffer, 0, b.length >> 2); }
    function indexArray(b64, bytes) { return bytes === 4 ? u32(b64) : u16(b64); }

    // --- the feed: what the screen knows, per vehicle and point slot ---------------------------
    var feed = {
        config: null, stat: null, map: null,
        ready: false, // the first poll has answered (or failed): the canvas may join the map
        version: 0, newestMs: null, staleAfterS: Infinity, polls: 0, failures: 0,
        vehicleSlot: {}, pointSlot: {},
        truckState: new Uint8Array(0), truckHeading: new Uint8Array(0),
        truckQx: new Uint16Array(0), truckQy: new Uint16Array(0),
        truckNx: new Float64Array(0), truckNy: new Float64Array(0),
        pointStatus: new Uint8Array(0), pointNx: new Float64Array(0), pointNy: new Float64Array(0),
        // paintMs: a redraw from its start to its image put (a poll's: across its tasks); chunkMs:
        // the longest task of each, tasks: how many (0: drawn at once, after a pan or zoom)
        stats: {paintMs: [], chunkMs: [], tasks: [], decodeMs: [], payloadChars: [], changedTrucks: [], trailMs: [],
            trailDecodeMs: [], trailChars: []}
    };

    // The selected truck's trail: its pings projected like the trucks, their times, the seconds
    // between them (a gap longer than the stale time is not drawn as a line) and the pings where
    // stops begin. `wanted`: the newest frame version that moved the truck (fetch until reached).
    var trail = {
        id: null, slot: -1, version: 0, wanted: 0, loaded: false, pending: null, failures: 0, n: 0, drawn: 0,
        trailS: 7200,
        nx: new Float64Array(0), ny: new Float64Array(0), ms: new Float64Array(0), gapS: new Uint32Array(0),
        qx: new Uint16Array(0), qy: new Uint16Array(0), stops: new Uint32Array(0),
        x: new Float64Array(0), y: new Float64Array(0)
    };

    function keep(list, value) {
        list.push(value);
        if (list.length > STATS_KEPT) { list.shift(); }
    }

    // Web Mercator (the map's CRS) at zoom 0, divided by its scale: x, y in [0, 1).
    function projector() {
        var unit = hazmap.unitProjector(feed.map.options.crs), p = {x: 0, y: 0};
        var bbox = feed.stat.bbox, q = feed.stat.quant_max;
        var dx = (bbox[2] - bbox[0]) / q, dy = (bbox[3] - bbox[1]) / q;
        return function (qx, qy, out, k) {
            unit(bbox[1] + qy * dy, bbox[0] + qx * dx, p);
            out[0][k] = p.x;
            out[1][k] = p.y;
        };
    }

    function initStatic(stat) {
        feed.stat = stat;
        feed.vehicleSlot = {};
        feed.pointSlot = {};
        var nv = stat.vehicles.n, np = stat.points.n;
        stat.vehicles.ids.forEach(function (id, i) { feed.vehicleSlot[id] = i; });
        stat.points.ids.forEach(function (id, i) { feed.pointSlot[id] = i; });
        feed.truckState = new Uint8Array(nv).fill(ABSENT);
        feed.truckHeading = new Uint8Array(nv).fill(stat.heading_unknown);
        feed.truckQx = new Uint16Array(nv);
        feed.truckQy = new Uint16Array(nv);
        feed.truckNx = new Float64Array(nv);
        feed.truckNy = new Float64Array(nv);
        feed.pointStatus = new Uint8Array(np);
        feed.pointNx = new Float64Array(np);
        feed.pointNy = new Float64Array(np);
        var project = projector(), qx = u16(stat.points.lon), qy = u16(stat.points.lat);
        var out = [feed.pointNx, feed.pointNy];
        for (var i = 0; i < np; i++) { project(qx[i], qy[i], out, i); }
    }

    function applyFrame(frame) {
        var t0 = performance.now();
        if (frame.full) {
            feed.truckState.fill(ABSENT);
            feed.pointStatus.fill(0);
            trail.wanted = frame.version; // the feed (re)started: whatever the screen held is gone
        }
        var t = frame.trucks, project = projector(), out = [feed.truckNx, feed.truckNy];
        if (t.n) {
            var idx = indexArray(t.idx, feed.stat.vehicles.index_bytes), qx = u16(t.lon), qy = u16(t.lat);
            var state = bytesOf(t.state), heading = bytesOf(t.heading);
            for (var i = 0; i < t.n; i++) {
                var k = idx[i], was = feed.truckState[k];
                if (k === trail.slot) { trail.wanted = frame.version; }
                feed.truckState[k] = state[i];
                feed.truckHeading[k] = heading[i];
                if (state[i] !== ABSENT && (was === ABSENT || feed.truckQx[k] !== qx[i] || feed.truckQy[k] !== qy[i])) {
                    feed.truckQx[k] = qx[i];
                    feed.truckQy[k] = qy[i];
                    project(qx[i], qy[i], out, k);
                }
            }
        }
        var p = frame.points;
        if (p.n) {
            var pidx = indexArray(p.idx, feed.stat.points.index_bytes), status = bytesOf(p.status);
            for (var j = 0; j < p.n; j++) { feed.pointStatus[pidx[j]] = status[j]; }
        }
        feed.version = frame.version;
        feed.newestMs = frame.newest_ms;
        feed.staleAfterS = frame.stale_after_s;
        keep(feed.stats.decodeMs, performance.now() - t0);
        keep(feed.stats.changedTrucks, t.n);
    }

    function applyTrail(data) {
        var t0 = performance.now(), n = data.n;
        var qx = u16(data.lon), qy = u16(data.lat), ts = u32(data.t_s), project = projector();
        var nx = new Float64Array(n), ny = new Float64Array(n), ms = new Float64Array(n), gap = new Uint32Array(n);
        var out = [nx, ny];
        for (var i = 0; i < n; i++) {
            project(qx[i], qy[i], out, i);
            ms[i] = data.t0_ms + ts[i] * 1000;
            gap[i] = i ? ts[i] - ts[i - 1] : 0;
        }
        trail.nx = nx; trail.ny = ny; trail.ms = ms; trail.gapS = gap; trail.qx = qx; trail.qy = qy;
        trail.trailS = data.trail_s;
        trail.stops = u32(data.stops.idx);
        trail.x = new Float64Array(n); trail.y = new Float64Array(n);
        trail.n = n;
        trail.version = data.version;
        trail.loaded = true;
        keep(feed.stats.trailDecodeMs, performance.now() - t0);
    }

    // Fetch the selected truck's trail until it is as new as the newest frame that moved the truck
    // (one request at a time; a reply for a truck no longer selected is dropped, and the newly
    // selected one is fetched after it; after a failure the next poll tries again).
    function refreshTrail() {
        var id = trail.id;
        if (id === null || trail.pending !== null || !feed.stat) { return; }
        if (trail.loaded && trail.version >= trail.wanted) { return; }
        trail.slot = feed.vehicleSlot[id] === undefined ? -1 : feed.vehicleSlot[id];
        trail.pending = id;
        var ok = false;
        fetch(feed.config.trailUrl + encodeURIComponent(id), {cache: "no-store"})
            .then(function (response) {
                return response.text().then(function (body) {
                    if (!response.ok) { throw new Error(response.status + " " + body); }
                    keep(feed.stats.trailChars, body.length);
                    return JSON.parse(body);
                });
            })
            .then(function (data) {
                ok = true;
                if (data.vehicle_id !== trail.id) { return; }
                trail.failures = 0;
                applyTrail(data);
                if (layer) { layer.requestDraw(); }
            })
            .catch(function (error) {
                trail.failures += 1;
                if (trail.failures === 1 || trail.failures % 30 === 0) {
                    console.warn("hazmap trail of " + id + ": " + error.message + " (" + trail.failures + " failed)");
                }
            })
            .then(function () {
                trail.pending = null;
                if (trail.id !== null && (trail.id !== id || (ok && trail.version < trail.wanted))) { refreshTrail(); }
            });
    }

    function selectTrail(id) {
        if (id === trail.id) { return; }
        trail.id = id;
        trail.slot = feed.vehicleSlot[id] === undefined ? -1 : feed.vehicleSlot[id];
        trail.loaded = false;
        trail.n = trail.drawn = trail.version = trail.wanted = trail.failures = 0;
        refreshTrail();
        if (layer) { layer.requestDraw(); }
    }

    function clearTrail() {
        if (trail.id === null) { return; }
        trail.id = null;
        trail.slot = -1;
        trail.loaded = false;
        trail.n = trail.drawn = trail.version = trail.wanted = 0;
        if (layer) { layer.requestDraw(); }
    }

    // --- sprites: each glyph drawn once by the canvas, then stamped as pixels -------------------
    var sprites = {}; // kind, code and scale -> [dot, arrow per heading step...], each built when first needed
    var scratch = document.createElement("canvas");

    // The sprites of one style (`kind` "t" trucks, "p" points, and its code) at `scale`:
    // slot 0 the dot, slot 1 + h the arrow of heading step h.
    function spritesOf(kind, code, scale) {
        var key = kind + code + "@" + scale;
        return sprites[key] || (sprites[key] = []);
    }

    // Glyphs that do not keep their size (layers/live.py's `keepSize`) shrink at city-wide
    // zooms, where 15,000 full-size arrows would bury the map: 60 % at zoom 9, full from 12,
    // in five steps (each step's sprites are built once).
    function zoomScale(zoom) {
        return Math.min(1, Math.max(0.6, 0.6 + Math.round(((zoom - 9) * 4) / 3) / 10));
    }

    // A dot (heading < 0) or an arrow along `heading` (in the server's steps, clockwise from
    // north), in style `c`: {dx, dy, color, alpha, rgb, r}, per pixel it covers.
    function makeSprite(heading, c, scale) {
        var r = c.radius * scale, weight = c.weight > 0 ? c.weight * scale : 0;
        var reach = Math.ceil((heading < 0 ? r : 2.2 * r) + weight) + 1;
        var size = 2 * reach + 1, centre = reach + 0.5;
        scratch.width = scratch.height = size;
        var ctx = scratch.getContext("2d", {willReadFrequently: true});
        ctx.clearRect(0, 0, size, size);
        ctx.beginPath();
        if (heading < 0) {
            ctx.arc(centre, centre, r, 0, 2 * Math.PI);
        } else {
            var a = (heading * feed.stat.heading_step_deg * Math.PI) / 180, dx = Math.sin(a), dy = -Math.cos(a);
            var tip = 2.2 * r, back = 1.3 * r, half = 1.4 * r;
            ctx.moveTo(centre + dx * tip, centre + dy * tip);
            ctx.lineTo(centre - dx * back - dy * half, centre - dy * back + dx * half);
            ctx.lineTo(centre - dx * back + dy * half, centre - dy * back - dx * half);
            ctx.closePath();
        }
        ctx.globalAlpha = c.fillOpacity;
        ctx.fillStyle = c.color;
        ctx.fill();
        ctx.globalAlpha = 1;
        if (weight > 0) {
            ctx.lineJoin = "round";
            ctx.lineWidth = weight;
            ctx.strokeStyle = c.stroke;
            ctx.stroke();
        }
        return hazmap.spriteFromImage(ctx.getImageData(0, 0, size, size).data, size, reach);
    }

    // The sprites a zoom step in or out will stamp (the glyphs' scale follows the zoom: a new level's
    // 100-200 sprites took ~20 ms of the page's first zoom to it), built ahead in idle periods, at most
    // AHEAD_MS of building in each: the slots the last redraw used, at the neighbouring zooms' scales.
    var AHEAD_MS = 3, ahead = {queued: false};
    function spritesAhead(job, zoom) {
        if (!window.requestIdleCallback) { return; }
        if (ahead.queued) { ahead.next = [job, zoom]; return; } // once the building under way ends
        ahead.next = null;
        var view = job.view, here = view.zoomScale, todo = [];
        [zoomScale(zoom - 1), zoomScale(zoom + 1)].forEach(function (next) {
            if (next === here) { return; }
            job.lists.forEach(function (list) {
                list.styles.forEach(function (style, code) {
                    if (style.keepSize) { return; }
                    var used = spritesOf(list.kind, code, view.s * view.m * here), scale = view.s * view.m * next;
                    var table = spritesOf(list.kind, code, scale);
                    for (var slot = 0; slot < used.length; slot++) {
                        if (used[slot] && !table[slot]) { todo.push([table, slot, style, scale]); }
                    }
                });
            });
        });
        if (!todo.length) { return; }
        ahead.queued = true;
        (function some() {
            window.requestIdleCallback(function (deadline) {
                var until = performance.now() + Math.min(AHEAD_MS, deadline.timeRemaining());
                while (todo.length && performance.now() < until) {
                    var t = todo.pop();
                    if (!t[0][t[1]]) { t[0][t[1]] = makeSprite(t[1] - 1, t[2], t[3]); }
                }
                if (todo.length) { some(); return; }
                ahead.queued = false;
                if (ahead.next) { spritesAhead(ahead.next[0], ahead.next[1]); }
            });
        })();
    }

    // The next task, without setTimeout's clamping: a poll's redraw continues here.
    var nextTask = (function () {
        var channel = new MessageChannel(), queued = [];
        channel.port1.onmessage = function () { var run = queued.shift(); if (run) { run(); } };
        return function (run) { queued.push(run); channel.port2.postMessage(0); };
    })();

    // --- the canvas ------------------------------------------------------------------------------
    var LiveCanvas = hazmap.CanvasLayer.extend({ // the lifecycle: assets/hazmap_canvas.js
        options: {pane: PANE, className: "hz-live-canvas"},

        initialize: function (options) {
            hazmap.CanvasLayer.prototype.initialize.call(this, options);
            this.showTrucks = true;
            this.showPoints = true;
            // Layer points where each truck / point was last drawn (NaN: not drawn): the hit-test's input.
            this.truckXY = {x: new Float32Array(0), y: new Float32Array(0)};
            this.pointXY = {x: new Float32Array(0), y: new Float32Array(0)};
        },

        // After a pan or zoom (hazmap.CanvasLayer `_update`): the whole redraw at once.
        _draw: function () {
            if (!this._ctx || !feed.stat) { return; }
            var job = this._begin();
            this._stampSome(job, Infinity);
            this._finish(job);
        },

        // A poll's redraw (and a shown overlay's, a trail's): the same work as tasks of at most
        // CHUNK_MS of stamping each (the clock read every 256 slots), one after the other, the
        // canvas keeping the last image until the new one is put whole: at 15,000 trucks a single
        // redraw is 20-30 ms of stamping, which with the frame's commit made tasks over 50 ms.
        // A newer redraw (a poll, a pan, a zoom) drops the one under way.
        requestDraw: function () {
            if (!this._map || !this._ctx || !feed.stat) { return; }
            var job = this._begin(), self = this;
            (function run() {
                if (self._job !== job || !self._map) { return; }
                var t = performance.now();
                var done = self._stampSome(job, t + chunkMs);
                job.longest = Math.max(job.longest, performance.now() - t);
                job.tasks += 1;
                if (done) { self._finish(job); } else { nextTask(run); }
            })();
        },

        // A redraw's start: the layer points of every slot, the ImageData cleared.
        _begin: function () {
            var t0 = performance.now();
            var canvas = this._container, b = this._bounds, m = window.devicePixelRatio || 1;
            var scale = this._map.options.crs.scale(this._zoom), origin = this._map.getPixelOrigin();
            var view = {
                scale: scale, ox: origin.x, oy: origin.y, s: screenScale(), m: m, zoomScale: zoomScale(this._zoom),
                minX: b.min.x, minY: b.min.y, maxX: b.max.x, maxY: b.max.y
            };
            if (!this._target || this._target.width !== canvas.width || this._target.height !== canvas.height) {
                this._target = hazmap.stampTarget(this._ctx.createImageData(canvas.width, canvas.height));
            }
            this._target.pixels.fill(0);
            this.pointXY = this._layerPoints(feed.pointNx, feed.pointNy, this.showPoints, null, this.pointXY, view);
            this.truckXY = this._layerPoints(feed.truckNx, feed.truckNy, this.showTrucks, feed.truckState,
                this.truckXY, view);
            var lists = [];
            if (this.showPoints) {
                lists.push({xy: this.pointXY, codes: feed.pointStatus, headings: new Uint8Array(0),
                    styles: feed.config.pointStyles, kind: "p"});
            }
            if (this.showTrucks) {
                lists.push({xy: this.truckXY, codes: feed.truckState, headings: feed.truckHeading,
                    styles: feed.config.truckStyles, kind: "t"});
            }
            this._job = {t0: t0, view: view, lists: lists, list: 0, code: 0, i: 0, longest: 0, tasks: 0};
            return this._job;
        },

        _finish: function (job) {
            this._job = null;
            this._ctx.putImageData(this._target.image, 0, 0);
            trail.drawn = 0;
            if (this.showTrucks && trail.id !== null && trail.n) {
                var t1 = performance.now();
                this._drawTrail(job.view);
                keep(feed.stats.trailMs, performance.now() - t1);
            }
            keep(feed.stats.paintMs, performance.now() - job.t0);
            keep(feed.stats.chunkMs, job.longest);
            keep(feed.stats.tasks, job.tasks);
            spritesAhead(job, this._zoom);
        },

        // The selected truck's trail, drawn behind what is already on the canvas (the trucks and
        // points stay on top): with "destination-over" what is drawn first lies above what follows,
        // so the ring, the stop dots, the newest band ... the oldest band, then the casing. Pings
        // older than trail_s behind the feed's clock are left out (the server cuts them at its next
        // fetch; times are whole seconds, hence the second of slack).
        _drawTrail: function (view) {
            var ctx = this._ctx, s = view.s, n = trail.n, xs = trail.x, ys = trail.y, ms = trail.ms;
            var gap = trail.gapS, stale = feed.staleAfterS, style = feed.config.trail;
            var nowMs = Math.max(feed.newestMs || 0, ms[n - 1]), spanMs = trail.trailS * 1000;
            var first = 0;
            while (first < n - 1 && nowMs - ms[first] > spanMs + 1000) { first++; }
            if (nowMs - ms[first] > spanMs + 1000) { return; } // all of it aged out
            for (var i = first; i < n; i++) {
                xs[i] = trail.nx[i] * view.scale - view.ox;
                ys[i] = trail.ny[i] * view.scale - view.oy;
            }
            // Join the trail to the truck when the truck's position is at least as new as the trail
            // (the trail and the frames are two requests: either may be a poll ahead).
            var k = feed.vehicleSlot[trail.id], tx = NaN, ty = NaN;
            if (k !== undefined && feed.truckState[k] !== ABSENT) {
                tx = feed.truckNx[k] * view.scale - view.ox;
                ty = feed.truckNy[k] * view.scale - view.oy;
            }
            var join = tx === tx && feed.version >= trail.version &&
                (feed.truckQx[k] !== trail.qx[n - 1] || feed.truckQy[k] !== trail.qy[n - 1]);
            ctx.save();
            ctx.setTransform(view.m, 0, 0, view.m, -view.minX * view.m, -view.minY * view.m);
            ctx.globalCompositeOperation = "destination-over";
            ctx.lineJoin = "round";
            ctx.lineCap = "round";
            ctx.strokeStyle = style.color;
            if (tx === tx) {
                ctx.lineWidth = 2 * s;
                ctx.beginPath();
                ctx.arc(tx, ty, TRAIL_RING_PX * s, 0, 2 * Math.PI);
                ctx.stroke();
            }
            if (trail.stops.length) {
                ctx.beginPath();
                for (var j = 0; j < trail.stops.length; j++) {
                    var at = trail.stops[j];
                    if (at < first) { continue; }
                    ctx.moveTo(xs[at] + TRAIL_STOP_PX * s, ys[at]);
                    ctx.arc(xs[at], ys[at], TRAIL_STOP_PX * s, 0, 2 * Math.PI);
                }
                ctx.lineWidth = 1.5 * s;
                ctx.stroke();
                ctx.fillStyle = style.casing;
                ctx.fill();
            }
            // Newest first, backwards along the trail: ages only grow that way, so each band is one path.
            var last = n - 1, band = 0;
            function start() {
                ctx.beginPath();
                if (join) {
                    ctx.moveTo(tx, ty);
                    ctx.lineTo(xs[last], ys[last]);
                } else {
                    ctx.moveTo(xs[last], ys[last]);
                }
                if (last === first && !join) { ctx.lineTo(xs[last], ys[last]); } // one ping: a dot (the cap)
            }
            function back(i) { // the segment from ping i back to ping i - 1, unless a silent gap lies between
                if (gap[i] > stale) { ctx.moveTo(xs[i - 1], ys[i - 1]); } else { ctx.lineTo(xs[i - 1], ys[i - 1]); }
            }
            ctx.lineWidth = TRAIL_WIDTH_PX * s;
            start();
            for (var i2 = last; i2 > first; i2--) {
                var b = Math.min(TRAIL_BANDS - 1, Math.floor(((nowMs - ms[i2]) / spanMs) * TRAIL_BANDS));
                if (b !== band) {
                    this._strokeBand(ctx, band);
                    band = b;
                    ctx.beginPath();
                    ctx.moveTo(xs[i2], ys[i2]);
                }
                back(i2);
            }
            this._strokeBand(ctx, band);
            // The casing: the whole line once, wider and dark, under everything of the trail.
            ctx.globalAlpha = 0.6;
            ctx.strokeStyle = style.casing;
            ctx.lineWidth = (TRAIL_WIDTH_PX + 2 * TRAIL_CASING_PX) * s;
            start();
            for (var i3 = last; i3 > first; i3--) { back(i3); }
            ctx.stroke();
            ctx.restore();
            trail.drawn = n - first;
        },

        _strokeBand: function (ctx, band) {
            ctx.globalAlpha = 1 - ((1 - TRAIL_OLDEST_ALPHA) * band) / (TRAIL_BANDS - 1);
            ctx.stroke();
        },

        // Layer points of every slot, NaN where it is not drawn (hidden, absent, off the canvas).
        _layerPoints: function (nx, ny, shown, states, xy, view) {
            // issue 15: below the symbols' zoom the points show as counts per cell (assets/hazmap_counts.js)
            shown = shown && !(hazmap.countsHide && hazmap.countsHide(this._zoom));
            var n = nx.length;
            if (xy.x.length !== n) { xy = {x: new Float32Array(n), y: new Float32Array(n)}; }
            var xs = xy.x, ys = xy.y, margin = 12 * view.s;
            for (var i = 0; i < n; i++) {
                var x = nx[i] * view.scale - view.ox, y = ny[i] * view.scale - view.oy;
                var off = !shown || (states !== null && states[i] === ABSENT) || x < view.minX - margin ||
                    x > view.maxX + margin || y < view.minY - margin || y > view.maxY + margin;
                xs[i] = off ? NaN : x;
                ys[i] = off ? NaN : y;
            }
            return xy;
        },

        // Every drawn slot, points then trucks, code by code (higher codes, the alerts, on top):
        // its sprite stamped at the canvas pixel that holds its position (hazmap.stamp). Stamping
        // pixels into one ImageData is ~4x cheaper than filling canvas paths. Resumable: stops at
        // `deadline` (performance.now()) and returns false, the job remembering where; true when done.
        _stampSome: function (job, deadline) {
            var view = job.view, m = view.m, minX = view.minX, minY = view.minY, unknown = feed.stat.heading_unknown;
            var target = this._target, W = target.width, H = target.height, stamp = hazmap.stamp;
            for (; job.list < job.lists.length; job.list++, job.code = 0) {
                var list = job.lists[job.list], xs = list.xy.x, ys = list.xy.y, codes = list.codes, n = codes.length;
                var headings = list.headings, styles = list.styles;
                for (; job.code < styles.length; job.code++, job.i = 0) {
                    var code = job.code, scale = view.s * m * (styles[code].keepSize ? 1 : view.zoomScale);
                    var table = spritesOf(list.kind, code, scale);
                    for (var i = job.i; i < n; i++) {
                        if ((i & 255) === 0 && i !== job.i && performance.now() >= deadline) { job.i = i; return false; }
                        if (codes[i] !== code || xs[i] !== xs[i]) { continue; } // x !== x: NaN, not drawn
                        var slot = i < headings.length && headings[i] !== unknown ? headings[i] + 1 : 0;
                        var sprite = table[slot] || (table[slot] = makeSprite(slot - 1, styles[code], scale));
                        stamp(target, sprite, Math.floor((xs[i] - minX) * m), Math.floor((ys[i] - minY) * m), 0, 0, W, H);
                    }
                }
            }
            return true;
        },

        // The topmost truck (else point) drawn within reach of a layer point: {layer, id} or null.
        hitTest: function (x, y) {
            var s = screenScale();
            var hit = this._nearest(this.truckXY, feed.truckState, feed.config.truckStyles, x, y, s);
            if (hit >= 0) { return {layer: "vehicles", id: feed.stat.vehicles.ids[hit]}; }
            hit = this._nearest(this.pointXY, feed.pointStatus, feed.config.pointStyles, x, y, s);
            if (hit >= 0) { return {layer: "monitoring_points", id: feed.stat.points.ids[hit]}; }
            return null;
        },

        _nearest: function (xy, codes, styles, x, y, s) {
            var xs = xy.x, ys = xy.y, best = -1, bestCode = -1, bestD = Infinity;
            for (var i = 0; i < xs.length; i++) {
                if (xs[i] !== xs[i]) { continue; }
                var dx = xs[i] - x, dy = ys[i] - y, d = dx * dx + dy * dy;
                var reach = (styles[codes[i]] ? styles[codes[i]].radius * 2.2 : 4) * s + HIT_SLACK_PX;
                if (d > reach * reach) { continue; }
                // What is drawn on top wins: a higher code, then the nearer.
                if (codes[i] > bestCode || (codes[i] === bestCode && d < bestD)) {
                    best = i; bestCode = codes[i]; bestD = d;
                }
            }
            return best;
        }
    });

    // --- wiring: map, overlays, polling, clicks --------------------------------------------------
    var layer = null;
    var started = false;

    function showFeedClock(ok) {
        var clock = document.getElementById("hz-feed-clock");
        if (!clock) { return; }
        clock.textContent = feed.newestMs == null ? "—" : hazmap.beijingTime(feed.newestMs); // assets/hazmap_clock.js
        clock.classList.toggle("hz-feed-failing", !ok);
    }

    function bodyOf(response) {
        return response.text().then(function (body) { return {response: response, body: body}; });
    }

    // `first`: the first full frame's body, read beside the lists (start()), for a poll of the
    // same URL.
    function poll(first) {
        // A department's or enterprise's lists are its own (app/permissions.py Scopes): `scope`
        // names them; a frame of another scope means they changed, so they are loaded again.
        var scope = feed.stat.scope;
        var url = feed.config.stateUrl + "?since=" + feed.version + (scope ? "&scope=" + scope : "");
        var got = first && first.url === url ? first.body
            : ((window.hazmapPreload && window.hazmapPreload.take(url)) || fetch(url, {cache: "no-store"})).then(bodyOf);
        got
            .then(function (read) {
                if (!read.response.ok) { throw new Error(read.response.status + " " + read.body); }
                keep(feed.stats.payloadChars, read.body.length);
                return JSON.parse(read.body);
            })
            .then(function (frame) {
                if (frame.scope !== undefined && frame.scope !== scope) { return reloadStatic(); }
                applyFrame(frame);
                feed.polls += 1;
                showFeedClock(true);
                if (!feed.ready) {
                    feed.ready = true;
                    syncLayer(); // joins the map drawn with its first frame
                } else if (layer) {
                    layer.requestDraw();
                }
                refreshTrail(); // the trail follows its truck: fetched again once a frame moved it
            })
            .catch(function (error) {
                feed.failures += 1;
                showFeedClock(false);
                if (feed.failures === 1 || feed.failures % 30 === 0) {
                    console.warn("hazmap live feed: " + error.message + " (" + feed.failures + " failed polls)");
                }
            })
            .then(function () {
                if (!feed.ready) { feed.ready = true; syncLayer(); } // the points, without a frame
                setTimeout(poll, feed.config.pollMs);
            });
    }

    function reloadStatic() {
        return fetch(feed.config.staticUrl, {cache: "no-store"})
            .then(function (response) {
                if (!response.ok) { throw new Error(response.status + " " + feed.config.staticUrl); }
                return response.json();
            })
            .then(function (stat) {
                initStatic(stat);
                feed.version = 0; // the next poll takes a full frame over the new lists
                if (trail.id !== null) { trail.slot = feed.vehicleSlot[trail.id] === undefined ? -1 : feed.vehicleSlot[trail.id]; }
            });
    }

    function whenMap(callback) {
        if (hazmap.leafletMap) { callback(hazmap.leafletMap); return; }
        setTimeout(function () { whenMap(callback); }, 50);
    }

    function onCapturedClick(event) {
        if (!layer || !feed.map || !feed.stat) { return; }
        var map = feed.map;
        if (!map.getPane("mapPane").contains(event.target)) { return; } // a control, not the map
        if (map.dragging && map.dragging.moved()) { return; } // the end of a drag
        var point = map.containerPointToLayerPoint(map.mouseEventToContainerPoint(event));
        var hit = layer.hitTest(point.x, point.y);
        if (!hit) { return; }
        event.stopPropagation(); // the map's own canvas must not also take this click
        window.dash_clientside.set_props("hz-live-click", {data: {layer: hit.layer, id: hit.id, at: Date.now()}});
    }

    function onMouseMove(event) {
        if (!layer || !feed.stat || layer._hoverRequest) { return; }
        layer._hoverRequest = L.Util.requestAnimFrame(function () {
            layer._hoverRequest = null;
            var map = feed.map;
            var point = map.containerPointToLayerPoint(map.mouseEventToContainerPoint(event));
            var over = map.getPane("mapPane").contains(event.target) && layer.hitTest(point.x, point.y);
            map.getContainer().classList.toggle("hz-live-hover", !!over);
        });
    }

    function start(config) {
        if (started) { return; }
        started = true;
        feed.config = config;
        whenMap(function (map) {
            feed.map = map;
            if (!map.getPane(PANE)) { map.createPane(PANE).style.zIndex = PANE_Z; }
            map.getContainer().addEventListener("click", onCapturedClick, true);
            map.getContainer().addEventListener("mousemove", onMouseMove, true);
            layer = new LiveCanvas();
            // The page's head may have started the lists and the first full frame (assets/
            // hazmap_preload.js): both are read at once, and the canvas joins the map once the frame
            // is applied, drawn once. Read one after the other, with a draw of the points alone
            // between them, the trucks came last of every layer in the first render (issue 16).
            var firstUrl = config.stateUrl + "?since=0";
            var parked = window.hazmapPreload && window.hazmapPreload.take(firstUrl);
            var first = parked ? {url: firstUrl, body: parked.then(bodyOf)} : null;
            if (first) { first.body.catch(function () {}); } // poll() reports it
            ((window.hazmapPreload && window.hazmapPreload.take(config.staticUrl)) || fetch(config.staticUrl))
                .then(function (response) {
                    if (!response.ok) { throw new Error(response.status + " " + config.staticUrl); }
                    return response.json();
                })
                .then(function (stat) {
                    initStatic(stat);
                    poll(first);
                })
                .catch(function (error) { console.error("hazmap live layer could not start: " + error.message); });
        });
    }

    var wanted = {trucks: true, points: true};

    function syncLayer() {
        if (!layer || !feed.map) { return; }
        layer.showTrucks = wanted.trucks;
        layer.showPoints = wanted.points;
        // on the map once the lists and the first frame are in (not an empty full-screen canvas before,
        // nor one drawn without its trucks): see start() and poll()
        var on = (wanted.trucks || wanted.points) && !!feed.stat && feed.ready;
        if (on && !feed.map.hasLayer(layer)) {
            feed.map.addLayer(layer); // drawn as it is added
        } else if (!on && feed.map.hasLayer(layer)) {
            feed.map.removeLayer(layer);
        } else if (on) {
            layer.requestDraw();
        }
    }

    // Clientside callback (app/webapp.py): the layers control's shown overlays -> the canvas.
    function liveSync(shownTitles, config) {
        if (!config) { return; }
        var shown = shownTitles || [];
        wanted = {trucks: shown.indexOf(config.trucksTitle) >= 0, points: shown.indexOf(config.pointsTitle) >= 0};
        start(config);
        syncLayer();
    }

    // Clientside callback (app/webapp.py): what the details panel was asked to show -> the trail.
    // A truck (live canvas or vehicles layer) selects its trail; another feature, a live point or
    // the close button clears it.
    function trailSync() {
        var context = window.dash_clientside.callback_context;
        var trigger = context && context.triggered && context.triggered[0];
        if (!trigger) { return; }
        var prop = trigger.prop_id || "", value = trigger.value, source = prop.slice(0, prop.lastIndexOf("."));
        if (source === "hz-live-click") {
            if (value && value.layer === "vehicles") { selectTrail(String(value.id)); } else { clearTrail(); }
        } else if (source.charAt(0) === "{") { // a layer's clickData: {"name": layer, "type": "hz-layer"}
            var from = JSON.parse(source);
            if (from.name === "vehicles" && value && value.properties) {
                selectTrail(String(value.properties.id));
            } else {
                clearTrail();
            }
        } else {
            clearTrail();
        }
    }

    // A namespace of its own: assets/hazmap_map.js (loaded after this file) replaces `hazmap`.
    window.dash_clientside = Object.assign({}, window.dash_clientside,
        {hazmap_live: {liveSync: liveSync, trailSync: trailSync}});

    // --- the read-only handle ----------------------------------------------------------------------
    function containerPoint(xy, slot) {
        if (slot === undefined || !layer || !layer._map || xy.x[slot] !== xy.x[slot]) { return null; }
        var p = layer._map.layerPointToContainerPoint(L.point(xy.x[slot], xy.y[slot]));
        return [p.x, p.y];
    }

    function count(states) {
        var n = 0;
        for (var i = 0; i < states.length; i++) { if (states[i] !== ABSENT) { n++; } }
        return n;
    }

    var handle = {
        positionsOf: function (vehicleId) { // [lon, lat] as the screen holds it (quantised), or null
            var k = feed.vehicleSlot[vehicleId];
            if (k === undefined || feed.truckState[k] === ABSENT) { return null; }
            var bbox = feed.stat.bbox, q = feed.stat.quant_max;
            return [bbox[0] + (feed.truckQx[k] * (bbox[2] - bbox[0])) / q,
                bbox[1] + (feed.truckQy[k] * (bbox[3] - bbox[1])) / q];
        },
        drawnPixel: function (vehicleId) { // [x, y] in the map container where the truck was last drawn
            return layer ? containerPoint(layer.truckXY, feed.vehicleSlot[vehicleId]) : null;
        },
        pointPixel: function (pointId) {
            return layer ? containerPoint(layer.pointXY, feed.pointSlot[pointId]) : null;
        },
        stateOf: function (vehicleId) { // a layers.live.TRUCK_STATES name, or null when not drawn
            var k = feed.vehicleSlot[vehicleId];
            return k === undefined || feed.truckState[k] === ABSENT ? null : feed.stat.truck_states[feed.truckState[k]];
        },
        statusOf: function (pointId) { // a layers.live.POINT_STATUSES name
            var k = feed.pointSlot[pointId];
            return k === undefined ? null : feed.stat.point_statuses[feed.pointStatus[k]];
        },
        hitAt: function (x, y) { // what a click at container point [x, y] opens: {layer, id} or null
            if (!layer || !layer._map || !feed.stat) { return null; }
            var p = layer._map.containerPointToLayerPoint(L.point(x, y));
            return layer.hitTest(p.x, p.y);
        },
        // The selected truck's trail: {id, n (pings held), drawn (pings in the last paint),
        // stops, version (of the LiveState it came from), loaded}, or null when none is selected.
        trailOf: function () {
            return trail.id === null ? null : {
                id: trail.id, n: trail.n, drawn: trail.drawn, stops: trail.stops.length, version: trail.version,
                loaded: trail.loaded
            };
        },
        canvas: function () { return layer && layer._map ? layer._container : null; },
        stats: function () { return JSON.parse(JSON.stringify(feed.stats)); },
        // the browser tests: a poll's redraw in tasks of `ms` of stamping (default CHUNK_MS), and a
        // redraw at once now
        setChunkMs: function (ms) { chunkMs = ms >= 0 ? ms : CHUNK_MS; }, // 0: a task per 256 slots
        redrawNow: function () { if (layer && layer._map) { layer._draw(); } }
    };
    ["version", "newestMs", "polls", "failures"].forEach(function (name) {
        Object.defineProperty(handle, name, {get: function () { return feed[name]; }, enumerable: true});
    });
    Object.defineProperty(handle, "drawing", { // a poll's redraw under way (its tasks not all run)
        get: function () { return !!(layer && layer._job); }, enumerable: true
    });
    Object.defineProperty(handle, "trucks", {get: function () { return count(feed.truckState); }, enumerable: true});
    Object.defineProperty(handle, "shown", {
        get: function () { return {trucks: wanted.trucks, points: wanted.points}; }, enumerable: true
    });
    window.hazmapLive = Object.freeze(handle);
})();
