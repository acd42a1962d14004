"""Episodes with a minimum duration and hysteresis, per vehicle, across batches.

Boundary rules (route deviation, speeding, restricted zones…) share one shape: a violation
*opens* once the entering condition has held on consecutive pings for at least
`min_duration_ms` and `min_pings`, and *closes* at the first ping where the (looser) staying
condition no longer holds, so a truck jittering on an edge raises one episode, not fifty.

The scan is sequential per vehicle, so it runs as one numba kernel over the whole
(slot, time)-sorted batch with the per-vehicle state carried in arrays indexed by slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from spatial.rules.base import grow

IDLE, CANDIDATE, OPEN = 0, 1, 2
MARK_OPEN, MARK_CLOSE = 1, 2


@dataclass
class EpisodeState:
    """Per-slot state of the scan; arrays grow as new vehicles appear."""

    phase: np.ndarray = field(default_factory=lambda: np.zeros(0, "int8"))
    start_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    pings: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    peak: np.ndarray = field(default_factory=lambda: np.zeros(0, "float64"))
    last_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    last_lon: np.ndarray = field(default_factory=lambda: np.zeros(0, "float64"))
    last_lat: np.ndarray = field(default_factory=lambda: np.zeros(0, "float64"))

    def sized(self, n_slots: int) -> "EpisodeState":
        return EpisodeState(
            phase=grow(self.phase, n_slots, IDLE),
            start_ms=grow(self.start_ms, n_slots, 0),
            pings=grow(self.pings, n_slots, 0),
            peak=grow(self.peak, n_slots, -np.inf),
            last_ms=grow(self.last_ms, n_slots, 0),
            last_lon=grow(self.last_lon, n_slots, np.nan),
            last_lat=grow(self.last_lat, n_slots, np.nan),
        )

    def copy(self) -> "EpisodeState":
        return EpisodeState(*(a.copy() for a in (
            self.phase, self.start_ms, self.pings, self.peak, self.last_ms, self.last_lon, self.last_lat)))


@dataclass(frozen=True)
class EpisodeMarks:
    """What the scan found in one batch: one row per opened or closed episode.

    `index` is the ping (position in the batch) that opened or closed it; `start_ms` the first
    violating ping's time; `end_ms` the last violating ping's time (closes only, else -1);
    `peak` the largest value seen in the episode so far; `pings` how many violating pings;
    `last_lon`/`last_lat` the last violating ping's position."""

    kind: np.ndarray
    index: np.ndarray
    slot: np.ndarray
    start_ms: np.ndarray
    end_ms: np.ndarray
    peak: np.ndarray
    pings: np.ndarray
    last_lon: np.ndarray
    last_lat: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)


@njit(cache=True, nogil=True)
def _scan(slot, t, enter, stay, value, lon, lat, min_duration_ms, min_pings,
          phase, start_ms, pings, peak, last_ms, last_lon, last_lat,
          out_kind, out_index, out_start, out_end, out_peak, out_pings, out_lon, out_lat):  # pragma: no cover - numba
    n = 0
    for i in range(slot.shape[0]):
        s = slot[i]
        if phase[s] == OPEN:
            if stay[i]:
                pings[s] += 1
                if value[i] > peak[s]:
                    peak[s] = value[i]
                last_ms[s] = t[i]
                last_lon[s] = lon[i]
                last_lat[s] = lat[i]
                continue
            out_kind[n] = MARK_CLOSE
            out_index[n] = i
            out_start[n] = start_ms[s]
            out_end[n] = last_ms[s]
            out_peak[n] = peak[s]
            out_pings[n] = pings[s]
            out_lon[n] = last_lon[s]
            out_lat[n] = last_lat[s]
            n += 1
            phase[s] = IDLE
        if enter[i]:
            if phase[s] == IDLE:
                phase[s] = CANDIDATE
                start_ms[s] = t[i]
                pings[s] = 0
                peak[s] = value[i]
            pings[s] += 1
            if value[i] > peak[s]:
                peak[s] = value[i]
            last_ms[s] = t[i]
            last_lon[s] = lon[i]
            last_lat[s] = lat[i]
            if t[i] - start_ms[s] >= min_duration_ms and pings[s] >= min_pings:
                phase[s] = OPEN
                out_kind[n] = MARK_OPEN
                out_index[n] = i
                out_start[n] = start_ms[s]
                out_end[n] = -1
                out_peak[n] = peak[s]
                out_pings[n] = pings[s]
                out_lon[n] = lon[i]
                out_lat[n] = lat[i]
                n += 1
        else:
            phase[s] = IDLE
    return n


def scan_episodes(
    state: EpisodeState,
    slot: np.ndarray,
    epoch_ms: np.ndarray,
    enter: np.ndarray,
    stay: np.ndarray,
    value: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    min_duration_ms: int,
    min_pings: int,
) -> tuple[EpisodeState, EpisodeMarks]:
    """Advance every vehicle's episode through one (slot, time)-sorted batch.

    `enter` is the violation test (e.g. distance > corridor), `stay` the looser test that keeps
    an open episode open (distance > corridor - hysteresis); `value` is what `peak` tracks."""
    n_slots = int(slot.max()) + 1 if len(slot) else 0
    new = state.sized(n_slots).copy()
    m = len(slot)
    out = [np.empty(m, "int8"), np.empty(m, "int64"), np.empty(m, "int64"), np.empty(m, "int64"),
           np.empty(m, "float64"), np.empty(m, "int64"), np.empty(m, "float64"), np.empty(m, "float64")]
    n = _scan(
        np.ascontiguousarray(slot, "int64"), np.ascontiguousarray(epoch_ms, "int64"),
        np.ascontiguousarray(enter, bool), np.ascontiguousarray(stay | enter, bool),
        np.ascontiguousarray(value, "float64"), np.ascontiguousarray(lon, "float64"),
        np.ascontiguousarray(lat, "float64"), int(min_duration_ms), int(min_pings),
        new.phase, new.start_ms, new.pings, new.peak, new.last_ms, new.last_lon, new.last_lat, *out,
    )
    kind, index, start, end, peak, pings, last_lon, last_lat = (a[:n] for a in out)
    marks = EpisodeMarks(kind, index, np.asarray(slot)[index], start, end, peak, pings, last_lon, last_lat)
    return new, marks
