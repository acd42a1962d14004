/*
 * Clientside functions of hazmap's map (dash-leaflet functional props).
 *
 * Python passes them as {"variable": "hazmap.map.<name>"}; dash-leaflet calls each with the
 * GeoJSON component's props as the last argument, so `context.hideout` holds the layer's
 * classes and draw levels from layers/style.py. Nothing here knows a colour.
 *
 * On the wall every layer is drawn on hazmap's own canvases (assets/hazmap_static.js,
 * hazmap_vector.js, hazmap_live.js, hazmap_grid.js) and Leaflet's own canvas holds only what a
 * panel marks (a trail, an incident's evidence); the land has its own pane under the tiles. The
 * GeoJSON functions below draw a layer that has no canvas of ours (the bench's anchor, every
 * layer as GeoJSON) on one canvas (preferCanvas): points as circle markers, never DOM markers.
 * Leaflet's canvas draws, and hit-tests, paths in the order they were added,
 * so a polygon layer loaded (or switched on) after the points would cover them and take
 * their clicks. The patch below keeps the canvas's draw list sorted by a draw level set
 * per feature (areas < lines < points < hazard sources): O(levels) per insertion.
 */
(function () {
    "use strict";

    var hazmap = (window.hazmap = window.hazmap || {});
    var DEFAULT_LEVEL = 100; // paths hazmap did not create are drawn on top
    var DEAD_TILES = 8; // tile failures, none loaded: the tile server is down
    var PROBE_MS = 30000;

    // Sizes are set for a 1920x1080 wall; a 3840x2160 wall at the same zoom needs them twice as big.
    function screenScale() {
        return Math.max(1, Math.min(window.innerWidth / 1920, window.innerHeight / 1080));
    }

    function levelOf(layer) {
        var level = layer.options.hazmapLevel;
        return typeof level === "number" ? level : DEFAULT_LEVEL;
    }

    // Insert layer._order into the renderer's draw list: after the last path of the highest
    // level <= its own (atBack: after the last path of a level strictly below its own).
    function link(renderer, layer, atBack) {
        var level = levelOf(layer);
        var tails = renderer._hazmapTails || (renderer._hazmapTails = {});
        var after = null;
        var best = -Infinity;
        for (var key in tails) {
            var k = Number(key);
            if (tails[key] && k > best && (atBack ? k < level : k <= level)) {
                best = k;
                after = tails[key];
            }
        }
        var order = (layer._order = {layer: layer, level: level, prev: after, next: after ? after.next : renderer._drawFirst});
        if (order.prev) { order.prev.next = order; } else { renderer._drawFirst = order; }
        if (order.next) { order.next.prev = order; } else { renderer._drawLast = order; }
        if (!atBack || !tails[level]) { tails[level] = order; } // levels stay contiguous: track each one's end
    }

    function unlink(renderer, layer) {
        var order = layer._order;
        if (!order) { return; }
        var tails = renderer._hazmapTails || {};
        if (tails[order.level] === order) {
            tails[order.level] = order.prev && order.prev.level === order.level ? order.prev : null;
        }
        if (order.next) { order.next.prev = order.prev; } else { renderer._drawLast = order.prev; }
        if (order.prev) { order.prev.next = order.next; } else { renderer._drawFirst = order.next; }
    }

    function patchCanvas(L) {
        if (L.Canvas.prototype._hazmapLevels) { return; }
        var updateCircle = L.Canvas.prototype._updateCircle;
        L.Canvas.include({
            _hazmapLevels: true,
            _initPath: function (layer) {
                this._updateDashArray(layer);
                this._layers[L.Util.stamp(layer)] = layer;
                link(this, layer, false);
            },
            _removePath: function (layer) {
                unlink(this, layer);
                delete layer._order;
                delete this._layers[L.Util.stamp(layer)];
                this._requestRedraw(layer);
            },
            _bringToFront: function (layer) {
                if (!layer._order) { return; }
                unlink(this, layer);
                link(this, layer, false);
                this._requestRedraw(layer);
            },
            _bringToBack: function (layer) {
                if (!layer._order) { return; }
                unlink(this, layer);
                link(this, layer, true);
                this._requestRedraw(layer);
            },
            // The point features' rings (1.5-2 px; on the wall every point layer is on the static
            // canvas, assets/hazmap_static.js: these are the bench's GeoJSON anchor's) as hairlines
            // (assets/hazmap_canvas.js `hazmap.hairlines`): the disc filled, then its ring as
            // concentric hairlines.
            _updateCircle: function (layer) {
                var o = layer.options;
                var lanes = o.hazmapLanes && o.stroke && hazmap.hairlines
                    ? hazmap.hairlines(o.weight, window.devicePixelRatio || 1) : null;
                if (!lanes || lanes.offsets.length < 2 || !this._drawing || layer._empty() ||
                    (layer._radiusY && Math.round(layer._radiusY) !== Math.round(layer._radius))) { // an ellipse: Leaflet's
                    return updateCircle.call(this, layer);
                }
                var p = layer._point, ctx = this._ctx, r = Math.max(Math.round(layer._radius), 1);
                if (o.fill) {
                    ctx.beginPath();
                    ctx.arc(p.x, p.y, r, 0, Math.PI * 2, false);
                    ctx.globalAlpha = o.fillOpacity;
                    ctx.fillStyle = o.fillColor || o.color;
                    ctx.fill(o.fillRule || "evenodd");
                }
                ctx.beginPath();
                for (var k = 0; k < lanes.offsets.length; k++) {
                    var radius = r + lanes.offsets[k];
                    if (radius <= 0) { continue; }
                    ctx.moveTo(p.x + radius, p.y);
                    ctx.arc(p.x, p.y, radius, 0, Math.PI * 2, false);
                }
                ctx.globalAlpha = o.opacity;
                ctx.lineWidth = lanes.width;
                ctx.strokeStyle = o.color;
                if (ctx.setLineDash) { ctx.setLineDash([]); }
                ctx.stroke();
            }
        });
        L.Map.addInitHook(function () {
            hazmap.leafletMap = this; // for the browser tests and for debugging at the wall
        });
        // A tile layer shows (and is filtered, assets/hazmap.css .hz-tiles) once a tile has loaded.
        // One whose server never answered stops asking after DEAD_TILES failures (it would ask for
        // a screenful of tiles on every pan and zoom, ~5 ms of a zoom, to show nothing): a probe
        // tile every PROBE_MS, and the layer loads again once its server answers.
        var gridUpdate = L.GridLayer.prototype._update;
        L.GridLayer.include({
            _update: function (center) { if (!this._hazmapDead) { return gridUpdate.call(this, center); } }
        });
        L.TileLayer.addInitHook(function () {
            var layer = this, failures = 0;
            this.on("tileload", function () {
                this._hazmapUp = true;
                if (this._container) { L.DomUtil.addClass(this._container, "hz-tiles-up"); }
            });
            var probe = null;
            this.on("remove", function () { // off the map: no probe; a fresh start if it comes back
                clearInterval(probe);
                probe = null;
                layer._hazmapDead = false;
                failures = 0;
            });
            this.on("tileerror", function (event) {
                if (layer._hazmapUp || layer._hazmapDead || ++failures < DEAD_TILES) { return; }
                layer._hazmapDead = true;
                var url = layer.getTileUrl(event.coords);
                probe = setInterval(function () {
                    var image = new Image();
                    image.onload = function () {
                        if (!layer._hazmapDead) { return; }
                        clearInterval(probe);
                        layer._hazmapDead = false;
                        failures = 0;
                        if (layer._map) { layer.redraw(); }
                    };
                    image.src = url;
                }, PROBE_MS);
            });
        });
        patchBase(L);
    }

    // The land (`hazmapBase`: ~5,000 vertices at Ningbo scale; the district outlines are on the
    // vector canvas, assets/hazmap_vector.js): Leaflet projects every vertex through the CRS and
    // simplifies every ring again on each zoom (with the outlines ~10 ms of a zoom). Here each ring is projected once (the CRS at zoom 0, divided by its scale: a
    // zoom is a multiplication) and a zoom keeps a vertex only a pixel or more from the last one
    // kept, which stands for Leaflet's simplification (smoothFactor 1 px); clipping is Leaflet's.
    function patchBase(L) {
        var project = L.Polyline.prototype._project, simplify = L.Polyline.prototype._simplifyPoints;
        function normalised(layer, crs) {
            var s0 = crs.scale(0), rings = [];
            (function walk(latlngs) {
                if (!latlngs.length) { return; }
                if (!(latlngs[0] instanceof L.LatLng)) { latlngs.forEach(walk); return; }
                var n = latlngs.length, xy = new Float64Array(2 * n);
                for (var i = 0; i < n; i++) {
                    var p = crs.latLngToPoint(latlngs[i], 0);
                    xy[2 * i] = p.x / s0;
                    xy[2 * i + 1] = p.y / s0;
                }
                rings.push(xy);
            })(layer._latlngs);
            return rings;
        }
        L.Polyline.include({
            _project: function () {
                if (!this.options.hazmapBase) { return project.call(this); }
                var map = this._map, crs = map.options.crs;
                if (this._hazmapFor !== this._latlngs) { // projected once per geometry
                    this._hazmapRings = normalised(this, crs);
                    this._hazmapFor = this._latlngs;
                }
                var scale = crs.scale(map.getZoom()), origin = map.getPixelOrigin(), bounds = new L.Bounds();
                this._rings = this._hazmapRings.map(function (xy) {
                    var n = xy.length / 2, ring = [], lx = Infinity, ly = Infinity;
                    for (var i = 0; i < n; i++) {
                        var x = Math.round(xy[2 * i] * scale) - origin.x, y = Math.round(xy[2 * i + 1] * scale) - origin.y;
                        if (i > 0 && i < n - 1 && Math.abs(x - lx) < 1 && Math.abs(y - ly) < 1) { continue; }
                        var point = new L.Point(x, y);
                        ring.push(point);
                        bounds.extend(point);
                        lx = x; ly = y;
                    }
                    return ring;
                });
                if (this._bounds.isValid() && bounds.isValid()) {
                    this._rawPxBounds = bounds;
                    this._updateBounds();
                }
            },
            _simplifyPoints: function () {
                if (!this.options.hazmapBase) { simplify.call(this); }
            }
        });
    }

    if (window.L) {
        patchCanvas(window.L);
    } else {
        console.error("hazmap: Leaflet (window.L) is not loaded before assets/hazmap_map.js");
    }

    function classStyle(feature, hideout) {
        var classes = hideout.classes;
        return classes[feature.properties.k] || classes.other;
    }

    function geometryKind(feature) {
        var type = feature.geometry ? feature.geometry.type : "";
        if (type.indexOf("Point") >= 0) { return "point"; }
        if (type.indexOf("LineString") >= 0) { return "line"; }
        return "area";
    }

    // Path options of one feature. Leaflet's GeoJSON applies the style function to every
    // feature, circle markers included, so points are styled here too.
    function featureStyle(feature, context) {
        var c = classStyle(feature, context.hideout);
        var scale = screenScale();
        var kind = geometryKind(feature);
        if (kind === "point") {
            return {
                radius: c.radius * scale, color: c.stroke, weight: c.weight * scale, opacity: 1,
                fillColor: c.color, fillOpacity: c.fillOpacity, fill: true, hazmapLanes: true
            };
        }
        var style = {color: c.color, weight: c.weight * scale, opacity: 0.95, dashArray: c.dashArray || null};
        if (kind === "line") {
            style.fill = false;
        } else {
            style.fill = true;
            style.fillColor = c.color;
            style.fillOpacity = c.fillOpacity;
        }
        return style;
    }

    function pointToLayer(feature, latlng, context) {
        return L.circleMarker(latlng, featureStyle(feature, context));
    }

    // Runs once per feature before Leaflet adds it to the map: give every path its draw level.
    function onEachFeature(feature, layer, context) {
        var hideout = context.hideout;
        var level = hideout.levels[geometryKind(feature)];
        layer.options.hazmapLayer = hideout.layer;
        if (layer.eachLayer) { // a GeometryCollection becomes a group of paths
            layer.eachLayer(function (part) { part.options.hazmapLevel = level; });
        } else {
            layer.options.hazmapLevel = level;
        }
    }

    // --- the base drawn whatever the tiles do (the district outlines: assets/hazmap_vector.js) ------
    // The land is SVG, not a canvas: with software compositing every 2D canvas on the page is copied
    // at every commit, changed or not (~2 ms for a screen-sized one, issue 16), and Leaflet's canvas
    // also set its size, a fresh backing store, on each zoom. An SVG path is painted into the
    // compositor's tiles when it changes and costs a commit nothing otherwise. Its renderer is
    // given through the style, which Leaflet's GeoJSON applies before it adds a feature.
    var landRenderer = null;
    function landStyle(feature, context) {
        landRenderer = landRenderer || L.svg({pane: "hzland"});
        return {stroke: false, fill: true, fillColor: context.hideout.fill, fillOpacity: 1, hazmapBase: true,
            renderer: landRenderer};
    }

    function escapeHtml(s) {
        return String(s).replace(/[&<>"']/g, function (ch) {
            return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"}[ch];
        });
    }

    // Ten district names: the only DOM markers on the map.
    function districtLabel(feature, latlng, context) {
        var p = feature.properties;
        var name = context.hideout.language === "en" ? p.name_en : p.name;
        return L.marker(latlng, {
            icon: L.divIcon({className: "hz-district-label", html: "<span>" + escapeHtml(name) + "</span>", iconSize: null}),
            interactive: false,
            keyboard: false
        });
    }

    // Clientside callback: give every shown overlay its file URL (once set, kept, so a layer
    // switched off and on again is not fetched twice). Overlays that start off have none.
    function loadShownLayers(shownTitles, urls, files, ids) {
        var shown = {};
        (shownTitles || []).forEach(function (title) { shown[files.names[title]] = true; });
        var changed = false;
        var next = ids.map(function (id, i) {
            if (!urls[i] && shown[id.name]) {
                changed = true;
                return files.urls[id.name];
            }
            return window.dash_clientside.no_update;
        });
        return changed ? next : window.dash_clientside.no_update;
    }

    window.dash_clientside = Object.assign({}, window.dash_clientside, {
        hazmap: {loadShownLayers: loadShownLayers}
    });

    hazmap.map = {
        pointToLayer: pointToLayer,
        featureStyle: featureStyle,
        onEachFeature: onEachFeature,
        landStyle: landStyle,
        districtLabel: districtLabel
    };
})();
