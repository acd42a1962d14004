"""The live monitor on the wall clock starts from the store's fleet state (issue 11): a truck the
store saw unload and wash before the monitor started is an empty, washed truck to its engine."""

from __future__ import annotations

import time

import pandas as pd

from app.live import LiveMonitor, MonitorSettings
from data.store import Store
from tests.rules.test_cargo_state import LOAD, SCHOOL, TRUCK, UNLOAD, WASH, _drive, _stay, engine_world
from tests.tracks import track


def test_a_wall_clock_monitor_starts_from_the_store(tmp_path):
    t0_ms = int(time.time() * 1000) - int(2.5 * 3_600_000)
    world = engine_world()
    world.waybills["planned_departure"] = [pd.Timestamp(t0_ms, unit="ms", tz="UTC")]
    world.waybills["planned_arrival"] = [pd.Timestamp(t0_ms + 3_600_000, unit="ms", tz="UTC")]
    before = track(TRUCK, _stay(LOAD, 3) + _drive(LOAD, UNLOAD) + _stay(UNLOAD, 12) + _drive(UNLOAD, WASH)
                   + _stay(WASH, 15), start_ms=t0_ms)
    url = f"sqlite:///{tmp_path / 'hazmap.sqlite'}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
        store.write_pings(before)
    # after the start: to the school and a stop there, still inside WB-1's planned arrival + 2 h
    after = track(TRUCK, _drive(WASH, SCHOOL) + _stay(SCHOOL, 12), start_ms=int(before.epoch_ms[-1]) + 60_000)
    with LiveMonitor(world, url, MonitorSettings(clock="wall", advance_every_s=0.2)) as monitor:
        monitor.submit_pings(after)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not monitor.stats()["events_by_rule"].get("stop_near_sensitive_site"):
            time.sleep(0.1)
    with Store.open(url) as store:
        events = store.read_events(rule="stop_near_sensitive_site")
    assert len(events) >= 1
    first = events.iloc[0]
    # without the start state WB-1 would still be in force: a loaded stop, severity 2
    assert int(first["severity"]) == 3
