"""What the map is drawn on: the basemap's tile layers and the coordinate system the wall draws in.

Inside hazmap every coordinate is WGS-84 (DESIGN.md §4); a basemap is the edge where another
datum may appear. OpenStreetMap and Tianditu (CGCS2000) tiles match WGS-84; Chinese commercial
tiles (AutoNavi/Amap, Tencent) are drawn in GCJ-02, a few hundred metres off. With such tiles
every overlay and every click must be shifted the same way, or a truck stands in the river.

The one place that shift happens is the map's own coordinate reference system: Leaflet projects
every latitude/longitude it draws (GeoJSON layers, the typed-array canvases, h3-js hexagons,
trails, replays, drawn areas) through `map.options.crs`, and turns every click and drawn box back
through the same object. `assets/hazmap_crs.js` registers `L.CRS.HazmapGCJ02`: Web Mercator of
the GCJ-02 position (the forward formula of spatial/crs.py, written out once in JavaScript, held
to it by tests/browser/test_basemap.py) with the inverse for clicks. So payloads, the store and
the server stay WGS-84, a click's lon/lat is WGS-84, and no payload builder has to know.
"""

from __future__ import annotations

# Leaflet CRS (a key of L.CRS) the map is drawn in, by the datum of its tiles.
LEAFLET_CRS = {"wgs84": "EPSG3857", "gcj02": "HazmapGCJ02"}

OSM_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION = "© OpenStreetMap contributors"
# Tianditu's Web Mercator ("_w") WMTS: the vector map and its annotation (Chinese or English).
_TIANDITU = ("https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
             "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}"
             "&TILECOL={{x}}&tk={key}")
TIANDITU_SUBDOMAINS = "01234567"
TIANDITU_ATTRIBUTION = "© 天地图 Tianditu"


def leaflet_crs(tile_crs: str) -> str:
    """The L.CRS key the map uses for tiles in `tile_crs` ('wgs84' or 'gcj02')."""
    try:
        return LEAFLET_CRS[tile_crs]
    except KeyError:
        raise ValueError(f"tile crs must be one of {sorted(LEAFLET_CRS)}, got {tile_crs!r}") from None


def tile_layers(basemap: str, tile_url: str = "", attribution: str = "", tianditu_key: str = "",
                language: str = "zh") -> list[dict]:
    """The tile layers of a basemap preset, bottom first: dicts of `url`, `attribution` and,
    when the URL has {s}, `subdomains`. 'none' has none: an offline wall asks no tile server."""
    if basemap == "none":
        return []
    if basemap == "osm":
        return [{"url": OSM_URL, "attribution": OSM_ATTRIBUTION}]
    if basemap == "tianditu":
        if not tianditu_key:
            raise ValueError("the tianditu basemap needs a key (tianditu_key)")
        notes = "cva" if language == "zh" else "eva"  # Chinese or English place names
        return [{"url": _TIANDITU.format(layer=layer, key=tianditu_key), "attribution": TIANDITU_ATTRIBUTION,
                 "subdomains": TIANDITU_SUBDOMAINS} for layer in ("vec", notes)]
    if basemap == "custom":
        if not tile_url:
            raise ValueError("the custom basemap needs a tile URL (tile_url)")
        return [{"url": tile_url, "attribution": attribution}]
    raise ValueError(f"basemap must be none, osm, tianditu or custom, got {basemap!r}")
