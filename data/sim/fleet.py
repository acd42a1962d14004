"""The truck side of `hazmap simulate`: a deterministic, vectorised traffic simulator for the
demo fleet that drives every registered truck along its waybill routes and stages labelled
violations.

`plan_fleet(world, settings)` plans the whole simulated span [settings.start, + hours) once:

* every truck's *drives* (a path and a departure; data/sim/_fleet_plan.py): parked at the
  loading site of its first waybill, each planned route from its planned departure (moved when a
  restricted zone barring the cargo would be closed on the way), parked at the unloading site,
  the quickest road route to the next loading site (via the nearest wash station when a tank
  changes medium), parked after its last waybill. Speeds are a share (0.85-0.95 per truck) of the
  lowest limit the speeding rule could see near each stretch (data/sim/_fleet_roads.py), so an
  unstaged truck never speeds.
* staged behaviours (data/sim/_fleet_stage.py), at most one per truck, each recorded as a row of
  `FleetSim.staged` (data/sim/settings.py STAGED_COLUMNS) with the real time span of the
  behaviour.
* the drives become one piecewise-linear *timeline* per truck (knots: time, x, y, speed and
  heading of the stretch after the knot), all trucks concatenated on one key
  `truck * span + t` (as data/fleet_day.py), and *phases* (runs of moving or parked time).

`FleetSim.pings_between(t0, t1)` reports, for any slice of time, every ping whose time lies in
it: a ping every `moving_interval_s` from the start of each moving phase and every
`parked_interval_s` from the start of each parked phase, positions by `np.interp` over the
timelines, GNSS noise of a few metres and speed noise from a counter-based hash of (seed, truck,
second), so a ping is a function of its truck and time alone and any slicing of the span gives
the same pings. Staged teleports and duplicates are extra pings; a staged silent terminal is a
gap. Times are whole seconds (JT/T 808 carries seconds); status bit 1 (fix valid) is set on every
ping, bit 0 (ACC on) while moving.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.sim._fleet_plan import DAY_S, Plan, build_base_plan
from data.sim._fleet_stage import cleaned_gap_s, stage_fleet
from data.sim.settings import STAGED_COLUMNS, SimSettings
from spatial.crs import from_metric
from spatial.model import PingBatch, World

GNSS_SIGMA_M = 2.5
SPEED_SIGMA_KMH = 0.8
STATUS_ACC_ON = 0b1
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class _Timeline:
    """Every truck's knots on one sorted key `truck * span + (t - base)` (t: seconds from the
    start; speed and heading of the stretch after each knot, speed 0 parked), its phases (runs of
    moving or parked time, each reporting every `interval` s from its start, end exclusive) and
    its silences (no report strictly between `after` and `before`)."""

    key: np.ndarray
    x: np.ndarray
    y: np.ndarray
    speed: np.ndarray
    heading: np.ndarray
    base: float
    span: float
    phase_truck: np.ndarray
    phase_start: np.ndarray
    phase_end: np.ndarray
    phase_interval: np.ndarray
    silence_truck: np.ndarray
    silence_after: np.ndarray
    silence_before: np.ndarray


@dataclass(frozen=True)
class _Extras:
    """Reports beyond the phases' (staged teleports and duplicates), sorted by time."""

    t: np.ndarray
    truck: np.ndarray
    x: np.ndarray
    y: np.ndarray
    speed: np.ndarray
    heading: np.ndarray
    status: np.ndarray

    @classmethod
    def none(cls) -> _Extras:
        f = np.empty(0)
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), f, f, f, f, np.empty(0, np.uint32))


class FleetSim:
    """A planned span of fleet traffic (see the module docstring). Build with `plan_fleet`.

    `vehicle_ids`: the trucks simulated (world.vehicles ids, in that order); `staged`: one
    STAGED_COLUMNS row per staged behaviour; `start_ms` / `end_ms`: the simulated span;
    `diagnostics`: counts about the plan (trips moved for closed zones, departures the schedule
    had to push, kinds short of candidates)."""

    def __init__(self, plan: Plan, timeline: _Timeline, extras: _Extras, staged: pd.DataFrame):
        s = plan.settings
        self.vehicle_ids: np.ndarray = np.asarray(plan.vehicle_ids, dtype=object)
        self.staged: pd.DataFrame = staged
        self.start_ms: int = int(s.start_ms)
        self.end_ms: int = int(s.end_ms)
        self.settings: SimSettings = s
        self.diagnostics: dict = dict(plan.diagnostics)
        self._origin_s = plan.origin_s
        self._end_s = plan.end_s
        self._seed = int(s.seed)
        self._tl = timeline
        self._extras = extras

    # -- reports -------------------------------------------------------------------------------

    def pings_between(self, t0_ms: int, t1_ms: int) -> PingBatch:
        """Every report with epoch_ms in [t0_ms, t1_ms) (clipped to the simulated span), in the
        order terminals send them: by time, then truck, a duplicate right after its original."""
        origin_ms = self._origin_s * 1000
        a = max(_ceil_div(int(t0_ms) - origin_ms, 1000), 0)
        b = min(_ceil_div(int(t1_ms) - origin_ms, 1000), self._end_s)
        if b <= a:
            return _empty_batch()
        tl, ex = self._tl, self._extras
        sel = np.flatnonzero((tl.phase_start < b) & (tl.phase_end > a))
        ps, pe, iv = tl.phase_start[sel], tl.phase_end[sel], tl.phase_interval[sel]
        k0 = np.maximum(_ceil_div(a - ps, iv), 0)
        n = np.maximum(_ceil_div(np.minimum(b, pe) - ps, iv) - k0, 0)
        step = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        t = np.repeat(ps + k0 * iv, n) + np.repeat(iv, n) * step
        truck = np.repeat(tl.phase_truck[sel], n)
        if len(tl.silence_truck):
            t, truck = self._without_silences(t, truck)
        x, y, speed, heading, status = self._reports(truck, t)
        i0, i1 = np.searchsorted(ex.t, [a, b], side="left")
        extra = np.zeros(len(t), np.int8)
        if i1 > i0:
            t, truck, x, y, speed, heading, status = (
                np.concatenate([mine, theirs[i0:i1]]) for mine, theirs in
                ((t, ex.t), (truck, ex.truck), (x, ex.x), (y, ex.y), (speed, ex.speed), (heading, ex.heading),
                 (status, ex.status)))
            extra = np.r_[extra, np.ones(i1 - i0, np.int8)]
        order = np.lexsort((extra, truck, t))
        lon, lat = from_metric(x[order], y[order])
        return PingBatch.from_arrays(self.vehicle_ids[truck[order]], (self._origin_s + t[order]) * 1000,
                                     lon, lat, speed_kmh=speed[order], heading=heading[order],
                                     status=status[order])

    def positions_at(self, t_ms: int) -> pd.DataFrame:
        """Every truck's true (noise-free) position (lon/lat and EPSG:32651 x/y), speed (km/h),
        heading and state (moving, silent) at t_ms."""
        tl = self._tl
        t = (int(t_ms) - self._origin_s * 1000) / 1000.0
        key = np.arange(len(self.vehicle_ids)) * tl.span + (t - tl.base)
        x, y = np.interp(key, tl.key, tl.x), np.interp(key, tl.key, tl.y)
        at = np.clip(np.searchsorted(tl.key, key, side="right") - 1, 0, len(tl.key) - 1)
        lon, lat = from_metric(x, y)
        silent = np.zeros(len(key), bool)
        silent[tl.silence_truck[(tl.silence_after < t) & (t < tl.silence_before)]] = True
        return pd.DataFrame({"vehicle_id": self.vehicle_ids, "lon": lon, "lat": lat, "x": x, "y": y,
                             "speed_kmh": tl.speed[at], "heading": tl.heading[at],
                             "moving": tl.speed[at] > 0, "silent": silent})

    # -- internals -------------------------------------------------------------------------------

    def _without_silences(self, t: np.ndarray, truck: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tl = self._tl
        key = truck * tl.span + t
        after = tl.silence_truck * tl.span + tl.silence_after
        before = tl.silence_truck * tl.span + tl.silence_before
        i = np.searchsorted(after, key, side="left") - 1  # the silence that began last before the ping
        inside = (i >= 0) & (key < before[np.maximum(i, 0)])
        return t[~inside], truck[~inside]

    def _reports(self, truck: np.ndarray, t: np.ndarray):
        """Reports of trucks at whole seconds t (from the start): metric x, y with GNSS noise, the
        terminal's speed (km/h, 0 parked), heading (whole degrees) and status bits."""
        tl = self._tl
        key = truck * tl.span + (t - tl.base)
        x, y = np.interp(key, tl.key, tl.x), np.interp(key, tl.key, tl.y)
        at = np.searchsorted(tl.key, key, side="right") - 1
        moving = tl.speed[at]
        nx, ny = _normal_pair(self._seed, truck, t, 1)
        nv, _ = _normal_pair(self._seed, truck, t, 2)
        speed = np.where(moving > 0, np.round(np.maximum(moving + SPEED_SIGMA_KMH * nv, 0.1), 1), 0.0)
        heading = np.round(tl.heading[at]) % 360
        status = np.where(moving > 0, PingBatch.STATUS_FIX_VALID | STATUS_ACC_ON,
                          PingBatch.STATUS_FIX_VALID).astype(np.uint32)
        return x + GNSS_SIGMA_M * nx, y + GNSS_SIGMA_M * ny, speed, heading, status


def plan_fleet(world: World, settings: SimSettings) -> FleetSim:
    """Plan the fleet's traffic over the settings' span (see the module docstring)."""
    plan = build_base_plan(world, settings)
    stage_fleet(plan)
    sim = FleetSim(plan, _timeline(plan), _Extras.none(), pd.DataFrame(columns=list(STAGED_COLUMNS)))
    sim._extras = _cleaned_stages(plan, sim)  # needs the normal reports, so once they are planned
    sim.staged = _staged_frame(plan)
    return sim


# -- timelines ---------------------------------------------------------------------------------

def _timeline(plan: Plan) -> _Timeline:
    """Knots of every truck on one sorted key, and the phases (moving / parked runs)."""
    n = len(plan.vehicle_ids)
    s = plan.settings
    d = plan.drives.sort_values(["truck", "depart"], kind="stable")
    flat = plan.paths.flat()
    truck = d["truck"].to_numpy(np.int64)
    depart = d["depart"].to_numpy(np.int64)
    path = d["path"].to_numpy(np.int64)
    arrive = depart + np.round(flat["t"][flat["end"][path] - 1]).astype(np.int64)
    same = np.r_[truck[1:] == truck[:-1], False]
    clash = np.flatnonzero(same & (np.r_[depart[1:], 0] <= arrive))
    if len(clash):
        v = truck[clash[0]]
        raise AssertionError(f"fleet plan: truck {plan.vehicle_ids[v]} departs at {depart[clash[0] + 1]} s "
                             f"before arriving at {arrive[clash[0]]} s")
    end_xy = np.column_stack([flat["x"][flat["end"][path] - 1], flat["y"][flat["end"][path] - 1]])
    start_xy = np.column_stack([flat["x"][flat["start"][path]], flat["y"][flat["start"][path]]])
    jump = np.flatnonzero(same[:-1] & (np.hypot(*(start_xy[1:] - end_xy[:-1]).T) > 1.0)) if len(d) > 1 else []
    if len(jump):
        raise AssertionError(f"fleet plan: truck {plan.vehicle_ids[truck[jump[0]]]} jumps between drives")

    cnt = flat["end"][path] - flat["start"][path]
    idx = np.repeat(flat["start"][path], cnt) + np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    k_truck = np.repeat(truck, cnt)
    k_t = np.repeat(depart, cnt) + flat["t"][idx]
    k_x, k_y, k_v, k_h = flat["x"][idx], flat["y"][idx], flat["speed"][idx], flat["heading"][idx]
    # a head knot per truck: where it waits before its first drive (or for good)
    first_drive = np.full(n, -1, np.int64)
    if len(d):
        firsts = np.flatnonzero(np.r_[True, truck[1:] != truck[:-1]])
        first_drive[truck[firsts]] = firsts
    head_xy = plan.home_xy.copy()
    has = first_drive >= 0
    head_xy[has] = start_xy[first_drive[has]]
    # and a tail knot: where it stays after its last drive (interpolation never spans two trucks)
    tail_xy = plan.home_xy.copy()
    if len(d):
        lasts = np.flatnonzero(np.r_[truck[1:] != truck[:-1], True])
        tail_xy[truck[lasts]] = end_xy[lasts]
    # trucks' phases start on different seconds: terminals are not in step
    lo = -DAY_S - (np.arange(n) * 7919) % s.parked_interval_s
    hi = plan.end_s + DAY_S
    earliest = min(int(lo.min()) - 1, int(k_t.min()) - 1 if len(k_t) else 0)
    latest = max(hi, int(k_t.max()) if len(k_t) else 0) + 1
    head_heading = np.zeros(n)
    head_heading[has] = flat["heading"][flat["start"][path[first_drive[has]]]]
    tail_heading = np.zeros(n)
    if len(d):
        tail_heading[truck[lasts]] = flat["heading"][flat["end"][path[lasts]] - 1]
    k_truck = np.concatenate([np.arange(n), k_truck, np.arange(n)])
    k_t = np.concatenate([np.full(n, float(earliest)), k_t, np.full(n, float(latest))])
    k_x = np.concatenate([head_xy[:, 0], k_x, tail_xy[:, 0]])
    k_y = np.concatenate([head_xy[:, 1], k_y, tail_xy[:, 1]])
    k_v = np.concatenate([np.zeros(n), k_v, np.zeros(n)])
    k_h = np.concatenate([head_heading, k_h, tail_heading])
    order = np.lexsort((k_t, k_truck))
    k_truck, k_t, k_x, k_y, k_v, k_h = (a[order] for a in (k_truck, k_t, k_x, k_y, k_v, k_h))

    # clip every truck to [lo, hi]: knots there with the interpolated state
    big = float(latest - earliest + 10.0)
    raw = k_truck * big + (k_t - earliest)
    if (np.diff(raw) <= 0).any():
        raise AssertionError("fleet timelines are not strictly increasing")
    edge_t = np.concatenate([lo, np.full(n, float(hi))]).astype("float64")
    edge_truck = np.concatenate([np.arange(n), np.arange(n)])
    q = edge_truck * big + (edge_t - earliest)
    at = np.searchsorted(raw, q, side="right") - 1
    e_x, e_y = np.interp(q, raw, k_x), np.interp(q, raw, k_y)
    e_v, e_h = k_v[at], k_h[at]
    inside = (k_t > lo[k_truck]) & (k_t < hi)
    k_truck = np.concatenate([edge_truck, k_truck[inside]])
    k_t = np.concatenate([edge_t, k_t[inside]])
    k_x = np.concatenate([e_x, k_x[inside]])
    k_y = np.concatenate([e_y, k_y[inside]])
    k_v = np.concatenate([e_v, k_v[inside]])
    k_h = np.concatenate([e_h, k_h[inside]])
    order = np.lexsort((k_t, k_truck))
    k_truck, k_t, k_x, k_y, k_v, k_h = (a[order] for a in (k_truck, k_t, k_x, k_y, k_v, k_h))
    base = float(lo.min() - 1)
    span = float(hi - base + 1)
    key = k_truck * span + (k_t - base)

    # phases: runs of moving (speed > 0 after the knot) or parked knots; they start on whole seconds
    moving = k_v > 0
    new = np.r_[True, (k_truck[1:] != k_truck[:-1]) | (moving[1:] != moving[:-1])]
    starts = np.flatnonzero(new)
    ph_truck = k_truck[starts]
    ph_start = k_t[starts]
    if (np.abs(ph_start - np.round(ph_start)) > 1e-6).any():
        raise AssertionError("fleet phases must start on whole seconds")
    ph_start = np.round(ph_start).astype(np.int64)
    ph_end = np.r_[ph_start[1:], hi]
    ph_end = np.where(np.r_[ph_truck[1:] != ph_truck[:-1], True], hi, ph_end).astype(np.int64)
    ph_interval = np.where(moving[starts], s.moving_interval_s, s.parked_interval_s).astype(np.int64)

    sil = sorted(plan.silences)
    return _Timeline(
        key=key, x=k_x, y=k_y, speed=k_v, heading=k_h, base=base, span=span,
        phase_truck=ph_truck, phase_start=ph_start, phase_end=ph_end, phase_interval=ph_interval,
        silence_truck=np.array([v for v, _, _ in sil], np.int64),
        silence_after=np.array([a for _, a, _ in sil], np.int64),
        silence_before=np.array([b for _, _, b in sil], np.int64),
    )


# -- teleports and duplicates ------------------------------------------------------------------

def _next_ping(sim: FleetSim, v: int, t: int) -> int:
    """The truck's first normal ping at or after t (relative seconds)."""
    tl = sim._tl
    for p in np.flatnonzero(tl.phase_truck == v):  # a truck's phases: a handful
        ps, pe, iv = int(tl.phase_start[p]), int(tl.phase_end[p]), int(tl.phase_interval[p])
        if pe <= t:
            continue
        k = max(0, -(-(t - ps) // iv))
        if ps + k * iv < pe:
            return ps + k * iv
    raise ValueError(f"truck {sim.vehicle_ids[v]} has no ping after {t} s")


def _cleaned_stages(plan: Plan, sim: FleetSim) -> _Extras:
    """The extra pings of the staged teleports and duplicates (a few per staged truck)."""
    rows = []  # (t, truck, x, y, speed, heading, status)
    lo = int(plan.settings.stage_margin_s)
    rng = np.random.default_rng([int(plan.settings.seed), 4242])
    for v, kind, count, note in plan.cleaned:  # one entry per staged truck: few
        gap = cleaned_gap_s(plan, count)
        times = []
        for i in range(count):
            t_a = _next_ping(sim, v, lo + 60 + i * gap)
            if kind == "duplicate":
                x, y, speed, heading, status = sim._reports(np.array([v]), np.array([t_a]))
                rows.append((t_a, v, x[0], y[0], speed[0], heading[0], status[0]))
                times.append((t_a, x[0], y[0]))
            else:  # teleport: half way to the next ping, 30-80 km off
                t_b = _next_ping(sim, v, t_a + 1)
                t_x = (t_a + t_b) // 2
                x, y, speed, heading, status = sim._reports(np.array([v]), np.array([t_x]))
                distance, angle = rng.uniform(30_000, 80_000), rng.uniform(0, 2 * np.pi)
                tx, ty = x[0] + distance * np.sin(angle), y[0] + distance * np.cos(angle)
                rows.append((t_x, v, tx, ty, speed[0], heading[0], status[0]))
                times.append((t_x, tx, ty))
        lon, lat = from_metric(np.array([times[0][1]]), np.array([times[0][2]]))
        plan.staged.append({
            "subject_id": plan.vehicle_ids[v], "kind": kind, "rule": None, "drop_reason": kind,
            "count": count, "start": plan.rel_to_utc(times[0][0]), "end": plan.rel_to_utc(times[-1][0]),
            "lon": float(lon[0]), "lat": float(lat[0]), "note": note,
        })
    if not rows:
        return _Extras.none()
    rows.sort(key=lambda r: (r[0], r[1]))
    t, truck, x, y, speed, heading, status = (np.array(c) for c in zip(*rows))
    return _Extras(t.astype(np.int64), truck.astype(np.int64), x.astype(float), y.astype(float),
                   speed.astype(float), heading.astype(float), status.astype(np.uint32))


def _staged_frame(plan: Plan) -> pd.DataFrame:
    frame = pd.DataFrame(plan.staged, columns=list(STAGED_COLUMNS))
    if not len(frame):
        return frame
    order = {k: i for i, k in enumerate(plan.settings.stage_kinds)}
    frame["_o"] = frame["kind"].map(order)
    frame = frame.sort_values(["_o", "subject_id"], kind="stable").drop(columns="_o").reset_index(drop=True)
    frame["count"] = frame["count"].astype(np.int64)
    for column in ("rule", "drop_reason"):  # None, as the contract says, not NaN
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


# -- small helpers -----------------------------------------------------------------------------

def _ceil_div(a, b):
    return -(-a // b)


def _empty_batch() -> PingBatch:
    return PingBatch.from_arrays(np.empty(0, object), np.empty(0, np.int64), np.empty(0), np.empty(0),
                                 speed_kmh=np.empty(0), heading=np.empty(0))


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective scramble of 64-bit words (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniform(seed: int, truck: np.ndarray, t: np.ndarray, stream: int) -> np.ndarray:
    """Uniform (0, 1) numbers that depend on (seed, truck, second, stream) only."""
    base = np.uint64((int(seed) * 0x9E3779B97F4A7C15 + stream * 0xD1B54A32D192ED03) & _MASK64)
    z = np.asarray(truck, np.int64).astype(np.uint64) * np.uint64(0xA24BAED4963EE407)
    z = _mix(z ^ base)
    z = _mix(z ^ (np.asarray(t, np.int64).astype(np.uint64) * np.uint64(0x9FB21C651E98DF25)))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / (1 << 53))


def _normal_pair(seed: int, truck: np.ndarray, t: np.ndarray, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """Two independent standard normals per (truck, second) by Box-Muller."""
    u1 = _uniform(seed, truck, t, 2 * stream)
    u2 = _uniform(seed, truck, t, 2 * stream + 1)
    r = np.sqrt(-2.0 * np.log(u1))
    return r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)
