"""Rules benchmark: the engine on a day of the demo fleet, against GeoPandas and MovingPandas.

Figures, measured in the same run, one name=value a line at the end:

- ``pings_per_s_per_core``: the demo fleet's day (data/fleet_day.py: every truck at 30 s for
  24 h) through `Engine.step` in chunks of `chunk_s` with the full rule set; CPU time of this
  process around the steps only (generation excluded), so the figure is per core;
- ``pings_per_s_per_core_10x``: the same with the fleet replicated `copies` times (unregistered
  copies: stops and speeding only), streamed chunk by chunk;
- ``ratio_vs_geopandas``: the compared rules (``compared_rules``: route deviation, speeding and
  stops near sensitive sites) on `subsample_trucks` trucks × 24 h, by the engine (cleaning, its
  stop stage, waybills, those rules) and by an idiomatic GeoPandas/shapely 2 pipeline
  (MovingPandas' stops, waybills by `merge_asof`, `GeoSeries.distance` of each ping to its own
  route, `sjoin_nearest` against roads and sites, the episode logic in pandas/Python per truck):
  GeoPandas' CPU time ÷ the engine's, each side's world preparation (projection, spatial
  indexes, route and waybill lookups) done ahead and untimed;
- ``ratio_vs_geopandas_cold``: the same with the preparation timed on both sides;
- ``ratio_vs_geopandas_given_stops``: the GeoPandas pipeline alone, handed MovingPandas' stops
  untimed (so it does less work than the engine), ÷ the same engine time (the figure before issue 11);
- ``events_identical``: both sides give the same events, compared on (rule, vehicle, episode,
  phase, start, end, severity), warm and cold; two empty sets are not identical;
- ``ratio_vs_movingpandas``: MovingPandas' TrajectoryStopDetector on the subsample ÷ the
  engine's stop stage (cleaning, stops, waybills, no rule), with ``stops_identical`` (same
  start, end and vehicle for every stop);
- ``peak_rss_mb``: the process' peak resident set (getrusage) after the Ningbo-scale fleet day;
  ``peak_rss_mb_10x`` after the 10× run, ``peak_rss_mb_whole_run`` at the end (MovingPandas and
  GeoPandas on the subsample included).

    python -m bench.rules [--seed 7] [--scale 1] [--hours 24] [--copies 10] [--copies-hours 6]
                          [--subsample-trucks 200] [--chunk-s 600]
    hazmap bench rules    (the same options: one definition, `parser()`)
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time
from collections.abc import Callable
from datetime import timedelta
from dataclasses import dataclass
from itertools import pairwise

import geopandas as gpd
import numpy as np
import pandas as pd

from data.demo import build_world
from data.fleet_day import fleet_day, fleet_day_chunks, plan_fleet_day
from spatial.crs import METRIC_CRS
from spatial.model import PingBatch, World
from spatial.rules.base import SEVERITY_HIGH, SEVERITY_MEDIUM
from spatial.rules.engine import Engine, EngineSettings
from spatial.rules.stop_near_sensitive_site import ACUTE_HAZARD_CLASS_PREFIX, ACUTE_HAZARD_CLASSES, SEVERITY_BY_KIND


def _cpu_s() -> float:
    return time.process_time()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def engine_throughput(world: World, plan, chunk_s: int = 600, copies: int = 1, hours: float = 24.0,
                      settings: EngineSettings | None = None) -> dict:
    """Stream the day through one Engine; CPU seconds spent inside step/flush only."""
    settings = settings or EngineSettings()
    engine = Engine(world, settings)
    pings = events = 0
    cpu = 0.0
    started = time.perf_counter()
    for chunk in fleet_day_chunks(plan, chunk_s=chunk_s, copies=copies, hours=hours):
        before = _cpu_s()
        events += len(engine.step(chunk))
        cpu += _cpu_s() - before
        pings += len(chunk)
    before = _cpu_s()
    events += len(engine.flush())
    cpu += _cpu_s() - before
    return {"pings": pings, "events": events, "cpu_s": cpu, "wall_s": time.perf_counter() - started,
            "pings_per_s_per_core": pings / cpu if cpu else float("nan"), "released": engine.released_count}


# -- the GeoPandas / MovingPandas pipelines -------------------------------------------------------


def _episodes(frame: pd.DataFrame, enter: np.ndarray, stay: np.ndarray, min_duration_ms: int, min_pings: int,
              rule: str, value: np.ndarray, severity: Callable[[float, int], int]) -> list[tuple]:
    """EVENT_KEY tuples of the hysteresis episodes, truck by truck (the plain pandas way: one
    Python walk per truck over its pings). `severity(peak of value so far, opening ping)`."""
    out = []
    vehicle = frame["vehicle_id"].to_numpy(object)
    t = frame["epoch_ms"].to_numpy("int64")
    bounds = np.flatnonzero(np.r_[True, vehicle[1:] != vehicle[:-1], True])
    for a, b in pairwise(bounds):
        phase, start, pings, peak, last, opened_at = 0, 0, 0, -np.inf, 0, 0
        for i in range(a, b):
            if phase == 2:
                if stay[i] or enter[i]:
                    peak, last = max(peak, value[i]), t[i]
                    continue
                out.append((rule, vehicle[i], f"{rule}:{vehicle[i]}:{start}", "close", int(start), int(last),
                            severity(peak, opened_at)))
                phase = 0
            if enter[i]:
                if phase == 0:
                    phase, start, pings, peak = 1, t[i], 0, value[i]
                pings += 1
                peak, last = max(peak, value[i]), t[i]
                if t[i] - start >= min_duration_ms and pings >= min_pings:
                    phase, opened_at = 2, i
                    out.append((rule, vehicle[i], f"{rule}:{vehicle[i]}:{start}", "open", int(start), None,
                                severity(peak, i)))
            else:
                phase = 0
    return out


def movingpandas_stops(pings: PingBatch, settings: EngineSettings | None = None) -> pd.DataFrame:
    """MovingPandas' stops of every truck: vehicle_id, start_ms, end_ms."""
    settings = settings or EngineSettings()
    import warnings

    import movingpandas as mpd

    warnings.filterwarnings("ignore", module="movingpandas")  # it drops the UTC zone, on purpose here

    frame = pings.to_frame()
    gdf = gpd.GeoDataFrame(frame[["vehicle_id", "time"]], geometry=gpd.points_from_xy(frame["lon"], frame["lat"]),
                           crs="EPSG:4326").to_crs(METRIC_CRS).set_index("time")
    collection = mpd.TrajectoryCollection(gdf, "vehicle_id")
    stops = mpd.TrajectoryStopDetector(collection).get_stop_points(
        max_diameter=settings.stop.stop_max_diameter_m, min_duration=timedelta(seconds=settings.stop.stop_min_duration_s))
    out = pd.DataFrame({"vehicle_id": stops["traj_id"].astype(object).to_numpy(),
                        "start_ms": pd.to_datetime(stops["start_time"], utc=True).dt.as_unit("ms").astype("int64"),
                        "end_ms": pd.to_datetime(stops["end_time"], utc=True).dt.as_unit("ms").astype("int64")})
    return out.sort_values(["vehicle_id", "start_ms"]).reset_index(drop=True)


@dataclass(frozen=True)
class GeoPandasWorld:
    """What the GeoPandas pipeline prepares from the World once, as the engine's RuleWorld does:
    every layer projected to EPSG:32651 with its spatial index built (`world`: a World of metric
    layers, so a mirror's own `to_crs(METRIC_CRS)` is a no-op and its sjoins reuse the index), the
    waybill lookup frame (departure, end limit, unloading site) and each route's severity."""

    world: World
    waybills: pd.DataFrame
    route_severity: np.ndarray
    routes: np.ndarray  # metric LineStrings by waybill row
    roads: gpd.GeoDataFrame  # speed_limit_kmh, geometry (indexed)
    zones: gpd.GeoDataFrame  # the restricted zones that set a speed limit (indexed)


def prepare_geopandas(world: World, settings: EngineSettings | None = None) -> GeoPandasWorld:
    settings = settings or EngineSettings()
    layers = {name: table.to_crs(METRIC_CRS) for name, table in world.tables().items()
              if isinstance(table, gpd.GeoDataFrame) and table.crs is not None}
    for layer in layers.values():
        if len(layer):
            layer.sindex  # noqa: B018 - built now, kept by the geometry array the pipeline reuses
    metric = dataclasses.replace(world, **layers)
    wb = metric.waybills.reset_index(drop=True).assign(row=lambda d: np.arange(len(d)))
    # in force from the actual departure when recorded, until the actual unloading at the latest;
    # a cancelled waybill never (the waybill stage, issue 11)
    departure = pd.to_datetime(wb["planned_departure"], utc=True)
    if "actual_departure" in wb.columns:
        departure = pd.to_datetime(wb["actual_departure"], utc=True).fillna(departure)
    wb["dep_ms"] = departure.dt.as_unit("ms").astype("int64")
    wb["limit_ms"] = (pd.to_datetime(wb["planned_arrival"], utc=True).dt.as_unit("ms").astype("int64")
                      + round(settings.waybills.after_arrival_s * 1000))
    if "actual_unloading" in wb.columns:
        unloaded = pd.to_datetime(wb["actual_unloading"], utc=True)
        unloaded_ms = np.where(unloaded.isna(), 2 ** 62,
                               unloaded.fillna(pd.Timestamp(0, tz="UTC")).dt.as_unit("ms").astype("int64"))
        wb["limit_ms"] = np.minimum(wb["limit_ms"].to_numpy("int64"), unloaded_ms)
    wb["dep_ms"] = wb["dep_ms"].where(wb["status"].astype(object) != "cancelled", 2 ** 62)  # never departs
    sites = metric.entities.set_index("id").geometry
    wb["site"] = gpd.GeoSeries(sites.reindex(wb["unloading_site_id"]).to_numpy(), crs=METRIC_CRS)
    roads = metric.roads[["speed_limit_kmh", "geometry"]].reset_index(drop=True)
    zones = metric.restricted_zones
    zones = zones[zones["speed_limit_kmh"].notna()][["speed_limit_kmh", "geometry"]].reset_index(drop=True)
    for indexed in (roads, zones):
        if len(indexed):
            indexed.sindex  # noqa: B018 - sjoin queries the right frame's index: built ahead
    return GeoPandasWorld(metric, wb, _route_severity(world, settings), metric.waybills.geometry.to_numpy(),
                          roads, zones)


def _route_severity(world: World, settings: EngineSettings) -> np.ndarray:
    """Per waybill row: HIGH when a good's declared class is one of the approved-route classes
    (a division counts: "1" covers "1.1D") or, when the setting asks, the catalogue flags the good
    highly toxic; MEDIUM otherwise (route_deviation's art. 48 reading, re-stated in pandas)."""
    rd = settings.route_deviation
    goods = world.waybill_goods
    cls = goods["hazard_class"].astype(str).str.strip()
    hit = pd.Series(False, index=goods.index)
    for c in rd.approved_route_classes:
        hit |= (cls == c) | (cls.str.startswith(c) & ~cls.str.slice(len(c), len(c) + 1).str.isdigit())
    chem = world.chemicals
    if getattr(rd, "approved_route_highly_toxic", False) and "highly_toxic" in chem.columns:
        flags = chem.set_index("un_number")["highly_toxic"] if "un_number" in chem.columns else chem["highly_toxic"]
        hit |= flags.reindex(goods["un_number"].astype(str).str.strip().to_numpy()).eq(True).to_numpy()
    high = set(goods.loc[hit, "waybill_id"])
    return np.where(world.waybills["id"].isin(high).to_numpy(), SEVERITY_HIGH, SEVERITY_MEDIUM).astype("int64")


def geopandas_events(gw: GeoPandasWorld, pings: PingBatch, stops: pd.DataFrame,
                     settings: EngineSettings | None = None) -> list[tuple]:
    """The compared rules' events (EVENT_KEY tuples) by an idiomatic GeoPandas pipeline on a
    prepared world, from MovingPandas' stops."""
    settings = settings or EngineSettings()
    world = gw.world
    frame = pings.to_frame().sort_values(["vehicle_id", "epoch_ms"], kind="stable").reset_index(drop=True)
    points = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]),
                              crs="EPSG:4326").to_crs(METRIC_CRS)
    # confirmed time of each stop: its first ping at least min_duration after its start
    min_ms = settings.stop.min_duration_ms
    stop_pings = stops.merge(frame[["vehicle_id", "epoch_ms"]], on="vehicle_id")
    stop_pings = stop_pings[stop_pings["epoch_ms"] >= stop_pings["start_ms"] + min_ms]
    confirmed = stop_pings.groupby(["vehicle_id", "start_ms"], as_index=False)["epoch_ms"].min()
    stops = stops.merge(confirmed.rename(columns={"epoch_ms": "confirmed_ms"}), on=["vehicle_id", "start_ms"])
    stop_xy = _stop_medians(points, stops)

    # waybills: the latest departed one, active until the unloading stop or arrival + after_arrival_s
    wb = gw.waybills.copy()
    on_stop = pd.merge_asof(stop_xy.sort_values("confirmed_ms"), wb[["vehicle_id", "dep_ms", "row"]].sort_values("dep_ms"),
                            left_on="confirmed_ms", right_on="dep_ms", by="vehicle_id")
    on_stop = on_stop.dropna(subset=["row"]).astype({"row": "int64"})
    near = gpd.GeoSeries(on_stop["geometry"].to_numpy(), crs=METRIC_CRS).distance(
        gpd.GeoSeries(wb["site"].to_numpy()[on_stop["row"]], crs=METRIC_CRS)).to_numpy() <= settings.waybills.site_match_m
    ends = on_stop[near & (on_stop["confirmed_ms"].to_numpy() <= wb["limit_ms"].to_numpy()[on_stop["row"]])]
    unload = ends.groupby("row")["confirmed_ms"].min()
    wb["wb_end_ms"] = np.minimum(wb["limit_ms"], unload.reindex(wb["row"]).fillna(2.0 ** 62).to_numpy("int64"))

    def annotate(frame_t: pd.DataFrame, time_col: str) -> pd.DataFrame:
        tagged = pd.merge_asof(frame_t.reset_index().sort_values(time_col),
                               wb[["vehicle_id", "dep_ms", "row", "wb_end_ms"]].sort_values("dep_ms"),
                               left_on=time_col, right_on="dep_ms", by="vehicle_id").set_index("index").sort_index()
        active = tagged["row"].notna() & (tagged[time_col] <= tagged["wb_end_ms"])
        return tagged.assign(waybill=np.where(active, tagged["row"].fillna(-1), -1).astype("int64"))

    points = gpd.GeoDataFrame(annotate(points, "epoch_ms"), geometry="geometry", crs=METRIC_CRS)
    events = []

    # route deviation: each ping's distance to its own waybill's route
    rd = settings.route_deviation
    routes = gw.routes
    on = points["waybill"].to_numpy() >= 0
    distance = np.full(len(points), np.nan)
    distance[on] = points.geometry[on].distance(
        gpd.GeoSeries(routes[points["waybill"].to_numpy()[on]], index=points.index[on], crs=METRIC_CRS)).to_numpy()
    ping_waybill = points["waybill"].to_numpy()
    events += _episodes(points, distance > rd.corridor_m, distance > rd.stay_m,
                        round(rd.deviation_min_duration_s * 1000), int(rd.deviation_min_pings), "route_deviation",
                        distance, lambda peak, i: int(gw.route_severity[ping_waybill[i]]))

    # speeding: the nearest road within road_match_m (ties: lowest limit), zones lower it
    sp = settings.speeding
    matched = gpd.sjoin_nearest(points[["geometry"]], gw.roads, how="left", max_distance=sp.road_match_m)
    road_limit = matched["speed_limit_kmh"].groupby(level=0).min().reindex(points.index)
    limit = road_limit.fillna(sp.default_limit_kmh)
    zones = gw.zones
    if len(zones):
        inside = gpd.sjoin(points[["geometry"]], zones, how="inner", predicate="intersects")
        zone_limit = inside["speed_limit_kmh"].groupby(level=0).min().reindex(points.index)
        limit = np.fmin(limit, zone_limit)
    excess = (points["speed_kmh"] - limit).to_numpy()
    events += _episodes(points, excess > sp.speed_tolerance_kmh,
                        excess > sp.speed_tolerance_kmh - sp.speeding_hysteresis_kmh,
                        round(sp.speeding_min_duration_s * 1000), int(sp.speeding_min_pings), "speeding",
                        excess, lambda peak, i: SEVERITY_HIGH if peak > sp.severe_excess_kmh else SEVERITY_MEDIUM)

    # stops near sensitive sites: the kind's radius, widened to the cargo's ERG distance
    events += _stop_near_site_events(world, annotate(stop_xy, "confirmed_ms"), settings, wb)
    return events


def _stop_medians(points: gpd.GeoDataFrame, stops: pd.DataFrame) -> gpd.GeoDataFrame:
    """Each stop's median metric location over its pings up to its confirmation (where the
    rule decides)."""
    x, y = points.geometry.x.rename("x"), points.geometry.y.rename("y")
    xy = pd.concat([points[["vehicle_id", "epoch_ms"]], x, y], axis=1)
    within = stops.merge(xy, on="vehicle_id")
    within = within[(within["epoch_ms"] >= within["start_ms"]) & (within["epoch_ms"] <= within["confirmed_ms"])]
    medians = within.groupby(["vehicle_id", "start_ms"], as_index=False)[["x", "y"]].median()
    out = stops.merge(medians, on=["vehicle_id", "start_ms"])
    return gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(out["x"], out["y"]), crs=METRIC_CRS)


def _within(points: gpd.GeoSeries, table: gpd.GeoDataFrame, match_m: float) -> np.ndarray:
    """Per point: some feature of `table` within match_m (sjoin narrows, the exact distance decides)."""
    out = np.zeros(len(points), bool)
    if not len(points) or not len(table):
        return out
    frame = gpd.GeoDataFrame(geometry=points.reset_index(drop=True))
    places = table.to_crs(METRIC_CRS)[["geometry"]].reset_index(drop=True)
    near = gpd.sjoin(frame, places, how="inner", predicate="dwithin", distance=match_m + 1.0)
    distance = frame.geometry.loc[near.index].distance(places.geometry.loc[near["index_right"]].set_axis(near.index),
                                                       align=False)
    out[np.unique(near.index[(distance <= match_m).to_numpy()])] = True
    return out


def _stop_near_site_events(world: World, stops: pd.DataFrame, settings: EngineSettings,
                           wb: pd.DataFrame) -> list[tuple]:
    """`stops`: the stops annotated at confirmation (waybill in force, and `row` / `wb_end_ms` of
    the latest departed waybill); `wb`: the waybill frame (dep_ms, wb_end_ms by row)."""
    s = settings.stop_near_sensitive_site
    stops = stops.reset_index(drop=True)
    entities = world.entities.to_crs(METRIC_CRS).set_index("id").geometry
    points = gpd.GeoSeries(stops["geometry"].to_numpy(), crs=METRIC_CRS)

    def near_site(rows: np.ndarray, column: str) -> np.ndarray:
        """Each stop within own_site_match_m of waybill row's site (row -1: False)."""
        picked = world.waybills.iloc[np.maximum(rows, 0)][column].to_numpy()
        own = gpd.GeoSeries(entities.reindex(picked).to_numpy(), crs=METRIC_CRS)
        return (rows >= 0) & (points.distance(own, align=False) <= s.own_site_match_m).to_numpy()  # NaN: False

    on_waybill = stops["waybill"].to_numpy() >= 0
    exempt = np.zeros(len(stops), bool)
    if s.exempt_own_sites and len(stops):
        # a stop on a waybill at its own loading / unloading site raises nothing (the rule's exemption)
        rows = np.where(on_waybill, stops["waybill"].to_numpy(), -1)
        exempt |= near_site(rows, "loading_site_id") | near_site(rows, "unloading_site_id")
    previous = stops["row"].fillna(-1).to_numpy("int64") if "row" in stops.columns else np.full(len(stops), -1)
    if s.exempt_adjacent_sites and len(stops):
        # an empty truck at its previous waybill's unloading site or its next one's loading site
        following = pd.merge_asof(
            stops[["vehicle_id", "confirmed_ms"]].reset_index().sort_values("confirmed_ms"),
            wb[wb["dep_ms"] < 2 ** 62][["vehicle_id", "dep_ms", "row"]].sort_values("dep_ms"),
            left_on="confirmed_ms", right_on="dep_ms", by="vehicle_id", direction="forward",
            allow_exact_matches=False).set_index("index").sort_index()["row"].fillna(-1).to_numpy("int64")
        exempt |= ~on_waybill & (near_site(previous, "unloading_site_id") | near_site(following, "loading_site_id"))
    if s.exempt_empty_at_places and len(stops):
        # an empty truck within its match radius of a lot, service area, wash station or repair shop
        at_place = np.zeros(len(stops), bool)
        for table, match_m in s.empty_place_radius_by_table().items():  # four tables
            at_place |= _within(points, world.table(table), match_m)
        exempt |= ~on_waybill & at_place
    # an empty tank carries its last waybill's residue until a stop at a wash station after it ended
    tank = stops["vehicle_id"].map(world.vehicles.set_index("id")["body"]).eq("tank").to_numpy()
    ended_ms = stops["wb_end_ms"].to_numpy("float64") if "wb_end_ms" in stops.columns else np.full(len(stops), np.nan)
    washes = stops[tank & _within(points, world.wash_stations, settings.waybills.wash_station_match_m)]
    washed = pd.merge_asof(stops[["vehicle_id", "confirmed_ms"]].reset_index().sort_values("confirmed_ms"),
                           washes[["vehicle_id", "confirmed_ms"]].rename(columns={"confirmed_ms": "washed_ms"})
                           .sort_values("washed_ms"), left_on="confirmed_ms", right_on="washed_ms", by="vehicle_id"
                           ).set_index("index").sort_index()["washed_ms"].to_numpy("float64")
    residue = np.where(tank & ~on_waybill & (previous >= 0) & ~(washed >= ended_ms), previous, -1)
    keep = ~exempt
    stops, residue = stops[keep], residue[keep]
    sites = world.sensitive_sites.to_crs(METRIC_CRS).reset_index(drop=True)
    radius = sites["kind"].map(s.kind_radius_m)
    widened = sites["kind"].isin(s.erg_widened_kinds)
    # ERG distance per waybill: the largest over its goods, day or night, isolation as fallback
    chem = world.chemicals
    goods = world.waybill_goods.merge(chem[["erg_day_m", "erg_night_m", "erg_isolation_m"]],
                                      left_on="un_number", right_index=True, how="left")
    goods["day"] = goods["erg_day_m"].fillna(goods["erg_isolation_m"])
    goods["night"] = goods["erg_night_m"].fillna(goods["erg_isolation_m"])
    erg = goods.groupby("waybill_id")[["day", "night"]].max().reindex(world.waybills["id"].to_numpy())
    stops = gpd.GeoDataFrame(stops.reset_index(drop=True), geometry="geometry", crs=METRIC_CRS)
    hour = pd.to_datetime(stops["confirmed_ms"], unit="ms", utc=True).dt.tz_convert("Asia/Shanghai").dt.hour
    day = (hour >= s.day_starts_local_hour) & (hour < s.night_starts_local_hour)
    loaded = stops["waybill"].to_numpy() >= 0
    row = np.maximum(stops["waybill"].to_numpy(), 0)
    erg_m = np.where(loaded, np.where(day, erg["day"].to_numpy()[row], erg["night"].to_numpy()[row]), np.nan)
    reach = float(np.nanmax(np.r_[radius.max(), erg_m])) + 1.0
    pairs = gpd.sjoin_nearest(stops[["geometry"]], sites[["geometry"]], how="inner", max_distance=reach,
                              distance_col="distance_m")
    pairs = pairs.rename(columns={"index_right": "site"})
    # sjoin_nearest keeps only the nearest site; any site within its radius also counts
    near_any = gpd.sjoin(stops[["geometry"]], sites[["geometry"]], how="inner", predicate="dwithin", distance=reach)
    near_any = near_any.rename(columns={"index_right": "site"})
    near_any["distance_m"] = stops.geometry.loc[near_any.index].distance(
        sites.geometry.loc[near_any["site"]].set_axis(near_any.index), align=False).to_numpy()
    candidates = pd.concat([pairs, near_any])
    stop_i = candidates.index.to_numpy()
    site_j = candidates["site"].to_numpy()
    r = np.where(widened.to_numpy()[site_j] & (erg_m[stop_i] > radius.to_numpy()[site_j]), erg_m[stop_i],
                 radius.to_numpy()[site_j])
    within = candidates["distance_m"].to_numpy() <= r
    # severity: the site kind's column for the cargo (acute / other / empty), the most serious site
    cls = goods["hazard_class"].astype(str).str.strip()
    goods["acute"] = (cls.str.startswith(ACUTE_HAZARD_CLASS_PREFIX) | cls.isin(ACUTE_HAZARD_CLASSES)
                      | goods["erg_day_m"].notna() | goods["erg_night_m"].notna())
    acute = goods.groupby("waybill_id")["acute"].any().reindex(world.waybills["id"].to_numpy(), fill_value=False)
    tier = np.where(loaded, np.where(acute.to_numpy(bool)[row], 0, 1), np.where(residue >= 0, 1, 2))
    table = sites["kind"].map(lambda kind: SEVERITY_BY_KIND[kind]).to_numpy()
    pair_severity = np.array([table[j][tier[i]] for i, j in zip(stop_i[within], site_j[within])], "int64")
    severity = pd.Series(pair_severity).groupby(stop_i[within]).min()
    out = []
    for i, sev in severity.items():  # one per incident
        vehicle, start = stops.at[i, "vehicle_id"], int(stops.at[i, "start_ms"])
        key = f"stop_near_sensitive_site:{vehicle}:{start}"
        out.append(("stop_near_sensitive_site", vehicle, key, "open", start, None, int(sev)))
        if stops.at[i, "closed"]:
            out.append(("stop_near_sensitive_site", vehicle, key, "close", start, int(stops.at[i, "end_ms"]), int(sev)))
    return out


# What the GeoPandas pipeline re-implements (issue 5): the engine runs just these for the ratio.
COMPARED_RULES = ("route_deviation", "stop_near_sensitive_site", "speeding")
# What both sides compare an event on (issue 11).
EVENT_KEY = ("rule", "vehicle", "episode", "phase", "start_ms", "end_ms", "severity")


def event_key(event) -> tuple:
    """An engine Event as an EVENT_KEY tuple (times in epoch ms, end None while open)."""
    end = None if event.end is None else int(event.end.value // 1_000_000)
    return (event.rule, event.subject_id, event.episode_id, event.phase, int(event.start.value // 1_000_000), end,
            int(event.severity))


def same_events(mine: set, theirs: set) -> bool:
    """Both sides raised the same events, and some: two empty sets prove nothing."""
    return bool(mine) and mine == theirs


def compare_on_subsample(world: World, plan, trucks: int = 200, seed: int = 0,
                         settings: EngineSettings | None = None) -> dict:
    """The compared rules on `trucks` trucks x 24 h by the engine and by GeoPandas (MovingPandas'
    stops, pandas waybills, the rules), CPU seconds each:

    - warm: each side's world preparation (the engine's RuleWorld caches: metric routes, trees,
      the speed-limit grid; GeoPandas' projected layers, their spatial indexes, the waybill
      lookup) done ahead and untimed, as a monitor that keeps them for its life;
    - cold: the same runs with the preparation timed on both sides.
    The engine also runs cleaning; GeoPandas is handed clean pings."""
    settings = settings or EngineSettings()
    chosen = np.sort(np.random.default_rng(seed).choice(len(plan), min(trucks, len(plan)), replace=False))
    pings = fleet_day(plan, trucks=chosen)
    warmup = fleet_day(plan, trucks=chosen[:5], hours=12.0)

    # cold: a fresh world on each side, preparation timed
    before = _cpu_s()
    cold_events = Engine(world, settings, rules=COMPARED_RULES).run(pings)
    engine_cold_cpu = _cpu_s() - before
    before = _cpu_s()
    gw = prepare_geopandas(world, settings)
    cold_stops = movingpandas_stops(pings, settings)
    _mark_closed(cold_stops, pings)
    cold_gpd_events = geopandas_events(gw, pings, cold_stops, settings)
    gpd_cold_cpu = _cpu_s() - before

    # warm: the engine's world caches built by an untimed run on other pings, GeoPandas' by
    # prepare_geopandas, untimed
    prepared = Engine(world, settings, rules=COMPARED_RULES)
    before = _cpu_s()
    prepared.run(warmup)
    index_cpu = _cpu_s() - before
    engine = Engine(world, settings, rules=COMPARED_RULES)
    engine.world = prepared.world
    before = _cpu_s()
    events = engine.run(pings)
    engine_cpu = _cpu_s() - before
    before = _cpu_s()
    gw = prepare_geopandas(world, settings)
    gpd_prepare_cpu = _cpu_s() - before

    before = _cpu_s()
    stops = movingpandas_stops(pings, settings)
    mpd_cpu = _cpu_s() - before
    _mark_closed(stops, pings)
    before = _cpu_s()
    gpd_events = geopandas_events(gw, pings, stops, settings)
    gpd_cpu = _cpu_s() - before

    # MovingPandas' stops against the engine's stop stage alone (cleaning, stops, waybills)
    stops_only = Engine(world, settings, rules=())
    stops_only.world = prepared.world
    before = _cpu_s()
    stops_only.run(pings)
    engine_stops_cpu = _cpu_s() - before

    mine = {event_key(e) for e in events if e.rule != "stop"}
    theirs = set(gpd_events)
    cold_same = {event_key(e) for e in cold_events if e.rule != "stop"} == mine and set(cold_gpd_events) == theirs
    engine_stops = {(e.subject_id, int(e.start.value // 1_000_000)): int(e.end.value // 1_000_000)
                    for e in events if e.rule == "stop" and e.phase == "close"}
    engine_open = {(e.subject_id, int(e.start.value // 1_000_000)) for e in events if e.rule == "stop" and e.phase == "open"}
    mpd_closed = {(v, s): e for v, s, e, c in stops[["vehicle_id", "start_ms", "end_ms", "closed"]].itertuples(index=False) if c}
    mpd_all = {(v, s) for v, s in stops[["vehicle_id", "start_ms"]].itertuples(index=False)}
    by_rule = {rule: sum(1 for e in mine if e[0] == rule) for rule in COMPARED_RULES}
    return {
        "subsample_pings": len(pings), "compared_rules": COMPARED_RULES, "events_by_rule": by_rule,
        "engine_cpu_s": engine_cpu, "index_build_cpu_s": index_cpu, "geopandas_prepare_cpu_s": gpd_prepare_cpu,
        "geopandas_cpu_s": gpd_cpu, "movingpandas_cpu_s": mpd_cpu, "engine_stops_cpu_s": engine_stops_cpu,
        "engine_cold_cpu_s": engine_cold_cpu, "geopandas_cold_cpu_s": gpd_cold_cpu,
        "engine_events": len(mine), "geopandas_events": len(theirs),
        "events_only_engine": sorted(mine - theirs, key=str)[:5],
        "events_only_geopandas": sorted(theirs - mine, key=str)[:5],
        "events_identical": same_events(mine, theirs) and cold_same,
        "stops": len(mpd_all), "stops_identical": bool(mpd_all) and engine_stops == mpd_closed and engine_open == mpd_all,
        # the GeoPandas side's time is MovingPandas' stops plus the pipeline, as the engine's
        # includes its stop stage
        "ratio_vs_geopandas": (mpd_cpu + gpd_cpu) / engine_cpu,
        # the former figure: the pipeline handed MovingPandas' stops for free (less work than the engine)
        "ratio_vs_geopandas_given_stops": gpd_cpu / engine_cpu,
        "ratio_vs_geopandas_cold": gpd_cold_cpu / engine_cold_cpu,
        "ratio_vs_movingpandas": mpd_cpu / engine_stops_cpu,
    }


def _mark_closed(stops: pd.DataFrame, pings: PingBatch) -> None:
    """A MovingPandas stop is closed when its truck reported after it (the engine's close)."""
    last_ms = pd.Series(pings.epoch_ms).groupby(pings.vehicle_id).max()
    stops["closed"] = stops["end_ms"].to_numpy() < last_ms.reindex(stops["vehicle_id"]).to_numpy()


def run_rules_bench(seed: int = 7, scale: float = 1.0, hours: float = 24.0, copies: int = 10,
                    copies_hours: float = 6.0, subsample_trucks: int = 200, chunk_s: int = 600,
                    out: Callable[[str], None] = print) -> dict:
    """Run every part, print the figures and end with one name=value line each; return them."""
    world = build_world(seed, scale)
    plan = plan_fleet_day(world, seed=seed)
    out(f"world seed={seed} scale={scale}: {len(plan)} trucks on active waybills, a ping every "
        f"{plan.interval_s} s, {len(plan.speeders)} speeders, {len(plan.deviators)} detours, {len(plan.resters)} rests")
    fleet = engine_throughput(world, plan, chunk_s=chunk_s, hours=hours)
    rss_fleet = peak_rss_mb()  # Ningbo scale: world, generator and engine for the whole fleet
    out(f"fleet day: {fleet['pings']:,} pings, {fleet['events']:,} events, {fleet['cpu_s']:.1f} s CPU "
        f"({fleet['wall_s']:.1f} s wall incl. generation): {fleet['pings_per_s_per_core']:,.0f} pings/s/core")
    figures = {"pings": fleet["pings"], "pings_per_s_per_core": round(fleet["pings_per_s_per_core"])}
    if copies > 1 and copies_hours > 0:
        big = engine_throughput(world, plan, chunk_s=chunk_s, copies=copies, hours=copies_hours)
        out(f"{copies}x fleet, {copies_hours:g} h streamed: {big['pings']:,} pings, {big['events']:,} events, "
            f"{big['cpu_s']:.1f} s CPU: {big['pings_per_s_per_core']:,.0f} pings/s/core")
        figures["pings_per_s_per_core_10x"] = round(big["pings_per_s_per_core"])
        figures["peak_rss_mb_10x"] = round(peak_rss_mb())
    if subsample_trucks > 0:
        cmp = compare_on_subsample(world, plan, subsample_trucks, seed)
        out(f"subsample {subsample_trucks} trucks x 24 h: {cmp['subsample_pings']:,} pings; rules compared on both "
            f"sides: {', '.join(cmp['compared_rules'])} (engine: cleaning, stop stage, waybills and these rules; "
            f"GeoPandas: MovingPandas' stops, pandas waybills and these rules)")
        out(f"  warm (world prepared ahead, untimed: engine {cmp['index_build_cpu_s']:.2f} s, GeoPandas "
            f"{cmp['geopandas_prepare_cpu_s']:.2f} s): engine {cmp['engine_cpu_s']:.2f} s, GeoPandas "
            f"{cmp['movingpandas_cpu_s'] + cmp['geopandas_cpu_s']:.2f} s (MovingPandas stops "
            f"{cmp['movingpandas_cpu_s']:.2f} s) CPU")
        out(f"  cold (preparation timed on both sides): engine {cmp['engine_cold_cpu_s']:.2f} s, GeoPandas "
            f"{cmp['geopandas_cold_cpu_s']:.2f} s CPU; the engine's stop stage alone {cmp['engine_stops_cpu_s']:.2f} s")
        out(f"  events compared on ({', '.join(EVENT_KEY)}): engine {cmp['engine_events']} / GeoPandas "
            f"{cmp['geopandas_events']} ({', '.join(f'{r} {n}' for r, n in cmp['events_by_rule'].items())}); "
            f"stops {cmp['stops']}")
        if not cmp["events_identical"]:
            out(f"  only engine: {cmp['events_only_engine']}  only GeoPandas: {cmp['events_only_geopandas']}")
        figures.update(ratio_vs_geopandas=round(cmp["ratio_vs_geopandas"], 1),
                       ratio_vs_geopandas_cold=round(cmp["ratio_vs_geopandas_cold"], 1),
                       ratio_vs_geopandas_given_stops=round(cmp["ratio_vs_geopandas_given_stops"], 1),
                       compared_rules="+".join(cmp["compared_rules"]),
                       events_identical=cmp["events_identical"],
                       ratio_vs_movingpandas=round(cmp["ratio_vs_movingpandas"], 1),
                       stops_identical=cmp["stops_identical"])
    figures["peak_rss_mb"] = round(rss_fleet)
    figures["peak_rss_mb_whole_run"] = round(peak_rss_mb())  # MovingPandas on the subsample included
    for name, value in figures.items():
        out(f"{name}={str(value).lower() if isinstance(value, bool) else value}")
    return figures


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The bench's options, one definition for `python -m bench.rules` and `hazmap bench rules`."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=7, help="demo world and fleet-day seed")
    p.add_argument("--scale", type=float, default=1.0, help="fraction of Ningbo's fleet")
    p.add_argument("--hours", type=float, default=24.0, help="hours of the fleet day")
    p.add_argument("--copies", type=int, default=10, help="fleet multiple streamed in chunks (1: skip)")
    p.add_argument("--copies-hours", type=float, default=6.0, help="hours of the multiplied fleet")
    p.add_argument("--subsample-trucks", type=int, default=200,
                   help="trucks compared against GeoPandas and MovingPandas (0: skip)")
    p.add_argument("--chunk-s", type=int, default=600, help="seconds of pings per engine step")
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> dict:
    args = parser(prog).parse_args(argv)
    return run_rules_bench(args.seed, args.scale, args.hours, args.copies, args.copies_hours, args.subsample_trucks,
                           args.chunk_s)


if __name__ == "__main__":
    main()
