"""The engine end to end: a scripted trip raises exactly the events it was made to raise,
dropped pings raise none, a lagging terminal or a blind-area upload raises its events as if it
had come on time, the wall clock advancing raises offline for a silent feed, and however the
same arrivals are batched (one batch, one ping at a time, random chunks, with advances) the
events are the same, event for event — on a small hand-made world (hypothesis) and on the
demo world."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import fields
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from data.demo import build_world
from data.reference import load_chemicals
from spatial.crs import from_metric, geometry_to_metric
from spatial.model import PingBatch
from spatial.rules.base import settings_rows
from spatial.rules.engine import (
    Engine,
    EngineSettings,
    engine_settings_rows,
    event_order,
    sort_events,
)
from tests.tracks import (
    T0_MS,
    concat,
    layer,
    lonlat,
    metric_geometry,
    tiny_world,
    track,
    vehicle,
)

A, B, X = "VEH-000001", "VEH-000002", "VEH-900000"  # X is not registered
MIN_MS = 60_000
CHEMICALS = load_chemicals()
SCHOOL_XY = (10_000.0, 250.0)
UNLOAD_XY = (20_000.0, 0.0)


def entity(entity_id: str, xy) -> dict:
    return {"id": entity_id, "name": entity_id, "licensed": True, "category": "use", "district_adcode": "330212",
            "park_id": None, "geometry": metric_geometry(shapely.Point(*xy))}


def small_world():
    """An expressway along y = 0 (80 km/h), A's waybill of chlorine along it from the origin to
    the unloading site at x = 20 km, a school beside the expressway at x = 10 km."""
    stamp = lambda minutes: pd.Timestamp(T0_MS + minutes * MIN_MS, unit="ms", tz="UTC")
    waybills = layer("waybills", [
        {"id": "WB-000001", "vehicle_id": A, "status": "active", "loading_site_id": "ENT-L",
         "unloading_site_id": "ENT-U", "consignor": "甲", "consignee": "乙", "carrier": "丙",
         "planned_departure": stamp(-10), "planned_arrival": stamp(90), "emergency_phone": "110",
         "geometry": metric_geometry(shapely.LineString([(0, 0), UNLOAD_XY]))},
    ])
    goods = pd.DataFrame([{"waybill_id": "WB-000001", "seq": 1, "un_number": "1017", "name": "氯",
                           "hazard_class": "2.3", "packing_group": None, "quantity_t": 20.0}])
    roads = layer("roads", [
        {"id": "ROAD-1", "name": "G1", "road_class": "expressway", "speed_limit_kmh": 80.0,
         "geometry": metric_geometry(shapely.LineString([(-5000, 0), (30_000, 0)]))},
        {"id": "ROAD-2", "name": "S2", "road_class": "primary", "speed_limit_kmh": 60.0,
         "geometry": metric_geometry(shapely.LineString([(-5000, 3000), (30_000, 3000)]))},
    ])
    sites = layer("sensitive_sites", [
        {"id": "SITE-000001", "name": "小学", "kind": "school", "geometry": metric_geometry(shapely.Point(*SCHOOL_XY))},
    ])
    world = tiny_world(
        vehicles=layer("vehicles", [vehicle(A), vehicle(B)]),
        entities=layer("entities", [entity("ENT-L", (0, 0)), entity("ENT-U", UNLOAD_XY)]),
        waybills=waybills, waybill_goods=goods, roads=roads, sensitive_sites=sites,
    )
    world.chemicals = CHEMICALS
    return world


WORLD = small_world()


def walk(start, moves) -> np.ndarray:
    """Positions from `start` after each (dx, dy) step."""
    return np.asarray(start, "float64") + np.cumsum(np.asarray(moves, "float64").reshape(-1, 2), axis=0)


def scripted_trip() -> np.ndarray:
    """A's trip, one ping every 30 s (metres from the origin)."""
    drive = walk((0, 0), [(600, 0)] * 16)  # 72 km/h to x = 9.6 km
    stop = walk((10_000, 0), [(0, 0)]) + np.array([[(-1) ** k * 3.0, 0.0] for k in range(21)])  # 10 min by the school
    fast = walk((10_000, 0), [(900, 0)] * 5)  # 108 km/h for 2.5 min on an 80 km/h road
    steady = walk(fast[-1], [(300, 0)] * 2)
    away = walk(steady[-1], [(0, 400), (0, 400)] + [(400, 0)] * 6)  # 800 m off the route for 3.5 min
    back = walk(away[-1], [(0, -400), (0, -400)] + [(400, 0)] * 4)
    to_site = walk(back[-1], [((UNLOAD_XY[0] - back[-1][0]) / 4, 0)] * 4)
    unload = np.repeat(to_site[-1:], 21, axis=0) + np.array([[0.0, (-1) ** k * 2.0] for k in range(21)])
    leave = walk(unload[-1], [(0, 400)] * 12)  # off the route, but the waybill has ended
    return np.vstack([drive, stop, fast, steady, away, back, to_site, unload, leave])


def rule_phases(events) -> Counter:
    return Counter((e.rule, e.phase) for e in events)


def canonical(events) -> list[tuple]:
    """Events as comparable tuples (evidence as sorted JSON, so NaN compares equal)."""
    return [(e.rule, e.subject_id, e.episode_id, e.phase, e.start, e.end, e.lon, e.lat, e.severity,
             json.dumps(e.evidence, sort_keys=True, default=str)) for e in sort_events(events)]


def run_chunks(world, pings: PingBatch, sizes: list[int] | None, advances: dict[int, list[int]] | None = None):
    """Step the pings in chunks of `sizes` (None: one batch), then flush. `advances` maps a row
    position to wall clocks (epoch ms) the engine is advanced to just before that row (chunks
    are cut there)."""
    engine = Engine(world)
    frame = pings.to_frame()
    advances = advances or {}
    bounds = sorted({0, len(pings), *np.cumsum(sizes or [len(pings)]).tolist(), *advances})
    events = []
    for a, b in pairwise(bounds):
        for now_ms in advances.get(a, []):
            events += engine.advance(now_ms)
        events += engine.step(PingBatch.from_frame(frame.iloc[a:b]))
    for now_ms in advances.get(len(pings), []):
        events += engine.advance(now_ms)
    events += engine.flush()
    return events, engine


# -- a scripted trip ------------------------------------------------------------------------


def test_scripted_trip_raises_exactly_its_events():
    pings = track(A, scripted_trip(), start_ms=T0_MS)
    engine = Engine(WORLD)
    events = engine.run(pings)
    assert rule_phases(events) == Counter({
        ("stop", "open"): 2, ("stop", "close"): 2,  # by the school, then unloading (closed on leaving)
        ("stop_near_sensitive_site", "open"): 1, ("stop_near_sensitive_site", "close"): 1,
        ("speeding", "open"): 1, ("speeding", "close"): 1,
        ("route_deviation", "open"): 1, ("route_deviation", "close"): 1,  # none after unloading
        # the loaded truck stood > 10 min by the school, away from any lot or site
        ("illegal_parking", "open"): 1, ("illegal_parking", "close"): 1,
        # its waybill's goods are not among the media its tank is approved for
        ("unapproved_medium", "open"): 1, ("unapproved_medium", "close"): 1,
    })
    near = next(e for e in events if e.rule == "stop_near_sensitive_site")
    # the engine handed the stop rule's episode and the waybill stage's loaded flag through
    assert near.subject_id == A and near.evidence["site_id"] == "SITE-000001"
    assert near.evidence["loaded"] is True and near.evidence["waybill_id"] == "WB-000001"
    assert near.evidence["stop_episode_id"] == next(e.episode_id for e in events if e.rule == "stop")
    deviation = next(e for e in events if e.rule == "route_deviation" and e.phase == "open")
    assert deviation.start == pd.Timestamp(T0_MS + (16 + 21 + 5 + 2 + 1) * 30_000, unit="ms", tz="UTC")
    assert events == sort_events(events) and [event_order(e) for e in events] == sorted(map(event_order, events))
    assert engine.drop_counts == dict.fromkeys(engine.drop_counts, 0)
    assert engine.released_count == len(pings) and engine.held_count == 0
    assert engine.clock_ms == int(pings.epoch_ms.max())


def test_unloading_stop_ends_the_waybill_so_later_detours_are_not_deviations():
    trip = scripted_trip()
    # the same trip without the unloading stop: leaving the route at the site is a deviation
    unload_rows = slice(len(trip) - 12 - 21, len(trip) - 12)
    no_unload = np.delete(trip, np.r_[unload_rows][1:], axis=0)
    events = Engine(WORLD).run(track(A, no_unload, start_ms=T0_MS))
    assert rule_phases(events)[("route_deviation", "open")] == 2


def test_the_stop_frames_carry_the_waybill_and_loaded_flag():
    pings = track(A, scripted_trip(), start_ms=T0_MS)
    engine = Engine(WORLD)
    seen = []
    rule = engine.rules[-1]
    original = rule.step

    def spy(state, batch, world):
        if batch.stops_opened is not None and len(batch.stops_opened):
            seen.append(batch.stops_opened.copy())
        if batch.stops_closed is not None and len(batch.stops_closed):
            seen.append(batch.stops_closed.copy())
        return original(state, batch, world)

    object.__setattr__(rule, "step", spy) if hasattr(rule, "__dataclass_fields__") else setattr(rule, "step", spy)
    engine.run(pings)
    frames = pd.concat(seen, ignore_index=True)
    opened = frames[frames["end_ms"] < 0]
    closed = frames[frames["end_ms"] >= 0]
    assert len(opened) == 2 and len(closed) == 2
    # both stops are on the waybill and loaded: the unloading stop's confirming ping is the last on it
    assert list(opened["waybill"]) == [0, 0] and list(opened["loaded"]) == [True, True]
    assert list(closed["waybill"]) == [0, 0] and (closed["end_ms"] > closed["confirmed_ms"]).all()
    x, y = geometry_to_metric(shapely.points(*lonlat([SCHOOL_XY]))).tolist()[0].coords[0]
    assert abs(opened["x"].iloc[0] - x) < 300 and abs(opened["y"].iloc[0] - y) < 300


# -- dropped pings never produce an event ---------------------------------------------------


def test_a_stop_of_invalid_fixes_raises_nothing():
    xy = np.repeat([SCHOOL_XY], 30, axis=0)
    valid = track(B, xy, start_ms=T0_MS)
    assert rule_phases(Engine(WORLD).run(valid))[("stop", "open")] == 1  # the control
    invalid = PingBatch.from_arrays(valid.vehicle_id, valid.epoch_ms, valid.lon, valid.lat,
                                    status=np.zeros(len(valid), "uint32"))
    engine = Engine(WORLD)
    assert engine.run(invalid) == []
    assert engine.drop_counts["invalid_fix"] == 30 and engine.released_count == 0


def test_a_teleport_raises_no_speeding_and_no_deviation():
    xy = walk((0, 0), [(300, 0)] * 10)  # 36 km/h along the route
    xy[5] = (xy[5][0], 5000)  # one fix 5 km off: 600 km/h out and back
    engine = Engine(WORLD)
    events = engine.run(track(A, xy, start_ms=T0_MS))
    # nothing from the pings (the waybill itself carries a medium the tank is not approved for)
    assert [e.rule for e in events if e.rule != "unapproved_medium"] == [] and engine.drop_counts["teleport"] == 1
    # the control: with cleaning's speed test lifted, the derived 600 km/h out and back is speeding
    lax = EngineSettings(cleaning=type(EngineSettings().cleaning)(max_plausible_kmh=10_000))
    events = Engine(WORLD, lax).run(track(A, xy, start_ms=T0_MS))
    assert rule_phases(events)[("speeding", "open")] == 1


def test_duplicates_and_late_arrivals_do_not_double_events():
    pings = track(A, scripted_trip(), start_ms=T0_MS)
    frame = pings.to_frame()
    reference = canonical(Engine(WORLD).run(pings))
    noisy = pd.concat([frame, frame.iloc[::7]], ignore_index=True)  # every 7th ping again, late
    engine = Engine(WORLD)
    assert canonical(engine.run(PingBatch.from_frame(noisy))) == reference
    repeated_ms = frame["epoch_ms"].iloc[::7]
    # a repeat is a duplicate while within duplicate_memory_s of the clock, later only out of order
    recent = int((repeated_ms >= frame["epoch_ms"].max() - 600_000).sum())
    assert engine.drop_counts["duplicate"] == recent > 0
    assert engine.drop_counts["out_of_order"] == len(repeated_ms) - recent > 0


# -- lateness per vehicle: lagging terminals and blind-area uploads -------------------------


def arriving(pings: PingBatch, arrival_ms) -> PingBatch:
    """The same pings reordered by arrival time (stable)."""
    frame = pings.to_frame()
    return PingBatch.from_frame(frame.iloc[np.argsort(np.asarray(arrival_ms), kind="stable")])


def behind_fleet_clock(pings: PingBatch) -> int:
    """Pings the former fleet-wide test dropped: older than the running max time minus the
    reorder window at arrival (the control that a scenario really is late)."""
    clock = np.maximum.accumulate(pings.epoch_ms)
    return int((pings.epoch_ms < clock - EngineSettings().cleaning.reorder_window_ms).sum())


def b_on_the_side_road(n: int) -> PingBatch:
    """B drives along the 60 km/h side road at 36 km/h, on no waybill: it raises nothing."""
    return track(B, walk((-4000, 3000), [(300, 0)] * n), start_ms=T0_MS - 30_000)


def test_a_terminal_lagging_5_min_raises_its_events_as_on_time():
    a = track(A, scripted_trip(), start_ms=T0_MS)
    b = b_on_the_side_road(len(a) + 12)
    both = concat([a, b])
    on_time = arriving(both, both.epoch_ms)
    lagging = arriving(both, both.epoch_ms + np.where(both.vehicle_id == A, 300_000, 0))
    assert behind_fleet_clock(lagging) >= len(a) - 1
    reference = canonical(Engine(WORLD).run(on_time))
    assert rule_phases(Engine(WORLD).run(on_time))[("speeding", "open")] == 1
    for sizes in (None, [1] * len(lagging)):
        events, engine = run_chunks(WORLD, lagging, sizes)
        assert canonical(events) == reference, sizes
        assert engine.drop_counts == dict.fromkeys(engine.drop_counts, 0)
        assert engine.released_count == len(both)


@pytest.mark.parametrize("live_first", [False, True])
def test_a_blind_area_upload_raises_its_events_as_on_time(live_first):
    """A loses the network for 20 pings (10 min) across the end of its stop by the school, its
    fast stretch and the start of its detour; the JT/T 808 blind-area upload comes when it is
    back, next to its first live ping (just before or just after), while B reports throughout."""
    a = track(A, scripted_trip(), start_ms=T0_MS)
    b = b_on_the_side_road(len(a) + 12)
    both = concat([a, b])
    k = np.flatnonzero(both.vehicle_id == A)
    arrival = both.epoch_ms.astype("float64").copy()
    back_ms = a.epoch_ms[50]
    arrival[k[30:50]] = back_ms + (500 if live_first else -500)
    uploaded = arriving(both, arrival)
    assert behind_fleet_clock(uploaded) >= 18
    reference = canonical(Engine(WORLD).run(arriving(both, both.epoch_ms)))
    fives = [5] * (len(uploaded) // 5) + [len(uploaded) % 5] * (len(uploaded) % 5 > 0)
    for sizes in (None, [1] * len(uploaded), fives):
        events, engine = run_chunks(WORLD, uploaded, sizes)
        assert canonical(events) == reference, sizes
        assert engine.drop_counts == dict.fromkeys(engine.drop_counts, 0)
    # the episodes inside the upload are there: the fast stretch, the detour, the stop's end
    phases = rule_phases(events)
    assert phases[("speeding", "open")] == phases[("route_deviation", "open")] == 1
    assert phases[("stop_near_sensitive_site", "close")] == 1


def test_an_own_ping_reordered_beyond_the_window_is_dropped_inside_it_is_sorted():
    a = track(A, scripted_trip(), start_ms=T0_MS)
    reference = canonical(Engine(WORLD).run(a))
    order = np.arange(len(a))
    inside = order.copy()
    inside[[20, 21]] = inside[[21, 20]]  # 30 s late: within the window, sorted back
    frame = a.to_frame()
    events, engine = run_chunks(WORLD, PingBatch.from_frame(frame.iloc[inside]), [1] * len(a))
    assert canonical(events) == reference and engine.drop_counts["out_of_order"] == 0
    beyond = np.r_[order[:20], order[21:24], 20, order[24:]]  # 90 s late, after its later pings were released
    events, engine = run_chunks(WORLD, PingBatch.from_frame(frame.iloc[beyond]), [1] * len(a))
    assert engine.drop_counts["out_of_order"] == 1 and engine.released_count == len(a) - 1
    assert canonical(events) == canonical(Engine(WORLD).run(PingBatch.from_frame(frame.drop(index=20))))


# -- the wall clock advancing -----------------------------------------------------------------


def test_advance_releases_held_pings_by_the_wall_clock():
    engine = Engine(WORLD)
    engine.step(track(A, walk((0, 0), [(300, 0)] * 2), start_ms=T0_MS))  # pings at 0 and 30 s
    assert engine.held_count == 1 and engine.released_count == 1
    assert engine.advance(T0_MS + 59_999) == [] and engine.held_count == 1
    engine.advance(T0_MS + 60_000)
    assert engine.held_count == 0 and engine.released_count == 2 and engine.clock_ms == T0_MS + 60_000
    with pytest.raises(TypeError, match="now_ms"):
        engine.advance(str(T0_MS))


def test_advance_raises_offline_for_a_fully_silent_feed():
    """A reports on its waybill for 5 min, then nothing arrives from anyone: only the wall clock
    moves. A is raised offline once the clock is offline_after_s + outage_grace_s (no outage
    began) + the reorder window past its last ping."""
    a = track(A, walk((0, 0), [(300, 0)] * 10), start_ms=T0_MS)
    last_ms = int(a.epoch_ms.max())
    settings = EngineSettings()
    due_ms = last_ms + round((settings.offline.offline_after_s + settings.offline.outage_grace_s
                              + settings.cleaning.reorder_window_s) * 1000)
    engine = Engine(WORLD)
    events = engine.step(a)
    for now_ms in range(last_ms, due_ms, 60_000):  # every minute of the silence, then just before
        events += engine.advance(now_ms)
    events += engine.advance(due_ms - 1)
    assert [e for e in events if e.rule == "offline"] == []
    raised = [e for e in engine.advance(due_ms) if e.rule == "offline"]
    assert [(e.subject_id, e.phase) for e in raised] == [(A, "open")]
    assert raised[0].start == pd.Timestamp(last_ms, unit="ms", tz="UTC")
    assert raised[0].evidence["waybill_id"] == "WB-000001"
    # the control: without the wall clock the data's own clock never moves past the last ping
    assert [e for e in Engine(WORLD).run(a) if e.rule == "offline"] == []


# -- streaming: any batching gives the same events -------------------------------------------


@st.composite
def fleet_arrivals(draw):
    """Random trips of two registered trucks and an unregistered one along and off A's route,
    with stops, fast stretches and detours; then arrival noise: terminals whose clock lags the
    fleet, blind-area uploads (a stretch of one truck's pings arriving together later), late
    swaps, duplicates, invalid fixes; cut into chunks, with wall-clock advances."""
    frames = []
    for vid in (A, B, X):
        n_segments = draw(st.integers(1, 5))
        pos = np.array([draw(st.sampled_from([0.0, 5000.0, 9800.0, 10_000.0, 19_900.0])), 0.0])
        moves = []
        for _ in range(n_segments):
            kind = draw(st.sampled_from(["drive", "drive", "stop", "detour", "jump"]))
            n = draw(st.integers(2, 14))
            if kind == "jump":  # one bad fix 6 km off, then back: a teleport
                moves += [(0, 6000), (0, -6000)]
            elif kind == "stop":
                moves += [(draw(st.floats(-15, 15)), draw(st.floats(-15, 15))) for _ in range(n)]
            elif kind == "detour":
                side = draw(st.sampled_from([-1, 1]))
                moves += [(0, side * 300)] * 2 + [(300, 0)] * n + [(0, -side * 300)] * 2
            else:
                step_m = draw(st.sampled_from([250.0, 600.0, 800.0, 1000.0]))
                moves += [(step_m, 0.0)] * n
        xy = walk(pos, moves)
        start = T0_MS + draw(st.integers(0, 20)) * 15_000
        frames.append(track(vid, xy, start_ms=start, interval_s=30.0).to_frame())
    frame = pd.concat(frames, ignore_index=True)
    lag_ms = {vid: draw(st.sampled_from([0, 0, 0, 90_000, 300_000])) for vid in (A, B, X)}
    arrival = frame["epoch_ms"].to_numpy() + frame["vehicle_id"].map(lag_ms).to_numpy()
    for _ in range(draw(st.integers(0, 2))):  # a blind-area upload
        mine = np.flatnonzero(frame["vehicle_id"].to_numpy() == draw(st.sampled_from([A, B, X])))
        first = draw(st.integers(0, len(mine) - 1))
        stretch = mine[first:first + draw(st.integers(1, 20))]
        arrival[stretch] = arrival[stretch[-1]] + draw(st.sampled_from([0, 20_000, 60_000, 600_000]))
    frame = frame.iloc[np.argsort(arrival, kind="stable")].reset_index(drop=True)
    status = frame["status"].to_numpy().copy()
    order = np.arange(len(frame))
    for _ in range(draw(st.integers(0, 6))):  # a late arrival: within the window or far beyond
        i = draw(st.integers(0, len(frame) - 1))
        j = min(len(frame) - 1, i + draw(st.sampled_from([1, 2, 8])))
        order[[i, j]] = order[[j, i]]
    for _ in range(draw(st.integers(0, 3))):
        status[draw(st.integers(0, len(frame) - 1))] = 0
    frame["status"] = status
    frame = frame.iloc[order]
    repeats = draw(st.lists(st.integers(0, len(frame) - 1), max_size=3))
    frame = pd.concat([frame, frame.iloc[repeats]], ignore_index=True)
    cuts = sorted(set(draw(st.lists(st.integers(1, len(frame) - 1), max_size=8)))) if len(frame) > 1 else []
    bounds = [0, *cuts, len(frame)]
    advances: dict[int, list[int]] = {}
    for _ in range(draw(st.integers(0, 3))):  # the wall clock, near the data's own or far ahead
        at = draw(st.integers(0, len(frame)))
        advances.setdefault(at, []).append(int(frame["epoch_ms"].iloc[min(at, len(frame) - 1)])
                                           + draw(st.sampled_from([-60_000, 0, 45_000, 1_800_000])))
    return PingBatch.from_frame(frame), [b - a for a, b in pairwise(bounds)], advances


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fleet_arrivals())
def test_any_batching_gives_the_same_events(case):
    pings, sizes, advances = case
    whole, whole_engine = run_chunks(WORLD, pings, None, advances)
    whole = canonical(whole)
    chunked, chunk_engine = run_chunks(WORLD, pings, sizes, advances)
    single, single_engine = run_chunks(WORLD, pings, [1] * len(pings), advances)
    assert canonical(chunked) == whole
    assert canonical(single) == whole
    assert chunk_engine.drop_counts == single_engine.drop_counts == whole_engine.drop_counts
    assert chunk_engine.released_count == single_engine.released_count == whole_engine.released_count


# -- the demo world ---------------------------------------------------------------------------


def fleet_day(world, n_vehicles: int, seed: int, interval_s: float = 30.0) -> PingBatch:
    """Trips of the first `n_vehicles` active waybills: parked 10 min at the loading site, along
    the planned route at the planned 50 km/h with a few metres of GNSS noise, parked 15 min at
    the unloading site. Some trucks leave the route for a while, some speed. Arrival order =
    time order."""
    rng = np.random.default_rng(seed)
    active = world.waybills[world.waybills["status"] == "active"].head(n_vehicles)
    routes = geometry_to_metric(active.geometry.to_numpy())
    frames = []
    step_m = 50 / 3.6 * interval_s
    for k, (wb, route) in enumerate(zip(active.itertuples(), routes)):  # per truck, not per ping
        along = np.arange(0.0, route.length, step_m)
        xy = shapely.get_coordinates(shapely.line_interpolate_point(route, along))
        if k % 3 == 1 and len(xy) > 40:  # a 1 km detour for 10 pings
            xy[20:30] += np.array([0.0, 1000.0])
        first = shapely.get_coordinates(route)[0]
        last = shapely.get_coordinates(route)[-1]
        xy = np.vstack([np.repeat([first], 20, axis=0), xy, np.repeat([last], 30, axis=0)])
        xy = xy + rng.normal(0, 3.0, xy.shape)
        n = len(xy)
        speed = np.full(n, np.nan)
        if k % 4 == 2:
            speed[30:36] = 110.0
        start = int(wb.planned_departure.value // 1_000_000) - 10 * MIN_MS
        lon, lat = from_metric(xy[:, 0], xy[:, 1])
        frames.append(pd.DataFrame({"vehicle_id": wb.vehicle_id, "epoch_ms": start + np.arange(n) * int(interval_s * 1000),
                                    "lon": lon, "lat": lat, "speed_kmh": speed}))
    frame = pd.concat(frames, ignore_index=True).sort_values("epoch_ms", kind="stable")
    return PingBatch.from_arrays(frame["vehicle_id"], frame["epoch_ms"], frame["lon"], frame["lat"],
                                 speed_kmh=frame["speed_kmh"])


@pytest.fixture(scope="module")
def demo_world():
    world = build_world(20211, scale=0.01)
    world.chemicals = CHEMICALS
    return world


def test_demo_world_fleet_streams_like_one_batch(demo_world):
    pings = fleet_day(demo_world, 8, seed=3)
    whole = Engine(demo_world).run(pings)
    rng = np.random.default_rng(1)
    sizes = []
    while sum(sizes) < len(pings):
        sizes.append(int(min(rng.integers(1, 300), len(pings) - sum(sizes))))
    chunked, _ = run_chunks(demo_world, pings, sizes)
    assert canonical(chunked) == canonical(whole)
    phases = rule_phases(whole)
    assert phases[("stop", "open")] >= 8  # at least the unloading stop of every truck
    assert phases[("route_deviation", "open")] >= 1 and phases[("speeding", "open")] >= 1
    assert {e.subject_id for e in whole} <= set(demo_world.vehicles["id"])


# -- settings ---------------------------------------------------------------------------------


def test_settings_rows_cover_every_threshold_with_unit_and_source():
    rows = engine_settings_rows()
    settings = EngineSettings()
    expected = [(f.name, g.name) for f in fields(settings) for g in fields(getattr(settings, f.name))]
    assert [(r["rule"], r["name"]) for r in rows] == expected
    assert all(r["source"] for r in rows), [r for r in rows if not r["source"]]
    numeric = [r for r in rows if isinstance(r["value"], (int, float)) and not isinstance(r["value"], bool)]
    assert all(r["unit"] for r in numeric), [r for r in numeric if not r["unit"]]
    json.dumps(rows, ensure_ascii=False)  # what `hazmap rules settings --json` prints
    assert Engine(WORLD).settings_rows() == rows
    assert {r["rule"] for r in rows} == {"cleaning", "waybills", "stop", "route_deviation",
                                         "stop_near_sensitive_site", "speeding", "illegal_parking",
                                         "suspected_washing", "media_change_unwashed", "restricted_zone",
                                         "fatigue", "offline", "terminal_alarm", "mixed_loading",
                                         "unapproved_medium"}
    assert settings_rows("x", settings.cleaning)[0]["name"] == "reorder_window_s"


def test_settings_reach_the_stages():
    xy = np.repeat([SCHOOL_XY], 12, axis=0)  # 5.5 min parked
    pings = track(B, xy, start_ms=T0_MS)
    assert rule_phases(Engine(WORLD).run(pings))[("stop", "open")] == 1
    longer = EngineSettings(stop=type(EngineSettings().stop)(stop_min_duration_s=600))
    assert rule_phases(Engine(WORLD, longer).run(pings))[("stop", "open")] == 0


def test_a_chosen_subset_of_rules_runs_alone():
    pings = track(A, scripted_trip(), start_ms=T0_MS)
    only = Engine(WORLD, rules=("speeding",)).run(pings)
    assert {e.rule for e in only} == {"stop", "speeding"}
    assert [e for e in only if e.rule == "speeding"] == [e for e in Engine(WORLD).run(pings) if e.rule == "speeding"]
    with pytest.raises(ValueError, match="unknown rules"):
        Engine(WORLD, rules=("speding",))
