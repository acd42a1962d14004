"""The JT/T 808 gateway: an asyncio TCP server for BeiDou terminals that turns their
location reports into PingBatches for the live state and the store, and serves its feed
health as JSON over HTTP."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import json
import logging
import secrets
import signal
import time
import urllib.request
from collections import Counter
from datetime import datetime, timezone
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from data.feeds.gateway.health import LatencyRing, SlidingRate
from data.feeds.gateway.session import TerminalSession
from data.feeds.gateway.settings import GatewaySettings
from data.feeds.gateway.sinks import BatchPipe
from data.feeds.jt808 import ManualAlarmConfirm, TextMessage, phone_key, reports_to_batch
from spatial.model import PingBatch

log = logging.getLogger(__name__)

UNREGISTERED_PREFIX = "UNREG-"
# 0x8300 flags: bit 2 show on the display, bit 3 read aloud by TTS.
TEXT_DISPLAY_TTS = 0b1100


def vehicle_ids_by_phone(vehicles: pd.DataFrame) -> dict[str, str]:
    """The vehicles table (LAYER_SPECS "vehicles": id, terminal_phone) -> phone -> vehicle id,
    keyed by `phone_key` so 12- and 20-digit forms of a phone match."""
    if not len(vehicles):
        return {}
    phones = vehicles["terminal_phone"].astype("str").str.strip().str.lstrip("0").replace("", "0")
    mapping = dict(zip(phones, vehicles["id"].astype("str"), strict=True))
    if len(mapping) != len(vehicles):
        duplicated = phones[phones.duplicated()].unique()[:5].tolist()
        raise ValueError(f"vehicles: terminal phones shared by several vehicles: {duplicated}")
    return mapping


class Jt808Gateway:
    """The gateway. `vehicle_by_phone` binds terminal phones to vehicle ids (the vehicles
    table's terminal_phone -> id); `on_pings(batch)` receives every PingBatch (one batch at a
    time, in arrival order, on the event loop unless settings.live_sink_in_thread) and
    `store.write_pings(batch)` persists them (in a worker thread). Either may be None.

        async with Jt808Gateway(mapping, on_pings, store, GatewaySettings(port=7808)) as gateway:
            await gateway.serve_forever()
    """

    def __init__(
        self,
        vehicle_by_phone: Mapping[str, str],
        on_pings: Callable[[PingBatch], object] | None = None,
        store=None,
        settings: GatewaySettings | None = None,
    ) -> None:
        self.settings = settings = settings if settings is not None else GatewaySettings()
        self.vehicle_by_phone = {phone_key(str(p)): str(v) for p, v in vehicle_by_phone.items()}
        self.on_pings = on_pings
        self.store = store
        secret = settings.auth_secret.encode() if settings.auth_secret else secrets.token_bytes(32)
        self._auth_key = secret
        self.sessions: set[TerminalSession] = set()
        self._by_phone: dict[str, TerminalSession] = {}  # authenticated terminals by phone_key
        self.port: int | None = None
        self.stats_port: int | None = None
        self._server: asyncio.Server | None = None
        self._stats_server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task] = []
        self._started_at = time.monotonic()
        # pending reports of the current tick
        self._pending_ids: list[str] = []
        self._pending_reports: list = []
        self._pending_received: list[float] = []
        # arrival stamps are monotonic receive times on the wall clock's axis, fixed at start, so a
        # wall-clock step (NTP) never makes a later report look earlier
        self._wall_minus_monotonic_s = time.time() - time.monotonic()
        self._flush_now = asyncio.Event()
        # counters
        self.latencies = LatencyRing(settings.latency_samples)
        self._rate = SlidingRate(settings.rate_window_s)
        self.rejected: Counter[str] = Counter()
        self.disconnects: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.connections_total = 0
        self.bytes_received = 0
        self.frames_received = 0
        self.replies_sent = 0
        self.reports_received = 0
        self.unregistered_reports = 0
        self.unregistered_terminals: set[str] = set()
        self.unauthenticated_reports = 0
        self._newest_report_ms: int | None = None
        self._last_report_at: float | None = None
        self.live: BatchPipe | None = None
        self.writer: BatchPipe | None = None

    # --- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> "Jt808Gateway":
        s = self.settings
        self._flush_now = asyncio.Event()
        if self.on_pings is not None:
            self.live = BatchPipe("live", self.on_pings, s.live_queue_max_reports, latencies=self.latencies,
                                  in_thread=s.live_sink_in_thread)
            self.live.start()
        if self.store is not None:
            self.writer = BatchPipe(
                "store", self.store.write_pings, s.store_queue_max_reports, max_attempts=s.store_max_attempts,
                retry_s=s.store_retry_s, latencies=None if self.live is not None else self.latencies,
                min_interval_s=s.store_interval_s,
            )
            self.writer.start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: TerminalSession(self), s.host, s.port, backlog=s.listen_backlog, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if s.stats_port is not None:
            self._stats_server = await asyncio.start_server(self._serve_stats, s.stats_host, s.stats_port)
            self.stats_port = self._stats_server.sockets[0].getsockname()[1]
        self._started_at = time.monotonic()
        self._tasks = [loop.create_task(self._tick(), name="gateway-tick"),
                       loop.create_task(self._sweep_idle(), name="gateway-idle")]
        log.info("JT/T 808 gateway on %s:%s (stats on %s)", s.host, self.port, self.stats_port)
        return self

    async def serve_forever(self) -> None:
        assert self._server is not None, "start() the gateway first"
        await self._server.serve_forever()

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Stop listening, close every connection, hand the last reports to the sinks."""
        for server in (self._server, self._stats_server):
            if server is not None:
                server.close()
        for session in list(self.sessions):
            session.close("shutdown")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.flush()
        for pipe in (self.live, self.writer):
            if pipe is not None:
                await pipe.close(drain_timeout_s)
        await asyncio.sleep(0)  # let the transports run their connection_lost

    async def __aenter__(self) -> "Jt808Gateway":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # --- sessions -------------------------------------------------------------------------------------

    def auth_code(self, key: str) -> str:
        """The auth code of a terminal (by phone_key): an HMAC of the phone, so nothing is stored."""
        return hmac.new(self._auth_key, key.encode(), hashlib.sha256).hexdigest()[:16].upper()

    def _admit(self, session: TerminalSession) -> bool:
        self.connections_total += 1
        if len(self.sessions) >= self.settings.max_connections:
            self._count_disconnect("connection_limit")
            return False
        self.sessions.add(session)
        return True

    def _forget(self, session: TerminalSession, reason: str | None) -> None:
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        if reason is not None:
            self._count_disconnect(reason)
        if session.phone is not None:
            key = phone_key(session.phone)
            if self._by_phone.get(key) is session:
                del self._by_phone[key]

    def _bind(self, key: str, session: TerminalSession) -> None:
        old = self._by_phone.get(key)
        if old is not None and old is not session:
            old.close("replaced")  # the terminal reconnected: the newest connection wins
        self._by_phone[key] = session

    def _reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] += n

    def _count_disconnect(self, reason: str) -> None:
        self.disconnects[reason] += 1

    def count(self, event: str) -> None:
        self.events[event] += 1

    def connected_phones(self) -> list[str]:
        """Phones (phone_key) of the authenticated terminals connected now."""
        return sorted(self._by_phone)

    # --- platform -> terminal --------------------------------------------------------------------------

    async def send_text(self, phone: str, text: str, *, flags: int = TEXT_DISPLAY_TTS, text_type: int | None = None,
                        timeout_s: float = 10.0) -> int:
        """Send 0x8300 text to a connected terminal; returns the terminal's 0x0001 result
        (0 ok). 2019 terminals get text_type 1 (notice) unless told otherwise."""
        session = self._session(phone)
        if session.protocol_version is not None and text_type is None:
            text_type = 1
        elif session.protocol_version is None:
            text_type = None
        return await asyncio.wait_for(session.request(TextMessage(flags, text, text_type)), timeout_s)

    async def confirm_alarm(self, phone: str, alarm_type: int, *, reply_serial: int = 0,
                            timeout_s: float = 10.0) -> int:
        """Send 0x8203 manual alarm confirmation (alarm_type: the 0x0200 alarm bits to clear;
        reply_serial 0 confirms every alarm of those types); returns the terminal's result."""
        session = self._session(phone)
        return await asyncio.wait_for(session.request(ManualAlarmConfirm(reply_serial, alarm_type)), timeout_s)

    def _session(self, phone: str) -> TerminalSession:
        session = self._by_phone.get(phone_key(phone))
        if session is None or session.closing:
            raise LookupError(f"terminal {phone} is not connected and authenticated")
        return session

    # --- reports -> batches ------------------------------------------------------------------------------

    def _add_reports(self, key: str, reports, received: float) -> None:
        n = len(reports)
        if not n:
            return
        vehicle_id = self.vehicle_by_phone.get(key)
        if vehicle_id is None:
            vehicle_id = UNREGISTERED_PREFIX + key
            self.unregistered_reports += n
            self.unregistered_terminals.add(key)
        self._pending_ids.extend([vehicle_id] * n)
        self._pending_reports.extend(reports)
        self._pending_received.extend([received] * n)
        self.reports_received += n
        self._rate.add(n, received)
        self._last_report_at = received
        if len(self._pending_reports) >= self.settings.max_batch_reports:
            self._flush_now.set()

    def flush(self) -> int:
        """Turn the reports gathered since the last tick into one PingBatch for the sinks."""
        if not self._pending_reports:
            return 0
        received = np.asarray(self._pending_received, dtype="float64")
        batch = reports_to_batch(self._pending_ids, self._pending_reports,
                                 arrival_ms=np.rint((received + self._wall_minus_monotonic_s) * 1000).astype("int64"))
        self._pending_ids, self._pending_reports, self._pending_received = [], [], []
        newest = int(batch.epoch_ms.max())
        if self._newest_report_ms is None or newest > self._newest_report_ms:
            self._newest_report_ms = newest
        for pipe in (self.live, self.writer):
            if pipe is not None:
                pipe.put(batch, received)
        return len(batch)

    async def _tick(self) -> None:
        interval = self.settings.batch_interval_s
        while True:
            try:
                await asyncio.wait_for(self._flush_now.wait(), interval)
            except asyncio.TimeoutError:
                pass
            self._flush_now.clear()
            try:
                self.flush()
            except Exception:  # reports_to_batch on decoded reports should not fail; never stop the tick
                log.exception("gateway: could not build a batch; %d reports lost", len(self._pending_reports))
                self._reject("batch_failed", len(self._pending_reports))
                self._pending_ids, self._pending_reports, self._pending_received = [], [], []

    async def _sweep_idle(self) -> None:
        idle_s = self.settings.idle_timeout_s
        while True:
            await asyncio.sleep(min(1.0, idle_s / 4))
            cutoff = time.monotonic() - idle_s
            for session in [s for s in self.sessions if s.last_activity < cutoff]:
                session.close("idle_timeout")

    # --- feed health -------------------------------------------------------------------------------------

    def stats(self) -> dict:
        """Feed health: connections, reports/s over the sliding window, rejections and
        disconnections by reason, queue depths, drops, latency and the newest report's age."""
        now = time.monotonic()
        p50, p99 = self.latencies.percentiles_ms(50, 99)
        pipes = {name: pipe for name, pipe in (("live", self.live), ("store", self.writer)) if pipe is not None}
        newest_age_s = None
        if self._newest_report_ms is not None:
            newest_age_s = round(datetime.now(timezone.utc).timestamp() - self._newest_report_ms / 1000, 3)
        return {
            "uptime_s": round(now - self._started_at, 3),
            "port": self.port,
            "connections": len(self.sessions),
            "connections_total": self.connections_total,
            "authenticated_terminals": len(self._by_phone),
            "bytes_received": self.bytes_received,
            "frames_received": self.frames_received,
            "replies_sent": self.replies_sent,
            "reports_received": self.reports_received,
            "reports_per_s": round(self._rate.rate(now), 3),
            "reports_per_s_window_s": self.settings.rate_window_s,
            "reports_pending_batch": len(self._pending_reports),
            "unregistered_reports": self.unregistered_reports,
            "unregistered_terminals": len(self.unregistered_terminals),
            "unauthenticated_reports": self.unauthenticated_reports,
            "events": dict(self.events),
            "rejected": dict(self.rejected),
            "disconnects": dict(self.disconnects),
            "queue_reports": sum(p.depth_reports for p in pipes.values()),
            "dropped_reports": sum(p.dropped_reports for p in pipes.values()),
            "sinks": {name: pipe.stats() for name, pipe in pipes.items()},
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "latency_samples": self.latencies.total,
            "newest_report_age_s": newest_age_s,
            "last_report_s_ago": None if self._last_report_at is None else round(now - self._last_report_at, 3),
        }

    async def _serve_stats(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """GET /stats (or /) -> the stats as JSON; anything else 404. One request a connection."""
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            parts = request.split(b"\r\n", 1)[0].split()
            if len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] in (b"/", b"/stats"):
                status, body = "200 OK", json.dumps(self.stats()).encode()
            else:
                status, body = "404 Not Found", b'{"error": "GET /stats"}'
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


def fetch_stats(host: str = "127.0.0.1", port: int = 7809, timeout_s: float = 5.0) -> dict:
    """The running gateway's stats (its GET /stats); raises OSError when nothing answers."""
    with urllib.request.urlopen(f"http://{host}:{port}/stats", timeout=timeout_s) as response:
        return json.loads(response.read())


def format_stats(stats: dict) -> str:
    """The stats as `name=value` lines (nested dicts flattened with dots), for a terminal."""
    lines: list[str] = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            if not value:
                lines.append(f"{prefix}=")
            for key in sorted(value):
                walk(f"{prefix}.{key}" if prefix else str(key), value[key])
        else:
            lines.append(f"{prefix}={'' if value is None else value}")

    walk("", stats)
    return "\n".join(lines)


async def _serve_until_signal(gateway: Jt808Gateway) -> None:
    await gateway.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("JT/T 808 gateway stopping")
        await gateway.stop()


def run_gateway(store_url: str, settings: GatewaySettings | None = None,
                on_pings: Callable[[PingBatch], object] | None = None) -> dict:
    """`hazmap jt808 serve`: open the store, bind the vehicles' terminal phones, serve until
    SIGINT/SIGTERM, write every report to the store; returns the final stats."""
    from data.store import Store

    store = Store.open(store_url)
    try:
        mapping = vehicle_ids_by_phone(store.read_layer("vehicles"))
        if not mapping:
            log.warning("the store holds no vehicles: every terminal's reports will be flagged %s<phone>",
                        UNREGISTERED_PREFIX)
        gateway = Jt808Gateway(mapping, on_pings, store, settings or GatewaySettings())
        gc.freeze()  # what start-up loaded lives as long as the process: keep it out of the GC's full scans
        asyncio.run(_serve_until_signal(gateway))
        return gateway.stats()
    finally:
        store.close()
