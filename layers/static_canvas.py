"""The static point layers (regulated entities, monitoring points, registered vehicles, sensitive
sites, and the few stations, lots, shops and hazard sources over them) as typed arrays for the
canvas of assets/hazmap_static.js, instead of thousands of Leaflet circle markers (DESIGN.md §7:
12,000 static circle markers cost 50-200 ms on every pan or zoom; the few left on Leaflet's canvas
kept a screen-sized canvas of their own on the wall, 5-15 ms of every zoom's compositing).

One payload per layer, built once per World and served by URL under the world's fingerprint
(cached for good): the feature ids (a feature's *index* is its place in this list), lon/lat
quantised to uint16 over the same box as the live layer (layers/live.py), and a class byte
(index into `classes`, the layer's style keys). Areas (sensitive sites that are polygons) are
drawn as a point (their representative point, inside the area) at every zoom and as their
outlines from `OUTLINE_MIN_ZOOM` on: the rings, simplified to what a pixel shows at that zoom,
quantised like the points, with per-ring start offsets and the feature each ring belongs to.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import shapely

from layers.catalog import map_layer
from layers.grid import COUNT_LAYERS
from layers.live import QUANT_MAX, b64, live_bbox, quantise
from layers.style import Text, layer_style, text
from spatial.model import World

# The layers drawn on the static canvas, in drawing order (the last on top, and first to take a
# click: the draw levels of layers/style.py, hazard sources over everything).
# Registered vehicles (3,419 at Ningbo scale) too: as Leaflet circle markers they were redrawn on every pan.
CANVAS_LAYERS: tuple[str, ...] = ("monitoring_points", "entities", "vehicles", "sensitive_sites", "wash_stations",
                                  "parking_lots", "service_areas", "repair_shops", "hazard_sources")
OUTLINE_MIN_ZOOM = 13  # areas show their outlines from here on; below, a point is all a pixel holds
# A pixel at zoom 13 is ~19 m at the equator (~17 m at Ningbo's 30°N): a 5 m simplification
# changes nothing the wall can show and drops most vertices of a drawn-by-hand outline.
OUTLINE_SIMPLIFY_DEG = 5e-5
# The box of the live layer (layers/live.py LiveEncodingSettings.bbox_margin_deg): one box for
# every typed array on the wall.
BBOX_MARGIN_DEG = 0.5

STATIC_COUNT_LABEL: Text = ("已绘制", "drawn")


def _feature_index_dtype(n: int) -> str:
    return "<u2" if n <= 65536 else "<u4"


def placed_features(world: World, name: str, keep: np.ndarray | None = None):
    """The layer's rows (those of `keep`, a boolean array over them, when given), their geometries
    and ids; raises ValueError naming the layer when a feature has no geometry (the canvases
    cannot place it: a data error, not something to drop quietly)."""
    frame = world.table(name)
    if keep is not None:
        frame = frame[np.asarray(keep, bool)]
    geometries = frame.geometry.to_numpy()
    ids = frame["id"].astype(str).to_numpy(object)
    if len(frame):
        missing = shapely.is_missing(geometries) | shapely.is_empty(geometries)
        if missing.any():
            raise ValueError(f"{name}: {int(missing.sum())} features have no geometry (first: "
                             f"{ids[missing][:5].tolist()})")
    return frame, geometries, ids


def canvas_payload(world: World, name: str, bbox=None, keep: np.ndarray | None = None) -> dict:
    """The payload of one canvas layer (see the module docstring); with `keep` (a boolean
    array over the layer's rows), of those features only (one user's, app/permissions.py).

    Raises ValueError naming the layer when a feature has no geometry or lies outside the box
    (a feature the wall cannot place is a data error, not something to drop quietly)."""
    if name not in CANVAS_LAYERS:
        raise ValueError(f"{name!r} is not a canvas layer; canvas layers: {list(CANVAS_LAYERS)}")
    bbox = bbox or live_bbox(world, BBOX_MARGIN_DEG)
    definition = map_layer(name)
    frame, geometries, ids = placed_features(world, name, keep)
    classes = list(layer_style(name).classes)
    keys = definition.class_keys(frame)
    class_byte = pd.Series(keys, dtype=object).map({k: i for i, k in enumerate(classes)}).to_numpy("u1")
    kinds = shapely.get_type_id(geometries) if len(frame) else np.zeros(0, "int64")
    is_point = kinds == 0
    anchor = np.where(is_point, geometries, shapely.point_on_surface(geometries)) if len(frame) else geometries
    qx, qy, inside = quantise(shapely.get_x(anchor) if len(frame) else [], shapely.get_y(anchor) if len(frame) else [],
                              bbox)
    if not inside.all():
        raise ValueError(f"{name}: {int((~inside).sum())} features lie outside the wall's box {list(bbox)} "
                         f"(first: {ids[~inside][:5].tolist()})")
    return {
        "layer": name,
        "n": int(len(frame)),
        "bbox": list(bbox),
        "quant_max": QUANT_MAX,
        "classes": classes,
        "ids": ids.tolist(),
        "lon": b64(qx),
        "lat": b64(qy),
        "cls": b64(class_byte),
        "outlines": _outlines(geometries[~is_point], np.flatnonzero(~is_point), bbox, len(frame)),
    }


def _outlines(areas: np.ndarray, feature_index: np.ndarray, bbox, n: int) -> dict:
    """Every ring of `areas` (exterior and holes), simplified and quantised: `ring_feature`
    (the feature each ring belongs to), `ring_start` (offset of each ring's first vertex,
    one more entry than rings: the end), `lon`/`lat` (uint16 vertices)."""
    dtype = _feature_index_dtype(n)
    if not len(areas):
        return {"rings": 0, "ring_feature": b64(np.zeros(0, dtype)), "ring_start": b64(np.zeros(1, "<u4")),
                "lon": b64(np.zeros(0, "<u2")), "lat": b64(np.zeros(0, "<u2")), "min_zoom": OUTLINE_MIN_ZOOM}
    simple = shapely.simplify(areas, OUTLINE_SIMPLIFY_DEG, preserve_topology=True)
    boundaries = shapely.boundary(simple)
    parts, part_of = shapely.get_parts(boundaries, return_index=True)  # one LineString per ring
    coords, vertex_of = shapely.get_coordinates(parts, return_index=True)
    counts = np.bincount(vertex_of, minlength=len(parts))
    qx, qy, _ = quantise(coords[:, 0], coords[:, 1], bbox)
    return {
        "rings": int(len(parts)),
        "ring_feature": b64(feature_index[part_of].astype(dtype)),
        "ring_start": b64(np.r_[0, np.cumsum(counts)].astype("<u4")),
        "lon": b64(qx),
        "lat": b64(qy),
        "min_zoom": OUTLINE_MIN_ZOOM,
    }


def build_canvas_payloads(world: World) -> dict[str, bytes]:
    """layer -> its payload as compact JSON bytes, for every canvas layer."""
    bbox = live_bbox(world, BBOX_MARGIN_DEG)
    return {name: json.dumps(canvas_payload(world, name, bbox), ensure_ascii=False,
                             separators=(",", ":")).encode("utf-8") for name in CANVAS_LAYERS}


def canvas_config(language: str, urls: dict[str, str]) -> dict:
    """What assets/hazmap_static.js needs: each canvas layer's overlay title, payload URL and
    class styles (layers/style.py, by class key), whether its symbols give way to the counts per
    cell below the symbols' zoom (layers/grid.py COUNT_LAYERS; the few others show at every zoom),
    its draw order, and the outline zoom."""
    return {
        "layers": [
            {"name": name, "title": text(map_layer(name).title, language), "url": urls[name],
             "styles": {k: c.as_hideout() for k, c in layer_style(name).classes.items()},
             "counted": name in COUNT_LAYERS}
            for name in CANVAS_LAYERS if name in urls  # a layer without a URL stays on Leaflet's canvas
        ],
        "outlineMinZoom": OUTLINE_MIN_ZOOM,
    }
