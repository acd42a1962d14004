"""A deterministic day of tracks for the demo fleet, generated in time chunks (the rules benchmark).

Every registered truck of the world spends the day (the demo's base day, local midnight to
midnight) parked at the loading site of its active waybill, drives the waybill's planned route
at a plausible speed for each road (a share of the speed limit under each route segment, the
default limit off roads), and parks at the unloading site for the rest of the day. Some trucks
take a rest stop on the way, some leave the route for a stretch (a detour well outside the
corridor) and some drive over the limit. A ping every `interval_s` (30 s, the JT/T 794 moving
interval) all day, GNSS noise of a few metres, the terminal's speed reported.

Positions come from one piecewise-linear timeline per truck (knots: time, x, y, speed after),
all trucks concatenated on one key `truck * span + t`, so a chunk of pings for any set of
trucks is one `np.interp` call. `copies` > 1 replicates the fleet (ids `VEH-000001~k`,
unregistered, shifted a little in time and space) for the streamed 10× run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from shapely import STRtree

from spatial.crs import from_metric, geometry_to_metric
from spatial.model import PingBatch, World

DAY_S = 86_400
DAY_START = pd.Timestamp("2026-11-02 00:00", tz="Asia/Shanghai")  # the demo world's BASE_DAY
_SPAN_S = 2 * DAY_S  # key spacing between trucks: longer than any timeline
_OFF_ROAD_LIMIT_KMH = 60.0
_ROAD_MATCH_M = 30.0


@dataclass(frozen=True)
class FleetDayPlan:
    """Every truck's timeline; knots of truck v are at knot_key[offsets[v]:offsets[v + 1]]."""

    vehicle_id: np.ndarray  # object, the registered trucks planned
    knot_key: np.ndarray  # float64: truck position * _SPAN_S + seconds since DAY_START
    knot_x: np.ndarray  # EPSG:32651
    knot_y: np.ndarray
    knot_speed_kmh: np.ndarray  # speed on the stretch that starts at the knot (0 parked)
    offsets: np.ndarray
    speeders: np.ndarray  # positions of trucks driving over the limit
    deviators: np.ndarray  # positions of trucks leaving their route
    resters: np.ndarray  # positions of trucks taking a rest stop on the way
    interval_s: int
    seed: int

    @property
    def day_start_ms(self) -> int:
        return int(DAY_START.value // 1_000_000)

    def __len__(self) -> int:
        return len(self.vehicle_id)

    def pings_per_truck(self) -> int:
        return DAY_S // self.interval_s


def plan_fleet_day(world: World, seed: int = 0, interval_s: int = 30, speeding_share: float = 0.05,
                   deviation_share: float = 0.02, rest_share: float = 0.3) -> FleetDayPlan:
    """Timelines for every truck of `world` that has an active waybill (vectorised over trucks)."""
    if interval_s <= 0 or DAY_S % interval_s:
        raise ValueError(f"interval_s must divide a day into whole pings, got {interval_s}")
    rng = np.random.default_rng(seed)
    waybills = world.waybills
    active = waybills[waybills["status"].astype(str) == "active"].drop_duplicates("vehicle_id")
    if not len(active):
        raise ValueError("the world has no active waybill to drive")
    vehicle_id = active["vehicle_id"].astype(object).to_numpy()
    n = len(active)
    routes = np.asarray(geometry_to_metric(np.asarray(active.geometry.to_numpy(), dtype=object)), dtype=object)
    coords, owner = shapely.get_coordinates(routes, return_index=True)
    counts = np.bincount(owner, minlength=n)
    if (counts < 2).any():
        raise ValueError("an active waybill's route has fewer than two vertices")
    first = np.cumsum(counts) - counts
    rank = np.arange(len(owner)) - first[owner]

    # detours: a middle stretch of the route shifted 1.2 km sideways (north)
    deviators = np.sort(rng.choice(n, min(n, max(1, round(deviation_share * n))), replace=False))
    detour = np.zeros(n, bool)
    detour[deviators] = counts[deviators] >= 6
    deviators = np.flatnonzero(detour)
    shifted = detour[owner] & (rank >= 0.3 * counts[owner]) & (rank <= 0.6 * counts[owner])
    coords[shifted, 1] += 1_200.0

    # speed per segment: the limit of the road under its middle (default off roads) × a factor
    seg_owner = owner[1:]
    is_seg = owner[1:] == owner[:-1]
    a, b = coords[:-1][is_seg], coords[1:][is_seg]
    seg_owner = seg_owner[is_seg]
    mid = shapely.points((a + b) / 2)
    road_geoms = geometry_to_metric(np.asarray(world.roads.geometry.to_numpy(), dtype=object))
    road_limit = pd.to_numeric(world.roads["speed_limit_kmh"], errors="coerce").to_numpy("float64")
    (seg_i, road_j) = STRtree(road_geoms).query_nearest(mid, max_distance=_ROAD_MATCH_M, all_matches=False)
    limit = np.full(len(mid), _OFF_ROAD_LIMIT_KMH)
    limit[seg_i] = road_limit[road_j]
    factor = rng.uniform(0.8, 0.95, n)
    speeders = np.sort(rng.choice(n, min(n, max(1, round(speeding_share * n))), replace=False))
    factor[speeders] = rng.uniform(1.2, 1.35, len(speeders))
    speed = limit * factor[seg_owner]
    length = np.hypot(*(b - a).T)
    seg_s = length / (speed / 3.6)

    # rest stop: a pause of 10-40 min at a middle vertex
    resters = np.sort(rng.choice(n, min(n, round(rest_share * n)), replace=False))
    rest_s = np.zeros(n)
    rest_s[resters] = rng.uniform(600, 2400, len(resters))
    rest_vertex = counts // 2

    departure_s = ((pd.to_datetime(active["planned_departure"], utc=True) - DAY_START)
                   .dt.total_seconds().to_numpy("float64"))
    departure_s = np.clip(departure_s, 60.0, DAY_S - 3_600.0)

    # knots per truck: (0, parked), the route's vertices (the rest vertex twice), (end, parked)
    seg_start_rank = rank[:-1][is_seg]
    elapsed = np.zeros(len(owner))  # time at each vertex since departure
    seg_cum = np.cumsum(seg_s)
    seg_first = np.cumsum(counts - 1) - (counts - 1)
    before = seg_cum - seg_s  # cumulative over earlier trucks' segments too
    vertex_after = np.flatnonzero(np.r_[False, is_seg])
    elapsed[vertex_after] = seg_cum - before[seg_first[seg_owner]]
    elapsed += np.where(rank >= rest_vertex[owner], rest_s[owner], 0.0)
    t_vertex = departure_s[owner] + elapsed
    speed_after = np.zeros(len(owner))
    speed_after[np.flatnonzero(is_seg)] = speed  # vertex k starts segment k
    del seg_start_rank

    is_rest = rank == rest_vertex[owner]
    rest_rows = np.flatnonzero(is_rest & (rest_s[owner] > 0))
    # a rest vertex appears twice: arrive (speed 0), leave after the rest (segment speed)
    vx = np.insert(coords[:, 0], rest_rows, coords[rest_rows, 0])
    vy = np.insert(coords[:, 1], rest_rows, coords[rest_rows, 1])
    vt = np.insert(t_vertex, rest_rows, t_vertex[rest_rows] - rest_s[owner[rest_rows]])
    vspeed = np.insert(speed_after, rest_rows, 0.0)
    vowner = np.insert(owner, rest_rows, owner[rest_rows])
    last = np.r_[vowner[1:] != vowner[:-1], True]
    vspeed[last] = 0.0

    head = np.arange(n)
    key = np.concatenate([head * _SPAN_S + 0.0, vowner * _SPAN_S + vt, head * _SPAN_S + _SPAN_S - 1.0])
    start_xy = coords[first]
    end_xy = coords[first + counts - 1]
    kx = np.concatenate([start_xy[:, 0], vx, end_xy[:, 0]])
    ky = np.concatenate([start_xy[:, 1], vy, end_xy[:, 1]])
    ks = np.concatenate([np.zeros(n), vspeed, np.zeros(n)])
    order = np.argsort(key, kind="stable")
    key, kx, ky, ks = key[order], kx[order], ky[order], ks[order]
    if not (np.diff(key) > 0).all():
        raise AssertionError("fleet timelines are not strictly increasing")  # a zero-length segment at speed 0
    knot_counts = counts + (rest_s > 0) + 2
    return FleetDayPlan(vehicle_id, key, kx, ky, ks, np.r_[0, np.cumsum(knot_counts)], speeders, deviators,
                        resters[rest_s[resters] > 0], int(interval_s), int(seed))


def fleet_day_chunks(plan: FleetDayPlan, chunk_s: int = 600, copies: int = 1, trucks: np.ndarray | None = None,
                     hours: float = 24.0, from_hours: float = 0.0) -> Iterator[PingBatch]:
    """The day's pings in arrival order, one PingBatch per `chunk_s` of time (all trucks, every
    copy), deterministic in the plan's seed. `trucks` (positions in the plan) limits the fleet;
    copy k > 0 of truck v is `{id}~k`, `k` seconds later and `7 k` metres east."""
    if chunk_s <= 0 or chunk_s % plan.interval_s:
        raise ValueError(f"chunk_s must be a positive multiple of interval_s ({plan.interval_s}), got {chunk_s}")
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    trucks = np.arange(len(plan)) if trucks is None else np.asarray(trucks, "int64")
    base_ids = plan.vehicle_id[trucks]
    ids = np.concatenate([base_ids] + [base_ids + f"~{k}" for k in range(1, copies)]).astype(object)
    truck = np.tile(trucks, copies)
    copy = np.repeat(np.arange(copies), len(trucks))
    end_s = min(DAY_S, round(hours * 3600))
    per_chunk = chunk_s // plan.interval_s
    for c, t0 in enumerate(range(round(from_hours * 3600), end_s, chunk_s)):
        rng = np.random.default_rng([plan.seed, t0])
        steps = np.arange(per_chunk) * plan.interval_s + t0
        steps = steps[steps < end_s]
        # arrival order: by time, then truck
        t = (steps[:, None] + copy[None, :]).ravel().astype("float64")
        who = np.tile(np.arange(len(ids)), len(steps))
        key = truck[who] * _SPAN_S + t
        x = np.interp(key, plan.knot_key, plan.knot_x) + copy[who] * 7.0 + rng.normal(0.0, 2.5, len(key))
        y = np.interp(key, plan.knot_key, plan.knot_y) + rng.normal(0.0, 2.5, len(key))
        at = np.searchsorted(plan.knot_key, key, side="right") - 1
        moving = plan.knot_speed_kmh[at]
        speed = np.where(moving > 0, np.maximum(moving + rng.normal(0.0, 1.5, len(key)), 0.0), 0.0)
        lon, lat = from_metric(x, y)
        yield PingBatch.from_arrays(ids[who], plan.day_start_ms + (t * 1000).astype("int64"), lon, lat,
                                    speed_kmh=np.round(speed, 1))


def fleet_day(plan: FleetDayPlan, trucks: np.ndarray | None = None, hours: float = 24.0) -> PingBatch:
    """All the day's pings of `trucks` in one batch (small subsamples only)."""
    parts = list(fleet_day_chunks(plan, chunk_s=3600, trucks=trucks, hours=hours))
    return PingBatch(*(np.concatenate([getattr(p, f) for p in parts]) for f in (
        "vehicle_id", "epoch_ms", "lon", "lat", "speed_kmh", "heading", "alarm", "status")))
