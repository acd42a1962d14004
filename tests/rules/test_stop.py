"""The stop rule against MovingPandas 0.23's TrajectoryStopDetector, the oracle.

The oracle runs MovingPandas on each vehicle's pings in EPSG:32651 (the same metric x/y the
rule sees, so MovingPandas takes its planar minimum-rotated-rectangle path) and reads its stop
time ranges; the rule's stops are its closed episodes (start, end) plus any still open at the
end of the track, which MovingPandas ends at the vehicle's last ping.
"""

from __future__ import annotations

import math
import warnings
from datetime import timedelta

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():  # movingpandas warns about optional smoothing dependencies
    warnings.simplefilter("ignore")
    import movingpandas as mpd
    from movingpandas.geometry_utils import mrr_diagonal

from spatial.rules.base import RuleWorld
from spatial.rules.stop import StopRule, StopSettings
from tests.tracks import T0_MS, concat, layer, rule_batch, tiny_world, track, vehicle

MAX_D, MIN_S = 100.0, 300.0
# movingpandas 0.23 uses pandas idioms that pandas 3.1 deprecates
pytestmark = [pytest.mark.filterwarnings("ignore:The inplace keyword in GeoDataFrame.sort_index"),
              pytest.mark.filterwarnings("ignore:Setting a value on a DataFrame via .at")]


# --- the oracle ------------------------------------------------------------------------------

def movingpandas_stops(batch, max_diameter_m=MAX_D, min_duration_s=MIN_S) -> dict[str, list[tuple[int, int]]]:
    """Per vehicle id, MovingPandas' stop time ranges (start_ms, end_ms) on the batch's metric pings."""
    stops = {}
    for vid in pd.unique(batch.vehicle_id):
        mine = batch.vehicle_id == vid
        if mine.sum() < 2:
            stops[vid] = []
            continue
        frame = gpd.GeoDataFrame(
            {"t": pd.to_datetime(batch.epoch_ms[mine], unit="ms")},
            geometry=shapely.points(batch.x[mine], batch.y[mine]), crs="EPSG:32651",
        ).set_index("t")
        trajectory = mpd.Trajectory(frame, vid)
        assert not trajectory.is_latlon
        ranges = mpd.TrajectoryStopDetector(trajectory).get_stop_time_ranges(
            max_diameter=max_diameter_m, min_duration=timedelta(seconds=min_duration_s))
        stops[vid] = [(r.t_0.value // 1_000_000, r.t_n.value // 1_000_000) for r in ranges]
    return stops


# --- running the rule ------------------------------------------------------------------------

def world_for(ids) -> RuleWorld:
    return RuleWorld(tiny_world(vehicles=layer("vehicles", [vehicle(v) for v in sorted(set(ids))])))


def run(rule, batches, world):
    state, events = rule.initial_state(), []
    for batch in batches:
        state, new = rule.step(state, batch, world)
        events.extend(new)
    return events


def rule_stops(events, batch) -> dict[str, list[tuple[int, int]]]:
    """The rule's stops per vehicle: closed ones as (start, end); an open one ends, as
    MovingPandas' final stop does, at the vehicle's last ping."""
    last_ms = pd.Series(batch.epoch_ms).groupby(batch.vehicle_id).max()
    closed = {e.episode_id: e for e in events if e.phase == "close"}
    stops = {vid: [] for vid in pd.unique(batch.vehicle_id)}
    for e in events:
        if e.phase != "open":
            continue
        start = e.start.value // 1_000_000
        end = (closed[e.episode_id].end.value // 1_000_000 if e.episode_id in closed
               else int(last_ms[e.subject_id]))
        stops[e.subject_id].append((start, end))
    assert set(closed) <= {e.episode_id for e in events if e.phase == "open"}, "a close without an open"
    return {vid: sorted(s) for vid, s in stops.items()}


def chunks(batch, cuts):
    """The batch's pings in arrival (time) order, cut at `cuts`, each chunk as the engine
    would release it (sorted by slot, time)."""
    arrival = np.argsort(batch.epoch_ms, kind="stable")
    return [batch.take(np.sort(part)) for part in np.split(arrival, cuts) if len(part)]


def event_key(e):
    return (e.subject_id, e.start, e.phase != "open")


def check_against_movingpandas(pings, max_d=MAX_D, min_s=MIN_S):
    world = world_for(pings.to_frame()["vehicle_id"])
    batch = rule_batch(pings, world)
    rule = StopRule(StopSettings(stop_max_diameter_m=max_d, stop_min_duration_s=min_s))
    events = run(rule, [batch], world)
    expected = movingpandas_stops(batch, max_d, min_s)
    assert rule_stops(events, batch) == expected
    return batch, events, expected


# --- tracks ----------------------------------------------------------------------------------

def line(start, end, n):
    """n points from start to end (end excluded)."""
    return np.linspace(start, end, n, endpoint=False)


def dwell(at, n, jitter_m=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return np.asarray(at, float) + rng.normal(0.0, jitter_m, (n, 2))


def stacked(*parts):
    return np.vstack([np.asarray(p, float).reshape(-1, 2) for p in parts])


APPROACH = line((-3000, 0), (0, 0), 12)      # 12 pings at 250 m / 30 s = 30 km/h
DEPART = line((300, 0), (3300, 0), 12)


def alternating(a, b, n):
    return np.array([a if k % 2 == 0 else b for k in range(n)], float)


# Each case: a track designed to graze one boundary, and how many stops it must have (so the
# comparison with MovingPandas is never vacuous).
CASES = {
    "diameter just under (two spots 99.9 m apart)": (stacked(APPROACH, alternating((0, 0), (99.9, 0), 20), DEPART), 30, 1),
    "diameter just over (two spots 100.1 m apart)": (stacked(APPROACH, alternating((0, 0), (100.1, 0), 20), DEPART), 30, 0),
    "diameter exactly 100 m (two spots)": (stacked(APPROACH, alternating((0, 0), (100.0, 0), 20), DEPART), 30, None),
    # a square turned 45°: its rectangle's diagonal is 99.9 m, its bounding box's 141 m
    "diamond of diagonal 99.9 m": (stacked(APPROACH, np.tile([(-49.95, 0), (0, -49.95), (49.95, 0), (0, 49.95)], (6, 1)), DEPART), 30, 1),
    "square of side 70.7 m": (stacked(APPROACH, np.tile([(0, 0), (70.7, 0), (70.7, 70.7), (0, 70.7)], (6, 1)), DEPART), 30, 1),
    "square of side 70.72 m": (stacked(APPROACH, np.tile([(0, 0), (70.72, 0), (70.72, 70.72), (0, 70.72)], (6, 1)), DEPART), 30, 0),
    # a right isosceles triangle: two rectangles of equal area, diagonals 99.998 and 111.8 m
    "triangle with tied rectangles": (stacked(APPROACH, np.tile([(0, 0), (70.71, 0), (0, 70.71)], (8, 1)), DEPART), 30, None),
    "duration just under (299.999 s)": (stacked(APPROACH[:-1], np.zeros((2, 2)), (2000, 0)), [30] * 11 + [299.999, 30], 0),
    "duration exactly 300 s": (stacked(APPROACH[:-1], np.zeros((2, 2)), (2000, 0)), [30] * 11 + [300, 30], 1),
    "duration just over (300.001 s)": (stacked(APPROACH[:-1], np.zeros((2, 2)), (2000, 0)), [30] * 11 + [300.001, 30], 1),
    "ten pings over 299.99 s": (stacked(APPROACH, dwell((0, 0), 10, 3.0), DEPART), [30] * 12 + [299.99 / 9] * 9 + [30] * 12, 0),
    # the ping 15 s after the last driving one is exactly 300 s old when that one is dropped,
    # so it is dropped too: the stop starts at the next ping
    "trimming at exactly min_duration": (stacked(APPROACH, dwell((0, 0), 21, 3.0, seed=8), DEPART), [30] * 11 + [15] + [30] * 32, 1),
    "stop at the very end of the track": (stacked(APPROACH, dwell((0, 0), 30, 8.0, seed=1)), 30, 1),
    "two stops back to back": (stacked(APPROACH, dwell((0, 0), 15, 5.0, seed=2), dwell((160, 0), 15, 5.0, seed=3), DEPART), 30, 2),
    "slow creeping at 0.32 m/s": (stacked(APPROACH, line((0, 0), (0.32 * 30 * 60, 0), 60), DEPART + (600, 0)), 30, None),
    "creeping at 0.34 m/s": (stacked(APPROACH, line((0, 0), (0.34 * 30 * 60, 0), 60), DEPART + (600, 0)), 30, None),
    "GPS jitter around a point": (stacked(APPROACH, dwell((0, 0), 120, 18.0, seed=4), DEPART), 30, None),
    "long park with sparse 5-min pings": (stacked(APPROACH, dwell((0, 0), 96, 6.0, seed=5), DEPART), [30] * 12 + [300] * 96 + [30] * 11, 1),
    "a single long ping gap in a stop": (stacked(APPROACH, dwell((0, 0), 6, 4.0, seed=6), dwell((0, 0), 6, 4.0, seed=7), DEPART),
                                         [30] * 17 + [3600] + [30] * 17, 1),
    "a gap that moves the truck": (stacked(APPROACH, np.zeros((3, 2)), np.full((3, 2), 80.0), DEPART), [30] * 14 + [1200] + [30] * 14, None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_boundary_tracks_match_movingpandas(name):
    xy, interval_s, n_stops = CASES[name]
    _, _, expected = check_against_movingpandas(track("V0001", xy, interval_s=interval_s))
    if n_stops is not None:
        assert len(expected["V0001"]) == n_stops


def test_many_vehicles_in_one_batch_match_movingpandas():
    rng = np.random.default_rng(11)
    pings = concat(random_track(f"V{k:04d}", rng, 300) for k in range(40))
    _, _, expected = check_against_movingpandas(pings)
    assert sum(map(len, expected.values())) > 40  # most vehicles stop more than once


# --- random tracks ---------------------------------------------------------------------------

def random_track(vid, rng, n, start_ms=T0_MS):
    """Driving, dwelling with GPS jitter and creeping, with mostly 30 s pings and odd gaps;
    half the tracks keep exact intervals, so spans of exactly min_duration occur."""
    xy = np.empty((n, 2))
    gaps = rng.choice([30.0, 30.0, 30.0, 10.0, 60.0, 300.0], n - 1)
    if rng.random() < 0.5:
        gaps *= rng.uniform(0.97, 1.03, n - 1)
    gaps[rng.random(n - 1) < 0.01] = rng.uniform(600, 7200)
    here, k = np.zeros(2), 0
    while k < n:
        length = int(rng.integers(3, 40))
        mode = rng.choice(["drive", "dwell", "creep"], p=[0.45, 0.4, 0.15])
        idx = np.arange(k, min(n, k + length))
        dt = np.where(idx > 0, gaps[np.maximum(idx - 1, 0)], 0.0)  # time since the previous ping
        if mode == "drive":
            step = rng.uniform(1, 20) * dt[:, None] * unit(rng)
            xy[idx] = here + np.cumsum(step, axis=0)
            here = xy[idx[-1]]
        elif mode == "creep":
            step = rng.uniform(0.1, 0.6) * dt[:, None] * unit(rng)
            xy[idx] = here + np.cumsum(step, axis=0) + rng.normal(0, 2, (len(idx), 2))
            here = xy[idx[-1]]
        else:
            xy[idx] = here + rng.normal(0, rng.choice([2.0, 10.0, 25.0]), (len(idx), 2))
        k += length
    return track(vid, xy, start_ms=start_ms, interval_s=gaps)


def unit(rng):
    angle = rng.uniform(0, 2 * math.pi)
    return np.array([math.cos(angle), math.sin(angle)])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_vehicles=st.integers(1, 4), n=st.integers(2, 150),
       max_d=st.sampled_from([100.0, 60.0, 150.0]), min_s=st.sampled_from([300.0, 120.0, 600.5]))
def test_random_tracks_match_movingpandas(seed, n_vehicles, n, max_d, min_s):
    rng = np.random.default_rng(seed)
    pings = concat(random_track(f"V{k:04d}", rng, n, start_ms=T0_MS + int(rng.integers(0, 600_000)))
                   for k in range(n_vehicles))
    check_against_movingpandas(pings, max_d, min_s)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 120), data=st.data())
def test_streaming_same_events_however_batched(seed, n, data):
    rng = np.random.default_rng(seed)
    pings = concat(random_track(f"V{k:04d}", rng, n, start_ms=T0_MS + int(rng.integers(0, 600_000)))
                   for k in range(3))
    world = world_for(pings.to_frame()["vehicle_id"])
    batch = rule_batch(pings, world)
    rule = StopRule()
    whole = sorted(run(rule, [batch], world), key=event_key)
    single = sorted(run(rule, chunks(batch, np.arange(1, len(batch))), world), key=event_key)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(batch) - 1), max_size=12)) if len(batch) > 1 else [])
    chunked = sorted(run(rule, chunks(batch, cuts), world), key=event_key)
    assert whole == single == chunked
    assert rule_stops(whole, batch) == movingpandas_stops(batch)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), corners=st.integers(2, 7),
       off_by_m=st.sampled_from([-1e-2, -1e-3, -1e-5, 0.0, 1e-5, 1e-3, 1e-2]))
def test_dwells_grazing_the_diameter_match_movingpandas(seed, corners, off_by_m):
    """A dwell hopping between a few spots whose minimum rotated rectangle has a diagonal of
    max_diameter give or take a centimetre or less: decided exactly as MovingPandas does."""
    rng = np.random.default_rng(seed)
    spots = rng.normal(0.0, 1.0, (corners, 2)) * rng.uniform(0.05, 1.0, 2)
    spots *= (MAX_D + off_by_m) / mrr_diagonal(shapely.MultiPoint(spots))
    hops = spots[rng.integers(0, corners, 24)]
    check_against_movingpandas(track("V0001", stacked(APPROACH, hops, DEPART)))


def test_stepping_from_an_older_state_again_gives_the_same_events():
    rng = np.random.default_rng(5)
    pings = concat(random_track(f"V{k:04d}", rng, 200) for k in range(5))
    world = world_for(pings.to_frame()["vehicle_id"])
    first, second, third = chunks(rule_batch(pings, world), [300, 600])
    rule = StopRule()
    state, _ = rule.step(rule.initial_state(), first, world)
    branch_a, events_a = rule.step(state, second, world)
    branch_b, events_b = rule.step(state, second, world)  # `state` is not the newest any more
    assert events_a == events_b
    assert rule.step(branch_a, third, world)[1] == rule.step(branch_b, third, world)[1]
    assert events_a or rule.step(branch_a, third, world)[1]  # the comparison saw events


# --- phases and evidence ---------------------------------------------------------------------

def test_open_then_close_with_evidence():
    dwell_xy = dwell((0, 0), 20, 6.0, seed=9)
    pings = track("V0042", stacked(APPROACH, dwell_xy, DEPART))
    world = world_for(["V0042"])
    batch = rule_batch(pings, world)
    events = run(StopRule(), [batch], world)
    assert [e.phase for e in events] == ["open", "close"]
    opened, closed = events
    [(start_ms, end_ms)] = movingpandas_stops(batch)["V0042"]
    assert opened.episode_id == closed.episode_id == f"stop:V0042:{start_ms}"
    assert opened.subject_id == closed.subject_id == "V0042"
    assert opened.start.value // 1_000_000 == closed.start.value // 1_000_000 == start_ms
    assert opened.end is None and closed.end.value // 1_000_000 == end_ms

    t = batch.epoch_ms
    stop_pings = (t >= start_ms) & (t <= end_ms)
    confirming = int(np.flatnonzero(t - start_ms >= MIN_S * 1000)[0])
    so_far = (t >= start_ms) & (t <= t[confirming])
    ev = opened.evidence
    assert ev["confirmed_ms"] == t[confirming]
    assert ev["pings"] == so_far.sum()
    assert ev["median_x"] == np.median(batch.x[so_far]) and ev["median_y"] == np.median(batch.y[so_far])
    # the exact rectangle's diagonal; GEOS' own rounds by ~1 mm at UTM northings
    assert ev["diameter_m"] == pytest.approx(
        mrr_diagonal(shapely.MultiPoint(np.column_stack([batch.x[so_far], batch.y[so_far]]))), abs=1e-2)
    assert ev["diameter_m"] < ev["max_diameter_m"] == MAX_D and ev["min_duration_s"] == MIN_S
    assert (opened.lon, opened.lat) == (ev["median_lon"], ev["median_lat"])
    assert abs(opened.lon - 121.55) < 1e-3 and abs(opened.lat - 29.85) < 1e-3

    ev = closed.evidence
    assert ev["confirmed_ms"] == t[confirming]
    assert ev["pings"] == stop_pings.sum()
    assert ev["duration_s"] == (end_ms - start_ms) / 1000
    # MovingPandas' stop point is the median of the stop's pings, as the close reports it.
    [point] = mpd.TrajectoryStopDetector(mpd.Trajectory(gpd.GeoDataFrame(
        {"t": pd.to_datetime(t, unit="ms")}, geometry=shapely.points(batch.x, batch.y), crs="EPSG:32651",
    ).set_index("t"), "V0042")).get_stop_points(max_diameter=MAX_D, min_duration=timedelta(seconds=MIN_S)).geometry
    assert (ev["median_x"], ev["median_y"]) == pytest.approx((point.x, point.y), abs=1e-9)
    assert (closed.lon, closed.lat) == (ev["median_lon"], ev["median_lat"])


def test_open_stop_closes_in_a_later_batch():
    pings = track("V0007", stacked(APPROACH, dwell((0, 0), 20, 4.0, seed=3), DEPART))
    world = world_for(["V0007"])
    batch = rule_batch(pings, world)
    rule = StopRule()
    state, first = rule.step(rule.initial_state(), batch.take(np.arange(25)), world)
    assert [e.phase for e in first] == ["open"]
    state, second = rule.step(state, batch.take(np.arange(25, len(batch))), world)
    assert [e.phase for e in second] == ["close"] and second[0].episode_id == first[0].episode_id


def test_a_drive_has_no_stop():
    assert run(StopRule(), [rule_batch(track("V0001", line((0, 0), (30000, 0), 120)), world_for(["V0001"]))],
               world_for(["V0001"])) == []


def test_settings_are_validated():
    with pytest.raises(ValueError, match="stop_max_diameter_m"):
        StopSettings(stop_max_diameter_m=0)
    with pytest.raises(ValueError, match="stop_min_duration_s"):
        StopSettings(stop_min_duration_s=float("nan"))


def test_pings_going_back_in_time_are_refused():
    world = world_for(["V0001"])
    batch = rule_batch(track("V0001", np.zeros((4, 2))), world)
    rule = StopRule()
    state, _ = rule.step(rule.initial_state(), batch.take(np.arange(2, 4)), world)
    with pytest.raises(ValueError, match="V0001.*not strictly increasing"):
        rule.step(state, batch.take(np.arange(0, 2)), world)
