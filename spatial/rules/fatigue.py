"""Fatigue: more than 4 h of continuous driving without a rest of at least 20 min.

道路交通安全法实施条例 art. 62 (DOMAIN.md §4): driving for more than 4 h in a row without
stopping to rest, or resting less than 20 min, is a violation.

Per vehicle, over its pings in time order:

* A *rest* is either
  - a stop from the stop stage (RuleBatch.stops_opened / stops_closed) that has lasted
    `min_rest_s`: it counts, starting at the stop's first ping (`start_ms`), at the first ping
    of the vehicle inside the stop (at or after the stop stage confirmed it at `confirmed_ms`,
    at or before its last stopped ping `end_ms`) that is `min_rest_s` or more after the stop's
    start. Stops still open are carried in the state, so a rest is seen however the pings are
    batched. (A stop the stop stage confirms at 5 min becomes a rest at 20 min.)
  - a gap without pings of at least `min_rest_s` whose two ends lie within
    `rest_max_distance_m` of each other (it starts at the earlier ping and counts at the later).
    That distance mirrors the stop stage's `StopSettings.stop_max_diameter_m` (100 m).
  A rest ends at the vehicle's last ping at rest: the driving period begins there (`since`).
  The vehicle's first ping begins its first driving period.
* The truck *drives* as far as it has left the spot where it was last seen driving: a ping is
  *moving* when it is outside any stop and farther than `rest_max_distance_m` from the last
  moving ping (the first ping, or the last ping at rest, to start with). Continuous driving at
  a moving ping is its time minus `since`. Time spent standing is never lost: a standing
  truck's time counts as soon as it drives off again, unless the standing became a rest. This
  keeps a driver who parks at 3 h 59 min and rests 20 min from raising anything while the stop
  stage waits its 5 min to confirm the stop.
* An episode *opens* at the first moving ping where continuous driving exceeds
  `max_continuous_driving_s` (strictly: exactly 4 h is not a violation) and *closes* at the
  ping where the next rest counts. Its end is the rest's start (not before the episode's
  start): the truck drove on until then.

Sequential per vehicle, so one numba kernel walks the (slot, time)-sorted batch with per-slot
state arrays; which stop each ping lies in is found vectorised beforehand.

Evidence: open — `driving_s`, `since`, `last_rest` ({kind, start, end} or None), the
thresholds; close adds `rest_kind` (stop | gap), `rest_start`, `rest_counted` (the ping at which
the rest reached `min_rest_s`), `driving_s_total` (since → rest start) and `duration_s`.
Severity 2 (SEVERITY_HIGH): a tired driver of a loaded hazmat truck.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numba import njit

from spatial.model import Event
from spatial.rules.base import (
    SEVERITY_HIGH,
    STOP_COLUMNS,
    RuleBatch,
    RuleWorld,
    grow,
    iso_times,
    make_event,
    setting,
)

RULE_NAME = "fatigue"
_LAW = "道路交通安全法实施条例 art. 62"
REST_NONE, REST_STOP, REST_GAP = 0, 1, 2
REST_KINDS = (None, "stop", "gap")
IDLE, OPEN = 0, 2
MARK_OPEN, MARK_CLOSE = 1, 2
NO_TIME = np.iinfo(np.int64).min


@dataclass(frozen=True)
class FatigueSettings:
    max_continuous_driving_s: float = setting(14400.0, "s", _LAW + ": more than 4 h of continuous driving")
    min_rest_s: float = setting(1200.0, "s", _LAW + ": a rest of at least 20 min")
    # Mirrors the stop stage's StopSettings.stop_max_diameter_m (a stop's largest extent).
    rest_max_distance_m: float = setting(
        100.0, "m", "(engineering default) mirrors StopSettings.stop_max_diameter_m: gap ends this close are a rest")

    def __post_init__(self):
        for name in ("max_continuous_driving_s", "min_rest_s", "rest_max_distance_m"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise ValueError(f"FatigueSettings.{name} must be a positive finite number, got {value!r}")


_SLOT_FIELDS = {
    # name: (dtype, fill for a new slot)
    "prev_t": ("int64", NO_TIME), "prev_x": ("float64", np.nan), "prev_y": ("float64", np.nan),
    "anchor_x": ("float64", np.nan), "anchor_y": ("float64", np.nan),
    "since": ("int64", NO_TIME), "resting": (bool, False), "phase": ("int8", IDLE),
    "episode_start": ("int64", NO_TIME), "rest_start": ("int64", NO_TIME), "rest_end": ("int64", NO_TIME),
    "rest_kind": ("int8", REST_NONE),
    # the stop open now (from the stop stage): its start and confirmation, NO_TIME for none
    "stop_start": ("int64", NO_TIME), "stop_confirmed": ("int64", NO_TIME),
}


@dataclass(frozen=True)
class FatigueState:
    """Per-slot arrays (see _SLOT_FIELDS); `open` maps a slot with an open episode to its
    opening event."""

    arrays: dict = field(default_factory=lambda: {k: np.zeros(0, d) for k, (d, _) in _SLOT_FIELDS.items()})
    open: dict = field(default_factory=dict)

    def sized(self, n_slots: int) -> dict:
        return {k: grow(self.arrays[k], n_slots, fill).copy() for k, (_, fill) in _SLOT_FIELDS.items()}


@njit(cache=True, nogil=True)
def _walk(slot, t, x, y, in_stop, max_ms, min_rest_ms, max_d,
          prev_t, prev_x, prev_y, anchor_x, anchor_y, since, resting, phase, episode_start,
          rest_start, rest_end, rest_kind,
          out_kind, out_index, out_start, out_since, out_rest_start, out_rest_kind, out_rest_end):  # pragma: no cover
    n_out = 0
    for i in range(slot.shape[0]):
        s = slot[i]
        if prev_t[s] == NO_TIME:  # the vehicle's first ping begins its first driving period
            since[s] = t[i]
            anchor_x[s] = x[i]
            anchor_y[s] = y[i]
        else:
            gap_rest = t[i] - prev_t[s] >= min_rest_ms and math.hypot(x[i] - prev_x[s], y[i] - prev_y[s]) <= max_d
            stop_rest = in_stop[i] != NO_TIME and t[i] - in_stop[i] >= min_rest_ms
            if gap_rest or stop_rest:
                if stop_rest and (not gap_rest or in_stop[i] <= prev_t[s]):
                    began, kind = in_stop[i], REST_STOP
                else:
                    began, kind = prev_t[s], REST_GAP
                if not resting[s]:  # a rest counts now
                    if phase[s] == OPEN:
                        out_kind[n_out] = MARK_CLOSE
                        out_index[n_out] = i
                        out_start[n_out] = episode_start[s]
                        out_since[n_out] = since[s]
                        out_rest_start[n_out] = began
                        out_rest_kind[n_out] = kind
                        out_rest_end[n_out] = NO_TIME
                        n_out += 1
                        phase[s] = IDLE
                    rest_start[s] = began
                    rest_kind[s] = kind
                    resting[s] = True
                since[s] = t[i]  # still at rest: driving begins after this ping
                rest_end[s] = t[i]
                anchor_x[s] = x[i]
                anchor_y[s] = y[i]
            elif in_stop[i] == NO_TIME and math.hypot(x[i] - anchor_x[s], y[i] - anchor_y[s]) > max_d:
                resting[s] = False
                anchor_x[s] = x[i]
                anchor_y[s] = y[i]
                if phase[s] != OPEN and t[i] - since[s] > max_ms:
                    phase[s] = OPEN
                    episode_start[s] = t[i]
                    out_kind[n_out] = MARK_OPEN
                    out_index[n_out] = i
                    out_start[n_out] = t[i]
                    out_since[n_out] = since[s]
                    out_rest_start[n_out] = rest_start[s]
                    out_rest_kind[n_out] = rest_kind[s]
                    out_rest_end[n_out] = rest_end[s]
                    n_out += 1
        prev_t[s] = t[i]
        prev_x[s] = x[i]
        prev_y[s] = y[i]
    return n_out


def _stops(frame: pd.DataFrame | None, what: str) -> pd.DataFrame | None:
    if frame is None or not len(frame):
        return None
    missing = [c for c in STOP_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{RULE_NAME}: batch.{what} lacks columns {missing}")
    return frame


def _first_not_before(slot: np.ndarray, t: np.ndarray, q_slot: np.ndarray, q_t: np.ndarray, strict: bool
                      ) -> np.ndarray:
    """For each query, the first position in the (slot, time)-sorted arrays whose (slot, time)
    is >= (q_slot, q_t), or > it when `strict`; bisection over all queries at once."""
    lo = np.zeros(len(q_slot), "int64")
    hi = np.full(len(q_slot), len(slot), "int64")
    while True:
        searching = lo < hi
        if not searching.any():
            return lo
        mid = np.minimum((lo + hi) // 2, max(len(slot) - 1, 0))
        s_mid, t_mid = slot[mid], t[mid]
        before = (s_mid < q_slot) | ((s_mid == q_slot) & ((t_mid <= q_t) if strict else (t_mid < q_t)))
        lo = np.where(searching & before, mid + 1, lo)
        hi = np.where(searching & ~before, mid, hi)


class FatigueRule:
    """Continuous driving beyond 4 h without a 20-min rest (see the module docstring)."""

    name = RULE_NAME

    def __init__(self, settings: FatigueSettings | None = None):
        self.settings = settings if settings is not None else FatigueSettings()

    def initial_state(self) -> FatigueState:
        return FatigueState()

    def step(self, state: FatigueState, batch: RuleBatch, world: RuleWorld) -> tuple[FatigueState, list[Event]]:
        opened = _stops(batch.stops_opened, "stops_opened")
        closed = _stops(batch.stops_closed, "stops_closed")
        n = len(batch)
        if not n and opened is None and closed is None:
            return state, []
        slot = np.asarray(batch.slot, "int64")
        t = np.asarray(batch.epoch_ms, "int64")
        n_slots = max([int(slot.max()) + 1 if n else 0,
                       *(int(f["slot"].max()) + 1 for f in (opened, closed) if f is not None)])
        a = state.sized(n_slots)
        in_stop = self._stop_of_each_ping(a, slot, t, opened, closed)

        s = self.settings
        out = [np.empty(n, "int8"), np.empty(n, "int64"), np.empty(n, "int64"), np.empty(n, "int64"),
               np.empty(n, "int64"), np.empty(n, "int8"), np.empty(n, "int64")]
        k = _walk(slot, t, np.ascontiguousarray(batch.x, "float64"), np.ascontiguousarray(batch.y, "float64"),
                  in_stop, round(s.max_continuous_driving_s * 1000), round(s.min_rest_s * 1000),
                  float(s.rest_max_distance_m),
                  a["prev_t"], a["prev_x"], a["prev_y"], a["anchor_x"], a["anchor_y"], a["since"], a["resting"],
                  a["phase"], a["episode_start"], a["rest_start"], a["rest_end"], a["rest_kind"], *out)
        kind, index, start, since, rest_start, rest_kind, rest_end = (o[:k] for o in out)
        open_now = dict(state.open)
        events = self._events(batch, open_now, kind, index, start, since, rest_start, rest_kind, rest_end)
        return FatigueState(a, open_now), events

    def _stop_of_each_ping(self, a: dict, slot, t, opened, closed) -> np.ndarray:
        """The start of the confirmed stop each ping lies in (NO_TIME: none), and the state's
        open stops brought up to the end of the batch (in `a`)."""
        n = len(slot)
        in_stop = np.full(n, NO_TIME, "int64")
        carried = np.flatnonzero(a["stop_start"] != NO_TIME)
        iv_slot = [carried]
        iv_start = [a["stop_start"][carried]]
        iv_confirmed = [a["stop_confirmed"][carried]]
        if opened is not None:
            iv_slot.append(opened["slot"].to_numpy("int64"))
            iv_start.append(opened["start_ms"].to_numpy("int64"))
            iv_confirmed.append(opened["confirmed_ms"].to_numpy("int64"))
        iv_slot, iv_start, iv_confirmed = (np.concatenate(v) for v in (iv_slot, iv_start, iv_confirmed))
        iv_end = np.full(len(iv_slot), np.iinfo(np.int64).max)
        if closed is not None and len(iv_slot):
            # a close matches the open stop of the same vehicle and start; others were opened
            # before this rule's state began and pass silently
            at = pd.MultiIndex.from_arrays([iv_slot, iv_start]).get_indexer(
                pd.MultiIndex.from_arrays([closed["slot"].to_numpy("int64"), closed["start_ms"].to_numpy("int64")]))
            ok = at >= 0
            iv_end[at[ok]] = closed["end_ms"].to_numpy("int64")[ok]
        if len(iv_slot) and n:
            lo = _first_not_before(slot, t, iv_slot, iv_confirmed, strict=False)
            hi = _first_not_before(slot, t, iv_slot, iv_end, strict=True)
            count = np.maximum(hi - lo, 0)
            offsets = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
            in_stop[np.repeat(lo, count) + offsets] = np.repeat(iv_start, count)
        # the stops open after this batch: the carried ones not closed, then the ones opened
        still = iv_end == np.iinfo(np.int64).max
        a["stop_start"][iv_slot[~still]] = NO_TIME
        a["stop_confirmed"][iv_slot[~still]] = NO_TIME
        a["stop_start"][iv_slot[still]] = iv_start[still]
        a["stop_confirmed"][iv_slot[still]] = iv_confirmed[still]
        return in_stop

    def _events(self, batch, open_now, kind, index, start, since, rest_start, rest_kind, rest_end) -> list[Event]:
        if not len(kind):
            return []
        s = self.settings
        thresholds = {"max_continuous_driving_s": float(s.max_continuous_driving_s), "min_rest_s": float(s.min_rest_s),
                      "rest_max_distance_m": float(s.rest_max_distance_m)}
        t = np.asarray(batch.epoch_ms, "int64")[index]
        known = lambda v: np.where(v == NO_TIME, 0, v)
        since_text, rest_start_text, rest_end_text, t_text = (
            iso_times(known(v)) for v in (since, rest_start, rest_end, t))
        events = []
        for k in range(len(kind)):  # one turn per event, not per ping
            i = int(index[k])
            vehicle = str(batch.vehicle_id[i])
            slot = int(batch.slot[i])
            if kind[k] == MARK_OPEN:
                last_rest = None if rest_kind[k] == REST_NONE else {
                    "kind": REST_KINDS[rest_kind[k]], "start": rest_start_text[k], "end": rest_end_text[k]}
                evidence = {"driving_s": (int(t[k]) - int(since[k])) / 1000.0, "since": since_text[k],
                            "last_rest": last_rest, **thresholds}
                event = make_event(RULE_NAME, vehicle, "open", int(start[k]), None, batch.lon[i], batch.lat[i],
                                   SEVERITY_HIGH, evidence)
                open_now[slot] = event
            else:
                opening = open_now.pop(slot, None)
                if opening is None:
                    raise RuntimeError(f"{RULE_NAME}: episode of {vehicle} closed but never opened")
                end_ms = max(int(rest_start[k]), int(start[k]))
                evidence = {**opening.evidence, "rest_kind": REST_KINDS[rest_kind[k]],
                            "rest_start": rest_start_text[k], "rest_counted": t_text[k],
                            "driving_s_total": (max(int(rest_start[k]), int(since[k])) - int(since[k])) / 1000.0,
                            "duration_s": (end_ms - int(start[k])) / 1000.0}
                event = dataclasses.replace(opening, phase="close", end=pd.Timestamp(end_ms, unit="ms", tz="UTC"),
                                            lon=float(batch.lon[i]), lat=float(batch.lat[i]), evidence=evidence)
            events.append(event)
        return events
