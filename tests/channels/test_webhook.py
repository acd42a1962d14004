"""The sender against local HTTP receivers that answer, fail, answer slowly, time out and close
the connection on purpose; on both store backends."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from data import schema
from data.channels import store as tables
from data.channels.receiver import Receiver
from data.channels.settings import ChannelError, ChannelSettings
from data.channels.store import DeliveryStore
from data.channels.webhook import signature
from tests.channels.helpers import FAST, open_incidents, sender


def test_migration_0006_matches_the_declared_tables(store):
    names = {t.name for t in tables.TABLES}
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = [d for d in compare_metadata(context, schema.metadata) if any(n in repr(d) for n in names)]
    assert diffs == []


def test_an_upstream_platform_gets_each_transition_signed_with_its_delivery_id(store):
    incidents = open_incidents(store, n=2)
    with Receiver(secret="s3cret") as receiver:
        ds = DeliveryStore(store, FAST)
        ds.subscribe(name="province", kind="upstream", url=receiver.url, secret="s3cret")
        s = sender(store)
        assert s.drain(10)
        inc = incidents.list()["id"].tolist()
        incidents.sign(inc[0], None, "Li Lei")
        incidents.dispose(inc[0], None, "Li Lei", measures="driver slowed down", note="called the driver",
                          outcome="resolved")
        incidents.close(inc[0], None, "Li Lei")
        assert s.drain(10)
    events = sorted((r["event"], json.loads(r["body"])["incident"]["id"]) for r in receiver.requests)
    assert events == sorted([("opened", inc[0]), ("opened", inc[1]), ("signed", inc[0]), ("disposed", inc[0]),
                             ("closed", inc[0])])
    assert all(r["signed"] for r in receiver.requests) and receiver.bad_signatures == 0
    for r in receiver.requests:  # the header is the body's id and the HMAC is over the exact bytes sent
        assert json.loads(r["body"])["delivery_id"] == r["delivery_id"]
        assert r["headers"]["X-Hazmap-Signature"] == signature("s3cret", r["body"])
    log = ds.log()
    assert len(log) == 5 and set(log["status"]) == {"ok"} and set(log["code"]) == {200}
    assert log["latency_ms"].notna().all() and (log["target"] == receiver.url).all()
    assert set(ds.list()["status"]) == {"sent"}


def test_levels_rules_and_subscriber_filter_what_a_subscription_gets(store):
    incidents = open_incidents(store, n=1, severity=1)
    from tests.incidents.helpers import ev

    incidents.apply_events([ev("open", 30, subject="VEH-0009", severity=3)])
    with Receiver() as receiver:
        ds = DeliveryStore(store, FAST)
        ds.subscribe(name="red only", kind="upstream", url=receiver.url, levels=["red"])
        ds.subscribe(name="other dept", kind="department", subscriber_id="DEPT-NOBODY", url=receiver.url)
        ds.subscribe(name="fatigue only", kind="upstream", url=receiver.url, rules=["fatigue"])
        ds.subscribe(name="em office", kind="department", subscriber_id="DEPT-EM", url=receiver.url,
                     levels=["yellow"])
        assert sender(store).drain(10)
    got = sorted((json.loads(r["body"])["subscription_id"], json.loads(r["body"])["incident"]["level"],
                  r["event"]) for r in receiver.requests)
    subs = DeliveryStore(store).subscriptions().set_index("name")["id"]
    assert got == sorted([(subs["red only"], "red", "opened"), (subs["em office"], "yellow", "pushed")])


def test_a_failing_receiver_is_retried_with_backoff_then_dead_lettered_and_resent(store):
    open_incidents(store, n=1)
    with Receiver(behave=lambda n, did: "fail") as receiver:
        ds = DeliveryStore(store, FAST)
        ds.subscribe(name="flaky", kind="upstream", url=receiver.url)
        s = sender(store)
        assert s.drain(10)
        [row] = ds.list(failed=True).to_dict("records")
        assert row["attempts"] == FAST.max_attempts and row["last_error"].startswith("http_error")
        log = ds.log(row["delivery_id"]).sort_values("seq")
        assert list(log["attempt"]) == [1, 2, 3] and set(log["code"]) == {503}
        gaps = log["at"].diff().dt.total_seconds().dropna().to_numpy()
        assert gaps[0] >= FAST.backoff_s and gaps[1] >= 2 * FAST.backoff_s  # doubled, never sooner
        assert [r["delivery_id"] for r in receiver.requests] == [row["delivery_id"]] * 3
        receiver.behave = lambda n, did: "ok"
        assert ds.resend(all_failed=True, actor="ops") == [row["delivery_id"]]
        assert s.drain(10)
    assert ds.list()["status"].tolist() == ["sent"]
    assert list(receiver.accepted) == [row["delivery_id"]]  # the same id again: the receiver can dedupe
    with store.engine.connect() as connection:
        dead = connection.execute(sa.select(tables.dead_letters)).mappings().all()
    assert len(dead) == 1 and dead[0]["resent_by"] == "ops"


def test_a_refusing_receiver_is_dead_at_once_and_resend_refuses_live_deliveries(store):
    open_incidents(store, n=1)
    with Receiver(behave=lambda n, did: "refuse") as receiver:
        ds = DeliveryStore(store, FAST)
        ds.subscribe(name="picky", kind="upstream", url=receiver.url)
        assert sender(store).drain(10)
    [row] = ds.list().to_dict("records")
    assert (row["status"], row["attempts"]) == ("dead", 1) and row["last_error"].startswith("refused")
    with pytest.raises(ChannelError, match="no delivery DLV-nope"):
        ds.resend(["DLV-nope"])
    ds.resend([row["delivery_id"]])
    with pytest.raises(ChannelError, match="only failed deliveries"):
        ds.resend([row["delivery_id"]])


@pytest.mark.parametrize("behaviour, status", [("hang", "timeout"), ("close", "connection")])
def test_a_receiver_that_times_out_or_closes_is_logged_and_retried(store, behaviour, status):
    open_incidents(store, n=1)
    settings = ChannelSettings(**{**FAST.__dict__, "webhook_timeout_s": 0.3, "max_attempts": 2})
    with Receiver(behave=lambda n, did: behaviour if n == 1 else "ok") as receiver:
        ds = DeliveryStore(store, settings)
        ds.subscribe(name="odd", kind="upstream", url=receiver.url)
        assert sender(store, settings).drain(10)
    log = ds.log().sort_values("seq")
    assert list(log["status"]) == [status, "ok"]
    if behaviour == "hang":
        assert log["latency_ms"].iloc[0] >= 300
    assert ds.list()["status"].tolist() == ["sent"]


def test_a_slow_channel_does_not_hold_up_another(store):
    open_incidents(store, n=3)
    release = threading.Event()
    slow = Receiver(behave=lambda n, did: release.wait(20) and "ok")
    settings = ChannelSettings(**{**FAST.__dict__, "webhook_timeout_s": 30.0})
    with slow, Receiver() as fast:
        ds = DeliveryStore(store, settings)
        ds.subscribe(name="slow", kind="upstream", url=slow.url)
        ds.subscribe(name="fast", kind="upstream", url=fast.url)
        s = sender(store, settings).start()
        try:
            deadline = time.monotonic() + 10
            while len(fast.accepted) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(fast.accepted) == 3  # all three arrived while the slow one still holds its first
            assert len(slow.requests) == 1 and not slow.accepted
        finally:
            release.set()
            s.stop()


def test_an_sms_gateway_is_a_webhook_profile_with_its_own_body(store):
    open_incidents(store, n=1)
    template = '{"mobile": "13800000000", "sign": "宁波应急", "content": "$text", "ref": "$delivery_id"}'
    with Receiver() as receiver:
        ds = DeliveryStore(store, FAST)
        ds.subscribe(name="sms", kind="upstream", url=receiver.url, profile="sms", body_template=template,
                     headers={"X-Api-Key": "k"}, levels=["red", "orange"])
        assert sender(store).drain(10)
    [request] = receiver.requests
    body = json.loads(request["body"])
    assert body["mobile"] == "13800000000" and body["ref"] == request["delivery_id"]
    assert body["content"].startswith("【危化品预警】重大·超速·VEH-0001：告警产生")
    assert request["headers"]["X-Api-Key"] == "k"
    with pytest.raises(ChannelError, match="body template"):
        ds.subscribe(name="bad", kind="upstream", url=receiver.url, profile="sms")


@pytest.mark.parametrize("kw, message", [
    ({"kind": "city", "url": "http://x"}, "kind must be one of"),
    ({"kind": "upstream", "url": "ftp://x"}, "url must be"),
    ({"kind": "department", "url": "http://x", "subscriber_id": "ENT-1"}, "DEPT-"),
    ({"kind": "upstream", "url": "http://x", "levels": ["purple"]}, "unknown level"),
    ({"kind": "upstream", "url": "http://x", "events": ["exploded"]}, "unknown event"),
])
def test_a_bad_subscription_is_refused_with_one_clear_line(store, kw, message):
    with pytest.raises(ChannelError, match=message):
        DeliveryStore(store).subscribe(name="x", **kw)
    assert DeliveryStore(store).subscriptions().empty


def test_fan_out_twice_makes_each_delivery_once(store):
    open_incidents(store, n=2)
    ds = DeliveryStore(store, FAST)
    ds.subscribe(name="p", kind="upstream", url="http://127.0.0.1:9/never")
    assert ds.fan_out() == 2
    from data.incidents import incident_outbox

    with store.engine.begin() as connection:  # as if the stamp had been lost: the same rows again
        connection.execute(sa.update(incident_outbox).values(sent_at=None))
    ds.fan_out()
    assert len(ds.list()) == 2


def test_backoff_doubles_up_to_its_cap_and_jitter_only_stretches():
    s = ChannelSettings(backoff_s=2, backoff_max_s=10, jitter=0.5)
    assert [s.backoff(n, 0.0) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]
    assert s.backoff(1, 0.999) == pytest.approx(2 * 1.4995)
    with pytest.raises(ChannelError):
        ChannelSettings(max_attempts=0)


def test_a_receiver_that_moved_gets_what_was_queued_for_its_old_address(store):
    open_incidents(store, n=1)
    ds = DeliveryStore(store, FAST)
    ds.subscribe(name="p", kind="upstream", url="http://127.0.0.1:9/old", subscription_id="SUB-P")
    assert ds.fan_out() == 1
    with Receiver() as receiver:  # as the demo's receiver after a restart: a new port
        ds.subscribe(name="p", kind="upstream", url=receiver.url, subscription_id="SUB-P")
        assert sender(store).drain(10)
    assert len(receiver.accepted) == 1
    assert ds.log()["target"].tolist() == [receiver.url]
    assert ds.list()["target"].tolist() == [receiver.url]  # where it went, not where it was first meant to go


def test_a_hanging_receiver_holds_no_store_lock_the_incidents_need(store):
    """The sender records in its own short transactions: while a receiver holds a request open,
    new events, signatures and the fan-out of their outbox rows go through."""
    incidents = open_incidents(store, n=1)
    hanging = threading.Event()

    def behave(n, did):
        hanging.set()
        return "hang"

    settings = ChannelSettings(**{**FAST.__dict__, "webhook_timeout_s": 30.0})
    with Receiver(behave=behave) as receiver:
        ds = DeliveryStore(store, settings)
        ds.subscribe(name="stuck", kind="upstream", url=receiver.url)
        s = sender(store, settings).start()
        try:
            assert hanging.wait(10)
            from tests.incidents.helpers import ev

            incidents.apply_events([ev("open", 5, subject="VEH-0042", severity=2)])
            incidents.sign(incidents.list()["id"].tolist(), None, "Li")
            deadline = time.monotonic() + 10
            while len(ds.list()) < 4 and time.monotonic() < deadline:  # 2 opened + 2 signed, fanned out
                time.sleep(0.05)
            assert len(ds.list()) == 4
            assert ds.log().empty  # the first request is still open: nothing recorded yet
        finally:
            receiver.release.set()
            s.stop()


def test_every_rule_is_named_in_chinese_in_a_message():
    """An SMS for a plant's sensor named the rule by its key (point_level): the channels now
    take the wall's names (spatial/rules/titles.py), for every rule the engines raise."""
    from data.channels.webhook import sms_values
    from spatial.rules.engine import Engine
    from spatial.rules.offline import FEED_OUTAGE
    from spatial.rules.points import PointEngine
    from tests.rules.test_point_kit import point, point_world

    from tests.rules.test_cargo_state import engine_world

    engine = Engine(engine_world())
    rules = {r.name for r in engine.rules} | {r.name for r in PointEngine(point_world(point("MP-1"))).rules} \
        | {FEED_OUTAGE}
    for rule in sorted(rules):
        values = sms_values({"event": "opened", "incident": {"rule": rule, "severity": 1, "subject_id": "MP-1",
                                                              "id": "INC-1"}})
        assert values["rule_zh"] != rule and re.search("[\u4e00-\u9fff]", values["rule_zh"]), rule
    assert sms_values({"incident": {"rule": "point_level", "severity": 2}})["rule_zh"] == "监测超限"

