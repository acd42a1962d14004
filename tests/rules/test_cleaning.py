"""Cleaning: every drop reason counted, late pings reordered within the window and dropped beyond
it, and streaming (any chunking of an arrival sequence) releasing the same pings and counts as
one batch — checked against a plain per-ping reference written from the contract."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spatial.crs import to_metric
from spatial.model import PingBatch
from spatial.rules import cleaning
from spatial.rules.base import RuleWorld
from spatial.rules.cleaning import DROP_REASONS, CleaningSettings
from tests.tracks import T0_MS, layer, lonlat, tiny_world, vehicle

REGISTERED = ("VEH-000001", "VEH-000002")
WORLD = RuleWorld(tiny_world(vehicles=layer("vehicles", [vehicle(v) for v in REGISTERED])))
SETTINGS = CleaningSettings()
FIX = PingBatch.STATUS_FIX_VALID


def pings(rows: list[tuple]) -> PingBatch:
    """Rows (vehicle, seconds after T0, x m, y m[, status]) in arrival order; x/y may instead be
    given as ('lonlat', lon, lat) in place of x to set raw coordinates."""
    vid = [r[0] for r in rows]
    t = [T0_MS + round(r[1] * 1000) for r in rows]
    status = [r[4] if len(r) > 4 else FIX for r in rows]
    metric = [r[2] != "lonlat" for r in rows]
    lon, lat = (np.array([r[3][k] if r[2] == "lonlat" else np.nan for r in rows], "float64") for k in (0, 1))
    if any(metric):
        m = np.flatnonzero(metric)
        lon[m], lat[m] = lonlat([(rows[i][2], rows[i][3]) for i in m])
    return PingBatch.from_arrays(vid, t, lon, lat, status=status)


def released_keys(batch) -> list[tuple[str, int]]:
    return [(v, int((t - T0_MS) // 1000)) for v, t in zip(batch.vehicle_id, batch.epoch_ms)]


def run_clean(batch: PingBatch, now_ms=None, chunks=None, settings_=SETTINGS):
    """Clean `batch` in the given chunk sizes (one batch by default) then flush; return the
    released pings in release order and the summed counts."""
    state = cleaning.initial_state()
    out, counts = [], cleaning.zero_counts()
    frame = batch.to_frame()
    bounds = [0, *np.cumsum(chunks or [len(batch)])]
    for a, b in pairwise(bounds):
        state, released, c = cleaning.clean(state, PingBatch.from_frame(frame.iloc[a:b]), WORLD, now_ms, settings_)
        out.append(released)
        counts = {k: counts[k] + c[k] for k in counts}
    state, released, c = cleaning.flush(state, WORLD, settings_)
    out.append(released)
    counts = {k: counts[k] + c[k] for k in counts}
    return out, counts


A, B = REGISTERED

# (name, rows in arrival order, now: seconds after T0 or None, expected drops, expected released (vehicle, s))
CASES = [
    ("clean track", [(A, 0, 0, 0), (A, 30, 100, 0), (A, 60, 200, 0)], None, {},
     [(A, 0), (A, 30), (A, 60)]),
    ("invalid fix", [(A, 0, 0, 0), (A, 30, 100, 0, 0), (A, 60, 200, 0, FIX | 1)], None, {"invalid_fix": 1},
     [(A, 0), (A, 60)]),
    ("zero position", [(A, 0, 0, 0), (A, 30, "lonlat", (0.0, 0.0)), (A, 60, 200, 0)], None, {"zero_position": 1},
     [(A, 0), (A, 60)]),
    ("out of range", [(A, 0, 0, 0), (A, 10, "lonlat", (121.5, 91.0)), (A, 20, "lonlat", (181.0, 29.8)),
                      (A, 30, "lonlat", (float("nan"), 29.8)), (A, 40, "lonlat", (2.35, 48.85)),
                      (A, 50, "lonlat", (121.5, -29.8)), (A, 60, 200, 0)], None, {"out_of_range": 5},
     [(A, 0), (A, 60)]),
    ("future against the wall clock", [(A, 0, 0, 0), (A, 301, 100, 0), (A, 300, 90, 0)], 0, {"future": 1},
     [(A, 0), (A, 300)]),
    ("no wall clock, no future test", [(A, 0, 0, 0), (A, 301, 100, 0)], None, {}, [(A, 0), (A, 301)]),
    ("duplicate time, same or other position", [(A, 0, 0, 0), (A, 30, 100, 0), (A, 30, 100, 0), (A, 30, 150, 0),
                                                (A, 60, 200, 0)], None, {"duplicate": 2},
     [(A, 0), (A, 30), (A, 60)]),
    ("same time, other vehicle is no duplicate", [(A, 0, 0, 0), (B, 0, 0, 0)], None, {}, [(A, 0), (B, 0)]),
    ("invalid first copy leaves the second kept", [(A, 0, 0, 0, 0), (A, 0, 0, 0)], None, {"invalid_fix": 1},
     [(A, 0)]),
    ("late within the window is reordered", [(A, 0, 0, 0), (A, 60, 200, 0), (A, 30, 100, 0)], None, {},
     [(A, 0), (A, 30), (A, 60)]),
    ("exactly the window late is kept", [(A, 0, 0, 0), (B, 60, 0, 0), (A, 30, 100, 0)], None, {},
     [(A, 0), (A, 30), (B, 60)]),
    ("beyond the window is out of order", [(A, 0, 0, 0), (B, 61, 0, 0), (A, 30, 100, 0)], None,
     {"out_of_order": 1}, [(A, 0), (B, 61)]),
    ("late repeat of a seen time is a duplicate", [(A, 0, 0, 0), (A, 30, 100, 0), (A, 100, 300, 0),
                                                   (A, 30, 100, 0), (A, 20, 60, 0)], None,
     {"duplicate": 1, "out_of_order": 1}, [(A, 0), (A, 30), (A, 100)]),
    ("teleport from the last kept ping", [(A, 0, 0, 0), (A, 30, 10_000, 0), (A, 60, 200, 0)], None,
     {"teleport": 1}, [(A, 0), (A, 60)]),
    ("just below the plausible speed", [(A, 0, 0, 0), (A, 36, 2499, 0)], None, {}, [(A, 0), (A, 36)]),
    ("unregistered vehicles are cleaned too", [("X-1", 0, 0, 0), ("X-1", 0, 0, 0), ("X-1", 30, 50_000, 0)],
     None, {"duplicate": 1, "teleport": 1}, [("X-1", 0)]),
]


@pytest.mark.parametrize("name, rows, now_s, drops, expected", CASES, ids=[c[0] for c in CASES])
def test_drop_reasons(name, rows, now_s, drops, expected):
    batch = pings(rows)
    now_ms = None if now_s is None else T0_MS + now_s * 1000
    for chunks in (None, [1] * len(batch)):
        out, counts = run_clean(batch, now_ms, chunks)
        assert counts == {**cleaning.zero_counts(), **drops}, chunks
        released = [k for b in out for k in released_keys(b)]
        assert sorted(released) == sorted(expected), chunks
        assert sum(counts.values()) + len(released) == len(batch)


def test_released_batch_is_sorted_metric_and_derives_speed():
    batch = pings([(B, 30, 300, 400), (A, 30, 100, 0), (A, 0, 0, 0), (B, 0, 0, 0)])
    batch = PingBatch.from_arrays(batch.vehicle_id, batch.epoch_ms, batch.lon, batch.lat,
                                  speed_kmh=[np.nan, 55.0, np.nan, np.nan], heading=[1, 2, 3, 4], alarm=[0, 1, 2, 3])
    state, first, _ = cleaning.clean(cleaning.initial_state(), batch, WORLD)
    # the clock is at 30 s: the pings at 0 s are released now, those at 30 s wait for more
    assert released_keys(first) == [(A, 0), (B, 0)] and state.held_count == 2
    state, last, _ = cleaning.flush(state, WORLD)
    assert released_keys(last) == [(A, 30), (B, 30)]
    out = {c: np.concatenate([getattr(first, c), getattr(last, c)]) for c in ("slot", "lon", "lat", "x", "y",
           "speed_kmh", "speed_derived", "heading", "alarm", "waybill", "loaded")}
    assert list(out["slot"]) == [0, 1, 0, 1]
    x, y = to_metric(out["lon"], out["lat"])
    np.testing.assert_allclose(out["x"], x)
    np.testing.assert_allclose(out["y"], y)
    # A's second ping reported 55 km/h; B's is derived across the two releases: 500 m in 30 s
    assert np.isnan(out["speed_kmh"][:2]).all() and out["speed_kmh"][2] == 55.0
    assert out["speed_kmh"][3] == pytest.approx(60.0, rel=1e-6)
    assert list(out["speed_derived"]) == [True, True, False, True]
    assert list(out["heading"]) == [3, 4, 2, 1] and list(out["alarm"]) == [2, 3, 1, 0]
    assert list(out["waybill"]) == [-1] * 4 and not out["loaded"].any()


def test_derived_speed_carries_across_batches_and_skips_teleports():
    batch = pings([(A, 0, 0, 0), (A, 30, 10_000, 0), (A, 60, 250, 0), (A, 90, 500, 0)])
    out, counts = run_clean(batch, chunks=[1, 1, 1, 1])
    kept = [b for b in out if len(b)]
    speeds = np.concatenate([b.speed_kmh for b in kept])
    assert counts["teleport"] == 1
    # 250 m in 60 s from the last kept ping (not from the teleport), then 250 m in 30 s
    np.testing.assert_allclose(speeds[1:], [15.0, 30.0], rtol=1e-6)


def test_pings_are_held_until_the_clock_passes_the_window():
    state = cleaning.initial_state()
    state, out, _ = cleaning.clean(state, pings([(A, 0, 0, 0)]), WORLD)
    assert len(out) == 0 and state.held_count == 1
    state, out, _ = cleaning.clean(state, pings([(B, 29, 0, 0)]), WORLD)
    assert len(out) == 0
    state, out, _ = cleaning.clean(state, pings([(B, 30, 0, 0)]), WORLD)
    assert released_keys(out) == [(A, 0)] and state.held_count == 2
    assert state.clock_ms == T0_MS + 30_000


def test_slots_registered_first_then_unregistered_in_arrival_order():
    state = cleaning.initial_state()
    state, slot = cleaning.slots_for(state, np.array(["X-2", B, "X-1", "X-2", A], object), WORLD)
    assert list(slot) == [2, 1, 3, 2, 0]
    state, slot = cleaning.slots_for(state, np.array(["X-1", "X-3"], object), WORLD)
    assert list(slot) == [3, 4]


def test_settings_are_validated():
    with pytest.raises(ValueError, match="duplicate_memory_s"):
        CleaningSettings(reorder_window_s=60, duplicate_memory_s=30)
    with pytest.raises(ValueError, match="service area"):
        CleaningSettings(service_min_lon=130, service_max_lon=120)


def test_smaller_service_area_is_settable():
    ningbo = CleaningSettings(service_min_lon=120.8, service_max_lon=122.3, service_min_lat=28.8, service_max_lat=30.5)
    batch = pings([(A, 0, 0, 0), (A, 30, "lonlat", (121.0, 31.2))])  # Shanghai
    _, counts = run_clean(batch, settings_=ningbo)
    assert counts["out_of_range"] == 1


# -- streaming: any chunking ≡ one batch ≡ a per-ping reference of the contract ---------------


def reference(batch: PingBatch, settings_: CleaningSettings, now_ms=None):
    """The contract, one ping at a time in plain Python: returns kept (vehicle, time) in
    per-vehicle time order and the counts."""
    counts = cleaning.zero_counts()
    clock = None
    seen: dict[tuple[str, int], int] = {}  # (vehicle, t) -> kept at all
    accepted = []
    x, y = to_metric(batch.lon, batch.lat)
    w_ms = settings_.reorder_window_ms
    h_ms = settings_.duplicate_memory_ms
    for i in range(len(batch)):
        v, t, lon, lat = batch.vehicle_id[i], int(batch.epoch_ms[i]), batch.lon[i], batch.lat[i]
        if not batch.status[i] & FIX:
            counts["invalid_fix"] += 1
            continue
        if lon == 0 and lat == 0:
            counts["zero_position"] += 1
            continue
        if not (abs(lat) <= 90 and abs(lon) <= 180 and settings_.service_min_lon <= lon <= settings_.service_max_lon
                and settings_.service_min_lat <= lat <= settings_.service_max_lat):
            counts["out_of_range"] += 1
            continue
        if now_ms is not None and t > now_ms + settings_.max_future_s * 1000:
            counts["future"] += 1
            continue
        clock = t if clock is None else max(clock, t)
        if (v, t) in seen and t >= clock - h_ms:
            counts["duplicate"] += 1
            continue
        seen[(v, t)] = 1
        if t < clock - w_ms:
            counts["out_of_order"] += 1
            continue
        accepted.append((v, t, x[i], y[i]))
    kept = []
    last: dict[str, tuple[int, float, float]] = {}
    for v, t, px, py in sorted(accepted, key=lambda r: (r[0], r[1])):
        if v in last:
            lt, lx, ly = last[v]
            if math.hypot(px - lx, py - ly) / (t - lt) * 3600 > settings_.max_plausible_kmh:
                counts["teleport"] += 1
                continue
        last[v] = (t, px, py)
        kept.append((v, t))
    return kept, counts


@st.composite
def arrival_sequences(draw):
    n = draw(st.integers(1, 40))
    vehicles = st.sampled_from([A, B, "X-9", "X-1"])
    rows = []
    t = 0.0
    for _ in range(n):
        t += draw(st.sampled_from([0, 5, 10, 30]))
        jitter = draw(st.sampled_from([0, 0, 0, -10, -30, -31, -60, -700]))  # late arrivals
        kind = draw(st.sampled_from(["ok"] * 8 + ["invalid", "zero", "far", "jump", "repeat"]))
        v = draw(vehicles)
        s = t + jitter
        x, y = draw(st.floats(-300, 300)), draw(st.floats(-300, 300))
        if kind == "repeat" and rows:
            rows.append(draw(st.sampled_from(rows)))
            continue
        if kind == "invalid":
            rows.append((v, s, x, y, 0))
        elif kind == "zero":
            rows.append((v, s, "lonlat", (0.0, 0.0)))
        elif kind == "far":
            rows.append((v, s, "lonlat", (10.0, 50.0)))
        elif kind == "jump":
            rows.append((v, s, x + 20_000, y))
        else:
            rows.append((v, s, x, y))
    cuts = draw(st.lists(st.integers(1, n), max_size=6))
    bounds = sorted({0, n, *cuts})
    chunks = [b - a for a, b in pairwise(bounds)]
    now = draw(st.sampled_from([None, 0, 200]))
    return rows, chunks, now


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrival_sequences())
def test_streaming_matches_one_batch_and_reference(case):
    rows, chunks, now_s = case
    batch = pings(rows)
    now_ms = None if now_s is None else T0_MS + now_s * 1000
    whole, whole_counts = run_clean(batch, now_ms)
    split, split_counts = run_clean(batch, now_ms, chunks)
    single, single_counts = run_clean(batch, now_ms, [1] * len(batch))
    expected, expected_counts = reference(batch, SETTINGS, now_ms)

    def frame(out):
        cols = ("slot", "vehicle_id", "epoch_ms", "lon", "lat", "x", "y", "speed_kmh", "speed_derived", "status")
        df = pd.concat([pd.DataFrame({c: getattr(b, c) for c in cols}) for b in out], ignore_index=True)
        df["vehicle_id"] = df["vehicle_id"].astype(object)
        # contract: each vehicle's pings reach the rules once, in strictly increasing time
        assert (df.groupby("slot")["epoch_ms"].diff().dropna() > 0).all()
        return df.sort_values(["slot", "epoch_ms"]).reset_index(drop=True)

    reference_keys = sorted((v, t) for v, t in expected)
    for out, counts in ((whole, whole_counts), (split, split_counts), (single, single_counts)):
        assert counts == expected_counts
        df = frame(out)
        assert sorted(zip(df["vehicle_id"], df["epoch_ms"])) == reference_keys
        pd.testing.assert_frame_equal(df, frame(whole))
    assert sum(expected_counts.values()) + len(expected) == len(batch)


def test_drop_reason_names_are_stable():
    # the CLI and the monitor report these names
    assert DROP_REASONS == ("invalid_fix", "zero_position", "out_of_range", "future", "duplicate",
                            "out_of_order", "teleport")
