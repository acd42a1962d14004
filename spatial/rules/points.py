"""The point stage: monitoring-point readings -> cleaning -> the point rules -> events.

One `PointEngine.step(readings, now_ms)`:

1. cleans the readings in arrival order, dropping and counting by reason
   - ``unknown_point``: the point id is not in `world.monitoring_points`;
   - ``invalid_value``: the value is NaN or infinite;
   - ``future``: later than the wall clock `now_ms` (when given) by more than `max_future_s`;
   - ``duplicate``: the same time as the point's latest accepted reading;
   - ``out_of_order``: older than the point's latest accepted reading;
   and releases the rest at once (no reorder window: a point has one transmitter, and its
   late readings are worth less than prompt alarms) sorted by (point slot, time), so every
   point's readings reach the rules once, in strictly increasing time;
2. advances the stage clock: the running maximum of accepted reading times in arrival
   order, then `now_ms` (the live wall clock, when the monitor passes it), never backwards;
3. steps every point rule (level, rate, stuck, range, interruption) on the released
   `PointBatch` - also when it is empty, so the clock-driven interruption rule sees time pass.

Streaming-correct: without `now_ms`, any split of the same readings (in the same arrival
order) into steps gives the same events, once sorted by `event_order`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from spatial.model import Event, ReadingBatch, World
from spatial.rules.base import grow, setting, settings_rows
from spatial.rules.base import sort_events
from spatial.rules.point_base import PointBatch, PointWorld
from spatial.rules.point_interruption import (
    NEVER,
    PointInterruptionRule,
    PointInterruptionSettings,
)
from spatial.rules.point_level import PointLevelRule, PointLevelSettings
from spatial.rules.point_range import PointRangeRule, PointRangeSettings
from spatial.rules.point_rate import PointRateRule, PointRateSettings
from spatial.rules.point_stuck import PointStuckRule, PointStuckSettings

__all__ = [
    "DROP_REASONS",
    "PointBatch",
    "PointCleaningSettings",
    "PointEngine",
    "PointEngineSettings",
    "PointWorld",
    "clean_readings",
    "point_rules",
    "point_settings_rows",
]

DROP_REASONS = ("unknown_point", "invalid_value", "future", "duplicate", "out_of_order")
_UNKNOWN, _INVALID, _FUTURE, _DUPLICATE, _OUT_OF_ORDER = range(len(DROP_REASONS))
NO_CLOCK = np.iinfo(np.int64).min


@dataclass(frozen=True)
class PointCleaningSettings:
    max_future_s: float = setting(
        300.0, "s", "(engineering default) data-logger clock skew tolerated against the live wall clock")

    def __post_init__(self) -> None:
        if not (np.isfinite(self.max_future_s) and self.max_future_s >= 0):
            raise ValueError(f"point cleaning max_future_s must be a finite number >= 0, got {self.max_future_s!r}")


@dataclass(frozen=True)
class PointEngineSettings:
    """Every threshold of the point stage (the rule modules say what sets each)."""

    cleaning: PointCleaningSettings = field(default_factory=PointCleaningSettings)
    point_level: PointLevelSettings = field(default_factory=PointLevelSettings)
    point_rate: PointRateSettings = field(default_factory=PointRateSettings)
    point_stuck: PointStuckSettings = field(default_factory=PointStuckSettings)
    point_range: PointRangeSettings = field(default_factory=PointRangeSettings)
    point_interruption: PointInterruptionSettings = field(default_factory=PointInterruptionSettings)


def point_settings_rows(settings: PointEngineSettings = PointEngineSettings()) -> list[dict]:
    """Every threshold as rows {rule, name, value, unit, source} (for `hazmap rules settings`)."""
    rows: list[dict] = []
    for f in fields(settings):
        rows.extend(settings_rows(f.name if f.name != "cleaning" else "point_cleaning", getattr(settings, f.name)))
    return rows


@dataclass(frozen=True)
class CleaningState:
    clock_ms: int = NO_CLOCK
    started_ms: int = NO_CLOCK
    # per slot: the time of the point's latest accepted reading (NO_CLOCK: none yet)
    last_ms: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))


@njit(cache=True, nogil=True)
def _clean(slot, t, value, future_limit_ms, last_ms, clock_ms, reason, arrival_clock):  # pragma: no cover - numba
    """Arrival-order pass: the drop reason of each reading (-1 kept), the clock after each
    kept one; updates `last_ms` in place and returns the clock at the end."""
    for i in range(slot.shape[0]):
        s = slot[i]
        if s < 0:
            reason[i] = 0
        elif not np.isfinite(value[i]):
            reason[i] = 1
        elif t[i] > future_limit_ms:
            reason[i] = 2
        elif t[i] == last_ms[s]:
            reason[i] = 3
        elif t[i] < last_ms[s]:
            reason[i] = 4
        else:
            reason[i] = -1
            last_ms[s] = t[i]
            clock_ms = max(clock_ms, t[i])
            arrival_clock[i] = clock_ms
    return clock_ms


def clean_readings(state: CleaningState, readings: ReadingBatch, world: PointWorld, now_ms: int | None = None,
                   settings: PointCleaningSettings = PointCleaningSettings(),
                   ) -> tuple[CleaningState, PointBatch, dict[str, int]]:
    """Take readings in arrival order; return the new state, the released PointBatch (sorted
    by slot and time, clocks set) and the number dropped for each reason."""
    slot = world.point_ids.get_indexer(np.asarray(readings.point_id, dtype=object)).astype("int64")
    t = np.ascontiguousarray(readings.epoch_ms, "int64")
    value = np.ascontiguousarray(readings.value, "float64")
    last_ms = grow(state.last_ms, len(world), NO_CLOCK).copy()
    future_limit = np.iinfo(np.int64).max if now_ms is None else int(now_ms) + round(settings.max_future_s * 1000)
    reason = np.empty(len(slot), "int8")
    arrival_clock = np.empty(len(slot), "int64")
    clock = int(_clean(slot, t, value, future_limit, last_ms, np.int64(state.clock_ms), reason, arrival_clock))
    counts = {name: int(np.count_nonzero(reason == code)) for code, name in enumerate(DROP_REASONS)}
    kept = np.flatnonzero(reason < 0)
    kept = kept[np.argsort(slot[kept], kind="stable")]  # a point's kept readings arrive in time order
    if now_ms is not None:
        clock = max(clock, int(now_ms))
    started = state.started_ms
    if started == NO_CLOCK and clock != NO_CLOCK:
        # the clock's first value: the first kept reading in arrival order, else this wall clock
        started = int(t[np.flatnonzero(reason < 0)[0]]) if len(kept) else clock
    batch = PointBatch(
        slot=slot[kept], point_id=world.point_ids.to_numpy()[slot[kept]], epoch_ms=t[kept], value=value[kept],
        arrival_clock_ms=arrival_clock[kept],
        clock_ms=-1 if clock == NO_CLOCK else clock, started_ms=-1 if started == NO_CLOCK else started)
    return CleaningState(clock, started, last_ms), batch, counts


def point_rules(settings: PointEngineSettings = PointEngineSettings(), *, clock_driven: bool = True) -> tuple:
    """The five point rules built from `settings` (without the clock-driven interruption rule
    when `clock_driven` is false: what a replay of stored readings can restore, PointEngine.resume)."""
    rules = (
        PointLevelRule(settings.point_level),
        PointRateRule(settings.point_rate),
        PointStuckRule(settings.point_stuck),
        PointRangeRule(settings.point_range),
        PointInterruptionRule(settings.point_interruption),
    )
    return rules if clock_driven else tuple(r for r in rules if r.name != PointInterruptionRule.name)


class PointEngine:
    """Stateful: feed it reading batches in arrival order; it returns the events they cause."""

    def __init__(self, world: World, settings: PointEngineSettings = PointEngineSettings(),
                 rules: tuple | None = None):
        """`rules`: the point rules to run, default all five built from `settings`."""
        self.settings = settings
        self.world = PointWorld(world)
        self.rules = tuple(rules) if rules is not None else point_rules(settings)
        self._cleaning = CleaningState()
        self._rule_states: list[Any] = [rule.initial_state() for rule in self.rules]
        self._drop_counts = dict.fromkeys(DROP_REASONS, 0)
        self._released = 0

    @property
    def clock_ms(self) -> int | None:
        """The stage clock (latest accepted reading time or wall clock passed in; None before any)."""
        return None if self._cleaning.clock_ms == NO_CLOCK else int(self._cleaning.clock_ms)

    @property
    def drop_counts(self) -> dict[str, int]:
        return dict(self._drop_counts)

    @property
    def released_count(self) -> int:
        return self._released

    def settings_rows(self) -> list[dict]:
        return point_settings_rows(self.settings)

    def step(self, readings: ReadingBatch, now_ms: int | None = None) -> list[Event]:
        self._cleaning, batch, counts = clean_readings(self._cleaning, readings, self.world, now_ms,
                                                       self.settings.cleaning)
        for reason, n in counts.items():
            self._drop_counts[reason] += n
        self._released += len(batch)
        events: list[Event] = []
        for i, rule in enumerate(self.rules):
            self._rule_states[i], rule_events = rule.step(self._rule_states[i], batch, self.world)
            events.extend(rule_events)
        return sort_events(events)

    @property
    def context_ms(self) -> int:
        """How far before a reading its rules look (the rate rule's window; 0 with no such rule):
        what a replay starting at some reading gives `warm` first (data/fleet_start.py
        `replay_points`)."""
        return max((rule.context_ms for rule in self.rules if hasattr(rule, "warmed")), default=0)

    def warm(self, readings: ReadingBatch) -> None:
        """Readings from before those this engine is then stepped on (each point's older than any
        of its later ones), as context only: the rules that judge a reading against earlier ones
        (the rate rule's window: `warmed`) take them in; nothing is judged on them, no event is
        raised, no other rule's state nor the cleaning stage changes. Unknown points and invalid
        values are left out, as the cleaning stage drops them; so is a point's reading at or before
        the newest such a rule holds of it (its window held already). A restarted monitor warms its
        replay with the window before each replayed point's start (data/fleet_start.py
        `replay_points`), then its resumed engine with every point's window before its newest stored
        reading (`point_context`; `resume` first: the replayed points hold theirs, and the cleaning
        stage's last accepted readings drop anything not newer afterwards)."""
        slot = self.world.point_ids.get_indexer(np.asarray(readings.point_id, dtype=object)).astype("int64")
        t = np.asarray(readings.epoch_ms, "int64")
        value = np.asarray(readings.value, "float64")
        kept = np.flatnonzero((slot >= 0) & np.isfinite(value))
        batch = PointBatch(slot=slot[kept], point_id=self.world.point_ids.to_numpy()[slot[kept]], epoch_ms=t[kept],
                           value=value[kept], arrival_clock_ms=t[kept])
        for i, rule in enumerate(self.rules):
            if hasattr(rule, "warmed"):
                self._rule_states[i] = rule.warmed(self._rule_states[i], batch)

    def resume(self, newest_ms: pd.Series, open_silences: pd.Series, replayed: "PointEngine | None" = None) -> None:
        """A restarted monitor's points, before any reading: `newest_ms` each point's newest stored
        reading (epoch ms by point id), `open_silences` the start of each interruption episode the
        store holds open (epoch ms by point id: the point has not been heard from since). The
        interruption rule goes on from them instead of treating every point as never heard from
        (silent since the restart, its stored silence closed and raised again as a new one).
        `replayed`: an engine that ran the other rules over the store's readings (data/fleet_start.py
        `replay_points`); their states are taken from it, so an alarm open at the stop goes on and
        closes under its own episode at the reading that ends it. The cleaning stage's clock stays
        this engine's (the interruption rule's "since the restart" for points never heard from)."""
        if replayed is not None:
            states = {rule.name: state for rule, state in zip(replayed.rules, replayed._rule_states)}
            for i, rule in enumerate(self.rules):
                if rule.name != PointInterruptionRule.name and rule.name in states:
                    self._rule_states[i] = states[rule.name]
        ids = self.world.point_ids
        at = ids.get_indexer(pd.Index(newest_ms.index.astype(object)))
        known = at >= 0  # points no longer in the world are left out
        # a reading the last run accepted, sent again (a broker's redelivery, a retained message), is
        # a duplicate here too, not a new reading for rules that go on from the stored ones
        cleaned = grow(self._cleaning.last_ms, len(ids), NO_CLOCK).copy()
        cleaned[at[known]] = np.maximum(cleaned[at[known]], newest_ms.to_numpy("int64")[known])
        self._cleaning = CleaningState(self._cleaning.clock_ms, self._cleaning.started_ms, cleaned)
        slot = {rule.name: i for i, rule in enumerate(self.rules)}.get(PointInterruptionRule.name)
        if slot is None:
            return
        last_ms = np.full(len(ids), NEVER, "int64")
        silent = np.zeros(len(ids), bool)
        for values, is_open in ((newest_ms, False), (open_silences, True)):
            at = ids.get_indexer(pd.Index(values.index.astype(object)))
            known = at >= 0
            last_ms[at[known]] = np.maximum(last_ms[at[known]], values.to_numpy("int64")[known])
            silent[at[known]] |= is_open
        self._rule_states[slot] = self.rules[slot].resumed_state(len(ids), last_ms, silent)

    def advance(self, now_ms: int) -> list[Event]:
        """Only the wall clock moved (no readings): the silence-driven events it causes."""
        return self.step(ReadingBatch.from_arrays([], [], []), now_ms)

    def flush(self) -> list[Event]:
        """End of input. Readings are never held, so nothing is left to release: no events."""
        return []

    def run(self, readings: ReadingBatch) -> list[Event]:
        """One batch, then flush: the events of a whole reading file."""
        return sort_events(self.step(readings) + self.flush())
