"""The gateway inside the app process: a terminal's report reaches LiveState and the store."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from app.live import LiveMonitor, MonitorSettings
from data.demo import build_world
from data.feeds.gateway import GatewaySettings
from data.feeds.jt808 import LocationReport
from data.feeds.loadgen import SimTerminal, TerminalClient, register_and_authenticate
from data.reference import load_chemicals
from data.store import Store
from spatial.model import PingBatch, ReadingBatch


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    world = build_world(seed=9, scale=0.005, chemicals=load_chemicals())
    url = f"sqlite:///{tmp_path_factory.mktemp('live') / 'hazmap.sqlite'}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
    return world, url


async def _report(port: int, phone: str, report: LocationReport) -> None:
    client = await TerminalClient.connect("127.0.0.1", port)
    terminal = SimTerminal(phone)
    await register_and_authenticate(client, terminal)
    await client.exchange(terminal.report(report)[1])
    client.close()


def test_a_report_reaches_the_live_state_and_the_store(stored):
    world, url = stored
    vehicle = world.vehicles.iloc[0]
    monitor = LiveMonitor(world, url, MonitorSettings(gateway=GatewaySettings(port=0, stats_port=None, store_interval_s=0.1))).start()
    try:
        sent = datetime(2026, 11, 2, 1, 30, tzinfo=timezone.utc)
        report = LocationReport(alarm=0, status=0b10, lat=29.87, lon=121.55, altitude_m=5, speed_kmh=42.0,
                                direction=90, time=sent)
        asyncio.run(_report(monitor.gateway.port, vehicle["terminal_phone"], report))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and vehicle["id"] not in monitor.snapshot().positions.index:
            time.sleep(0.05)
        live = monitor.snapshot()
        assert live.version >= 1
        row = live.positions.loc[vehicle["id"]]
        assert (row["lon"], row["lat"], row["speed_kmh"]) == pytest.approx((121.55, 29.87, 42.0))
    finally:
        monitor.stop()
    with Store.open(url) as store:
        pings = store.read_pings(pd.Timestamp("2026-11-02", tz="UTC"), pd.Timestamp("2026-11-03", tz="UTC"))
    assert list(pings["vehicle_id"]) == [vehicle["id"]]
    assert pings["time"].iloc[0] == pd.Timestamp(sent)


def test_a_taken_port_is_refused_clearly(stored):
    world, url = stored
    first = LiveMonitor(world, url, MonitorSettings(gateway=GatewaySettings(port=0, stats_port=None))).start()
    try:
        taken = GatewaySettings(port=first.gateway.port, stats_port=None)
        with pytest.raises(RuntimeError, match="could not start"):
            LiveMonitor(world, url, MonitorSettings(gateway=taken)).start()
    finally:
        first.stop()


# --- the monitor's rules worker, fed in-process ---------------------------------------------------

def test_the_monitor_raises_what_the_engines_raise_over_the_same_reports(tmp_path):
    """Batches queued from feeds and coalesced by the worker reach the engines in arrival
    order: the stored events equal one Engine/PointEngine run over the same slices (minus the
    stop stage's own episodes, which are not alerts)."""
    from app.live import NOT_ALERTS
    from data.sim.fleet import plan_fleet
    from data.sim.points import plan_points
    from data.sim.settings import DEMO_DAY, SimSettings
    from spatial.rules.engine import Engine, event_order
    from spatial.rules.points import PointEngine

    world = build_world(seed=7, scale=0.02, chemicals=load_chemicals())
    url = f"sqlite:///{tmp_path / 'hazmap.sqlite'}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
    sim = SimSettings(seed=3, start=DEMO_DAY + pd.Timedelta(hours=7), hours=2.0, stage_margin_s=600,
                      stage_kinds=("speeding", "route_deviation", "teleport"),
                      point_stage_kinds=("point_level_2", "point_silent"))
    fleet, points = plan_fleet(world, sim), plan_points(world, sim)
    slices = range(sim.start_ms, sim.end_ms, 60_000)
    engine, point_engine, expected = Engine(world), PointEngine(world), []
    with LiveMonitor(world, url) as monitor:
        for t0 in slices:
            pings, readings = fleet.pings_between(t0, t0 + 60_000), points.readings_between(t0, t0 + 60_000)
            monitor.submit_pings(pings)
            monitor.submit_readings(readings)
            expected += engine.step(pings) + point_engine.step(readings)
        assert monitor.wait_idle(60)
        live = monitor.snapshot()
    expected = [e for e in expected if e.rule not in NOT_ALERTS]
    with Store.open(url) as store:
        stored = store.read_events()
        readings_stored = store.read_readings(pd.Timestamp(sim.start_ms, unit="ms", tz="UTC"),
                                              pd.Timestamp(sim.end_ms, unit="ms", tz="UTC"))
    key = lambda rows: sorted(rows)  # noqa: E731
    assert key(zip(stored["rule"], stored["subject_id"], stored["episode_id"], stored["phase"])) == \
        key((e.rule, e.subject_id, e.episode_id, e.phase) for e in expected)
    assert {"speeding", "route_deviation", "point_level", "point_interruption"} <= set(stored["rule"])
    assert "stop" not in set(stored["rule"])
    assert len(readings_stored) == sum(len(points.readings_between(t0, t0 + 60_000)) for t0 in slices)
    assert live.version > 0 and len(live.positions) == len(set(fleet.vehicle_ids))
    open_now = {e.episode_id for e in sorted(expected, key=event_order) if e.phase == "open"} - \
        {e.episode_id for e in expected if e.phase == "close"}
    assert live.open_episodes() == len(open_now)


def test_a_store_the_monitor_cannot_use_fails_its_start(tmp_path):
    world = build_world(seed=9, scale=0.005, chemicals=load_chemicals())
    with pytest.raises(Exception, match="hazmap db upgrade"):
        LiveMonitor(world, f"sqlite:///{tmp_path / 'empty.sqlite'}").start()  # no schema at all


def test_a_failed_worker_is_never_silent(tmp_path):
    """The worker dies (here: its store is closed under it): the next submit says why."""
    world = build_world(seed=9, scale=0.005, chemicals=load_chemicals())
    url = f"sqlite:///{tmp_path / 'hazmap.sqlite'}"
    Store.open(url, upgrade=True).close()
    monitor = LiveMonitor(world, url).start()
    try:
        monitor._publish = lambda store, events: (_ for _ in ()).throw(OSError("disk full"))  # the store fails
        with pytest.raises(RuntimeError, match="rules worker failed.*disk full"):
            for _ in range(200):
                monitor.submit_readings(ReadingBatch.from_arrays(["MP-000001"], [1_000], [1.0]))
                time.sleep(0.05)
        assert "disk full" in monitor.stats()["worker_error"]
    finally:
        monitor.stop()


def test_on_the_wall_clock_silence_is_noticed_without_data_and_the_future_is_refused(tmp_path):
    """clock="wall" (real terminals): a truck that went quiet on its waybill is raised offline
    by the wall clock alone; a report from an hour ahead is dropped as `future`."""
    from app.live import MonitorSettings

    world = build_world(seed=9, scale=0.005, chemicals=load_chemicals())
    url = f"sqlite:///{tmp_path / 'hazmap.sqlite'}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
    waybill = world.waybills[world.waybills["status"] == "active"].iloc[0]
    on_the_way_ms = int(pd.Timestamp(waybill["planned_departure"]).value // 1_000_000) + 600_000
    lon, lat = waybill.geometry.coords[0]
    times = on_the_way_ms + np.arange(3) * 30_000
    now_ms = int(time.time() * 1000)
    with LiveMonitor(world, url, MonitorSettings(clock="wall", advance_every_s=0.2)) as monitor:
        monitor.submit_pings(PingBatch.from_arrays([waybill["vehicle_id"]] * 3, times, [lon] * 3, [lat] * 3,
                                                   speed_kmh=[40.0] * 3))
        monitor.submit_pings(PingBatch.from_arrays([waybill["vehicle_id"]], [now_ms + 3_600_000], [lon], [lat]))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not monitor.stats()["events_by_rule"].get("offline"):
            time.sleep(0.1)
        stats = monitor.stats()
    assert stats["events_by_rule"].get("offline") == 1
    assert stats["engine"]["dropped"]["future"] == 1
    with Store.open(url) as store:
        offline = store.read_events(rule="offline")
    assert list(offline["subject_id"]) == [waybill["vehicle_id"]]
    assert offline["start"].iloc[0] == pd.Timestamp(int(times[-1]), unit="ms", tz="UTC")
