"""Out of range: a reading outside the instrument's [range_min, range_max] (DOMAIN.md §6).

A transmitter reading beyond its calibrated span is an instrument fault (broken loop, sensor
saturated or failed), not a measurement. The edges belong to the range: a reading exactly at
range_min or range_max is in range. An episode opens once readings have been outside for at
least `range_min_duration_s` and `range_min_readings` consecutive readings, stays open while
they stay outside the range shrunk by a deadband (`range_deadband_fraction` of the span, so a
detector pinned at its full scale does not flap), and closes at the first reading back inside
that. Severity 3 (toxic gas 2: a blind toxic detector).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from spatial.model import Event
from spatial.rules.base import SEVERITY_MEDIUM, iso_time, setting
from spatial.rules.episodes import MARK_OPEN, EpisodeState, scan_episodes
from spatial.rules.point_base import PointBatch, PointWorld, point_severity


@dataclass(frozen=True)
class PointRangeSettings:
    range_deadband_fraction: float = setting(
        0.01, "fraction of range", "(engineering default) hysteresis at the range edges, as the level deadband")
    range_min_duration_s: float = setting(0.0, "s", "(engineering default) a reading beyond the span is a fault at once")
    range_min_readings: int = setting(1, "readings", "(engineering default)")

    def __post_init__(self) -> None:
        for name in ("range_deadband_fraction", "range_min_duration_s"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"point_range setting {name} must be a finite number >= 0, got {value!r}")
        if self.range_deadband_fraction >= 0.5:
            raise ValueError(f"range_deadband_fraction must be < 0.5, got {self.range_deadband_fraction!r}")
        if int(self.range_min_readings) != self.range_min_readings or self.range_min_readings < 1:
            raise ValueError(f"range_min_readings must be a whole number >= 1, got {self.range_min_readings!r}")


@dataclass(frozen=True)
class PointRangeState:
    # scanned on how far a reading lies beyond the range (peak: the farthest)
    beyond: EpisodeState = field(default_factory=EpisodeState)


@dataclass(frozen=True)
class PointRangeRule:
    settings: PointRangeSettings = field(default_factory=PointRangeSettings)
    name: ClassVar[str] = "point_range"

    def initial_state(self) -> PointRangeState:
        return PointRangeState()

    def step(self, state: PointRangeState, batch: PointBatch, world: PointWorld) -> tuple[PointRangeState, list[Event]]:
        if not len(batch):
            return state, []
        s = self.settings
        slot, v = batch.slot, batch.value
        low, high = world.range_min[slot], world.range_max[slot]
        deadband = s.range_deadband_fraction * world.span[slot]
        beyond = np.maximum(v - high, low - v)  # > 0 outside; how far
        enter = (v < low) | (v > high)
        stay = (v < low + deadband) | (v > high - deadband)
        zeros = np.zeros(len(batch))
        episodes, marks = scan_episodes(state.beyond, slot, batch.epoch_ms, enter, stay, beyond, zeros, zeros,
                                        round(s.range_min_duration_s * 1000), int(s.range_min_readings))
        events = []
        for k in range(len(marks)):  # one per event
            i, p = int(marks.index[k]), int(marks.slot[k])
            severity = point_severity(SEVERITY_MEDIUM, bool(world.toxic[p]))
            common = {"value": float(v[i]), "time": iso_time(batch.epoch_ms[i]), "deadband": float(deadband[i]),
                      "peak_beyond_range": float(marks.peak[k]), "first_reading": iso_time(marks.start_ms[k]),
                      "readings": int(marks.pings[k])}
            if marks.kind[k] == MARK_OPEN:
                side = "above" if v[i] > high[i] else "below"
                events.append(world.event(self.name, p, "open", marks.start_ms[k], None, severity, {
                    **common, "side": side, "threshold": float(high[i] if side == "above" else low[i])}))
            else:
                events.append(world.event(self.name, p, "close", marks.start_ms[k], marks.end_ms[k], severity, {
                    **common, "last_fault_reading": iso_time(marks.end_ms[k]),
                    "duration_s": (int(marks.end_ms[k]) - int(marks.start_ms[k])) / 1000.0}))
        return PointRangeState(episodes), events
