"""The fleet simulator's working plan: every truck's drives (path, departure), built for the
unstaged fleet and then edited by the staging (data/sim/_fleet_stage.py).

Times are whole seconds relative to the simulated start (`origin_s`, UTC epoch seconds).

A truck's day, unstaged: parked at the loading site of its first waybill; each waybill's
planned route driven from its planned departure (plus up to three minutes: terminals are not in
step), moved when the route would take it into a restricted zone that bars its cargo while the
zone is closed (later: it waits at the loading site; or earlier: it leaves before the waybill is
in force); parked at the unloading site (long enough for the waybill stage to confirm the
unloading stop and for the fatigue rule to count a rest); then straight on to the next waybill's
loading site by the quickest road route (around zones closed all day where it can), via the nearest
wash station (a stop of 12-18 min) when a tank's next cargo is another medium; parked there,
waiting for its load, until the next departure. A drive over 3.5 h is split by a 25-35 min rest half way. After the
last waybill the truck stays parked at its unloading site.

When a truck's waybills leave too little time for all that, the stays shrink to what the rules
need, the earlier trip leaves its loading site early, and as a last resort the next departure
is pushed (`diagnostics["departures_pushed"]`: such a truck is off its route while the next
waybill is in force, which the route_deviation rule sees). An engine watching the simulation
starts with it and cannot know of an unloading before the start: a truck unloaded then stays
at its unloading site until the engine has seen the stop (FRESH_START_HOLD_S), which is what
pushes departures in practice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from data.sim._fleet_roads import PathSet, RoadNet
from data.sim.settings import SimSettings
from spatial.crs import geometry_to_metric, to_metric
from spatial.model import World
from spatial.rules.dwell import waybill_cargo
from spatial.rules.restricted_zone import LOCAL_OFFSET_MS, closed_window, first_closed_ms
from spatial.rules.waybills import WaybillSettings

DAY_S = 86_400
AFTER_ARRIVAL_S = int(WaybillSettings().after_arrival_s)  # a waybill with no unloading stop ends then
DEPART_JITTER_S = 180
UNLOAD_DWELL_S = (25 * 60, 40 * 60)
LOAD_LEAD_S = (30 * 60, 60 * 60)
# Parked at least this long at each end of a trip even when time is short: the unloading stop is
# confirmed (5 min) and the stay counts as a rest for the fatigue rule (20 min).
MIN_DWELL_S = 22 * 60
SHORT_DWELL_S = 7 * 60  # enough for the unloading stop to be confirmed (5 min)
SHORT_DWELL_DRIVE_S = int(3.5 * 3600)  # drives this long in all may follow one another that closely
WASH_DWELL_S = (12 * 60, 18 * 60)
REST_AFTER_S = int(3.5 * 3600)
REST_S = (25 * 60, 35 * 60)
# A trip passing this close to a restricted zone that bars its cargo is kept out of its closed
# hours: the rule tests the straight line between two pings 30 s apart, which cuts corners.
CLOSURE_NEAR_M = 300.0
CLOSURE_MARGIN_S = 180
SHIFT_LATE_S = 4 * 3600  # closure shifts considered: this much later, or
SHIFT_EARLY_S = 2 * 3600  # this much earlier (leaving the loading site before the waybill is in force)
SITE_IN_ZONE_M = 50.0  # a site this close to a zone: a truck parked there is in it (GNSS noise)
# The engine that watches the simulation starts with it: it cannot know that a waybill was
# unloaded before the start, so a truck unloaded then stays at the unloading site until the
# engine has seen it stopped there (two parked reports, confirming the unloading stop) or the
# waybill has timed out.
FRESH_START_HOLD_S = 660
CONNECTOR_JUMP_KMH = 40.0  # connectors wholly outside the simulated span are straight lines

TAG_TRIP, TAG_CONNECTOR, TAG_STAGE = "trip", "connector", "stage"


@dataclass
class Plan:
    """Mutable working state of the simulator while planning."""

    world: World
    settings: SimSettings
    net: RoadNet
    paths: PathSet
    rng: np.random.Generator
    origin_s: int
    end_s: int  # simulated span [0, end_s)
    vehicle_ids: np.ndarray
    tank: np.ndarray  # per truck
    factor: np.ndarray  # per truck: share of the conservative limit it drives at
    home_xy: np.ndarray  # per truck: where it parks when it has nothing to drive
    wb: pd.DataFrame  # usable waybills (see _waybills)
    trip_path: np.ndarray  # per wb row position: the route's path id (-1 not drivable)
    drives: pd.DataFrame  # truck, depart, path, tag, wb (position in `wb`, -1 none)
    zones: pd.DataFrame  # restricted zones: id, kind, window_start_ms, window_length_ms, geom (metric)
    zone_hit: np.ndarray  # (len(wb), len(zones)): the zone bars the waybill's cargo
    wash_xy: np.ndarray | None = None  # wash stations, metric
    near_zone: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # wb positions near a barring zone
    diagnostics: dict = field(default_factory=dict)
    silences: list = field(default_factory=list)  # (truck, after_s, before_s): no pings strictly between
    cleaned: list = field(default_factory=list)  # (truck, kind, count, note) for teleports / duplicates
    staged: list = field(default_factory=list)  # STAGED_COLUMNS dicts
    staged_trucks: set = field(default_factory=set)
    by_truck: dict | None = None  # drives per truck while staging (split_drives / join_drives)
    _trips_index: dict | None = None
    cache: dict = field(default_factory=dict)

    # -- helpers the staging uses -----------------------------------------------------------------

    def split_drives(self) -> None:
        """Keep the drives per truck (in departure order) while staging edits them one truck at a time."""
        ordered = self.drives.sort_values(["truck", "depart"], kind="stable")
        self.by_truck = {int(v): rows for v, rows in ordered.groupby("truck", sort=False)}

    def join_drives(self) -> None:
        if self.by_truck is not None:
            frames = [rows for rows in self.by_truck.values() if len(rows)]
            self.drives = pd.concat(frames, ignore_index=True) if frames else self.drives.iloc[:0]
            self.by_truck = None

    def truck_drives(self, v: int) -> pd.DataFrame:
        if self.by_truck is not None:
            return self.by_truck.get(int(v), self.drives.iloc[:0])
        return self.drives[self.drives["truck"] == v].sort_values("depart", kind="stable")

    def replace_drives(self, v: int, rows: pd.DataFrame) -> None:
        rows = rows.assign(truck=v)[list(self.drives.columns)].sort_values("depart", kind="stable")
        if self.by_truck is not None:
            self.by_truck[int(v)] = rows
        else:
            keep = self.drives[self.drives["truck"] != v]
            self.drives = pd.concat([keep, rows], ignore_index=True)

    def arrival(self, depart: int, path: int) -> int:
        return int(depart) + self.paths.path(int(path)).duration_s

    def trips_of(self, v: int) -> np.ndarray:
        """The truck's waybills in departure order (positions in `wb`)."""
        if self._trips_index is None:
            self._trips_index = self.wb.groupby("truck").indices
        return np.asarray(self._trips_index.get(int(v), np.empty(0, np.int64)), np.int64)

    def loaded_until(self, pos: int, unload_arrival_s: int | None) -> int:
        """When waybill `pos` stops being active: its unloading stop (arrival + 5 min), or its
        planned arrival + after_arrival_s, whichever is first."""
        limit = int(self.wb["arr_s"].iat[pos]) + AFTER_ARRIVAL_S
        if unload_arrival_s is None:
            return limit
        return min(limit, int(unload_arrival_s) + 300)

    def rel_to_utc(self, t_s) -> pd.Timestamp:
        return pd.Timestamp((self.origin_s + int(round(float(t_s)))) * 1_000_000_000, tz="UTC")


def _rel_seconds(values, origin_s: int) -> np.ndarray:
    times = pd.to_datetime(pd.Series(values), utc=True)
    out = np.full(len(times), np.iinfo(np.int64).min, np.int64)
    ok = times.notna().to_numpy()
    out[ok] = (times[ok].dt.as_unit("s").astype("int64").to_numpy() - origin_s)
    return out


def _waybills(world: World, vehicle_ids: pd.Index, origin_s: int) -> pd.DataFrame:
    """Waybills of registered trucks with both planned times and a route, sorted by truck and
    departure: truck, row (in world.waybills), dep_s, arr_s, uns (frozenset), classes (tuple),
    seq (0, 1, … per truck)."""
    w = world.waybills
    if not len(w):
        return pd.DataFrame(columns=["truck", "row", "dep_s", "arr_s", "uns", "classes", "seq"])
    truck = vehicle_ids.get_indexer(w["vehicle_id"].astype(object).to_numpy())
    dep = _rel_seconds(w["planned_departure"], origin_s)
    arr = _rel_seconds(w["planned_arrival"], origin_s)
    geoms = np.asarray(w.geometry.to_numpy(), dtype=object)
    never = np.iinfo(np.int64).min
    ok = (truck >= 0) & (dep != never) & (arr != never) & ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    ok &= shapely.get_type_id(geoms) == shapely.GeometryType.LINESTRING
    cargo = waybill_cargo(world)
    frame = pd.DataFrame({
        "truck": truck, "row": np.arange(len(w)), "dep_s": dep, "arr_s": np.maximum(arr, dep),
        "uns": [frozenset(u) for u in cargo.un_numbers], "classes": list(cargo.classes),
    })[ok]
    frame = frame.sort_values(["truck", "dep_s", "row"], kind="stable").reset_index(drop=True)
    frame["seq"] = frame.groupby("truck").cumcount()
    return frame


def _zones(world: World) -> pd.DataFrame:
    z = world.restricted_zones
    if not len(z):
        return pd.DataFrame(columns=["id", "kind", "barred", "window_start_ms", "window_length_ms", "geom"])
    windows = [closed_window(f, t, i) for f, t, i in zip(z["closed_from"], z["closed_to"], z["id"])]  # few zones
    barred = [tuple(b) if isinstance(b, (list, tuple, np.ndarray)) else () for b in z["barred_classes"]]
    return pd.DataFrame({
        "id": z["id"].astype(object).to_numpy(), "kind": z["kind"].astype(object).to_numpy(), "barred": barred,
        "window_start_ms": [w[0] for w in windows], "window_length_ms": [w[1] for w in windows],
        "geom": np.asarray(geometry_to_metric(np.asarray(z.geometry.to_numpy(), dtype=object)), dtype=object),
    })


def _zone_hits(wb: pd.DataFrame, zones: pd.DataFrame) -> np.ndarray:
    """(waybill, zone): the zone bars a class of the waybill's goods (covered_by's rule: equal,
    or the good's class starts with the barred class and a dot)."""
    hit = np.zeros((len(wb), len(zones)), bool)
    goods = wb["classes"].explode()
    goods = goods[goods.notna()]
    row = np.asarray(goods.index, np.int64)
    cls = goods.astype(str).to_numpy().astype(str)
    for z, barred in enumerate(zones["barred"]):  # a handful of zones, a few classes each
        covered = np.zeros(len(cls), bool)
        for b in barred:
            covered |= (cls == b) | np.char.startswith(cls, b + ".")
        np.logical_or.at(hit[:, z], row[covered], True)
    return hit


def closed_interval_after(zones: pd.DataFrame, z: int, origin_s: int, t_s: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """For zone z and times t_s (relative seconds): the first closed instant at or after each,
    and the end of that closed window (relative seconds; +inf for a zone closed all day)."""
    start_ms = int(zones["window_start_ms"].iat[z])
    length_ms = int(zones["window_length_ms"].iat[z])
    t_ms = (origin_s + np.asarray(t_s, np.int64)) * 1000
    first = first_closed_ms(t_ms, np.int64(start_ms), np.int64(length_ms))
    if length_ms >= DAY_S * 1000:
        return np.asarray(t_s, np.int64), np.full(len(t_ms), np.inf)
    position = np.mod(first + LOCAL_OFFSET_MS - start_ms, DAY_S * 1000)
    end = first - position + length_ms
    return first // 1000 - origin_s, (end // 1000 - origin_s).astype("float64")


def zone_ranges(plan: Plan, path_ids: np.ndarray, owners: np.ndarray, near_m: float) -> pd.DataFrame:
    """Where paths come within near_m of a zone that bars their waybill's cargo: one row per
    stretch (owner, path, zone, arc_in, arc_out, t_in, t_out: seconds from the path start).
    `owners` are positions in `plan.wb` (the cargo)."""
    columns = ["owner", "path", "zone", "arc_in", "arc_out", "t_in", "t_out"]
    if not len(path_ids) or not len(plan.zones):
        return pd.DataFrame(columns=columns)
    if len(path_ids) > 32:  # many paths: from the concatenated knots
        flat = plan.paths.flat()
        cnt = flat["end"][path_ids] - flat["start"][path_ids]
        idx = np.repeat(flat["start"][path_ids], cnt) + np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        lines = shapely.linestrings(np.column_stack([flat["x"][idx], flat["y"][idx]]),
                                    indices=np.repeat(np.arange(len(path_ids)), cnt))
    else:
        lines = np.array([plan.paths.path(int(p)).line() for p in path_ids], dtype=object)
    key = f"zone_reach:{near_m!r}"
    if key not in plan.cache:
        geoms = np.asarray(plan.zones["geom"].to_numpy(), dtype=object)
        reach_geoms = shapely.buffer(geoms, near_m) if near_m > 0 else geoms
        plan.cache[key] = (reach_geoms, shapely.STRtree(reach_geoms))
    reach, tree = plan.cache[key]
    i, z = tree.query(lines, predicate="intersects")
    barred = plan.zone_hit[np.asarray(owners)[i], z]
    i, z = i[barred], z[barred]
    if not len(i):
        return pd.DataFrame(columns=columns)
    parts, which = shapely.get_parts(shapely.intersection(lines[i], reach[z]), return_index=True)
    linear = shapely.get_type_id(parts) == shapely.GeometryType.LINESTRING
    parts, which = parts[linear], which[linear]
    rows = []
    for part, k in zip(parts, which):  # stretches near a zone: a few hundred at most
        p = int(path_ids[i[k]])
        path = plan.paths.path(p)
        # the part's vertices located on the path (first/last along it, whatever the direction)
        pts = shapely.get_coordinates(part)
        seg_arc = _locate(path, pts)
        a_in, a_out = float(seg_arc.min()), float(seg_arc.max())
        rows.append((int(np.asarray(owners)[i[k]]), p, int(z[k]), a_in, a_out,
                     float(path.time_at_arc(a_in)), float(path.time_at_arc(a_out))))
    return pd.DataFrame(rows, columns=columns)


def _locate(path, pts: np.ndarray) -> np.ndarray:
    """Arc length along the path of points lying on it (nearest knot segment)."""
    ax, ay = path.x[:-1], path.y[:-1]
    dx, dy = np.diff(path.x), np.diff(path.y)
    length2 = np.maximum(dx * dx + dy * dy, 1e-12)
    px, py = pts[:, 0][:, None], pts[:, 1][:, None]
    u = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0.0, 1.0)
    d2 = (ax + u * dx - px) ** 2 + (ay + u * dy - py) ** 2
    k = np.argmin(d2, axis=1)
    return path.arc[k] + u[np.arange(len(k)), k] * np.sqrt(length2[k])


def closure_shifts(plan: Plan, trip_pos: np.ndarray, depart: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """The smallest shift (s; later preferred, earlier by up to SHIFT_EARLY_S) of each trip's
    departure (positions in plan.wb) that keeps it out of every zone barring its cargo while the
    zone is closed and the truck is loaded; how many trips no shift can keep out (a zone closed
    all day on the route); and the trips that pass near such a zone at all. Loaded: from the
    planned departure until the unloading stop, so waiting at a loading site inside a zone after
    the planned departure counts, and leaving early (before the waybill is in force) is a way out.
    Candidate shifts are tried on a one-minute grid, per trip near a zone (a few hundred)."""
    shift = np.zeros(len(trip_pos), np.int64)
    none = np.empty(0, np.int64)
    if not len(trip_pos):
        return shift, 0, none
    paths = plan.trip_path[trip_pos]
    drivable = np.flatnonzero(paths >= 0)
    near = zone_ranges(plan, paths[drivable], trip_pos[drivable], CLOSURE_NEAR_M)
    if not len(near):
        return shift, 0, none
    wb = plan.wb
    zone_geoms = np.asarray(plan.zones["geom"].to_numpy(), dtype=object)
    # candidate shifts, best first: the smallest, a later one before an earlier one of the same size
    later = np.arange(0, SHIFT_LATE_S + 1, 60)
    earlier = -np.arange(60, SHIFT_EARLY_S + 1, 60)
    candidates = np.concatenate([later, earlier])
    candidates = candidates[np.lexsort((candidates < 0, np.abs(candidates)))]
    unavoidable = 0
    for owner, stretches in near.groupby("owner", sort=True):  # trips passing near a zone: few hundred
        k = int(np.flatnonzero(trip_pos == owner)[0])
        loaded_from = int(wb["dep_s"].iat[owner])
        trip_s = int(wb["trip_s"].iat[owner])
        path = plan.paths.path(int(plan.trip_path[owner]))
        dep = depart[k] + candidates
        # an early departure must still unload after the waybill is in force (else it stays active)
        ok = dep + trip_s + 300 >= loaded_from + 60
        for row in stretches.itertuples():  # the trip's stretches near zones: one or two
            z = int(row.zone)
            start = dep + row.t_in - CLOSURE_MARGIN_S
            end = dep + row.t_out + CLOSURE_MARGIN_S
            site = shapely.points(path.x[[0, -1]], path.y[[0, -1]])
            at_load, at_unload = shapely.distance(site, zone_geoms[z]) <= SITE_IN_ZONE_M
            if row.arc_in < 1.0 and at_load:  # waiting loaded at a loading site in the zone
                start = np.minimum(start, loaded_from)
            if row.arc_out > path.length_m - 1.0 and at_unload:  # until the unloading stop
                end = end + 300 + CLOSURE_MARGIN_S
            start = np.maximum(start, loaded_from)
            closed, _ = closed_interval_after(plan.zones, z, plan.origin_s, start)
            ok &= ~((start <= end) & (closed <= end))
        if ok.any():
            shift[k] = candidates[int(np.argmax(ok))]
        else:
            unavoidable += 1
    return shift, unavoidable, np.unique(near["owner"].to_numpy(np.int64))


def closure_conflict(plan: Plan, pos: int, legs: list[tuple[int, int]]) -> bool:
    """Whether waybill `pos` driven as `legs` ((path, departure), …) comes near a zone barring its
    cargo while the zone is closed and the waybill is in force (the staging's check on trips it
    re-times)."""
    loaded_from = int(plan.wb["dep_s"].iat[pos])
    near = zone_ranges(plan, np.array([p for p, _ in legs]), np.full(len(legs), pos), CLOSURE_NEAR_M)
    departs = dict(legs)
    for row in near.itertuples():  # stretches near zones: a few
        start = max(departs[row.path] + row.t_in - CLOSURE_MARGIN_S, loaded_from)
        end = departs[row.path] + row.t_out + CLOSURE_MARGIN_S
        closed, _ = closed_interval_after(plan.zones, int(row.zone), plan.origin_s, np.array([int(start)]))
        if start <= end and closed[0] <= end:
            return True
    return False


def build_base_plan(world: World, settings: SimSettings) -> Plan:
    origin_s = -(-settings.start_ms // 1000)  # reports fall on whole seconds, none before the start
    end_s = -(-settings.end_ms // 1000) - origin_s
    rng = np.random.default_rng([int(settings.seed), 808])
    vehicles = world.vehicles
    vehicle_index = pd.Index(vehicles["id"].astype(object).to_numpy())
    if not vehicle_index.is_unique:
        raise ValueError("world.vehicles has duplicate ids")
    n = len(vehicle_index)
    net = RoadNet.from_world(world)
    paths = PathSet(net)
    tank = (vehicles["body"].astype(object).to_numpy() == "tank") if n else np.zeros(0, bool)
    factor = rng.uniform(0.85, 0.95, n)
    home = np.asarray(vehicles.geometry.to_numpy(), dtype=object)
    home_xy = np.column_stack(to_metric(shapely.get_x(home), shapely.get_y(home))) if n else np.empty((0, 2))

    wb = _waybills(world, vehicle_index, origin_s)
    zones = _zones(world)
    plan = Plan(world, settings, net, paths, rng, origin_s, end_s, vehicle_index.to_numpy(), tank, factor,
                home_xy, wb, np.full(len(wb), -1, np.int64),
                pd.DataFrame({"truck": pd.Series(dtype=np.int64), "depart": pd.Series(dtype=np.int64),
                              "path": pd.Series(dtype=np.int64), "tag": pd.Series(dtype=object),
                              "wb": pd.Series(dtype=np.int64)}),
                zones, _zone_hits(wb, zones))
    if not len(wb):
        return plan

    # the waybills' planned routes
    geoms = np.asarray(world.waybills.geometry.to_numpy(), dtype=object)[wb["row"].to_numpy()]
    coords, owner = shapely.get_coordinates(np.asarray(geometry_to_metric(geoms), dtype=object), return_index=True)
    length = shapely.length(shapely.linestrings(coords, indices=owner))
    drivable = np.flatnonzero(length >= 1.0)
    keep = np.isin(owner, drivable)
    remap = np.full(len(wb), -1, np.int64)
    remap[drivable] = np.arange(len(drivable))
    ids = paths.add(coords[keep], remap[owner[keep]], factor[wb["truck"].to_numpy()[drivable]])
    plan.trip_path[drivable] = ids
    wb["load_x"], wb["load_y"] = _ends(coords, owner, len(wb), first=True)
    wb["unload_x"], wb["unload_y"] = _ends(coords, owner, len(wb), first=False)

    # long drives: a rest half way (split the route in two)
    trip_dur = np.zeros(len(wb), np.int64)
    trip_dur[drivable] = paths.durations(ids)
    second_leg = np.full(len(wb), -1, np.int64)
    rest_s = np.zeros(len(wb), np.int64)
    long_trips = np.flatnonzero(trip_dur > REST_AFTER_S)
    for pos in long_trips:  # drives over 3.5 h: none in the demo world
        path = paths.path(int(plan.trip_path[pos]))
        half = float(path.arc_at_time(path.t[-1] / 2))
        f = factor[int(wb["truck"].iat[pos])]
        first_leg = paths.add_one(path.coords(0.0, half), f)
        second_leg[pos] = paths.add_one(path.coords(half, path.length_m), f)
        plan.trip_path[pos] = first_leg
        rest_s[pos] = int(rng.integers(*REST_S))
    wb["rest_s"] = rest_s
    wb["second_leg"] = second_leg
    leg1 = np.where(plan.trip_path >= 0, plan.trip_path, 0)
    leg1_dur = np.where(plan.trip_path >= 0, paths.durations(leg1), 0)
    leg2_dur = np.where(second_leg >= 0, paths.durations(np.maximum(second_leg, 0)), 0)
    wb["trip_s"] = leg1_dur + np.where(second_leg >= 0, rest_s + leg2_dur, 0)

    # departures: planned, a little late, and later still to keep out of closed zones
    depart = wb["dep_s"].to_numpy(np.int64) + rng.integers(0, DEPART_JITTER_S + 1, len(wb))
    shift, unavoidable, near_zone = closure_shifts(plan, np.arange(len(wb)), depart)
    depart = depart + shift
    plan.near_zone = near_zone
    plan.diagnostics["closure_delayed_trips"] = int((shift > 0).sum())
    plan.diagnostics["closure_advanced_trips"] = int((shift < 0).sum())
    plan.diagnostics["closure_unavoidable_trips"] = unavoidable

    # between consecutive waybills of a truck: unloading, the connector, loading
    truck = wb["truck"].to_numpy(np.int64)
    nxt = np.flatnonzero(np.r_[truck[1:] == truck[:-1], False])  # positions with a next waybill
    dwell = rng.integers(*UNLOAD_DWELL_S, size=len(wb))
    lead = rng.integers(*LOAD_LEAD_S, size=len(wb))
    wash_dwell = rng.integers(*WASH_DWELL_S, size=len(wb))
    uns = wb["uns"].to_numpy()
    wash = np.array([bool(tank[truck[i]] and uns[i] and uns[i + 1] and uns[i] != uns[i + 1]) for i in nxt],
                    dtype=bool)  # per connector: once per truck
    a_xy = wb[["unload_x", "unload_y"]].to_numpy()[nxt]
    b_xy = wb[["load_x", "load_y"]].to_numpy()[nxt + 1]
    moves = (np.hypot(*(b_xy - a_xy).T) >= 1.0) | wash
    # a connector wholly outside the simulated span (±2 h) need not follow the roads
    early = depart[nxt] + wb["trip_s"].to_numpy()[nxt] + dwell[nxt]
    late = np.minimum(depart[nxt + 1], wb["dep_s"].to_numpy()[nxt + 1]) - lead[nxt]
    routed = moves & (late >= -7200) & (early <= end_s + 7200)
    stations = world.wash_stations
    if wash.any() and not len(stations):
        raise ValueError("tank trucks change medium but the world has no wash station")
    ws_xy = np.column_stack(to_metric(shapely.get_x(stations.geometry.to_numpy()),
                                      shapely.get_y(stations.geometry.to_numpy()))) if len(stations) else None
    w_xy = np.full_like(a_xy, np.nan)
    if wash.any():
        nearest = np.argmin(np.hypot(a_xy[wash][:, None, 0] - ws_xy[None, :, 0],
                                     a_xy[wash][:, None, 1] - ws_xy[None, :, 1]), axis=1)
        w_xy[wash] = ws_xy[nearest]
    plan.wash_xy = ws_xy
    # legs: A -> B, or A -> W and W -> B
    leg_from = np.vstack([a_xy[moves & ~wash], a_xy[moves & wash], w_xy[moves & wash]])
    leg_to = np.vstack([b_xy[moves & ~wash], w_xy[moves & wash], b_xy[moves & wash]])
    leg_conn = np.concatenate([np.flatnonzero(moves & ~wash), np.flatnonzero(moves & wash),
                               np.flatnonzero(moves & wash)])
    leg_part = np.concatenate([np.zeros((moves & ~wash).sum(), int), np.zeros((moves & wash).sum(), int),
                               np.ones((moves & wash).sum(), int)])
    leg_path = np.full(len(leg_conn), -1, np.int64)
    real = np.hypot(*(leg_to - leg_from).T) >= 1.0
    on_roads = routed[leg_conn] & real
    if on_roads.any():
        rc, ro = net.routes(leg_from[on_roads], leg_to[on_roads])
        leg_path[on_roads] = paths.add(rc, ro, factor[truck[nxt[leg_conn[on_roads]]]])
    straight = ~routed[leg_conn] & real
    if straight.any():
        k = int(straight.sum())
        sc = np.stack([leg_from[straight], leg_to[straight]], axis=1).reshape(-1, 2)
        leg_path[straight] = paths.add(sc, np.repeat(np.arange(k), 2), np.ones(k),
                                       np.full(2 * k, CONNECTOR_JUMP_KMH))
    conn_leg1 = np.full(len(nxt), -1, np.int64)
    conn_leg2 = np.full(len(nxt), -1, np.int64)
    conn_leg1[leg_conn[leg_part == 0]] = leg_path[leg_part == 0]
    conn_leg2[leg_conn[leg_part == 1]] = leg_path[leg_part == 1]
    dur1 = np.where(conn_leg1 >= 0, paths.durations(np.maximum(conn_leg1, 0)), 0)
    dur2 = np.where(conn_leg2 >= 0, paths.durations(np.maximum(conn_leg2, 0)), 0)
    wash_stop = np.where(wash & moves, wash_dwell[nxt], 0)
    conn_total = dur1 + wash_stop + dur2

    # timing, waybill by waybill (a truck's later departures can be pushed by earlier ones)
    trip_s = wb["trip_s"].to_numpy(np.int64)
    conn_depart = np.zeros(len(nxt), np.int64)
    pushed = 0
    seq = wb["seq"].to_numpy()
    dep_s = wb["dep_s"].to_numpy(np.int64)
    arr_s = wb["arr_s"].to_numpy(np.int64)
    may_advance = ~np.isin(np.arange(len(wb)), near_zone) & (second_leg < 0)
    at_site = np.full(len(wb), np.iinfo(np.int64).min // 2)  # when the truck reaches each loading site
    advanced = 0
    for level in range(int(seq.max()) if len(seq) else 0):  # waybills per truck: two in the demo
        mine = np.flatnonzero(seq[nxt] == level)
        i, j = nxt[mine], nxt[mine] + 1
        for attempt in range(2):  # the second pass after leaving early where time is short
            arrive = depart[i] + trip_s[i]
            # at the next loading site by the next planned departure (or the actual one, when earlier)
            ready_by = np.minimum(dep_s[j], depart[j])
            hold = np.where((arrive < 0) & (arr_s[i] + AFTER_ARRIVAL_S > 0),
                            np.minimum(arr_s[i] + AFTER_ARRIVAL_S + 1, FRESH_START_HOLD_S), arrive)
            # a truck waiting for its next load waits at that load's site (where it has business:
            # stop_near_sensitive_site excuses an empty truck there), not where it unloaded
            wanted = np.maximum(arrive + dwell[i], hold)
            # short of time: stay at each end only as long as the rules need (MIN_DWELL_S), or, when
            # the drives around stay short of the fatigue limit, just long enough to unload
            short_ok = trip_s[i] + conn_total[mine] + trip_s[j] + 2 * SHORT_DWELL_S <= SHORT_DWELL_DRIVE_S
            stay = np.where(short_ok & (np.maximum(arrive + MIN_DWELL_S, hold) + conn_total[mine] + MIN_DWELL_S
                                        > ready_by), SHORT_DWELL_S, MIN_DWELL_S)
            earliest = np.maximum(arrive + stay, hold)
            latest = ready_by - stay - conn_total[mine]
            short = earliest > latest
            if attempt or not short.any():
                break
            # leave the previous trip's loading site early (before its waybill is in force), as far
            # as it still unloads after the waybill starts and after the truck got there
            room = np.minimum.reduce([np.full(len(i), SHIFT_EARLY_S), depart[i] + trip_s[i] + 300 - dep_s[i] - 60,
                                      depart[i] - at_site[i] - MIN_DWELL_S])
            step = np.where(short & may_advance[i] & (hold == arrive), np.clip(earliest - latest, 0, room), 0)
            depart[i] -= np.maximum(step, 0)
            advanced += int((step > 0).sum())
        wanted = np.where(wanted > latest, np.maximum(earliest, np.minimum(wanted, latest)), wanted)
        late_start = wanted + conn_total[mine] + stay - depart[j]
        pushed += int(short.sum())
        depart[j] += np.maximum(late_start, 0)
        conn_depart[mine] = wanted
        at_site[j] = wanted + conn_total[mine]
    plan.diagnostics["trips_left_early"] = advanced
    plan.diagnostics["departures_pushed"] = pushed
    wb["depart"] = depart

    rows = []
    has_path = plan.trip_path >= 0
    rows.append(pd.DataFrame({"truck": truck[has_path], "depart": depart[has_path],
                              "path": plan.trip_path[has_path], "tag": TAG_TRIP,
                              "wb": np.flatnonzero(has_path)}))
    two = second_leg >= 0
    rows.append(pd.DataFrame({"truck": truck[two], "depart": depart[two] + leg1_dur[two] + rest_s[two],
                              "path": second_leg[two], "tag": TAG_TRIP, "wb": np.flatnonzero(two)}))
    c1 = conn_leg1 >= 0
    rows.append(pd.DataFrame({"truck": truck[nxt[c1]], "depart": conn_depart[c1], "path": conn_leg1[c1],
                              "tag": TAG_CONNECTOR, "wb": -1}))
    c2 = conn_leg2 >= 0
    rows.append(pd.DataFrame({"truck": truck[nxt[c2]], "depart": conn_depart[c2] + dur1[c2] + wash_stop[c2],
                              "path": conn_leg2[c2], "tag": TAG_CONNECTOR, "wb": -1}))
    plan.drives = pd.concat(rows, ignore_index=True).astype(
        {"truck": np.int64, "depart": np.int64, "path": np.int64, "wb": np.int64})
    plan.diagnostics["wash_connectors"] = int((wash & moves).sum())
    return plan


def _ends(coords: np.ndarray, owner: np.ndarray, n: int, first: bool) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(owner, minlength=n)
    start = np.cumsum(counts) - counts
    at = start if first else start + counts - 1
    return coords[at, 0], coords[at, 1]
