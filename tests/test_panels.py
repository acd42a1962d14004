"""Drill-down panels: data/drilldown.py gathers from a real store (both backends), layers/panels/ lays
out; the figures the panel shows are checked against the store and against independent computations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import shapely

from data import drilldown
from layers.panels import BACK_N, FOCUS_TYPE, HISTORY_TYPE, KINDS, LINK_TYPE, build_panel, next_history
from spatial.grading import grade_sources
from spatial.impact import erg_distances
from spatial.model import LiveState, PingBatch, ReadingBatch
from tests.incidents.helpers import ev

NOW = pd.Timestamp("2026-11-02T04:00:00Z")  # 12:00 in Ningbo: the ERG's day


@pytest.fixture(scope="module")
def world():
    from data.demo import build_world

    return build_world(seed=7, scale=0.05)


def _focus(panel) -> dict:
    (node,) = _by_id_type(panel, FOCUS_TYPE)
    return json.loads(node.to_plotly_json()["props"]["data-focus"])


def _walk(node):
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, (list, tuple)):
        for child in children:
            yield from _walk(child)
    elif children is not None:
        yield from _walk(children)


def _all(panel) -> list:
    return [n for top in panel for n in _walk(top)]


def _by_id_type(panel, kind: str) -> list:
    return [n for n in _all(panel) if isinstance(getattr(n, "id", None), dict) and n.id.get("type") == kind]


def _field(panel, label: str):
    """The value cell beside a field label (a Th/Td pair of a fields table)."""
    nodes = _all(panel)
    for i, node in enumerate(nodes):
        if type(node).__name__ == "Th" and node.children == label:
            row = nodes[i - 1]
            return row.children[1].children
    raise AssertionError(f"no field {label!r}")


def _track(vehicle_id: str, lon: float, lat: float, n: int = 120) -> PingBatch:
    ms = np.int64(NOW.value // 1_000_000) - np.arange(n)[::-1].astype("int64") * 30_000
    speeds = (np.arange(n) % 90).astype("float64")
    return PingBatch.from_arrays(np.full(n, vehicle_id, dtype=object), ms, lon + np.arange(n) * 1e-4,
                                 np.full(n, lat), speed_kmh=speeds)


def test_the_truck_panel_shows_its_stored_speeds_carrier_waybill_and_incidents(world, store):
    from data.incidents import IncidentStore

    vehicle = world.vehicles.iloc[0]
    batch = _track(vehicle["id"], vehicle.geometry.x, vehicle.geometry.y)
    store.replace_world(world)
    store.write_pings(batch)
    IncidentStore(store, world).apply_events([ev("open", 0, subject=vehicle["id"], rule="speeding")])
    live = LiveState()
    live.apply_pings(batch)

    data = drilldown.truck(world, vehicle["id"], live=live, store=store, now=NOW)
    panel = build_panel("vehicles", data, "en", [])
    stored = store.read_pings(NOW - pd.Timedelta(hours=2), NOW + pd.Timedelta(seconds=1), [vehicle["id"]])
    (chart,) = [n for n in _all(panel) if type(n).__name__ == "Graph"]
    np.testing.assert_array_equal(np.asarray(chart.figure["data"][0]["y"]), stored["speed_kmh"].to_numpy())
    assert len(stored) == 120  # 2 h of 30 s reports, all inside the window
    (title,) = [n for n in panel if type(n).__name__ == "H2"]
    assert title.children == vehicle["plate"]  # the panel's own title without an attribute head
    assert _field(panel, "Speed") == f"{batch.speed_kmh[-1]:g} km/h"
    carrier = _field(panel, "Carrier")
    assert carrier.id["layer"] == "entities" and carrier.id["id"] == vehicle["carrier_id"]
    carrier_row = world.entities.set_index("id").loc[vehicle["carrier_id"]]
    assert _field(panel, "Carrier contacts") == f"{carrier_row['contact']} · {carrier_row['phone']}"
    if data["waybill"] is not None:  # its sites as links named by the enterprise
        site = _field(panel, "Loading site")
        names = world.entities.set_index("id")["name"]
        assert site.id["id"] == data["waybill"]["loading_site_id"] and site.children == names[site.id["id"]]
    incidents = [n for n in _all(panel) if type(n).__name__ == "Table" and "hz-panel-incidents" in n.className]
    assert len(incidents) == 1 and data["incidents"]["subject_id"].tolist() == [vehicle["id"]]
    if data["waybill"] is not None:  # the planned route goes to the map
        assert len(_focus(panel)["route"]) == len(shapely.get_coordinates(data["waybill"].geometry))


def test_the_hazard_source_panel_works_out_r_and_grade_as_gb18218_does(world):
    live = LiveState()
    for source in world.hazard_sources.head(5).itertuples():
        data = drilldown.hazard_source(world, source.id, live=live, now=NOW)
        expected = grade_sources(world.hazard_sources[world.hazard_sources["id"] == source.id],
                                 world.hazard_source_chemicals[world.hazard_source_chemicals["hazard_source_id"]
                                                               == source.id], world.chemicals).iloc[0]
        assert data["r_value"] == pytest.approx(expected["r_value"])
        assert data["grade"] == expected["grade"] == source.grade
        panel = build_panel("hazard_sources", data, "zh", [])
        assert _field(panel, "R = α·Σ β·q/Q") == f"{expected['r_value']:.2f}"
        chemicals = [n for n in _all(panel) if type(n).__name__ == "Table" and n.className == "hz-panel-children"]
        assert len(chemicals[0].children[1].children) == len(data["chemicals"])


def test_the_hazard_source_panel_lists_the_loaded_trucks_inside_its_protective_distance(world):
    source = world.hazard_sources.iloc[0]
    loaded = drilldown.loaded_waybills(world, NOW)
    assert len(loaded)
    vehicle_ids = loaded["vehicle_id"].unique()[:2]
    live = LiveState()  # two loaded trucks at the source's gate, the rest far away
    live.apply_pings(PingBatch.from_arrays(
        vehicle_ids, np.full(2, NOW.value // 1_000_000), np.full(2, source.geometry.x + 0.0005),
        np.full(2, source.geometry.y)))
    data = drilldown.hazard_source(world, source["id"], live=live, now=NOW)
    assert sorted(data["impact"].trucks["id"]) == sorted(vehicle_ids)
    panel = build_panel("hazard_sources", data, "en", [])
    linked = {n.id["id"] for n in _by_id_type(panel, LINK_TYPE) if n.id["layer"] == "vehicles"}
    assert linked == set(vehicle_ids)
    assert [c["kind"] for c in _focus(panel)["circles"]] == ["isolation", "protective"]


def test_the_point_panel_charts_its_stored_readings_against_its_levels(world, store):
    point = world.monitoring_points.dropna(subset=["high", "high_high"]).iloc[0]
    ms = np.int64(NOW.value // 1_000_000) - np.arange(50)[::-1].astype("int64") * 60_000
    store.write_readings(ReadingBatch.from_arrays(np.full(50, point["id"], dtype=object), ms,
                                                  np.linspace(0, point["high_high"] * 1.1, 50)))
    data = drilldown.monitoring_point(world, point["id"], store=store, now=NOW, window="1h")
    panel = build_panel("monitoring_points", data, "en", [])
    (chart,) = [n for n in _all(panel) if type(n).__name__ == "Graph"]
    assert len(chart.figure["data"][0]["y"]) == 50
    levels = {trace["name"]: trace["y"][0] for trace in chart.figure["data"][1:]}
    assert levels == {"Level 1 alarm": point["high"], "Level 2 alarm": point["high_high"]}
    with pytest.raises(ValueError, match="window"):
        drilldown.monitoring_point(world, point["id"], store=store, now=NOW, window="3d")


def test_the_sensitive_site_panel_finds_loaded_trucks_within_their_cargos_distance(world):
    site = world.sensitive_sites.iloc[0]
    loaded = drilldown.loaded_waybills(world, NOW).drop_duplicates("vehicle_id")
    goods = world.waybill_goods.groupby("waybill_id")["un_number"].agg(list)
    reach = np.array([erg_distances(goods.get(w, []), world.chemicals, False).protective_m
                      for w in loaded["id"]])
    loaded = loaded[np.isfinite(reach)]  # a cargo with an ERG distance
    near, far = loaded["vehicle_id"].iloc[0], loaded["vehicle_id"].iloc[1]
    centre = shapely.centroid(site.geometry)
    live = LiveState()
    live.apply_pings(PingBatch.from_arrays(np.array([near, far], dtype=object), np.full(2, NOW.value // 1_000_000),
                                           np.array([centre.x, centre.x + 0.5]), np.array([centre.y, centre.y])))
    data = drilldown.sensitive_site(world, site["id"], live=live, now=NOW)
    trucks = data["trucks"]["id"].tolist()
    assert near in trucks  # standing on the site
    assert far not in trucks  # 50 km away


def test_every_kind_builds_in_both_languages_with_links_a_focus_and_the_back_stack(world):
    assert set(drilldown.KINDS) | {"incidents"} == set(KINDS)
    for layer in drilldown.KINDS:
        feature_id = str(world.table(layer)["id"].iloc[0])
        data = drilldown.gather(world, layer, feature_id, live=LiveState(), now=NOW)
        for language in ("zh", "en"):
            panel = build_panel(layer, data, language, [["entities", "ENT-000009"]])
            (history,) = _by_id_type(panel, HISTORY_TYPE)
            assert history.data == [["entities", "ENT-000009"], [layer, feature_id]]
            back = [n for n in _by_id_type(panel, LINK_TYPE) if n.id["n"] == BACK_N]
            assert [(b.id["layer"], b.id["id"]) for b in back] == [("entities", "ENT-000009")]
            ns = [n.id["n"] for n in _by_id_type(panel, LINK_TYPE)]
            assert len(ns) == len(set(ns))  # each link's id is unique in the panel
    with pytest.raises(LookupError):
        drilldown.gather(world, "vehicles", "VEH-NOPE", now=NOW)


def test_the_back_button_returns_along_the_history():
    shown = [["vehicles", "VEH-1"], ["entities", "ENT-1"], ["hazard_sources", "HS-1"]]  # HS-1 is shown
    assert next_history(shown, "entities", "ENT-1", back=True) == [["vehicles", "VEH-1"]]
    assert next_history(shown, "monitoring_points", "MP-1", back=False) == shown
    assert next_history([], "vehicles", "VEH-1", back=True) == []
    assert next_history(shown, "hazard_sources", "HS-1", back=False) == shown[:-1]  # opened again: no loop


def test_an_attribute_head_replaces_the_panels_own_kind_and_title(world):
    from dash import html

    data = drilldown.gather(world, "entities", str(world.entities["id"].iloc[0]), now=NOW)
    head = [html.Div("kind", className="hz-panel-layer"), html.H2("title", className="hz-panel-title"),
            html.Table(className="hz-panel-fields")]
    panel = build_panel("entities", data, "zh", [["vehicles", "VEH-000001"]], head)
    assert panel[0].className == "hz-panel-back" and panel[1:4] == head
    assert [n for n in panel if getattr(n, "className", None) == "hz-panel-title"] == [head[1]]


def test_the_incident_panel_shows_recipients_history_and_only_the_allowed_actions(world, store):
    from data.incidents import IncidentStore

    vehicle = world.vehicles.iloc[0]
    store.replace_world(world)
    incidents = IncidentStore(store, world)
    incidents.apply_events([ev("open", 0, subject=vehicle["id"], rule="speeding", severity=1)])
    (incident_id,) = incidents.list()["id"]
    data = drilldown.gather(world, "incidents", incident_id, store=store, now=NOW)
    shown = incidents.show(incident_id)
    every = ("sign", "dispose", "close", "supervise", "text")
    assert len([n for n in _all(build_panel("incidents", data, "zh", [], actions=every))
                if type(n).__name__ == "Button"]) == len(every)
    panel = build_panel("incidents", data, "en", [["vehicles", vehicle["id"]]], actions=("sign", "text"))
    nodes = _all(panel)
    buttons = [n for n in nodes if type(n).__name__ == "Button"]
    assert [b.to_plotly_json()["props"]["data-action"] for b in buttons] == ["sign", "text"]
    recipients = [n for n in nodes if type(n).__name__ == "Table" and "hz-incident-recipients" in n.className]
    assert len(recipients[0].children[1].children) == len(shown["recipients"]) > 0
    history = [n for n in nodes if type(n).__name__ == "Table" and "hz-incident-history" in n.className]
    assert len(history[0].children[1].children) == len(shown["history"])
    subject = _field(panel, "Subject")
    assert (subject.id["layer"], subject.id["id"]) == ("vehicles", vehicle["id"])
    assert subject.children == f"{vehicle['plate']} ({vehicle['id']})"  # the plate an officer reads, the id beside
    # recipients by name (the department's in the panel's language, an enterprise's own), the id on hover
    departments = world.departments.set_index("id")
    entities = world.entities.set_index("id")
    for language, column in (("en", "name_en"), ("zh", "name")):
        nodes = _all(build_panel("incidents", data, language, []))
        (table,) = [n for n in nodes if type(n).__name__ == "Table" and "hz-incident-recipients" in n.className]
        cells = [row.children[0].children for row in table.children[1].children]
        assert [c.title for c in cells] == shown["recipients"]["recipient_id"].tolist()
        expected = [departments.at[i, column] if i in departments.index else entities.at[i, "name"]
                    for i in shown["recipients"]["recipient_id"]]
        assert [c.children for c in cells] == expected
        assert any(i.startswith("DEPT-") for i in shown["recipients"]["recipient_id"])
    read_only = build_panel("incidents", data, "en", [])
    assert not [n for n in _all(read_only) if type(n).__name__ == "Button"]
    with pytest.raises(LookupError):
        drilldown.gather(world, "incidents", "INC-NOPE", store=store, now=NOW)
    # the truck's panel links its incident
    truck = build_panel("vehicles", drilldown.truck(world, vehicle["id"], store=store, now=NOW), "en", [])
    assert incident_id in {n.id["id"] for n in _by_id_type(truck, LINK_TYPE) if n.id["layer"] == "incidents"}


# --- replay marks, chart windows, status history, wash visits ----------------------------------

def _stop_track(vehicle_id: str, lon: float, lat: float, start_ms: int, rng) -> PingBatch:
    """30 min driving east, 20 min still (a few metres of GPS jitter), 30 min driving on: 30 s reports."""
    drive = np.arange(60) * 3e-4  # ~30 m a report: ~3.6 km/h... enough to leave a 100 m box in 2 min
    still = np.full(40, drive[-1] + 3e-4) + rng.normal(0, 2e-5, 40)
    lons = lon + np.concatenate([drive, still, still[-1] + 3e-4 + np.arange(60) * 3e-4])
    lats = lat + np.concatenate([np.zeros(60), rng.normal(0, 2e-5, 40), np.zeros(60)])
    ms = start_ms + np.arange(len(lons)).astype("int64") * 30_000
    return PingBatch.from_arrays(np.full(len(lons), vehicle_id, dtype=object), ms, lons, lats,
                                 speed_kmh=np.full(len(lons), 30.0))


@pytest.mark.filterwarnings("ignore:The inplace keyword in GeoDataFrame.sort_index")  # movingpandas 0.23
@pytest.mark.filterwarnings("ignore:Setting a value on a DataFrame via .at")
def test_track_stops_are_the_stops_movingpandas_finds():
    from types import SimpleNamespace

    from spatial.crs import to_metric
    from tests.rules.test_stop import movingpandas_stops

    rng = np.random.default_rng(3)
    start = int(NOW.value // 1_000_000) - 3 * 3_600_000
    frames = [_stop_track(v, 121.5 + k / 10, 29.8, start, rng).to_frame() for k, v in enumerate(("VEH-A", "VEH-B"))]
    track = pd.concat(frames, ignore_index=True)
    stops = drilldown.track_stops(track[["vehicle_id", "epoch_ms", "lon", "lat"]])
    x, y = to_metric(track["lon"].to_numpy(), track["lat"].to_numpy())
    oracle = movingpandas_stops(SimpleNamespace(vehicle_id=track["vehicle_id"].to_numpy(object),
                                                epoch_ms=track["epoch_ms"].to_numpy("int64"), x=x, y=y))
    assert {v: list(zip(g["start_ms"], g["end_ms"], strict=True)) for v, g in stops.groupby("vehicle_id")} == oracle
    assert len(stops) == 2 and (stops["end_ms"] - stops["start_ms"] >= 19 * 60_000).all()
    assert drilldown.track_stops(track.iloc[0:0]).empty


def test_the_replay_marks_the_trucks_stops_and_its_incidents_as_stored(world, store):
    from data.incidents import IncidentStore, incidents

    rng = np.random.default_rng(4)
    vehicle = world.vehicles.iloc[1]
    start = int(NOW.value // 1_000_000) - 3 * 3_600_000
    batch = _stop_track(vehicle["id"], vehicle.geometry.x, vehicle.geometry.y, start, rng)
    store.replace_world(world)
    store.write_pings(batch)
    IncidentStore(store, world).apply_events([
        ev("open", 30, subject=vehicle["id"], rule="speeding", lon=121.51, lat=29.81),
        ev("open", -60 * 30, subject=vehicle["id"], rule="fatigue", lon=121.52, lat=29.82),  # 30 h ago: not in it
    ])
    data = drilldown.truck(world, vehicle["id"], store=store, now=NOW)
    focus = _focus(build_panel("vehicles", data, "en", []))
    expected = drilldown.track_stops(store.read_pings(NOW - pd.Timedelta(hours=24), NOW, [vehicle["id"]]))
    assert focus["stops"] == [[int(a), int(b), round(x, 6), round(y, 6)] for a, b, x, y in
                              zip(expected["start_ms"], expected["end_ms"], expected["lon"], expected["lat"],
                                  strict=True)]
    assert len(focus["stops"]) == 1
    with store.engine.connect() as connection:
        stored = connection.execute(incidents.select().where(incidents.c.subject_id == vehicle["id"])).mappings().all()
    inside = [r for r in stored if pd.Timestamp(r["last_time"]).tz_localize(None) >= (NOW - pd.Timedelta(hours=24))
              .tz_localize(None)]
    assert [(i[3], i[4], i[1], i[2]) for i in focus["incidents"]] == [
        (r["id"], r["rule"], round(r["lon"], 6), round(r["lat"], 6)) for r in inside]
    assert len(inside) == 1 and len(stored) == 2


def test_a_chart_window_switch_redraws_the_speed_over_24_h_and_the_readings_over_7_days(world, store):
    from layers.panels import WINDOW_TYPE, window_figure

    vehicle = world.vehicles.iloc[0]
    n = 24 * 120  # 24 h at 30 s
    ms = np.int64(NOW.value // 1_000_000) - np.arange(n)[::-1].astype("int64") * 30_000
    store.write_pings(PingBatch.from_arrays(np.full(n, vehicle["id"], dtype=object), ms,
                                            vehicle.geometry.x + np.arange(n) * 1e-6, np.full(n, vehicle.geometry.y),
                                            speed_kmh=(np.arange(n) % 70).astype("float64")))
    panel = build_panel("vehicles", drilldown.truck(world, vehicle["id"], store=store, now=NOW), "en", [])
    (switch,) = _by_id_type(panel, WINDOW_TYPE)
    assert switch.id["name"] == "speed" and switch.value == 2 and [o["value"] for o in switch.options] == [2, 24]
    day = window_figure("vehicles", drilldown.chart_window(world, "vehicles", vehicle["id"], 24, store=store, now=NOW),
                        "en")
    stored = store.read_pings(NOW - pd.Timedelta(hours=24), NOW + pd.Timedelta(seconds=1), [vehicle["id"]])
    np.testing.assert_array_equal(day["data"][0]["y"], stored["speed_kmh"].to_numpy())
    # drawn on Ningbo's wall clock (UTC+8, no summer time): the axis shows 12:00 for 04:00 UTC
    np.testing.assert_array_equal(day["data"][0]["x"], stored["epoch_ms"].to_numpy("int64") + 8 * 3_600_000)
    assert len(day["data"][0]["y"]) == n

    point = world.monitoring_points.dropna(subset=["high", "high_high"]).iloc[1]
    week = 7 * 24 * 6  # 10 min readings over 7 days (both ends in), and one older
    ms = np.int64(NOW.value // 1_000_000) - np.arange(week + 2)[::-1].astype("int64") * 600_000
    store.write_readings(ReadingBatch.from_arrays(np.full(week + 2, point["id"], dtype=object), ms,
                                                  np.linspace(1, 2, week + 2)))
    for window, count in (("1h", 7), ("24h", 145), ("7d", week + 1)):
        figure = window_figure("monitoring_points", drilldown.chart_window(
            world, "monitoring_points", point["id"], window, store=store, now=NOW), "en")
        stored = store.read_readings(NOW - pd.Timedelta(hours=drilldown.READING_WINDOWS_H[window]),
                                     NOW + pd.Timedelta(milliseconds=1), [point["id"]])
        assert len(figure["data"][0]["y"]) == len(stored) == count, window
        assert [t["y"][0] for t in figure["data"][1:]] == [point["high"], point["high_high"]]
    with pytest.raises(ValueError, match="window"):
        drilldown.chart_window(world, "monitoring_points", point["id"], "2d", store=store, now=NOW)
    with pytest.raises(ValueError, match="hours"):
        drilldown.chart_window(world, "vehicles", vehicle["id"], 6, store=store, now=NOW)


def test_the_point_panel_lists_its_status_history_from_the_stored_point_rules(world, store):
    point = world.monitoring_points.iloc[2]
    store.write_events([
        *[ev(p, 0, 20 if p == "close" else None, rule="point_level", subject=point["id"], severity=1) for p in
          ("open", "close")],
        ev("open", 60, rule="point_interruption", subject=point["id"], severity=3),
        ev("open", 90, rule="point_level", subject=world.monitoring_points["id"].iloc[3], severity=2),  # another point
    ])
    panel = build_panel("monitoring_points", drilldown.monitoring_point(world, point["id"], store=store, now=NOW),
                        "en", [])
    (history,) = [n for n in _all(panel) if type(n).__name__ == "Table" and "hz-panel-status" in n.className]
    rows = [[c.children for c in tr.children] for tr in history.children[1].children]
    assert [r[1] for r in rows] == ["Point silent", "Level alarm"]  # newest first, the rules by their titles
    assert rows[0][3] == "ongoing" and rows[1][2] == "2026-11-02 09:00" and rows[1][3] == "2026-11-02 09:20"


def test_the_wash_station_counts_as_washed_only_the_truck_that_stopped_there(world, store):
    from spatial.crs import from_metric, to_metric

    station = world.wash_stations.iloc[0]
    washed, passing = world.vehicles["id"].iloc[2], world.vehicles["id"].iloc[3]
    sx, sy = to_metric([station.geometry.x], [station.geometry.y])
    start = int(NOW.value // 1_000_000) - 2 * 3_600_000
    ms = start + np.arange(80).astype("int64") * 30_000
    # one arrives from 2 km west, stays 25 min 40 m from the station, leaves east; the other drives through
    still = np.r_[np.linspace(-2000, 40, 20), np.full(50, 40.0), np.linspace(40, 2000, 10)]
    through = np.linspace(-2000, 2000, 80)
    lon, lat = from_metric(np.r_[sx[0] + still, sx[0] + through], np.full(160, sy[0] + 20.0))
    store.replace_world(world)
    store.write_pings(PingBatch.from_arrays(np.repeat(np.array([washed, passing], dtype=object), 80),
                                            np.tile(ms, 2), lon, lat, speed_kmh=np.full(160, 20.0)))
    data = drilldown.wash_station(world, station["id"], store=store, now=NOW)
    assert sorted(data["visits"]["vehicle_id"]) == sorted([washed, passing])
    assert data["washed"]["vehicle_id"].tolist() == [washed]
    panel = build_panel("wash_stations", data, "en", [])
    (table,) = [n for n in _all(panel) if type(n).__name__ == "Table" and "hz-panel-washed" in n.className]
    assert [tr.children[0].children.id["id"] for tr in table.children[1].children] == [washed]


def test_hazard_source_sparklines_draw_each_points_day_against_its_levels(world, store):
    import base64

    from layers.panels.monitoring_point import alarm_levels

    source_id = world.monitoring_points.dropna(subset=["high", "high_high"])["hazard_source_id"].iloc[0]
    points = world.monitoring_points[world.monitoring_points["hazard_source_id"] == source_id]
    ms = np.int64(NOW.value // 1_000_000) - np.arange(300)[::-1].astype("int64") * 60_000
    store.write_readings(ReadingBatch.from_arrays(np.repeat(points["id"].to_numpy(object), 300),
                                                  np.tile(ms, len(points)), np.tile(np.linspace(0, 1, 300), len(points))))
    panel = build_panel("hazard_sources", drilldown.hazard_source(world, source_id, store=store, now=NOW), "en", [])
    sparks = [n for n in _all(panel) if type(n).__name__ == "Img" and n.className == "hz-panel-spark"]
    assert len(sparks) == len(points)
    for spark, (_, point) in zip(sparks, points.iterrows(), strict=True):
        svg = base64.b64decode(spark.src.split(",", 1)[1]).decode()
        assert spark.to_plotly_json()["props"]["data-points"] == "300"
        levels = [v for v in alarm_levels(point.to_dict()) if v is not None]
        assert svg.count("<line") == len(levels) >= 1 and svg.count("<polyline") == 1
