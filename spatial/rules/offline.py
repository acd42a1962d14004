"""Offline trucks, and feed outages: silence judged by arrival where the feed stamps it.

Which time a "ping" has here. Where the gateway stamped each report's arrival (live JT/T 808
traffic), the rule is given the pings at their arrival instants (cleaning's `silence_ms`: never
going backwards, per truck or fleet-wide) and judges silence up to the engine's settled instant
(`settled_ms`: before every arrival still to be released). A terminal whose clock lags the fleet,
or one uploading its blind-area backlog, is talking, so it is neither called offline nor lost
from the counts; a truck from which nothing arrives for `offline_after_s` is offline, whatever
times its late reports carry when they come. Without stamps (track files, the simulator's direct
path, a simulation whose clock is the data's) the pings' own times are used, against the clock
minus the reorder window; pings that were already more than the window behind the clock when they
came are not given (for the rule, a truck was silent while its backlog was on the way). The
evidence's times are those instants.

**offline** (DOMAIN.md §4, engineering default): a truck whose last ping was on an active
waybill (`batch.waybill >= 0` at that ping; a truck that goes quiet between trips is not
watched) sends nothing for `offline_after_s`. The episode starts at that last ping (the
evidence gives the instant it became offline, last ping + offline_after_s, and the instant
it was raised) and closes at the truck's next ping; a truck that never reports again stays
offline.

**feed_outage** (subject "FEED"): most trucks falling silent together means the feed, not
the trucks, failed. At an instant s, a truck is *tracked* when its last ping before s was on
an active waybill and is less than `outage_window_s` old, and *silent* when it is tracked and
at least `offline_after_s` old. The feed is out while at least `outage_min_share` of the
tracked trucks are silent (and at least `outage_min_vehicles` are tracked); it recovers once
the share drops below `outage_close_share` (when fewer trucks are tracked, the state holds).
A truck silent for `outage_window_s` is no longer tracked, so a partial outage (some trucks
still reporting) ends after that long and its still-silent trucks are raised one by one; a
total one holds until trucks report again. The outage is drawn at the median of the fleet's
home points.
An `offline` episode is raised from the first instant x at or after last ping +
`offline_after_s` (and no later than the next ping) with no feed outage anywhere in
[x, x + `outage_grace_s`]: when the feed dies, the trucks' last pings spread over up to one
parked reporting interval, so the first trucks past their threshold are not raised one by one
just before the outage is recognised. So an offline truck is raised `outage_grace_s` after it
went offline (the evidence's `raised_at` is x), a truck silent through an outage is raised at
its end if still silent (`after_feed_outage`), and one that reported before is never raised.

Exactness and streaming. Every decision is a function of ping times and clock values only.
Time is integer milliseconds, and the state at instant s depends on the pings strictly
before s (so a gap of exactly `offline_after_s` is offline: at the instant the next ping
comes the truck has been silent for the whole threshold). Every ping up to the settled instant
H (clock - window without stamps, `settled_ms` with them) is known and every instant up to H is
final: each step sweeps the instants (H_prev, H]. The tracked and silent counts change only where a truck starts or stops being
tracked or silent, so the sweep visits those change points (few: a truck reporting every 30 s
makes none), derived vectorised from the gaps between consecutive pings and from each truck's
last ping; the outage state along them is a forward fill. Change points past H from pings
released early (the engine's flush) wait in the state, as do silences whose outcome depends
on instants past H, so one batch, single pings and any chunking give the same events.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import shapely

from spatial.model import Event
from spatial.rules.base import (
    SEVERITY_HIGH,
    SEVERITY_MEDIUM,
    RuleBatch,
    RuleWorld,
    grow,
    iso_time,
    iso_times,
    make_event,
    previous_in_run,
    run_starts,
    setting,
)

NONE_MS = np.iinfo(np.int64).min
BEFORE_ALL_MS = -(2**62)  # the horizon before the first step
FEED_SUBJECT = "FEED"
FEED_OUTAGE = "feed_outage"


@dataclass(frozen=True)
class OfflineSettings:
    offline_after_s: float = setting(
        1200.0, "s", "DOMAIN.md §4 (engineering default): offline after ≥ 20 min without data")
    outage_window_s: float = setting(
        3600.0, "s", "(engineering default) trucks that reported this recently count towards a feed outage")
    outage_min_share: float = setting(
        0.5, "share", "(engineering default) share of tracked trucks silent at once that makes a feed outage")
    outage_close_share: float = setting(
        0.5, "share", "(engineering default) the outage ends when the silent share drops below this")
    outage_min_vehicles: int = setting(
        10, "trucks", "(engineering default) fewer tracked trucks than this never make an outage")
    outage_grace_s: float = setting(
        300.0, "s", "DOMAIN.md §4: trucks report at least every 5 min when parked, so the last pings before a "
                    "feed dies spread over at most this long; a truck is raised offline only when no outage "
                    "begins within this long after it went offline")

    def __post_init__(self):
        if not (np.isfinite(self.offline_after_s) and self.offline_after_s > 0):
            raise ValueError(f"offline_after_s must be a finite number > 0, got {self.offline_after_s!r}")
        if not (np.isfinite(self.outage_window_s) and self.outage_window_s > self.offline_after_s):
            raise ValueError(f"outage_window_s must be finite and longer than offline_after_s "
                             f"({self.outage_window_s!r} <= {self.offline_after_s!r})")
        if not 0 < self.outage_min_share <= 1:
            raise ValueError(f"outage_min_share must be in (0, 1], got {self.outage_min_share!r}")
        if not 0 < self.outage_close_share <= self.outage_min_share:
            raise ValueError(f"outage_close_share must be in (0, outage_min_share], got {self.outage_close_share!r}")
        if not (np.isfinite(self.outage_grace_s) and self.outage_grace_s >= 0):
            raise ValueError(f"outage_grace_s must be a finite number >= 0, got {self.outage_grace_s!r}")
        if int(self.outage_min_vehicles) != self.outage_min_vehicles or self.outage_min_vehicles < 1:
            raise ValueError(f"outage_min_vehicles must be a whole number >= 1, got {self.outage_min_vehicles!r}")


def _empty(dtype) -> np.ndarray:
    return np.empty(0, dtype)


@dataclass(frozen=True)
class OfflineState:
    # per slot: the last released ping (NONE_MS none), whether it was on a waybill, where
    last_ms: np.ndarray = field(default_factory=lambda: _empty("int64"))
    last_counted: np.ndarray = field(default_factory=lambda: _empty(bool))
    last_waybill: np.ndarray = field(default_factory=lambda: _empty("int64"))
    last_lon: np.ndarray = field(default_factory=lambda: _empty("float64"))
    last_lat: np.ndarray = field(default_factory=lambda: _empty("float64"))
    # per slot: the last ping of the open offline episode (NONE_MS: not offline)
    open_since_ms: np.ndarray = field(default_factory=lambda: _empty("int64"))
    horizon_ms: int = BEFORE_ALL_MS  # every instant up to here is swept
    tracked: int = 0  # counts at the horizon
    silent: int = 0
    outage_start_ms: int = NONE_MS  # NONE_MS: the feed is up
    # outage transitions recent enough to matter (after each, out or not), and the state before
    log_ms: np.ndarray = field(default_factory=lambda: _empty("int64"))
    log_out: np.ndarray = field(default_factory=lambda: _empty(bool))
    log_out_before: bool = False
    # change points past the horizon from pings already released: time, d_tracked, d_silent
    future_ms: np.ndarray = field(default_factory=lambda: _empty("int64"))
    future_tracked: np.ndarray = field(default_factory=lambda: _empty("int64"))
    future_silent: np.ndarray = field(default_factory=lambda: _empty("int64"))
    # silences with a known next ping whose offline decision needs instants past the horizon
    pending_slot: np.ndarray = field(default_factory=lambda: _empty("int64"))
    pending_id: np.ndarray = field(default_factory=lambda: _empty(object))
    pending_last_ms: np.ndarray = field(default_factory=lambda: _empty("int64"))
    pending_next_ms: np.ndarray = field(default_factory=lambda: _empty("int64"))
    pending_waybill: np.ndarray = field(default_factory=lambda: _empty("int64"))
    pending_lon: np.ndarray = field(default_factory=lambda: _empty("float64"))
    pending_lat: np.ndarray = field(default_factory=lambda: _empty("float64"))
    vehicle_id: np.ndarray = field(default_factory=lambda: _empty(object))  # per slot, for trailing events


def first_valid(lo_ms: np.ndarray, log_ms: np.ndarray, log_out: np.ndarray, out_before: bool,
                grace_ms: int) -> np.ndarray:
    """For each lo, the first instant x >= lo with the feed up on all of [x, x + grace]
    (NONE_MS: none while the feed stays out), given the outage transitions `log_ms` (after each
    the feed is out when `log_out`) and the state before the first."""
    lo_ms = np.asarray(lo_ms, "int64")
    was = np.r_[out_before, log_out[:-1]] if len(log_out) else np.empty(0, bool)
    starts = log_ms[log_out & ~was]
    ends = log_ms[~log_out & was]
    if out_before:
        starts = np.r_[BEFORE_ALL_MS, starts]
    if len(ends) < len(starts):
        ends = np.r_[ends, NONE_MS]  # still out: open-ended
    ends = np.where(ends == NONE_MS, np.iinfo(np.int64).max, ends)
    if not len(starts):
        return lo_ms.copy()
    # x is blocked when an outage [a, b) meets [x, x + grace]: x in [a - grace, b); merge those
    blocked_from = starts - grace_ms
    reach = np.maximum.accumulate(ends)
    new = np.r_[True, blocked_from[1:] > reach[:-1]]
    g_from = blocked_from[new]
    g_to = np.maximum.reduceat(ends, np.flatnonzero(new))
    k = np.searchsorted(g_from, lo_ms, side="right") - 1
    inside = (k >= 0) & (lo_ms < g_to[np.maximum(k, 0)])
    x = np.where(inside, g_to[np.maximum(k, 0)], lo_ms)
    return np.where(x == np.iinfo(np.int64).max, NONE_MS, x)


@dataclass(frozen=True)
class OfflineRule:
    settings: OfflineSettings = field(default_factory=OfflineSettings)
    # the engine's cleaning.reorder_window_s: pings older than clock - window are final
    reorder_window_s: float = 0.0
    name: ClassVar[str] = "offline"

    def __post_init__(self):
        if not (np.isfinite(self.reorder_window_s) and 0 <= self.reorder_window_s < self.settings.offline_after_s):
            raise ValueError(f"reorder_window_s must be >= 0 and shorter than offline_after_s, "
                             f"got {self.reorder_window_s!r}")

    def initial_state(self) -> OfflineState:
        return OfflineState()

    def feed_location(self, world: RuleWorld) -> tuple[float, float]:
        """Where a feed outage is drawn: the median of the fleet's home points (fixed, so the
        event does not depend on batching)."""
        def build():
            geoms = np.asarray(world.world.vehicles.geometry.to_numpy(), dtype=object) if len(world.world.vehicles) \
                else np.empty(0, object)
            geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))] if len(geoms) else geoms
            if not len(geoms):
                return 0.0, 0.0
            xy = shapely.get_coordinates(shapely.centroid(geoms))
            return float(np.median(xy[:, 0])), float(np.median(xy[:, 1]))
        return world.cached(f"{self.name}:feed_location", build)

    # -- step -------------------------------------------------------------------------------

    def step(self, state: OfflineState, batch: RuleBatch, world: RuleWorld,
             settled_ms: int | None = None) -> tuple[OfflineState, list[Event]]:
        """`settled_ms` (the engine's, when it judges by arrival): every ping with a time up to it
        has been given; by default clock_ms - reorder_window_s."""
        s = self.settings
        after_ms, window_ms = round(s.offline_after_s * 1000), round(s.outage_window_s * 1000)
        grace_ms = round(s.outage_grace_s * 1000)
        h_prev = state.horizon_ms
        if settled_ms is None and batch.clock_ms >= 0:
            settled_ms = int(batch.clock_ms) - round(self.reorder_window_s * 1000)
        h = h_prev if settled_ms is None else max(h_prev, int(settled_ms))
        if not len(batch) and h == h_prev:
            return state, []
        if len(batch) and int(batch.epoch_ms.min()) < h_prev:
            raise ValueError(
                f"offline: a ping at {iso_time(batch.epoch_ms.min())} was released after every instant up to "
                f"{iso_time(h_prev)} was judged; clock_ms - reorder_window_s must never pass a ping still to come "
                f"(give OfflineRule the cleaning stage's reorder_window_s and the cleaning clock)")
        size = max(len(state.last_ms), int(batch.slot.max()) + 1 if len(batch) else 0)
        before_ms, before_counted = grow(state.last_ms, size, NONE_MS), grow(state.last_counted, size, False)
        before_wb = grow(state.last_waybill, size, -1)
        before_lon, before_lat = grow(state.last_lon, size, np.nan), grow(state.last_lat, size, np.nan)
        open_since = grow(state.open_since_ms, size, NONE_MS).copy()
        vehicle_id = grow(state.vehicle_id, size, None).copy()

        # 1. each released ping and the ping before it (carried for a slot's first)
        slot, t = batch.slot, np.asarray(batch.epoch_ms, "int64")
        wb = np.asarray(batch.waybill, "int64")
        counted = wb >= 0
        prev_t = previous_in_run(t, slot, before_ms)
        has_prev = prev_t != NONE_MS
        prev_t0 = np.where(has_prev, prev_t, 0)
        q_counted = has_prev & previous_in_run(counted, slot, before_counted)
        prev_wb = previous_in_run(wb, slot, before_wb)
        prev_lon, prev_lat = previous_in_run(batch.lon, slot, before_lon), previous_in_run(batch.lat, slot, before_lat)
        gap = t - prev_t0
        # the previous ping stops being tracked at min(next + 1, prev + window); a counted ping
        # starts being tracked at its time + 1; both cancel when the two runs touch
        end = np.minimum(t + 1, prev_t0 + window_ms)
        contiguous = q_counted & counted & (gap < window_ms)
        silent_gap = q_counted & (gap >= after_ms)
        p_minus, p_plus = q_counted & ~contiguous, counted & ~contiguous
        n_minus, n_plus, n_gap = int(p_minus.sum()), int(p_plus.sum()), int(silent_gap.sum())
        cp_t = np.concatenate([end[p_minus], t[p_plus] + 1, prev_t0[silent_gap] + after_ms, end[silent_gap],
                               state.future_ms])
        cp_a = np.concatenate([np.full(n_minus, -1, "int64"), np.ones(n_plus, "int64"), np.zeros(2 * n_gap, "int64"),
                               state.future_tracked])
        cp_s = np.concatenate([np.zeros(n_minus + n_plus, "int64"), np.ones(n_gap, "int64"),
                               np.full(n_gap, -1, "int64"), state.future_silent])
        # points at or before h_prev were swept already (as the carried ping's open end)
        keep = cp_t > h_prev
        cp_t, cp_a, cp_s = cp_t[keep], cp_a[keep], cp_s[keep]
        later = cp_t > h
        future = (cp_t[later], cp_a[later], cp_s[later])
        cp_t, cp_a, cp_s = cp_t[~later], cp_a[~later], cp_s[~later]

        # 2. every slot's last ping now
        last_ms, last_counted, last_wb = before_ms.copy(), before_counted.copy(), before_wb.copy()
        last_lon, last_lat = before_lon.copy(), before_lat.copy()
        if len(batch):
            starts = run_starts(slot)
            ends = np.r_[starts[1:], len(batch)] - 1
            s_end = slot[ends]
            last_ms[s_end], last_counted[s_end], last_wb[s_end] = t[ends], counted[ends], wb[ends]
            last_lon[s_end], last_lat[s_end] = batch.lon[ends], batch.lat[ends]
            vehicle_id[s_end] = batch.vehicle_id[ends]
        # its open end: silent at last + after, untracked at last + window, within (h_prev, h]
        watched = np.flatnonzero(last_counted & (last_ms != NONE_MS))
        lw = last_ms[watched]
        zeros, ones = np.zeros(len(lw), "int64"), np.ones(len(lw), "int64")
        trail_t = np.concatenate([lw + after_ms, lw + window_ms, lw + window_ms])
        inside = (trail_t > h_prev) & (trail_t <= h)
        cp_t = np.concatenate([cp_t, trail_t[inside]])
        cp_a = np.concatenate([cp_a, np.concatenate([zeros, -ones, zeros])[inside]])
        cp_s = np.concatenate([cp_s, np.concatenate([ones, zeros, -ones])[inside]])

        # 3. the outage along (h_prev, h]
        events: list[Event] = []
        tracked, silent, outage_start, new_ms, new_out = self._sweep(state, cp_t, cp_a, cp_s, world, events)
        log_ms = np.r_[state.log_ms, new_ms].astype("int64")
        log_out = np.r_[state.log_out, new_out].astype(bool)

        # 4. offline episodes. An instant x is final once x + grace <= h.
        final_x = h - grace_ms
        lo_floor = h_prev - grace_ms + 1  # instants up to here were decided in earlier steps
        # a slot's open episode ends at its first released ping
        close_now = silent_gap & has_prev & (open_since[slot] == prev_t)
        gaps = np.flatnonzero(silent_gap & ~close_now)
        cand_l = np.r_[prev_t0[gaps], state.pending_last_ms].astype("int64")
        cand_n = np.r_[t[gaps], state.pending_next_ms].astype("int64")
        cand_slot = np.r_[slot[gaps], state.pending_slot].astype("int64")
        cand_id = np.r_[batch.vehicle_id[gaps], state.pending_id].astype(object)
        cand_wb = np.r_[prev_wb[gaps], state.pending_waybill].astype("int64")
        cand_lon = np.r_[prev_lon[gaps], state.pending_lon].astype("float64")
        cand_lat = np.r_[prev_lat[gaps], state.pending_lat].astype("float64")
        x = first_valid(np.maximum(cand_l + after_ms, lo_floor), log_ms, log_out, state.log_out_before, grace_ms)
        raise_now = (x != NONE_MS) & (x <= cand_n) & (x <= final_x)
        resolved = raise_now | (cand_n <= final_x)  # else: the answer needs instants past h
        open_since[slot[close_now]] = NONE_MS
        # open-ended silences of the watched slots that are not offline yet
        idle = watched[(open_since[watched] == NONE_MS) & (last_ms[watched] + after_ms <= final_x)]
        x_idle = first_valid(np.maximum(last_ms[idle] + after_ms, lo_floor), log_ms, log_out, state.log_out_before,
                             grace_ms)
        trailing = np.flatnonzero((x_idle != NONE_MS) & (x_idle <= final_x))
        raised, closing, opening = np.flatnonzero(raise_now), np.flatnonzero(close_now), idle[trailing]
        # every time the evidence shows, formatted in one call (not one per event)
        shown = np.unique(np.concatenate([
            cand_l[raised], cand_l[raised] + after_ms, x[raised], cand_n[raised], prev_t[closing], t[closing],
            last_ms[opening], last_ms[opening] + after_ms, x_idle[trailing]]))
        iso = dict(zip(shown.tolist(), iso_times(shown)))
        ids = self._waybill_ids(world)
        for k in raised:  # one per offline episode, not per ping
            events.append(make_event(self.name, cand_id[k], "open", cand_l[k], None, cand_lon[k], cand_lat[k],
                                     SEVERITY_MEDIUM, self._evidence(ids, iso, cand_wb[k], cand_l[k], x[k])))
            events.append(self._close(ids, iso, cand_id[k], cand_wb[k], cand_l[k], cand_n[k], cand_lon[k],
                                      cand_lat[k]))
        for i in closing:
            events.append(self._close(ids, iso, batch.vehicle_id[i], prev_wb[i], prev_t[i], t[i], prev_lon[i],
                                      prev_lat[i]))
        for k, v in zip(trailing, opening):
            events.append(make_event(self.name, vehicle_id[v], "open", last_ms[v], None, last_lon[v], last_lat[v],
                                     SEVERITY_MEDIUM, self._evidence(ids, iso, last_wb[v], last_ms[v], x_idle[k])))
        open_since[opening] = last_ms[opening]

        # 5. keep the outage transitions later instants may still need: those at or after
        #    final_x - lo margin (the next step decides instants from h - grace + 1 on)
        old = log_ms < final_x
        log_before = bool(log_out[old][-1]) if old.any() else state.log_out_before
        pending = ~resolved
        new_state = replace(
            state, last_ms=last_ms, last_counted=last_counted, last_waybill=last_wb, last_lon=last_lon,
            last_lat=last_lat, open_since_ms=open_since, horizon_ms=int(h), tracked=tracked, silent=silent,
            outage_start_ms=outage_start, log_ms=log_ms[~old], log_out=log_out[~old], log_out_before=log_before,
            future_ms=future[0], future_tracked=future[1], future_silent=future[2],
            pending_slot=cand_slot[pending], pending_id=cand_id[pending], pending_last_ms=cand_l[pending],
            pending_next_ms=cand_n[pending], pending_waybill=cand_wb[pending], pending_lon=cand_lon[pending],
            pending_lat=cand_lat[pending], vehicle_id=vehicle_id)
        return new_state, events

    # -- parts ------------------------------------------------------------------------------

    def _sweep(self, state: OfflineState, cp_t, cp_a, cp_s, world: RuleWorld, events: list[Event]):
        """Counts after the change points, and the outage transitions (times, out) they cause."""
        s = self.settings
        out_before = state.outage_start_ms != NONE_MS
        if not len(cp_t):
            return state.tracked, state.silent, state.outage_start_ms, _empty("int64"), _empty(bool)
        times, which = np.unique(cp_t, return_inverse=True)
        tracked = state.tracked + np.cumsum(np.bincount(which, weights=cp_a, minlength=len(times))).round().astype("int64")
        silent = state.silent + np.cumsum(np.bincount(which, weights=cp_s, minlength=len(times))).round().astype("int64")
        if (tracked < 0).any() or (silent < 0).any() or (silent > tracked).any():
            raise RuntimeError("offline: tracked/silent counts went inconsistent (pings out of time order?)")
        decided = tracked >= s.outage_min_vehicles
        # share >= min: out; share < close: up; in between, or too few trucks: unchanged
        goes_out = decided & (silent >= s.outage_min_share * tracked)
        goes_up = decided & (silent < s.outage_close_share * tracked)
        verdict = np.where(goes_out, 1, np.where(goes_up, 0, -1))
        k = np.maximum.accumulate(np.where(verdict >= 0, np.arange(len(times)), -1))
        out = np.where(k >= 0, verdict[np.maximum(k, 0)] == 1, out_before)
        was = np.r_[out_before, out[:-1]]
        lon, lat = self.feed_location(world)
        start = state.outage_start_ms
        flips = np.flatnonzero(out != was)
        for j in flips:  # outages: few
            figures = {"tracked_vehicles": int(tracked[j]), "silent_vehicles": int(silent[j]),
                       "silent_share": float(silent[j] / tracked[j]) if tracked[j] else 0.0,
                       "outage_min_share": float(s.outage_min_share), "outage_close_share": float(s.outage_close_share),
                       "outage_window_s": float(s.outage_window_s), "offline_after_s": float(s.offline_after_s),
                       "outage_min_vehicles": int(s.outage_min_vehicles)}
            if out[j]:
                start = int(times[j])
                events.append(make_event(FEED_OUTAGE, FEED_SUBJECT, "open", start, None, lon, lat, SEVERITY_HIGH,
                                         {**figures, "from": iso_time(start)}))
            else:
                events.append(make_event(FEED_OUTAGE, FEED_SUBJECT, "close", start, times[j], lon, lat, SEVERITY_HIGH,
                                         {**figures, "from": iso_time(start), "to": iso_time(times[j]),
                                          "duration_s": (int(times[j]) - start) / 1000.0}))
                start = NONE_MS
        return int(tracked[-1]), int(silent[-1]), start, times[flips].astype("int64"), out[flips]

    def _waybill_ids(self, world: RuleWorld) -> np.ndarray:
        return world.cached(f"{self.name}:waybill_ids",
                            lambda: world.world.waybills["id"].astype(str).to_numpy(dtype=object))

    def _evidence(self, ids, iso: dict, waybill_row, last_ms, raised_ms) -> dict:
        offline_from = int(last_ms) + round(self.settings.offline_after_s * 1000)
        return {
            "waybill_id": str(ids[int(waybill_row)]) if waybill_row >= 0 else None,
            "last_ping": iso[int(last_ms)],
            "offline_from": iso[offline_from],
            # the first instant with no feed outage within outage_grace_s after it
            "raised_at": iso[int(raised_ms)],
            "after_feed_outage": bool(int(raised_ms) > offline_from),
            "offline_after_s": float(self.settings.offline_after_s),
        }

    def _close(self, ids, iso: dict, vehicle, waybill_row, last_ms, next_ms, lon, lat) -> Event:
        evidence = {
            "waybill_id": str(ids[int(waybill_row)]) if waybill_row >= 0 else None,
            "last_ping": iso[int(last_ms)],
            "next_ping": iso[int(next_ms)],
            "silent_s": (int(next_ms) - int(last_ms)) / 1000.0,
            "offline_after_s": float(self.settings.offline_after_s),
        }
        return make_event(self.name, vehicle, "close", last_ms, next_ms, lon, lat, SEVERITY_MEDIUM, evidence)
