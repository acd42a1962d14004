"""data/incident_view.py on both store backends: each rule's evidence as the store and the World hold
it (the track around the episode, the corridor, the site's ring, the zone, the positions, the
readings around a point's alarm), the impact view's subject, cargo, contacts and texts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from spatial.crs import geometry_to_metric
from spatial.model import PingBatch, ReadingBatch
from tests.incidents.helpers import ev

VEHICLE, WAYBILL = "VEH-000001", "WB-000002"  # seed 5: loaded 21:10-23:25 UTC, 1 Nov 2026
START = pd.Timestamp("2026-11-01T21:00Z")


@pytest.fixture(scope="module")
def world():
    from data.demo import build_world
    from data.reference import load_chemicals

    return build_world(seed=5, scale=0.01, chemicals=load_chemicals())


@pytest.fixture
def stored(store, world):
    from data.incidents import IncidentStore

    store.replace_world(world)
    n = 80
    ms = START.value // 1_000_000 + np.arange(n) * 30_000
    lon, lat = np.linspace(121.50, 121.54, n), np.linspace(29.90, 29.93, n)
    store.write_pings(PingBatch.from_arrays(np.full(n, VEHICLE, dtype=object), ms, lon, lat,
                                            speed_kmh=np.full(n, 40.0)))
    point = world.monitoring_points.iloc[0]
    store.write_readings(ReadingBatch.from_arrays(np.full(300, point["id"], dtype=object),
                                                  ms[0] + np.arange(300) * 60_000, np.arange(300.0)))
    site, zone = world.sensitive_sites.iloc[0], world.restricted_zones.iloc[0]
    incidents = IncidentStore(store, world)
    incidents.apply_events([
        ev("open", -225, rule="route_deviation", subject=VEHICLE, lon=lon[30], lat=lat[30],
           evidence={"waybill_id": WAYBILL, "corridor_m": 150.0}),
        ev("open", -225, rule="stop_near_sensitive_site", subject=VEHICLE, evidence={"site_id": site["id"],
                                                                                      "radius_m": 250.0}),
        ev("open", -224, rule="restricted_zone", subject=VEHICLE, evidence={"zone_id": zone["id"]}),
        ev("open", -230, rule="speeding", subject=VEHICLE), ev("close", -230, -220, rule="speeding", subject=VEHICLE),
        ev("open", -180, rule="point_level", subject=str(point["id"])),
    ])
    listed = incidents.list()
    ids = {r: i for r, i in zip(listed["rule"], listed["id"], strict=True)}
    return store, incidents, ids, (ms, lon, lat), point, site, zone


def _evidence(world, store, incidents, incident_id):
    from data.incident_view import evidence

    return evidence(world, incidents.show(incident_id)["incident"], store)


def test_each_rules_evidence_is_what_the_store_and_the_world_hold(world, stored):
    store, incidents, ids, (ms, lon, lat), point, site, zone = stored
    deviation = _evidence(world, store, incidents, ids["route_deviation"])
    # 21:15 ± 15 min of reports every 30 s: 21:00 (the first) to 21:30
    window = (ms >= ms[0]) & (ms <= ms[0] + 30 * 60_000)
    assert [p[0] for p in deviation["track"]] == ms[window].tolist()
    np.testing.assert_allclose([p[1:] for p in deviation["track"]], np.column_stack([lon, lat])[window])
    route = world.waybills.set_index("id").loc[WAYBILL].geometry
    assert len(deviation["route"]) == len(route.coords) and deviation["corridor_m"] == 150.0
    corridor = shapely.Polygon(deviation["corridor"][0][0], deviation["corridor"][0][1:])
    metric = geometry_to_metric(np.array([corridor, route], dtype=object))
    assert metric[0].area == pytest.approx(metric[1].buffer(150.0).area, rel=0.02)  # the route grown by 150 m

    stop = _evidence(world, store, incidents, ids["stop_near_sensitive_site"])
    ring = shapely.Polygon(stop["site"]["reach"][0][0])
    metric = geometry_to_metric(np.array([ring, site.geometry], dtype=object))
    assert stop["site"]["id"] == site["id"] and stop["site"]["radius_m"] == 250.0
    assert metric[0].area == pytest.approx(metric[1].buffer(250.0).area, rel=0.02)

    crossed = _evidence(world, store, incidents, ids["restricted_zone"])
    assert crossed["zone"]["id"] == zone["id"] and len(crossed["zone"]["outline"]) == len(
        getattr(zone.geometry, "geoms", [zone.geometry]))
    assert "entry" not in crossed  # the evidence named none

    speeding = _evidence(world, store, incidents, ids["speeding"])
    during = (ms >= ms[0] + 10 * 60_000) & (ms <= ms[0] + 20 * 60_000)  # 21:10-21:20, the episode
    np.testing.assert_allclose(speeding["positions"], np.column_stack([lon, lat])[during])

    alarm = _evidence(world, store, incidents, ids["point_level"])
    assert alarm["kind"] == "point_alarm" and alarm["point"] == [point.geometry.x, point.geometry.y]
    # 22:00 open: readings 21:00-23:00 (exclusive end), every minute from 21:00
    assert len(alarm["readings"]) == 120 and alarm["readings"]["epoch_ms"].iloc[0] == ms[0]


def test_the_impact_view_of_an_incident_uses_its_time_position_and_cargo(world, stored):
    from data.incident_view import impact_view

    store, incidents, ids, *_ = stored
    view = impact_view(world, ids["route_deviation"], store=store)
    assert view["subject_id"] == VEHICLE and view["waybill"]["id"] == WAYBILL
    goods = world.waybill_goods[world.waybill_goods["waybill_id"] == WAYBILL]["un_number"].astype(str)
    assert sorted(view["goods"]["un_number"].astype(str)) == sorted(goods)
    assert view["impact"].distances.period == "night"  # 05:15 Asia/Shanghai
    vehicle = world.vehicles.set_index("id").loc[VEHICLE]
    assert [c["role"] for c in view["contacts"]][0] == "carrier" and view["contacts"][0]["id"] == vehicle["carrier_id"]
    carrier = world.entities.set_index("id").loc[vehicle["carrier_id"]]
    assert (view["contacts"][0]["contact"], view["contacts"][0]["phone"]) == (carrier["contact"], carrier["phone"])
    if view["waybill"] is not None:  # a waybill's emergency phone is its carrier's duty phone
        assert view["waybill"]["emergency_phone"] == carrier["phone"]
    assert view["texts"] is not None and len(view["texts"]) == 0
    point_view = impact_view(world, ids["point_level"], store=store)
    assert point_view["subject_id"].startswith("HS-")  # a point's alarm: its hazard source in trouble
    with pytest.raises(LookupError):
        impact_view(world, "INC-0000000000000000", store=store)
    with pytest.raises(LookupError):
        impact_view(world, "SITE-000001", store=store)


def test_the_texts_table_shows_each_texts_state_and_the_terminals_answer():
    from data.incident_view import TEXT_COLUMNS
    from layers.panels.impact import texts_table

    at = pd.Timestamp("2026-11-01T21:00Z")
    frame = pd.DataFrame([
        ["D1", at, "duty", "靠边停车", "sent", 1, at, "success", 0, None],
        ["D2", at, "duty", "报告位置", "pending", 1, None, "no 0x0001 within 10 s", None, "timeout: no 0x0001"],
        ["D3", at, "dept", "停车", "dead", 5, None, None, None, "expired after 600 s"],
    ], columns=TEXT_COLUMNS)
    rows = texts_table(frame, "en").children[1].children
    assert [r.to_plotly_json()["props"]["data-status"] for r in rows] == ["sent", "pending", "dead"]
    cells = [[c.children for c in r.children] for r in rows]
    assert cells[0][3:] == ["answered", "0x0001 0 success"]
    assert cells[1][3:] == ["sending", "no 0x0001 within 10 s"]
    assert cells[2][3:] == ["failed", "expired after 600 s"]
    assert texts_table(frame.iloc[0:0], "en").className == "hz-panel-none"
