"""Data interruption: no reading from a monitoring point for `interruption_after_s`
(DOMAIN.md §6: "no data for N minutes"; AQ 3035 wants the data continuous).

Driven by the stage clock (spatial/rules/points.py: the latest accepted reading time in
arrival order, or the wall clock when the monitor advances it). A point is silent since its
latest reading — or, never heard from, since the clock's first value (when watching began).
Its silence becomes an episode once the clock stands at least `interruption_after_s` past it
(exactly 10:00 counts, 9:59 does not): `open` with start = the silence's start, and `close` at
the point's next reading (end = that reading's time).

Whatever the batching, a silence between two readings of a point is an episode exactly when
the clock right after the later one arrived (`PointBatch.arrival_clock_ms`) stood at least the
threshold past the earlier one, since the clock only moves forward; so one batch, one reading
at a time and any chunking give the same events (with the same `now_ms` advances). A silence
still going at the end of a step opens when the step's clock is far enough past it.
Severity 3 (toxic gas 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from spatial.model import Event
from spatial.rules.base import (
    SEVERITY_MEDIUM,
    grow,
    iso_time,
    previous_in_run,
    run_starts,
    setting,
)
from spatial.rules.point_base import PointBatch, PointWorld, point_severity

NEVER = -1  # last_ms of a point never heard from


@dataclass(frozen=True)
class PointInterruptionSettings:
    interruption_after_s: float = setting(
        600.0, "s", "(engineering default) DOMAIN.md §6 'no data for N minutes'; ten one-minute samples")

    def __post_init__(self) -> None:
        if not (np.isfinite(self.interruption_after_s) and self.interruption_after_s > 0):
            raise ValueError(f"interruption_after_s must be a finite number > 0, got {self.interruption_after_s!r}")


@dataclass(frozen=True)
class PointInterruptionState:
    """Per slot: latest reading time (NEVER: none yet), whether its silence is an open episode."""

    last_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    silent: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


@dataclass(frozen=True)
class PointInterruptionRule:
    settings: PointInterruptionSettings = field(default_factory=PointInterruptionSettings)
    name: ClassVar[str] = "point_interruption"

    def initial_state(self) -> PointInterruptionState:
        return PointInterruptionState()

    def resumed_state(self, n_points: int, last_ms: np.ndarray, silent: np.ndarray) -> PointInterruptionState:
        """The state of a restarted monitor (PointEngine.resume): per slot the latest stored
        reading, or where a stored episode is still open its start (NEVER: none), and whether it
        is open, so a point silent across the restart is judged from its last reading and its open
        silence closes at its next one, under the stored episode's id."""
        last_ms = np.asarray(last_ms, "int64")
        silent = np.asarray(silent, bool)
        if not (len(last_ms) == len(silent) == n_points):
            raise ValueError(f"point_interruption: resumed state for {n_points} points has {len(last_ms)} times "
                             f"and {len(silent)} flags")
        if (silent & (last_ms == NEVER)).any():
            raise ValueError("point_interruption: an open silence needs its start time")
        return PointInterruptionState(last_ms.copy(), silent.copy())

    def step(self, state: PointInterruptionState, batch: PointBatch, world: PointWorld
             ) -> tuple[PointInterruptionState, list[Event]]:
        if batch.clock_ms < 0:  # no clock yet: nothing can have been silent
            return state, []
        after_ms = round(self.settings.interruption_after_s * 1000)
        n_points = len(world)
        last_ms = grow(state.last_ms, n_points, NEVER).copy()
        silent = grow(state.silent, n_points, False).copy()
        # silence starts at the latest reading, or when watching began
        since = np.where(last_ms == NEVER, batch.started_ms, last_ms)
        events: list[Event] = []

        if len(batch):
            slot, t = batch.slot, batch.epoch_ms
            prev = previous_in_run(t, slot, since)
            first = np.zeros(len(batch), bool)
            first[run_starts(slot)] = True
            was_open = first & silent[slot]  # opened in an earlier step; this reading closes it
            gap = was_open | (batch.arrival_clock_ms - prev >= after_ms)
            heard_before = np.where(first, last_ms[slot] != NEVER, True)
            for i in np.flatnonzero(gap).tolist():  # one per interruption, not per reading
                p = int(slot[i])
                severity = point_severity(SEVERITY_MEDIUM, bool(world.toxic[p]))
                common = self._evidence(int(prev[i]), bool(heard_before[i]), after_ms)
                if not was_open[i]:
                    events.append(world.event(self.name, p, "open", prev[i], None, severity, common))
                events.append(world.event(self.name, p, "close", prev[i], t[i], severity, {
                    **common, "resumed": iso_time(t[i]), "value": float(batch.value[i]),
                    "silent_s": (int(t[i]) - int(prev[i])) / 1000.0}))
            ends = np.r_[run_starts(slot)[1:] - 1, len(slot) - 1]
            last_ms[slot[ends]] = t[ends]
            silent[slot[ends]] = False
            since[slot[ends]] = t[ends]

        opening = np.flatnonzero(~silent & (batch.clock_ms - since >= after_ms))
        for p in opening.tolist():  # one per point falling silent in this step
            severity = point_severity(SEVERITY_MEDIUM, bool(world.toxic[p]))
            events.append(world.event(self.name, p, "open", since[p], None, severity,
                                      self._evidence(int(since[p]), bool(last_ms[p] != NEVER), after_ms)))
        silent[opening] = True
        return PointInterruptionState(last_ms, silent), events

    def _evidence(self, since_ms: int, heard: bool, after_ms: int) -> dict:
        return {"silent_since": iso_time(since_ms), "last_reading": iso_time(since_ms) if heard else None,
                "threshold_s": float(self.settings.interruption_after_s), "due": iso_time(since_ms + after_ms)}
