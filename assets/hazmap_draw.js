/*
 * The area-drawing tools in the screen's language. Leaflet.draw (inside dash-leaflet's EditControl
 * chunk, loaded with the map) defines its texts in English as `L.drawLocal` and reads them when it
 * builds its toolbar and tooltips. Here `L.drawLocal` is caught as it is defined and the texts the
 * page carries (app/screen_reports.py DRAW_TEXTS, in `.hz-snapshot`'s data-draw-local, keyed by
 * their path) are put in place before anything reads them.
 */
(function () {
    "use strict";

    function translate(local) {
        var holder = document.querySelector(".hz-snapshot");
        if (!local || !holder || !holder.dataset.drawLocal) { return local; }
        var texts = JSON.parse(holder.dataset.drawLocal);
        Object.keys(texts).forEach(function (path) {
            var keys = path.split("."), node = local;
            for (var i = 0; i < keys.length - 1 && node; i++) { node = node[keys[i]]; }
            if (node && typeof node === "object") { node[keys[keys.length - 1]] = texts[path]; }
        });
        return local;
    }

    function watch() {
        var L = window.L;
        if (!L) { setTimeout(watch, 50); return; }
        if (L.drawLocal) { translate(L.drawLocal); return; } // already defined: in place, before a toolbar reads it
        var value;
        Object.defineProperty(L, "drawLocal", {
            configurable: true, enumerable: true,
            get: function () { return value; },
            set: function (local) { value = translate(local); }
        });
    }
    watch();
})();
