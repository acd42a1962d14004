"""Monitoring-point readings over MQTT: the decoder's table of good and bad messages, the
encoder, and the feed against a real Mosquitto (round trip in both forms and both time forms,
bad messages counted while good readings flow, a failing consumer, reconnection to a
throwaway broker that is stopped and started again, the availability probe)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from data.feeds.mqtt import (
    READING_REJECTIONS,
    REJECTION_REASONS,
    MqttFeedSettings,
    MqttReadingFeed,
    ReadingDecoder,
    broker_available,
    encode_readings,
    parse_broker_url,
    publish_raw,
    publish_readings,
)
from spatial.model import ReadingBatch
from tests.collect import Batches
from tests.services import missing_service, mqtt_broker_url

POINTS = [f"MP-{i:06d}" for i in range(1, 41)]
BASE = datetime(2026, 5, 1, 8, 0, 0, tzinfo=UTC)
BASE_MS = int(BASE.timestamp() * 1000)
NOW_S = BASE.timestamp() + 60  # the decoder's clock in the table tests
FAST = {"tick_s": 0.05, "reconnect_min_delay_s": 1, "reconnect_max_delay_s": 1, "max_future_s": None}


def epoch_ms(text: str) -> int:
    """Independent oracle: ISO-8601 with offset -> epoch milliseconds via the standard library."""
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def readings(n: int, seed: int = 1) -> ReadingBatch:
    rng = np.random.default_rng(seed)
    return ReadingBatch.from_arrays(
        np.array(POINTS, dtype=object)[rng.integers(0, len(POINTS), n)],
        BASE_MS + np.sort(rng.integers(0, 3_600_000, n)),
        np.round(rng.normal(50, 20, n), 3),
    )


def as_rows(batch: ReadingBatch) -> list[tuple[str, int, float]]:
    return sorted(zip(batch.point_id.tolist(), batch.epoch_ms.tolist(), batch.value.tolist()))


# --- decoder: a table of messages and what becomes of them --------------------------------------------

P = "t/points"
DECODE_CASES = [
    # (topic, payload, accepted rows, rejections)
    (f"{P}/MP-000001", '{"t": 1777622400, "v": 1.5}', [("MP-000001", BASE_MS, 1.5)], {}),
    (f"{P}/MP-000001", '{"t": 1777622400.123, "v": 2}', [("MP-000001", BASE_MS + 123, 2.0)], {}),
    (f"{P}/MP-000001", '{"t": "2026-05-01T16:00:00.5+08:00", "v": -3}', [("MP-000001", BASE_MS + 500, -3.0)], {}),
    (f"{P}/MP-000001", '{"t": "2026-05-01T08:00:00Z", "v": 0}', [("MP-000001", BASE_MS, 0.0)], {}),
    (f"{P}/MP-000001", '{"t": "2026-05-01T03:30:00-0430", "v": 0}', [("MP-000001", BASE_MS, 0.0)], {}),
    (f"{P}/MP-000001", '{"t": "2026-05-01 08:00:00.0004+00:00", "v": 7, "q": "extra keys ignored"}',
     [("MP-000001", BASE_MS, 7.0)], {}),
    (P, '{"p": ["MP-000001", "MP-000002"], "t": [1777622400, "2026-05-01T08:00:01Z"], "v": [1, 2.5]}',
     [("MP-000001", BASE_MS, 1.0), ("MP-000002", BASE_MS + 1000, 2.5)], {}),
    (P, '{"p": ["MP-000001", "MP-000002"], "t": 1777622400, "v": [1, 2]}',
     [("MP-000001", BASE_MS, 1.0), ("MP-000002", BASE_MS, 2.0)], {}),
    (P, '{"p": [], "t": [], "v": []}', [], {}),
    # message-level rejections
    (f"{P}/", '{"t": 1777622400, "v": 1}', [], {"topic": 1}),
    (f"{P}/MP-000001/extra", '{"t": 1777622400, "v": 1}', [], {"topic": 1}),
    (f"{P}x/MP-000001", '{"t": 1777622400, "v": 1}', [], {"topic": 1}),
    (f"{P}/MP-000001", "{t: 1}", [], {"not_json": 1}),
    (f"{P}/MP-000001", b"\xff\xfe", [], {"not_json": 1}),
    (f"{P}/MP-000001", "", [], {"not_json": 1}),
    (f"{P}/MP-000001", "[1777622400, 1]", [], {"not_object": 1}),
    (f"{P}/MP-000001", "42", [], {"not_object": 1}),
    (P, '{"p": ["MP-000001"], "t": [1777622400, 1777622401], "v": [1]}', [], {"bad_batch": 1}),
    (P, '{"p": ["MP-000001", "MP-000002"], "t": 1777622400, "v": [1]}', [], {"bad_batch": 1}),
    (P, '{"t": 1777622400, "v": 1}', [], {"bad_batch": 1}),
    (P, '{"readings": [{"p": "MP-000001", "t": 1777622400, "v": 1}]}', [], {"bad_batch": 1}),
    # reading-level rejections
    (f"{P}/MP-999999", '{"t": 1777622400, "v": 1}', [], {"unknown_point": 1}),
    (f"{P}/MP-000001", '{"v": 1}', [], {"missing_time": 1}),
    (f"{P}/MP-000001", '{"t": null, "v": 1}', [], {"missing_time": 1}),
    (f"{P}/MP-000001", '{"t": "2026-05-01T08:00:00", "v": 1}', [], {"bad_time": 1}),  # no offset
    (f"{P}/MP-000001", '{"t": "2026-05-01", "v": 1}', [], {"bad_time": 1}),
    (f"{P}/MP-000001", '{"t": "2026-13-01T08:00:00Z", "v": 1}', [], {"bad_time": 1}),
    (f"{P}/MP-000001", '{"t": "yesterday", "v": 1}', [], {"bad_time": 1}),
    (f"{P}/MP-000001", '{"t": "1777622400", "v": 1}', [], {"bad_time": 1}),
    (f"{P}/MP-000001", '{"t": 1777622400000, "v": 1}', [], {"bad_time": 1}),  # milliseconds sent as seconds
    (f"{P}/MP-000001", '{"t": true, "v": 1}', [], {"bad_time": 1}),
    (f"{P}/MP-000001", '{"t": 1777626400, "v": 1}', [], {"future_time": 1}),  # 66 min ahead of the clock
    (f"{P}/MP-000001", '{"t": 1777622400}', [], {"missing_value": 1}),
    (f"{P}/MP-000001", '{"t": 1777622400, "v": null}', [], {"missing_value": 1}),
    (f"{P}/MP-000001", '{"t": 1777622400, "v": "1.5"}', [], {"bad_value": 1}),
    (f"{P}/MP-000001", '{"t": 1777622400, "v": true}', [], {"bad_value": 1}),
    (f"{P}/MP-000001", '{"t": 1777622400, "v": [1]}', [], {"bad_value": 1}),
    (f"{P}/MP-000001", '{"t": 1777622400, "v": NaN}', [], {"non_finite_value": 1}),
    (f"{P}/MP-000001", '{"t": 1777622400, "v": -Infinity}', [], {"non_finite_value": 1}),
    (f"{P}/MP-000001", '{"t": 1777622400, "v": 1e999}', [], {"non_finite_value": 1}),
    (f"{P}/MP-000001", '{"t": 1777622400, "v": 1' + "0" * 400 + "}", [], {"non_finite_value": 1}),
    # one batch message, each reading judged on its own: the good one passes
    (P, ('{"p": ["MP-000001", "MP-999999", 7, ["MP-000002"], "MP-000003", "MP-000004"], '
        '"t": [1777622400, 1777622400, 1777622400, 1777622400, "noon", 1777622400], '
        '"v": [1, 1, 1, 1, 1, "x"]}'),
     [("MP-000001", BASE_MS, 1.0)], {"unknown_point": 3, "bad_time": 1, "bad_value": 1}),
]


@pytest.mark.parametrize("topic, payload, rows, rejections", DECODE_CASES)
def test_decoder_table(topic, payload, rows, rejections):
    decoder = ReadingDecoder(POINTS, P, max_future_s=300.0)
    payload = payload.encode() if isinstance(payload, str) else payload
    decoded = decoder.decode([(topic, payload)], now_s=NOW_S)
    assert as_rows(decoded.batch) == sorted(rows)
    assert dict(decoded.rejected) == rejections
    assert set(decoded.samples) == set(rejections)
    assert all(reason in REJECTION_REASONS for reason in rejections)


def test_decoder_one_tick_mixes_good_and_bad_and_keeps_arrival_order():
    decoder = ReadingDecoder(POINTS, P)
    messages = [(topic, payload.encode() if isinstance(payload, str) else payload)
                for topic, payload, _, _ in DECODE_CASES
                if not any(r == "future_time" for r in _)]  # the real clock is used below
    decoded = decoder.decode(messages)
    expected_rows = [row for _, _, rows, rej in DECODE_CASES if "future_time" not in rej for row in rows]
    assert list(zip(decoded.batch.point_id, decoded.batch.epoch_ms, decoded.batch.value)) == expected_rows
    expected = {}
    for _, _, _, rej in DECODE_CASES:
        for reason, count in rej.items():
            if reason != "future_time":
                expected[reason] = expected.get(reason, 0) + count
    assert dict(decoded.rejected) == expected
    assert decoded.batch.epoch_ms.dtype == np.int64 and decoded.batch.value.dtype == np.float64


def test_decoder_oversize_and_prefix_validation():
    decoder = ReadingDecoder(POINTS, P, max_payload_bytes=64)
    big = ('{"t": 1777622400, "v": 1, "pad": "' + "x" * 100 + '"}').encode()
    assert dict(decoder.decode([(f"{P}/MP-000001", big)]).rejected) == {"oversize": 1}
    for prefix in ("", "a/+/b", "a/#", "/a", "a/"):
        with pytest.raises(ValueError, match="topic prefix"):
            ReadingDecoder(POINTS, prefix)
    with pytest.raises(ValueError, match="reconnect_max_delay_s"):
        MqttFeedSettings(reconnect_min_delay_s=5, reconnect_max_delay_s=1)


def test_encoder_round_trips_through_decoder_and_refuses_bad_batches():
    batch = readings(500, seed=3)
    decoder = ReadingDecoder(POINTS, P)
    for batch_form in (False, True):
        for time_format in ("epoch", "iso"):
            messages = encode_readings(batch, batch_form, topic_prefix=P, time_format=time_format,
                                       max_batch_readings=200)
            assert len(messages) == (3 if batch_form else 500)
            decoded = decoder.decode(messages, now_s=NOW_S + 7200)
            assert not decoded.rejected
            np.testing.assert_array_equal(decoded.batch.point_id, batch.point_id)
            np.testing.assert_array_equal(decoded.batch.epoch_ms, batch.epoch_ms)
            np.testing.assert_array_equal(decoded.batch.value, batch.value)
    with pytest.raises(ValueError, match="non-finite"):
        encode_readings(ReadingBatch.from_arrays(["MP-000001"], [BASE_MS], [np.nan]))
    with pytest.raises(ValueError, match="topic"):
        encode_readings(ReadingBatch.from_arrays(["MP/1"], [BASE_MS], [1.0]))


@pytest.mark.parametrize(
    "url, host, port, tls",
    [("mqtt://127.0.0.1", "127.0.0.1", 1883, False), ("mqtt://broker:2000", "broker", 2000, False),
     ("mqtts://u:p%40ss@broker", "broker", 8883, True)],
)
def test_parse_broker_url(url, host, port, tls):
    address = parse_broker_url(url)
    assert (address.host, address.port, address.tls) == (host, port, tls)


@pytest.mark.parametrize("url", ["http://broker:1883", "mqtt://", "mqtt://broker:99999", "mqtt://broker/topic"])
def test_parse_broker_url_refuses(url):
    with pytest.raises(ValueError, match="MQTT broker URL"):
        parse_broker_url(url)


# --- against a real broker ----------------------------------------------------------------------------


@pytest.fixture
def mqtt_url() -> str:
    return mqtt_broker_url()


@pytest.fixture
def prefix() -> str:
    # The broker is shared with parallel runs: every test gets its own topics.
    return f"hazmap-test/{uuid.uuid4().hex[:10]}/points"


def wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_round_trip_single_and_batch_forms(mqtt_url, prefix):
    collector = Batches()
    single, batched = readings(150, seed=1), readings(400, seed=2)
    offsets = {  # hand-written ISO times with offsets, checked against the standard library
        "2026-05-01T16:00:00.250+08:00": 4.25, "2026-04-30T23:59:59.999-08:00": 5.5, "2026-05-01T08:00:01Z": 6.0,
    }
    with MqttReadingFeed(mqtt_url, POINTS, collector, settings=MqttFeedSettings(topic_prefix=prefix, **FAST)) as feed:
        assert feed.wait_ready(10)
        assert publish_readings(mqtt_url, single, topic_prefix=prefix, time_format="epoch") == 150
        assert publish_readings(mqtt_url, batched, batch_form=True, topic_prefix=prefix, time_format="iso",
                                max_batch_readings=150) == 3
        publish_raw(mqtt_url, [(f"{prefix}/MP-000040", f'{{"t": "{t}", "v": {v}}}') for t, v in offsets.items()])
        assert collector.wait_for(553)
        time.sleep(0.2)  # nothing beyond what was sent arrives
        stats = feed.stats()
    expected = as_rows(single) + as_rows(batched) + [("MP-000040", epoch_ms(t), v) for t, v in offsets.items()]
    assert collector.rows() == sorted(expected)
    assert all(isinstance(b, ReadingBatch) and len(b) for b in collector.batches)
    assert all(b.epoch_ms.dtype == np.int64 for b in collector.batches)
    # readings are grouped per tick, not handed over one message at a time
    assert len(collector.batches) < 150 / 5
    assert stats["messages"] == 150 + 3 + 3 and stats["readings"] == 553
    assert stats["batches"] == len(collector.batches) and stats["rejected_total"] == 0
    newest_s = max(b.epoch_ms.max() for b in collector.batches) / 1000
    assert stats["newest_reading_age_s"] == pytest.approx(time.time() - newest_s, abs=5)


def test_bad_messages_counted_by_reason_while_good_readings_flow(mqtt_url, prefix):
    collector = Batches()
    now = datetime.now(UTC).replace(microsecond=0)
    now_s = int(now.timestamp())
    good = ReadingBatch.from_arrays(POINTS[:20], [now_s * 1000] * 20, np.arange(20.0))
    bad = [
        (f"{prefix}/MP-000001", "not json at all"),
        (f"{prefix}/MP-000001", "[1, 2]"),
        (f"{prefix}/MP-999999", f'{{"t": {now_s}, "v": 1}}'),
        (f"{prefix}/MP-000001", f'{{"t": {now_s}, "v": NaN}}'),
        (f"{prefix}/MP-000001", f'{{"t": {now_s}, "v": Infinity}}'),
        (f"{prefix}/MP-000001", f'{{"t": {now_s}, "v": "high"}}'),
        (f"{prefix}/MP-000001", '{"v": 1}'),
        (f"{prefix}/MP-000001", '{"t": "5 past noon", "v": 1}'),
        (f"{prefix}/MP-000001", f'{{"t": {now_s + 86_400}, "v": 1}}'),
        (f"{prefix}/MP-000001", f'{{"t": {now_s}}}'),
        (f"{prefix}/MP-000001/raw", f'{{"t": {now_s}, "v": 1}}'),
        (f"{prefix}/", f'{{"t": {now_s}, "v": 1}}'),
        (prefix, f'{{"p": ["MP-000001"], "t": {now_s}, "v": [1, 2]}}'),
    ]
    settings = MqttFeedSettings(topic_prefix=prefix, **{**FAST, "max_future_s": 300.0})
    with MqttReadingFeed(mqtt_url, POINTS, collector, settings=settings) as feed:
        assert feed.wait_ready(10)
        # bad messages before, between and after the good ones: the feed never stops
        publish_raw(mqtt_url, bad)
        publish_readings(mqtt_url, ReadingBatch.from_arrays(good.point_id[:10], good.epoch_ms[:10], good.value[:10]),
                         topic_prefix=prefix)
        publish_raw(mqtt_url, bad)
        publish_readings(mqtt_url, ReadingBatch.from_arrays(good.point_id[10:], good.epoch_ms[10:], good.value[10:]),
                         topic_prefix=prefix, batch_form=True)
        publish_raw(mqtt_url, bad)
        assert wait_until(lambda: feed.stats()["messages"] == 3 * len(bad) + 11 and not feed.stats()[
            "pending_messages"], 10)
        assert collector.wait_for(20)
        time.sleep(0.2)
        stats = feed.stats()
    assert collector.rows() == as_rows(good)
    assert stats["readings"] == 20
    expected = {"not_json": 3, "not_object": 3, "unknown_point": 3, "non_finite_value": 6, "bad_value": 3,
                "missing_time": 3, "bad_time": 3, "future_time": 3, "missing_value": 3, "topic": 6, "bad_batch": 3}
    assert {k: v for k, v in stats["rejected"].items() if v} == expected
    assert stats["rejected_total"] == sum(expected.values())
    assert set(stats["rejection_samples"]) == set(expected)
    assert stats["connected"]


def test_failing_consumer_is_counted_and_the_feed_goes_on(mqtt_url, prefix):
    delivered: list[ReadingBatch] = []
    calls = {"n": 0}

    def flaky(batch: ReadingBatch) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("store is down")
        delivered.append(batch)

    with MqttReadingFeed(mqtt_url, POINTS, flaky, settings=MqttFeedSettings(topic_prefix=prefix, **FAST)) as feed:
        assert feed.wait_ready(10)
        publish_readings(mqtt_url, readings(5, seed=4), topic_prefix=prefix, batch_form=True)
        assert wait_until(lambda: feed.stats()["sink_errors"] == 1, 10)
        publish_readings(mqtt_url, readings(7, seed=5), topic_prefix=prefix, batch_form=True)
        assert wait_until(lambda: sum(len(b) for b in delivered) == 7, 10)
        stats = feed.stats()
    assert stats["sink_failed_readings"] == 5 and stats["readings"] == 7
    assert "store is down" in stats["last_sink_error"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def own_broker(tmp_path):
    """A throwaway Mosquitto on a free port that the test may stop and start again."""
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if binary is None:
        missing_service("the mosquitto binary (/usr/sbin/mosquitto)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    url = f"mqtt://127.0.0.1:{port}"

    class Broker:
        process: subprocess.Popen | None = None

        def start(self) -> None:
            self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
            assert wait_until(lambda: broker_available(url, 0.5), 10), "throwaway mosquitto did not start"

        def stop(self) -> None:
            if self.process is not None:
                self.process.terminate()
                self.process.wait(10)
                self.process = None

    broker = Broker()
    broker.url = url
    yield broker
    broker.stop()


def test_feed_connects_late_and_reconnects_after_the_broker_restarts(own_broker):
    collector = Batches()
    settings = MqttFeedSettings(topic_prefix="hazmap/points", **FAST)
    feed = MqttReadingFeed(own_broker.url, POINTS, collector, settings=settings)
    feed.start()  # broker not up yet: the feed keeps trying
    try:
        assert wait_until(lambda: feed.stats()["connect_failures"] >= 1, 10)
        assert not feed.stats()["connected"]
        own_broker.start()
        assert feed.wait_ready(10)
        first = readings(30, seed=6)
        publish_readings(own_broker.url, first)
        assert collector.wait_for(30)

        own_broker.stop()
        assert wait_until(lambda: not feed.stats()["connected"], 10)
        assert feed.stats()["disconnects"] == 1
        with pytest.raises(ConnectionError):
            publish_readings(own_broker.url, first)

        own_broker.start()
        assert feed.wait_ready(10), feed.stats()
        second = readings(40, seed=7)
        publish_readings(own_broker.url, second, batch_form=True)
        assert collector.wait_for(70)
        stats = feed.stats()
    finally:
        feed.stop()
    assert collector.rows() == sorted(as_rows(first) + as_rows(second))
    assert stats["connects"] == 2 and stats["connected"] and stats["readings"] == 70


def test_broker_available(mqtt_url):
    assert broker_available(mqtt_url, 2.0)
    started = time.monotonic()
    assert not broker_available(f"mqtt://127.0.0.1:{free_port()}", 1.0)  # nothing listens
    # something listens but never speaks MQTT: the probe gives up on time
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        assert not broker_available(f"mqtt://127.0.0.1:{silent.getsockname()[1]}", 0.5)
    assert time.monotonic() - started < 3.0


def test_reading_rejections_are_documented():
    text = (Path(__file__).parent.parent / "docs" / "mqtt.md").read_text(encoding="utf-8")
    for reason in REJECTION_REASONS:
        assert f"`{reason}`" in text, reason
    assert READING_REJECTIONS[0] == "unknown_point"
