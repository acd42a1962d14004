"""The live side of the one process that `hazmap serve` / `hazmap demo` run.

For now one process hosts feeds and screen (DESIGN.md §2): the JT/T 808 gateway runs on its
own asyncio loop in a background thread, writes every report to the store through its
bounded writer queue, and hands each batch to `LiveState` (the newest position per truck).
The rule engine and the MQTT feed join here with the live-monitor issue.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from data.feeds.gateway import GatewaySettings, Jt808Gateway, vehicle_ids_by_phone
from data.store import Store
from spatial.model import LiveState, PingBatch, World

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 30.0


class LiveMonitor:
    """Feeds -> LiveState, in a background thread; `snapshot()` is safe from any thread."""

    def __init__(self, world: World, store_url: str, gateway_settings: GatewaySettings):
        self._vehicle_by_phone = vehicle_ids_by_phone(world.vehicles)
        self._store_url = store_url
        self._gateway_settings = gateway_settings
        self._live = LiveState()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self.gateway: Jt808Gateway | None = None

    # -- public -----------------------------------------------------------------------------

    def start(self) -> "LiveMonitor":
        """Start the gateway; returns once it listens, or raises why it could not (port taken…)."""
        self._thread = threading.Thread(target=self._run, name="hazmap-live", daemon=True)
        self._thread.start()
        if not self._started.wait(_START_TIMEOUT_S):
            raise RuntimeError(f"the JT/T 808 gateway did not start within {_START_TIMEOUT_S:.0f} s")
        if self._start_error is not None:
            raise RuntimeError(f"the JT/T 808 gateway could not start: {self._start_error}") from self._start_error
        return self

    def stop(self) -> None:
        """Close every connection, hand the last reports to the store, stop the thread."""
        if self._loop is None or self._thread is None:
            return
        loop, gateway = self._loop, self.gateway
        if gateway is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(gateway.stop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=60)

    def snapshot(self) -> tuple[int, "LiveState"]:
        """(version, a copy of the live state) — what the screen reads."""
        with self._lock:
            copy = LiveState(self._live.positions.copy(), self._live.readings.copy(), self._live.version)
        return copy.version, copy

    def stats(self) -> dict:
        return self.gateway.stats() if self.gateway is not None else {}

    # -- the thread -----------------------------------------------------------------------------

    def _on_pings(self, batch: PingBatch) -> None:
        with self._lock:
            self._live.apply_pings(batch)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        store = None
        try:
            store = Store.open(self._store_url)
            self.gateway = Jt808Gateway(self._vehicle_by_phone, self._on_pings, store, self._gateway_settings)
            self._loop.run_until_complete(self.gateway.start())
        except BaseException as exc:  # reported to start()'s caller
            self._start_error = exc
            self._started.set()
            if store is not None:
                store.close()
            self._loop.close()
            return
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()
            store.close()
