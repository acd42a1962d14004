"""What the point stage hands the monitoring-point rules (spatial/rules/point_*.py).

The point rules have the truck rules' shape (a frozen settings dataclass built with
`setting(...)`, and a rule with `name`, `initial_state()` and
`step(state, batch, world) -> (state, events)`), but they read a `PointBatch` of cleaned
readings and a `PointWorld` of per-point arrays instead of a RuleBatch / RuleWorld.

A point's *slot* is its row in `world.monitoring_points`; every per-point array here and in
the rules' states is indexed by it.

Severity (DOMAIN.md §6; the base values are the engine's, the toxic step is hazmap's):
level 2 (high-high / low-low) -> SEVERITY_HIGHEST (1), level 1 (high / low) -> SEVERITY_HIGH
(2), every instrument or data finding (rate, stuck, out of range, interruption) ->
SEVERITY_MEDIUM (3). A toxic-gas point is one step more severe (never above 1): a toxic
release harms below any flammable concentration (GB/T 50493-2019 sets its alarms on the
occupational exposure limit), and a blind toxic detector hides exactly that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from spatial.model import MONITORING_POINT_KINDS, Event, World
from spatial.rules.base import SEVERITY_HIGH, SEVERITY_HIGHEST, iso_time, make_event

TOXIC_KIND = "toxic_gas"
THRESHOLD_COLUMNS = ("low_low", "low", "high", "high_high")


def _float_column(table: pd.DataFrame, name: str) -> np.ndarray:
    """A numeric column with None / missing as NaN."""
    return pd.to_numeric(table[name], errors="coerce").to_numpy("float64", na_value=np.nan)


def _name_some(ids: np.ndarray) -> str:
    return ", ".join(map(str, ids[:10])) + (" …" if len(ids) > 10 else "")


class PointWorld:
    """`world.monitoring_points` as per-slot arrays, validated once, plus a cache for rules.

    Thresholds not set are NaN. Raises ValueError naming the points when ids repeat, a kind is
    not one of MONITORING_POINT_KINDS, a range is not finite with range_min < range_max, or the
    thresholds are out of order (low_low <= low < high <= high_high, wherever set)."""

    def __init__(self, world: World):
        self.world = world
        points = world.monitoring_points
        self._cache: dict[str, Any] = {}
        self.point_ids = pd.Index(points["id"].astype(object).to_numpy())
        if not self.point_ids.is_unique:
            raise ValueError("world.monitoring_points has duplicate ids: "
                             + _name_some(self.point_ids[self.point_ids.duplicated()].to_numpy()))
        ids = self.point_ids.to_numpy()
        self.kind = points["kind"].astype(object).to_numpy()
        bad = ~np.isin(self.kind, np.array(MONITORING_POINT_KINDS, dtype=object))
        if bad.any():
            raise ValueError(f"monitoring points with a kind not in {MONITORING_POINT_KINDS}: {_name_some(ids[bad])}")
        self.unit = points["unit"].astype(object).to_numpy()
        self.hazard_source_id = points["hazard_source_id"].astype(object).to_numpy()
        substance = points["substance_un"].astype(object).to_numpy()
        self.substance_un = np.array([None if pd.isna(s) else str(s) for s in substance], dtype=object)  # per point
        self.low_low, self.low, self.high, self.high_high = (_float_column(points, c) for c in THRESHOLD_COLUMNS)
        self.range_min = _float_column(points, "range_min")
        self.range_max = _float_column(points, "range_max")
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(self.range_min) & np.isfinite(self.range_max) & (self.range_min < self.range_max))
        if bad.any():
            raise ValueError(f"monitoring points without a finite range_min < range_max: {_name_some(ids[bad])}")
        self.span = self.range_max - self.range_min
        # the side's outer (level 1) threshold: high (low) when set, else high_high (low_low)
        self.upper_1 = np.where(np.isnan(self.high), self.high_high, self.high)
        self.lower_1 = np.where(np.isnan(self.low), self.low_low, self.low)
        with np.errstate(invalid="ignore"):
            bad = ((self.high > self.high_high) | (self.low_low > self.low)
                   | (np.fmax(self.low, self.low_low) >= np.fmin(self.high, self.high_high)))
        if bad.any():
            raise ValueError("monitoring points whose thresholds are not low_low <= low < high <= high_high: "
                             + _name_some(ids[bad]))
        self.toxic = self.kind == TOXIC_KIND
        geometry = points.geometry
        self.lon = geometry.x.to_numpy("float64") if len(points) else np.empty(0)
        self.lat = geometry.y.to_numpy("float64") if len(points) else np.empty(0)

    def __len__(self) -> int:
        return len(self.point_ids)

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def describe(self, slot: int) -> dict:
        """What every point event's evidence says about its point."""
        return {
            "kind": str(self.kind[slot]),
            "unit": str(self.unit[slot]),
            "substance_un": self.substance_un[slot],
            "hazard_source_id": str(self.hazard_source_id[slot]),
            "range_min": float(self.range_min[slot]),
            "range_max": float(self.range_max[slot]),
        }

    def event(self, rule: str, slot: int, phase: str, start_ms, end_ms, severity: int, evidence: dict,
              at_ms=None) -> Event:
        """An event about the point at `slot`, located at the point, its description merged in
        (`at_ms`: an update's own instant)."""
        return make_event(rule, self.point_ids[slot], phase, start_ms, end_ms, self.lon[slot], self.lat[slot],
                          severity, {**self.describe(slot), **evidence}, at_ms=at_ms)


def point_severity(base: int, toxic: bool) -> int:
    """`base` one step more severe for a toxic-gas point, never above SEVERITY_HIGHEST."""
    return max(SEVERITY_HIGHEST, base - 1) if toxic else base


def level_severity(level: int, toxic: bool) -> int:
    """Level 2 -> 1, level 1 -> 2 (toxic gas: both 1)."""
    return point_severity(SEVERITY_HIGHEST if level >= 2 else SEVERITY_HIGH, toxic)


@dataclass(frozen=True)
class PointBatch:
    """Cleaned readings released to the point rules in one step, sorted by (slot, epoch_ms).

    Each point's readings reach the rules once, in strictly increasing time. `arrival_clock_ms`
    is the stage clock right after each reading arrived (running maximum of accepted reading
    times, in arrival order, with any earlier wall-clock advance): what the clock-driven rule
    (interruption) needs to decide, whatever the batching, whether silence had already lasted
    long enough before the reading broke it. `clock_ms` is the clock after the step (readings,
    then `now_ms`), `started_ms` its first value ever (when watching began); -1 before any."""

    slot: np.ndarray  # int64
    point_id: np.ndarray  # object
    epoch_ms: np.ndarray  # int64, UTC
    value: np.ndarray  # float64, finite
    arrival_clock_ms: np.ndarray  # int64
    clock_ms: int = -1
    started_ms: int = -1

    def __len__(self) -> int:
        return len(self.slot)

    @classmethod
    def empty(cls, clock_ms: int = -1, started_ms: int = -1) -> PointBatch:
        return cls(np.empty(0, "int64"), np.empty(0, object), np.empty(0, "int64"), np.empty(0, "float64"),
                   np.empty(0, "int64"), clock_ms, started_ms)

    def take(self, index) -> PointBatch:
        """The readings at `index` (mask or positions), order kept; same clocks."""
        columns = {f.name: getattr(self, f.name)[index] for f in fields(self) if f.name not in ("clock_ms", "started_ms")}
        return PointBatch(**columns, clock_ms=self.clock_ms, started_ms=self.started_ms)


def iso_or_none(epoch_ms) -> str | None:
    return None if epoch_ms is None or int(epoch_ms) < 0 else iso_time(int(epoch_ms))
