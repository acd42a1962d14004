/*
 * The static canvas's stamping on a thread of its own (assets/hazmap_static.js): a zoom at the wall
 * redraws four canvases in one task of the page's main thread, and the static points' stamping was
 * 20-30 ms of it at 15,000 trucks (issue 16); here it runs beside the live and vector canvases'
 * drawing.
 *
 * The page and this worker share memory (SharedArrayBuffer: the page is cross-origin isolated,
 * app/webapp.py): the pixels and each layer's layer points (the page computes them, and hit-tests
 * clicks on them). The page posts each layer's data once and a job per redraw: the job's region in
 * bands (assets/hazmap_canvas_sprites.js `stampBand`, the page's own code), which this worker and
 * the page take one at a time from a shared counter (`takeBands`). When the page comes to put the
 * pixels it draws the bands left itself and waits only for the one the worker is drawing: a busy
 * machine, where this thread gets little time, costs the page no more than drawing them all itself.
 * A band that fails here is flagged (`ctrl[2]`), and the page draws the job again itself.
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

    function run(job) {
        var data = new Uint8ClampedArray(job.pixels, 0, job.width * job.height * 4);
        var target = hazmap.stampTarget({width: job.width, height: job.height, data: data});
        var shown = job.layers.map(function (layer) {
            var d = layers[layer.name];
            return {d: d, xs: d.xs, ys: d.ys, table: layer.sprites.map(function (id) { return sprites[id]; })};
        });
        var t0 = performance.now();
        var drew = hazmap.takeBands(job.ctrl, job.bands, function (k) {
            hazmap.stampBand(shown, job.view, hazmap.band(job.clip, k, job.bands), target);
        });
        if (drew) { Atomics.add(job.ctrl, 3, Math.round((performance.now() - t0) * 1000)); } // µs
    }

    self.onmessage = function (event) {
        var message = event.data;
        if (message.type === "layer") {
            layers[message.name] = message;
        } else if (message.type === "draw") {
            Object.assign(sprites, message.newSprites);
            try {
                run(message);
            } catch (error) {
                Atomics.store(message.ctrl, 2, 1); // the page draws the job again itself
                Atomics.add(message.ctrl, 1, 1); // the band under way: not to be waited for
                console.error("hazmap static worker: " + (error && error.stack || error));
            }
        }
    };
    self.postMessage({type: "ready"});
})();
