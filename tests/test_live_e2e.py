"""End to end: the simulator drives a scaled Ningbo through the real JT/T 808 gateway (TCP) and
the real MQTT broker into the live monitor; every staged violation must come out of the rules
as an event of the right rule and subject, the teleports and duplicates must be cleaned and
raise nothing, and every report and event must be stored.

The run is in lockstep (each slice of simulated time is acknowledged by the gateway before the
next is written), so a few simulated hours take seconds and no report arrives late.
"""

from __future__ import annotations

import time
import uuid

import pandas as pd
import pytest

from app.live import LiveMonitor, MonitorSettings
from data.demo import build_world
from data.feeds.gateway import GatewaySettings
from data.feeds.mqtt import MqttFeedSettings, broker_available
from data.reference import load_chemicals
from data.sim.check import cleaned_expected, events_during_cleaned_stages, match_staged, summary
from data.sim.fleet import plan_fleet
from data.sim.points import plan_points
from data.sim.runner import Simulator
from data.sim.senders import Jt808Sender, MqttReadingSender
from data.sim.settings import DEMO_DAY, SimSettings
from data.store import Store
from spatial.rules.points import PointEngineSettings
from spatial.rules.point_stuck import PointStuckSettings
from tests.services import missing_service, mqtt_broker_url

SIM = SimSettings(seed=5, start=DEMO_DAY + pd.Timedelta(hours=6), hours=6.0, stage_margin_s=1200.0,
                  stage_share=0.01, point_stage_share=0.01, stuck_after_s=3600.0)


@pytest.fixture(scope="module")
def broker_url():
    url = mqtt_broker_url()
    if not broker_available(url):
        missing_service(f"Mosquitto at {url}")
    return url


@pytest.fixture(scope="module")
def run(tmp_path_factory, broker_url):
    world = build_world(seed=7, scale=0.05, chemicals=load_chemicals())  # has a medium-changing tank in the window
    url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'hazmap.sqlite'}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
    prefix = f"hazmap-e2e-{uuid.uuid4().hex[:8]}/points"  # this run's topics only
    settings = MonitorSettings(
        points=PointEngineSettings(point_stuck=PointStuckSettings(stuck_after_s=SIM.stuck_after_s)),
        gateway=GatewaySettings(port=0, stats_port=None, store_interval_s=0.2),
        mqtt_url=broker_url,
        mqtt=MqttFeedSettings(topic_prefix=prefix, max_future_s=None),
    )
    fleet, points = plan_fleet(world, SIM), plan_points(world, SIM)
    staged = pd.concat([fleet.staged, points.staged], ignore_index=True)
    started = time.monotonic()
    with LiveMonitor(world, url, settings) as monitor:
        assert monitor.mqtt_feed.wait_ready(10), "the monitor's MQTT feed did not subscribe"
        with Jt808Sender("127.0.0.1", monitor.gateway.port, world.vehicles).start(fleet.vehicle_ids) as jt808, \
                MqttReadingSender(broker_url, topic_prefix=prefix).start() as mqtt:
            simulator = Simulator(fleet, points, ping_sink=lambda b: jt808.send(b, wait_acked=True),
                                  reading_sink=mqtt.send, time_factor=None)
            progress = simulator.run()
        deadline = time.monotonic() + 60  # the broker delivers a little after the last publish
        while time.monotonic() < deadline and monitor.stats()["mqtt"]["readings"] < progress.readings:
            time.sleep(0.1)
        assert monitor.wait_idle(120)
    stats = monitor.stats()  # stopped: the last readings are written
    live = monitor.snapshot()
    wall_s = time.monotonic() - started
    with Store.open(url) as store:
        events = store.read_events()
        stored_pings = len(store.read_pings(pd.Timestamp(SIM.start_ms, unit="ms", tz="UTC"),
                                            pd.Timestamp(SIM.end_ms, unit="ms", tz="UTC")))
    print(f"\ne2e: {progress.pings} pings, {progress.readings} readings, {len(events)} events in {wall_s:.1f} s")
    return dict(world=world, staged=staged, progress=progress, stats=stats, live=live, events=events,
                stored_pings=stored_pings)


def test_every_staged_violation_raises_its_rule_for_its_subject(run):
    matched = match_staged(run["staged"], run["events"])
    print(summary(matched).to_string(index=False))
    expected = matched[matched["rule"].notna()]
    assert set(expected["kind"]) >= {"route_deviation", "stop_near_school", "speeding", "residential_parking",
                                     "washing_by_water", "media_change_unwashed", "restricted_zone_closed_hour",
                                     "fatigue", "silent_terminal", "point_level_1", "point_level_2", "point_stuck",
                                     "point_silent"}
    missed = expected[~expected["found"].astype(bool)]
    assert missed.empty, f"staged but not raised:\n{missed[['subject_id', 'kind', 'rule', 'start', 'end']]}"


def test_teleports_and_duplicates_are_cleaned_and_raise_nothing(run):
    staged, dropped = run["staged"], run["stats"]["engine"]["dropped"]
    expected = cleaned_expected(staged)
    assert expected.get("teleport", 0) > 0 and expected.get("duplicate", 0) > 0
    assert dropped["teleport"] == expected["teleport"]
    assert dropped["duplicate"] == expected["duplicate"]
    assert dropped["out_of_order"] == 0 and dropped["future"] == 0
    assert events_during_cleaned_stages(staged, run["events"]).empty


def test_everything_sent_was_taken_and_stored(run):
    stats, progress = run["stats"], run["progress"]
    assert stats["gateway"]["reports_received"] == progress.pings
    assert stats["gateway"]["dropped_reports"] == 0 and not stats["gateway"]["rejected"]
    assert stats["mqtt"]["readings"] == progress.readings
    assert stats["readings_stored"] == progress.readings
    assert run["stored_pings"] == progress.pings
    assert stats["engine"]["released"] + sum(stats["engine"]["dropped"].values()) + stats["engine"]["held"] \
        == progress.pings
    opens = run["events"][run["events"]["phase"] == "open"]
    assert sum(stats["events_by_rule"].values()) == len(opens)


def test_live_state_shows_the_fleet_and_the_open_alerts(run):
    live, fleet_ids = run["live"], set(run["staged"]["subject_id"])
    assert len(live.positions) > 0.9 * len(run["world"].vehicles)
    assert len(live.readings) > 0.9 * len(run["world"].monitoring_points)
    trail = live.trail()
    span_s = (trail.groupby("vehicle_id")["epoch_ms"].agg(lambda t: t.max() - t.min()).max()) / 1000
    assert span_s <= live.trail_s  # bounded trail
    open_now = live.alerts[live.alerts["open_count"] > 0]
    assert len(open_now) > 0 and set(open_now.index) & fleet_ids
