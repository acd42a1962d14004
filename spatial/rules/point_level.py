"""Level alarms on a monitoring point: high / high-high and low / low-low (DOMAIN.md §6).

Each point has two sides, each one episode at a time:
- high side: level 1 at `high`, level 2 at `high_high` (combustible gas: 25 % / 50 % LEL,
  toxic gas: 100 % / 200 % OEL, GB/T 50493-2019 §5.5 — the thresholds come from the point);
- low side: level 1 at `low`, level 2 at `low_low` (levels, pressures: where they are set).
A threshold not set (NaN) does not alarm; a side with only its level-2 threshold opens
straight at level 2.

A reading *reaches* a threshold when value >= it (high side; <= on the low side: a detector
alarms when the concentration reaches its setting). The side's episode opens once its outer
threshold (high, else high_high) has been reached on consecutive readings for at least
`level_min_duration_s` and `level_min_readings`, and stays open while the value stays above
the threshold minus a deadband (`level_deadband_fraction` of the point's range): a reading
hovering on 25 %LEL raises one alarm, not fifty. It closes at the first reading at or below
that. Inside the episode the level-2 band runs the same logic on high_high; reaching it is an
`update` event (escalated, level 2), falling back below high_high minus the deadband another
`update` (de-escalated, level 1). So one incident per point, side and episode, whose level
moves; an episode that opens already at level 2 opens at level 2 and needs no update.

Severity (spatial/rules/point_base.py): level 2 -> 1, level 1 -> 2, toxic gas both 1; the
close carries the highest level of the episode. Readings outside the instrument range are
judged too (a saturated gas detector does read high); point_range reports the fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from spatial.model import Event
from spatial.rules.base import grow, iso_time, setting
from spatial.rules.episodes import MARK_CLOSE, MARK_OPEN, EpisodeState, scan_episodes
from spatial.rules.point_base import PointBatch, PointWorld, level_severity

SIDES = ("high", "low")


@dataclass(frozen=True)
class PointLevelSettings:
    level_deadband_fraction: float = setting(
        0.01, "fraction of range", "(engineering default) alarm deadband, as DCS alarm hysteresis (ISA-18.2 "
                                   "suggests ~1 % of span for levels, pressures, temperatures)")
    level_min_duration_s: float = setting(
        0.0, "s", "GB/T 50493-2019: a gas alarm sounds when the setting is reached (no on-delay)")
    level_min_readings: int = setting(1, "readings", "GB/T 50493-2019: one reading at the setting alarms")

    def __post_init__(self) -> None:
        for name in ("level_deadband_fraction", "level_min_duration_s"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"point_level setting {name} must be a finite number >= 0, got {value!r}")
        if self.level_deadband_fraction >= 1:
            raise ValueError(f"level_deadband_fraction must be < 1 (a fraction of the range), "
                             f"got {self.level_deadband_fraction!r}")
        if int(self.level_min_readings) != self.level_min_readings or self.level_min_readings < 1:
            raise ValueError(f"level_min_readings must be a whole number >= 1, got {self.level_min_readings!r}")


@dataclass(frozen=True)
class SideState:
    band_1: EpisodeState = field(default_factory=EpisodeState)  # the episode (outer threshold)
    band_2: EpisodeState = field(default_factory=EpisodeState)  # level 2 inside it
    # per slot, for the open episode: its start and the highest level it reached
    start_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    max_level: np.ndarray = field(default_factory=lambda: np.zeros(0, "int8"))


@dataclass(frozen=True)
class PointLevelState:
    high: SideState = field(default_factory=SideState)
    low: SideState = field(default_factory=SideState)


@dataclass(frozen=True)
class PointLevelRule:
    settings: PointLevelSettings = field(default_factory=PointLevelSettings)
    name: ClassVar[str] = "point_level"

    def initial_state(self) -> PointLevelState:
        return PointLevelState()

    def step(self, state: PointLevelState, batch: PointBatch, world: PointWorld) -> tuple[PointLevelState, list[Event]]:
        if not len(batch):
            return state, []
        high, high_events = self._side(state.high, "high", batch, world)
        low, low_events = self._side(state.low, "low", batch, world)
        return PointLevelState(high, low), high_events + low_events

    def _side(self, state: SideState, side: str, batch: PointBatch, world: PointWorld) -> tuple[SideState, list[Event]]:
        s = self.settings
        slot = batch.slot
        deadband = s.level_deadband_fraction * world.span[slot]
        # the low side runs on negated values and thresholds (exact in floating point), so both
        # sides are "value >= threshold enters, value > threshold - deadband stays"
        sign = 1.0 if side == "high" else -1.0
        q = sign * batch.value
        outer = sign * (world.upper_1 if side == "high" else world.lower_1)[slot]
        inner = sign * (world.high_high if side == "high" else world.low_low)[slot]
        with np.errstate(invalid="ignore"):  # NaN thresholds: never enter, never stay
            enter_1, stay_1 = q >= outer, q > outer - deadband
            enter_2, stay_2 = q >= inner, q > inner - deadband
        min_ms, min_n = round(s.level_min_duration_s * 1000), int(s.level_min_readings)
        lon = lat = np.zeros(len(batch))
        band_1, marks_1 = scan_episodes(state.band_1, slot, batch.epoch_ms, enter_1, stay_1, q, lon, lat, min_ms, min_n)
        band_2, marks_2 = scan_episodes(state.band_2, slot, batch.epoch_ms, enter_2, stay_2, q, lon, lat, min_ms, min_n)
        start_ms = grow(state.start_ms, len(world), 0).copy()
        max_level = grow(state.max_level, len(world), 0).copy()
        if not (len(marks_1) or len(marks_2)):
            return SideState(band_1, band_2, start_ms, max_level), []

        # Both scans' marks in batch order: at one reading the episode opens before its level 2,
        # and level 2 ends before the episode (band 2 nests inside band 1: its tests imply band 1's).
        index = np.concatenate([marks_1.index, marks_2.index])
        band = np.concatenate([np.ones(len(marks_1), "int8"), np.full(len(marks_2), 2, "int8")])
        kind = np.concatenate([marks_1.kind, marks_2.kind])
        row = np.concatenate([np.arange(len(marks_1)), np.arange(len(marks_2))])
        rank = np.where(kind == MARK_OPEN, band, 5 - band)  # open 1, open 2, close 2, close 1
        order = np.lexsort((rank, index))
        opened_1 = set(marks_1.index[marks_1.kind == MARK_OPEN].tolist())
        closed_1 = set(marks_1.index[marks_1.kind == MARK_CLOSE].tolist())
        opened_2 = set(marks_2.index[marks_2.kind == MARK_OPEN].tolist())
        threshold_1 = (world.high if side == "high" else world.low)
        threshold_2 = (world.high_high if side == "high" else world.low_low)
        events = []
        for k in order.tolist():  # one iteration per mark (a few per alarm), not per reading
            i, r = int(index[k]), int(row[k])
            p = int(slot[i])
            toxic = bool(world.toxic[p])
            common = {
                "side": side,
                "value": float(batch.value[i]),
                "time": iso_time(batch.epoch_ms[i]),
                "level_1_threshold": _finite(threshold_1[p]),
                "level_2_threshold": _finite(threshold_2[p]),
                "deadband": float(deadband[i]),
            }
            if band[k] == 1 and kind[k] == MARK_OPEN:
                level = 2 if i in opened_2 else 1
                start_ms[p], max_level[p] = marks_1.start_ms[r], level
                events.append(world.event(self.name, p, "open", start_ms[p], None, level_severity(level, toxic), {
                    **common, "level": level, "threshold": _threshold(level, threshold_1[p], threshold_2[p]),
                    "first_reading": iso_time(marks_1.start_ms[r]), "readings": int(marks_1.pings[r])}))
            elif band[k] == 2 and kind[k] == MARK_OPEN:
                if i in opened_1:
                    continue  # opened at level 2 already
                max_level[p] = 2
                events.append(world.event(self.name, p, "update", start_ms[p], None, level_severity(2, toxic), {
                    **common, "level": 2, "previous_level": 1, "change": "escalated",
                    "threshold": float(threshold_2[p]), "level_2_since": iso_time(marks_2.start_ms[r])},
                    at_ms=marks_2.start_ms[r]))
            elif band[k] == 2:
                if i in closed_1:
                    continue  # the episode itself ends here
                events.append(world.event(self.name, p, "update", start_ms[p], None, level_severity(1, toxic), {
                    **common, "level": 1, "previous_level": 2, "change": "de-escalated",
                    "threshold": _threshold(1, threshold_1[p], threshold_2[p]),
                    "level_2_until": iso_time(marks_2.end_ms[r]),
                    "peak_value": float(sign * marks_2.peak[r])}, at_ms=marks_2.end_ms[r]))
            else:
                level = int(max_level[p])
                events.append(world.event(
                    self.name, p, "close", marks_1.start_ms[r], marks_1.end_ms[r], level_severity(level, toxic), {
                        **common, "max_level": level, "peak_value": float(sign * marks_1.peak[r]),
                        "readings": int(marks_1.pings[r]), "first_reading": iso_time(marks_1.start_ms[r]),
                        "last_alarming_reading": iso_time(marks_1.end_ms[r]),
                        "duration_s": (int(marks_1.end_ms[r]) - int(marks_1.start_ms[r])) / 1000.0}))
                max_level[p] = 0
        return SideState(band_1, band_2, start_ms, max_level), events


def _finite(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _threshold(level: int, threshold_1: float, threshold_2: float) -> float:
    """The threshold the episode's level stands on (level 1 without a level-1 threshold: level 2's)."""
    return float(threshold_2 if level == 2 or not np.isfinite(threshold_1) else threshold_1)
