"""Cleaning: every drop reason counted; lateness judged per vehicle (a lagging terminal or a
blind-area upload is kept, a vehicle's own ping reordered beyond the window is dropped); the
wall clock advancing releases held pings; and streaming (any chunking of an arrival sequence,
with advances) releasing the same pings and counts as one batch — checked against a plain
per-ping reference written from the contract."""

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


def run_clean(batch: PingBatch, now_ms=None, chunks=None, settings_=SETTINGS, advances=None, flags=None,
              silences=None):
    """Clean `batch` in the given chunk sizes (one batch by default) then flush; return the
    released pings in release order and the summed counts. `advances` maps a row position to
    wall clocks (s after T0) advanced to just before that row arrives (chunks are cut there);
    `flags`, a list, receives each release's hidden-from-offline flags (silence_ms HIDDEN), and
    `silences`, a list, each release's silence instants."""
    state = cleaning.initial_state()
    out, counts = [], cleaning.zero_counts()
    advances = advances or {}
    frame = batch.to_frame()
    bounds = sorted({0, *np.cumsum(chunks or [len(batch)]).tolist(), *advances})

    def take(result):
        nonlocal state, counts
        state, released, c, silence_ms = result
        assert len(silence_ms) == len(released)
        out.append(released)
        if flags is not None:
            flags.append(silence_ms == cleaning.HIDDEN)
        if silences is not None:
            silences.append(silence_ms)
        counts = {k: counts[k] + c[k] for k in counts}

    for a, b in pairwise(bounds):
        for now_s in advances.get(a, []):
            take(cleaning.advance(state, WORLD, T0_MS + round(now_s * 1000), settings_))
        take(cleaning.clean(state, PingBatch.from_frame(frame.iloc[a:b]), WORLD, now_ms, settings_))
    for now_s in advances.get(len(batch), []):
        take(cleaning.advance(state, WORLD, T0_MS + round(now_s * 1000), settings_))
    take(cleaning.flush(state, WORLD, settings_))
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
    # Lateness is per vehicle: A's ping is behind the fleet clock by more than the window but
    # later than all of A's own (under the former fleet-wide test it was out_of_order).
    ("behind the fleet beyond the window, in order for its vehicle, is kept",
     [(A, 0, 0, 0), (B, 61, 0, 0), (A, 30, 100, 0)], None, {}, [(A, 0), (A, 30), (B, 61)]),
    ("own reorder beyond the window is out of order", [(A, 0, 0, 0), (A, 60, 200, 0), (B, 90, 0, 0),
                                                       (A, 30, 100, 0)], None,
     {"out_of_order": 1}, [(A, 0), (A, 60), (B, 90)]),
    ("own reorder just inside the window is kept", [(A, 0, 0, 0), (A, 60, 200, 0), (B, 89, 0, 0),
                                                    (A, 30, 100, 0)], None, {},
     [(A, 0), (A, 30), (A, 60), (B, 89)]),
    ("repeat beyond the duplicate memory is out of order", [(B, 0, 0, 0), (B, 700, 0, 0), (A, 10, 0, 0),
                                                            (A, 10, 0, 0)], None,
     {"out_of_order": 1}, [(A, 10), (B, 0), (B, 700)]),
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
    state, first, _, _ = cleaning.clean(cleaning.initial_state(), batch, WORLD)
    # the clock is at 30 s: the pings at 0 s are released now, those at 30 s wait for more
    assert released_keys(first) == [(A, 0), (B, 0)] and state.held_count == 2
    state, last, _, _ = cleaning.flush(state, WORLD)
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
    state, out, _, _ = cleaning.clean(state, pings([(A, 0, 0, 0)]), WORLD)
    assert len(out) == 0 and state.held_count == 1
    state, out, _, _ = cleaning.clean(state, pings([(B, 29, 0, 0)]), WORLD)
    assert len(out) == 0
    state, out, _, _ = cleaning.clean(state, pings([(B, 30, 0, 0)]), WORLD)
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


# -- lateness per vehicle: lagging terminals and blind-area uploads -----------------------------


def on_time_rows(vehicle: str, start_s: int, end_s: int, step_m: float = 100.0) -> list[tuple]:
    """A vehicle reporting every 30 s from start_s to end_s, moving step_m per ping along x."""
    return [(vehicle, s, (s - start_s) / 30 * step_m, 0.0) for s in range(start_s, end_s + 1, 30)]


def by_arrival(rows_with_arrival: list[tuple[float, tuple]]) -> list[tuple]:
    """Rows sorted by their arrival time (s), stable."""
    return [row for _, row in sorted(rows_with_arrival, key=lambda r: r[0])]


def behind_fleet_clock(rows: list[tuple]) -> int:
    """How many rows the former fleet-wide test would have dropped: older than the running
    maximum time minus the window (all rows here are valid fixes)."""
    clock, n = None, 0
    for row in rows:
        clock = row[1] if clock is None else max(clock, row[1])
        n += row[1] < clock - SETTINGS.reorder_window_s
    return n


def per_vehicle_releases(out) -> dict[str, list[int]]:
    times: dict[str, list[int]] = {}
    for batch in out:
        for v, t in released_keys(batch):
            times.setdefault(v, []).append(t)
    return times


def test_a_terminal_lagging_the_fleet_by_5_min_is_kept_in_order():
    fleet = [(s, row) for row in on_time_rows(B, 0, 1800) for s in [row[1]]]
    lagging = [(s + 300, row) for row in on_time_rows(A, 0, 1500) for s in [row[1]]]  # arrives 5 min late
    rows = by_arrival(fleet + lagging)
    assert behind_fleet_clock(rows) == 51  # the control: the fleet-wide test dropped every ping of A
    batch = pings(rows)
    for chunks in (None, [1] * len(batch), [7] * 14 + [len(batch) - 98]):
        flags: list = []
        out, counts = run_clean(batch, chunks=chunks, flags=flags)
        assert counts == cleaning.zero_counts(), chunks
        times = per_vehicle_releases(out)
        assert times[A] == list(range(0, 1501, 30)) and times[B] == list(range(0, 1801, 30))
        # every ping of A came more than the window behind the clock: flagged for the engine
        flagged = {k for b, f in zip(out, flags) for k, flag in zip(released_keys(b), f) if flag}
        assert flagged == {(A, s) for s in range(0, 1501, 30)}, chunks
    # one at a time, a lagging ping is released in the step it arrives: nothing piles up
    state = cleaning.initial_state()
    for i, row in enumerate(rows):
        state, out, _, _ = cleaning.clean(state, pings([row]), WORLD)
        assert state.held_count <= 2, i


@pytest.mark.parametrize("live_first", [False, True])
def test_a_blind_area_upload_10_min_late_is_kept_in_order(live_first):
    """JT/T 808 0x0704: A drives into a blind area at 300 s; the 20 pings it stored (300…870 s)
    come in one upload when it leaves at 900 s (the first 10 min late), next to its live ping
    (just before or just after it) while B and X-1 report throughout."""
    fleet = [(row[1], row) for v in (B, "X-1") for row in on_time_rows(v, 0, 1800)]
    a_rows = on_time_rows(A, 0, 1800)
    on_time = [(row[1], row) for row in a_rows if not 300 <= row[1] < 900]
    upload_at = 900.5 if live_first else 899.5
    backlog = [(upload_at, row) for row in a_rows if 300 <= row[1] < 900]
    assert len(backlog) == 20
    rows = by_arrival(fleet + on_time + backlog)
    assert behind_fleet_clock(rows) >= 18  # the control: dropped by the fleet-wide test
    batch = pings(rows)
    for chunks in (None, [1] * len(batch)):
        out, counts = run_clean(batch, chunks=chunks)
        assert counts == cleaning.zero_counts(), chunks
        times = per_vehicle_releases(out)
        assert times[A] == list(range(0, 1801, 30)), chunks
        assert times["X-1"] == times[B] == list(range(0, 1801, 30))
    # the derived speed through the upload is as on time: 100 m every 30 s
    speeds = np.concatenate([b.speed_kmh[b.vehicle_id == A] for b in out])
    np.testing.assert_allclose(speeds[1:], 12.0, rtol=1e-9)


def test_an_upload_after_the_vehicle_moved_on_is_out_of_order():
    """The same upload coming once A's live pings beyond it were released: too late, dropped."""
    a_rows = on_time_rows(A, 0, 1800)
    rows = by_arrival([(row[1], row) for row in on_time_rows(B, 0, 1800)]
                      + [(row[1], row) for row in a_rows if not 300 <= row[1] < 900]
                      + [(960.5, row) for row in a_rows if 300 <= row[1] < 900])  # A's 900 s ping released at 930
    out, counts = run_clean(pings(rows), chunks=[1] * len(rows))
    assert counts["out_of_order"] == 20 and per_vehicle_releases(out)[A] == [s for s in range(0, 1801, 30)
                                                                             if not 300 <= s < 900]


# -- the wall clock advancing ----------------------------------------------------------------


def test_advance_releases_held_pings_by_the_wall_clock():
    state, out, _, _ = cleaning.clean(cleaning.initial_state(), pings([(A, 0, 0, 0), (B, 10, 0, 0)]), WORLD)
    assert len(out) == 0 and state.held_count == 2
    state, out, counts, flags = cleaning.advance(state, WORLD, T0_MS + 29_999)
    assert len(out) == 0 and state.held_count == 2 and state.clock_ms == T0_MS + 29_999
    state, out, counts, silence = cleaning.advance(state, WORLD, np.int64(T0_MS + 30_000))
    assert released_keys(out) == [(A, 0)] and state.held_count == 1 and list(silence) == [T0_MS]
    assert counts == cleaning.zero_counts()
    # an earlier wall clock never moves the clock back
    state, out, _, _ = cleaning.advance(state, WORLD, T0_MS)
    assert len(out) == 0 and state.clock_ms == T0_MS + 30_000
    state, out, _, _ = cleaning.advance(state, WORLD, T0_MS + 600_000)
    assert released_keys(out) == [(B, 10)] and state.held_count == 0
    # after the wall clock ran ahead, a vehicle's own later pings are kept (lateness is per
    # vehicle) and released at once (flagged); its own earlier time is out of order; a ping
    # within the window of the wall clock is held as usual
    state, out, counts, flags = cleaning.clean(state, pings([(A, 100, 100, 0), (B, 575, 100, 0), (A, 50, 0, 0)]),
                                               WORLD)
    assert released_keys(out) == [(A, 100)] and list(flags) == [cleaning.HIDDEN] and state.held_count == 1
    assert counts == {**cleaning.zero_counts(), "out_of_order": 1}


def test_advance_from_nothing_and_bad_input():
    state, out, counts, flags = cleaning.advance(cleaning.initial_state(), WORLD, T0_MS)
    assert state.clock_ms == T0_MS and len(out) == len(flags) == 0 and counts == cleaning.zero_counts()
    for bad in (1.5e12, "now", None, True):
        with pytest.raises(TypeError, match="now_ms"):
            cleaning.advance(state, WORLD, bad)


# -- streaming: any chunking ≡ one batch ≡ a per-ping reference of the contract ---------------


def reference(batch: PingBatch, settings_: CleaningSettings, now_ms=None, advances=None):
    """The contract, one ping at a time in plain Python: returns kept (vehicle, time) in
    per-vehicle time order, the counts, and the kept pings that arrived more than the window
    behind the clock. `advances`: as in run_clean."""
    counts = cleaning.zero_counts()
    clock = None
    seen: dict[tuple[str, int], int] = {}  # (vehicle, t) -> kept at all
    accepted = []
    passed: dict[str, list[int]] = {}  # per vehicle: the times of its accepted pings so far
    behind = set()
    x, y = to_metric(batch.lon, batch.lat)
    w_ms = settings_.reorder_window_ms
    h_ms = settings_.duplicate_memory_ms
    advances = advances or {}

    def advance_to(now_s):
        nonlocal clock
        wall = T0_MS + round(now_s * 1000)
        clock = wall if clock is None else max(clock, wall)

    for i in range(len(batch)):
        for now_s in advances.get(i, []):
            advance_to(now_s)
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
        # the vehicle's frontier: its accepted earlier arrivals at least the window behind the clock
        frontier = max((q for q in passed.get(v, []) if q <= clock - w_ms), default=None)
        if frontier is not None and t <= frontier:
            counts["out_of_order"] += 1
            continue
        passed.setdefault(v, []).append(t)
        if t < clock - w_ms:
            behind.add((v, t))
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
    return kept, counts, {k for k in kept if k in behind}


@st.composite
def arrival_sequences(draw):
    """Pings of four vehicles (two unregistered) in arrival order: jittered late arrivals,
    terminals whose clock lags the fleet, blind-area uploads (a stretch of a vehicle's pings
    arriving together later), bad fixes and repeats; cut into chunks, with wall-clock advances."""
    n = draw(st.integers(1, 40))
    names = [A, B, "X-9", "X-1"]
    lag = {v: draw(st.sampled_from([0, 0, 0, 45, 300])) for v in names}  # the terminal's clock lags by this
    rows = []  # (arrival s, row)
    t = 0.0
    for _ in range(n):
        t += draw(st.sampled_from([0, 5, 10, 30]))
        jitter = draw(st.sampled_from([0, 0, 0, -10, -30, -31, -60, -700]))  # late arrivals
        kind = draw(st.sampled_from(["ok"] * 8 + ["invalid", "zero", "far", "jump", "repeat"]))
        v = draw(st.sampled_from(names))
        s = t + jitter - lag[v]
        x, y = draw(st.floats(-300, 300)), draw(st.floats(-300, 300))
        if kind == "repeat" and rows:
            rows.append((t, draw(st.sampled_from(rows))[1]))
            continue
        if kind == "invalid":
            rows.append((t, (v, s, x, y, 0)))
        elif kind == "zero":
            rows.append((t, (v, s, "lonlat", (0.0, 0.0))))
        elif kind == "far":
            rows.append((t, (v, s, "lonlat", (10.0, 50.0))))
        elif kind == "jump":
            rows.append((t, (v, s, x + 20_000, y)))
        else:
            rows.append((t, (v, s, x, y)))
    for _ in range(draw(st.integers(0, 2))):  # a blind-area upload: a stretch of one vehicle, held back
        v = draw(st.sampled_from(names))
        mine = [k for k, (_, row) in enumerate(rows) if row[0] == v]
        if not mine:
            continue
        first = draw(st.integers(0, len(mine) - 1))
        stretch = mine[first:first + draw(st.integers(1, 20))]
        upload_at = rows[stretch[-1]][0] + draw(st.sampled_from([0, 20, 60, 600]))
        for k in stretch:
            rows[k] = (upload_at, rows[k][1])
    rows = [row for _, row in sorted(rows, key=lambda r: r[0])]  # stable: an upload keeps its order
    cuts = draw(st.lists(st.integers(1, n), max_size=6))
    bounds = sorted({0, n, *cuts})
    chunks = [b - a for a, b in pairwise(bounds)]
    now = draw(st.sampled_from([None, 0, 200]))
    advances: dict[int, list[float]] = {}
    for _ in range(draw(st.integers(0, 3))):  # the wall clock, somewhere near the pings' times
        at = draw(st.integers(0, n))
        advances.setdefault(at, []).append(draw(st.sampled_from([-100, 0, 40, 120, 900])) + (rows[min(at, n - 1)][1]))
    return rows, chunks, now, advances


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrival_sequences())
def test_streaming_matches_one_batch_and_reference(case):
    rows, chunks, now_s, advances = case
    batch = pings(rows)
    now_ms = None if now_s is None else T0_MS + now_s * 1000
    runs = []
    for chunking in (None, chunks, [1] * len(batch)):
        flags: list = []
        out, counts = run_clean(batch, now_ms, chunking, advances=advances, flags=flags)
        runs.append((out, counts, flags))
    expected, expected_counts, expected_behind = reference(batch, SETTINGS, now_ms, advances)

    def frame(out):
        cols = ("slot", "vehicle_id", "epoch_ms", "lon", "lat", "x", "y", "speed_kmh", "speed_derived", "status")
        df = pd.concat([pd.DataFrame({c: getattr(b, c) for c in cols}) for b in out], ignore_index=True)
        df["vehicle_id"] = df["vehicle_id"].astype(object)
        # contract: each vehicle's pings reach the rules once, in strictly increasing time
        assert (df.groupby("slot")["epoch_ms"].diff().dropna() > 0).all()
        return df.sort_values(["slot", "epoch_ms"]).reset_index(drop=True)

    reference_keys = sorted((v, t) for v, t in expected)
    whole = frame(runs[0][0])
    for out, counts, flags in runs:
        assert counts == expected_counts
        df = frame(out)
        assert sorted(zip(df["vehicle_id"], df["epoch_ms"])) == reference_keys
        pd.testing.assert_frame_equal(df, whole)
        behind = {(v, int(t)) for b, f in zip(out, flags) for v, t, flag in zip(b.vehicle_id, b.epoch_ms, f) if flag}
        assert behind == expected_behind
    assert sum(expected_counts.values()) + len(expected) == len(batch)


def test_drop_reason_names_are_stable():
    # the CLI and the monitor report these names
    assert DROP_REASONS == ("invalid_fix", "zero_position", "out_of_range", "future", "duplicate",
                            "out_of_order", "teleport")


# -- arrival stamps: the instants the offline rule judges silence by ----------------------------


def stamped(rows: list[tuple]) -> PingBatch:
    """Rows (vehicle, seconds after T0, arrival seconds after T0 or None) in arrival order."""
    batch = pings([(v, s, 0, 0) for v, s, _ in rows])
    arrival = [-1 if a is None else T0_MS + round(a * 1000) for _, _, a in rows]
    return PingBatch(*(getattr(batch, f) for f in ("vehicle_id", "epoch_ms", "lon", "lat", "speed_kmh", "heading",
                                                  "alarm", "status")), arrival_ms=np.array(arrival, "int64"))


def test_silence_instants_are_arrivals_never_going_back():
    # B's third stamp and A's second go back (a gateway clock step): they count as the running
    # max; A lags 5 min. B's 400 s report arrives before its 390 s one, both within the window:
    # released in time order, the later time keeps the later arrival (each vehicle's increase)
    rows = [(A, 0, 300), (B, 0, 301), (B, 30, 331), (B, 60, 320), (A, 30, 330), (B, 400, 401), (B, 390, 405)]
    for chunks in (None, [1] * len(rows), [2, 5]):
        silences: list = []
        out, counts = run_clean(stamped(rows), chunks=chunks, silences=silences)
        got = sorted((v, t, int((s - T0_MS) // 1000)) for b, si in zip(out, silences)
                     for (v, t), s in zip(released_keys(b), si))
        assert got == [(A, 0, 300), (A, 30, 331), (B, 0, 301), (B, 30, 331), (B, 60, 331), (B, 390, 405),
                       (B, 400, 405)], chunks
        assert counts == cleaning.zero_counts()
    # unstamped pings keep their own times, HIDDEN when they came more than the window late
    silences = []
    out, _ = run_clean(stamped([(A, 300, None), (B, 0, None), (B, 330, None)]), silences=silences)
    got = sorted((v, t, int(s)) for b, si in zip(out, silences) for (v, t), s in zip(released_keys(b), si))
    assert got == [(A, 300, T0_MS + 300_000), (B, 0, cleaning.HIDDEN), (B, 330, T0_MS + 330_000)]


def test_silence_horizon_is_before_every_arrival_still_to_come():
    state = cleaning.initial_state()
    assert cleaning.silence_horizon(state) is None
    # unstamped: the clock minus the window, as before
    state, *_ = cleaning.clean(state, stamped([(A, 100, None)]), WORLD)
    assert cleaning.silence_horizon(state) == T0_MS + 70_000
    # stamped only: the arrival clock, or the earliest arrival still held
    state, *_ = cleaning.clean(cleaning.initial_state(), stamped([(A, 100, 400), (B, 0, 405)]), WORLD)
    assert state.held_count == 1  # A at 100 s waits for the window; B's lagging ping went through
    assert cleaning.silence_horizon(state) == T0_MS + 400_000 - 1
    state, *_ = cleaning.advance(state, WORLD, T0_MS + 130_000)
    assert state.held_count == 0 and cleaning.silence_horizon(state) == T0_MS + 405_000 - 1
    # the wall clock is the arrival clock's axis
    state, *_ = cleaning.advance(state, WORLD, T0_MS + 500_000)
    assert cleaning.silence_horizon(state) == T0_MS + 500_000 - 1
    # an unstamped ping among stamped ones brings the clock's bound back
    state, *_ = cleaning.clean(state, stamped([(A, 490, None)]), WORLD)
    assert cleaning.silence_horizon(state) == T0_MS + 500_000 - 30_000
