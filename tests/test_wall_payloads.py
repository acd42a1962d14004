"""The static canvas layers' payloads (layers/static_canvas.py) and their route: every stored
feature once, at its place within a quantisation step, in its style class; areas as a point
inside them plus their outline rings; one clear error for a feature the wall cannot place."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json

import numpy as np
import pytest
import shapely

from layers.catalog import map_layer
from layers.grid import COUNT_LAYERS
from layers.live import QUANT_MAX, dequantise
from layers.static_canvas import CANVAS_LAYERS, OUTLINE_MIN_ZOOM, build_canvas_payloads, canvas_config, canvas_payload


@pytest.fixture(scope="module")
def world():
    from data.demo import build_world
    from data.reference import load_chemicals

    return build_world(seed=7, scale=0.03, chemicals=load_chemicals())


def _array(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype)


def _points(payload: dict) -> tuple[np.ndarray, np.ndarray]:
    return dequantise(_array(payload["lon"], "<u2"), _array(payload["lat"], "<u2"), payload["bbox"])


@pytest.mark.parametrize("name", CANVAS_LAYERS)
def test_every_feature_once_at_its_place_in_its_class(world, name):
    frame = world.table(name)
    payload = canvas_payload(world, name)
    assert payload["n"] == len(frame) > 0
    assert payload["ids"] == frame["id"].astype(str).tolist()
    lon, lat = _points(payload)
    west, south, east, north = payload["bbox"]
    step = max((east - west), (north - south)) / QUANT_MAX
    points = shapely.get_type_id(frame.geometry.to_numpy()) == 0
    geometries = frame.geometry.to_numpy()
    assert np.abs(lon[points] - shapely.get_x(geometries[points])).max() <= step
    assert np.abs(lat[points] - shapely.get_y(geometries[points])).max() <= step
    classes = np.array(payload["classes"], object)
    assert (classes[_array(payload["cls"], "u1")] == map_layer(name).class_keys(frame)).all()


def test_areas_are_a_point_inside_them_and_their_outline_rings(world):
    frame = world.sensitive_sites
    payload = canvas_payload(world, "sensitive_sites")
    areas = np.flatnonzero(shapely.get_type_id(frame.geometry.to_numpy()) != 0)
    assert len(areas) > 0, "the demo world has sensitive sites that are areas"
    lon, lat = _points(payload)
    # quantised to ~3 m: the drawn point lies within a few metres of the area (inside it before rounding)
    near = shapely.distance(frame.geometry.to_numpy()[areas], shapely.points(lon[areas], lat[areas]))
    assert near.max() < 1e-4
    outlines = payload["outlines"]
    assert outlines["min_zoom"] == OUTLINE_MIN_ZOOM
    ring_feature = _array(outlines["ring_feature"], "<u2")
    starts = _array(outlines["ring_start"], "<u4")
    rings = shapely.get_num_interior_rings(shapely.get_parts(frame.geometry.to_numpy()[areas])).sum() + len(
        shapely.get_parts(frame.geometry.to_numpy()[areas]))
    assert outlines["rings"] == len(ring_feature) == rings
    assert set(ring_feature.tolist()) == set(areas.tolist())
    assert starts[0] == 0 and starts[-1] == len(_array(outlines["lon"], "<u2")) and (np.diff(starts) >= 4).all()


def test_a_feature_off_the_box_or_without_geometry_is_one_clear_error(world):
    # the box is the live layer's (districts, roads, routes, trucks, points, entities): a site far off lies outside
    moved = world.sensitive_sites.copy()
    moved.loc[moved.index[3], "geometry"] = shapely.Point(150.0, 10.0)
    with pytest.raises(ValueError, match=r"sensitive_sites: 1 features lie outside .*" + moved["id"].iloc[3]):
        canvas_payload(dataclasses.replace(world, sensitive_sites=moved), "sensitive_sites")
    missing = world.entities.copy()
    missing.loc[missing.index[0], "geometry"] = None
    with pytest.raises(ValueError, match=r"entities: 1 features have no geometry"):
        canvas_payload(dataclasses.replace(world, entities=missing), "entities")
    with pytest.raises(ValueError, match="not a canvas layer"):
        canvas_payload(world, "roads")


def test_screen_config_names_every_layer_with_its_title_and_styles():
    config = canvas_config("en", {name: f"/canvas/v/{name}.json" for name in CANVAS_LAYERS})
    assert [c["name"] for c in config["layers"]] == list(CANVAS_LAYERS)
    assert {c["title"] for c in config["layers"]} == {map_layer(n).title[1] for n in CANVAS_LAYERS}
    assert all(c["styles"] and all("radius" in s for s in c["styles"].values()) for c in config["layers"])
    # below the symbols' zoom the counted layers give way to the counts per cell; the few others always show
    assert {c["name"] for c in config["layers"] if c["counted"]} == set(COUNT_LAYERS)
    assert {c["name"] for c in config["layers"] if not c["counted"]} >= {"hazard_sources", "wash_stations"}


def test_the_route_serves_each_layer_gzipped_and_cached_and_404s_a_stale_world(world, tmp_path):
    from app.settings import Settings
    from app.webapp import create_app

    version = world.fingerprint()
    web = create_app(Settings(var_dir=tmp_path), world, world_version=version)
    client = web.server.test_client()
    bodies = build_canvas_payloads(world)
    for name in CANVAS_LAYERS:
        response = client.get(f"/canvas/{version}/{name}.json", headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200 and response.headers["Content-Encoding"] == "gzip"
        assert "immutable" in response.headers["Cache-Control"]
        assert gzip.decompress(response.data) == bodies[name]
        assert json.loads(bodies[name])["n"] == len(world.table(name))
    response = client.get(f"/canvas/not-{version}/entities.json")
    assert response.status_code == 404 and version in response.get_json()["error"]
    response = client.get(f"/canvas/{version}/roads.json")
    assert response.status_code == 404 and "roads" in response.get_json()["error"]


def test_every_response_isolates_the_page_and_the_worker_script_is_no_page_script(world, tmp_path):
    """The wall's page may share memory with the static canvas's worker only when cross-origin
    isolated (app/webapp.py `_cross_origin_isolated`): the page, its scripts (the worker's among
    them) and its payloads carry COOP and COEP; the worker's script is served, but not run as a
    script of the page (assets/hazmap_static.js starts it)."""
    from app.settings import Settings
    from app.webapp import create_app

    version = world.fingerprint()
    web = create_app(Settings(var_dir=tmp_path), world, world_version=version)
    client = web.server.test_client()
    page = client.get("/")
    for response in (page, client.get("/assets/hazmap_static_worker.js"), client.get("/assets/hazmap_canvas_sprites.js"),
                     client.get(f"/canvas/{version}/entities.json")):
        assert response.status_code == 200
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert response.headers["Cross-Origin-Embedder-Policy"] == "credentialless"
    html_ = page.get_data(as_text=True)
    assert "hazmap_canvas_sprites.js" in html_ and "hazmap_static.js" in html_
    assert "hazmap_static_worker.js" not in html_


# -- the live header (layers/header.py) ------------------------------------------------------

T0_MS = 1_780_000_000_000
MINUTE_MS = 60_000


def _pings(ids, epoch_ms, speed_kmh):
    from spatial.model import PingBatch

    n = len(ids)
    return PingBatch.from_arrays(np.asarray(ids, object), np.broadcast_to(epoch_ms, n), np.full(n, 121.5),
                                 np.full(n, 29.9), np.broadcast_to(speed_kmh, n), np.zeros(n))


def _event(rule, subject, phase, severity):
    import pandas as pd

    from spatial.model import Event

    return Event(rule, subject, f"{rule}:{subject}", phase, pd.Timestamp(T0_MS, unit="ms", tz="UTC"), None,
                 121.5, 29.9, severity, {})


def test_header_counts_trucks_points_in_alarm_incidents_and_the_feed():
    import pandas as pd

    from layers.header import header_children, header_figures
    from spatial.model import LiveState, ReadingBatch

    state = LiveState()
    state.apply_pings(_pings(["VEH-1", "VEH-2"], T0_MS, 40.0))  # moving
    state.apply_pings(_pings(["VEH-3"], T0_MS, 3.0))  # GNSS drift: stopped
    state.apply_pings(_pings(["VEH-4"], T0_MS - 21 * MINUTE_MS, 40.0))  # 21 min behind the fleet: offline
    points = pd.Index(["MP-1", "MP-2", "MP-3", "MP-4"])
    state.apply_readings(ReadingBatch.from_arrays(np.array(points, object), np.full(4, T0_MS), np.ones(4)))
    state.apply_events([_event("point_level", "MP-1", "open", 1), _event("point_level", "MP-2", "open", 2),
                        _event("point_interruption", "MP-3", "open", 3),  # silent, no alarm
                        _event("speeding", "VEH-1", "open", 2)])  # an alert: still moving
    incidents = {"open_by_level": {"red": 2, "yellow": 1}, "pushed_by_level": {"red": 3, "blue": 1},
                 "disposed_by_level": {"red": 1}}
    monitor = {"last_input_s_ago": 2.0, "gateway": {"authenticated_terminals": 4, "reports_per_s": 1.5}}
    figures = header_figures(state, points, incidents, monitor, max_silence_s=120)
    assert figures["trucks"] == {"moving": 2, "stopped": 1, "offline": 1}
    assert figures["points_alarm"] == 2
    assert figures["incidents"] == {"red": 2, "orange": 0, "yellow": 1, "blue": 0}
    assert figures["handling_rate"] == 0.25
    assert figures["feed"] == {"terminals": 4, "reports_per_s": 1.5, "last_input_s_ago": 2.0, "stale": False}
    assert header_figures(state, points, incidents, {**monitor, "last_input_s_ago": 121.0}, 120)["feed"]["stale"]
    assert header_figures(state, points, None, None, 120)["incidents"] is None

    html = str(header_children(figures, "zh"))
    assert "重大 2" in html and "行驶 2" in html and "25%" in html and "终端 4" in html
    stale = str(header_children(header_figures(state, points, incidents, {**monitor, "last_input_s_ago": 500.0},
                                               120), "en"))
    assert "hz-feed-stale" in stale and "feed stale" in stale and "major 2" in stale


# -- search (layers/search.py) ---------------------------------------------------------------------


def test_search_finds_a_plate_however_written_a_name_and_an_id(world):
    from layers.search import MAX_HITS, SearchIndex

    index = SearchIndex(world)
    truck = world.vehicles.iloc[5]
    for written in (truck["plate"], truck["plate"].replace("·", ""), truck["plate"].replace("·", " ").lower()):
        hits = index.find(written, "zh")
        assert hits[0]["id"] == truck["id"] and hits[0]["layer"] == "vehicles" and hits[0]["label"] == truck["plate"]
        assert (hits[0]["lon"], hits[0]["lat"]) == (round(truck.geometry.x, 6), round(truck.geometry.y, 6))
    entity = world.entities.iloc[3]
    assert index.find(entity["id"].lower().replace("-", ""), "en")[0]["id"] == entity["id"]
    by_name = index.find(entity["name"], "zh")
    assert by_name[0]["id"] == entity["id"] and by_name[0]["layer_title"] == "涉危主体"
    # an area is found at a point inside it
    sites = world.sensitive_sites
    area = sites[shapely.get_type_id(sites.geometry.to_numpy()) != 0].iloc[0]
    hit = index.find(area["id"], "zh")[0]
    assert shapely.contains(area.geometry, shapely.Point(hit["lon"], hit["lat"])) or \
        shapely.distance(area.geometry, shapely.Point(hit["lon"], hit["lat"])) < 1e-5
    # exact matches first, at most MAX_HITS, nothing for what no feature holds
    many = index.find("ENT-0000", "zh")
    assert len(many) == MAX_HITS and all(h["id"].startswith("ENT-0000") for h in many)
    assert index.find("没有这样的东西", "zh") == []
    with pytest.raises(ValueError, match="empty"):
        index.find(" · ", "zh")
    with pytest.raises(ValueError, match="at most"):
        index.find("x" * 65, "zh")


def test_search_route_answers_hits_and_refuses_bad_queries(world, tmp_path):
    from app.settings import Settings
    from app.webapp import create_app

    version = world.fingerprint()
    client = create_app(Settings(var_dir=tmp_path), world, world_version=version).server.test_client()
    plate = world.vehicles["plate"].iloc[0]
    response = client.get(f"/search/{version}", query_string={"q": plate, "lang": "en"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert response.get_json()["hits"][0]["id"] == world.vehicles["id"].iloc[0]
    assert client.get(f"/search/{version}", query_string={"q": ""}).status_code == 400
    assert client.get(f"/search/{version}", query_string={"q": "x", "lang": "fr"}).status_code == 400
    assert client.get(f"/search/not-{version}", query_string={"q": "x"}).status_code == 404


def test_incident_items_carry_level_rule_subject_layer_and_local_time():
    import pandas as pd

    from layers.header import incident_items

    frame = pd.DataFrame({
        "id": ["INC-2", "INC-1"], "severity": [1, 3], "rule": ["speeding", "a_future_rule"],
        "subject_id": ["VEH-000001", "MP-000002"], "subject_kind": ["vehicle", "monitoring_point"],
        "first_time": pd.to_datetime(["2026-11-02T01:05:00Z", "2026-11-02T00:59:00Z"]),
        "lon": [121.5, np.nan], "lat": [29.9, np.nan], "status": ["pushed", "signed"],
    })
    zh, en = incident_items(frame, "zh"), incident_items(frame, "en")
    assert [i["id"] for i in zh] == ["INC-2", "INC-1"]
    assert zh[0] | {} == {"id": "INC-2", "level": "red", "colour": "#e02020", "level_name": "重大", "rule": "超速",
                          "subject_id": "VEH-000001", "subject": "VEH-000001", "layer": "vehicles", "lon": 121.5,
                          "lat": 29.9, "time": "09:05", "status": "pushed"}
    assert (en[0]["rule"], en[0]["level_name"]) == ("Speeding", "major")
    assert zh[1]["rule"] == "a_future_rule" and zh[1]["layer"] == "monitoring_points" and zh[1]["lon"] is None
    assert incident_items(frame.iloc[:0], "zh") == []
    # named as the wall names them where the layer has a name for the subject (a truck's plate), else by id
    plates = {("vehicles", "VEH-000001"): "浙B·E2668"}
    named = incident_items(frame, "zh", lambda layer, feature_id, language: plates.get((layer, feature_id)))
    assert [(i["subject"], i["subject_id"]) for i in named] == [("浙B·E2668", "VEH-000001"),
                                                               ("MP-000002", "MP-000002")]


def test_the_feature_directory_names_a_truck_by_its_plate_and_a_point_by_nothing():
    from data.demo import build_world
    from layers.details import FeatureDirectory

    world = build_world(seed=7, scale=0.02)
    directory = FeatureDirectory(world)
    truck = world.vehicles.iloc[0]
    assert directory.title_of("vehicles", truck["id"], "zh") == truck["plate"]
    entity = world.entities.iloc[0]
    assert directory.title_of("entities", entity["id"], "zh") == entity["name"]
    assert directory.title_of("vehicles", "VEH-NOPE", "zh") is None
    assert directory.title_of(None, truck["id"], "zh") is None
