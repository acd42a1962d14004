"""The vector canvas layers' payloads (layers/vector_canvas.py) and their route: every stored
feature once in the meta with its class and box; each zoom band draws every class's distinct
segments within its tolerance of the source; the hit geometry is each feature's own, within a
quantisation step; one clear error for a feature the wall cannot place."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json

import numpy as np
import pytest
import shapely

from layers.catalog import map_layer
from layers.vector_canvas import (
    VECTOR_LAYERS,
    ZOOM_BANDS,
    build_vector_payloads,
    simplify_tolerance_deg,
    vector_config,
    vector_payloads,
)

FILL_BIT = 1 << 31


@pytest.fixture(scope="module")
def world():
    from data.demo import build_world
    from data.reference import load_chemicals

    return build_world(seed=7, scale=0.03, chemicals=load_chemicals())


def _decode(body: bytes, parts: int, bbox, quant_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(part_start, owner, lon, lat) of a band or of the hit geometry."""
    words = np.frombuffer(body, "<u4")
    start, owner = words[:parts + 1], words[parts + 1:2 * parts + 1]
    vertices = int(start[-1])
    assert len(words) == 2 * parts + 1 + 2 * vertices
    qx, qy = words[2 * parts + 1:2 * parts + 1 + vertices], words[2 * parts + 1 + vertices:]
    west, south, east, north = bbox
    return start, owner, west + qx * (east - west) / quant_max, south + qy * (north - south) / quant_max


def _lines(start, lon, lat) -> np.ndarray:
    return shapely.linestrings(np.c_[lon, lat], indices=np.repeat(np.arange(len(start) - 1), np.diff(start)))


@pytest.mark.parametrize("name", VECTOR_LAYERS)
def test_meta_holds_every_feature_once_with_its_class_and_box(world, name):
    frame = world.table(name)
    payloads = vector_payloads(world, name)
    meta = json.loads(payloads.meta)
    assert meta["n"] == len(frame) > 0
    assert meta["ids"] == frame["id"].astype(str).tolist()
    assert (np.array(meta["classes"], object)[meta["cls"]] == map_layer(name).class_keys(frame)).all()
    kinds = shapely.get_type_id(frame.geometry.to_numpy())
    assert meta["area"] == np.isin(kinds, [3, 6]).astype(int).tolist()
    # each feature's box holds the feature (widened to whole steps, never narrowed)
    boxes = np.frombuffer(base64.b64decode(meta["boxes"]), "<u2").reshape(-1, 4).astype(float)
    west, south, east, north = meta["bbox"]
    sx, sy = (east - west) / meta["box_quant_max"], (north - south) / meta["box_quant_max"]
    bounds = shapely.bounds(frame.geometry.to_numpy())
    assert (west + boxes[:, 0] * sx <= bounds[:, 0] + 1e-9).all() and (east >= west + boxes[:, 2] * sx).all()
    assert (west + boxes[:, 2] * sx >= bounds[:, 2] - 1e-9).all() and (south + boxes[:, 1] * sy <= bounds[:, 1] + 1e-9).all()
    assert (south + boxes[:, 3] * sy >= bounds[:, 3] - 1e-9).all()


@pytest.mark.parametrize("name", VECTOR_LAYERS)
def test_each_band_draws_the_layer_within_its_tolerance(world, name):
    frame = world.table(name)
    geometries = frame.geometry.to_numpy()
    payloads = vector_payloads(world, name)
    meta = json.loads(payloads.meta)
    assert [b["min_zoom"] for b in meta["bands"]] == [first for first, _ in ZOOM_BANDS]
    source_lines = shapely.union_all(shapely.boundary(geometries))  # areas' outlines; a line's boundary is its ends
    is_area = np.isin(shapely.get_type_id(geometries), [3, 6])
    if not is_area.all():
        source_lines = shapely.union_all(np.r_[shapely.boundary(geometries[is_area]), geometries[~is_area]])
    for band, body in zip(meta["bands"], payloads.bands):
        start, owner, lon, lat = _decode(body, band["parts"], meta["bbox"], meta["quant_max"])
        drawn = _lines(start, lon, lat)
        fills = (owner & FILL_BIT) != 0
        classes = owner & ~np.uint32(FILL_BIT)
        assert fills.sum() == 0 or shapely.is_closed(drawn[fills]).all()
        assert set(classes.tolist()) <= set(range(len(meta["classes"])))
        # the band runs along the source, and the source along the band, within the tolerance
        tolerance = simplify_tolerance_deg(band["max_zoom"] or ZOOM_BANDS[-1][1], 30.0) * 2 + 1e-6
        assert shapely.hausdorff_distance(shapely.union_all(drawn), source_lines) <= tolerance, band
    # the city view draws lines once per class: a fleet's shared roads are not repeated
    if name == "waybills":
        assert meta["bands"][0]["vertices"] < shapely.get_num_coordinates(geometries).sum()


@pytest.mark.parametrize("name", VECTOR_LAYERS)
def test_hit_geometry_is_each_features_own(world, name):
    frame = world.table(name)
    payloads = vector_payloads(world, name)
    meta = json.loads(payloads.meta)
    start, owner, lon, lat = _decode(payloads.hit, meta["hit_parts"], meta["bbox"], meta["quant_max"])
    assert (np.diff(owner.astype(int)) >= 0).all(), "parts come ordered by feature"
    assert set(owner.tolist()) == set(range(len(frame)))
    parts = _lines(start, lon, lat)
    geometries = frame.geometry.to_numpy()
    outlines = np.where(np.isin(shapely.get_type_id(geometries), [3, 6]), shapely.boundary(geometries), geometries)
    tolerance = simplify_tolerance_deg(ZOOM_BANDS[-1][1], 30.0) * 2 + 1e-6
    own = shapely.multilinestrings(parts, indices=owner)  # each feature's parts together
    assert (shapely.hausdorff_distance(own, outlines) <= tolerance).all()


def test_a_feature_off_the_box_a_point_or_no_geometry_is_one_clear_error(world):
    # the box is the live layer's (districts, roads, routes, trucks, points, entities): a zone far off reaches out
    moved = world.restricted_zones.copy()
    moved.loc[moved.index[2], "geometry"] = shapely.box(121.5, 29.9, 150.0, 30.0)
    with pytest.raises(ValueError, match=r"restricted_zones: 1 features reach outside .*" + moved["id"].iloc[2]):
        vector_payloads(dataclasses.replace(world, restricted_zones=moved), "restricted_zones")
    pointed = world.restricted_zones.copy()
    pointed.loc[pointed.index[0], "geometry"] = shapely.Point(121.5, 29.9)
    with pytest.raises(ValueError, match=r"restricted_zones: 1 features are neither lines nor areas"):
        vector_payloads(dataclasses.replace(world, restricted_zones=pointed), "restricted_zones")
    missing = world.waybills.copy()
    missing.loc[missing.index[0], "geometry"] = None
    with pytest.raises(ValueError, match=r"waybills: 1 features have no geometry"):
        vector_payloads(dataclasses.replace(world, waybills=missing), "waybills")
    with pytest.raises(ValueError, match="not a vector canvas layer"):
        vector_payloads(world, "entities")


def test_a_narrowed_layer_holds_only_the_kept_features(world):
    keep = np.zeros(len(world.waybills), bool)
    keep[::3] = True
    meta = json.loads(vector_payloads(world, "waybills", keep=keep).meta)
    assert meta["ids"] == world.waybills["id"].astype(str)[keep].tolist()


def test_screen_config_names_every_layer_with_its_title_and_styles():
    config = vector_config("en", {name: f"/vector/v/{name}.json" for name in VECTOR_LAYERS})
    assert [c["name"] for c in config["layers"]] == list(VECTOR_LAYERS)
    assert {c["title"] for c in config["layers"]} == {map_layer(n).title[1] for n in VECTOR_LAYERS}
    assert all(c["styles"] and all("weight" in s for s in c["styles"].values()) for c in config["layers"])
    assert config["outlines"] is None  # no base outlines asked for
    # the district outlines of the base, drawn over the layers whatever overlays are shown
    outlines = vector_config("en", {}, "/layers/v/district_outlines.geojson")["outlines"]
    assert outlines["url"] == "/layers/v/district_outlines.geojson" and outlines["weight"] > 0 and outlines["color"]


def test_the_route_serves_meta_bands_and_hits_gzipped_and_cached_and_404s(world, tmp_path):
    from app.settings import Settings
    from app.webapp import create_app

    version = world.fingerprint()
    web = create_app(Settings(var_dir=tmp_path), world, world_version=version)
    client = web.server.test_client()
    built = build_vector_payloads(world)
    for name in VECTOR_LAYERS:
        response = client.get(f"/vector/{version}/{name}.json", headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200 and response.headers["Content-Encoding"] == "gzip"
        assert "immutable" in response.headers["Cache-Control"]
        assert gzip.decompress(response.data) == built[name].meta
        for i, band in enumerate(built[name].bands):
            response = client.get(f"/vector/{version}/{name}/{i}.bin")
            assert response.status_code == 200 and response.data == band
        assert client.get(f"/vector/{version}/{name}/hit.bin").data == built[name].hit
    assert client.get(f"/vector/not-{version}/roads.json").status_code == 404
    response = client.get(f"/vector/{version}/roads/{len(ZOOM_BANDS)}.bin")
    assert response.status_code == 404 and "roads" in response.get_json()["error"]
    assert client.get(f"/vector/{version}/entities.json").status_code == 404
