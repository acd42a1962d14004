"""fatigue: boundary tables through the whole engine (the real stop stage supplies the stops), a
plain-Python oracle that does not import spatial.rules, and the streaming property.

The oracle re-states the rule from its documentation and derives everything from the pings
alone (not from the engine's stop events, so a stop stage that found wrong stops cannot make
the oracle agree): per vehicle, the stops are MovingPandas' (TrajectoryStopDetector, 100 m,
5 min: the stop stage's documented semantics), each confirmed at its first ping 5 min after its
start; a rest is such a stop that has lasted 20 min at a ping inside it,
or a ping gap of ≥ 20 min whose ends lie within 100 m; a moving ping is one outside any stop and
more than 100 m from the last moving ping; a fatigue episode opens at the first moving ping
more than 4 h after the end of the last rest and closes when the next rest counts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from spatial.crs import to_metric
from spatial.model import PingBatch
from spatial.rules.base import RuleBatch, RuleWorld, settings_rows
from spatial.rules.engine import Engine, EngineSettings, sort_events
from spatial.rules.fatigue import FatigueRule, FatigueSettings
from tests.tracks import T0_MS, concat, layer, lonlat, rule_batch, tiny_world, vehicle

A, B = "VEH-000001", "VEH-000002"
WORLD = tiny_world(vehicles=layer("vehicles", [vehicle(A), vehicle(B)]))
MAX_MS, REST_MS, NEAR_M = 14_400_000, 1_200_000, 100.0


def FatigueEngine(world, settings: FatigueSettings | None = None) -> Engine:
    """The engine with these fatigue settings (and every other rule at its defaults)."""
    return Engine(world, EngineSettings(fatigue=settings or FatigueSettings()))


def trip(vehicle_id: str, parts, start_ms: int = T0_MS, start_xy=(0.0, 0.0)) -> PingBatch:
    """Pings from parts: ("drive", seconds) 300 m every 30 s, east and west in 30 km legs; ("stand", seconds) pings every
    30 s wobbling 2 m, the last exactly `seconds` after the first standing ping's predecessor;
    ("gap", seconds, metres) one ping `seconds` later, `metres` north."""
    t, (x, y) = start_ms, start_xy
    times, xy, driven = [t], [(x, y)], 0.0
    for part in parts:
        kind, seconds = part[0], part[1]
        if kind == "drive":
            for k in range(int(seconds // 30)):
                t += 30_000
                driven += 300.0
                x += 300.0 if (driven // 30_000) % 2 == 0 else -300.0  # 30 km legs back and forth
                times.append(t)
                xy.append((x, y))
        elif kind == "stand":
            end = t + int(seconds * 1000)
            k = 0
            while t + 30_000 < end:
                t += 30_000
                k += 1
                times.append(t)
                xy.append((x + (2.0 if k % 2 else -2.0), y))
            t = end
            times.append(t)
            xy.append((x, y))
        else:
            t += int(seconds * 1000)
            y += part[2]
            times.append(t)
            xy.append((x, y))
    lon, lat = lonlat(xy)
    return PingBatch.from_arrays([vehicle_id] * len(times), np.array(times, "int64"), lon, lat)


def fatigue(events):
    return [e for e in events if e.rule == "fatigue"]


# --- the oracle --------------------------------------------------------------------------------

STOP_DIAMETER_M, STOP_MIN_MS = 100.0, 300_000


def pings_stops(frame: pd.DataFrame) -> dict[str, list]:
    """Per vehicle, [start, confirmed, end] (ms) of MovingPandas' stops of these pings; confirmed
    is the stop's first ping at least STOP_MIN_MS after its start (where a streaming detector can
    first know it). A stop MovingPandas closes at the track's end may go on: its end is open."""
    import warnings
    from datetime import timedelta

    import geopandas as gpd
    import movingpandas as mpd

    warnings.filterwarnings("ignore", module="movingpandas")  # it drops the UTC zone, on purpose here
    gdf = gpd.GeoDataFrame(frame[["vehicle_id"]].assign(time=pd.to_datetime(frame["epoch_ms"], unit="ms")),
                           geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs="EPSG:4326")
    gdf = gdf.to_crs("EPSG:32651").set_index("time")
    found = mpd.TrajectoryStopDetector(mpd.TrajectoryCollection(gdf, "vehicle_id")).get_stop_points(
        max_diameter=STOP_DIAMETER_M, min_duration=timedelta(milliseconds=STOP_MIN_MS))
    last = frame.groupby("vehicle_id")["epoch_ms"].max()
    stops: dict[str, list] = {}
    if not len(found):  # no stop: MovingPandas' frame then lacks its columns
        return stops
    for v, start, end in zip(found["traj_id"], found["start_time"], found["end_time"]):
        start_ms, end_ms = (int(pd.Timestamp(x).value // 1_000_000) for x in (start, end))
        times = frame.loc[frame["vehicle_id"] == v, "epoch_ms"].to_numpy("int64")
        confirmed = int(times[(times >= start_ms + STOP_MIN_MS) & (times <= end_ms)].min())
        stops.setdefault(v, []).append([start_ms, confirmed, math.inf if end_ms == last[v] else end_ms])
    return stops


def oracle(pings: PingBatch) -> list[tuple]:
    """Fatigue episodes (phase, vehicle, start, end) from the pings alone."""
    frame = pings.to_frame().drop_duplicates(["vehicle_id", "epoch_ms"]).sort_values(["vehicle_id", "epoch_ms"])
    stops = pings_stops(frame)
    out = []
    for v, rows in frame.groupby("vehicle_id"):
        x, y = to_metric(rows["lon"].to_numpy(), rows["lat"].to_numpy())
        t = rows["epoch_ms"].to_numpy("int64")
        since, anchor, resting, open_start = t[0], (x[0], y[0]), False, None
        for i in range(1, len(t)):
            stop_start = next((s[0] for s in stops.get(v, []) if s[1] <= t[i] <= s[2]), None)
            gap_rest = t[i] - t[i - 1] >= REST_MS and math.dist((x[i], y[i]), (x[i - 1], y[i - 1])) <= NEAR_M
            stop_rest = stop_start is not None and t[i] - stop_start >= REST_MS
            if gap_rest or stop_rest:
                rest_start = min([s for s, ok in ((stop_start, stop_rest), (t[i - 1], gap_rest)) if ok])
                if not resting and open_start is not None:
                    out.append(("close", v, open_start, max(rest_start, open_start)))
                    open_start = None
                resting = True
                since, anchor = t[i], (x[i], y[i])
            elif stop_start is None and math.dist((x[i], y[i]), anchor) > NEAR_M:
                resting, anchor = False, (x[i], y[i])
                if open_start is None and t[i] - since > MAX_MS:
                    open_start = int(t[i])
                    out.append(("open", v, open_start, None))
    return sorted(out, key=repr)


def summary(events) -> list[tuple]:
    return sorted((("open" if e.phase == "open" else "close"), e.subject_id, int(e.start.value // 1_000_000),
                   None if e.end is None else int(e.end.value // 1_000_000)) for e in fatigue(events))


# --- boundary tables ---------------------------------------------------------------------------

H, MIN = 3600, 60
CASES = {
    # name: (parts, expected fatigue opens)
    "3 h 59 min, then a 25 min stop": ([("drive", 3 * H + 59 * MIN), ("stand", 25 * MIN), ("drive", H)], 0),
    "exactly 4 h, then a 25 min stop": ([("drive", 4 * H), ("stand", 25 * MIN), ("drive", H)], 0),
    "4 h 01 min, then a 25 min stop": ([("drive", 4 * H + MIN), ("stand", 25 * MIN), ("drive", H)], 1),
    "a stop of 19:59 is no rest": ([("drive", 3 * H), ("stand", 19 * MIN + 59), ("drive", 1.5 * H)], 1),
    "a stop of 20:00 is a rest": ([("drive", 3 * H), ("stand", 20 * MIN), ("drive", 1.5 * H)], 0),
    "a 20 min gap at the same spot is a rest": ([("drive", 3 * H), ("gap", 20 * MIN, 0.0), ("drive", 1.5 * H)], 0),
    "a 20 min gap 90 m away is a rest": ([("drive", 3 * H), ("gap", 20 * MIN, 90.0), ("drive", 1.5 * H)], 0),
    "a 20 min gap 150 m away is driving": ([("drive", 3 * H), ("gap", 20 * MIN, 150.0), ("drive", 1.5 * H)], 1),
    "a 19:59 gap at the same spot is driving": ([("drive", 3 * H), ("gap", 20 * MIN - 1, 0.0), ("drive", 1.5 * H)], 1),
    "short stops do not reset": ([("drive", 2 * H), ("stand", 10 * MIN), ("drive", 2 * H), ("stand", 25 * MIN)], 1),
    "two long days with rests": ([("drive", 3.5 * H), ("stand", 30 * MIN), ("drive", 3.5 * H), ("gap", 40 * MIN, 0),
                                  ("drive", 3.9 * H)], 0),
    "still driving at the end": ([("drive", 4.5 * H)], 1),
    "4 h 01 min, then a 20 min gap at the same spot": ([("drive", 4 * H + MIN), ("gap", 20 * MIN, 0.0),
                                                        ("drive", H)], 1),
}


@pytest.mark.parametrize("name", list(CASES))
def test_boundary_table(name):
    parts, opens = CASES[name]
    pings = trip(A, parts)
    events = FatigueEngine(WORLD).run(pings)
    assert sum(e.phase == "open" for e in fatigue(events)) == opens
    assert summary(events) == oracle(pings)


def test_the_oracle_catches_a_stop_stage_that_misses_a_rest():
    """The oracle finds the stops in the pings itself: an engine whose stop stage misses the
    25 min stop (a 1 m diameter) keeps the episode open, and the oracle says it should close."""
    from spatial.rules.stop import StopSettings

    pings = trip(A, [("drive", 4 * H + MIN), ("stand", 25 * MIN), ("drive", H)])
    blind = Engine(WORLD, EngineSettings(stop=StopSettings(stop_max_diameter_m=1.0))).run(pings)
    assert [e.phase for e in fatigue(blind)] == ["open"]
    assert [p for p, *_ in oracle(pings)] == ["close", "open"]
    assert summary(blind) != oracle(pings)


def test_open_and_close_carry_the_evidence():
    pings = trip(A, [("drive", 2 * H), ("stand", 30 * MIN), ("drive", 4 * H + 2 * MIN), ("stand", 25 * MIN)])
    opened, closed = fatigue(FatigueEngine(WORLD).run(pings))
    rest_end = T0_MS + (2 * H + 30 * MIN) * 1000
    assert opened.start == pd.Timestamp(rest_end + 4 * H * 1000 + 30_000, unit="ms", tz="UTC")  # first ping > 4 h
    ev = opened.evidence
    assert ev["driving_s"] == 4 * H + 30 and pd.Timestamp(ev["since"]).value // 1_000_000 == rest_end
    assert ev["last_rest"]["kind"] == "stop" and ev["max_continuous_driving_s"] == 14400 and ev["min_rest_s"] == 1200
    assert opened.severity == closed.severity == 2 and opened.episode_id == closed.episode_id
    cev = closed.evidence
    assert cev["rest_kind"] == "stop"
    rest_start = pd.Timestamp(cev["rest_start"]).value // 1_000_000
    assert closed.end == pd.Timestamp(rest_start, unit="ms", tz="UTC")
    assert pd.Timestamp(cev["rest_counted"]).value // 1_000_000 - rest_start >= 1200_000
    assert cev["driving_s_total"] == (rest_start - rest_end) / 1000


def test_hand_built_stops_open_and_close_a_rest():
    """The rule on its own, with the stop frames the engine would hand it: a stop confirmed in one
    batch and still open, counted as a rest in a later batch."""
    rw = RuleWorld(WORLD)
    pings = trip(A, [("drive", 4 * H + MIN), ("stand", 25 * MIN)])
    batch = rule_batch(pings, rw)
    stand = np.flatnonzero(batch.epoch_ms >= T0_MS + (4 * H + MIN) * 1000)
    start, confirmed = int(batch.epoch_ms[stand[0]]), int(batch.epoch_ms[stand[0]]) + 300_000
    stop = pd.DataFrame({"slot": [0], "vehicle_id": [A], "episode_id": [f"stop:{A}:{start}"], "start_ms": [start],
                         "confirmed_ms": [confirmed], "end_ms": [-1], "lon": [0.0], "lat": [0.0], "x": [0.0],
                         "y": [0.0], "waybill": [-1], "loaded": [False]})
    first = batch.take(batch.epoch_ms <= confirmed).with_columns(stops_opened=stop)
    second = batch.take(batch.epoch_ms > confirmed)
    rule = FatigueRule()
    state, events = rule.step(rule.initial_state(), first, rw)
    assert [e.phase for e in events] == ["open"]
    state, events = rule.step(state, second, rw)
    assert [e.phase for e in events] == ["close"] and events[0].evidence["rest_kind"] == "stop"
    assert events[0].evidence["rest_counted"] == pd.Timestamp(start + REST_MS, unit="ms", tz="UTC").isoformat(
        timespec="milliseconds")
    # the empty batch the engine sends when only the clock moves
    assert rule.step(state, RuleBatch.empty().with_columns(clock_ms=start), rw)[1] == []


def test_settings_change_the_thresholds_and_are_listed():
    pings = trip(A, [("drive", 2 * H + MIN)])
    strict = FatigueSettings(max_continuous_driving_s=2 * H)
    assert len(fatigue(FatigueEngine(WORLD, strict).run(pings))) == 1
    rows = settings_rows("fatigue", FatigueSettings())
    assert [r["name"] for r in rows] == ["max_continuous_driving_s", "min_rest_s", "rest_max_distance_m"]
    assert all(r["unit"] and r["source"] for r in rows)
    with pytest.raises(ValueError, match="min_rest_s"):
        FatigueSettings(min_rest_s=0)


# --- random trips: the oracle and any batching -------------------------------------------------

@st.composite
def fleet(draw):
    trips = []
    for v in (A, B):
        parts = draw(st.lists(st.one_of(
            st.tuples(st.just("drive"), st.integers(30, 250).map(lambda m: m * 60)),
            st.tuples(st.just("stand"), st.integers(1, 30).map(lambda m: m * 60)),
            st.tuples(st.just("gap"), st.integers(15, 30).map(lambda m: m * 60), st.sampled_from([0.0, 50.0, 150.0])),
        ), min_size=1, max_size=5))
        trips.append(trip(v, parts, start_ms=T0_MS + draw(st.integers(0, 60)) * 60_000, start_xy=(0.0, 3000.0 * len(trips))))
    frame = concat(trips).to_frame().sort_values("epoch_ms", kind="stable")
    sizes = draw(st.lists(st.integers(1, 400), min_size=1, max_size=6))
    return PingBatch.from_frame(frame.reset_index(drop=True)), sizes


def run_chunks(pings: PingBatch, sizes) -> list:
    engine = FatigueEngine(WORLD)
    frame = pings.to_frame()
    events, start, k = [], 0, 0
    while start < len(frame):
        size = sizes[k % len(sizes)]
        events += engine.step(PingBatch.from_frame(frame.iloc[start:start + size]))
        start, k = start + size, k + 1
    return sort_events(events + engine.flush())


def canonical(events):
    return [(e.rule, e.episode_id, e.phase, e.start, e.end, e.lon, e.lat, e.severity,
             repr(sorted(e.evidence.items()))) for e in sort_events(fatigue(events))]


@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fleet())
def test_random_trips_agree_with_the_oracle_however_batched(case):
    pings, sizes = case
    whole = FatigueEngine(WORLD).run(pings)
    assert summary(whole) == oracle(pings)
    assert canonical(run_chunks(pings, sizes)) == canonical(whole)


def test_single_ping_batches_equal_one_batch():
    frame = concat([trip(A, [("drive", 3 * H), ("stand", 10 * MIN), ("drive", 1.2 * H), ("stand", 22 * MIN),
                             ("drive", 30 * MIN)]),
                    trip(B, [("drive", 2 * H), ("gap", 20 * MIN, 40.0), ("drive", 4.2 * H)], start_xy=(0, 5000))]
                   ).to_frame().sort_values("epoch_ms", kind="stable")  # arrival order = time order
    pings = PingBatch.from_frame(frame.reset_index(drop=True))
    whole = FatigueEngine(WORLD).run(pings)
    assert [(e.subject_id, e.phase) for e in fatigue(whole)] == [(A, "open"), (A, "close"), (B, "open")]
    assert summary(whole) == oracle(pings)
    assert canonical(run_chunks(pings, [1])) == canonical(whole)
