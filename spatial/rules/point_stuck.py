"""Stuck value: a monitoring point whose value has not changed for hours (DOMAIN.md §6).

A live transmitter's reading wanders with its process and its own noise; one that repeats the
same value for hours is frozen (a hung data logger, a stuck float, a dead sensor held at its
last value). A point's readings form *runs*: a run starts at a reading (its reference) and
goes on while every reading stays within `stuck_tolerance_fraction` x span of that reference
(|value - reference| <= tolerance); the first reading beyond it starts the next run. A run
becomes a stuck episode at the first reading at least `stuck_after_s` after the reference
(exactly 4 h counts; 3 h 59 min does not) and closes at the reading that ends the run.

A run at the bottom of the range (reference within the tolerance of range_min) is never
stuck: a gas detector in clean air reads 0 %LEL for days, an empty tank 0 m, a depressurised
line 0 MPa. Severity 3 (toxic gas 2). Gaps in the data do not end a run (point_interruption
reports them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numba import njit

from spatial.model import Event
from spatial.rules.base import SEVERITY_MEDIUM, grow, iso_time, setting
from spatial.rules.point_base import PointBatch, PointWorld, point_severity

_OPEN, _CLOSE = 1, 2


@dataclass(frozen=True)
class PointStuckSettings:
    stuck_after_s: float = setting(4 * 3600.0, "s", "(engineering default) DOMAIN.md §6 'no change for N hours'")
    stuck_tolerance_fraction: float = setting(
        0.001, "fraction of range", "(engineering default) below any live transmitter's noise, above float rounding")
    stuck_ignore_at_range_min: bool = setting(
        True, "", "(engineering default) a value resting at the bottom of the range is a quiet process")

    def __post_init__(self) -> None:
        for name in ("stuck_after_s", "stuck_tolerance_fraction"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"point_stuck setting {name} must be a finite number >= 0, got {value!r}")
        if not self.stuck_after_s > 0:
            raise ValueError(f"stuck_after_s must be > 0, got {self.stuck_after_s!r}")


@dataclass(frozen=True)
class PointStuckState:
    """Per slot: the current run's reference (time, value), its latest reading's time, and
    whether it is a stuck episode already."""

    has_run: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    ref_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    ref_value: np.ndarray = field(default_factory=lambda: np.zeros(0, "float64"))
    last_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    readings: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    stuck: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def sized(self, n: int) -> PointStuckState:
        return PointStuckState(grow(self.has_run, n, False).copy(), grow(self.ref_ms, n, 0).copy(),
                               grow(self.ref_value, n, np.nan).copy(), grow(self.last_ms, n, 0).copy(),
                               grow(self.readings, n, 0).copy(), grow(self.stuck, n, False).copy())


@njit(cache=True, nogil=True)
def _scan_runs(slot, t, value, tolerance, bottom, hold_ms, ignore_bottom,
               has_run, ref_ms, ref_value, last_ms, readings, stuck,
               out_kind, out_index, out_ref_ms, out_ref_value, out_last_ms, out_readings):  # pragma: no cover
    n = 0
    for i in range(slot.shape[0]):
        s = slot[i]
        if has_run[s] and abs(value[i] - ref_value[s]) <= tolerance[s]:
            last_ms[s] = t[i]
            readings[s] += 1
            quiet = ignore_bottom and abs(ref_value[s] - bottom[s]) <= tolerance[s]
            if not stuck[s] and not quiet and t[i] - ref_ms[s] >= hold_ms:
                stuck[s] = True
                out_kind[n], out_index[n], out_ref_ms[n], out_ref_value[n] = 1, i, ref_ms[s], ref_value[s]
                out_last_ms[n], out_readings[n] = t[i], readings[s]
                n += 1
            continue
        if stuck[s]:
            out_kind[n], out_index[n], out_ref_ms[n], out_ref_value[n] = 2, i, ref_ms[s], ref_value[s]
            out_last_ms[n], out_readings[n] = last_ms[s], readings[s]
            n += 1
            stuck[s] = False
        has_run[s] = True
        ref_ms[s] = t[i]
        ref_value[s] = value[i]
        last_ms[s] = t[i]
        readings[s] = 1
    return n


@dataclass(frozen=True)
class PointStuckRule:
    settings: PointStuckSettings = field(default_factory=PointStuckSettings)
    name: ClassVar[str] = "point_stuck"

    def initial_state(self) -> PointStuckState:
        return PointStuckState()

    def step(self, state: PointStuckState, batch: PointBatch, world: PointWorld) -> tuple[PointStuckState, list[Event]]:
        if not len(batch):
            return state, []
        s = self.settings
        new = state.sized(len(world))
        tolerance = s.stuck_tolerance_fraction * world.span
        m = len(batch)
        out = (np.empty(m, "int8"), np.empty(m, "int64"), np.empty(m, "int64"), np.empty(m, "float64"),
               np.empty(m, "int64"), np.empty(m, "int64"))
        n = _scan_runs(np.ascontiguousarray(batch.slot, "int64"), np.ascontiguousarray(batch.epoch_ms, "int64"),
                       np.ascontiguousarray(batch.value, "float64"), tolerance, world.range_min,
                       round(s.stuck_after_s * 1000), bool(s.stuck_ignore_at_range_min),
                       new.has_run, new.ref_ms, new.ref_value, new.last_ms, new.readings, new.stuck, *out)
        kind, index, ref_ms, ref_value, last_ms, readings = (a[:n] for a in out)
        events = []
        for k in range(n):  # one per event
            i = int(index[k])
            p = int(batch.slot[i])
            severity = point_severity(SEVERITY_MEDIUM, bool(world.toxic[p]))
            common = {"stuck_value": float(ref_value[k]), "since": iso_time(ref_ms[k]),
                      "tolerance": float(tolerance[p]), "threshold_s": float(s.stuck_after_s),
                      "readings": int(readings[k]), "time": iso_time(batch.epoch_ms[i])}
            if kind[k] == _OPEN:
                events.append(world.event(self.name, p, "open", ref_ms[k], None, severity, {
                    **common, "value": float(batch.value[i]),
                    "unchanged_s": (int(batch.epoch_ms[i]) - int(ref_ms[k])) / 1000.0}))
            else:
                events.append(world.event(self.name, p, "close", ref_ms[k], last_ms[k], severity, {
                    **common, "value": float(batch.value[i]), "last_unchanged_reading": iso_time(last_ms[k]),
                    "unchanged_s": (int(last_ms[k]) - int(ref_ms[k])) / 1000.0}))
        return new, events
