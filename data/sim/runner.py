"""The simulator's clock: slices of simulated time handed to the senders, paced or in lockstep.

`Simulator.run()` walks simulated time from the plan's start to its end in slices of
`slice_s`. For each slice it takes the fleet's pings and the points' readings whose times
fall inside it (`FleetSim.pings_between`, `PointSim.readings_between`) and hands them to the
sinks: a `Jt808Sender` / `MqttReadingSender` (data/sim/senders.py) or any callable, e.g. the
live monitor's `submit_pings` when the simulator runs inside the app.

* `time_factor` > 0 (paced): simulated time runs that many times faster than the wall clock;
  the slice that ends at simulated time t is sent once the wall clock says t, so a truck's
  report leaves when its terminal would have sent it (at factor 1, real time).
* `time_factor` None (lockstep): as fast as the sinks take it. With a sink that returns only
  once the gateway acknowledged the slice, every slice reaches the rules before the next one
  is written, so no report arrives late however fast the run: the end-to-end tests use this.

Why slices matter: the rule engine holds pings for a 30 s reorder window against the
fleet-wide clock (spatial/rules/cleaning.py); reports written in time order, a slice of
`slice_s` <= that window at a time, never arrive out of order across trucks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from spatial.model import PingBatch, ReadingBatch

log = logging.getLogger(__name__)


@dataclass
class SimProgress:
    sim_ms: int  # simulated time reached (every report before it was handed over)
    pings: int = 0
    readings: int = 0
    slices: int = 0
    finished: bool = False


class Simulator:
    """Drives the plans' time through the sinks; `run()` blocks, `start()` runs it in a thread."""

    def __init__(self, fleet, points=None, *, ping_sink: Callable[[PingBatch], object] | None = None,
                 reading_sink: Callable[[ReadingBatch], object] | None = None, time_factor: float | None = 10.0,
                 slice_s: float = 10.0, start_ms: int | None = None, end_ms: int | None = None):
        if fleet is None and points is None:
            raise ValueError("Simulator needs a fleet plan, a point plan or both")
        if time_factor is not None and not time_factor > 0:
            raise ValueError(f"time_factor must be > 0 (or None for lockstep), got {time_factor!r}")
        if not 0 < slice_s <= 30:
            raise ValueError(f"slice_s must be in (0, 30] s (the rules' reorder window), got {slice_s!r}")
        if fleet is not None and ping_sink is None:
            raise ValueError("a fleet plan needs a ping_sink")
        if points is not None and reading_sink is None:
            raise ValueError("a point plan needs a reading_sink")
        plans = [p for p in (fleet, points) if p is not None]
        self.fleet, self.points = fleet, points
        self.ping_sink, self.reading_sink = ping_sink, reading_sink
        self.time_factor = time_factor
        self.slice_ms = round(slice_s * 1000)
        self.start_ms = min(p.start_ms for p in plans) if start_ms is None else int(start_ms)
        self.end_ms = max(p.end_ms for p in plans) if end_ms is None else int(end_ms)
        if self.end_ms <= self.start_ms:
            raise ValueError("the simulated span is empty (end <= start)")
        self.progress = SimProgress(self.start_ms)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def run(self) -> SimProgress:
        wall0 = time.monotonic()
        cursor = self.start_ms
        while cursor < self.end_ms and not self._stop.is_set():
            if self.time_factor is None:
                target = self.end_ms
            else:
                target = min(self.end_ms, self.start_ms + int((time.monotonic() - wall0) * 1000 * self.time_factor))
                if target - cursor < self.slice_ms and target < self.end_ms:
                    # wait for the wall clock to reach the end of the next slice
                    due_s = (cursor + self.slice_ms - self.start_ms) / 1000 / self.time_factor
                    self._stop.wait(max(0.0, wall0 + due_s - time.monotonic()))
                    continue
            while cursor < target and not self._stop.is_set():
                upto = min(cursor + self.slice_ms, target)
                self._send(cursor, upto)
                cursor = upto
        self.progress.finished = cursor >= self.end_ms
        return self.progress

    def start(self) -> "Simulator":
        def target():
            try:
                self.run()
                log.info("simulation %s at %s", "finished" if self.progress.finished else "stopped",
                         _iso(self.progress.sim_ms))
            except BaseException as exc:  # kept for whoever joins; logged for the operator
                self.error = exc
                log.exception("the simulator stopped")
        self._thread = threading.Thread(target=target, name="hazmap-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the run to end; True when it did. Raises what stopped the run, if anything."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                return False
        if self.error is not None:
            raise RuntimeError(f"the simulator failed: {self.error!r}") from self.error
        return True

    def _send(self, t0_ms: int, t1_ms: int) -> None:
        if self.fleet is not None:
            pings = self.fleet.pings_between(t0_ms, t1_ms)
            if len(pings):
                self.ping_sink(pings)
                self.progress.pings += len(pings)
        if self.points is not None:
            readings = self.points.readings_between(t0_ms, t1_ms)
            if len(readings):
                self.reading_sink(readings)
                self.progress.readings += len(readings)
        self.progress.sim_ms = t1_ms
        self.progress.slices += 1


def _iso(epoch_ms: int) -> str:
    import pandas as pd

    return pd.Timestamp(epoch_ms, unit="ms", tz="UTC").tz_convert("Asia/Shanghai").isoformat()
