"""The fleet's state for an engine started mid-day, from the store (issue 11).

An engine that starts with an empty state knows nothing that happened before its first ping:
every waybill departed before the start would stay in force until its planned arrival + 2 h
(the waybill stage's time-out), and every empty tank truck would carry its last cargo's residue
however recently it was washed. `build_fleet_start` tells it what the store knows at `at`:

* waybills over before `at`: those whose recorded `actual_unloading` is at or before it, and
  those whose unloading stop shows in the stored pings of the last `lookback_s`;
* each truck's latest washing (a stop at a wash station, spatial/rules/dwell.py `wash_visits`,
  the one definition the washing rules use) in those pings.

The pings are replayed through a rules-less engine (cleaning, the stop stage, the waybill stage:
the same code that decides live), so the start state is what the live engine would have
concluded had it been running; spatial/ takes the result (`Engine(world, start=...)`) and does
no I/O. A stored `done` status without an actual unloading time says nothing about *when*, so it
ends nothing by itself. Cost: one pass over the stored pings of the look-back window.

`warm_engine` is the same replay with every rule running, for the wall-clock live monitor: the
engine it returns goes on where the stopped one was (the episodes open, each truck's last ping for
the offline rule), and the events the replay caused are compared with the store's (app/live.py).

The same pass hands its pings to `seen` (the live monitor's LiveState: every truck's newest
position and trail as before the restart, not an empty map until each reports again — up to
5 min for a parked one), and `newest_readings` gives each monitoring point's newest stored reading
of the look-back window (a point reports every minute: without it every point would say "no data
yet" after a restart). `replay_points` does for the points' alarms what `warm_engine` does for the
trucks: the stored readings of the points with an alarm left open, through the point rules; and
`point_context` gives every other point's rate window before the restart to the resumed point
engine, as context only, so its first readings are judged on the window the stopped engine had.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from data.store import Store
from spatial.model import Event, PingBatch, ReadingBatch, World
from spatial.rules.engine import Engine, EngineSettings
from spatial.rules.points import PointEngine, PointEngineSettings, point_rules
from spatial.rules.waybills import FleetStart

# (engineering default) the waybill stage ends a waybill at most planned arrival + 2 h after it
# departed; 6 h of stored pings cover the trips in force at the start and the washings between.
LOOKBACK_S = 6 * 3600.0
# pings replayed per engine step (bounded memory; the result does not depend on it)
REPLAY_CHUNK_S = 600


def _epoch_ms(value) -> int:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"fleet start: the start time must be timezone-aware, got {value!r}")
    return int(stamp.tz_convert("UTC").value // 1_000_000)


def _check_lookback(lookback_s) -> None:
    if not (isinstance(lookback_s, (int, float)) and np.isfinite(lookback_s) and lookback_s >= 0):
        raise ValueError(f"fleet start: lookback_s must be a finite number >= 0, got {lookback_s!r}")


def _recorded_unloadings(store: Store, at_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """The waybills whose recorded actual unloading is at or before `at_ms`: ids, epoch ms."""
    waybills = store.read_layer("waybills")
    unloaded = pd.to_datetime(waybills["actual_unloading"], utc=True) if len(waybills) else pd.Series(dtype=object)
    recorded = (unloaded.notna() & (unloaded <= pd.Timestamp(at_ms, unit="ms", tz="UTC"))).to_numpy(bool)
    recorded_ids = waybills["id"].astype(object).to_numpy()[recorded]
    recorded_ms = unloaded[recorded].dt.as_unit("ms").astype("int64").to_numpy() if recorded.any() else \
        np.empty(0, "int64")
    return recorded_ids, recorded_ms


def _replay(engine: Engine, store: Store, since_ms: int, at_ms: int,
            seen: Callable[[PingBatch], None] | None) -> list[Event]:
    """The stored pings of [since_ms, at_ms) through `engine` a chunk at a time, then its flush."""
    events: list[Event] = []
    for t0 in range(since_ms, at_ms, REPLAY_CHUNK_S * 1000):
        frame = store.read_pings(pd.Timestamp(t0, unit="ms", tz="UTC"),
                                 pd.Timestamp(min(t0 + REPLAY_CHUNK_S * 1000, at_ms), unit="ms", tz="UTC"))
        if len(frame):
            batch = PingBatch.from_frame(frame)
            events.extend(engine.step(batch))
            if seen is not None:
                seen(batch)
    events.extend(engine.flush())
    return events


def build_fleet_start(store: Store, world: World, at, settings: EngineSettings = EngineSettings(),
                      lookback_s: float = LOOKBACK_S, seen: Callable[[PingBatch], None] | None = None) -> FleetStart:
    """What the store knows of the fleet at `at` (tz-aware), for `Engine(world, start=...)`;
    `seen` gets the look-back window's pings too, in time order, a chunk at a time."""
    _check_lookback(lookback_s)
    at_ms = _epoch_ms(at)
    recorded_ids, recorded_ms = _recorded_unloadings(store, at_ms)
    # the live engine's own stages over the recent past (no rules: nothing is raised twice)
    engine = Engine(world, settings, rules=())
    _replay(engine, store, at_ms - round(lookback_s * 1000), at_ms, seen)
    seen = engine.fleet_start(at_ms)

    ids = np.concatenate([recorded_ids, seen.ended_waybill_id]).astype(object)
    ends = np.concatenate([recorded_ms, seen.ended_ms]).astype("int64")
    if len(ids):  # a waybill both recorded and seen: the earlier end
        first = pd.DataFrame({"id": ids, "ms": ends}).groupby("id", sort=True)["ms"].min()
        ids, ends = first.index.to_numpy(dtype=object), first.to_numpy("int64")
    return FleetStart(at_ms, ids, ends, seen.washed_vehicle_id, seen.washed_ms)


def warm_engine(store: Store, world: World, at, settings: EngineSettings = EngineSettings(),
                lookback_s: float = LOOKBACK_S, seen: Callable[[PingBatch], None] | None = None
                ) -> tuple[Engine, list[Event]]:
    """The engine of a monitor started at `at` (tz-aware), every rule running: told the waybills
    the store records as unloaded, then given the stored pings of the last `lookback_s` as the
    stopped engine was. Its state at `at` is the stopped engine's as far as the look-back reaches:
    trips in force and washings, each truck's last ping (the offline rule watches a truck that
    went dark just before the stop), the episodes open. Returns it and the events the replay
    caused: the stopped engine raised them already (app/live.py compares them with the store's)."""
    _check_lookback(lookback_s)
    at_ms = _epoch_ms(at)
    recorded_ids, recorded_ms = _recorded_unloadings(store, at_ms)
    none = np.empty(0, object)
    engine = Engine(world, settings, start=FleetStart(at_ms, recorded_ids, recorded_ms, none, np.empty(0, "int64")))
    return engine, _replay(engine, store, at_ms - round(lookback_s * 1000), at_ms, seen)


# newest readings looked for an hour at a time, back to the look-back window's start (one read of
# a point's every reading for 6 h would be ~1.9 million rows at Ningbo's 5,196 points)
READINGS_STEP_S = 3600.0


def newest_readings(store: Store, at, lookback_s: float = LOOKBACK_S, point_ids=None) -> ReadingBatch:
    """Each point's newest stored reading before `at` (tz-aware) within `lookback_s`, read an
    hour at a time from `at` backwards until every point that reported is found — or, given the
    world's `point_ids`, as soon as each of them is (a city whose every point reported in the last
    hour is read one hour back, not six)."""
    if not (isinstance(lookback_s, (int, float)) and np.isfinite(lookback_s) and lookback_s >= 0):
        raise ValueError(f"newest readings: lookback_s must be a finite number >= 0, got {lookback_s!r}")
    at_ms = _epoch_ms(at)
    found: list[pd.DataFrame] = []
    known: set[str] = set()
    wanted = None if point_ids is None else set(map(str, point_ids))
    end_ms, since_ms = at_ms, at_ms - round(lookback_s * 1000)
    while end_ms > since_ms and (wanted is None or not wanted <= known):
        start_ms = max(since_ms, end_ms - round(READINGS_STEP_S * 1000))
        frame = store.read_readings(pd.Timestamp(start_ms, unit="ms", tz="UTC"), pd.Timestamp(end_ms, unit="ms", tz="UTC"))
        if len(frame):
            newest = frame.drop_duplicates("point_id", keep="last")  # ordered by time: the last is the newest
            newest = newest[~newest["point_id"].isin(known)]
            known.update(newest["point_id"])
            found.append(newest)
        end_ms = start_ms
    if not found:
        return ReadingBatch.from_arrays(np.empty(0, object), np.empty(0, "int64"), np.empty(0, "float64"))
    rows = pd.concat(found, ignore_index=True).sort_values(["epoch_ms", "point_id"], kind="stable")
    return ReadingBatch.from_arrays(rows["point_id"].to_numpy(object), rows["epoch_ms"].to_numpy("int64"),
                                    rows["value"].to_numpy("float64"))


def point_context(store: Store, newest_ms: pd.Series, context_ms: int) -> ReadingBatch:
    """What a stopped point engine's rules that look back (the rate rule's window) held at the stop,
    for the resumed one (`PointEngine.warm`): each point's stored readings within `context_ms`
    before its newest (`newest_ms`: epoch ms by point id, the newest readings the resumed engine
    takes as its last accepted ones) and up to it. One read: the `2 x context_ms` before the newest
    reading of them all, which holds the whole window of every point that reported within
    `context_ms` of that one (the city at the stop, a logger whose clock runs a few minutes ahead
    included); of a point silent longer it holds part of the window or nothing — which a reading of
    it only reaches when stamped before that newest reading. Readings stored twice at one time
    (a redelivery): the first, as the cleaning stage kept it."""
    if not len(newest_ms) or context_ms <= 0:
        return ReadingBatch.from_arrays(np.empty(0, object), np.empty(0, "int64"), np.empty(0, "float64"))
    newest_ms = newest_ms.astype("int64")
    end_ms = int(newest_ms.max())
    frame = store.read_readings(pd.Timestamp(end_ms - 2 * context_ms, unit="ms", tz="UTC"),
                                pd.Timestamp(end_ms + 1, unit="ms", tz="UTC"))
    epoch_ms = frame["epoch_ms"].to_numpy("int64")
    own = newest_ms.reindex(pd.Index(frame["point_id"].to_numpy(object))).to_numpy("float64")  # NaN: not resumed
    frame = frame[(epoch_ms <= own) & (epoch_ms >= own - context_ms)].drop_duplicates(["point_id", "epoch_ms"])
    return ReadingBatch.from_arrays(frame["point_id"].to_numpy(object), frame["epoch_ms"].to_numpy("int64"),
                                    frame["value"].to_numpy("float64"))


# (engineering default) an open point episode that began longer ago is not replayed (a stuck
# sensor's can last days): it is closed at the restart, and a rule still seeing it opens it again
POINT_REPLAY_MAX_S = 7 * 24 * 3600.0


def replay_points(store: Store, world: World, at, episodes: pd.DataFrame,
                  settings: PointEngineSettings = PointEngineSettings()) -> tuple[PointEngine, list[Event]]:
    """The point rules but the clock-driven interruption (PointEngine.resume restores that one)
    over the stored readings of the points with an open episode of theirs (`episodes`: rule,
    subject_id, start — the openings of the episodes a stopped monitor left open, any rule's),
    each point's from its episode's start (its earliest, with several) up to `at` (tz-aware), a
    look-back window at a time. Returns the engine, whose rule states are the stopped engine's for
    those points, and the events the replay caused (the stopped engine raised them already:
    app/live.py compares them with the store's). Episodes that began more than POINT_REPLAY_MAX_S
    before `at` are left out.

    From the episode's start, not before it: the readings before may have been judged by another
    run (an alarm an earlier restart closed, reopened by its next reading, would be replayed as the
    first episode, not the one the store holds open). A level, range or stuck episode opens again
    at its first reading. The rate rule judges a reading against the readings of its window before
    it: those before each point's start are given to it as context only (`PointEngine.warm`: no
    event, no other rule's state), so it judges the start's reading, and the window's after it, as
    the stopped engine did — a rate episode opens again at the same reading, and no rate episode
    is raised on a window cut short at the start."""
    at_ms = _epoch_ms(at)
    engine = PointEngine(world, settings, rules=point_rules(settings, clock_driven=False))
    episodes = episodes[episodes["rule"].isin([rule.name for rule in engine.rules])] if len(episodes) else episodes
    if not len(episodes):
        return engine, []
    starts_ms = pd.to_datetime(episodes["start"], utc=True).dt.as_unit("ms").astype("int64").to_numpy()
    reached = starts_ms >= at_ms - round(POINT_REPLAY_MAX_S * 1000)
    if not reached.any():
        return engine, []
    # each point from its earliest open episode's start
    since = pd.Series(starts_ms[reached]).groupby(episodes["subject_id"].astype(str).to_numpy()[reached]).min()
    point_ids = since.index.tolist()
    context_ms = engine.context_ms  # the rate rule's window, read before each point's start
    events: list[Event] = []
    for t0 in range(int(since.min()) - context_ms, at_ms, round(LOOKBACK_S * 1000)):
        frame = store.read_readings(pd.Timestamp(t0, unit="ms", tz="UTC"),
                                    pd.Timestamp(min(t0 + round(LOOKBACK_S * 1000), at_ms), unit="ms", tz="UTC"),
                                    point_ids)
        epoch_ms = frame["epoch_ms"].to_numpy("int64")
        start_ms = since.reindex(frame["point_id"]).to_numpy("int64")
        before = frame[(epoch_ms < start_ms) & (epoch_ms >= start_ms - context_ms)]
        if len(before):  # older than the point's readings replayed, in this chunk and the next ones
            engine.warm(ReadingBatch.from_arrays(before["point_id"].to_numpy(object),
                                                 before["epoch_ms"].to_numpy("int64"),
                                                 before["value"].to_numpy("float64")))
        frame = frame[epoch_ms >= start_ms]
        if len(frame):
            events.extend(engine.step(ReadingBatch.from_arrays(frame["point_id"].to_numpy(object),
                                                               frame["epoch_ms"].to_numpy("int64"),
                                                               frame["value"].to_numpy("float64"))))
    return engine, events
