"""suspected_washing: boundary tables, a brute-force oracle, streaming, the engine end to end.

Uses the dwell-scenario helpers of test_illegal_parking (hand-built stops with their pings, cut
into batches by arrival time). The oracle does not import spatial.rules: exact shapely
distances from each stop to every wash station, parking lot, repair shop and entity, and to the
drinking-water zones, with the timing rule restated plainly.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from spatial.rules.base import RuleBatch, RuleWorld, settings_rows
from spatial.rules.suspected_washing import (
    SuspectedWashingRule,
    SuspectedWashingSettings,
)
from tests.rules.test_illegal_parking import (
    LOADING,
    LOT,
    OPEN_ROAD,
    ORIGIN_X,
    ORIGIN_Y,
    SEC,
    SHOP,
    STATION,
    T1,
    EngineWith,
    Stop,
    check_streaming,
    dwell_world,
    found,
    metric,
    oracle_timing,
    random_stops,
    run,
    scenario,
    split,
    vid,
)
from tests.tracks import track

EXTRA_ENTITY = (12_000.0, 12_000.0)
WORLD = dwell_world(extra_entities=[EXTRA_ENTITY])
EMPTY = {"loaded": False, "waybill": -1}


def oracle_washing(world: RuleWorld, stops: list[Stop], min_s=1800.0, place_m=150.0, entity_m=300.0,
                   water_m=500.0) -> dict:
    w = world.world
    places = [(metric(g), place_m) for table in ("wash_stations", "parking_lots", "repair_shops")
              for g in w.table(table).geometry] + [(metric(g), entity_m) for g in w.entities.geometry]
    water = [metric(g) for table in ("sensitive_sites", "restricted_zones")
             for g, kind in zip(w.table(table).geometry, w.table(table)["kind"]) if kind == "water_protection"]
    tank = dict(zip(range(len(w.vehicles)), w.vehicles["body"] == "tank"))
    out = {}
    for stop in stops:
        row = stop.slot if stop.waybill is None else stop.waybill
        if (stop.loaded and row >= 0) or not tank.get(stop.slot, False):
            continue
        p = shapely.Point(ORIGIN_X + stop.xy[0], ORIGIN_Y + stop.xy[1])
        if any(shapely.distance(p, g) <= r for g, r in places):
            continue
        opened, closed = oracle_timing(stop, min_s)
        if opened is None:
            continue
        near_water = any(shapely.distance(p, g) <= water_m for g in water)
        out[(vid(stop.slot), stop.start_ms)] = (opened, closed, 2 if near_water else 3)
    return out


WATER_EDGE_Y = -7000.0  # the sensitive site's north edge (the restricted zone lies 200 m inside it)
CASES = [
    # (case, slot, stop offset, dwell s, stop flags, expected severity or None)
    ("1799 s on the open road", 1, OPEN_ROAD, 1799, EMPTY, None),
    ("1800 s on the open road", 1, OPEN_ROAD, 1800, EMPTY, 3),
    ("loaded tank", 1, OPEN_ROAD, 3600, {"loaded": True}, None),
    ("loaded flag without a waybill is empty", 1, OPEN_ROAD, 3600, {"loaded": True, "waybill": -1}, 3),
    ("on a waybill but not loaded", 1, OPEN_ROAD, 3600, {"loaded": False}, 3),
    ("a van", 2, OPEN_ROAD, 3600, EMPTY, None),
    ("149.9 m from the wash station", 1, (STATION[0] + 149.9, STATION[1]), 3600, EMPTY, None),
    ("150.1 m from the wash station", 1, (STATION[0] + 150.1, STATION[1]), 3600, EMPTY, 3),
    ("149.9 m from the lot", 1, (LOT[0], LOT[1] + 149.9), 3600, EMPTY, None),
    ("149.9 m from the repair shop", 1, (SHOP[0] - 149.9, SHOP[1]), 3600, EMPTY, None),
    ("299.9 m from any entity", 1, (EXTRA_ENTITY[0] + 299.9, EXTRA_ENTITY[1]), 3600, EMPTY, None),
    ("300.1 m from any entity", 1, (EXTRA_ENTITY[0] + 300.1, EXTRA_ENTITY[1]), 3600, EMPTY, 3),
    ("299.9 m from its loading site", 1, (LOADING[0], 299.9), 3600, EMPTY, None),
    ("499 m from water", 1, (0.0, WATER_EDGE_Y + 499), 3600, EMPTY, 2),
    ("501 m from water", 1, (0.0, WATER_EDGE_Y + 501), 3600, EMPTY, 3),
    ("inside the water zone", 3, (0.0, -8000.0), 3600, EMPTY, 2),
    ("a service area does not excuse washing", 1, (0.0, 4000.0), 3600, EMPTY, 3),
]


@pytest.mark.parametrize("case,slot,xy,dwell_s,flags,expected", CASES, ids=[c[0] for c in CASES])
def test_boundary_table(case, slot, xy, dwell_s, flags, expected):
    stops = [Stop(slot, xy, T1, dwell_s, **flags)]
    _, events = run(SuspectedWashingRule(), WORLD, split(scenario(WORLD, stops), []))
    want = oracle_washing(WORLD, stops)
    assert found(events) == want
    assert (want[(vid(slot), T1)][2] if want else None) == expected
    if expected:
        opened = events[0]
        assert opened.episode_id == f"suspected_washing:{vid(slot)}:{T1}"
        assert opened.evidence["near_water"] == (expected == 2)
        assert opened.evidence["dwell_s"] == 1800.0 and opened.evidence["washing_min_s"] == 1800.0
        assert json.dumps(opened.evidence)


def test_nearest_water_evidence():
    stop = Stop(1, (0.0, WATER_EDGE_Y + 100), T1, 2000, **EMPTY)
    _, events = run(SuspectedWashingRule(), WORLD, split(scenario(WORLD, [stop]), []))
    opened, closed = events
    assert opened.evidence["nearest_water"] == {"id": "SITE-1", "kind": "sensitive_sites",
                                                "distance_m": pytest.approx(100, abs=1e-6)}
    assert closed.evidence["duration_s"] == 2000 and closed.severity == 2
    # the restricted zone alone counts too
    world = dwell_world(extra_entities=[EXTRA_ENTITY])
    world.world.sensitive_sites = world.world.sensitive_sites.iloc[:0]
    world = RuleWorld(world.world)
    stop = Stop(1, (0.0, WATER_EDGE_Y - 200 + 450), T1, 2000, **EMPTY)
    _, events = run(SuspectedWashingRule(), world, split(scenario(world, [stop]), []))
    assert events[0].evidence["nearest_water"]["kind"] == "restricted_zones" and events[0].severity == 2


def test_settings():
    rows = settings_rows("suspected_washing", SuspectedWashingSettings())
    assert {r["name"]: r["value"] for r in rows} == {
        "washing_min_s": 1800.0, "wash_station_match_m": 150.0, "parking_lot_match_m": 150.0,
        "repair_shop_match_m": 150.0, "entity_match_m": 300.0, "near_water_m": 500.0}
    with pytest.raises(ValueError, match="near_water_m"):
        SuspectedWashingSettings(near_water_m=-5)
    rule = SuspectedWashingRule(SuspectedWashingSettings(washing_min_s=600, near_water_m=1000))
    stops = [Stop(1, (0.0, WATER_EDGE_Y + 800), T1, 700, **EMPTY)]
    _, events = run(rule, WORLD, split(scenario(WORLD, stops), []))
    assert found(events) == oracle_washing(WORLD, stops, min_s=600, water_m=1000) != {}
    assert events[0].severity == 2


def test_empty_batch():
    rule = SuspectedWashingRule()
    assert rule.step(rule.initial_state(), RuleBatch.empty().with_columns(clock_ms=T1), WORLD)[1] == []


@st.composite
def empty_leaning_stops(draw):
    stops = draw(random_stops())
    return [s if draw(st.booleans()) else Stop(s.slot, s.xy, s.start_ms, s.dwell_s, s.closes, False, -1)
            for s in stops]


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stops=empty_leaning_stops(), data=st.data())
def test_streaming_and_oracle_on_random_stops(stops, data):
    check_streaming(SuspectedWashingRule(), WORLD, stops, None, data, oracle_washing)


def test_engine_an_empty_tank_idles_by_the_road():
    # slot 1's waybill: departure T0-1h; make the truck empty by running it after the waybill ends
    world = dwell_world(extra_entities=[EXTRA_ENTITY])
    wb = world.world.waybills
    wb["planned_arrival"] = wb["planned_departure"] + pd.Timedelta(minutes=10)
    world = RuleWorld(world.world)
    start = T1 + 4 * 3600 * SEC  # long after arrival + the 2 h grace
    drive = [(OPEN_ROAD[0] - 600 * (10 - k), OPEN_ROAD[1]) for k in range(10)]
    idle = [(OPEN_ROAD[0] + (-1) ** k * 2.0, OPEN_ROAD[1]) for k in range(70)]  # 34.5 min
    leave = [(OPEN_ROAD[0] + 900 * k, OPEN_ROAD[1]) for k in range(1, 4)]
    pings = track(vid(1), drive + idle + leave, start_ms=start)
    events = [e for e in EngineWith(world.world, SuspectedWashingRule()).run(pings) if e.rule == "suspected_washing"]
    assert [e.phase for e in events] == ["open", "close"]
    assert events[0].evidence["dwell_s"] == 1800.0 and events[0].severity == 3
    # the same idle by a van raises nothing
    van = track(vid(2), drive + idle + leave, start_ms=start)
    assert not [e for e in EngineWith(world.world, SuspectedWashingRule()).run(van) if e.rule == "suspected_washing"]
