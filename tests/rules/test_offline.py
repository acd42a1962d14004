"""offline and feed_outage: boundary tables, a brute-force oracle, streaming.

The oracle (`oracle`) does not import spatial.rules: it re-states the documented definition
plainly. At an instant s (integer ms) a truck's last ping is its latest ping strictly before s;
it is tracked when that ping was on a waybill and s - last < window, silent when tracked and
s - last >= offline_after. It walks every instant where a count can change (ping + 1,
ping + offline_after, ping + window), counts trucks one by one, runs the outage's open/close
thresholds, and for every silence finds the first instant x >= last + offline_after with no
outage within [x, x + grace], raised when x + grace <= the final horizon.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from spatial.model import PingBatch
from spatial.rules.base import RuleBatch, RuleWorld, settings_rows
from spatial.rules.engine import Engine, EngineSettings, sort_events
from spatial.rules.offline import OfflineRule, OfflineSettings
from tests.tracks import (
    T0_MS,
    layer,
    lonlat,
    metric_geometry,
    tiny_world,
    track,
    vehicle,
)

S = 1000
MIN = 60 * S
INF = 2**62


def fleet_world(n: int):
    """n registered trucks VEH-000000…, each with one active waybill (row i for truck i)."""
    ids = [f"VEH-{i:06d}" for i in range(n)]
    stamp = pd.Timestamp(T0_MS, unit="ms", tz="UTC")
    waybills = layer("waybills", [
        {"id": f"WB-{i:06d}", "vehicle_id": v, "status": "active", "loading_site_id": "ENT-L",
         "unloading_site_id": "ENT-U", "consignor": "甲", "consignee": "乙", "carrier": "丙",
         "planned_departure": stamp - pd.Timedelta(hours=1), "planned_arrival": stamp + pd.Timedelta(days=2),
         "emergency_phone": "110", "geometry": metric_geometry(shapely.LineString([(0, 0), (1000, 0)]))}
        for i, v in enumerate(ids)])
    return tiny_world(vehicles=layer("vehicles", [vehicle(v) for v in ids]), waybills=waybills), ids


def batch_of(rows, n_slots: int, clock_ms: int) -> RuleBatch:
    """Pings (slot, epoch_ms, on_waybill) as the engine would release them, sorted by (slot, time)."""
    rows = sorted(rows)
    if not rows:
        return RuleBatch.empty().with_columns(clock_ms=clock_ms)
    slot = np.array([r[0] for r in rows], "int64")
    t = np.array([r[1] for r in rows], "int64")
    on = np.array([r[2] for r in rows], bool)
    lon, lat = lonlat(np.column_stack([slot * 100.0, np.zeros(len(rows))]))
    n = len(rows)
    return RuleBatch(
        slot=slot, vehicle_id=np.array([f"VEH-{s:06d}" for s in slot], dtype=object), epoch_ms=t, lon=lon, lat=lat,
        x=np.zeros(n), y=np.zeros(n), speed_kmh=np.full(n, 40.0), speed_derived=np.zeros(n, bool),
        heading=np.zeros(n), alarm=np.zeros(n, "uint32"), status=np.zeros(n, "uint32"),
        waybill=np.where(on, slot, -1).astype("int64"), loaded=on, clock_ms=clock_ms)


def run_rule(rule: OfflineRule, world, pings, cuts, final_clock_ms: int, extra_clocks=()):
    """Feed the time-sorted pings in chunks split at `cuts`, each step's clock its latest ping
    time so far (all pings before the clock are then delivered, as the engine guarantees with
    a zero reorder window), clock-only steps at `extra_clocks` once every ping before them is
    delivered, and a last clock-only step at `final_clock_ms`."""
    rw = RuleWorld(world)
    pings = sorted(pings, key=lambda r: (r[1], r[0]))
    bounds = sorted({c for c in cuts if 0 < c < len(pings)} | {len(pings)})
    plan, start = [], 0
    for i, end in enumerate(bounds):
        plan.append(((i, 0, 0), pings[start:end], None))
        start = end
    for c in extra_clocks:  # after the chunk holding the last ping before it
        before = sum(1 for p in pings if p[1] < c)
        k = next(i for i, end in enumerate(bounds) if end >= before) if before else -1
        plan.append(((k, 1, c), [], c))
    plan = [(chunk, c) for _, chunk, c in sorted(plan, key=lambda p: p[0])]
    state, events, clock = rule.initial_state(), [], -1
    for chunk, c in plan:
        clock = max(clock, chunk[-1][1] if chunk else c if c is not None else -1)
        state, ev = rule.step(state, batch_of(chunk, len(world.vehicles), clock), rw)
        events += ev
    state, ev = rule.step(state, batch_of([], len(world.vehicles), max(clock, final_clock_ms)), rw)
    return events + ev


def canonical(events) -> list[tuple]:
    return sorted((e.rule, e.subject_id, e.episode_id, e.phase, e.start, e.end, round(e.lon, 9), round(e.lat, 9),
                   e.severity, json.dumps(e.evidence, sort_keys=True)) for e in events)


def brief(events) -> list[tuple]:
    """(rule, subject, phase, start_ms, end_ms, raised_at) sorted."""
    out = []
    for e in events:
        end = None if e.end is None else int(e.end.value // 1_000_000)
        raised = e.evidence.get("raised_at")
        raised_ms = None if raised is None else int(pd.Timestamp(raised).value // 1_000_000)
        out.append((e.rule, e.subject_id, e.phase, int(e.start.value // 1_000_000), end, raised_ms))
    return sorted(out)


# --- the oracle -------------------------------------------------------------------------------

def oracle(pings, horizon_ms: int, after_ms: int, window_ms: int, min_share: float, close_share: float,
           min_vehicles: int, grace_ms: int) -> list[tuple]:
    by_vehicle: dict[int, list[tuple[int, bool]]] = {}
    for slot, t, on in sorted(pings):
        by_vehicle.setdefault(slot, []).append((t, on))

    def counts(s):
        tracked = silent = 0
        for seq in by_vehicle.values():
            before = [(t, on) for t, on in seq if t < s]
            if not before:
                continue
            last, on = before[-1]
            if on and s - last < window_ms:
                tracked += 1
                if s - last >= after_ms:
                    silent += 1
        return tracked, silent

    instants = sorted({t + d for _, t, _ in pings for d in (1, after_ms, window_ms)})
    instants = [s for s in instants if s <= horizon_ms]
    out, outages, start, events = False, [], None, []
    for s in instants:
        tracked, silent = counts(s)
        if tracked >= min_vehicles:
            if silent >= min_share * tracked:
                now = True
            elif silent < close_share * tracked:
                now = False
            else:
                now = out
        else:
            now = out
        if now and not out:
            start = s
            events.append(("feed_outage", "FEED", "open", s, None, None))
        if out and not now:
            outages.append((start, s))
            events.append(("feed_outage", "FEED", "close", start, s, None))
        out = now
    if out:
        outages.append((start, INF))

    def first_valid(x):
        moved = True
        while moved:
            moved = False
            for a, b in outages:
                if a <= x + grace_ms and b > x:  # an outage instant in [x, x + grace]
                    x, moved = b, True
        return x

    for slot, seq in by_vehicle.items():
        vid = f"VEH-{slot:06d}"
        for k, (last, on) in enumerate(seq):
            nxt = seq[k + 1][0] if k + 1 < len(seq) else None
            if not on or (nxt is not None and nxt - last < after_ms):
                continue
            x = first_valid(last + after_ms)
            if x >= INF or x + grace_ms > horizon_ms or (nxt is not None and x > nxt):
                continue
            events.append(("offline", vid, "open", last, None, x))
            if nxt is not None:
                events.append(("offline", vid, "close", last, nxt, None))
    return sorted(events)


SMALL = {"offline_after_s": 100.0, "outage_window_s": 300.0, "outage_min_share": 0.5, "outage_close_share": 0.5,
             "outage_min_vehicles": 2, "outage_grace_s": 20.0}


def oracle_for(settings: OfflineSettings, pings, horizon_ms):
    return oracle(pings, horizon_ms, round(settings.offline_after_s * S), round(settings.outage_window_s * S),
                  settings.outage_min_share, settings.outage_close_share, settings.outage_min_vehicles,
                  round(settings.outage_grace_s * S))


def every(slot, start_ms, end_ms, step_ms, on=True):
    return [(slot, t, on) for t in range(start_ms, end_ms + 1, step_ms)]


# --- boundary tables --------------------------------------------------------------------------

@pytest.mark.parametrize("silence_ms, offline", [
    (20 * MIN - 1, False),     # 19:59.999
    (20 * MIN - S, False),     # 19:59
    (20 * MIN, True),          # exactly 20:00 is offline (≥ 20 min)
    (20 * MIN + 1, True),
])
def test_twenty_minutes_of_silence(silence_ms, offline):
    world, _ = fleet_world(1)
    settings = OfflineSettings(outage_min_vehicles=10)
    pings = every(0, T0_MS, T0_MS + 10 * MIN, 30 * S) + [(0, T0_MS + 10 * MIN + silence_ms, True)]
    final = T0_MS + 10 * MIN + silence_ms + 10 * MIN
    events = run_rule(OfflineRule(settings), world, pings, cuts=[5], final_clock_ms=final)
    got = brief(events)
    assert got == oracle_for(settings, pings, final)
    if offline:
        last = T0_MS + 10 * MIN
        assert got == [("offline", "VEH-000000", "close", last, last + silence_ms, None),
                       ("offline", "VEH-000000", "open", last, None, last + 20 * MIN)]
    else:
        assert got == []


def test_trailing_silence_opens_on_the_clock_and_stays_open():
    world, _ = fleet_world(1)
    settings = OfflineSettings(outage_min_vehicles=10, outage_grace_s=0.0)
    pings = every(0, T0_MS, T0_MS + 10 * MIN, 30 * S)
    last = T0_MS + 10 * MIN
    rule, rw = OfflineRule(settings), RuleWorld(world)
    state, events = rule.step(rule.initial_state(), batch_of(pings, 1, last), rw)
    assert events == []
    state, events = rule.step(state, batch_of([], 1, last + 20 * MIN - 1), rw)
    assert events == []  # clock-only step, 19:59.999
    state, events = rule.step(state, batch_of([], 1, last + 20 * MIN), rw)
    assert [(e.rule, e.phase) for e in events] == [("offline", "open")]
    assert events[0].evidence["waybill_id"] == "WB-000000"
    state, events = rule.step(state, batch_of([], 1, last + 60 * MIN), rw)
    assert events == []  # still offline, nothing new
    state, events = rule.step(state, batch_of([(0, last + 61 * MIN, True)], 1, last + 61 * MIN), rw)
    assert [(e.rule, e.phase, e.evidence["silent_s"]) for e in events] == [("offline", "close", 61 * 60.0)]


def test_a_truck_off_its_waybill_is_not_watched():
    world, _ = fleet_world(1)
    settings = OfflineSettings(outage_min_vehicles=10)
    pings = every(0, T0_MS, T0_MS + 10 * MIN, 30 * S, on=False)
    assert run_rule(OfflineRule(settings), world, pings, cuts=[], final_clock_ms=T0_MS + 5 * 60 * MIN) == []


@pytest.mark.parametrize("quiet, outage", [(49, False), (50, True), (51, True)])
def test_outage_share_boundary(quiet, outage):
    """100 trucks report every minute; `quiet` of them stop at once: 49 % is 49 offline trucks,
    50 % and 51 % one feed outage and no offline truck."""
    world, _ = fleet_world(100)
    settings = OfflineSettings()
    stop = T0_MS + 30 * MIN
    pings = []
    for v in range(100):
        pings += every(v, T0_MS, stop if v < quiet else stop + 40 * MIN, MIN)
    final = stop + 40 * MIN
    events = run_rule(OfflineRule(settings), world, pings, cuts=[1500, 3000], final_clock_ms=final)
    got = brief(events)
    assert got == oracle_for(settings, pings, final)
    rules = [(r, p) for r, _, p, *_ in got]
    if outage:
        assert rules == [("feed_outage", "open")]
        opened = next(e for e in events if e.rule == "feed_outage")
        assert opened.start == pd.Timestamp(stop + 20 * MIN, unit="ms", tz="UTC")
        assert opened.evidence["silent_vehicles"] == quiet and opened.evidence["tracked_vehicles"] == 100
    else:
        assert rules == [("offline", "open")] * 49


def test_staggered_silence_within_the_grace_raises_only_the_outage():
    """The feed dies at F; the trucks' last pings spread over the 5 minutes before it (parked
    trucks report every 5 min): the first to pass 20 min are not raised, as the outage
    follows within the grace."""
    n = 40
    world, _ = fleet_world(n)
    settings = OfflineSettings()
    dead = T0_MS + 60 * MIN
    pings = []
    for v in range(n):
        last = dead - (v * 7 * S) % (5 * MIN)
        pings += every(v, last - 30 * MIN, last, 5 * MIN)
        pings += [(v, dead + 45 * MIN + v * S, True)]  # back after the outage
    final = dead + 50 * MIN
    events = run_rule(OfflineRule(settings), world, pings, cuts=[n * 3], final_clock_ms=final)
    got = brief(events)
    assert got == oracle_for(settings, pings, final)
    assert [(r, p) for r, _, p, *_ in got] == [("feed_outage", "close"), ("feed_outage", "open")]
    from tests.evidence_labels import unlabelled
    assert unlabelled(events) == set()  # the outage's figures, labelled for the incident panel


def test_trucks_still_silent_when_the_outage_ends_are_raised_then():
    n = 20
    world, _ = fleet_world(n)
    settings = OfflineSettings()
    dead, back = T0_MS + 30 * MIN, T0_MS + 80 * MIN
    pings = []
    for v in range(n):
        pings += every(v, T0_MS, dead, MIN)
        if v >= 3:  # three never come back
            pings += every(v, back, back + 30 * MIN, MIN)
    final = back + 30 * MIN
    events = run_rule(OfflineRule(settings), world, pings, cuts=[700, 900], final_clock_ms=final)
    got = brief(events)
    assert got == oracle_for(settings, pings, final)
    outage = next(g for g in got if g[0] == "feed_outage" and g[2] == "close")
    offline = [g for g in got if g[0] == "offline"]
    assert len(offline) == 3 and all(g[2] == "open" and g[5] == outage[4] for g in offline)
    assert all(e.evidence["after_feed_outage"] for e in events if e.rule == "offline")


# --- the oracle on random fleets; streaming ----------------------------------------------------

@st.composite
def fleet(draw):
    n = draw(st.integers(1, 6))
    pings = []
    for v in range(n):
        t = T0_MS + draw(st.integers(0, 60)) * S
        for _ in range(draw(st.integers(1, 14))):
            pings.append((v, t, draw(st.booleans()) or draw(st.booleans())))
            t += draw(st.sampled_from([5, 30, 60, 99, 100, 101, 150, 299, 300, 301, 500])) * S
    times = sorted({p[1] for p in pings})
    cuts = draw(st.lists(st.integers(0, len(pings)), max_size=6))
    extra = draw(st.lists(st.sampled_from(times), max_size=4))
    extra = [c + draw(st.sampled_from([0, 50 * S, 120 * S])) for c in extra]
    final = max([times[-1] + draw(st.sampled_from([0, 30 * S, 100 * S, 400 * S]))] + extra)
    return n, pings, cuts, extra, final


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet(), st.sampled_from([0.5, 0.34]), st.sampled_from([0.5, 0.2]))
def test_random_fleets_match_the_oracle_in_any_chunking(case, min_share, close_share):
    n, pings, cuts, extra, final = case
    settings = OfflineSettings(**{**SMALL, "outage_min_share": min_share,
                                  "outage_close_share": min(close_share, min_share)})
    world, _ = fleet_world(n)
    rule = OfflineRule(settings)
    one = run_rule(rule, world, pings, cuts=[], final_clock_ms=final)
    chunked = run_rule(rule, world, pings, cuts=cuts, final_clock_ms=final, extra_clocks=extra)
    single = run_rule(rule, world, pings, cuts=list(range(1, len(pings))), final_clock_ms=final)
    assert canonical(one) == canonical(chunked) == canonical(single)
    assert brief(one) == oracle_for(settings, pings, final)


# --- through the engine --------------------------------------------------------------------------

def OfflineEngine(world, settings: OfflineSettings) -> Engine:
    """The engine with these offline settings (the rest at their defaults)."""
    return Engine(world, EngineSettings(offline=settings))


def engine_events(world, pings: PingBatch, settings: OfflineSettings, chunk: int | None, rules=None):
    engine = Engine(world, EngineSettings(offline=settings), rules=rules)
    if chunk is None:
        events = engine.run(pings)
    else:
        frame = pings.to_frame()
        events = []
        for start in range(0, len(frame), chunk):
            events += engine.step(PingBatch.from_frame(frame.iloc[start:start + chunk]))
        events += engine.flush()
    return [e for e in sort_events(events) if e.rule in ("offline", "feed_outage")], engine


@pytest.mark.parametrize("grace_s", [0.0, 300.0])
def test_through_the_engine_one_batch_equals_streaming_and_the_oracle(grace_s):
    world, ids = fleet_world(4)
    settings = OfflineSettings(outage_min_vehicles=10, outage_grace_s=grace_s)
    t0 = T0_MS + 10 * MIN  # inside the waybills' life
    xy = np.column_stack([np.arange(60) * 200.0, np.zeros(60)])
    a = track(ids[0], xy, start_ms=t0, interval_s=[30.0] * 29 + [1500.0] + [30.0] * 29)  # a 25-min gap
    b = track(ids[1], xy[:20], start_ms=t0, interval_s=30.0)  # goes silent for good
    c = track(ids[2], xy, start_ms=t0, interval_s=[30.0] * 29 + [1199.0] + [30.0] * 29)  # 19:59
    # the last ping of all, after 21 minutes: released only by the flush
    d_times = [t0, t0 + 30 * S, int(a.epoch_ms.max()) - 21 * MIN, int(a.epoch_ms.max()) + 10 * S]
    d = PingBatch.from_arrays([ids[3]] * 4, d_times, *lonlat(xy[:4]))
    frame = pd.concat([p.to_frame() for p in (a, b, c, d)]).sort_values("epoch_ms", kind="stable")
    pings = PingBatch.from_frame(frame.reset_index(drop=True))
    one, engine = engine_events(world, pings, settings, None)
    streamed, _ = engine_events(world, pings, settings, 1)
    chunked, _ = engine_events(world, pings, settings, 17)
    assert canonical(one) == canonical(streamed) == canonical(chunked)
    window = round(engine.settings.cleaning.reorder_window_s * S)
    slot_of = {v: i for i, v in enumerate(ids)}
    rows = [(slot_of[v], int(t), True) for v, t in zip(frame["vehicle_id"], frame["epoch_ms"])]
    assert brief(one) == oracle_for(settings, rows, int(frame["epoch_ms"].max()) - window)
    # d is also offline between its second ping and its 33rd minute
    expected = [("offline", ids[0], "close"), ("offline", ids[0], "open"), ("offline", ids[1], "open"),
                ("offline", ids[3], "close"), ("offline", ids[3], "open")]
    if grace_s == 0:  # d's silence is judged before the flush; with 5 min of grace it is still pending
        expected += [("offline", ids[3], "close"), ("offline", ids[3], "open")]
    assert sorted((r, s, p) for r, s, p, *_ in brief(one)) == sorted(expected)


def test_a_ping_released_after_its_instant_was_judged_is_an_error():
    world, _ = fleet_world(1)
    rule, rw = OfflineRule(OfflineSettings()), RuleWorld(world)
    state, _ = rule.step(rule.initial_state(), batch_of([(0, T0_MS, True)], 1, T0_MS + 10 * MIN), rw)
    with pytest.raises(ValueError, match="reorder_window_s"):
        rule.step(state, batch_of([(0, T0_MS + 5 * MIN, True)], 1, T0_MS + 10 * MIN), rw)


def test_settings_are_listed_and_checked():
    rows = settings_rows("offline", OfflineSettings())
    assert {r["name"] for r in rows} == {"offline_after_s", "outage_window_s", "outage_min_share",
                                         "outage_close_share", "outage_min_vehicles", "outage_grace_s"}
    assert all(r["unit"] and r["source"] for r in rows)
    with pytest.raises(ValueError, match="outage_window_s"):
        OfflineSettings(outage_window_s=600.0)
    with pytest.raises(ValueError, match="outage_close_share"):
        OfflineSettings(outage_close_share=0.6)
    with pytest.raises(ValueError, match="reorder_window_s"):
        OfflineRule(OfflineSettings(), reorder_window_s=1200.0)


def test_an_empty_batch_without_a_clock_does_nothing():
    world, _ = fleet_world(1)
    rule = OfflineRule()
    state, events = rule.step(rule.initial_state(), RuleBatch.empty(), RuleWorld(world))
    assert events == [] and state is not None


# --- judged by arrival (issue 11) ----------------------------------------------------------------

def stamped_pings(rows) -> PingBatch:
    """Rows (vehicle, data time ms, arrival ms) -> a PingBatch in arrival order, each truck moving
    200 m between its own pings, its arrival stamped."""
    rows = sorted(rows, key=lambda r: (r[2], r[0], r[1]))
    seen: dict[str, int] = {}
    xy = []
    for v, _, _ in rows:
        xy.append((seen.setdefault(v, 0) * 200.0, 0.0))
        seen[v] += 1
    lon, lat = lonlat(np.array(xy))
    return PingBatch.from_arrays([r[0] for r in rows], [r[1] for r in rows], lon, lat,
                                 arrival_ms=[r[2] for r in rows])


def offline_events(world, pings: PingBatch, settings: OfflineSettings, chunk: int | None):
    """engine_events with only the offline rule after cleaning, stops and waybills."""
    return engine_events(world, pings, settings, chunk, rules=("offline",))


def through_engine(world, pings: PingBatch, settings: OfflineSettings):
    """Offline events of one batch, single pings and chunks of 17, checked equal; returns one."""
    runs = [canonical(offline_events(world, pings, settings, chunk)[0]) for chunk in (None, 1, 17)]
    assert runs[0] == runs[1] == runs[2]
    return offline_events(world, pings, settings, None)[0]


def test_a_terminal_lagging_the_fleet_is_watched_by_arrival():
    """A terminal whose reports arrive 5 min after their time talks all along, then goes quiet:
    by arrival it is offline 20 min after its last report arrived. Without stamps its pings are
    all behind the clock, kept from offline, and it is never watched (today's behaviour)."""
    world, ids = fleet_world(3)
    t0 = T0_MS + 10 * MIN
    rows = [(v, t, t + 2 * S) for v in ids[1:] for t in range(t0, t0 + 60 * MIN + 1, 30 * S)]
    lag = [(ids[0], t, t + 5 * MIN) for t in range(t0, t0 + 30 * MIN + 1, 30 * S)]
    pings = stamped_pings(rows + lag)
    settings = OfflineSettings(outage_min_vehicles=10)
    last_arrival = t0 + 35 * MIN
    got = brief(through_engine(world, pings, settings))
    assert got == [("offline", ids[0], "open", last_arrival, None, last_arrival + 20 * MIN)]
    assert brief(through_engine(world, pings.without_arrival(), settings)) == []


def test_a_blind_area_upload_is_talking_not_offline():
    """15 min without network, then the backlog uploaded over 10 min before live reports
    resume: nothing arrived for 15 min only, so not offline. Without stamps the backlog is behind
    the clock and kept from offline, which then sees a 24-min gap and raises it."""
    world, ids = fleet_world(2)
    t0 = T0_MS + 10 * MIN
    on_time = [(ids[1], t, t + S) for t in range(t0, t0 + 60 * MIN + 1, 30 * S)]
    live = [(ids[0], t, t + S) for t in range(t0, t0 + 10 * MIN + 1, 30 * S)]
    backlog_t = range(t0 + 10 * MIN + 30 * S, t0 + 35 * MIN, 30 * S)  # 49 reports kept in the tunnel
    backlog = [(ids[0], t, t0 + 25 * MIN + k * 12 * S) for k, t in enumerate(backlog_t)]
    resumed = [(ids[0], t, t + S) for t in range(t0 + 35 * MIN, t0 + 60 * MIN + 1, 30 * S)]
    pings = stamped_pings(on_time + live + backlog + resumed)
    settings = OfflineSettings(outage_min_vehicles=10)
    engine = Engine(world, EngineSettings(offline=settings), rules=("offline",))
    engine.run(pings)
    assert engine.drop_counts == dict.fromkeys(engine.drop_counts, 0)  # nothing lost either
    assert through_engine(world, pings, settings) == []
    control = brief(through_engine(world, pings.without_arrival(), settings))
    assert [(r, s, p) for r, s, p, *_ in control] == [("offline", ids[0], "close"), ("offline", ids[0], "open")]


def test_silence_by_arrival_is_raised_live_and_closed_at_the_next_arrival():
    """The wall clock (advance) drives the arrival clock: a truck from which nothing arrives for
    20 min is raised while the feed is quiet, and closed when its next report arrives, whatever
    time that report carries."""
    world, ids = fleet_world(1)
    t0 = T0_MS + 10 * MIN
    engine = Engine(world, EngineSettings(offline=OfflineSettings(outage_min_vehicles=10, outage_grace_s=0.0)),
                    rules=("offline",))
    events = engine.step(stamped_pings([(ids[0], t, t + S) for t in range(t0, t0 + 5 * MIN + 1, 30 * S)]))
    last = t0 + 5 * MIN + S
    events += engine.advance(last + 20 * MIN - 1)
    assert [e for e in events if e.rule == "offline"] == []
    opened = [e for e in engine.advance(last + 20 * MIN + 31 * S) if e.rule == "offline"]
    assert brief(opened) == [("offline", ids[0], "open", last, None, last + 20 * MIN)]
    # a blind-area report of minute 6 arrives at minute 40: the truck talks again
    back = t0 + 40 * MIN
    closed = engine.step(stamped_pings([(ids[0], t0 + 6 * MIN, back)])) + engine.flush()
    assert [(e.rule, e.phase, e.evidence["silent_s"]) for e in closed if e.rule == "offline"] == [
        ("offline", "close", (back - last) / S)]


def test_a_track_file_with_arrival_times_is_judged_by_them(tmp_path):
    from data.tracks import read_tracks, write_tracks

    world, ids = fleet_world(3)
    t0 = T0_MS + 10 * MIN
    rows = [(v, t, t + 2 * S) for v in ids[1:] for t in range(t0, t0 + 60 * MIN + 1, 30 * S)]
    rows += [(ids[0], t, t + 5 * MIN) for t in range(t0, t0 + 30 * MIN + 1, 30 * S)]
    pings = stamped_pings(rows)
    settings = OfflineSettings(outage_min_vehicles=10)
    for suffix in (".csv", ".parquet"):
        back = read_tracks(write_tracks(pings, tmp_path / f"t{suffix}"))
        assert np.array_equal(back.arrival_ms, pings.arrival_ms)
        assert [e[:3] for e in brief(through_engine(world, back, settings))] == [("offline", ids[0], "open")]


@st.composite
def stamped_fleet(draw):
    """Up to 12 trucks (an outage needs 10), each with its own lag (data time behind arrival: on
    time, a lagging clock, a blind-area upload of minutes), reporting with gaps up to 30 min by
    arrival; a few stamps go back (a gateway clock step)."""
    n = draw(st.integers(1, 12))
    rows = []
    for v in range(n):
        a = T0_MS + 10 * MIN + draw(st.integers(0, 600)) * S
        lag = draw(st.sampled_from([1, 2, 45, 300, 900])) * S
        for _ in range(draw(st.integers(1, 12))):
            rows.append((f"VEH-{v:06d}", a - lag, a))
            a += draw(st.sampled_from([30, 60, 300, 1199, 1200, 1500, 1800])) * S
    rows.sort(key=lambda r: r[2])
    steps_back = draw(st.lists(st.integers(0, len(rows) - 1), max_size=2))
    rows = [(v, t, a - 5 * S if i in steps_back else a) for i, (v, t, a) in enumerate(rows)]
    return n, rows, draw(st.sampled_from([None, 1, 7]))


@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stamped_fleet())
def test_by_arrival_the_engine_matches_the_oracle_on_arrival_instants(case):
    """Through the engine, any chunking: the offline and outage events are the oracle's over
    each truck's arrival instants (the running max of the stamps in arrival order, then per truck
    along its pings' times), judged up to the last arrival."""
    n, rows, chunk = case
    world, ids = fleet_world(n)
    settings = OfflineSettings(**SMALL)
    lon, lat = lonlat(np.column_stack([np.arange(len(rows)) * 10.0, np.zeros(len(rows))]))
    pings = PingBatch.from_arrays([r[0] for r in rows], [r[1] for r in rows], lon, lat,
                                  arrival_ms=[r[2] for r in rows])
    got, engine = offline_events(world, pings, settings, chunk)
    if chunk is not None:
        assert canonical(got) == canonical(offline_events(world, pings, settings, None)[0])
    kept = sum(engine.drop_counts.values()) == 0
    assume(kept)  # (a vehicle's own ping reordered beyond the window would be dropped)
    arrival = np.maximum.accumulate(np.array([r[2] for r in rows]))
    per_truck: dict[str, list] = {}
    for (v, t, _), a in zip(rows, arrival):
        per_truck.setdefault(v, []).append((t, int(a)))
    slot_of = {v: i for i, v in enumerate(ids)}
    oracle_rows = []
    for v, seq in per_truck.items():
        floor = -1
        for _, a in sorted(seq):  # along the truck's ping times
            floor = max(floor, a)
            oracle_rows.append((slot_of[v], floor, True))
    assert brief(got) == oracle_for(settings, oracle_rows, int(arrival.max()) - 1)
