"""Rate of change: a monitoring point's value moving faster than its process can (DOMAIN.md §6).

At each reading the rate is taken over the trailing window: against the point's earliest
reading at most `rate_window_s` older (t_ref >= t - window, t_ref < t),
    rate_per_min = (value - value_ref) * 60000 / (t - t_ref)        [unit per minute],
so one noisy sample is spread over the window rather than read as a spike. With no earlier
reading in the window the rate is unknown. Rising and falling both count. An episode opens
once |rate| > `max_rate_fraction_per_min` x span (a rate exactly at the limit does not) has
held for `rate_min_duration_s` and `rate_min_readings` consecutive readings, stays open while
|rate| > limit - `rate_hysteresis_fraction_per_min` x span, and closes at the first reading
below that or with an unknown rate. Severity 3 (toxic gas 2).

The window logic runs in one numba pass over the batch and the readings kept from earlier
batches (those within the window of each point's latest reading). `warmed` takes earlier
readings into that window only, as context (a restarted monitor's replay, data/fleet_start.py
`replay_points`, and every point's window before the restart, `point_context`): no episode
opens, goes on or closes on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numba import njit

from spatial.model import Event
from spatial.rules.base import SEVERITY_MEDIUM, iso_time, setting
from spatial.rules.episodes import MARK_OPEN, EpisodeState, scan_episodes
from spatial.rules.point_base import PointBatch, PointWorld, point_severity

_MS_PER_MIN = 60_000.0


@dataclass(frozen=True)
class PointRateSettings:
    rate_window_s: float = setting(300.0, "s", "(engineering default) five one-minute samples")
    max_rate_fraction_per_min: float = setting(
        0.10, "fraction of range per minute", "(engineering default) far beyond normal filling, heating or "
                                              "pressurising; a leak, runaway or failing transmitter")
    rate_hysteresis_fraction_per_min: float = setting(
        0.02, "fraction of range per minute", "(engineering default) open until |rate| <= limit - this")
    rate_min_duration_s: float = setting(0.0, "s", "(engineering default)")
    rate_min_readings: int = setting(1, "readings", "(engineering default) the window already smooths")

    def __post_init__(self) -> None:
        for name in ("rate_window_s", "max_rate_fraction_per_min", "rate_hysteresis_fraction_per_min",
                     "rate_min_duration_s"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"point_rate setting {name} must be a finite number >= 0, got {value!r}")
        if not (self.rate_window_s > 0 and self.max_rate_fraction_per_min > 0):
            raise ValueError("point_rate rate_window_s and max_rate_fraction_per_min must be > 0")
        if self.rate_hysteresis_fraction_per_min > self.max_rate_fraction_per_min:
            raise ValueError("rate_hysteresis_fraction_per_min must not exceed max_rate_fraction_per_min")
        if int(self.rate_min_readings) != self.rate_min_readings or self.rate_min_readings < 1:
            raise ValueError(f"rate_min_readings must be a whole number >= 1, got {self.rate_min_readings!r}")


@dataclass(frozen=True)
class PointRateState:
    episodes: EpisodeState = field(default_factory=EpisodeState)
    # readings that a later reading's window may still reach, sorted by (slot, time)
    tail_slot: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))
    tail_ms: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))
    tail_value: np.ndarray = field(default_factory=lambda: np.empty(0, "float64"))


@njit(cache=True, nogil=True)
def _window_rates(slot, t, value, window_ms, rate, ref):  # pragma: no cover - numba
    """For (slot, time)-sorted readings: each one's rate per minute against the earliest reading
    of its point at most window_ms older (NaN, ref -1 when there is none). Two pointers."""
    j = 0
    for i in range(slot.shape[0]):
        if i == 0 or slot[i] != slot[i - 1]:
            j = i
        while j < i and t[j] < t[i] - window_ms:
            j += 1
        if j < i:
            rate[i] = (value[i] - value[j]) * 60000.0 / (t[i] - t[j])
            ref[i] = j
        else:
            rate[i] = np.nan
            ref[i] = -1


def window_rates(slot: np.ndarray, epoch_ms: np.ndarray, value: np.ndarray, window_ms: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rates per minute and reference positions (see the module doc) of sorted readings."""
    rate = np.empty(len(slot), "float64")
    ref = np.empty(len(slot), "int64")
    _window_rates(np.ascontiguousarray(slot, "int64"), np.ascontiguousarray(epoch_ms, "int64"),
                  np.ascontiguousarray(value, "float64"), int(window_ms), rate, ref)
    return rate, ref


@dataclass(frozen=True)
class PointRateRule:
    settings: PointRateSettings = field(default_factory=PointRateSettings)
    name: ClassVar[str] = "point_rate"

    def initial_state(self) -> PointRateState:
        return PointRateState()

    @property
    def context_ms(self) -> int:
        """How far before a reading the rule looks (its window): the readings a replay starting
        at some reading must give `warmed` for the rule to judge it as a running engine did."""
        return round(self.settings.rate_window_s * 1000)

    def warmed(self, state: PointRateState, batch: PointBatch) -> PointRateState:
        """`state` with `batch`'s readings in the window only, as context: each point's must be
        older than any it is stepped on afterwards. Nothing is judged on them (no rate, no event,
        the episodes as they were); a later reading takes its rate against them as against any
        earlier reading. A point's readings at or before the newest the state holds of it are left
        out (its window up to there is held already: a restart's replayed point, given every
        point's window again, data/fleet_start.py `point_context`; nothing is put before a reading
        the rule has judged), and of readings given twice at one time the first is kept, as the
        cleaning stage keeps it."""
        if not len(batch):
            return state
        order = np.lexsort((batch.epoch_ms, batch.slot))  # stable: of equal times the first given stays first
        slot, t, value = batch.slot[order], batch.epoch_ms[order], batch.value[order]
        fresh = np.r_[True, (slot[1:] != slot[:-1]) | (t[1:] != t[:-1])]
        if len(state.tail_slot):  # the newest held of each point (the tail is sorted by slot, time)
            last = np.r_[state.tail_slot[1:] != state.tail_slot[:-1], True]
            held_slot, held_ms = state.tail_slot[last], state.tail_ms[last]
            at = np.minimum(np.searchsorted(held_slot, slot), len(held_slot) - 1)
            fresh &= (held_slot[at] != slot) | (t > held_ms[at])
        slot_all = np.concatenate([state.tail_slot, slot[fresh]])
        t_all = np.concatenate([state.tail_ms, t[fresh]])
        order = np.lexsort((t_all, slot_all))
        slot_all, t_all = slot_all[order], t_all[order]
        v_all = np.concatenate([state.tail_value, value[fresh]])[order]
        keep = _reachable(slot_all, t_all, self.context_ms)
        return PointRateState(state.episodes, slot_all[keep], t_all[keep], v_all[keep])

    def step(self, state: PointRateState, batch: PointBatch, world: PointWorld) -> tuple[PointRateState, list[Event]]:
        if not len(batch):
            return state, []
        s = self.settings
        window_ms = round(s.rate_window_s * 1000)
        # earlier readings of a point precede its new ones: a stable sort by slot keeps time order
        slot_all = np.concatenate([state.tail_slot, batch.slot])
        order = np.argsort(slot_all, kind="stable")
        slot_all = slot_all[order]
        t_all = np.concatenate([state.tail_ms, batch.epoch_ms])[order]
        v_all = np.concatenate([state.tail_value, batch.value])[order]
        rate_all, ref_all = window_rates(slot_all, t_all, v_all, window_ms)
        new = order >= len(state.tail_slot)  # the batch's readings, in batch order
        rate, ref = rate_all[new], ref_all[new]

        slot = batch.slot
        span = world.span[slot]
        limit = s.max_rate_fraction_per_min * span
        speed = np.abs(rate)
        with np.errstate(invalid="ignore"):
            enter = speed > limit
            stay = speed > limit - s.rate_hysteresis_fraction_per_min * span
        zeros = np.zeros(len(batch))
        episodes, marks = scan_episodes(state.episodes, slot, batch.epoch_ms, enter, stay,
                                        np.where(np.isnan(speed), -np.inf, speed), zeros, zeros,
                                        round(s.rate_min_duration_s * 1000), int(s.rate_min_readings))
        events = []
        for k in range(len(marks)):  # one per event
            i, p = int(marks.index[k]), int(marks.slot[k])
            severity = point_severity(SEVERITY_MEDIUM, bool(world.toxic[p]))
            common = {"value": float(batch.value[i]), "time": iso_time(batch.epoch_ms[i]),
                      "limit_per_min": float(limit[i]), "window_s": float(s.rate_window_s),
                      "peak_rate_per_min": float(marks.peak[k]), "first_reading": iso_time(marks.start_ms[k]),
                      "readings": int(marks.pings[k])}
            if marks.kind[k] == MARK_OPEN:
                j = int(ref[i])
                events.append(world.event(self.name, p, "open", marks.start_ms[k], None, severity, {
                    **common, "rate_per_min": float(rate[i]), "threshold": float(limit[i]),
                    "rate_fraction_per_min": float(rate[i] / span[i]),
                    "reference_value": float(v_all[j]), "reference_time": iso_time(t_all[j])}))
            else:
                events.append(world.event(self.name, p, "close", marks.start_ms[k], marks.end_ms[k], severity, {
                    **common, "rate_per_min": None if np.isnan(rate[i]) else float(rate[i]),
                    "last_fast_reading": iso_time(marks.end_ms[k]),
                    "duration_s": (int(marks.end_ms[k]) - int(marks.start_ms[k])) / 1000.0}))

        keep = _reachable(slot_all, t_all, window_ms)
        return PointRateState(episodes, slot_all[keep], t_all[keep], v_all[keep]), events


def _reachable(slot: np.ndarray, epoch_ms: np.ndarray, window_ms: int) -> np.ndarray:
    """Of (slot, time)-sorted readings, those a later reading's window can reach: within the
    window of their point's latest."""
    last_of_run = np.r_[slot[1:] != slot[:-1], True]
    run_id = np.cumsum(np.r_[True, slot[1:] != slot[:-1]]) - 1
    latest = epoch_ms[last_of_run][run_id]
    return epoch_ms >= latest - window_ms
