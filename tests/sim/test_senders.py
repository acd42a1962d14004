"""The simulator's senders: frames built for a whole batch equal the codec's byte for byte;
against a real gateway on loopback (its own thread and loop, a temporary SQLite store) every
report arrives with its values, lockstep sends keep slices in order across connections,
dropped connections are reconnected; against a real Mosquitto readings round trip into the
feed; unreachable services give clear errors."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from data.feeds.gateway import GatewaySettings, Jt808Gateway, vehicle_ids_by_phone
from data.feeds.jt808 import (
    FrameSplitter,
    LocationBatch,
    LocationReport,
    decode_frame,
    decode_message,
    encode_message,
    phone_key,
    reports_to_batch,
)
from data.feeds.mqtt import MqttFeedSettings, MqttReadingFeed
from data.sim.senders import (
    MAX_BATCH_REPORTS,
    GatewayRefused,
    GatewayUnreachable,
    Jt808Sender,
    MqttReadingSender,
    encode_report_bodies,
    encode_slice,
    phone_bcd,
)
from spatial.model import PingBatch, ReadingBatch
from tests.collect import Batches
from tests.services import mqtt_broker_url

HOST = "127.0.0.1"
BASE_MS = int(datetime(2026, 11, 2, 6, 0, tzinfo=timezone.utc).timestamp() * 1000)
VERSIONS = [pytest.param(None, id="2013"), pytest.param(1, id="2019")]


def vehicles(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [f"VEH-{i:05d}" for i in range(n)],
        "terminal_phone": [f"139{i:08d}" for i in range(n)],
        "plate": [f"浙B{i:05d}" for i in range(n)],
    })


def random_pings(vehicle_ids, rng, *, epoch_ms=None, bits: bool = False) -> PingBatch:
    """Pings with sub-second times, unrounded positions and speeds; with `bits`, random alarm
    and status words (their bytes hit 0x7D / 0x7E, which must be escaped)."""
    n = len(vehicle_ids)
    when = BASE_MS + rng.integers(0, 86_400_000, n) if epoch_ms is None else epoch_ms
    status = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32) & ~np.uint32(0b1100) if bits else None
    return PingBatch.from_arrays(
        np.asarray(vehicle_ids, dtype=object), when, rng.uniform(121.0, 122.2, n), rng.uniform(29.3, 30.3, n),
        rng.uniform(0, 110, n), rng.uniform(0, 359.4, n),
        rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32) if bits else None, status,
    )


def expected_on_the_wire(batch: PingBatch) -> pd.DataFrame:
    """What JT/T 808 carries of each ping: whole seconds, 1e-6 degrees, 0.1 km/h, whole degrees."""
    return pd.DataFrame({
        "vehicle_id": batch.vehicle_id,
        "epoch_ms": batch.epoch_ms // 1000 * 1000,
        "lon": np.round(batch.lon, 6), "lat": np.round(batch.lat, 6),
        "speed_kmh": np.round(batch.speed_kmh, 1),
        "heading": np.rint(batch.heading) % 360,
        "alarm": batch.alarm, "status": batch.status,
    })


def sorted_rows(frame: pd.DataFrame) -> pd.DataFrame:
    columns = ["vehicle_id", "epoch_ms", "lon", "lat", "speed_kmh", "heading", "alarm", "status"]
    return frame[columns].sort_values(["vehicle_id", "epoch_ms", "lon"], ignore_index=True)


# --- frames for a whole batch, against the codec -------------------------------------------------------------


def _codec_report(batch: PingBatch, i: int) -> LocationReport:
    """One ping through the codec's own types (the oracle for the vectorised encoder)."""
    return LocationReport(
        int(batch.alarm[i]), int(batch.status[i]), round(float(batch.lat[i]), 6), round(float(batch.lon[i]), 6), 0,
        round(float(batch.speed_kmh[i]), 1), round(float(batch.heading[i])) % 360,
        datetime.fromtimestamp(int(batch.epoch_ms[i]) // 1000, timezone.utc),
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_frames_equal_the_codec_byte_for_byte(version):
    rng = np.random.default_rng(7)
    phones = [f"139{i:08d}" for i in range(6)]
    # truck 0: 1 report (0x0200), truck 3: 75 (three 0x0704: 34, 34, 7), others a few; shuffled
    counts = [1, 3, 0, 75, 2, 35]
    terminal = rng.permutation(np.repeat(np.arange(6), counts))
    batch = random_pings([f"VEH-{t}" for t in terminal], rng, bits=True)
    next_serial = np.array([65534, 0, 9, 65500, 77, 65535], dtype=np.int64)  # some wrap at 0xFFFF
    before = next_serial.copy()
    encoded = encode_slice(encode_report_bodies(batch), terminal, phone_bcd(phones, version), next_serial, version)

    expected, serial = [], before.copy()
    for t in range(6):  # oracle: the codec, message by message
        rows = np.flatnonzero(terminal == t)
        for first in range(0, len(rows), MAX_BATCH_REPORTS):
            reports = [_codec_report(batch, i) for i in rows[first:first + MAX_BATCH_REPORTS]]
            message = reports[0] if len(reports) == 1 else LocationBatch(0, tuple(reports))
            expected.append(encode_message(message, phones[t], int(serial[t]), version))
            serial[t] = (serial[t] + 1) & 0xFFFF
    assert encoded.blob == b"".join(expected)
    assert b"\x7d\x01" in encoded.blob and b"\x7d\x02" in encoded.blob  # escapes were exercised
    assert next_serial.tolist() == serial.tolist()
    assert encoded.terminals.tolist() == [0, 1, 3, 4, 5] and encoded.report_counts.tolist() == [1, 3, 75, 2, 35]
    assert encoded.first_serials.tolist() == before[[0, 1, 3, 4, 5]].tolist()

    # and decoded back, the pings carry exactly what JT/T 808 can
    splitter, ids, reports = FrameSplitter(), [], []
    for frame in splitter.feed(encoded.blob):
        packet = decode_frame(frame)
        message = decode_message(packet)
        got = message.reports if isinstance(message, LocationBatch) else (message,)
        ids += [f"VEH-{phones.index(phone_key(packet.header.phone))}"] * len(got)
        reports += got
    assert not splitter.rejected and len(reports) == len(batch)
    decoded = reports_to_batch(ids, reports).to_frame()
    pd.testing.assert_frame_equal(sorted_rows(decoded), sorted_rows(expected_on_the_wire(batch)), check_dtype=False,
                                  atol=1e-9, rtol=0)


def test_one_report_per_frame_when_asked_and_bad_values_are_named():
    rng = np.random.default_rng(3)
    batch = random_pings(["VEH-0"] * 3, rng)
    encoded = encode_slice(encode_report_bodies(batch), np.zeros(3, np.int64), phone_bcd(["13900000000"], None),
                           np.zeros(1, np.int64), None, max_batch_reports=1)
    assert [decode_frame(f).header.message_id for f in FrameSplitter().feed(encoded.blob)] == [0x0200] * 3

    def with_(**changes) -> PingBatch:
        columns = {name: getattr(batch, name).copy() for name in ("vehicle_id", "epoch_ms", "lon", "lat", "speed_kmh")}
        columns["vehicle_id"] = np.array(["VEH-A", "VEH-B", "VEH-C"], dtype=object)
        for name, (row, value) in changes.items():
            columns[name][row] = value
        return PingBatch.from_arrays(**columns)

    with pytest.raises(ValueError, match=r"no valid position.*VEH-B"):
        encode_report_bodies(with_(lat=(1, np.nan)))
    with pytest.raises(ValueError, match=r"no valid position.*VEH-C"):
        encode_report_bodies(with_(lon=(2, 181.0)))
    with pytest.raises(ValueError, match=r"speed_kmh.*VEH-A"):
        encode_report_bodies(with_(speed_kmh=(0, -1.0)))
    with pytest.raises(ValueError, match=r"2000-2099.*VEH-B"):
        encode_report_bodies(with_(epoch_ms=(1, 900_000_000_000)))  # 1998
    with pytest.raises(ValueError, match="terminal phone"):
        phone_bcd(["1390000000x"], None)


# --- a real gateway -----------------------------------------------------------------------------------------


class GatewayThread:
    """Jt808Gateway on a free loopback port, on its own loop in a thread (as `hazmap serve` runs it)."""

    def __init__(self, fleet: pd.DataFrame, store=None, **settings) -> None:
        self.sink = Batches()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        options = {"host": HOST, "port": 0, "stats_port": None, "batch_interval_s": 0.02, **settings}
        self.gateway = Jt808Gateway(vehicle_ids_by_phone(fleet), self.sink, store, GatewaySettings(**options))
        self.call(self.gateway.start())
        self.port = self.gateway.port

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def on_loop(self, function):
        async def run():
            return function()
        return self.call(run())

    def stats(self) -> dict:
        return self.on_loop(self.gateway.stats)

    def stop(self) -> dict:
        self.call(self.gateway.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        return self.gateway.stats()


@pytest.fixture
def sqlite_store(tmp_path):
    from data.store import Store

    store = Store.open(f"sqlite:///{(tmp_path / 'hazmap.sqlite').as_posix()}", upgrade=True)
    try:
        yield store
    finally:
        store.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _sender_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "jt808-sender"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_report_arrives_with_its_values(sqlite_store, version):
    fleet = vehicles(120)
    ids = fleet["id"].to_numpy(dtype=object)
    rng = np.random.default_rng(11)
    slices = [random_pings(ids, rng, epoch_ms=BASE_MS + k * 10_000 + rng.integers(0, 10_000, len(ids)), bits=True)
              for k in range(3)]
    backlog_ids = np.repeat(ids[[4, 50, 119]], [40, 2, 1])  # a backlog of 40: two 0x0704 frames
    slices.append(random_pings(backlog_ids, rng, epoch_ms=BASE_MS + 30_000 + np.arange(len(backlog_ids)) * 1000))
    gateway = GatewayThread(fleet, sqlite_store)
    try:
        with Jt808Sender(HOST, gateway.port, fleet, protocol_version=version) as sender:
            for batch in slices:
                sender.send(batch)
            stats = sender.stats()
        total = sum(len(b) for b in slices)
        assert gateway.sink.wait_for(total)
    finally:
        gateway_stats = gateway.stop()
    assert stats["sent"] == stats["acked"] == total and stats["frames"] == 3 * 120 + 2 + 1 + 1
    assert stats["terminals"] == 120 and stats["reconnects"] == stats["errors"] == stats["refused"] == 0
    assert gateway_stats["events"] == {"registered": 120, "authenticated": 120}
    assert gateway_stats["rejected"] == {} and gateway_stats["unregistered_reports"] == 0
    assert gateway_stats["disconnects"] == {"logout": 120}
    want = sorted_rows(expected_on_the_wire(PingBatch(**{
        name: np.concatenate([getattr(b, name) for b in slices]) for name in PingBatch.__dataclass_fields__})))
    live = sorted_rows(gateway.sink.frame())
    pd.testing.assert_frame_equal(live, want, check_dtype=False, atol=1e-9, rtol=0)
    stored = sorted_rows(sqlite_store.read_pings(pd.Timestamp(BASE_MS - 1000, unit="ms", tz="UTC"),
                                                 pd.Timestamp(BASE_MS + 86_400_000, unit="ms", tz="UTC")))
    pd.testing.assert_frame_equal(stored, want, check_dtype=False, atol=1e-9, rtol=0)


def test_lockstep_slices_reach_the_sink_in_order_across_connections():
    fleet = vehicles(150)
    ids = fleet["id"].to_numpy(dtype=object)
    rng = np.random.default_rng(5)
    slices = 8
    gateway = GatewayThread(fleet, batch_interval_s=0.005)
    try:
        with Jt808Sender(HOST, gateway.port, fleet) as sender:
            for k in range(slices):
                # each slice in a fresh random truck order, so connections are written in varying order
                order = rng.permutation(len(ids))
                sender.send(random_pings(ids[order], rng, epoch_ms=np.full(len(ids), BASE_MS + k * 10_000)))
        assert gateway.sink.wait_for(slices * len(ids))
    finally:
        gateway.stop()
    seen_slice = (gateway.sink.frame()["epoch_ms"].to_numpy() - BASE_MS) // 10_000  # in the sink's order
    assert len(seen_slice) == slices * len(ids)
    assert np.bincount(seen_slice).tolist() == [len(ids)] * slices
    assert (np.diff(seen_slice) >= 0).all(), "a report of slice k+1 reached the sink before one of slice k"
    assert len(gateway.sink.batches) > 1  # several sink calls: the order held across batches too


def test_unknown_vehicle_is_refused_before_anything_is_sent():
    fleet = vehicles(10)
    gateway = GatewayThread(fleet)
    try:
        with Jt808Sender(HOST, gateway.port, fleet) as sender:
            sender.send(random_pings(["VEH-00001"], np.random.default_rng(1)))
            before = sender.stats()
            with pytest.raises(ValueError, match=r"no terminal for vehicle ids \['VEH-GHOST'\]"):
                sender.send(random_pings(["VEH-00002", "VEH-GHOST"], np.random.default_rng(1)))
            assert sender.stats()["sent"] == before["sent"] == 1
        with Jt808Sender(HOST, gateway.port, fleet).start(["VEH-00003", "VEH-00004"]) as sender:
            assert sender.stats()["terminals"] == 2
            with pytest.raises(ValueError, match=r"VEH-00005.*not among the trucks start\(\) connected"):
                sender.send(random_pings(["VEH-00005"], np.random.default_rng(1)))
            sender.send(random_pings(["VEH-00004"], np.random.default_rng(1)))
        with pytest.raises(ValueError, match=r"not in the vehicles table: \['VEH-NOPE'\]"):
            Jt808Sender(HOST, gateway.port, fleet).start(["VEH-NOPE"])
        assert gateway.sink.wait_for(2)
        time.sleep(0.1)
        assert gateway.sink.frame()["vehicle_id"].tolist() == ["VEH-00001", "VEH-00004"]
    finally:
        gateway.stop()


def test_gateway_down_or_refusing_is_a_clear_error():
    fleet = vehicles(30)
    port = _free_port()  # nothing listens there
    with pytest.raises(GatewayUnreachable, match=rf"JT/T 808 gateway at 127\.0\.0\.1:{port} unreachable"):
        Jt808Sender(HOST, port, fleet, timeout_s=5).start()
    assert not _sender_threads()

    known = fleet.iloc[:20]  # the gateway knows only 20 trucks and refuses the others
    gateway = GatewayThread(known, register_unknown_terminals=False)
    try:
        with pytest.raises(GatewayRefused, match=r"10 of 30 terminals.*register refused with result 4"):
            Jt808Sender(HOST, gateway.port, fleet).start()
        assert not _sender_threads()
        with pytest.raises(GatewayRefused, match=r"did not accept terminal 13900000025 .*result 4"):
            Jt808Sender(HOST, gateway.port, fleet).start(["VEH-00025"])
        with pytest.raises(RuntimeError, match="start"):
            Jt808Sender(HOST, gateway.port, fleet).send(random_pings(["VEH-00001"], np.random.default_rng(1)))
    finally:
        gateway.stop()


def test_dropped_connections_are_reconnected_and_nothing_is_lost():
    fleet = vehicles(20)
    ids = fleet["id"].to_numpy(dtype=object)
    rng = np.random.default_rng(2)
    gateway = GatewayThread(fleet)
    try:
        with Jt808Sender(HOST, gateway.port, fleet) as sender:
            sender.send(random_pings(ids, rng, epoch_ms=np.full(20, BASE_MS)))
            dropped = [phone_key(p) for p in fleet["terminal_phone"].iloc[[1, 5, 6, 12, 19]]]

            def close_some() -> None:  # the gateway closes these trucks' connections
                for key in dropped:
                    gateway.gateway._by_phone[key].close("test_drop")

            gateway.on_loop(close_some)
            # sent at once: some frames may meet a connection the gateway is closing (it ignores
            # them); they are sent again after the reconnect
            sender.send(random_pings(ids, rng, epoch_ms=np.full(20, BASE_MS + 10_000)))
            sender.send(random_pings(ids, rng, epoch_ms=np.full(20, BASE_MS + 20_000)))
            stats = sender.stats()
        assert gateway.sink.wait_for(60)
        time.sleep(0.1)
    finally:
        gateway_stats = gateway.stop()
    assert stats["reconnects"] == 5 and stats["drops"] == 5 and stats["acked"] == stats["sent"] == 60
    assert gateway_stats["events"] == {"registered": 25, "authenticated": 25}
    assert gateway_stats["disconnects"] == {"test_drop": 5, "logout": 20}
    seen = gateway.sink.frame()
    assert len(seen) == 60 and not seen.duplicated(["vehicle_id", "epoch_ms"]).any()


def test_heartbeats_keep_idle_trucks_connected_and_idle_drops_are_reconnected():
    fleet = vehicles(8)
    ids = fleet["id"].to_numpy(dtype=object)
    rng = np.random.default_rng(4)
    gateway = GatewayThread(fleet, idle_timeout_s=1.0)
    try:
        with Jt808Sender(HOST, gateway.port, fleet, heartbeat_s=0.2) as sender:
            time.sleep(2.5)  # idle past the timeout, but heartbeating
            assert gateway.stats()["connections"] == 8
            sender.send(random_pings(ids, rng))
            assert sender.stats()["reconnects"] == 0 and sender.stats()["heartbeats"] >= 8
        with Jt808Sender(HOST, gateway.port, fleet, heartbeat_s=60) as sender:
            deadline = time.monotonic() + 5
            while gateway.stats()["disconnects"].get("idle_timeout", 0) < 8 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.1)
            sender.send(random_pings(ids, rng))  # every truck reconnects first
            assert sender.stats()["reconnects"] == 8 and sender.stats()["acked"] == 8
        assert gateway.sink.wait_for(16)
    finally:
        gateway_stats = gateway.stop()
    assert gateway_stats["disconnects"]["idle_timeout"] == 8


def test_pacing_keeps_fast_lockstep_under_the_gateways_flood_limit():
    fleet = vehicles(5)
    ids = fleet["id"].to_numpy(dtype=object)
    rng = np.random.default_rng(8)
    slices = [random_pings(ids, rng, epoch_ms=np.full(5, BASE_MS + k * 10_000)) for k in range(40)]
    # a strict gateway: 20 frames/s per connection with a 1 s burst
    gateway = GatewayThread(fleet, max_frames_per_s=20, flood_burst_s=1.0)
    try:
        with Jt808Sender(HOST, gateway.port, fleet, max_frames_per_s=15, burst_s=0.5) as sender:
            started = time.monotonic()
            for batch in slices:
                sender.send(batch)
            elapsed_s = time.monotonic() - started
            paced = sender.stats()
        flood_after_paced = gateway.stats()["disconnects"].get("flood", 0)
        with Jt808Sender(HOST, gateway.port, fleet, max_frames_per_s=None) as sender:  # control: unpaced
            for batch in slices:
                sender.send(batch)
            unpaced = sender.stats()
        assert gateway.sink.wait_for(2 * 200)
    finally:
        gateway_stats = gateway.stop()
    assert flood_after_paced == 0 and paced["reconnects"] == 0 and paced["acked"] == 200
    assert elapsed_s >= (40 - 7.5) / 15 * 0.9 and paced["paced_s"] > 1.5  # 7.5 frames of burst, then 15/s
    # without pacing the gateway closes connections as floods; they are reconnected and nothing is lost
    assert gateway_stats["disconnects"]["flood"] > 0 and unpaced["reconnects"] > 0
    assert unpaced["acked"] == unpaced["sent"] == 200 and gateway_stats["reports_received"] >= 400


# --- a real broker ---------------------------------------------------------------------------------------


@pytest.fixture
def mqtt_url() -> str:
    return mqtt_broker_url()


@pytest.mark.parametrize("batch_form", [True, False], ids=["batch", "single"])
def test_readings_round_trip_through_the_broker(mqtt_url, batch_form):
    prefix = f"hazmap-test/{uuid.uuid4().hex[:10]}/points"
    points = [f"MP-{i:06d}" for i in range(300)]
    rng = np.random.default_rng(9)
    batches = [ReadingBatch.from_arrays(np.array(points, dtype=object),
                                        BASE_MS + k * 60_000 + rng.integers(0, 60_000, 300),
                                        np.round(rng.normal(40, 15, 300), 4)) for k in range(3)]
    sink = Batches()
    settings = MqttFeedSettings(topic_prefix=prefix, tick_s=0.05, max_future_s=None)
    with MqttReadingFeed(mqtt_url, points, sink, settings=settings) as feed:
        assert feed.wait_ready(10)
        with MqttReadingSender(mqtt_url, topic_prefix=prefix, batch_form=batch_form, max_batch_readings=200) as sender:
            for batch in batches:
                sender.send(batch)
            stats = sender.stats()
        assert sink.wait_for(900)
        time.sleep(0.2)
        feed_stats = feed.stats()
    assert stats["readings"] == 900 and stats["messages"] == (6 if batch_form else 900) and stats["connected"]
    expected = sorted((p, t, v) for b in batches
                      for p, t, v in zip(b.point_id.tolist(), b.epoch_ms.tolist(), b.value.tolist()))
    assert sink.rows() == expected  # millisecond times and values intact
    assert feed_stats["rejected_total"] == 0 and feed_stats["readings"] == 900


def test_broker_down_is_a_clear_error():
    port = _free_port()
    with pytest.raises(ConnectionError, match=rf"MQTT broker mqtt://127\.0\.0\.1:{port} unreachable"):
        MqttReadingSender(f"mqtt://127.0.0.1:{port}", timeout_s=2).start()
    with pytest.raises(RuntimeError, match="start"):
        MqttReadingSender(f"mqtt://127.0.0.1:{port}").send(ReadingBatch.from_arrays(["MP-1"], [BASE_MS], [1.0]))
