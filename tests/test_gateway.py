"""JT/T 808 gateway over real TCP on loopback: a fleet's sessions and reports landing in a
real store (both backends), hostile clients counted while a good one keeps being served, a
slow store that never delays replies, platform messages to a terminal, the stats endpoint,
and a short run of the ingest bench (its load generator in its own process)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from data.feeds.gateway import (
    RESULT_FAILED,
    RESULT_MESSAGE_ERROR,
    RESULT_OK,
    RESULT_UNSUPPORTED,
    GatewaySettings,
    Jt808Gateway,
    fetch_stats,
    format_stats,
    readable_header,
    vehicle_ids_by_phone,
)
from data.feeds.jt808 import (
    Header,
    ManualAlarmConfirm,
    PlatformGeneralReply,
    RegisterReply,
    TerminalGeneralReply,
    TextMessage,
    close_frame,
    encode_frame,
    phone_key,
)
from data.feeds.loadgen import (
    PROTOCOL_VERSION_2019,
    SimTerminal,
    TerminalClient,
    make_report,
    register_and_authenticate,
    terminal_phones,
)

HOST = "127.0.0.1"
BASE_TIME = datetime(2024, 5, 1, 8, 0, 0, tzinfo=timezone.utc)


def _settings(**overrides) -> GatewaySettings:
    return GatewaySettings(**{"host": HOST, "port": 0, "stats_port": None, "batch_interval_s": 0.05, **overrides})


class _Collector:
    """on_pings sink that keeps every batch (called from the gateway's worker thread)."""

    def __init__(self) -> None:
        self.batches = []

    def __call__(self, batch) -> None:
        self.batches.append(batch)

    def frame(self) -> pd.DataFrame:
        return pd.concat([b.to_frame() for b in self.batches], ignore_index=True)


def _check_reply(reply, serial: int, message_id: int, result: int = RESULT_OK) -> None:
    header, message = reply
    assert isinstance(message, PlatformGeneralReply), message
    assert (message.reply_serial, message.reply_message_id, message.result) == (serial, message_id, result)


# --- a fleet of terminals into a real store ------------------------------------------------------------


async def _terminal_session(port: int, index: int, phone: str, gateway: Jt808Gateway, expected: list) -> None:
    version = PROTOCOL_VERSION_2019 if index % 2 else None
    terminal = SimTerminal(phone, version)
    client = await TerminalClient.connect(HOST, port)
    try:
        serial, frame = terminal.register()
        header, reply = await client.exchange(frame)
        assert isinstance(reply, RegisterReply) and reply.reply_serial == serial and reply.result == 0
        assert reply.auth_code == gateway.auth_code(phone_key(phone))
        assert header.phone.lstrip("0") == phone and header.is_2019 == (version is not None)
        terminal.auth_code = reply.auth_code
        serial, frame = terminal.authenticate()
        _check_reply(await client.exchange(frame), serial, 0x0102)

        lon, lat = 121.4 + index * 1e-3, 29.8 + index * 1e-4
        single = make_report(BASE_TIME + timedelta(seconds=index), lon, lat, 42.5, index)
        serial, frame = terminal.report(single)
        _check_reply(await client.exchange(frame), serial, 0x0200)
        expected.append((phone, single))

        batch = [make_report(BASE_TIME + timedelta(seconds=index, minutes=k + 1), lon + k * 1e-3, lat, 10.0 * k, 7)
                 for k in range(4)]
        # every third terminal sends its batch in sub-packets of 60 bytes of body
        frames = terminal.batch(batch, max_body_bytes=60 if index % 3 == 0 else 1023)
        assert (len(frames) > 1) == (index % 3 == 0)
        client.send(*(f for _, f in frames))
        for serial, _ in frames:  # one 0x8001 per packet, in order
            _check_reply(await client.receive(), serial, 0x0704)
        expected.extend((phone, r) for r in batch)

        serial, frame = terminal.heartbeat()
        _check_reply(await client.exchange(frame), serial, 0x0002)
        serial, frame = terminal.logout()
        _check_reply(await client.exchange(frame), serial, 0x0003)
        await client.wait_closed()
    finally:
        client.close()


@pytest.mark.parametrize("connections", [200])
def test_fleet_of_terminals_lands_in_the_store(store, connections):
    phones = terminal_phones(connections)
    unknown = set(phones[-10:])  # not in the vehicles table: kept, flagged
    mapping = {p: f"VEH-{i:05d}" for i, p in enumerate(phones) if p not in unknown}
    sink = _Collector()
    expected: list = []

    async def run():
        gateway = Jt808Gateway(mapping, sink, store, _settings())
        await gateway.start()
        try:
            await asyncio.gather(*(_terminal_session(gateway.port, i, p, gateway, expected)
                                   for i, p in enumerate(phones)))
            peak = gateway.stats()
        finally:
            await gateway.stop()
        return peak, gateway.stats()

    started_ms = time.time() * 1000
    peak, stats = asyncio.run(run())
    ended_ms = time.time() * 1000
    assert stats["events"] == {"registered": connections, "authenticated": connections}
    # every report carries its arrival on the wall clock's axis (the offline rule judges by it)
    arrival = np.concatenate([b.arrival_ms for b in sink.batches])
    assert len(arrival) == len(expected) and started_ms - 50 <= arrival.min() and arrival.max() <= ended_ms + 50
    assert stats["reports_received"] == len(expected) == 5 * connections
    assert stats["unregistered_reports"] == 5 * len(unknown) and stats["unregistered_terminals"] == len(unknown)
    assert stats["unauthenticated_reports"] == 0
    assert stats["rejected"] == {} and stats["dropped_reports"] == 0
    assert stats["disconnects"] == {"logout": connections} and stats["connections"] == 0
    assert stats["sinks"]["store"]["delivered_reports"] == len(expected)
    assert stats["latency_samples"] == len(expected) and stats["latency_p99_ms"] < 5000

    want = pd.DataFrame({
        "vehicle_id": [mapping.get(p, f"UNREG-{phone_key(p)}") for p, _ in expected],
        "epoch_ms": [int(r.time.timestamp() * 1000) for _, r in expected],
        "lon": [r.lon for _, r in expected],
        "lat": [r.lat for _, r in expected],
        "speed_kmh": [r.speed_kmh for _, r in expected],
    }).sort_values(["epoch_ms", "vehicle_id"], ignore_index=True)
    stored = store.read_pings(BASE_TIME, BASE_TIME + timedelta(days=1))
    assert len(stored) == len(want)
    stored = stored.sort_values(["epoch_ms", "vehicle_id"], ignore_index=True)
    pd.testing.assert_frame_equal(stored[want.columns], want, check_dtype=False, atol=1e-6)
    live = sink.frame().sort_values(["epoch_ms", "vehicle_id"], ignore_index=True)
    pd.testing.assert_frame_equal(live[want.columns], want, check_dtype=False, atol=1e-6)


# --- hostile clients -----------------------------------------------------------------------------------


async def _good_client(port: int, stop: asyncio.Event, gaps: list[float]) -> int:
    """Reports every 100 ms (within the flood limit) and checks every reply; returns how many it got."""
    terminal = SimTerminal("13800000001", PROTOCOL_VERSION_2019)
    client = await TerminalClient.connect(HOST, port)
    await register_and_authenticate(client, terminal)
    served = 0
    while not stop.is_set():
        serial, frame = terminal.report(make_report(datetime.now(timezone.utc), 121.5, 29.9))
        sent = time.monotonic()
        _check_reply(await client.exchange(frame, timeout_s=2.0), serial, 0x0200)
        gaps.append(time.monotonic() - sent)
        served += 1
        await asyncio.sleep(0.1)
    client.close()
    return served


def _frame(message_id: int, body: bytes, phone: str = "13900000099", serial: int = 5) -> bytes:
    return encode_frame(Header(message_id, phone, serial), body)


def test_hostile_clients_are_counted_while_a_good_client_is_served():
    settings = _settings(idle_timeout_s=0.6, max_frames_per_s=20, flood_burst_s=1.0, max_bytes_per_s=50_000)

    async def run():
        gateway = Jt808Gateway({"13800000001": "VEH-00001"}, _Collector(), None, settings)
        await gateway.start()
        port = gateway.port
        stop, gaps = asyncio.Event(), []
        good = asyncio.create_task(_good_client(port, stop, gaps))
        await asyncio.sleep(0.1)
        replies = {}
        try:
            # garbage before any delimiter, then a segment with a wrong checksum, then a bad escape
            garbage = await TerminalClient.connect(HOST, port)
            good_frame = _frame(0x0002, b"")
            bad_checksum = good_frame[:-2] + bytes([good_frame[-2] ^ 0xFF]) + b"\x7e"
            garbage.send(b"GET / HTTP/1.1\r\n\r\n" + bad_checksum + b"\x7e\x00\x02\x7d\x05\x00\x7e")
            # a well-framed message whose body length disagrees with its attributes: answered result 2
            wrong_length = bytearray(close_frame(bytes.fromhex("0200 0010 139000000099 0007") + b"\x00" * 4))
            garbage.send(bytes(wrong_length))
            replies["wrong_length"] = await garbage.receive()
            # a message id nobody decodes: answered result 3
            garbage.send(_frame(0x0900, b"\x01\x02", serial=8))
            replies["unknown"] = await garbage.receive()
            # a location report with a latitude of 95 degrees: answered result 2
            bad_position = bytearray(make_report(BASE_TIME, 121.5, 29.9).encode_body())
            bad_position[8:12] = (95_000_000).to_bytes(4, "big")
            garbage.send(_frame(0x0200, bytes(bad_position), serial=9))
            replies["bad_position"] = await garbage.receive()

            oversize = await TerminalClient.connect(HOST, port)
            oversize.send(b"\x7e" + b"\x01" * 5000 + b"\x7e")  # longer than any legal frame

            half = await TerminalClient.connect(HOST, port)
            half.send(good_frame[: len(good_frame) // 2])  # then silence: the idle timeout closes it

            flood = await TerminalClient.connect(HOST, port)
            flood.send(*[SimTerminal("13900000077").heartbeat()[1] for _ in range(400)])

            silent = await TerminalClient.connect(HOST, port)
            for client in (half, flood, silent):
                await client.wait_closed(timeout_s=3.0)
            await asyncio.sleep(0.2)
            stop.set()
            served = await good
            return gateway.stats(), replies, served, gaps
        finally:
            stop.set()
            await gateway.stop()

    stats, replies, served, gaps = asyncio.run(run())
    _check_reply(replies["wrong_length"], 7, 0x0200, RESULT_MESSAGE_ERROR)
    _check_reply(replies["unknown"], 8, 0x0900, RESULT_UNSUPPORTED)
    _check_reply(replies["bad_position"], 9, 0x0200, RESULT_MESSAGE_ERROR)
    rejected, disconnects = stats["rejected"], stats["disconnects"]
    for reason in ("bad_checksum", "bad_escape", "bad_length", "unknown_message", "bad_position", "oversize",
                   "truncated", "flood"):
        assert rejected.get(reason, 0) >= 1, (reason, rejected)
    assert disconnects.get("idle_timeout", 0) >= 2 and disconnects.get("flood", 0) == 1, disconnects
    # the good client was served all along, promptly
    assert served >= 8 and max(gaps) < 1.0, (served, max(gaps))
    assert stats["reports_received"] == served


def test_connection_limit_and_bad_frame_limit():
    async def run():
        gateway = Jt808Gateway({}, None, None, _settings(max_connections=2, max_bad_frames_per_connection=5))
        await gateway.start()
        try:
            first = await TerminalClient.connect(HOST, gateway.port)
            second = await TerminalClient.connect(HOST, gateway.port)
            third = await TerminalClient.connect(HOST, gateway.port)
            await third.wait_closed()
            first.send(b"\x7e\x01\x02\x03\x7e" * 6)  # six segments too short to be frames
            await first.wait_closed()
            second.send(SimTerminal("13900000001").heartbeat()[1])
            _check_reply(await second.receive(), 0, 0x0002)
            return gateway.stats()
        finally:
            await gateway.stop()

    stats = asyncio.run(run())
    assert stats["disconnects"]["connection_limit"] == 1
    assert stats["disconnects"]["bad_frames"] == 1
    assert stats["rejected"]["truncated"] == 6


# --- session policy -----------------------------------------------------------------------------------------


def test_reports_before_authentication_and_unknown_terminal_policies():
    async def run(settings):
        gateway = Jt808Gateway({"13900000001": "VEH-1"}, _Collector(), None, settings)
        await gateway.start()
        try:
            client = await TerminalClient.connect(HOST, gateway.port)
            known = SimTerminal("13900000001")
            serial, frame = known.report(make_report(BASE_TIME, 121.5, 29.9))
            report_reply = await client.exchange(frame)
            serial_bad, frame = known.authenticate("WRONG")
            auth_reply = await client.exchange(frame)
            unknown = SimTerminal("13900000002")
            register_reply = await client.exchange(unknown.register()[1])
            return gateway.stats(), (serial, report_reply), (serial_bad, auth_reply), register_reply
        finally:
            await gateway.stop()

    # default: keep the data and count it; a wrong auth code is refused; unknown terminals get a code
    stats, (serial, reply), (serial_bad, auth), (_, registered) = asyncio.run(run(_settings()))
    _check_reply(reply, serial, 0x0200, RESULT_OK)
    _check_reply(auth, serial_bad, 0x0102, RESULT_FAILED)
    assert registered.result == 0 and registered.auth_code
    assert stats["unauthenticated_reports"] == 1 and stats["reports_received"] == 1
    assert stats["rejected"] == {"bad_auth_code": 1}

    strict = _settings(accept_unauthenticated_reports=False, register_unknown_terminals=False)
    stats, (serial, reply), _, (_, registered) = asyncio.run(run(strict))
    _check_reply(reply, serial, 0x0200, RESULT_FAILED)
    assert registered.result == 4 and registered.auth_code is None
    assert stats["reports_received"] == 0 and stats["rejected"]["unauthenticated"] == 1


# --- slow sinks -------------------------------------------------------------------------------------------------


class _SlowStore:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.written = 0

    def write_pings(self, batch) -> int:
        time.sleep(self.delay_s)
        self.written += len(batch)
        return len(batch)


def test_a_slow_store_never_delays_replies_and_overflow_is_counted():
    store = _SlowStore(1.0)
    sink = _Collector()
    settings = _settings(store_queue_max_reports=40, batch_interval_s=0.02, store_interval_s=0)

    async def run():
        gateway = Jt808Gateway({"13900000001": "VEH-1"}, sink, store, settings)
        await gateway.start()
        try:
            terminal = SimTerminal("13900000001")
            client = await TerminalClient.connect(HOST, gateway.port)
            await register_and_authenticate(client, terminal)
            gaps = []
            for i in range(150):
                serial, frame = terminal.report(make_report(BASE_TIME + timedelta(seconds=i), 121.5, 29.9))
                sent = time.monotonic()
                _check_reply(await client.exchange(frame), serial, 0x0200)
                gaps.append(time.monotonic() - sent)
                await asyncio.sleep(0.005)
            during = gateway.stats()
        finally:
            await gateway.stop(drain_timeout_s=10)
        return gaps, during, gateway.stats()

    gaps, during, after = asyncio.run(run())
    assert max(gaps) < 0.5, max(gaps)  # the store sleeps a second per write; replies do not wait for it
    store_stats = after["sinks"]["store"]
    assert during["dropped_reports"] > 0 and store_stats["dropped_reports"] == after["dropped_reports"]
    assert store_stats["delivered_reports"] == store.written
    assert store_stats["delivered_reports"] + store_stats["dropped_reports"] == 150
    assert after["sinks"]["live"]["delivered_reports"] == 150 == sum(len(b) for b in sink.batches)


def test_failing_store_is_retried_then_counted():
    class Flaky:
        calls = 0

        def write_pings(self, batch):
            Flaky.calls += 1
            if Flaky.calls <= 2:
                raise ConnectionError("database restarting")
            return len(batch)

    async def run():
        settings = _settings(store_retry_s=0.05, store_max_attempts=3, store_interval_s=0)
        gateway = Jt808Gateway({}, None, Flaky(), settings)
        await gateway.start()
        try:
            terminal = SimTerminal("13900000005")
            client = await TerminalClient.connect(HOST, gateway.port)
            serial, frame = terminal.report(make_report(BASE_TIME, 121.5, 29.9))
            _check_reply(await client.exchange(frame), serial, 0x0200)
            await asyncio.sleep(0.5)
            return gateway.stats()
        finally:
            await gateway.stop()

    stats = asyncio.run(run())["sinks"]["store"]
    assert stats["errors"] == 2 and stats["delivered_reports"] == 1 and stats["failed_reports"] == 0
    assert "database restarting" in stats["last_error"]


# --- platform -> terminal, stats ------------------------------------------------------------------------------------


def test_text_and_alarm_confirmation_reach_the_terminal():
    async def run():
        gateway = Jt808Gateway({"13900000001": "VEH-1"}, None, None, _settings())
        await gateway.start()
        try:
            terminal = SimTerminal("13900000001", PROTOCOL_VERSION_2019)
            client = await TerminalClient.connect(HOST, gateway.port)
            await register_and_authenticate(client, terminal)
            assert gateway.connected_phones() == ["13900000001"]

            async def answer(result: int):
                header, message = await client.receive()
                client.send(terminal.frame(TerminalGeneralReply(header.serial, header.message_id, result))[1])
                return header, message

            text_task = asyncio.create_task(gateway.send_text("013900000001", "前方学校，请减速"))
            header, text = await answer(0)
            assert isinstance(text, TextMessage) and text.text == "前方学校，请减速" and text.text_type == 1
            assert header.is_2019 and header.phone.lstrip("0") == "13900000001"
            assert await text_task == 0
            alarm_task = asyncio.create_task(gateway.confirm_alarm("13900000001", 1, reply_serial=3))
            _, confirm = await answer(0)
            assert confirm == ManualAlarmConfirm(3, 1)
            assert await alarm_task == 0
            with pytest.raises(LookupError):
                await gateway.send_text("13900000999", "nobody")
        finally:
            await gateway.stop()

    asyncio.run(run())


def test_stats_are_served_over_http():
    async def run():
        gateway = Jt808Gateway({}, None, None, _settings(stats_port=0))
        await gateway.start()
        try:
            client = await TerminalClient.connect(HOST, gateway.port)
            client.send(b"\x7e\x01\x02\x03\x7e")
            await asyncio.sleep(0.1)
            return await asyncio.to_thread(fetch_stats, HOST, gateway.stats_port)
        finally:
            await gateway.stop()

    stats = asyncio.run(run())
    assert stats["connections"] == 1 and stats["rejected"] == {"truncated": 1}
    for key in ("reports_per_s", "queue_reports", "dropped_reports", "newest_report_age_s", "latency_p99_ms"):
        assert key in stats
    lines = format_stats(stats).splitlines()
    assert "rejected.truncated=1" in lines and "connections=1" in lines


def test_readable_header_and_vehicle_mapping():
    frame = close_frame(bytes.fromhex("0200 4010 01 00000000013900000001 0007") + b"\x00" * 3)
    header = readable_header(frame)
    assert (header.message_id, header.phone, header.serial, header.protocol_version) == (
        0x0200, "00000000013900000001", 7, 1)
    assert readable_header(close_frame(bytes.fromhex("0200 0000 AB0000000000 0007"))) is None  # phone not BCD
    vehicles = pd.DataFrame({"id": ["VEH-1", "VEH-2"], "terminal_phone": ["013900000001", "13900000002"]})
    assert vehicle_ids_by_phone(vehicles) == {"13900000001": "VEH-1", "13900000002": "VEH-2"}
    with pytest.raises(ValueError, match="shared by several vehicles"):
        vehicle_ids_by_phone(pd.DataFrame({"id": ["VEH-1", "VEH-2"], "terminal_phone": ["139", "0139"]}))
    with pytest.raises(ValueError, match="idle_timeout_s"):
        GatewaySettings(idle_timeout_s=0)


# --- the bench, briefly -----------------------------------------------------------------------------------------


def test_ingest_bench_short_run():
    from bench.ingest import run_ingest_bench

    lines: list[str] = []
    figures = run_ingest_bench(connections=50, reports_per_s=250, duration_s=3, print_fn=lines.append)
    assert figures["connections"] == 50 and figures["connect_failures"] == 0
    assert figures["received_reports"] == figures["sent_reports"] == figures["stored_reports"] > 500
    assert figures["dropped"] == 0 and figures["vehicles_in_live_state"] == 50
    assert figures["lost_in_transit"] == 0
    assert 150 < figures["reports_per_s"] < 350
    assert figures["p50_ms"] <= figures["p99_ms"] < 1000
    names = [line.split("=")[0] for line in lines]
    for name in ("reports_per_s", "p50_ms", "p99_ms", "dropped", "peak_rss_mb", "decode_only_reports_per_s", "ratio"):
        assert name in names


# --- the server entry point (`hazmap jt808 serve`) ----------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def test_ingest_bench_counts_reports_sent_but_never_received_as_dropped():
    from bench.ingest import dropped_reports

    stats = {"reports_received": 990, "dropped_reports": 3,
             "sinks": {"store": {"failed_reports": 2}, "live": {"failed_reports": 1}}}
    assert dropped_reports({"sent_reports": 1000}, stats) == (10 + 3 + 2 + 1, 10)
    assert dropped_reports({"sent_reports": 990}, stats) == (6, 0)


def test_run_gateway_binds_the_vehicles_table_and_stops_on_sigterm(tmp_path):
    import signal
    import subprocess
    import sys

    from data.demo import build_world
    from data.store import Store

    url = f"sqlite:///{tmp_path / 'hazmap.sqlite'}"
    world = build_world(7, 0.02)
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
    phone, vehicle_id = world.vehicles["terminal_phone"].iloc[0], world.vehicles["id"].iloc[0]
    port, stats_port = _free_port(), _free_port()
    code = (f"from data.feeds.gateway import run_gateway, GatewaySettings\n"
            f"run_gateway({url!r}, GatewaySettings(host={HOST!r}, port={port}, stats_port={stats_port}))")
    server = subprocess.Popen([sys.executable, "-c", code])
    try:
        async def talk():
            for _ in range(100):  # until it listens
                try:
                    client = await TerminalClient.connect(HOST, port)
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            terminal = SimTerminal(phone)
            await register_and_authenticate(client, terminal)
            serial, frame = terminal.report(make_report(BASE_TIME, 121.5, 29.9))
            _check_reply(await client.exchange(frame), serial, 0x0200)
            return await asyncio.to_thread(fetch_stats, HOST, stats_port)

        stats = asyncio.run(talk())
        assert stats["authenticated_terminals"] == 1 and stats["unregistered_reports"] == 0
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        server.kill()
    with Store.open(url) as store:
        pings = store.read_pings(BASE_TIME, BASE_TIME + timedelta(seconds=1))
    assert pings["vehicle_id"].tolist() == [vehicle_id]  # written on the way out (store_interval_s not waited)
