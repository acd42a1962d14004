"""The sender inside `hazmap serve` / `demo`: the demo's loopback receiver subscribed to red and
orange incidents gets them; the figures reach the header's line and /metrics; `hazmap deliveries`
and `hazmap incidents text` on the command line."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from app.cli import cli
from app.cli_deliveries import DEMO_SUBSCRIPTION, start_channels
from app.metrics import LiveCollector
from app.settings import Settings
from app.webapp import deliveries_text
from data.channels.store import DeliveryStore
from data.store import Store
from tests.incidents.helpers import ev
from data.incidents import IncidentStore


def test_the_demo_receiver_gets_red_and_orange_and_the_figures_reach_header_and_metrics(sqlite_url):
    settings = Settings(database_url=sqlite_url, delivery_backoff_s=0.05)
    with Store.open(sqlite_url, upgrade=True) as store:
        IncidentStore(store).apply_events([ev("open", 0, subject="VEH-0001", severity=1),
                                           ev("open", 1, subject="VEH-0002", severity=2),
                                           ev("open", 2, subject="VEH-0003", severity=3)])
    monitor = SimpleNamespace(gateway=None, gateway_loop=None, channels=None)
    channels = start_channels(settings, monitor, demo=True)
    try:
        assert monitor.channels is channels
        deadline = time.monotonic() + 20
        while len(channels.receiver.accepted) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a yellow one would have arrived by now too
        levels = sorted(b["incident"]["level"] for b in channels.receiver.accepted.values())
        assert levels == ["orange", "red"] and channels.receiver.bad_signatures == 0
        channels._figures = None
        figures = channels.figures()
        assert (figures["sent"], figures["dead"], figures["demo_receiver"]["accepted"]) == (2, 0, 2)
        assert deliveries_text(channels, "zh") == "推送 已送2 待送0 失败0"
        assert deliveries_text(None, "en") == ""
        registry = CollectorRegistry()
        registry.register(LiveCollector(SimpleNamespace(stats=lambda: {"deliveries": channels.figures()})))
        scraped = generate_latest(registry).decode()
        assert "hazmap_deliveries_failed 0.0" in scraped and "hazmap_deliveries_sent 2.0" in scraped
        assert "hazmap_deliveries_failed_attempts_total 0.0" in scraped
    finally:
        channels.stop()
    with Store.open(sqlite_url) as store:  # a second start reuses the one demo subscription
        assert DeliveryStore(store).subscriptions()["id"].tolist() == [DEMO_SUBSCRIPTION]


def test_turned_off_no_sender_runs(sqlite_url):
    monitor = SimpleNamespace(gateway=None, channels=None)
    assert start_channels(Settings(database_url=sqlite_url, channels_in_serve=False), monitor) is None
    assert monitor.channels is None


def test_the_command_line(sqlite_url, tmp_path, monkeypatch):
    from tests.test_store import make_world

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HAZMAP_DATABASE_URL", sqlite_url)
    with Store.open(sqlite_url, upgrade=True) as store:
        store.replace_world(make_world())
        IncidentStore(store).apply_events([ev("open", 0, subject="VEH-0001", severity=3)])
        iid = IncidentStore(store).list().iloc[0]["id"]
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(cli, list(args))
        result.text = result.stdout + ("" if result.exception is None else str(result.exception))
        return result

    made = run("deliveries", "subscribe", "--name", "province", "--kind", "upstream",
               "--url", "http://127.0.0.1:9/hook", "--level", "yellow", "--secret", "k", "--header", "X-Key=1")
    assert made.exit_code == 0, made.text
    sid = json.loads(made.stdout)["subscription_id"]
    bad = run("deliveries", "subscribe", "--name", "x", "--kind", "city", "--url", "http://x")
    assert bad.exit_code != 0 and "kind must be one of" in bad.text
    listed = run("deliveries", "subscriptions", "--json")
    assert json.loads(listed.stdout.splitlines()[0])["secret"] is True  # shown as set, never printed

    texted = run("incidents", "text", iid, "--message", "请靠边停车", "--as", "Li Lei")
    assert texted.exit_code == 0, texted.text
    did = json.loads(texted.stdout)["delivery_id"]
    refused = run("incidents", "text", iid, "--message", "   ", "--as", "Li Lei")
    assert refused.exit_code != 0 and "empty" in refused.text

    with Store.open(sqlite_url) as store:
        DeliveryStore(store).fan_out()
    rows = [json.loads(line) for line in run("deliveries", "list", "--json").stdout.splitlines()]
    assert {(r["channel"], r["event"]) for r in rows} == {("jt808", "text"), ("webhook", "opened")}
    assert all(r["status"] == "pending" for r in rows)
    assert any(r["delivery_id"] == did and r["requested_by"] == "Li Lei" for r in rows)
    assert run("deliveries", "list", "--failed", "--json").stdout == ""
    nothing = run("deliveries", "resend")
    assert nothing.exit_code != 0 and "--all-failed" in nothing.text
    alive = run("deliveries", "resend", did)
    assert alive.exit_code != 0 and "only failed deliveries" in alive.text
    assert json.loads(run("deliveries", "resend", "--all-failed").stdout) == {"resent": []}
    assert run("deliveries", "unsubscribe", sid).exit_code == 0
