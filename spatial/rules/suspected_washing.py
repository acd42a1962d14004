"""Suspected random tank washing: an empty tank truck stopped long outside every place it may.

DOMAIN.md §5 (an engineering default, no regulation fixes it): after unloading and before the
next loading, a tank truck that stays still for >= `washing_min_s` (30 min) outside every
approved washing station, loading or unloading site, designated parking lot or repair shop is
a suspected random washing (wash water is hazardous waste).

Qualifying stop, decided once when the stop stage confirms it, on its median at confirmation:
* the truck is a registered tank truck (world.vehicles `body == "tank"`; an unregistered
  truck's body is unknown, so it never qualifies);
* it is empty: not on a waybill with the loaded flag at the confirming ping (the waybill stage
  counts a truck loaded exactly while a waybill is active);
* it lies outside every wash station, parking lot and repair shop (`*_match_m`, 150 m) and
  every enterprise site (world.entities, any of them, not only the truck's own: an empty tank
  may wait at any plant; `entity_match_m`, 300 m): exact EPSG:32651 distance > the place's
  radius for all of them (an STRtree only narrows).

Timing (spatial/rules/dwell.py): opens at the first ping of that truck with
t - stop start >= `washing_min_s` while the stop is open; closes when the stop closes.

Severity: SEVERITY_HIGH (2) near water, SEVERITY_MEDIUM (3) otherwise. Near water: a
drinking-water protection zone, i.e. a sensitive site or a restricted zone of kind
`water_protection`, within `near_water_m` (500 m, exact distance to its geometry, inside = 0).
DOMAIN.md §5 also names drains, but the World holds no drainage layer: they cannot count
until one exists.

Evidence: `stop_episode_id`, `stop_start`, `stop_confirmed`, `body`, `nearest_place` ({id,
kind, distance_m, radius_m} over stations, lots, repair shops and entities; None when the
world has none), `near_water`, `nearest_water` ({id, kind (the table), distance_m} within
`near_water_m`, else None), `near_water_m`; at the open `decided`, `dwell_s` and
`washing_min_s`; a close adds `stop_end` and `duration_s`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from spatial.model import Event, World
from spatial.rules.base import (
    SEVERITY_HIGH,
    SEVERITY_MEDIUM,
    RuleWorld,
    iso_times,
    make_event,
    setting,
)
from spatial.rules.dwell import (
    DwellRule,
    PLACE_MATCH_M,
    PLACE_MATCH_SOURCE,
    QUERY_SLACK_M,
    QUERY_SLACK_REL,
    SITE_MATCH_M,
    SITE_MATCH_SOURCE,
    WASH_STATION_MATCH_M,
    cached_places,
    check_positive,
    empty_stops,
    is_tank,
    match_places,
    metric_geometries,
    nearest_places,
    place_evidence,
    stop_waybills,
    stop_xy,
    tank_slots,
)

RULE_NAME = "suspected_washing"
WATER_KIND = "water_protection"
WATER_TABLES = ("sensitive_sites", "restricted_zones")


@dataclass(frozen=True)
class SuspectedWashingSettings:
    washing_min_s: float = setting(1800.0, "s", "DOMAIN.md §5 (engineering default): still >= 30 min")
    wash_station_match_m: float = setting(WASH_STATION_MATCH_M, "m", PLACE_MATCH_SOURCE)
    parking_lot_match_m: float = setting(PLACE_MATCH_M, "m", PLACE_MATCH_SOURCE)
    repair_shop_match_m: float = setting(PLACE_MATCH_M, "m", PLACE_MATCH_SOURCE)
    entity_match_m: float = setting(SITE_MATCH_M, "m", SITE_MATCH_SOURCE)
    near_water_m: float = setting(
        500.0, "m", "DOMAIN.md §5 'higher weight near water' (engineering default distance)")

    def __post_init__(self):
        check_positive("SuspectedWashingSettings", self, ("washing_min_s", "wash_station_match_m",
                                                          "parking_lot_match_m", "repair_shop_match_m",
                                                          "entity_match_m", "near_water_m"))

    def radius_by_table(self) -> dict[str, float]:
        return {"wash_stations": self.wash_station_match_m, "parking_lots": self.parking_lot_match_m,
                "repair_shops": self.repair_shop_match_m, "entities": self.entity_match_m}


@dataclass(frozen=True)
class _Water:
    ids: np.ndarray
    tables: np.ndarray
    geoms: np.ndarray
    tree: shapely.STRtree


def _water(world: World) -> _Water:
    ids, tables, geoms = [], [], []
    for table in WATER_TABLES:
        frame = world.table(table)
        if not len(frame):
            continue
        water = frame["kind"].astype(object).to_numpy() == WATER_KIND
        if not water.any():
            continue
        table_ids, table_geoms = metric_geometries(world, table, RULE_NAME)
        ids.append(table_ids[water])
        geoms.append(table_geoms[water])
        tables.append(np.full(int(water.sum()), table, dtype=object))
    geoms_all = np.concatenate(geoms) if geoms else np.empty(0, object)
    return _Water(np.concatenate(ids) if ids else np.empty(0, object),
                  np.concatenate(tables) if tables else np.empty(0, object), geoms_all, shapely.STRtree(geoms_all))


def nearest_water(water: _Water, x: np.ndarray, y: np.ndarray, within_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Each point's nearest water zone within `within_m` (exact distance; row or -1, distance)."""
    n = len(x)
    row, dist = np.full(n, -1, "int64"), np.full(n, np.nan)
    if not n or not len(water.ids):
        return row, dist
    points = shapely.points(x, y)
    i, j = water.tree.query(points, predicate="dwithin", distance=within_m * (1 + QUERY_SLACK_REL) + QUERY_SLACK_M)
    d = shapely.distance(points[i], water.geoms[j])
    hit = d <= within_m
    i, j, d = i[hit], j[hit], d[hit]
    order = np.lexsort((j, d, i))
    i, j, d = i[order], j[order], d[order]
    first = np.r_[True, i[1:] != i[:-1]] if len(i) else np.empty(0, bool)
    row[i[first]], dist[i[first]] = j[first], d[first]
    return row, dist


class SuspectedWashingRule(DwellRule):
    """An empty tank truck's long stop outside stations, plants, lots and repair shops."""

    name = RULE_NAME
    min_setting = "washing_min_s"

    def __init__(self, settings: SuspectedWashingSettings | None = None):
        self.settings = settings if settings is not None else SuspectedWashingSettings()

    def _qualifying(self, stops: pd.DataFrame, rw: RuleWorld) -> tuple[pd.DataFrame, list[Event]]:
        s = self.settings
        places = cached_places(rw, s.radius_by_table(), RULE_NAME)
        tanks = rw.cached(f"{RULE_NAME}:tanks", lambda: tank_slots(rw.world))
        water: _Water = rw.cached(f"{RULE_NAME}:water", lambda: _water(rw.world))
        x, y = stop_xy(stops, RULE_NAME)
        waybill = stop_waybills(stops, len(rw.world.waybills), RULE_NAME)
        empty = empty_stops(stops, waybill)
        candidates = np.flatnonzero(empty & is_tank(tanks, stops["slot"].to_numpy("int64")))
        if not len(candidates):
            return stops.iloc[:0], []
        outside = ~match_places(places, x[candidates], y[candidates]).at
        chosen = candidates[outside]
        if not len(chosen):
            return stops.iloc[:0], []
        x, y = x[chosen], y[chosen]
        near, near_d = nearest_places(places, x, y)
        water_row, water_d = nearest_water(water, x, y, s.near_water_m)
        picked = stops.iloc[chosen].reset_index(drop=True)
        start_ms = picked["start_ms"].to_numpy("int64")
        start_text = iso_times(start_ms)
        confirmed_text = iso_times(picked["confirmed_ms"].to_numpy("int64"))
        drafts = []
        for k in range(len(picked)):  # one per qualifying stop: few
            w = int(water_row[k])
            evidence = {
                "stop_episode_id": str(picked["episode_id"].iloc[k]),
                "stop_start": start_text[k], "stop_confirmed": confirmed_text[k],
                "body": "tank",
                "nearest_place": place_evidence(places, int(near[k]), near_d[k]),
                "near_water": w >= 0,
                "nearest_water": None if w < 0 else {"id": str(water.ids[w]), "kind": str(water.tables[w]),
                                                     "distance_m": float(water_d[k])},
                "near_water_m": float(s.near_water_m),
            }
            drafts.append(make_event(RULE_NAME, picked["vehicle_id"].iloc[k], "open", int(start_ms[k]), None,
                                     float(picked["lon"].iloc[k]), float(picked["lat"].iloc[k]),
                                     SEVERITY_HIGH if w >= 0 else SEVERITY_MEDIUM, evidence))
        return picked, drafts
