/*
 * The static canvas's stamping on a thread of its own (assets/hazmap_static.js): a zoom at the wall
 * redraws four canvases in one task of the page's main thread, and the static points' stamping was
 * 20-30 ms of it at 15,000 trucks (issue 16); here it runs beside the live and vector canvases'
 * drawing, and the page only copies and puts the result.
 *
 * The page and this worker share memory (SharedArrayBuffer: the page is cross-origin isolated,
 * app/webapp.py): the pixels, each layer's layer points (the page hit-tests clicks on them) and
 * the drawn counts. The page posts each layer's data once and a job per redraw; the worker clears
 * the job's region, stamps the layers shown (assets/hazmap_canvas_sprites.js, the page's own code)
 * and stores the job's number in `ctrl[0]` (in `ctrl[1]` too when it failed; its time in µs in
 * `ctrl[2]`), which the page waits
 * for before it puts the pixels, in the same task: one frame shows every canvas's new drawing.
 *
 * Not loaded by Dash as a page script (app/webapp.py `assets_ignore`): the page starts it.
 */
/* global importScripts */
(function () {
    "use strict";

    importScripts("hazmap_canvas_sprites.js");
    var hazmap = self.hazmap;
    var layers = {}; // name -> {n, nx, ny, cls, xs, ys}
    // The sprites come from the page, drawn there once each (an OffscreenCanvas here took ~70 ms a
    // glyph in a worker of Chromium without a GPU, against well under one in the page).
    var sprites = {}; // id (layer:class@scale) -> sprite

    function draw(job) {
        var data = new Uint8ClampedArray(job.pixels, 0, job.width * job.height * 4);
        var target = hazmap.stampTarget({width: job.width, height: job.height, data: data});
        var pixels = target.pixels, W = job.width, clip = job.clip;
        if (job.clearAll) {
            pixels.fill(0);
        } else {
            for (var row = clip[1]; row < clip[3]; row++) { pixels.fill(0, row * W + clip[0], row * W + clip[2]); }
        }
        job.layers.forEach(function (shown, k) {
            var d = layers[shown.name];
            var table = shown.sprites.map(function (id) { return sprites[id]; });
            job.drawn[k] = hazmap.stampPoints(d, d.xs, d.ys, job.view, job.whole, clip, job.covered, table, target);
        });
    }

    self.onmessage = function (event) {
        var message = event.data;
        if (message.type === "layer") {
            layers[message.name] = message;
            return;
        }
        if (message.type === "draw") {
            Object.assign(sprites, message.newSprites);
            var t0 = performance.now();
            try {
                draw(message);
                Atomics.store(message.ctrl, 2, Math.round((performance.now() - t0) * 1000)); // µs
            } catch (error) {
                Atomics.store(message.ctrl, 1, message.seq); // the page draws it itself
                console.error("hazmap static worker: " + (error && error.stack || error));
            }
            Atomics.store(message.ctrl, 0, message.seq);
        }
    };
    self.postMessage({type: "ready"});
})();
