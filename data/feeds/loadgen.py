"""A fleet of simulated JT/T 808 terminals: frame builders, a TCP client, and a load
generator that runs thousands of terminals (register, authenticate, report at a steady
rate, log out) against a gateway, in its own process when asked.

Used by the gateway tests and by bench/ingest.py; it only ever connects where it is told
(the tests and the bench point it at 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import resource
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np

from data.feeds.jt808 import (
    Authenticate,
    FrameSplitter,
    Header,
    Heartbeat,
    Jt808Error,
    LocationBatch,
    LocationReport,
    Logout,
    PlatformGeneralReply,
    Register,
    RegisterReply,
    STATUS_MASKS,
    decode_frame,
    decode_message,
    encode_message,
    encode_message_frames,
)

NINGBO_LON, NINGBO_LAT = 121.55, 29.87
PROTOCOL_VERSION_2019 = 1
_FIX_VALID = STATUS_MASKS["fix_valid"] | STATUS_MASKS["acc_on"]


def terminal_phones(count: int, first: int = 0) -> list[str]:
    """`count` distinct 11-digit terminal phones (mobile-style, 139xxxxxxxx)."""
    return [f"139{i:08d}" for i in range(first, first + count)]


def raise_open_files_limit() -> int:
    """Raise RLIMIT_NOFILE to its hard limit (thousands of sockets); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class SimTerminal:
    """Builds the frames one terminal sends, in the 2013 header (protocol_version None) or
    the 2019 one, with its own serial counter."""

    def __init__(self, phone: str, protocol_version: int | None = None, plate: str = "浙B00000") -> None:
        self.phone = phone
        self.protocol_version = protocol_version
        self.plate = plate
        self.serial = 0
        self.auth_code: str | None = None

    @property
    def is_2019(self) -> bool:
        return self.protocol_version is not None

    def _next_serial(self, count: int = 1) -> int:
        serial = self.serial
        self.serial = (serial + count) & 0xFFFF
        return serial

    def frame(self, message) -> tuple[int, bytes]:
        """(serial, frame) of one message."""
        serial = self._next_serial()
        return serial, encode_message(message, self.phone, serial, self.protocol_version)

    def register(self) -> tuple[int, bytes]:
        return self.frame(Register(33, 200, "HZMAP", "SIM-808", self.phone[-7:], 2, self.plate))

    def authenticate(self, auth_code: str | None = None) -> tuple[int, bytes]:
        code = auth_code if auth_code is not None else self.auth_code
        if code is None:
            raise ValueError(f"terminal {self.phone} has no auth code: register first")
        if self.is_2019:
            return self.frame(Authenticate(code, "860000000000000", "SIM-1.0"))
        return self.frame(Authenticate(code))

    def heartbeat(self) -> tuple[int, bytes]:
        return self.frame(Heartbeat())

    def logout(self) -> tuple[int, bytes]:
        return self.frame(Logout())

    def report(self, report: LocationReport) -> tuple[int, bytes]:
        return self.frame(report)

    def batch(self, reports, max_body_bytes: int = 1023, batch_type: int = 0) -> list[tuple[int, bytes]]:
        """A 0x0704 batch, sub-packeted when its body exceeds max_body_bytes: (serial, frame) per packet."""
        message = LocationBatch(batch_type, tuple(reports))
        body_len = len(message.encode_body(self.is_2019))
        count = max(1, -(-body_len // max_body_bytes))
        first = self._next_serial(count)
        frames = encode_message_frames(message, self.phone, first, self.protocol_version, max_body_bytes)
        return [((first + i) & 0xFFFF, f) for i, f in enumerate(frames)]


def make_report(when: datetime, lon: float, lat: float, speed_kmh: float = 40.0, direction: int = 90,
                alarm: int = 0) -> LocationReport:
    """A 0x0200 report with a valid fix at `when` (whole seconds)."""
    return LocationReport(alarm, _FIX_VALID, round(lat, 6), round(lon, 6), 5, round(speed_kmh, 1), direction % 360,
                          when.replace(microsecond=0))


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, on_message) -> None:
        self.splitter = FrameSplitter()
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.bad_frames = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        for frame in self.splitter.feed(data):
            try:
                packet = decode_frame(frame)
                self.on_message(packet.header, decode_message(packet), now)
            except Jt808Error:
                self.bad_frames += 1

    def connection_lost(self, exc) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)


class TerminalClient:
    """One TCP connection to a gateway, as a terminal: send raw bytes or frames, receive the
    platform's decoded messages in order.

        client = await TerminalClient.connect("127.0.0.1", port)
        await client.send(frame); header, message = await client.receive()
    """

    def __init__(self) -> None:
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.protocol: _ClientProtocol | None = None

    @classmethod
    async def connect(cls, host: str, port: int, timeout_s: float = 10.0) -> "TerminalClient":
        client = cls()
        loop = asyncio.get_running_loop()
        _, client.protocol = await asyncio.wait_for(
            loop.create_connection(lambda: _ClientProtocol(client._on_message), host, port), timeout_s
        )
        return client

    def _on_message(self, header: Header, message, received: float) -> None:
        self.inbox.put_nowait((header, message))

    @property
    def is_closed(self) -> bool:
        return self.protocol is None or self.protocol.closed.done()

    def send(self, *frames: bytes) -> None:
        assert self.protocol is not None and self.protocol.transport is not None
        self.protocol.transport.write(b"".join(frames))

    async def receive(self, timeout_s: float = 5.0) -> tuple[Header, object]:
        return await asyncio.wait_for(self.inbox.get(), timeout_s)

    async def exchange(self, frame: bytes, timeout_s: float = 5.0) -> tuple[Header, object]:
        self.send(frame)
        return await self.receive(timeout_s)

    async def wait_closed(self, timeout_s: float = 5.0) -> None:
        assert self.protocol is not None
        await asyncio.wait_for(asyncio.shield(self.protocol.closed), timeout_s)

    def close(self) -> None:
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.close()


async def register_and_authenticate(client: TerminalClient, terminal: SimTerminal, timeout_s: float = 10.0) -> str:
    """Run the session opening; returns the auth code. Raises RuntimeError on a refusal."""
    serial, frame = terminal.register()
    header, reply = await client.exchange(frame, timeout_s)
    if not isinstance(reply, RegisterReply) or reply.reply_serial != serial or reply.result != 0:
        raise RuntimeError(f"terminal {terminal.phone}: register refused: {reply}")
    terminal.auth_code = reply.auth_code
    serial, frame = terminal.authenticate()
    header, reply = await client.exchange(frame, timeout_s)
    if not (isinstance(reply, PlatformGeneralReply) and reply.reply_serial == serial and reply.result == 0):
        raise RuntimeError(f"terminal {terminal.phone}: authentication refused: {reply}")
    return terminal.auth_code


# --- the load generator ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadConfig:
    """A fleet run: `len(phones)` terminals together sending `reports_per_s` for `duration_s`."""

    host: str
    port: int
    phones: tuple[str, ...]
    reports_per_s: float
    duration_s: float
    fraction_2019: float = 0.5  # terminals speaking the 2019 header
    batch_fraction: float = 0.05  # sends that are a 0x0704 of `batch_size` reports instead of one 0x0200
    batch_size: int = 5
    connect_concurrency: int = 200
    connect_timeout_s: float = 30.0
    reply_timeout_s: float = 30.0  # waiting for the register/auth replies and the final acks
    seed: int = 808


@dataclass
class LoadResult:
    terminals: int = 0
    connected: int = 0
    authenticated: int = 0
    failed: int = 0
    sent_reports: int = 0
    sent_frames: int = 0
    acked_reports: int = 0  # reports whose message got 0x8001 result 0
    refused_messages: int = 0  # 0x8001 with a result other than 0
    rtt_p50_ms: float | None = None  # report sent -> 0x8001 received, at the terminal
    rtt_p99_ms: float | None = None
    send_started_at: float = 0.0  # wall clock (time.time) of the first and last report sent
    send_ended_at: float = 0.0
    connect_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class _Fleet:
    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.result = LoadResult(terminals=len(config.phones))
        self.rtts: list[float] = []
        self.start_sending = asyncio.Event()
        self.stop_at = 0.0

    async def run(self) -> LoadResult:
        config, result = self.config, self.result
        rng = random.Random(config.seed)
        gate = asyncio.Semaphore(config.connect_concurrency)
        terminals = [
            SimTerminal(phone, PROTOCOL_VERSION_2019 if rng.random() < config.fraction_2019 else None)
            for phone in config.phones
        ]
        started = time.monotonic()
        tasks = [asyncio.create_task(self._terminal(t, gate, random.Random(rng.random()))) for t in terminals]
        # Everyone sends once all are connected (or have failed), so the rate is the fleet's.
        deadline = started + config.connect_timeout_s
        while result.connected + result.failed < len(terminals) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        result.connect_s = time.monotonic() - started
        self.stop_at = time.monotonic() + config.duration_s
        result.send_started_at = time.time()
        self.start_sending.set()
        await asyncio.gather(*tasks)
        if self.rtts:
            p50, p99 = np.percentile(np.asarray(self.rtts), [50, 99])
            result.rtt_p50_ms, result.rtt_p99_ms = round(float(p50) * 1000, 3), round(float(p99) * 1000, 3)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result.cpu_s = round(usage.ru_utime + usage.ru_stime, 3)
        result.peak_rss_mb = round(usage.ru_maxrss / 1024, 1)
        return result

    def _error(self, text: str) -> None:
        if len(self.result.errors) < 20:
            self.result.errors.append(text)

    async def _terminal(self, terminal: SimTerminal, gate: asyncio.Semaphore, rng: random.Random) -> None:
        config, result = self.config, self.result
        client: TerminalClient | None = None
        try:
            async with gate:
                client = await TerminalClient.connect(config.host, config.port, config.connect_timeout_s)
                await register_and_authenticate(client, terminal, config.reply_timeout_s)
            result.connected += 1
            result.authenticated += 1
        except Exception as exc:  # counted; the fleet goes on
            result.failed += 1
            self._error(f"{terminal.phone}: {type(exc).__name__}: {exc}")
            if client is not None:
                client.close()
            return
        sent_at: dict[int, tuple[float, int]] = {}  # serial -> (sent, reports in the message)
        outstanding = [0]
        all_acked = asyncio.Event()
        all_acked.set()

        def on_message(header, message, received: float) -> None:
            if not isinstance(message, PlatformGeneralReply):
                return
            entry = sent_at.pop(message.reply_serial, None)
            if entry is None:
                return
            sent, n = entry
            if message.result == 0:
                result.acked_reports += n
                if n:
                    self.rtts.append(received - sent)
            else:
                result.refused_messages += 1
            outstanding[0] -= 1
            if outstanding[0] == 0:
                all_acked.set()

        client.protocol.on_message = on_message  # from here on replies are counted, not queued
        per_terminal_rate = config.reports_per_s / len(config.phones)
        mean_reports = 1 + config.batch_fraction * (config.batch_size - 1)
        interval = mean_reports / per_terminal_rate
        lon = NINGBO_LON + rng.uniform(-0.3, 0.3)
        lat = NINGBO_LAT + rng.uniform(-0.2, 0.2)
        await self.start_sending.wait()
        next_at = time.monotonic() + rng.uniform(0, interval)
        try:
            while True:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.monotonic() >= self.stop_at or client.is_closed:
                    break
                now = datetime.now(timezone.utc)
                lon += rng.uniform(-0.0005, 0.0005)
                lat += rng.uniform(-0.0005, 0.0005)
                if rng.random() < config.batch_fraction:
                    reports = [make_report(now, lon, lat, rng.uniform(0, 80), rng.randrange(360))
                               for _ in range(config.batch_size)]
                    frames = terminal.batch(reports)
                    for serial, _ in frames:
                        sent_at[serial] = (time.monotonic(), 0)
                    sent_at[frames[-1][0]] = (time.monotonic(), len(reports))
                    client.send(*(f for _, f in frames))
                    result.sent_frames += len(frames)
                    outstanding[0] += len(frames)
                    result.sent_reports += len(reports)
                else:
                    serial, frame = terminal.report(make_report(now, lon, lat, rng.uniform(0, 80), rng.randrange(360)))
                    sent_at[serial] = (time.monotonic(), 1)
                    client.send(frame)
                    result.sent_frames += 1
                    outstanding[0] += 1
                    result.sent_reports += 1
                all_acked.clear()
                result.send_ended_at = time.time()
                next_at += interval
            if outstanding[0]:
                await asyncio.wait_for(all_acked.wait(), config.reply_timeout_s)
            _, frame = terminal.logout()
            client.send(frame)
            await client.wait_closed(config.reply_timeout_s)
        except Exception as exc:
            self._error(f"{terminal.phone}: {type(exc).__name__}: {exc}")
        finally:
            client.close()


async def run_fleet(config: LoadConfig) -> LoadResult:
    """Run the fleet in this process's event loop."""
    return await _Fleet(config).run()


def _fleet_process(config: LoadConfig, out) -> None:
    raise_open_files_limit()
    try:
        out.send(asyncio.run(run_fleet(config)).as_dict())
    except BaseException as exc:  # the parent reads the error instead of waiting forever
        out.send({"errors": [f"{type(exc).__name__}: {exc}"], "crashed": True})
        raise
    finally:
        out.close()


class FleetProcess:
    """The fleet in a separate process (spawned, so it shares no state or GIL with the gateway)."""

    def __init__(self, config: LoadConfig) -> None:
        context = multiprocessing.get_context("spawn")
        self._receive, send = context.Pipe(duplex=False)
        self.process = context.Process(target=_fleet_process, args=(config, send), name="jt808-fleet", daemon=True)
        self.process.start()
        send.close()

    def result(self, timeout_s: float) -> dict:
        """Wait for the fleet's LoadResult (as a dict); raises TimeoutError if it does not come."""
        deadline = time.monotonic() + timeout_s
        while not self._receive.poll(0.2):
            if not self.process.is_alive() and not self._receive.poll(0.2):
                raise RuntimeError(f"the load generator process died (exit code {self.process.exitcode})")
            if time.monotonic() > deadline:
                self.process.kill()
                raise TimeoutError(f"the load generator did not finish within {timeout_s} s")
        out = self._receive.recv()
        self.process.join(10)
        return out

    async def result_async(self, timeout_s: float) -> dict:
        return await asyncio.to_thread(self.result, timeout_s)
