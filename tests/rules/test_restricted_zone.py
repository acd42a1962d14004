"""restricted_zone: boundary tables, a brute-force oracle that does not import spatial.rules, and
the streaming property.

The oracle walks every pair of consecutive pings of every vehicle against every zone with plain
shapely (EPSG:32651): the segment's intersection with the zone, its in-zone times interpolated at
constant speed, the closed hours by stepping through local days with zoneinfo, and the episode
logic (open at the first violating segment, stay while within the exit margin at closed hours
with barred cargo) in plain Python.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from data.demo import build_world
from data.reference import load_chemicals
from spatial.crs import geometry_to_metric
from spatial.rules.base import RuleBatch, RuleWorld, settings_rows
from spatial.rules.restricted_zone import RestrictedZoneRule, RestrictedZoneSettings
from tests.tracks import (
    ORIGIN_X,
    ORIGIN_Y,
    concat,
    layer,
    metric_geometry,
    rule_batch,
    tiny_world,
    track,
    vehicle,
)

A, B = "VEH-000001", "VEH-000002"
SHANGHAI = ZoneInfo("Asia/Shanghai")
MARGIN_M, MAX_GAP_MS = 30.0, 1_200_000


def local_ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="Asia/Shanghai").tz_convert("UTC").value // 1_000_000)


def zone(k: int, geom, kind="water_protection", hours=("00:00", "24:00"), barred=("1", "2.3", "6.1", "8")) -> dict:
    return {"id": f"ZONE-{k:03d}", "name": f"区{k}", "kind": kind, "closed_from": hours[0], "closed_to": hours[1],
            "barred_classes": list(barred), "speed_limit_kmh": None, "geometry": metric_geometry(geom)}


def make_world(zones: list[dict], cargo: list[list[tuple[str, str]]]) -> RuleWorld:
    departure = pd.Timestamp("2026-11-01", tz="UTC")
    waybills = layer("waybills", [
        {"id": f"WB-{i:06d}", "vehicle_id": A, "status": "active", "loading_site_id": "ENT-1",
         "unloading_site_id": "ENT-2", "consignor": "甲", "consignee": "乙", "carrier": "丙",
         "planned_departure": departure, "planned_arrival": departure + pd.Timedelta(days=3),
         "emergency_phone": "110", "geometry": metric_geometry(shapely.LineString([(0, 0), (5000, 0)]))}
        for i in range(len(cargo))])
    goods = pd.DataFrame(
        [{"waybill_id": f"WB-{i:06d}", "seq": k + 1, "un_number": un, "name": un, "hazard_class": cls,
          "packing_group": None, "quantity_t": 10.0} for i, items in enumerate(cargo) for k, (un, cls) in enumerate(items)],
        columns=["waybill_id", "seq", "un_number", "name", "hazard_class", "packing_group", "quantity_t"])
    world = tiny_world(vehicles=layer("vehicles", [vehicle(A), vehicle(B)]),
                       restricted_zones=layer("restricted_zones", zones), waybills=waybills, waybill_goods=goods)
    return RuleWorld(world)


def run(rule, world, batches):
    state, events = rule.initial_state(), []
    for b in batches:
        state, out = rule.step(state, b, world)
        events += out
    return state, events


# --- the oracle ----------------------------------------------------------------------------------

def oracle_first_closed(a_ms: int, b_ms: int, closed_from: str, closed_to: str) -> int | None:
    """The first instant in [a, b] (UTC ms) inside the zone's closed hours, stepping local days."""
    hf, mf = map(int, closed_from.split(":"))
    ht, mt = map(int, closed_to.split(":"))
    length = timedelta(hours=ht, minutes=mt) - timedelta(hours=hf, minutes=mf)
    if length <= timedelta(0):
        length += timedelta(days=1)
    a = datetime.fromtimestamp(a_ms / 1000, UTC)
    b = datetime.fromtimestamp(b_ms / 1000, UTC)
    day = a.astimezone(SHANGHAI).date() - timedelta(days=1)
    while True:
        opens = datetime(day.year, day.month, day.day, hf, mf, tzinfo=SHANGHAI)
        if opens > b:
            return None
        closes_again = opens + length
        if closes_again > a:  # [opens, closes_again) meets [a, b]
            first = max(a, opens)
            return round(first.timestamp() * 1000)
        day += timedelta(days=1)


def oracle_barred(cargo_classes: list[str], barred: list[str]) -> bool:
    return any(c == b or c.startswith(b + ".") for c in cargo_classes for b in barred)


def oracle(batch: RuleBatch, world: RuleWorld) -> list[tuple]:
    zones = world.world.restricted_zones
    geoms = geometry_to_metric(zones.geometry.to_numpy())
    goods = world.world.waybill_goods
    classes = [list(goods.loc[goods["waybill_id"] == w, "hazard_class"]) for w in world.world.waybills["id"]]
    out = []
    for v in pd.unique(batch.vehicle_id):
        idx = np.flatnonzero(batch.vehicle_id == v)
        for z in range(len(zones)):
            zrow = zones.iloc[z]
            state, start, prev = "idle", None, None
            for i in idx:
                x1, y1, t1 = batch.x[i], batch.y[i], int(batch.epoch_ms[i])
                if prev is None or t1 - batch.epoch_ms[prev] > MAX_GAP_MS:
                    x0, y0, t0 = x1, y1, t1
                    ends = [i]
                else:
                    x0, y0, t0 = batch.x[prev], batch.y[prev], int(batch.epoch_ms[prev])
                    ends = [prev, i]
                geom = shapely.Point(x1, y1) if (x0, y0) == (x1, y1) else shapely.LineString([(x0, y0), (x1, y1)])
                cargo = [c for e in ends if batch.loaded[e] and batch.waybill[e] >= 0 for c in classes[batch.waybill[e]]]
                barred = oracle_barred(cargo, list(zrow["barred_classes"]))
                hours = oracle_first_closed(t0, t1, zrow["closed_from"], zrow["closed_to"]) is not None
                near = shapely.dwithin(geom, geoms[z], MARGIN_M)
                stay = near and barred and hours
                entry = None
                if stay and shapely.intersects(geom, geoms[z]):
                    inter = shapely.intersection(geom, geoms[z])
                    for part in shapely.get_parts(inter):
                        if geom.geom_type == "Point":
                            lo, hi = 0.0, 1.0
                        else:
                            us = [geom.project(shapely.Point(c), normalized=True) for c in part.coords]
                            lo, hi = min(us), max(us)
                        a = t0 + math.floor(lo * (t1 - t0))
                        b = t0 + math.ceil(hi * (t1 - t0))
                        first = oracle_first_closed(a, b, zrow["closed_from"], zrow["closed_to"])
                        if first is not None and (entry is None or first < entry):
                            entry = first
                if state == "open" and not stay:
                    reason = "left_zone" if not near else ("no_barred_cargo" if not barred else "outside_closed_hours")
                    out.append(("close", v, zrow["id"], start, int(batch.epoch_ms[prev]), reason))
                    state = "idle"
                if state == "idle" and entry is not None:
                    state, start = "open", entry
                    out.append(("open", v, zrow["id"], start))
                prev = i
    return sorted(out, key=repr)


def summary(events) -> list[tuple]:
    out = []
    for e in events:
        start = int(e.start.value // 1_000_000)
        ev = e.evidence
        assert e.episode_id == f"restricted_zone:{e.subject_id}:{ev['zone_id']}:{start}"
        assert pd.Timestamp(ev["entry_time"]) == e.start
        if e.phase == "open":
            out.append(("open", e.subject_id, ev["zone_id"], start))
        else:
            out.append(("close", e.subject_id, ev["zone_id"], start, int(e.end.value // 1_000_000),
                        ev["close_reason"]))
    return sorted(out, key=repr)


# --- boundary tables ----------------------------------------------------------------------------

SQUARE = shapely.box(1000, -100, 1200, 100)
CORNER = shapely.Polygon([(1000, 0), (1100, 0), (1100, 100)])  # a corner pointing at the track below
CHLORINE = [("1017", "2.3")]
FIREWORKS = [("0336", "1.4G")]
SAFETY_FUSE = [("0105", "1.4S")]
PROPANE = [("1978", "2.1")]


def crossing(y: float = 0.0, start_ms: int | None = None, step_m: float = 600.0, n: int = 4, interval_s=30.0):
    """A truck along y from x = 0 eastwards, `step_m` per ping: with 600 m steps the pings lie at
    0, 600, 1200 (on the square's edge), 1800."""
    return track(A, [(step_m * k, y) for k in range(n)], start_ms=start_ms or local_ms("2026-11-02 10:00"),
                 interval_s=interval_s)


CASES = {
    # name: (zones, cargo, pings, loaded, expected opens)
    "crossing, all-day zone": ([zone(1, SQUARE)], CHLORINE, crossing(), True, 1),
    "both pings outside: the segment crosses": (
        [zone(1, shapely.box(700, -100, 900, 100))], CHLORINE, crossing(), True, 1),
    "segment clips a corner (0.5 m deep) with both pings outside": (
        [zone(1, shapely.Polygon([(800, -0.5), (900, 100), (700, 100)]))], CHLORINE, crossing(), True, 1),
    "segment passes 0.5 m below a corner": (
        [zone(1, shapely.Polygon([(800, 0.5), (900, 100), (700, 100)]))], CHLORINE, crossing(), True, 0),
    "empty truck is ignored": ([zone(1, SQUARE)], CHLORINE, crossing(), False, 0),
    "barred 1 covers 1.4S": ([zone(1, SQUARE, barred=("1",))], SAFETY_FUSE, crossing(), True, 1),
    "barred 1.4 does not cover 1.4G (no dot)": ([zone(1, SQUARE, barred=("1.4",))], FIREWORKS, crossing(), True, 0),
    "barred 2.3 does not cover 2.1": ([zone(1, SQUARE, barred=("2.3",))], PROPANE, crossing(), True, 0),
    "barred 2 covers 2.1": ([zone(1, SQUARE, barred=("2",))], PROPANE, crossing(), True, 1),
    "07:00-09:00 at 10:00 is open": ([zone(1, SQUARE, hours=("07:00", "09:00"))], CHLORINE, crossing(), True, 0),
    "07:00-09:00 at 08:00 is closed": (
        [zone(1, SQUARE, hours=("07:00", "09:00"))], CHLORINE, crossing(start_ms=local_ms("2026-11-02 08:00")), True, 1),
    "wrap 22:00-06:00 at 23:59": (
        [zone(1, SQUARE, hours=("22:00", "06:00"))], CHLORINE, crossing(start_ms=local_ms("2026-11-02 23:58")), True, 1),
    "wrap 22:00-06:00 at 06:00 is open": (
        [zone(1, SQUARE, hours=("22:00", "06:00"))], CHLORINE, crossing(start_ms=local_ms("2026-11-03 06:00")), True, 0),
    "wrap 22:00-06:00 at 05:59 is closed": (
        [zone(1, SQUARE, hours=("22:00", "06:00"))], CHLORINE,
        crossing(start_ms=local_ms("2026-11-03 05:58:59")), True, 1),
    "closes at 24:00: inside at 23:59:59 (single ping)": (
        [zone(1, SQUARE, hours=("20:00", "24:00"))], CHLORINE,
        track(A, [(1100, 0)], start_ms=local_ms("2026-11-02 23:59:59")), True, 1),
    "closes at 24:00: 00:00:00 is open": (
        [zone(1, SQUARE, hours=("20:00", "24:00"))], CHLORINE,
        track(A, [(1100, 0)], start_ms=local_ms("2026-11-03 00:00:00")), True, 0),
    "in the zone at 23:59:35-40, window opens at 00:00: open": (
        # the segment 23:59:30 -> 00:00:00 reaches the window only at its end, outside the zone
        [zone(1, shapely.box(700, -100, 900, 100), hours=("00:00", "06:00"))], CHLORINE,
        crossing(start_ms=local_ms("2026-11-02 23:59:00")), True, 0),
    "in the zone at 00:00:15-20, window opens at 00:00: closed": (
        [zone(1, shapely.box(1500, -100, 1600, 100), hours=("00:00", "06:00"))], CHLORINE,
        crossing(start_ms=local_ms("2026-11-02 23:59:00")), True, 1),
    "a long gap is not a path": ([zone(1, shapely.box(700, -100, 900, 100))], CHLORINE,
                                 crossing(interval_s=[30, 1300, 30]), True, 0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_boundary_table(name):
    zones, cargo, pings, loaded, opens = CASES[name]
    world = make_world(zones, [cargo])
    batch = rule_batch(pings, world, waybill=0, loaded=loaded)
    _, events = run(RestrictedZoneRule(), world, [batch])
    assert sum(e.phase == "open" for e in events) == opens
    assert summary(events) == oracle(batch, world)


def test_open_and_close_carry_the_evidence():
    world = make_world([zone(1, shapely.box(700, -100, 900, 100))], [CHLORINE + [("1203", "3")]])
    batch = rule_batch(crossing(), world, waybill=0, loaded=True)
    _, events = run(RestrictedZoneRule(), world, [batch])
    opened, closed = events
    assert (opened.phase, closed.phase) == ("open", "close") and opened.severity == 1
    ev = opened.evidence
    assert ev["barred_classes_hit"] == ["2.3"] and ev["un_numbers_hit"] == ["1017"] and ev["waybill_id"] == "WB-000000"
    assert ev["pings_outside"] is True and ev["zone_kind"] == "water_protection"
    t0 = local_ms("2026-11-02 10:00")
    assert opened.start == pd.Timestamp(t0 + 30_000 + 5_000, unit="ms", tz="UTC")  # x = 700 at 100/600 of 30 s
    assert ev["entry_time_local"].endswith("+08:00") and ev["entry_time_local"].startswith("2026-11-02T10:00:35")
    x, y = geometry_to_metric(np.array([shapely.Point(ev["entry_lon"], ev["entry_lat"])]))[0].coords[0]
    assert abs(x - ORIGIN_X - 700) < 1e-3 and abs(y - ORIGIN_Y) < 1e-3
    assert closed.end == pd.Timestamp(t0 + 60_000, unit="ms", tz="UTC")  # the last ping of the crossing segment
    assert closed.evidence["close_reason"] == "left_zone" and closed.evidence["segments"] == 1


def test_hysteresis_one_episode_along_the_edge():
    """A truck driving 10 m outside a zone's edge, every third ping 10 m inside (GNSS wobble),
    raises one episode; without the exit margin each dip is an episode of its own."""
    edge = shapely.box(0, 0, 20_000, 1000)
    wobble = [(300.0 * k, 10.0 if k % 3 == 2 else -10.0) for k in range(20)] + [(6000, -500), (6300, -500)]
    world = make_world([zone(1, edge, kind="tunnel")], [CHLORINE])
    batch = rule_batch(track(A, wobble), world, waybill=0, loaded=True)
    _, events = run(RestrictedZoneRule(), world, [batch])
    assert [e.phase for e in events] == ["open", "close"] and events[0].severity == 2
    assert summary(events) == oracle(batch, world)
    _, flapping = run(RestrictedZoneRule(RestrictedZoneSettings(exit_margin_m=0.0)), world, [batch])
    assert sum(e.phase == "open" for e in flapping) == 6


def test_closing_hours_end_the_episode():
    core = shapely.box(-5000, -5000, 5000, 5000)
    world = make_world([zone(1, core, kind="city_core", hours=("07:00", "09:00"), barred=("2",))], [CHLORINE])
    pings = track(A, [(0, 0)] * 12, start_ms=local_ms("2026-11-02 08:55"), interval_s=60)
    batch = rule_batch(pings, world, waybill=0, loaded=True)
    _, events = run(RestrictedZoneRule(), world, [batch])
    assert [e.phase for e in events] == ["open", "close"]
    assert events[0].start == pd.Timestamp(local_ms("2026-11-02 08:55"), unit="ms", tz="UTC")
    # the segment 08:59 -> 09:00 still overlaps the window; 09:00 -> 09:01 does not
    assert events[1].end == pd.Timestamp(local_ms("2026-11-02 09:00"), unit="ms", tz="UTC")
    assert events[1].evidence["close_reason"] == "outside_closed_hours"
    assert summary(events) == oracle(batch, world)


def test_unloading_ends_the_episode_and_a_loaded_end_counts():
    world = make_world([zone(1, shapely.box(-100, -100, 100, 100))], [CHLORINE])
    pings = track(A, [(0, 0), (10, 0), (20, 0), (30, 0)])
    batch = rule_batch(pings, world, waybill=np.array([0, 0, -1, -1]), loaded=np.array([True, True, False, False]))
    _, events = run(RestrictedZoneRule(), world, [batch])
    assert [e.phase for e in events] == ["open", "close"]
    # the segment 2nd -> 3rd ping still has the cargo at its start; 3rd -> 4th has none
    assert events[1].end == pd.Timestamp(int(batch.epoch_ms[2]), unit="ms", tz="UTC")
    assert events[1].evidence["close_reason"] == "no_barred_cargo"


def test_empty_batch_and_no_zones():
    world = make_world([zone(1, SQUARE)], [CHLORINE])
    rule = RestrictedZoneRule()
    _state, events = rule.step(rule.initial_state(), RuleBatch.empty().with_columns(clock_ms=5), world)
    assert events == []
    no_zones = make_world([], [CHLORINE])
    assert run(rule, no_zones, [rule_batch(crossing(), no_zones, waybill=0, loaded=True)])[1] == []


@pytest.mark.parametrize("overrides, message", [
    ({"closed_from": "07:00", "closed_to": "07:00"}, "ambiguous"),
    ({"closed_from": "7:00"}, "closed_from"),
    ({"closed_to": "24:01"}, "closed_to"),
    ({"barred_classes": "1"}, "barred_classes"),
])
def test_bad_zones_are_named(overrides, message):
    world = make_world([{**zone(1, SQUARE), **overrides}], [CHLORINE])
    with pytest.raises(ValueError, match=message) as caught:
        run(RestrictedZoneRule(), world, [rule_batch(crossing(), world, waybill=0, loaded=True)])
    assert "ZONE-001" in str(caught.value)


def test_bad_settings_and_listing():
    with pytest.raises(ValueError, match="exit_margin_m"):
        RestrictedZoneSettings(exit_margin_m=-1)
    rows = settings_rows("restricted_zone", RestrictedZoneSettings())
    assert {r["name"] for r in rows} == {"exit_margin_m", "max_segment_gap_s", "loading_site_match_m"} and all(
        r["unit"] and r["source"] for r in rows)
    with pytest.raises(ValueError, match="loading_site_match_m"):
        RestrictedZoneSettings(loading_site_match_m=float("nan"))


# --- random tracks: the oracle and the streaming property -------------------------------------

RANDOM_ZONES = [
    zone(1, shapely.box(400, 400, 900, 900)),
    zone(2, shapely.Polygon([(-800, -200), (-200, -900), (-100, -100)]), kind="tunnel", hours=("22:00", "06:00")),
    zone(3, shapely.Point(0, 0).buffer(300), kind="city_core", hours=("07:00", "09:00"), barred=("2",)),
    zone(4, shapely.box(-1000, 500, -300, 1000), kind="scenic", hours=("08:00", "08:10"), barred=("1",)),
]
RANDOM_WORLD = make_world(RANDOM_ZONES, [CHLORINE, SAFETY_FUSE, PROPANE, [("1203", "3")]])


@st.composite
def fleet(draw):
    frames = []
    for v in (A, B):
        n = draw(st.integers(1, 25))
        xy = draw(st.lists(st.tuples(st.integers(-1200, 1200), st.integers(-1200, 1200)), min_size=n, max_size=n))
        gaps = draw(st.lists(st.sampled_from([5, 30, 60, 300, 1300, 3600]), min_size=n, max_size=n))
        start = local_ms("2026-11-02 06:50") + draw(st.integers(0, 20)) * 3_600_000 // 4
        frames.append(track(v, xy, start_ms=start, interval_s=gaps[:-1] or 30.0))
    pings = concat(frames)
    n = len(pings)
    waybill = np.array(draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n)))
    loaded = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=6))))
    return pings, waybill, loaded, cuts


def chunks(batch: RuleBatch, cuts) -> list[RuleBatch]:
    rank = np.empty(len(batch), "int64")
    rank[np.argsort(batch.epoch_ms, kind="stable")] = np.arange(len(batch))
    part = np.searchsorted(np.asarray(cuts, "int64"), rank, side="right")
    return [batch.take(part == c) for c in np.unique(part)]


def canonical(events):
    return sorted((e.episode_id, e.phase, e.start, e.end, e.lon, e.lat, e.severity, repr(sorted(e.evidence.items())))
                  for e in events)


@hsettings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet())
def test_random_tracks_agree_with_the_oracle_however_batched(case):
    pings, waybill, loaded, cuts = case
    batch = rule_batch(pings, RANDOM_WORLD)
    batch = batch.with_columns(waybill=waybill, loaded=loaded)
    rule = RestrictedZoneRule()
    _, whole = run(rule, RANDOM_WORLD, [batch])
    assert summary(whole) == oracle(batch, RANDOM_WORLD)
    order = np.argsort(batch.epoch_ms, kind="stable")
    _, single = run(rule, RANDOM_WORLD, [batch.take(np.array([i])) for i in order])
    _, chunked = run(rule, RANDOM_WORLD, chunks(batch, cuts))
    assert canonical(single) == canonical(whole) == canonical(chunked)


def test_state_is_not_mutated_by_a_step():
    world = make_world([zone(1, shapely.box(700, -100, 900, 100))], [CHLORINE])
    batch = rule_batch(crossing(n=2), world, waybill=0, loaded=True)
    rule = RestrictedZoneRule()
    state, first = rule.step(rule.initial_state(), batch, world)
    rest = rule_batch(track(A, [(1200, 0), (1800, 0)], start_ms=int(batch.epoch_ms[-1]) + 30_000),
                      world, waybill=0, loaded=True)
    _, again1 = rule.step(state, rest, world)
    _, again2 = rule.step(state, rest, world)
    assert canonical(again1) == canonical(again2) and [e.phase for e in first + again1] == ["open", "close"]


# --- the demo world ---------------------------------------------------------------------------

def test_demo_world_zones_catch_a_truck_through_each():
    world = build_world(20211, scale=0.01)
    world.chemicals = load_chemicals()
    rw = RuleWorld(world)
    zones = world.restricted_zones
    assert len(zones) == 8 and set(zones["kind"]) == {"water_protection", "tunnel", "city_core"}
    # one loaded truck with an all-barred cargo (class 2.3) straight through each zone's middle at 08:00 local
    metric = geometry_to_metric(zones.geometry.to_numpy())
    wb = int(np.flatnonzero(world.waybills["id"].isin(
        world.waybill_goods.loc[world.waybill_goods["hazard_class"] == "2.3", "waybill_id"]))[0])
    frames = []
    for k, geom in enumerate(metric):
        p = shapely.get_coordinates(geom.point_on_surface())[0]
        xy = np.array([p + (-3000, 0), p + (-1, 0), p + (1, 0), p + (3000, 0)]) - (ORIGIN_X, ORIGIN_Y)
        frames.append(track(world.vehicles["id"].iloc[k], xy, start_ms=local_ms("2026-11-02 08:00") + k * 3_600_000,
                            interval_s=60))
    batch = rule_batch(concat(frames), rw, waybill=wb, loaded=True)
    _, events = run(RestrictedZoneRule(), rw, [batch])
    opened = {e.evidence["zone_id"] for e in events if e.phase == "open"}
    hours = [int(pd.Timestamp(local_ms("2026-11-02 08:00") + k * 3_600_000, unit="ms", tz="UTC")
                 .tz_convert("Asia/Shanghai").hour) for k in range(8)]
    expected = {z.id for k, z in enumerate(zones.itertuples())
                if z.kind != "city_core" or (int(z.closed_from[:2]) <= hours[k] < int(z.closed_to[:2]))}
    assert opened == expected and len(expected) >= 6
    assert {e.severity for e in events if e.evidence["zone_kind"] == "water_protection"} == {1}


# --- loaded only while it moves loaded (issue 11) ---------------------------------------------------

CORE = shapely.box(-2000, -2000, 2000, 2000)  # a city core around the loading site at (0, 0)


def loading_world(actual_departure: pd.Timestamp | None = None) -> RuleWorld:
    rw = make_world([zone(1, CORE, kind="city_core", barred=("2",))], [CHLORINE])
    rw.world.entities = layer("entities", [
        {"id": k, "name": k, "licensed": True, "category": "production", "district_adcode": "330212",
         "park_id": None, "geometry": metric_geometry(shapely.Point(*xy))}
        for k, xy in (("ENT-1", (0, 0)), ("ENT-2", (5000, 0)))])
    if actual_departure is not None:
        rw.world.waybills["actual_departure"] = [actual_departure]
    return rw


def standing_then_leaving():
    """20 min at the loading site (loaded: the waybill is in force), then out east at 300 m a ping."""
    start = local_ms("2026-11-02 10:00")
    xy = [(5.0 * (k % 2), 0.0) for k in range(40)] + [(150.0 * k, 0.0) for k in range(1, 20)]
    return track(A, xy, start_ms=start)


def test_standing_loaded_at_the_loading_site_is_not_moving_loaded():
    world = loading_world()
    pings = standing_then_leaving()
    batch = rule_batch(pings, world, waybill=0, loaded=True)
    _, events = run(RestrictedZoneRule(), world, [batch])
    (opening,) = [e for e in events if e.phase == "open"]
    # the entry is the start of the first segment that ends more than 300 m from the loading site
    set_off_ms = int(batch.epoch_ms[np.flatnonzero(batch.x - batch.x[0] > 300.0)[0] - 1])
    assert int(opening.start.value // 1_000_000) == set_off_ms
    # the same pings one at a time: the state carries "set off"
    _, one_by_one = run(RestrictedZoneRule(), world, [batch.take(np.array([i])) for i in range(len(batch))])
    assert summary(one_by_one) == summary(events)
    # standing only: nothing
    _, quiet = run(RestrictedZoneRule(), world, [batch.take(np.arange(40))])
    assert quiet == []


def test_an_actual_departure_or_an_unknown_loading_site_counts_from_the_start():
    pings = standing_then_leaving()
    first_ms = int(pings.epoch_ms[0])
    for world in (loading_world(pd.Timestamp(first_ms, unit="ms", tz="UTC")), make_world(
            [zone(1, CORE, kind="city_core", barred=("2",))], [CHLORINE])):
        _, events = run(RestrictedZoneRule(), world, [rule_batch(pings, world, waybill=0, loaded=True)])
        assert [int(e.start.value // 1_000_000) for e in events if e.phase == "open"] == [first_ms]
