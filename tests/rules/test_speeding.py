"""speeding against a brute-force oracle that does not use spatial/rules.

The oracle takes every road's exact distance to every ping (plain `shapely.distance` in
EPSG:32651), keeps the nearest within 30 m (ties: the lowest limit, then the lowest row),
tests every zone for containment, and replays the episode semantics with a simple sequential
reference in plain Python; the rule must agree event for event, on tracks that graze every
boundary, on random tracks, and however the pings are batched.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spatial.crs import from_metric, geometry_to_metric
from spatial.model import PingBatch
from spatial.rules.base import SEVERITY_HIGH, SEVERITY_MEDIUM, RuleWorld
from spatial.rules.speeding import SpeedingRule, SpeedingSettings
from tests.tracks import (
    ORIGIN_X,
    ORIGIN_Y,
    T0_MS,
    concat,
    layer,
    metric_geometry,
    rule_batch,
    tiny_world,
    track,
    vehicle,
)

VEH_A, VEH_B = "VEH-000000000001", "VEH-000000000002"
# Reference semantics (issue 4): speed - limit > 5 on consecutive pings for >= 30 s and >= 2
# pings opens; speed - limit > 5 - 3 keeps it open.
TOLERANCE_KMH, HYSTERESIS_KMH, MATCH_M, DEFAULT_KMH, MIN_DURATION_MS, MIN_PINGS = 5.0, 3.0, 30.0, 60.0, 30_000, 2


def road(k: int, line: shapely.LineString, limit: float) -> dict:
    return {"id": f"ROAD-{k}", "name": f"路{k}", "road_class": "expressway" if limit >= 80 else "urban",
            "speed_limit_kmh": limit, "geometry": metric_geometry(line)}


def zone(k: int, geom, limit: float | None, hours=("07:00", "09:00")) -> dict:
    return {"id": f"ZONE-{k}", "name": f"区{k}", "kind": "city_core", "closed_from": hours[0], "closed_to": hours[1],
            "barred_classes": [], "speed_limit_kmh": limit, "geometry": metric_geometry(geom)}


def make_world(roads: list[dict], zones: list[dict] = ()) -> RuleWorld:
    return RuleWorld(tiny_world(vehicles=layer("vehicles", [vehicle(VEH_A), vehicle(VEH_B)]),
                                roads=layer("roads", roads), restricted_zones=layer("restricted_zones", list(zones))))


# --- the oracle --------------------------------------------------------------------------

def oracle_limits(batch, world: RuleWorld):
    """Per ping: limit, its source, road id or None, zone id or None, by brute force over every
    feature."""
    points = shapely.points(batch.x, batch.y)
    roads, zones = world.world.roads, world.world.restricted_zones
    limit = np.full(len(batch), DEFAULT_KMH)
    source = np.full(len(batch), "default", dtype=object)
    road_id = np.full(len(batch), None, dtype=object)
    zone_id = np.full(len(batch), None, dtype=object)
    if len(roads):
        metric = np.asarray(geometry_to_metric(roads.geometry.to_numpy()), dtype=object)
        d = shapely.distance(points[:, None], metric[None, :])
        nearest = d.min(axis=1)
        for i in np.flatnonzero(nearest <= MATCH_M):
            tied = np.flatnonzero(d[i] == nearest[i])
            best = min(tied, key=lambda r: (roads["speed_limit_kmh"].iloc[r], r))
            limit[i], road_id[i], source[i] = roads["speed_limit_kmh"].iloc[best], roads["id"].iloc[best], "road"
    if len(zones):
        metric = np.asarray(geometry_to_metric(zones.geometry.to_numpy()), dtype=object)
        zl = pd.to_numeric(zones["speed_limit_kmh"]).to_numpy("float64")
        inside = shapely.intersects(metric[None, :], points[:, None]) & np.isfinite(zl)[None, :]
        for i in np.flatnonzero(inside.any(axis=1)):
            best = min(np.flatnonzero(inside[i]), key=lambda r: (zl[r], r))
            zone_id[i] = zones["id"].iloc[best]
            if zl[best] < limit[i]:
                limit[i], source[i] = zl[best], "zone"
    return limit, source, road_id, zone_id


def oracle(batch, world: RuleWorld) -> list[tuple]:
    limit, source, road_id, zone_id = oracle_limits(batch, world)
    out = []
    for v in pd.unique(batch.vehicle_id):
        phase, start, count, peak, top, derived, last = "idle", None, 0, -np.inf, -np.inf, False, None
        for i in np.flatnonzero(batch.vehicle_id == v):
            t, speed = int(batch.epoch_ms[i]), float(batch.speed_kmh[i])
            excess = speed - limit[i]
            enter = excess > TOLERANCE_KMH
            stay = excess > TOLERANCE_KMH - HYSTERESIS_KMH
            if phase == "open":
                if stay:
                    count, peak, top, last = count + 1, max(peak, excess), max(top, speed), i
                    derived |= bool(batch.speed_derived[i])
                    continue
                out.append(("close", v, start, int(batch.epoch_ms[last]), round(peak, 9), round(top, 9), derived,
                            count, t, SEVERITY_HIGH if peak > 20 else SEVERITY_MEDIUM))
                phase = "idle"
            if enter:
                if phase == "idle":
                    phase, start, count, peak, top, derived = "candidate", t, 0, -np.inf, -np.inf, False
                count, peak, top, last = count + 1, max(peak, excess), max(top, speed), i
                derived |= bool(batch.speed_derived[i])
                if phase == "candidate" and t - start >= MIN_DURATION_MS and count >= MIN_PINGS:
                    phase = "open"
                    out.append(("open", v, start, t, round(peak, 9), round(top, 9), derived, count,
                                round(speed, 9), float(limit[i]), source[i], road_id[i], zone_id[i],
                                SEVERITY_HIGH if peak > 20 else SEVERITY_MEDIUM))
            else:
                phase = "idle"
    return sorted(out, key=repr)


def ms(iso: str) -> int:
    return int(pd.Timestamp(iso).value // 1_000_000)


def summary(events) -> list[tuple]:
    out = []
    for e in events:
        ev = e.evidence
        start = int(e.start.value // 1_000_000)
        assert e.episode_id == f"speeding:{e.subject_id}:{start}" and pd.Timestamp(ev["first_ping"]) == e.start
        common = (round(ev["peak_excess_kmh"], 9), round(ev["peak_speed_kmh"], 9), ev["any_speed_derived"], ev["pings"])
        if e.phase == "open":
            assert e.end is None and ev["excess_kmh"] == ev["speed_kmh"] - ev["limit_kmh"]
            out.append(("open", e.subject_id, start, ms(ev["confirmed"]), *common, round(ev["speed_kmh"], 9),
                        ev["limit_kmh"], ev["limit_source"], ev["road_id"], ev["zone_id"], e.severity))
        else:
            assert pd.Timestamp(ev["last_ping"]) == e.end
            out.append(("close", e.subject_id, start, int(e.end.value // 1_000_000), *common, ms(ev["closed"]),
                        e.severity))
    return sorted(out, key=repr)


def run(rule, batches, world):
    state, events = rule.initial_state(), []
    for b in batches:
        state, new = rule.step(state, b, world)
        events += new
    return events


def by_episode(events):
    return sorted(events, key=lambda e: (e.episode_id, e.phase))


def check_streaming(rule, batch, world, cuts=None):
    """One batch ≡ single-ping batches (in time order) ≡ the given chunking; returns the events."""
    whole = run(rule, [batch], world)
    order = np.argsort(batch.epoch_ms, kind="stable")
    assert by_episode(run(rule, [batch.take(np.array([i])) for i in order], world)) == by_episode(whole)
    if cuts is not None:
        rank = np.empty(len(batch), "int64")
        rank[order] = np.arange(len(batch))
        chunk = np.searchsorted(np.sort(cuts), rank, side="right")
        assert by_episode(run(rule, [batch.take(chunk == c) for c in np.unique(chunk)], world)) == by_episode(whole)
    return whole


# --- tracks that graze every boundary ------------------------------------------------------

EAST = shapely.LineString([(-2000, 0), (30000, 0)])
EXPRESSWAY = [road(0, EAST, 80.0)]


def along(n: int, y: float = 0.0, step_m: float = 300.0):
    return [(step_m * i, y) for i in range(n)]


CASES = {
    # name: (roads, zones, lateral offset, speeds, gaps in s, expected (opens, closes))
    "85.1 on an 80 road": (EXPRESSWAY, [], 0, [60, 85.1, 85.1, 60], 30, (1, 1)),
    "84.9 on an 80 road": (EXPRESSWAY, [], 0, [60, 84.9, 84.9, 84.9, 60], 30, (0, 0)),
    "exactly 85 is not over": (EXPRESSWAY, [], 0, [85, 85, 85, 60], 30, (0, 0)),
    "29 s is too short": (EXPRESSWAY, [], 0, [60, 90, 90, 60], [30, 29, 30], (0, 0)),
    "one ping over": (EXPRESSWAY, [], 0, [60, 120, 60, 60], [30, 300, 30], (0, 0)),
    "road at 29.9 m gives 80": (EXPRESSWAY, [], 29.9, [70, 70, 70, 70], 30, (0, 0)),
    "road at 30.1 m: default 60": (EXPRESSWAY, [], 30.1, [70, 70, 70, 60], 30, (1, 1)),
    "hysteresis: 82.1 stays open": (EXPRESSWAY, [], 0, [86, 86, 82.1, 82.1, 86, 81.9, 86], 30, (1, 1)),
    "hysteresis: 81.9 closes": (EXPRESSWAY, [], 0, [86, 86, 81.9, 86, 86, 60], 30, (2, 2)),
    "a slower derived speed breaks": (EXPRESSWAY, [], 0, [86, np.nan, 86, 86, 86], 30, (1, 0)),
    "zone at 40 inside the 80 road": (
        EXPRESSWAY, [zone(0, shapely.box(500, -100, 2000, 100), 40.0)], 0, [50, 46, 46, 46, 46, 44, 41], 30, (1, 1)),
    "zone outside its closing hours still limits": (
        EXPRESSWAY, [zone(0, shapely.box(-100, -100, 5000, 100), 40.0, ("02:00", "03:00"))], 0,
        [46, 46, 46, 30], 30, (1, 1)),
    "zone without a limit does not lower it": (
        EXPRESSWAY, [zone(0, shapely.box(-100, -100, 5000, 100), None)], 0, [70, 70, 70], 30, (0, 0)),
    "a zone's higher limit does not raise it": (
        [road(0, EAST, 60.0)], [zone(0, shapely.box(-100, -100, 5000, 100), 80.0)], 0, [70, 70, 70], 30, (1, 0)),
    "nearly equal roads: the 80 is 0.001 m nearer": (
        [road(0, EAST.offset_curve(-10.0), 80.0), road(1, EAST.offset_curve(10.001), 60.0)], [], 0,
        [75, 75, 75, 60], 30, (0, 0)),
    "nearly equal roads: the 60 is 0.001 m nearer": (
        [road(0, EAST.offset_curve(-10.001), 80.0), road(1, EAST.offset_curve(10.0), 60.0)], [], 0,
        [75, 75, 75, 60], 30, (1, 1)),
    "overlapping roads tie: the lower limit": (
        [road(0, EAST, 80.0), road(1, EAST, 60.0), road(2, EAST, 60.0)], [], 0, [75, 75, 75, 60], 30, (1, 1)),
}


@pytest.mark.parametrize("name", CASES)
def test_boundaries_agree_with_the_oracle(name):
    roads, zones, lateral, speeds, gaps, (opens, closes) = CASES[name]
    world = make_world(roads, zones)
    batch = rule_batch(track(VEH_A, along(len(speeds), lateral), interval_s=gaps, speed_kmh=speeds), world)
    events = check_streaming(SpeedingRule(), batch, world, cuts=[1, 3])
    assert [e.phase for e in events].count("open") == opens
    assert [e.phase for e in events].count("close") == closes
    assert summary(events) == oracle(batch, world)


def test_open_and_close_carry_the_evidence():
    world = make_world(EXPRESSWAY)
    speeds = [80, 90, 104, 95, 60]
    batch = rule_batch(track(VEH_A, along(5), interval_s=30, speed_kmh=speeds), world)
    opened, closed = run(SpeedingRule(), [batch], world)
    ev = opened.evidence
    assert (opened.phase, closed.phase) == ("open", "close")
    assert opened.start == pd.Timestamp(T0_MS + 30_000, unit="ms", tz="UTC")
    assert (ev["speed_kmh"], ev["limit_kmh"], ev["excess_kmh"], ev["limit_source"]) == (104, 80, 24, "road")
    assert (ev["road_id"], ev["zone_id"], ev["speed_derived"], ev["pings"]) == ("ROAD-0", None, False, 2)
    assert opened.severity == SEVERITY_HIGH  # 24 km/h over
    assert closed.end == pd.Timestamp(T0_MS + 90_000, unit="ms", tz="UTC")
    assert closed.evidence["peak_speed_kmh"] == 104 and closed.evidence["peak_excess_kmh"] == 24
    assert closed.evidence["closing_speed_kmh"] == 60 and closed.evidence["closing_limit_kmh"] == 80
    assert closed.evidence["pings"] == 3
    assert closed.evidence["tolerance_kmh"] == 5 and closed.evidence["hysteresis_kmh"] == 3


def test_derived_speed_is_used_and_flagged():
    world = make_world(EXPRESSWAY)
    # 900 m every 30 s = 108 km/h, no reported speed
    batch = rule_batch(track(VEH_A, along(5, step_m=900.0), interval_s=30), world)
    (opened,) = run(SpeedingRule(), [batch], world)
    assert opened.evidence["speed_derived"] and opened.evidence["any_speed_derived"]
    assert opened.evidence["speed_kmh"] == pytest.approx(108, abs=1e-6)
    assert summary([opened]) == oracle(batch, world)


def test_no_roads_means_the_default_limit():
    world = make_world([])
    batch = rule_batch(track(VEH_A, along(4), interval_s=30, speed_kmh=[66, 66, 66, 66]), world)
    (opened,) = run(SpeedingRule(), [batch], world)
    assert (opened.evidence["limit_kmh"], opened.evidence["limit_source"]) == (60, "default")


def test_settings_are_checked_and_listed():
    from spatial.rules.base import settings_rows

    with pytest.raises(ValueError, match="speeding_hysteresis_kmh"):
        SpeedingSettings(speeding_hysteresis_kmh=-1)
    with pytest.raises(ValueError, match="default_limit_kmh"):
        SpeedingSettings(default_limit_kmh=0)
    rows = {r["name"]: r for r in settings_rows("speeding", SpeedingSettings())}
    assert rows["speed_tolerance_kmh"]["value"] == 5 and rows["speed_tolerance_kmh"]["unit"] == "km/h"
    assert "art. 46" in rows["default_limit_kmh"]["source"] and rows["road_match_m"]["value"] == 30


def test_bad_roads_and_zones_get_clear_errors():
    world = make_world([road(0, EAST, 80.0), road(1, EAST, float("nan"))])
    batch = rule_batch(track(VEH_A, along(2), interval_s=30, speed_kmh=[1, 1]), world)
    with pytest.raises(ValueError, match="ROAD-1"):
        SpeedingRule().step(SpeedingRule().initial_state(), batch, world)
    world = make_world(EXPRESSWAY, [zone(0, shapely.box(0, 0, 9, 9), 40.0), zone(1, shapely.box(0, 0, 9, 9), -5.0),
                                    zone(2, shapely.box(0, 0, 9, 9), None)])
    with pytest.raises(ValueError, match="ZONE-1$"):
        SpeedingRule().step(SpeedingRule().initial_state(), batch, world)


# --- random tracks ---------------------------------------------------------------------------

coord = st.integers(-1500, 1500).map(float)
LIMITS = [40.0, 60.0, 80.0]


@st.composite
def scenario(draw):
    roads = []
    for k in range(draw(st.integers(0, 4))):
        pts = draw(st.lists(st.tuples(coord, coord), min_size=2, max_size=3, unique=True))
        roads.append(road(k, shapely.LineString(pts), draw(st.sampled_from(LIMITS))))
    zones = []
    if draw(st.booleans()):
        x, y, w, h = draw(coord), draw(coord), draw(st.integers(50, 2000)), draw(st.integers(50, 2000))
        zones.append(zone(0, shapely.box(x, y, x + w, y + h), draw(st.sampled_from([30.0, 40.0, None]))))
    if roads and draw(st.booleans()):  # a twin of a road, for exact ties
        twin = dict(roads[0], id=f"ROAD-{len(roads)}", speed_limit_kmh=draw(st.sampled_from(LIMITS)))
        roads.append(twin)
    tracks = []
    for v in (VEH_A, VEH_B)[: draw(st.integers(1, 2))]:
        n = draw(st.integers(1, 16))
        xy = []  # absolute EPSG:32651 metres
        for _ in range(n):
            if roads and draw(st.booleans()):  # near a road, often grazing the 30 m match distance
                line = geometry_to_metric(draw(st.sampled_from(roads))["geometry"])
                p = shapely.line_interpolate_point(line, draw(st.floats(0, 1)), normalized=True)
                off = draw(st.one_of(st.sampled_from([0.0, 29.9, 30.1]), st.floats(0, 60)))
                a = draw(st.floats(0, 2 * np.pi))
                xy.append((p.x + off * np.cos(a), p.y + off * np.sin(a)))
            else:
                xy.append((ORIGIN_X + draw(coord), ORIGIN_Y + draw(coord)))
        grazing = [c + d for c in (*LIMITS, 30.0) for d in (5.1, 4.9, 2.1, 1.9)]
        speeds = [draw(st.one_of(st.just(np.nan), st.sampled_from(grazing), st.floats(0, 120))) for _ in range(n)]
        gaps = [draw(st.sampled_from([1.0, 15.0, 29.0, 30.0, 31.0, 120.0])) for _ in range(n - 1)]
        tracks.append((v, xy, speeds, gaps))
    cuts = draw(st.lists(st.integers(0, 32), max_size=5))
    return roads, zones, tracks, cuts


def build_pings(tracks) -> PingBatch:
    frames = []
    for v, xy, speeds, gaps in tracks:
        lon, lat = from_metric(*np.asarray(xy).T)
        t = T0_MS + np.r_[0, np.cumsum(np.asarray(gaps) * 1000)].astype("int64")[: len(xy)]
        frames.append(PingBatch.from_arrays([v] * len(xy), t, lon, lat, speed_kmh=speeds))
    return concat(frames)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_random_tracks_agree_with_the_oracle_however_batched(case):
    roads, zones, tracks, cuts = case
    world = make_world(roads, zones)
    batch = rule_batch(build_pings(tracks), world)
    events = check_streaming(SpeedingRule(), batch, world, cuts=cuts)
    assert summary(events) == oracle(batch, world)


# --- a realistic world ---------------------------------------------------------------------

def test_demo_world_trucks_agree_with_the_oracle():
    from data.demo import build_world

    world = RuleWorld(build_world(7, 0.01))
    wbs = world.world.waybills
    active = np.flatnonzero((wbs["status"] == "active").to_numpy())[:12]
    routes = np.asarray(geometry_to_metric(wbs.geometry.to_numpy()), dtype=object)
    rng = np.random.default_rng(5)
    frames = []
    for row in active:  # trucks on their planned routes (on the roads), some off by up to 60 m
        n = 25
        p = shapely.line_interpolate_point(routes[row], np.sort(rng.uniform(0, 1, n)), normalized=True)
        off = np.where(rng.uniform(size=n) < 0.2, rng.uniform(0, 60, n), 0.0)
        lon, lat = from_metric(shapely.get_x(p) + off, shapely.get_y(p))
        speed = rng.choice([45.0, 55.0, 66.0, 70.0, 86.0, 90.0], n)
        frames.append(PingBatch.from_arrays([wbs["vehicle_id"].iloc[row]] * n, T0_MS + 20_000 * np.arange(n),
                                            lon, lat, speed_kmh=speed))
    batch = rule_batch(concat(frames), world)
    events = run(SpeedingRule(), [batch], world)
    assert summary(events) == oracle(batch, world)
    assert sum(e.phase == "open" for e in events) >= 3
