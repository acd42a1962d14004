"""The gateway inside the app process: a terminal's report reaches LiveState and the store."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pandas as pd
import pytest

from app.live import LiveMonitor, MonitorSettings
from data.demo import build_world
from data.feeds.gateway import GatewaySettings
from data.feeds.jt808 import LocationReport
from data.feeds.loadgen import SimTerminal, TerminalClient, register_and_authenticate
from data.reference import load_chemicals
from data.store import Store


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
