"""The line and area layers of the wall (district areas, chemical parks, restricted zones, roads,
waybill routes) as typed arrays for the canvas of assets/hazmap_vector.js, instead of thousands
of Leaflet polylines (at Ningbo scale 13,000 of them with 220,000 vertices: Leaflet built one
object per feature at load and clipped, simplified and stroked each one on every pan or zoom).

Per layer, built once per World and served by URL under the world's fingerprint (cached for
good):

- the *meta* (JSON): feature ids (a feature's index is its place in this list), the style class
  of each (index into `classes`, the layer's style keys), whether each is an area (filled) or a
  line, the box the
  coordinates are quantised over, and per zoom band its first zoom, part and vertex counts;
- one *band* per zoom band (binary, little-endian, fetched when the map first shows that zoom):
  `part_start` uint32 (parts + 1: offsets of each part's first vertex, the last the end),
  `part_feature` uint32 (the feature each part belongs to), then lon and lat as uint32
  quantised over the box. A part is a LineString of a line or one ring of an area.

Each band is simplified (shapely `simplify`) to half a pixel at the band's *last* zoom, so what
a pixel can show is kept and the rest dropped: the city view draws a few per cent of the
vertices. Polygons are oriented (exteriors one way, holes the other) so that one path per class
filled with the non-zero rule keeps holes empty. Coordinates stay WGS-84 lon/lat: the browser
projects them through the map's CRS (a GCJ-02 basemap shifts them as it shifts everything).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from layers.catalog import map_layer
from layers.live import QUANT_MAX, b64, live_bbox
from layers.static_canvas import BBOX_MARGIN_DEG, placed_features
from layers.style import BASE_HIDEOUT, layer_style, text
from spatial.model import World

# The layers drawn on the vector canvas, in drawing order (the last on top): areas under lines,
# as their draw levels in layers/style.py say.
VECTOR_LAYERS: tuple[str, ...] = ("districts", "parks", "restricted_zones", "roads", "waybills")

# Zoom bands: (first zoom, last zoom it serves). A band's vertices are simplified to
# SIMPLIFY_PX at its last zoom; the last band serves everything above its first zoom.
ZOOM_BANDS: tuple[tuple[int, int], ...] = ((0, 10), (10, 12), (12, 14), (14, 16), (16, 19))
SIMPLIFY_PX = 0.5
_EQUATOR_M_PER_PX_Z0 = 2 * math.pi * 6378137 / 256  # Web Mercator: metres per pixel at zoom 0 at the equator
_M_PER_DEG_LAT = 111_320.0
VECTOR_QUANT_MAX = 2**32 - 1  # uint32 steps over the box: sub-millimetre, exact at every zoom


@dataclass(frozen=True)
class VectorPayloads:
    """One layer's meta (JSON bytes), its draw bands and its hit geometry (binary), built once
    per World."""

    meta: bytes
    bands: tuple[bytes, ...]
    hit: bytes


def simplify_tolerance_deg(last_zoom: int, lat_deg: float) -> float:
    """SIMPLIFY_PX at `last_zoom` at latitude `lat_deg`, in degrees of latitude (a degree of
    longitude is shorter there: the tolerance is a little finer east-west than it need be)."""
    metres = SIMPLIFY_PX * _EQUATOR_M_PER_PX_Z0 * math.cos(math.radians(lat_deg)) / 2**last_zoom
    return metres / _M_PER_DEG_LAT


def _quantise(values: np.ndarray, low: float, high: float, steps: int, dtype: str, rounding=np.rint) -> np.ndarray:
    return rounding((np.asarray(values, "float64") - low) / (high - low) * steps).astype(dtype)


def _simplify(geometries: np.ndarray, is_area: np.ndarray, tolerance_deg: float) -> np.ndarray:
    """Areas keep their topology (no ring collapses to nothing); lines need not."""
    out = geometries.copy()
    out[is_area] = shapely.simplify(geometries[is_area], tolerance_deg, preserve_topology=True)
    out[~is_area] = shapely.simplify(geometries[~is_area], tolerance_deg, preserve_topology=False)
    return out


def _parts(geometries: np.ndarray, is_area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(part geometries as LineStrings: a line's parts, an area's rings; the index of each's geometry)."""
    lines = geometries.copy()
    if is_area.any():  # exteriors counter-clockwise, holes clockwise: one non-zero fill keeps holes empty
        lines[is_area] = shapely.boundary(shapely.orient_polygons(geometries[is_area]))
    parts, index = shapely.get_parts(lines, return_index=True)
    keep = ~shapely.is_empty(parts)
    return parts[keep], index[keep]


def _binary(parts: np.ndarray, owner: np.ndarray, bbox) -> tuple[bytes, int]:
    """part_start, the owner of each part, lon, lat (see the module docstring); the vertex count."""
    coords, vertex_of = shapely.get_coordinates(parts, return_index=True)
    counts = np.bincount(vertex_of, minlength=len(parts))
    west, south, east, north = bbox
    return b"".join([
        np.r_[0, np.cumsum(counts)].astype("<u4").tobytes(),
        np.asarray(owner).astype("<u4").tobytes(),
        _quantise(coords[:, 0], west, east, VECTOR_QUANT_MAX, "<u4").tobytes(),
        _quantise(coords[:, 1], south, north, VECTOR_QUANT_MAX, "<u4").tobytes(),
    ]), int(len(coords))


def _merged_lines(lines: np.ndarray, classes: np.ndarray, bbox) -> tuple[np.ndarray, np.ndarray]:
    """Per class, every distinct segment of its lines once, merged into as few lines as they
    form: the routes of a fleet share most of their roads (at Ningbo scale 198,000 segments,
    5,100 distinct), and one path per class strokes the shared ones once anyway."""
    parts, index = shapely.get_parts(lines, return_index=True)
    coords, vertex_of = shapely.get_coordinates(parts, return_index=True)
    west, south, east, north = bbox
    qx = _quantise(coords[:, 0], west, east, VECTOR_QUANT_MAX, "int64")  # a segment's identity: its quantised ends
    qy = _quantise(coords[:, 1], south, north, VECTOR_QUANT_MAX, "int64")
    inner = vertex_of[1:] == vertex_of[:-1]
    a = np.c_[qx[:-1], qy[:-1]][inner]
    b = np.c_[qx[1:], qy[1:]][inner]
    seg_class = classes[index[vertex_of[:-1][inner]]]
    flip = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    lo, hi = np.where(flip[:, None], b, a), np.where(flip[:, None], a, b)
    first = np.flatnonzero(~pd.DataFrame(np.c_[seg_class, lo, hi]).duplicated().to_numpy())  # hashed: fast
    ends = np.c_[coords[:-1][inner], coords[1:][inner]][first]
    segments = shapely.linestrings(ends.reshape(-1, 2, 2))
    out_parts, out_class = [], []
    for c in np.unique(seg_class[first]):  # a few classes
        merged = shapely.line_merge(shapely.multilinestrings(segments[seg_class[first] == c]))
        pieces = shapely.get_parts(merged)
        out_parts.append(pieces)
        out_class.append(np.full(len(pieces), c))
    if not out_parts:
        return np.zeros(0, object), np.zeros(0, "int64")
    return np.concatenate(out_parts), np.concatenate(out_class)


def vector_payloads(world: World, name: str, bbox=None, keep: np.ndarray | None = None) -> VectorPayloads:
    """The meta, draw bands and hit geometry of one vector layer; with `keep` (a boolean array
    over the layer's rows), of those features only (one user's, app/permissions.py).

    Raises ValueError naming the layer when a feature has no geometry, is a point, or reaches
    outside the box (the wall cannot place it: a data error, not something to drop quietly)."""
    if name not in VECTOR_LAYERS:
        raise ValueError(f"{name!r} is not a vector canvas layer; vector layers: {list(VECTOR_LAYERS)}")
    bbox = tuple(bbox or live_bbox(world, BBOX_MARGIN_DEG))
    frame, geometries, ids = placed_features(world, name, keep)
    types = shapely.get_type_id(geometries) if len(frame) else np.zeros(0, "int64")
    wrong = ~np.isin(types, [1, 3, 5, 6])  # (Multi)LineString, (Multi)Polygon
    if wrong.any():
        raise ValueError(f"{name}: {int(wrong.sum())} features are neither lines nor areas (first: "
                         f"{ids[wrong][:5].tolist()}); the vector canvas draws no points")
    is_area = np.isin(types, [3, 6])
    bounds = shapely.bounds(geometries) if len(frame) else np.zeros((0, 4))
    west, south, east, north = bbox
    outside = (bounds[:, 0] < west) | (bounds[:, 1] < south) | (bounds[:, 2] > east) | (bounds[:, 3] > north)
    if outside.any():
        raise ValueError(f"{name}: {int(outside.sum())} features reach outside the wall's box {list(bbox)} "
                         f"(first: {ids[outside][:5].tolist()})")
    classes = list(layer_style(name).classes)
    class_index = pd.Series(map_layer(name).class_keys(frame), dtype=object).map(
        {k: i for i, k in enumerate(classes)}).to_numpy("int64")

    # What is drawn: areas ring by ring, lines as each class's distinct segments, merged.
    lines, line_class = _merged_lines(geometries[~is_area], class_index[~is_area], bbox)
    mid_lat = (south + north) / 2
    bands, band_meta = [], []
    for first, last in ZOOM_BANDS:
        tolerance = simplify_tolerance_deg(last, mid_lat)
        areas = _simplify(geometries[is_area], np.ones(int(is_area.sum()), bool), tolerance)
        rings, ring_of = _parts(areas, np.ones(len(areas), bool))
        merged = shapely.simplify(lines, tolerance, preserve_topology=False)
        parts = np.concatenate([rings, merged])
        owner = np.concatenate([class_index[is_area][ring_of], line_class]).astype("int64")
        is_ring = np.r_[np.ones(len(rings), bool), np.zeros(len(merged), bool)]
        body, n_vertices = _binary(parts, owner | (is_ring.astype("int64") << 31), bbox)  # top bit: fill it
        bands.append(body)
        band_meta.append({"min_zoom": first, "max_zoom": None if (first, last) == ZOOM_BANDS[-1] else last,
                          "parts": int(len(parts)), "vertices": n_vertices})

    # What a click or hover tests: every feature's own parts, as fine as the last band.
    fine = _simplify(geometries, is_area, simplify_tolerance_deg(ZOOM_BANDS[-1][1], mid_lat)) if len(frame) \
        else geometries
    hit_parts, hit_feature = _parts(fine, is_area)
    hit, _ = _binary(hit_parts, hit_feature, bbox)

    box16 = np.c_[  # each feature's box, widened to whole uint16 steps: the layer's count of features in view
        _quantise(bounds[:, 0], west, east, QUANT_MAX, "<u2", np.floor), _quantise(bounds[:, 1], south, north, QUANT_MAX, "<u2", np.floor),
        _quantise(bounds[:, 2], west, east, QUANT_MAX, "<u2", np.ceil), _quantise(bounds[:, 3], south, north, QUANT_MAX, "<u2", np.ceil),
    ]
    meta = {
        "layer": name, "n": int(len(frame)), "bbox": list(bbox), "quant_max": VECTOR_QUANT_MAX,
        "box_quant_max": QUANT_MAX, "classes": classes, "ids": ids.tolist(), "cls": class_index.tolist(),
        "area": is_area.astype(int).tolist(), "boxes": b64(np.ascontiguousarray(box16).astype("<u2")),
        "bands": band_meta, "hit_parts": int(len(hit_parts)),
    }
    return VectorPayloads(json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
                          tuple(bands), hit)


def build_vector_payloads(world: World) -> dict[str, VectorPayloads]:
    """layer -> its payloads, for every vector layer."""
    bbox = live_bbox(world, BBOX_MARGIN_DEG)
    return {name: vector_payloads(world, name, bbox) for name in VECTOR_LAYERS}


def vector_config(language: str, urls: dict[str, str], outlines_url: str | None = None) -> dict:
    """What assets/hazmap_vector.js needs: each vector layer's overlay title, meta URL (its bands
    are `<meta URL without .json>/<band>.bin`) and class styles (layers/style.py, by class key);
    and the district outlines of the always-drawn base (layers/basemap.py: their GeoJSON URL and
    style), which the canvas draws over its layers whatever overlays are shown."""
    return {
        "layers": [
            {"name": name, "title": text(map_layer(name).title, language), "url": urls[name],
             "styles": {k: c.as_hideout() for k, c in layer_style(name).classes.items()}}
            for name in VECTOR_LAYERS if name in urls  # a layer without a URL stays on Leaflet's canvas
        ],
        "bands": [first for first, _ in ZOOM_BANDS],  # each zoom band's first zoom: a band is fetched with its meta
        "outlines": None if outlines_url is None else {
            "url": outlines_url, "color": BASE_HIDEOUT["outline"]["color"], "weight": BASE_HIDEOUT["outline"]["weight"]},
    }
