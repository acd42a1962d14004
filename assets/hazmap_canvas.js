/*
 * The canvas lifecycle shared by hazmap's own canvas layers (assets/hazmap_live.js,
 * hazmap_grid.js, hazmap_static.js, hazmap_vector.js): an L.Renderer, so Leaflet positions
 * the canvas, pads it by `padding` beyond the view and scales it through zoom animations; the
 * subclass sets `options.pane` and `options.className` and implements `_draw()` (all of its
 * drawing, from its own arrays). `requestDraw()` coalesces redraws into one animation frame.
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
        },

        _destroyContainer: function () {
            L.Util.cancelAnimFrame(this._drawRequest);
            this._drawRequest = null;
            L.DomUtil.remove(this._container);
            delete this._ctx;
        },

        // After a pan or zoom ends (not during a zoom animation: Leaflet scales the old canvas).
        _update: function () {
            if (this._map._animatingZoom && this._bounds) { return; }
            if (this.options.keepWhileCovered && this._covers()) { return; }
            L.Renderer.prototype._update.call(this);
            this._drawnAt = {zoom: this._zoom, origin: this._map.getPixelOrigin(), bounds: this._bounds};
            var b = this._bounds, size = b.getSize(), m = window.devicePixelRatio || 1, canvas = this._container;
            L.DomUtil.setPosition(canvas, b.min);
            canvas.width = Math.round(m * size.x);
            canvas.height = Math.round(m * size.y);
            canvas.style.width = size.x + "px";
            canvas.style.height = size.y + "px";
            this._draw();
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
                    if (this._map) { this._draw(); }
                }, this);
            }
        },

        _draw: function () {}
    });

    // Plotly's 4.8 MB bundle (the drill-down's charts) loads once the wall has painted: when no
    // layer has marked its first paint (`hazmap:layer:<name>`) for QUIET_MS and the main thread is
    // idle, the store `hz-panel-plotly-go` asks the server for the hidden graph that pulls it in
    // (app/webapp.py; a fallback interval there covers a wall with no canvas layer shown).
    var QUIET_MS = 1000;
    var quietTimer = null, plotlyAsked = false;
    function askPlotly() {
        if (plotlyAsked || !window.dash_clientside || !window.dash_clientside.set_props) { return; }
        plotlyAsked = true;
        window.dash_clientside.set_props("hz-panel-plotly-go", {data: Date.now()});
    }
    function onLayerPainted() {
        clearTimeout(quietTimer);
        quietTimer = setTimeout(function () {
            if (window.requestIdleCallback) { window.requestIdleCallback(askPlotly, {timeout: 2000}); } else { askPlotly(); }
        }, QUIET_MS);
    }
    if (window.PerformanceObserver) {
        new PerformanceObserver(function (list) {
            if (list.getEntries().some(function (e) { return e.name.indexOf("hazmap:layer:") === 0; })) {
                onLayerPainted();
            }
        }).observe({type: "mark", buffered: true});
    }
})();
