"""Prometheus /metrics scraped from a real app with a real live monitor: the gateway's reports and
rejections, MQTT readings and bad messages, the rules' step latency, events by rule, store
writes, queue depth and HTTP requests by route and status, all read back through the client
library's own parser."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.live import LiveMonitor, MonitorSettings
from app.settings import Settings
from app.webapp import create_app
from data.demo import build_world
from data.feeds.gateway import GatewaySettings
from data.feeds.jt808 import LocationReport
from data.feeds.loadgen import SimTerminal, TerminalClient, register_and_authenticate
from data.feeds.mqtt import MqttFeedSettings, publish_raw, publish_readings
from data.reference import load_chemicals
from data.store import Store
from spatial.model import ReadingBatch
from tests.services import mqtt_broker_url


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples, name: str, **labels) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def _report_and_garbage(port: int, phone: str, report: LocationReport) -> None:
    client = await TerminalClient.connect("127.0.0.1", port)
    terminal = SimTerminal(phone)
    await register_and_authenticate(client, terminal)
    await client.exchange(terminal.report(report)[1])
    client.close()
    # a frame whose check code is wrong: refused and counted by reason
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(bytes.fromhex("7E 00 02 00 00 01 23 45 67 89 01 00 01 FF 7E".replace(" ", "")))
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()


def _wait(condition, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def world_and_url(tmp_path_factory):
    world = build_world(seed=9, scale=0.01, chemicals=load_chemicals())
    url = f"sqlite:///{tmp_path_factory.mktemp('metrics') / 'hazmap.sqlite'}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
    return world, url


def test_metrics_scrape_reports_the_feeds_the_rules_and_http(world_and_url):
    from data.sim.fleet import plan_fleet
    from data.sim.points import plan_points
    from data.sim.settings import DEMO_DAY, SimSettings

    world, url = world_and_url
    broker = mqtt_broker_url()
    prefix = f"hazmap-test/{uuid.uuid4().hex[:8]}"
    settings = MonitorSettings(gateway=GatewaySettings(port=0, stats_port=None, store_interval_s=0.1), mqtt_url=broker,
                               mqtt=MqttFeedSettings(topic_prefix=prefix, tick_s=0.05, max_future_s=None),
                               readings_store_every_s=0.1)
    with LiveMonitor(world, url, settings) as monitor:
        web = create_app(Settings(database_url=url), world, world.fingerprint(), live=monitor)
        client = web.server.test_client()
        # the incident figures are cached 15 s for scrapers; this test scrapes twice within that
        web.server.extensions["hazmap_ops"].incidents.cache_s = 0.0
        before = scrape(client)
        assert value(before, "hazmap_live_worker_up") == 1.0
        assert value(before, "hazmap_jt808_reports_total") == 0.0

        # one report over JT/T 808 and one frame with a bad check code
        vehicle = world.vehicles.iloc[0]
        sent = pd.Timestamp("2026-11-02 01:30", tz="UTC").to_pydatetime()
        asyncio.run(_report_and_garbage(monitor.gateway.port, vehicle["terminal_phone"], LocationReport(
            alarm=0, status=0b10, lat=29.87, lon=121.55, altitude_m=5, speed_kmh=42.0, direction=90, time=sent)))
        # readings over MQTT: three good ones, one unknown point, one non-numeric value
        assert monitor.mqtt_feed.wait_ready(10)
        point = str(world.monitoring_points["id"].iloc[0])
        epoch = pd.Timestamp("2026-11-02 01:30", tz="UTC").value // 10**6
        publish_readings(broker, ReadingBatch.from_arrays([point] * 3, [epoch, epoch + 1000, epoch + 2000],
                                                          [1.0, 1.1, 1.2]), topic_prefix=prefix)
        publish_raw(broker, [(f"{prefix}/MP-NOPE", b'{"t": 1795832130, "v": 1.0}'),
                             (f"{prefix}/{point}", b'{"t": 1795832130, "v": "high"}')])
        _wait(lambda: monitor.stats()["mqtt"]["rejected_total"] >= 2 and monitor.stats()["mqtt"]["readings"] >= 3)

        # an hour of the simulated fleet and points, with staged violations: events to count
        sim = SimSettings(seed=3, start=DEMO_DAY + pd.Timedelta(hours=7), hours=1.0, stage_margin_s=600,
                          stage_kinds=("speeding",), point_stage_kinds=("point_level_2",))
        fleet, points = plan_fleet(world, sim), plan_points(world, sim)
        for t0 in range(sim.start_ms, sim.end_ms, 300_000):
            monitor.submit_pings(fleet.pings_between(t0, t0 + 300_000))
            monitor.submit_readings(points.readings_between(t0, t0 + 300_000))
        assert monitor.wait_idle(120)
        _wait(lambda: monitor.stats()["readings_stored"] > 0)

        assert client.get("/").status_code == 200
        assert client.get(f"/layers/{world.fingerprint()}/no_such_layer.geojson").status_code == 404
        after = scrape(client)
        stats = monitor.stats()

    gateway = stats["gateway"]
    assert value(after, "hazmap_jt808_reports_total") == gateway["reports_received"] == 1
    assert total(after, "hazmap_jt808_rejected_frames_total") == sum(gateway["rejected"].values()) >= 1
    assert value(after, "hazmap_jt808_sink_delivered_reports_total", sink="live") == 1
    assert value(after, "hazmap_jt808_connections_total") == gateway["connections_total"] >= 2
    mqtt = stats["mqtt"]
    assert value(after, "hazmap_mqtt_readings_total") == mqtt["readings"] >= 3
    assert value(after, "hazmap_mqtt_bad_messages_total", reason="unknown_point") == 1
    assert total(after, "hazmap_mqtt_bad_messages_total") == mqtt["rejected_total"] == 2
    assert value(after, "hazmap_mqtt_connected") == 1.0

    # the rules' step latency: one observation per step the worker took
    assert value(after, "hazmap_rules_step_seconds_count", engine="pings") >= 1
    assert value(after, "hazmap_rules_step_seconds_count", engine="points") >= 1
    assert value(after, "hazmap_rules_step_seconds_sum", engine="pings") > 0
    # events opened by rule equal what reached the store
    with Store.open(url) as store:
        stored = store.read_events()
    opened = Counter(stored.loc[stored["phase"] == "open", "rule"])
    assert {"speeding", "point_level"} <= set(opened)
    for rule, n in opened.items():
        assert value(after, "hazmap_events_opened_total", rule=rule) == n
    assert value(after, "hazmap_store_write_seconds_count", table="events") >= 1
    assert value(after, "hazmap_store_write_seconds_count", table="readings") >= 1
    assert value(after, "hazmap_live_queue_batches") == 0 and value(after, "hazmap_live_queue_capacity_batches") > 0

    # incidents: the processor in the monitor made them from the events; open ones and pushes by level
    from data.incidents import IncidentStore

    with Store.open(url) as store:
        incidents = IncidentStore(store, world)
        open_levels = Counter(incidents.list()["level"].where(incidents.list()["status"] != "closed").dropna())
        kpis = incidents.kpis(by="level", since=store.newest_event_time() - pd.Timedelta(days=30)).set_index("level")
    assert sum(open_levels.values()) > 0
    for level in ("red", "orange", "yellow", "blue"):
        assert value(after, "hazmap_incidents_open", level=level) == open_levels.get(level, 0)
    for level, row in kpis.iterrows():
        assert value(after, "hazmap_incidents_pushed", level=level) == row["pushed"]
        assert value(after, "hazmap_incidents_handling_rate", level=level) == pytest.approx(row["handling_rate"])

    # HTTP by route (the URL rule, not the path) and status
    assert value(after, "hazmap_http_requests_total", route="/layers/<version>/<name>.geojson", method="GET",
                 status="404") == 1
    assert value(after, "hazmap_http_requests_total", route="/", method="GET", status="200") == 1
    assert value(after, "hazmap_http_requests_total", route="/metrics", method="GET", status="200") == 1  # the first
    info = [dict(labels) for name, labels in after if name == "hazmap_build_info"]
    assert len(info) == 1 and info[0]["version"]


def test_a_screen_without_a_live_monitor_still_serves_metrics(world_and_url):
    world, url = world_and_url
    client = create_app(Settings(database_url=url), world, world.fingerprint()).server.test_client()
    samples = scrape(client)
    assert value(samples, "hazmap_live_worker_up") is None  # no monitor, no monitor figures
    assert any(name == "process_cpu_seconds_total" for name, _ in samples)  # the library's process collector

