"""Staged behaviours of the fleet simulator: each kind of data/sim/settings.py TRUCK_STAGES and
CLEANED_STAGES on `max(1, round(stage_share × fleet))` distinct trucks, at most one per truck.

Each stager looks at one candidate truck's plan (its drives, its waybills), decides whether the
behaviour can be staged validly on it (loaded when the rule wants loaded, a tank when it wants
a tank, a barred cargo for the zone, inside the simulated span with the margin, …) and, if so,
edits its drives (new paths, new departures), records silences or cleaned-stage pings, and
returns the STAGED_COLUMNS row, with start / end the real span of the behaviour:

* route_deviation: leaves its route mid-way, 1.5 km sideways for 3 km, and comes back
  (start: leaving the route; end: back on it).
* stop_near_school: loaded, turns off its route towards a school within 450 m of it and stops
  10-15 min within 100 m of the school (start / end: the stop).
* speeding: 4 min at 26 km/h over the highest limit of the stretch (expressway 80, else 60).
* residential_parking: loaded, parks 15-25 min within 50 m of a residential block near its
  route, away from every parking lot, service area, wash station and its own sites.
* washing_by_water: an empty tank truck drives from where it is parked to a spot 150 m outside
  a drinking-water protection zone, away from every allowed place, stays 40-55 min, drives back.
* media_change_unwashed: a tank truck whose two waybills carry different media drives the first
  inside the span (delayed at its loading site if need be), unloads and goes straight to the
  second's loading site (start: leaving the unloading site; end: the first report on the
  second waybill, within a parked interval of its planned departure).
* restricted_zone_closed_hour: a loaded truck whose route crosses a zone barring its cargo leaves
  so as to enter it while it is closed (start / end: inside the zone).
* fatigue: drives its route back and forth for more than 4 h 30 min without a stop.
* silent_terminal: on its waybill mid-route, reports nothing for offline_after_s + 10 min
  (start: the last report before; end: the first after).
* teleport / duplicate (CLEANED_STAGES): `count` (3) extra reports, set at the end of planning
  (data/sim/fleet.py): single fixes 30-80 km away half way between two reports, or exact
  re-sends of a report right after it.

Loops here run over candidate trucks of a few stage kinds (a few hundred tries at full scale),
never over pings.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import shapely

from data.sim._fleet_plan import (
    AFTER_ARRIVAL_S,
    DAY_S,
    FRESH_START_HOLD_S,
    MIN_DWELL_S,
    TAG_CONNECTOR,
    TAG_STAGE,
    TAG_TRIP,
    Plan,
    closed_interval_after,
    closure_conflict,
    zone_ranges,
)
from data.sim.settings import CLEANED_STAGES, TRUCK_STAGES
from spatial.crs import from_metric, geometry_to_metric

CLEANED_COUNT = 3  # extra reports per staged teleport / duplicate
# Kinds with the fewest candidates choose first.
STAGE_ORDER = ("media_change_unwashed", "restricted_zone_closed_hour", "fatigue", "washing_by_water",
               "silent_terminal", "stop_near_school", "residential_parking", "route_deviation", "speeding",
               "teleport", "duplicate")
MAX_TRIES = 400  # candidate trucks looked at per kind
DEVIATION_OFFSET_M = 1500.0
DEVIATION_LENGTH_M = 3000.0
SPEEDING_S = 240
SPEEDING_EXCESS_KMH = 26.0
FATIGUE_DRIVE_S = 4 * 3600 + 35 * 60
WATER_STANDOFF_M = 150.0
CRAWL_KMH = 20.0  # through a closed city core at rush hour


class _Context:
    """What the stagers share: geometry of the places they aim for or must avoid (metric)."""

    def __init__(self, plan: Plan):
        world = plan.world
        self.plan = plan
        sites = world.sensitive_sites
        kinds = sites["kind"].astype(object).to_numpy() if len(sites) else np.empty(0, object)
        geoms = _metric(sites)
        self.schools = geoms[kinds == "school"]
        self.school_tree = shapely.STRtree(self.schools)
        self.residential = geoms[kinds == "residential"]
        self.residential_tree = shapely.STRtree(self.residential)
        zones = world.restricted_zones
        zone_kinds = zones["kind"].astype(object).to_numpy() if len(zones) else np.empty(0, object)
        self.water = np.concatenate([geoms[kinds == "water_protection"],
                                     _metric(zones)[zone_kinds == "water_protection"]])
        self.zones_union = shapely.union_all(np.asarray(plan.zones["geom"].to_numpy(), dtype=object)) \
            if len(plan.zones) else shapely.Point()
        land = shapely.union_all(_metric(world.districts)) if len(world.districts) else None
        self.land = land
        if land is not None:
            shapely.prepare(land)
        self.lots_sa_wash = np.concatenate([_metric(world.parking_lots), _metric(world.service_areas),
                                            _metric(world.wash_stations)])
        self.wash_lots_repair = np.concatenate([_metric(world.wash_stations), _metric(world.parking_lots),
                                                _metric(world.repair_shops)])
        self.entities = _metric(world.entities)
        net = plan.net
        express = net.edge_limit_kmh >= 80.0
        self.express_tree = shapely.STRtree(net.edge_lines[express])
        self._water_spots: np.ndarray | None = None

    def on_land(self, xy: np.ndarray) -> bool:
        return self.land is None or bool(shapely.contains_xy(self.land, xy[:, 0], xy[:, 1]).all())

    def min_distance(self, geoms: np.ndarray, xy) -> float:
        if not len(geoms):
            return np.inf
        return float(shapely.distance(geoms, shapely.Point(*np.asarray(xy).ravel()[:2])).min())

    def water_spots(self) -> np.ndarray:
        """Points 150 m outside the drinking-water zones, on land, away from every place where
        an empty tank may wait (wash stations, lots, repair shops 150 m; enterprises 300 m)."""
        if self._water_spots is None:
            if not len(self.water):
                self._water_spots = np.empty((0, 2))
                return self._water_spots
            rings = shapely.get_parts(shapely.boundary(shapely.buffer(self.water, WATER_STANDOFF_M)))
            rings = shapely.get_parts(rings)
            lengths = shapely.length(rings)
            count = np.maximum((lengths // 250).astype(int), 1)
            owner = np.repeat(np.arange(len(rings)), count)
            along = (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)) * 250.0
            points = shapely.line_interpolate_point(rings[owner], along)
            xy = shapely.get_coordinates(points)
            keep = np.ones(len(xy), bool)
            if self.land is not None:
                keep &= shapely.contains_xy(self.land, xy[:, 0], xy[:, 1])
            pts = shapely.points(xy)
            keep &= _farther(pts, self.water, 100.0)
            keep &= _farther(pts, self.wash_lots_repair, 250.0)
            keep &= _farther(pts, self.entities, 400.0)
            self._water_spots = xy[keep]
        return self._water_spots


def _metric(frame) -> np.ndarray:
    if not len(frame):
        return np.empty(0, object)
    return np.asarray(geometry_to_metric(np.asarray(frame.geometry.to_numpy(), dtype=object)), dtype=object)


def _farther(points: np.ndarray, geoms: np.ndarray, distance: float) -> np.ndarray:
    """Per point: no geometry within `distance`."""
    out = np.ones(len(points), bool)
    if len(geoms) and len(points):
        i, _ = shapely.STRtree(geoms).query(points, predicate="dwithin", distance=distance)
        out[i] = False
    return out


# -- the truck's plan --------------------------------------------------------------------------

class _Truck:
    """One candidate truck's drives and waybills, with the times the stagers ask about."""

    def __init__(self, plan: Plan, v: int):
        self.plan, self.v = plan, v
        self.drives = plan.truck_drives(v).copy()  # edited here, committed back on success
        self.trips = plan.trips_of(v)
        self.arrive = np.array([plan.arrival(d, p) for d, p in zip(self.drives["depart"], self.drives["path"])],
                               dtype=np.int64)

    def trip(self, pos: int):
        """The drive of waybill `pos` when it is one drive: (index in drives, depart, path) or None."""
        rows = np.flatnonzero((self.drives["tag"].to_numpy() == TAG_TRIP) & (self.drives["wb"].to_numpy() == pos))
        if len(rows) != 1:
            return None
        k = int(rows[0])
        return k, int(self.drives["depart"].iat[k]), int(self.drives["path"].iat[k])

    def last_pos(self) -> int | None:
        return int(self.trips[-1]) if len(self.trips) else None

    def loaded_end(self, pos: int, k: int | None) -> int:
        """When waybill `pos` stops being active, its trip being drive k."""
        return self.plan.loaded_until(pos, None if k is None else int(self.arrive[k]))

    def replace(self, k: int, **changes) -> None:
        for name, value in changes.items():
            self.drives.iloc[k, self.drives.columns.get_loc(name)] = value

    def commit(self, extra: list[dict] | None = None, drop: list[int] | None = None) -> None:
        rows = self.drives.drop(index=self.drives.index[drop]) if drop else self.drives
        if extra:
            rows = pd.concat([rows, pd.DataFrame(extra)], ignore_index=True)
        self.plan.replace_drives(self.v, rows.astype({"depart": np.int64, "path": np.int64, "wb": np.int64}))


def _row(plan: Plan, v: int, kind: str, start: float, end: float, xy, note: str, count: int = 1) -> dict:
    lon, lat = from_metric(np.array([xy[0]]), np.array([xy[1]]))
    return {"subject_id": plan.vehicle_ids[v], "kind": kind, "rule": TRUCK_STAGES.get(kind),
            "drop_reason": CLEANED_STAGES.get(kind), "count": count, "start": plan.rel_to_utc(start),
            "end": plan.rel_to_utc(end), "lon": float(lon[0]), "lat": float(lat[0]), "note": note}


def _waybill_id(plan: Plan, pos: int) -> str:
    return str(plan.world.waybills["id"].iat[int(plan.wb["row"].iat[pos])])


def _active_trip(plan: Plan, truck: _Truck):
    """(pos, k, depart, path, Path, arrive, loaded_end) of the truck's last waybill, or None."""
    pos = truck.last_pos()
    if pos is None:
        return None
    trip = truck.trip(pos)
    if trip is None:
        return None
    k, depart, path_id = trip
    return pos, k, depart, path_id, plan.paths.path(path_id), int(truck.arrive[k]), truck.loaded_end(pos, k)


def _window(plan: Plan, truck: _Truck, need_s: float, lead_s: float = 300, tail_s: float = 600):
    """The times a behaviour needing need_s may start on the active trip: inside the span with
    the margin, lead_s after departure, loaded, tail_s before arriving. (lo, hi, trip) or None."""
    trip = _active_trip(plan, truck)
    if trip is None:
        return None
    pos, k, depart, _, path, arrive, loaded_end = trip
    dep_s = int(plan.wb["dep_s"].iat[pos])
    lo = max(int(plan.settings.stage_margin_s), depart + lead_s, dep_s + 60)
    hi = min(plan.end_s - need_s, arrive - tail_s - need_s, loaded_end - need_s - 300)
    if lo > hi:
        return None
    return lo, hi, trip


# -- stagers -----------------------------------------------------------------------------------

def _route_deviation(plan: Plan, ctx: _Context, v: int, rng) -> dict | None:
    truck = _Truck(plan, v)
    w = _window(plan, truck, 900)
    if w is None:
        return None
    lo, hi, (pos, k, depart, _, path, _, _) = w
    t0 = lo + int(rng.integers(0, min(600, hi - lo) + 1))
    s_start = float(path.arc_at_time(t0 - depart))
    route = path.line()
    for s0 in (s_start, s_start + 1500.0, s_start + 3000.0):
        if s0 + DEVIATION_LENGTH_M + 300 > path.length_m:
            break
        p0, p1 = path.point_at_arc(np.array([s0, s0 + DEVIATION_LENGTH_M]))
        chord = p1 - p0
        c = float(np.hypot(*chord))
        if c < 0.5 * DEVIATION_LENGTH_M:
            continue
        for side in (1.0, -1.0):
            normal = side * np.array([-chord[1], chord[0]]) / c
            q0, q1 = p0 + DEVIATION_OFFSET_M * normal, p1 + DEVIATION_OFFSET_M * normal
            if shapely.distance(shapely.linestrings([q0, q1]), route) < 1100.0:
                continue
            detour = shapely.linestrings([p0, q0, q1, p1])
            if shapely.dwithin(detour, ctx.zones_union, 200.0) or not ctx.on_land(np.array([q0, q1])):
                continue
            coords = np.vstack([path.coords(0.0, s0), q0, q1, path.coords(s0 + DEVIATION_LENGTH_M)])
            new_id = plan.paths.add_one(coords, plan.factor[v])
            new = plan.paths.path(new_id)
            leave = depart + float(new.time_at_arc(s0))
            back_arc = s0 + 2 * DEVIATION_OFFSET_M + float(np.hypot(*(q1 - q0)))
            back = depart + float(new.time_at_arc(back_arc))
            if back > plan.end_s - 60 or closure_conflict(plan, pos, [(new_id, depart)]):
                return None
            truck.replace(k, path=new_id)
            truck.commit()
            return _row(plan, v, "route_deviation", leave, back, p0,
                        f"leaves the route of {_waybill_id(plan, pos)} {DEVIATION_OFFSET_M:.0f} m sideways "
                        f"for {DEVIATION_LENGTH_M:.0f} m of it, then returns")
    return None


def _speeding(plan: Plan, ctx: _Context, v: int, rng) -> dict | None:
    truck = _Truck(plan, v)
    w = _window(plan, truck, SPEEDING_S + 60)
    if w is None:
        return None
    lo, hi, (pos, k, depart, _, path, _, _) = w
    t0 = lo + int(rng.integers(0, min(600, hi - lo) + 1))
    s0 = float(path.arc_at_time(t0 - depart))
    probe = path.coords(s0, min(path.length_m, s0 + 106.0 / 3.6 * SPEEDING_S))
    stretch_line = shapely.linestrings(probe)
    expressway = len(ctx.express_tree.query(stretch_line, predicate="dwithin", distance=50.0)) > 0
    top_limit = 80.0 if expressway else 60.0
    speed = top_limit + SPEEDING_EXCESS_KMH
    length = speed / 3.6 * SPEEDING_S
    if s0 + length + 300 > path.length_m:
        return None
    if shapely.dwithin(shapely.linestrings(path.coords(s0, s0 + length)), ctx.zones_union, 150.0):
        return None
    pre, mid, post = path.coords(0.0, s0), path.coords(s0, s0 + length), path.coords(s0 + length)
    coords = np.vstack([pre[:-1], mid, post[1:]])
    override = np.concatenate([np.full(len(pre) - 1, np.nan), np.full(len(mid) - 1, speed),
                               np.full(len(post), np.nan)])
    new_id = plan.paths.add_one(coords, plan.factor[v], override)
    new = plan.paths.path(new_id)
    start = depart + float(new.time_at_arc(s0))
    end = depart + float(new.time_at_arc(s0 + length))
    if closure_conflict(plan, pos, [(new_id, depart)]):
        return None
    truck.replace(k, path=new_id)
    truck.commit()
    return _row(plan, v, "speeding", start, end, mid[0],
                f"{speed:.0f} km/h for {SPEEDING_S} s where the limit is at most {top_limit:.0f} km/h")


def _stop_on_trip(plan: Plan, truck: _Truck, k: int, depart: int, path, s_at: float, stop_xy: np.ndarray,
                  dwell_s: int) -> tuple[float, float] | None:
    """Replace trip drive k by: route up to arc s_at, off to stop_xy, stop dwell_s, back, on
    (None, and nothing changed, when the later arrival would meet a closed zone)."""
    v = truck.v
    on_route = path.point_at_arc(np.array([s_at]))[0]
    off = float(np.hypot(*(stop_xy - on_route))) >= 1.0
    first = np.vstack([path.coords(0.0, s_at), stop_xy]) if off else path.coords(0.0, s_at)
    second = np.vstack([stop_xy, path.coords(s_at)]) if off else path.coords(s_at)
    p1 = plan.paths.add_one(first, plan.factor[v])
    p2 = plan.paths.add_one(second, plan.factor[v])
    arrive = depart + plan.paths.path(p1).duration_s
    pos = int(truck.drives["wb"].iat[k])
    if closure_conflict(plan, pos, [(p1, depart), (p2, arrive + dwell_s)]):
        return None
    truck.replace(k, path=p1)
    truck.commit(extra=[{"truck": v, "depart": arrive + dwell_s, "path": p2, "tag": TAG_TRIP,
                         "wb": int(truck.drives["wb"].iat[k])}])
    return arrive, arrive + dwell_s


def _stop_site_candidates(plan: Plan, truck: _Truck, need_s: float):
    w = _window(plan, truck, need_s)
    if w is None:
        return None
    lo, hi, trip = w
    pos, k, depart, _, path, _, _ = trip
    s_lo, s_hi = float(path.arc_at_time(lo - depart)), float(path.arc_at_time(hi - depart))
    return trip, path.line(), s_lo, s_hi


def _clear_of_own_sites(plan: Plan, pos: int, xy: np.ndarray, distance: float) -> bool:
    sites = plan.wb[["load_x", "load_y", "unload_x", "unload_y"]].iloc[pos].to_numpy().reshape(2, 2)
    return bool((np.hypot(*(sites - xy).T) > distance).all())


def _stop_near_school(plan: Plan, ctx: _Context, v: int, rng) -> dict | None:
    truck = _Truck(plan, v)
    found = _stop_site_candidates(plan, truck, 15 * 60 + 600)
    if found is None or not len(ctx.schools):
        return None
    (pos, k, depart, _, path, _, _), route, s_lo, s_hi = found
    near = ctx.school_tree.query(route, predicate="dwithin", distance=450.0)
    for j in near[np.argsort(shapely.line_locate_point(route, ctx.schools[near]))]:  # a few schools
        school = ctx.schools[j]
        s_at = float(shapely.line_locate_point(route, school))
        if not s_lo <= s_at <= s_hi:
            continue
        p = path.point_at_arc(np.array([s_at]))[0]
        line = shapely.shortest_line(school, shapely.Point(p))
        r = shapely.get_coordinates(line)[0]
        d = float(np.hypot(*(p - r)))
        stop = p if d <= 100.0 else r + (p - r) / d * 100.0
        if not _clear_of_own_sites(plan, pos, stop, 400.0):
            continue
        span = _stop_on_trip(plan, truck, k, depart, path, s_at, stop, int(rng.integers(600, 901)))
        if span is None:
            continue
        start, end = span
        return _row(plan, v, "stop_near_school", start, end, stop,
                    f"loaded, stops {end - start:.0f} s within 100 m of school site row {j}")
    return None


def _residential_parking(plan: Plan, ctx: _Context, v: int, rng) -> dict | None:
    truck = _Truck(plan, v)
    found = _stop_site_candidates(plan, truck, 25 * 60 + 600)
    if found is None or not len(ctx.residential):
        return None
    (pos, k, depart, _, path, _, _), route, s_lo, s_hi = found
    near = ctx.residential_tree.query(route, predicate="dwithin", distance=450.0)
    for j in near:  # a few residential blocks
        line = shapely.shortest_line(route, ctx.residential[j])
        p, r = shapely.get_coordinates(line)
        s_at = float(shapely.line_locate_point(route, shapely.Point(p)))
        if not s_lo <= s_at <= s_hi:
            continue
        d = float(np.hypot(*(p - r)))
        stop = p if d <= 60.0 else r + (p - r) / d * 50.0
        if ctx.min_distance(ctx.lots_sa_wash, stop) <= 250.0 or not _clear_of_own_sites(plan, pos, stop, 400.0):
            continue
        span = _stop_on_trip(plan, truck, k, depart, path, s_at, stop, int(rng.integers(900, 1501)))
        if span is None:
            continue
        start, end = span
        return _row(plan, v, "residential_parking", start, end, stop,
                    f"loaded, parks {end - start:.0f} s by a residential block, away from any allowed place")
    return None


def _parked_empty(plan: Plan, truck: _Truck) -> list[tuple[int, int, np.ndarray]]:
    """The truck's parked stretches with no waybill in force: (from, to, where)."""
    d = truck.drives
    loaded = []
    for pos in truck.trips:  # a truck's waybills: two
        ks = np.flatnonzero((d["tag"].to_numpy() == TAG_TRIP) & (d["wb"].to_numpy() == pos))
        loaded.append((int(plan.wb["dep_s"].iat[pos]),
                       truck.loaded_end(pos, int(ks[-1]) if len(ks) else None)))
    out = []
    for k in range(-1, len(d)):  # before the first drive, then after each
        begin = int(truck.arrive[k]) if k >= 0 else -DAY_S
        finish = int(d["depart"].iat[k + 1]) if k + 1 < len(d) else plan.end_s + DAY_S
        for a, b in loaded:  # keep what lies outside the waybills' active times
            if a <= begin < b:
                begin = b
            elif begin < a < finish:
                finish = a
        if finish > begin:
            path = plan.paths.path(int(d["path"].iat[max(k, 0)]))
            at = -1 if k >= 0 else 0
            out.append((begin, finish, np.array([path.x[at], path.y[at]])))
    if not len(d):
        out.append((-DAY_S, plan.end_s + DAY_S, plan.home_xy[truck.v]))
    return out


def _washing_by_water(plan: Plan, ctx: _Context, v: int, rng) -> dict | None:
    if not plan.tank[v]:
        return None
    spots = ctx.water_spots()
    if not len(spots):
        return None
    truck = _Truck(plan, v)
    dwell = int(rng.integers(2400, 3301))
    for begin, finish, xy in _parked_empty(plan, truck):
        target = spots[int(np.argmin(np.hypot(*(spots - xy).T)))]
        if np.hypot(*(target - xy)) > 40_000:
            continue
        coords, owner = plan.net.routes(xy[None, :], target[None, :])
        out_id = plan.paths.add_one(coords, plan.factor[v])
        back_id = plan.paths.add_one(coords[::-1], plan.factor[v])
        out_s = plan.paths.path(out_id).duration_s
        back_s = plan.paths.path(back_id).duration_s
        leave = max(begin + 600, int(plan.settings.stage_margin_s) - out_s, FRESH_START_HOLD_S)
        arrive = leave + out_s
        if arrive + dwell + back_s + 600 > finish or arrive + dwell + 300 > plan.end_s:
            continue
        truck.commit(extra=[
            {"truck": v, "depart": leave, "path": out_id, "tag": TAG_STAGE, "wb": -1},
            {"truck": v, "depart": arrive + dwell, "path": back_id, "tag": TAG_STAGE, "wb": -1}])
        return _row(plan, v, "washing_by_water", arrive, arrive + dwell, target,
                    f"empty tank, stops {dwell} s {WATER_STANDOFF_M:.0f} m outside a drinking-water zone")
    return None


def _media_change_unwashed(plan: Plan, ctx: _Context, v: int, rng) -> dict | None:
    if not plan.tank[v]:
        return None
    truck = _Truck(plan, v)
    if len(truck.trips) != 2:
        return None
    pos_p, pos_n = (int(i) for i in truck.trips)
    wb = plan.wb
    uns_p, uns_n = wb["uns"].iat[pos_p], wb["uns"].iat[pos_n]
    if not uns_p or not uns_n or uns_p == uns_n:
        return None
    trip_p, trip_n = truck.trip(pos_p), truck.trip(pos_n)
    if trip_p is None or trip_n is None:
        return None
    a_xy = wb[["unload_x", "unload_y"]].iloc[pos_p].to_numpy(float)
    b_xy = wb[["load_x", "load_y"]].iloc[pos_n].to_numpy(float)
    if ctx.min_distance(_points(plan.wash_xy), a_xy) <= 250.0 or ctx.min_distance(_points(plan.wash_xy), b_xy) <= 250.0:
        return None
    trip_s = plan.paths.path(trip_p[2]).duration_s
    dwell = 25 * 60
    dep_p, arr_p, dep_n = int(wb["dep_s"].iat[pos_p]), int(wb["arr_s"].iat[pos_p]), int(wb["dep_s"].iat[pos_n])
    ready_by = min(dep_n, trip_n[1])
    lo = int(plan.settings.stage_margin_s)
    unload = max(60, dep_p - 240, lo - dwell)  # the engine sees the truck arrive and unload
    if unload + 300 > arr_p + AFTER_ARRIVAL_S - 60 or dep_n + plan.settings.parked_interval_s > plan.end_s - 60:
        return None
    # the first trip moves (it must not meet a zone closed to it then); the second keeps its time
    if closure_conflict(plan, pos_p, [(trip_p[2], unload - trip_s)]):
        return None
    if np.hypot(*(b_xy - a_xy)) >= 1.0:
        coords, _ = plan.net.routes(a_xy[None, :], b_xy[None, :])
        conn_id = plan.paths.add_one(coords, plan.factor[v])
        conn_s = plan.paths.path(conn_id).duration_s
    else:
        conn_id, conn_s = -1, 0
    leave = unload + dwell
    if leave + conn_s + MIN_DWELL_S > ready_by:
        return None
    d = truck.drives
    truck.replace(trip_p[0], depart=unload - trip_s)
    drop = [int(i) for i in np.flatnonzero(d["tag"].to_numpy() == TAG_CONNECTOR)]
    extra = [{"truck": v, "depart": leave, "path": conn_id, "tag": TAG_CONNECTOR, "wb": -1}] if conn_id >= 0 else []
    truck.commit(extra=extra, drop=drop)
    end = dep_n + plan.settings.parked_interval_s
    return _row(plan, v, "media_change_unwashed", leave, end, a_xy,
                f"tank: {sorted(uns_p)} then {sorted(uns_n)}, straight from unloading to loading, no wash")


def _points(xy) -> np.ndarray:
    return shapely.points(xy) if xy is not None and len(xy) else np.empty(0, object)


def _restricted_zone_closed_hour(plan: Plan, ctx: _Context, v: int, rng) -> dict | None:
    truck = _Truck(plan, v)
    wb = plan.wb
    lo = int(plan.settings.stage_margin_s)
    for pos in truck.trips[::-1]:  # the last waybill first, then the one before
        pos = int(pos)
        trip = truck.trip(pos)
        if trip is None:
            continue
        k, depart, path_id = trip
        inside = _inside_zones(plan)
        inside = inside[(inside["owner"] == pos) & (inside["path"] == path_id)]
        if not len(inside):
            continue
        path = plan.paths.path(path_id)
        dep_s, arr_s = int(wb["dep_s"].iat[pos]), int(wb["arr_s"].iat[pos])
        at_site = int(truck.arrive[k - 1]) + 60 if k > 0 else -DAY_S
        next_depart = int(truck.drives["depart"].iat[k + 1]) if k + 1 < len(truck.drives) else None
        for row in inside.sort_values("t_in").itertuples():  # stretches inside zones: one or two
            if row.arc_in < 1.0 or row.arc_out - row.arc_in < 100.0:
                continue  # a loading site inside the zone: the truck would be in it before it drives
            # rush hour in a city core: the truck crawls through it
            crawl_s = (row.arc_out - row.arc_in) / (CRAWL_KMH / 3.6)
            timing = _closed_entry(plan, int(row.zone), max(lo, dep_s + 60, at_site + row.t_in), crawl_s,
                                   min(plan.end_s - 60, arr_s + AFTER_ARRIVAL_S - 60))
            if timing is None:
                continue
            pre, mid, post = path.coords(0.0, row.arc_in), path.coords(row.arc_in, row.arc_out), \
                path.coords(row.arc_out)
            coords = np.vstack([pre[:-1], mid, post[1:]])
            override = np.concatenate([np.full(len(pre) - 1, np.nan), np.full(len(mid) - 1, CRAWL_KMH),
                                       np.full(len(post), np.nan)])
            new_id = plan.paths.add_one(coords, plan.factor[v], override)
            new = plan.paths.path(new_id)
            t_in, t_out = float(new.time_at_arc(row.arc_in)), float(new.time_at_arc(row.arc_out))
            timing = _closed_entry(plan, int(row.zone), max(lo, dep_s + 60, at_site + t_in), t_out - t_in,
                                   min(plan.end_s - 60, arr_s + AFTER_ARRIVAL_S - 60))
            if timing is None:
                continue
            leave = timing - int(round(t_in))
            if next_depart is not None and leave + new.duration_s + MIN_DWELL_S > next_depart:
                continue
            truck.replace(k, depart=leave, path=new_id)
            truck.commit()
            zone = plan.zones.iloc[int(row.zone)]
            return _row(plan, v, "restricted_zone_closed_hour", leave + t_in, leave + t_out,
                        path.point_at_arc(np.array([row.arc_in]))[0],
                        f"loaded with a class {zone['id']} ({zone['kind']}) bars; inside it "
                        f"{t_out - t_in:.0f} s while it is closed, crawling at {CRAWL_KMH:.0f} km/h")
    return None


def _inside_zones(plan: Plan) -> pd.DataFrame:
    """Stretches of waybill routes inside a zone barring their cargo (zone_ranges with no margin),
    worked out once for every trip that comes near such a zone."""
    if "inside_zones" not in plan.cache:
        pos = np.asarray(plan.near_zone, np.int64)
        pos = pos[plan.trip_path[pos] >= 0]
        plan.cache["inside_zones"] = zone_ranges(plan, plan.trip_path[pos], pos, 0.0)
    return plan.cache["inside_zones"]


def _closed_entry(plan: Plan, zone: int, earliest: float, stay_s: float, latest_exit: float) -> int | None:
    """The first whole second at or after `earliest`, a minute into a closed window of the
    zone, with two minutes of it left, and out again (stay_s later) by latest_exit."""
    x = earliest
    for _ in range(3):  # the next closed windows
        closed, window_end = closed_interval_after(plan.zones, zone, plan.origin_s, np.array([int(np.ceil(x))]))
        entry = int(np.ceil(max(float(x), float(closed[0]) + 60.0)))
        if entry + 120.0 > window_end[0]:
            x = min(window_end[0], 1e12) + 1
            continue
        return entry if entry + stay_s <= latest_exit else None
    return None


def _fatigue(plan: Plan, ctx: _Context, v: int, rng) -> dict | None:
    truck = _Truck(plan, v)
    trip = _active_trip(plan, truck)
    if trip is None:
        return None
    pos, k, depart, path_id, path, arrive, loaded_end = trip
    if pos in plan.near_zone or path.length_m < 5000 or shapely.dwithin(path.line(), ctx.zones_union, 200.0):
        return None
    lo = int(plan.settings.stage_margin_s)
    latest = plan.end_s - FATIGUE_DRIVE_S + 300
    dur = path.duration_s
    route = path.coords()
    if lo <= depart <= latest:  # on its waybill: the route there and back until the time is up
        laps = int(np.ceil(FATIGUE_DRIVE_S / dur))
        laps += 1 - laps % 2  # odd: ends at the unloading site
        start = depart
    else:  # after its last waybill: back and forth from the unloading site
        start = max(lo, loaded_end + 1800, FRESH_START_HOLD_S) + int(rng.integers(0, 301))
        if start > latest or start < arrive + 1800:
            return None
        laps = int(np.ceil(FATIGUE_DRIVE_S / dur))
        laps += laps % 2  # even: back at the unloading site
        route = route[::-1]
    parts = [route] + [(route[::-1] if i % 2 else route)[1:] for i in range(1, laps)]
    new_id = plan.paths.add_one(np.vstack(parts), plan.factor[v])
    total = plan.paths.path(new_id).duration_s
    if start == depart:
        truck.replace(k, path=new_id)
        truck.commit()
    else:
        truck.commit(extra=[{"truck": v, "depart": start, "path": new_id, "tag": TAG_STAGE, "wb": -1}])
    return _row(plan, v, "fatigue", start, start + total, route[0],
                f"drives {total} s without a stop ({laps} times along its route)")


def _silent_terminal(plan: Plan, ctx: _Context, v: int, rng) -> dict | None:
    s = plan.settings
    silence = int(np.ceil((s.offline_after_s + 600) / s.moving_interval_s)) * s.moving_interval_s
    truck = _Truck(plan, v)
    w = _window(plan, truck, silence + 60, tail_s=600)
    if w is None:
        return None
    lo, hi, (pos, k, depart, _, path, _, _) = w
    iv = s.moving_interval_s
    last = depart + iv * int(np.ceil((lo - depart) / iv)) + iv * int(rng.integers(0, 11))
    if last > hi:
        last = depart + iv * int(np.ceil((lo - depart) / iv))
    first = last + silence
    plan.silences.append((v, int(last), int(first)))
    xy = path.point_at_arc(path.arc_at_time(np.array([last - depart])))[0]
    return _row(plan, v, "silent_terminal", last, first, xy,
                f"on its waybill mid-route, no report for {silence} s")


def cleaned_gap_s(plan: Plan, count: int) -> int:
    """Seconds between a cleaned stage's extra reports (they begin a minute after the margin)."""
    return max(60, min(1200, (plan.end_s - int(plan.settings.stage_margin_s) - 600) // max(count, 1)))


def _cleaned(kind: str):
    def stage(plan: Plan, ctx: _Context, v: int, rng) -> dict | None:
        lo = int(plan.settings.stage_margin_s)
        if plan.end_s - lo < 1800:
            return None  # no room for three reports a while apart
        # a truck that neither sets off nor arrives meanwhile: nothing else of it starts then
        truck = _Truck(plan, v)
        span_end = lo + 60 + CLEANED_COUNT * cleaned_gap_s(plan, CLEANED_COUNT) + 600
        departs = truck.drives["depart"].to_numpy()
        if (((departs >= lo - 600) & (departs <= span_end)) | ((truck.arrive >= lo - 600)
                                                              & (truck.arrive <= span_end))).any():
            return None
        note = ("count = single false fixes 30-80 km from the truck, each half way between two of its "
                "reports; lon/lat: the first false fix"
                if kind == "teleport" else "count = exact re-sends of a report, each right after the original")
        plan.cleaned.append((v, kind, CLEANED_COUNT, note))
        return {}  # the row is written once the reports are known (data/sim/fleet.py)
    return stage


STAGERS = {
    "route_deviation": _route_deviation,
    "stop_near_school": _stop_near_school,
    "speeding": _speeding,
    "residential_parking": _residential_parking,
    "washing_by_water": _washing_by_water,
    "media_change_unwashed": _media_change_unwashed,
    "restricted_zone_closed_hour": _restricted_zone_closed_hour,
    "fatigue": _fatigue,
    "silent_terminal": _silent_terminal,
    "teleport": _cleaned("teleport"),
    "duplicate": _cleaned("duplicate"),
}


def _candidates(plan: Plan, kind: str) -> np.ndarray:
    """Trucks worth trying for a kind (a cheap vectorised narrowing; the stager decides)."""
    n = len(plan.vehicle_ids)
    wb = plan.wb
    mask = np.ones(n, bool)
    if kind in ("washing_by_water", "media_change_unwashed"):
        mask &= plan.tank
    if not len(wb):
        return mask & (kind in ("teleport", "duplicate", "washing_by_water", "fatigue"))
    truck = wb["truck"].to_numpy(np.int64)
    last = np.r_[truck[1:] != truck[:-1], True]
    if kind in ACTIVE_TRIP_KINDS:
        depart = wb["depart"].to_numpy(np.int64)[last]
        arrive = depart + wb["trip_s"].to_numpy(np.int64)[last]
        lo = int(plan.settings.stage_margin_s)
        ok = (depart <= plan.end_s - 900) & (arrive >= lo + 900)
        mask &= np.isin(np.arange(n), truck[last][ok])
    elif kind == "restricted_zone_closed_hour":  # a crossing that can fall in a closed window
        inside = _inside_zones(plan)
        inside = inside[(inside["arc_in"] >= 1.0) & (inside["arc_out"] - inside["arc_in"] >= 100.0)]
        pos = inside["owner"].to_numpy(np.int64)
        stay = (inside["arc_out"] - inside["arc_in"]).to_numpy() / (CRAWL_KMH / 3.6)
        earliest = np.maximum(int(plan.settings.stage_margin_s), wb["dep_s"].to_numpy()[pos] + 60)
        latest = np.minimum(plan.end_s, wb["arr_s"].to_numpy()[pos] + AFTER_ARRIVAL_S) - stay - 180
        ok = np.zeros(len(pos), bool)
        zone = inside["zone"].to_numpy(np.int64)
        for z in np.unique(zone):  # a handful of zones
            m = zone == z
            closed, _ = closed_interval_after(plan.zones, int(z), plan.origin_s, earliest[m])
            ok[m] = closed + 60 <= latest[m]
        mask &= np.isin(np.arange(n), truck[pos[ok]])
    elif kind == "media_change_unwashed":
        uns = wb["uns"].to_numpy()
        first = np.r_[True, truck[1:] != truck[:-1]]
        pairs = np.flatnonzero(first[:-1] & last[1:] & (truck[1:] == truck[:-1]))  # trucks with two waybills
        change = np.array([bool(uns[i]) and bool(uns[i + 1]) and uns[i] != uns[i + 1] for i in pairs], bool)
        # the first still in force once the span starts, the second in force before it ends
        arr_s, dep_s = wb["arr_s"].to_numpy(np.int64), wb["dep_s"].to_numpy(np.int64)
        timely = (arr_s[pairs] + AFTER_ARRIVAL_S > 600) & (dep_s[pairs + 1] + 600 < plan.end_s)
        mask &= np.isin(np.arange(n), truck[pairs][change & timely] if len(pairs) else [])
    return mask


ACTIVE_TRIP_KINDS = ("route_deviation", "speeding", "silent_terminal", "stop_near_school", "residential_parking")


def stage_fleet(plan: Plan) -> None:
    """Stage every requested kind on its share of the fleet (mutates `plan`)."""
    s = plan.settings
    n = len(plan.vehicle_ids)
    kinds = [k for k in STAGE_ORDER if k in s.stage_kinds]
    if not kinds or not n:
        return
    want = max(1, round(s.stage_share * n))
    ctx = _Context(plan)
    shortfall = {}
    plan.split_drives()
    for kind in kinds:  # eleven kinds at most
        rng = np.random.default_rng([int(s.seed), 77, STAGE_ORDER.index(kind)])
        pool = np.flatnonzero(_candidates(plan, kind))
        got = tries = 0
        for v in rng.permutation(pool):  # candidate trucks until enough are staged
            if got >= want or tries >= MAX_TRIES:
                break
            v = int(v)
            if v in plan.staged_trucks:
                continue
            tries += 1
            row = STAGERS[kind](plan, ctx, v, rng)
            if row is None:
                continue
            plan.staged_trucks.add(v)
            if row:
                plan.staged.append(row)
            got += 1
        if got < want:
            shortfall[kind] = want - got
    plan.join_drives()
    if shortfall:
        plan.diagnostics["stage_shortfall"] = shortfall
        warnings.warn(f"fleet simulator: too few suitable trucks to stage {shortfall} "
                      f"(in {s.hours} h from {s.start}, margin {s.stage_margin_s} s)", stacklevel=3)
