"""The point stage: cleaning by reason, release order, clocks, streaming equivalence of the
whole stage (all five rules), and a demo-world run with synthetic readings."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spatial.model import ReadingBatch
from spatial.rules.point_interruption import PointInterruptionSettings
from spatial.rules.point_rate import PointRateSettings
from spatial.rules.point_stuck import PointStuckSettings
from spatial.rules.points import (
    CleaningState,
    PointEngine,
    PointEngineSettings,
    PointWorld,
    clean_readings,
    point_settings_rows,
)
from tests.rules.test_point_kit import (
    MIN_MS,
    event_key,
    one_at_a_time,
    point,
    point_world,
    split,
)
from tests.tracks import T0_MS

A, B, C = "MP-000001", "MP-000002", "MP-000003"
WORLD = point_world(point(A), point(B, "level", low_low=0.5, low=1.0, high=8.5, high_high=9.5, range_max=10.0),
                    point(C, "toxic_gas", high=10.0, high_high=20.0, substance_un="1005"))


def test_cleaning_drops_by_reason_and_releases_sorted():
    batch = ReadingBatch.from_arrays(
        [B, A, "MP-999999", A, A, B, A, B, A],
        T0_MS + np.array([60, 60, 0, 120, 120, 0, 90, 30, 10**7], "int64") * 1000,
        [1.0, 2.0, 3.0, np.nan, 4.0, 5.0, 6.0, np.inf, 7.0])
    state, out, counts = clean_readings(CleaningState(), batch, PointWorld(WORLD), now_ms=T0_MS + 200_000)
    assert counts == {"unknown_point": 1, "invalid_value": 2, "future": 1, "duplicate": 0, "out_of_order": 2}
    assert out.point_id.tolist() == [A, A, B] and out.value.tolist() == [2.0, 4.0, 1.0]
    assert out.slot.tolist() == [0, 0, 1] and out.clock_ms == T0_MS + 200_000 and out.started_ms == T0_MS + 60_000
    assert out.arrival_clock_ms.tolist() == [T0_MS + 60_000, T0_MS + 120_000, T0_MS + 60_000]
    # next batch: the same (point, time) again is a duplicate, older is out of order
    again = ReadingBatch.from_arrays([A, B, B], [T0_MS + 120_000, T0_MS + 30_000, T0_MS + 61_000], [1.0, 1.0, 1.0])
    state, out, counts = clean_readings(state, again, PointWorld(WORLD))
    assert counts["duplicate"] == 1 and counts["out_of_order"] == 1 and out.epoch_ms.tolist() == [T0_MS + 61_000]
    assert out.clock_ms == T0_MS + 200_000 and out.arrival_clock_ms.tolist() == [T0_MS + 200_000]


def test_engine_counts_advance_and_settings_rows():
    engine = PointEngine(WORLD)
    assert engine.clock_ms is None and engine.step(ReadingBatch.from_arrays([], [], [])) == []
    events = engine.step(ReadingBatch.from_arrays([A, A, "MP-X"], [T0_MS, T0_MS, T0_MS], [30.0, 30.0, 1.0]))
    assert [(e.rule, e.phase, e.subject_id) for e in events] == [("point_level", "open", A)]
    assert engine.drop_counts["duplicate"] == 1 and engine.drop_counts["unknown_point"] == 1
    assert engine.released_count == 1 and engine.clock_ms == T0_MS
    silent = engine.advance(T0_MS + 600_000)  # B and C never reported, A went quiet
    assert sorted((e.rule, e.subject_id, e.severity) for e in silent) == [
        ("point_interruption", A, 3), ("point_interruption", B, 3), ("point_interruption", C, 2)]
    assert engine.advance(T0_MS + 900_000) == [] and engine.flush() == []
    names = {(r["rule"], r["name"]) for r in point_settings_rows()}
    assert ("point_level", "level_deadband_fraction") in names and ("point_cleaning", "max_future_s") in names
    assert all(r["unit"] is not None and r["source"] for r in point_settings_rows())


# --- streaming: one batch == one reading at a time == random chunks, all rules --------------

FAST = PointEngineSettings(
    point_rate=PointRateSettings(rate_window_s=180.0),
    point_stuck=PointStuckSettings(stuck_after_s=300.0),
    point_interruption=PointInterruptionSettings(interruption_after_s=240.0))


def run_engine(batches):
    engine = PointEngine(WORLD, FAST)
    events = []
    for batch in batches:
        events.extend(engine.step(batch))
    return sorted((event_key(e) for e in events + engine.flush()), key=repr)


values_strategy = st.sampled_from([0.0, 0.4, 1.0, 5.0, 8.5, 9.0, 9.6, 10.5, 24.0, 25.0, 50.0, 101.0, np.nan])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(st.sampled_from([A, B, C, "MP-999"]), st.integers(0, 40), values_strategy),
                     min_size=1, max_size=40),
       cuts=st.lists(st.integers(1, 39), max_size=6))
def test_one_batch_equals_single_readings_and_chunks(rows, cuts):
    batch = ReadingBatch.from_arrays([p for p, _, _ in rows], [T0_MS + k * MIN_MS for _, k, _ in rows],
                                     [v for _, _, v in rows])
    whole = run_engine([batch])
    assert run_engine(one_at_a_time(batch)) == whole
    assert run_engine(split(batch, cuts)) == whole


# --- the demo world ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_world():
    from data.demo import build_world

    return build_world(7, 0.02)


def test_demo_world_synthetic_readings(demo_world):
    """Six hours of one-minute readings, calm everywhere but five planted faults; the stage
    reports exactly those, and the same in 30-minute chunks."""
    mp = demo_world.monitoring_points
    ids = mp["id"].to_numpy(object)
    kind = mp["kind"].to_numpy(object)
    lo, hi = mp["range_min"].to_numpy(float), mp["range_max"].to_numpy(float)
    span = hi - lo
    n, minutes = len(ids), 360
    rng = np.random.default_rng(7)
    gas = np.isin(kind, ["combustible_gas", "toxic_gas"])
    calm = np.where(gas, 0.0, lo + 0.45 * span)  # gas in clean air, processes mid-range, below every high
    temperature = kind == "temperature"
    calm[temperature] = np.minimum(mp["high"].to_numpy(float)[temperature] - 10, lo[temperature] + 0.3 * span[temperature])
    values = calm[:, None] + np.where(gas, 0.0, 0.004)[:, None] * span[:, None] * rng.standard_normal((n, minutes))
    values = np.maximum(values, lo[:, None])
    keep = np.ones((n, minutes), bool)

    combustible = int(np.flatnonzero(kind == "combustible_gas")[0])
    values[combustible, 100:130] = np.r_[np.linspace(5, 30, 10), np.full(10, 55.0), np.full(10, 28.0)]
    levels = np.flatnonzero(kind == "level")
    stuck, jumpy = int(levels[0]), int(levels[1])
    values[stuck, 50:] = values[stuck, 50]  # frozen from minute 50: stuck at minute 290
    values[jumpy, 200:] += 0.3 * span[jumpy]  # a 30 % step: rate 6 %/min over the 5-minute window
    pressure = int(np.flatnonzero(kind == "pressure")[0])
    values[pressure, 150:153] = hi[pressure] * 1.2
    silent = int(np.flatnonzero(kind == "pressure")[1])
    keep[silent, 60:75] = False  # 15 minutes without data

    slot, minute = np.nonzero(keep.T)[::-1]
    order = np.lexsort((slot, minute))
    batch = ReadingBatch.from_arrays(ids[slot[order]], T0_MS + minute[order] * MIN_MS, values[slot[order], minute[order]])

    engine = PointEngine(demo_world, PointEngineSettings(point_rate=PointRateSettings(max_rate_fraction_per_min=0.05)))
    events = engine.run(batch)
    found = Counter((e.rule, e.subject_id, e.phase) for e in events)
    assert found == Counter({
        ("point_level", ids[combustible], "open"): 1, ("point_level", ids[combustible], "update"): 2,
        ("point_level", ids[combustible], "close"): 1,
        # and its jumps 30 -> 55 -> 28 -> 0 %LEL each exceed 5 %/min over the window
        ("point_rate", ids[combustible], "open"): 3, ("point_rate", ids[combustible], "close"): 3,
        ("point_stuck", ids[stuck], "open"): 1,
        ("point_rate", ids[jumpy], "open"): 1, ("point_rate", ids[jumpy], "close"): 1,
        ("point_range", ids[pressure], "open"): 1, ("point_range", ids[pressure], "close"): 1,
        # the over-range reading is also above high-high, and its jump up and back is fast
        ("point_level", ids[pressure], "open"): 1, ("point_level", ids[pressure], "close"): 1,
        ("point_rate", ids[pressure], "open"): 2, ("point_rate", ids[pressure], "close"): 2,
        ("point_interruption", ids[silent], "open"): 1, ("point_interruption", ids[silent], "close"): 1,
    })
    assert engine.drop_counts == dict.fromkeys(engine.drop_counts, 0)
    stuck_open = next(e for e in events if e.rule == "point_stuck")
    assert stuck_open.start.value // 1_000_000 == T0_MS + 50 * MIN_MS
    level = [e for e in events if e.rule == "point_level" and e.subject_id == ids[combustible]]
    assert [e.severity for e in level] == [2, 1, 2, 1]  # open L1, escalated, de-escalated, close (max 2)
    assert level[0].evidence["hazard_source_id"] == mp["hazard_source_id"].iloc[combustible]

    chunked = PointEngine(demo_world, engine.settings)
    chunk_events = []
    for k in range(0, minutes, 30):
        inside = (minute[order] >= k) & (minute[order] < k + 30)
        chunk_events += chunked.step(ReadingBatch.from_arrays(
            batch.point_id[inside], batch.epoch_ms[inside], batch.value[inside]))
    assert sorted(map(repr, map(event_key, chunk_events))) == sorted(map(repr, map(event_key, events)))
