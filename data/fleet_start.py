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
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.store import Store
from spatial.model import PingBatch, World
from spatial.rules.engine import Engine, EngineSettings
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


def build_fleet_start(store: Store, world: World, at, settings: EngineSettings = EngineSettings(),
                      lookback_s: float = LOOKBACK_S) -> FleetStart:
    """What the store knows of the fleet at `at` (tz-aware), for `Engine(world, start=...)`."""
    if not (isinstance(lookback_s, (int, float)) and np.isfinite(lookback_s) and lookback_s >= 0):
        raise ValueError(f"fleet start: lookback_s must be a finite number >= 0, got {lookback_s!r}")
    at_ms = _epoch_ms(at)
    waybills = store.read_layer("waybills")
    unloaded = pd.to_datetime(waybills["actual_unloading"], utc=True) if len(waybills) else pd.Series(dtype=object)
    recorded = (unloaded.notna() & (unloaded <= pd.Timestamp(at_ms, unit="ms", tz="UTC"))).to_numpy(bool)
    recorded_ids = waybills["id"].astype(object).to_numpy()[recorded]
    recorded_ms = unloaded[recorded].dt.as_unit("ms").astype("int64").to_numpy() if recorded.any() else \
        np.empty(0, "int64")

    # the live engine's own stages over the recent past (no rules: nothing is raised twice)
    engine = Engine(world, settings, rules=())
    since_ms = at_ms - round(lookback_s * 1000)
    for t0 in range(since_ms, at_ms, REPLAY_CHUNK_S * 1000):
        frame = store.read_pings(pd.Timestamp(t0, unit="ms", tz="UTC"),
                                 pd.Timestamp(min(t0 + REPLAY_CHUNK_S * 1000, at_ms), unit="ms", tz="UTC"))
        if len(frame):
            engine.step(PingBatch.from_frame(frame))
    engine.flush()
    seen = engine.fleet_start(at_ms)

    ids = np.concatenate([recorded_ids, seen.ended_waybill_id]).astype(object)
    ends = np.concatenate([recorded_ms, seen.ended_ms]).astype("int64")
    if len(ids):  # a waybill both recorded and seen: the earlier end
        first = pd.DataFrame({"id": ids, "ms": ends}).groupby("id", sort=True)["ms"].min()
        ids, ends = first.index.to_numpy(dtype=object), first.to_numpy("int64")
    return FleetStart(at_ms, ids, ends, seen.washed_vehicle_id, seen.washed_ms)
