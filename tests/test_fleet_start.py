"""data/fleet_start.py: what the store knows of the fleet when an engine starts mid-day (issue 11),
on both store backends."""

from __future__ import annotations

import pandas as pd
import pytest

from data.fleet_start import build_fleet_start
from spatial.rules.engine import Engine
from tests.rules.test_cargo_state import LOAD, SCHOOL, TRUCK, UNLOAD, WASH, _drive, _stay, engine_world
from tests.tracks import T0_MS, track

HOUR_MS = 3_600_000


def _at(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def test_the_store_tells_which_waybills_are_over_and_which_trucks_were_washed(store):
    world = engine_world()
    store.replace_world(world)
    # before the start: load, drive, unload at ENT-U (ends WB-1), wash at WS-1
    before = _stay(LOAD, 3) + _drive(LOAD, UNLOAD) + _stay(UNLOAD, 12) + _drive(UNLOAD, WASH) + _stay(WASH, 15)
    pings = track(TRUCK, before, start_ms=T0_MS)
    store.write_pings(pings)
    at_ms = int(pings.epoch_ms[-1]) + 60_000
    start = build_fleet_start(store, world, _at(at_ms))
    assert list(start.ended_waybill_id) == ["WB-1"]
    assert T0_MS < int(start.ended_ms[0]) < at_ms
    assert list(start.washed_vehicle_id) == [TRUCK] and int(start.ended_ms[0]) <= int(start.washed_ms[0]) < at_ms

    # the engine started then: a stop at the school is an empty, washed truck's (severity 3);
    # an engine that knows nothing thinks WB-1 still in force (loaded: severity 2)
    after = track(TRUCK, _drive(WASH, SCHOOL) + _stay(SCHOOL, 12), start_ms=at_ms)
    def opens(engine):
        return [(e.severity, e.evidence["cargo"]) for e in engine.run(after)
                if e.rule == "stop_near_sensitive_site" and e.phase == "open"]
    assert opens(Engine(world, rules=("stop_near_sensitive_site",), start=start)) == [(3, "empty")]
    assert opens(Engine(world, rules=("stop_near_sensitive_site",))) == [(2, "other")]


def test_a_recorded_unloading_ends_a_waybill_and_the_look_back_is_bounded(store):
    world = engine_world()
    world.waybills["actual_unloading"] = [_at(T0_MS + HOUR_MS // 2)]
    store.replace_world(world)
    before = _stay(LOAD, 3) + _drive(LOAD, UNLOAD) + _stay(UNLOAD, 12) + _drive(UNLOAD, WASH) + _stay(WASH, 15)
    store.write_pings(track(TRUCK, before, start_ms=T0_MS))
    at = _at(T0_MS + 10 * HOUR_MS)  # the pings lie 9 h and more before: outside a 6 h look-back
    start = build_fleet_start(store, world, at)
    assert list(start.ended_waybill_id) == ["WB-1"] and list(start.ended_ms) == [T0_MS + HOUR_MS // 2]
    assert len(start.washed_vehicle_id) == 0
    assert len(build_fleet_start(store, world, at, lookback_s=12 * 3600).washed_vehicle_id) == 1
    with pytest.raises(ValueError, match="timezone-aware"):
        build_fleet_start(store, world, pd.Timestamp("2026-11-02 10:00"))
    with pytest.raises(ValueError, match="lookback_s"):
        build_fleet_start(store, world, at, lookback_s=-1)
