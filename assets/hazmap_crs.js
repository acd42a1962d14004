/*
 * The map's coordinate system for GCJ-02 tiles (layers/display_crs.py): L.CRS.HazmapGCJ02.
 *
 * Leaflet projects every lat/lng it draws through map.options.crs and turns clicks back through
 * it, so a CRS that is "Web Mercator of the GCJ-02 position" shifts every overlay (GeoJSON, the
 * canvases, hexagons, trails, drawn areas) onto GCJ-02 tiles and gives clicks back in WGS-84.
 * The forward formula is spatial/crs.py's `_offset`, written out once here (tests/browser/
 * test_basemap.py holds the two to each other); the inverse iterates as crs.gcj02_to_wgs84 does.
 *
 * window.hazmapCrs: {forward, inverse} for the tests.
 */
(function () {
    "use strict";

    var A = 6378245.0, EE = 0.00669342162296594323, PI = Math.PI;
    var MAX_INVERSE_ITERATIONS = 30, INVERSE_TOLERANCE_DEG = 1e-9; // ~0.1 mm

    function forward(lon, lat) {
        var x = lon - 105.0, y = lat - 35.0, sx = Math.sqrt(Math.abs(x));
        var dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx
            + (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0
            + (20.0 * Math.sin(y * PI) + 40.0 * Math.sin(y / 3.0 * PI)) * 2.0 / 3.0
            + (160.0 * Math.sin(y / 12.0 * PI) + 320.0 * Math.sin(y * PI / 30.0)) * 2.0 / 3.0;
        var dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx
            + (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0
            + (20.0 * Math.sin(x * PI) + 40.0 * Math.sin(x / 3.0 * PI)) * 2.0 / 3.0
            + (150.0 * Math.sin(x / 12.0 * PI) + 300.0 * Math.sin(x / 30.0 * PI)) * 2.0 / 3.0;
        var radLat = lat / 180.0 * PI, magic = 1.0 - EE * Math.sin(radLat) * Math.sin(radLat);
        var sqrtMagic = Math.sqrt(magic);
        dlat = (dlat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrtMagic) * PI);
        dlon = (dlon * 180.0) / (A / sqrtMagic * Math.cos(radLat) * PI);
        return [lon + dlon, lat + dlat];
    }

    function inverse(lon, lat) {
        var wLon = lon, wLat = lat;
        for (var i = 0; i < MAX_INVERSE_ITERATIONS; i++) {
            var f = forward(wLon, wLat), eLon = f[0] - lon, eLat = f[1] - lat;
            wLon -= eLon;
            wLat -= eLat;
            if (Math.abs(eLon) < INVERSE_TOLERANCE_DEG && Math.abs(eLat) < INVERSE_TOLERANCE_DEG) { break; }
        }
        return [wLon, wLat];
    }

    window.hazmapCrs = Object.freeze({forward: forward, inverse: inverse});

    var L = window.L;
    if (!L) {
        console.error("hazmap: Leaflet (window.L) is not loaded before assets/hazmap_crs.js");
        return;
    }
    var mercator = L.Projection.SphericalMercator;
    L.CRS.HazmapGCJ02 = L.extend({}, L.CRS.EPSG3857, {
        code: "HAZMAP:GCJ02",
        projection: {
            R: mercator.R,
            MAX_LATITUDE: mercator.MAX_LATITUDE,
            bounds: mercator.bounds,
            project: function (latlng) {
                var g = forward(latlng.lng, latlng.lat);
                return mercator.project(L.latLng(g[1], g[0]));
            },
            unproject: function (point) {
                var g = mercator.unproject(point), w = inverse(g.lng, g.lat);
                return L.latLng(w[1], w[0]);
            }
        }
    });
})();
