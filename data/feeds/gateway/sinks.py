"""Bounded hand-over of ping batches from the event loop to a slow consumer (the live
state and rule engine, the store), which runs in a worker thread so the loop keeps serving."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import fields
from typing import Callable

import numpy as np

from data.feeds.gateway.health import LatencyRing
from spatial.model import PingBatch

log = logging.getLogger(__name__)

_PING_COLUMNS = [f.name for f in fields(PingBatch)]


def concat_batches(batches: list[PingBatch]) -> PingBatch:
    """Several PingBatches -> one, column by column."""
    if len(batches) == 1:
        return batches[0]
    return PingBatch(**{name: np.concatenate([getattr(b, name) for b in batches]) for name in _PING_COLUMNS})


class BatchPipe:
    """A queue bounded in reports, drained by one task that joins whatever is waiting into a
    single batch and hands it to `consume` (never two calls at once, in arrival order), in a
    worker thread, or on the event loop itself when `in_thread` is False. A batch that does
    not fit is dropped and counted: the producer never waits.

    A failed call is retried after `retry_s` up to `max_attempts` times, then its reports are
    counted as `failed`. With `min_interval_s` the task waits that long after the first batch
    arrives, so the consumer gets fewer, larger batches (a store pays per transaction). When
    `latencies` is given, the time from each report's arrival
    (`received` stamps, time.monotonic) to the end of the call is recorded there.
    """

    def __init__(
        self,
        name: str,
        consume: Callable[[PingBatch], object],
        max_reports: int,
        *,
        max_attempts: int = 1,
        retry_s: float = 0.0,
        latencies: LatencyRing | None = None,
        in_thread: bool = True,
        min_interval_s: float = 0.0,
    ) -> None:
        self.name = name
        self._consume = consume
        self.max_reports = max_reports
        self.max_attempts = max_attempts
        self.retry_s = retry_s
        self.latencies = latencies
        self.in_thread = in_thread
        self.min_interval_s = min_interval_s
        self._queue: deque[tuple[PingBatch, np.ndarray]] = deque()
        self._queued_reports = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None
        self.delivered_reports = 0
        self.delivered_batches = 0
        self.dropped_reports = 0
        self.failed_reports = 0
        self.errors = 0
        self.busy_s = 0.0
        self.last_error: str | None = None

    @property
    def depth_reports(self) -> int:
        return self._queued_reports

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"gateway-{self.name}")

    def put(self, batch: PingBatch, received: np.ndarray) -> bool:
        """Queue a batch; False (and counted as dropped) when it does not fit."""
        n = len(batch)
        if self._closing or self._queued_reports + n > self.max_reports:
            self.dropped_reports += n
            return False
        self._queue.append((batch, received))
        self._queued_reports += n
        self._wakeup.set()
        return True

    async def close(self, timeout_s: float = 30.0) -> None:
        """Deliver what is queued (for at most `timeout_s`), then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except asyncio.TimeoutError:
            self._task.cancel()
            self.dropped_reports += self._queued_reports
            log.warning("%s: %d reports still queued at shutdown were dropped", self.name, self._queued_reports)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.min_interval_s and not self._closing:  # let batches gather into fewer, larger calls
                await asyncio.sleep(self.min_interval_s)
            taken = list(self._queue)
            self._queue.clear()
            self._queued_reports = 0
            batch = concat_batches([b for b, _ in taken])
            received = np.concatenate([r for _, r in taken])
            await self._deliver(batch, received)

    async def _deliver(self, batch: PingBatch, received: np.ndarray) -> None:
        for attempt in range(1, self.max_attempts + 1):
            started = time.monotonic()
            try:
                if self.in_thread:
                    await asyncio.to_thread(self._consume, batch)
                else:
                    self._consume(batch)
            except Exception as exc:  # a sink's failure must not stop the feed
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s: %d reports, attempt %d/%d failed: %s", self.name, len(batch), attempt,
                            self.max_attempts, self.last_error)
                if attempt < self.max_attempts:
                    await asyncio.sleep(self.retry_s)
                continue
            done = time.monotonic()
            self.busy_s += done - started
            self.delivered_reports += len(batch)
            self.delivered_batches += 1
            if self.latencies is not None:
                self.latencies.add(done - received)
            return
        self.failed_reports += len(batch)

    def stats(self) -> dict:
        return {
            "queue_reports": self._queued_reports,
            "queue_max_reports": self.max_reports,
            "delivered_reports": self.delivered_reports,
            "delivered_batches": self.delivered_batches,
            "dropped_reports": self.dropped_reports,
            "failed_reports": self.failed_reports,
            "errors": self.errors,
            "last_error": self.last_error,
            "busy_s": round(self.busy_s, 3),
        }
