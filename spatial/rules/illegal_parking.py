"""Illegal parking: a loaded truck stopped at least `parking_min_s` outside every place it may stop.

Places a loaded truck may stop at (DOMAIN.md §4, parking; the radii are engineering defaults):
designated hazmat parking lots, service areas and wash stations (`*_match_m`, 150 m), and its
own waybill's loading and unloading sites (world.entities, `waybill_site_match_m`, 300 m, as
the waybill stage matches an unloading stop). "Outside" is decided once, when the stop stage
confirms the stop, on the stop's median location at confirmation: the exact EPSG:32651
distance to each candidate place (an STRtree only narrows them) must exceed that place's
radius for every place. A waybill site missing from world.entities cannot excuse a stop (the
evidence says so with a None distance).

Loaded: the stop's `loaded` flag at its confirming ping, on a waybill (waybill row >= 0); the
waybill stage counts a truck loaded exactly while a waybill is active, and the stop that
unloads it is confirmed on it (hence loaded) but lies at its unloading site.

Timing (spatial/rules/dwell.py): the incident opens at the first ping of that truck with
t - stop start >= `parking_min_s` while the stop is still open, and closes when the stop
closes. Start = the stop's start, so the episode id is illegal_parking:vehicle:stop start.

Severity: SEVERITY_HIGH (2) when the cargo holds a good of class 1 (explosives, any division),
2.1 (flammable gas), 2.3 (toxic gas) or 6.1 (toxic), SEVERITY_MEDIUM (3) otherwise.

Evidence: `stop_episode_id`, `stop_start`, `stop_confirmed`, `waybill_id`, `goods_un_numbers`,
`hazard_classes`, `severe_classes` (the goods' classes that raise the severity),
`nearest_place` ({id, kind, distance_m, radius_m} over lots, service areas and wash stations;
None when the world has none), `loading_site_id` / `loading_site_distance_m`,
`unloading_site_id` / `unloading_site_distance_m`, `waybill_site_match_m`; at the open
`decided` (the opening ping's time), `dwell_s` and `parking_min_s`; a close adds `stop_end` and
`duration_s`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from spatial.model import Event
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
    SITE_MATCH_M,
    SITE_MATCH_SOURCE,
    WaybillCargo,
    WaybillSites,
    cached_places,
    check_positive,
    match_places,
    nearest_places,
    place_evidence,
    stop_waybills,
    stop_xy,
    waybill_cargo,
    waybill_site_distances,
    waybill_sites,
)

RULE_NAME = "illegal_parking"
# GB 6944 classes whose stop outside a designated place is most dangerous: explosives (1.x),
# flammable gas (2.1), toxic gas (2.3), toxic substances (6.1).
SEVERE_CLASS_PREFIX = "1"
SEVERE_CLASSES = ("2.1", "2.3", "6.1")


@dataclass(frozen=True)
class IllegalParkingSettings:
    parking_min_s: float = setting(
        600.0, "s", "issue 5 (engineering default); DOMAIN.md §4 parking (危险货物道路运输安全管理办法)")
    parking_lot_match_m: float = setting(PLACE_MATCH_M, "m", PLACE_MATCH_SOURCE)
    service_area_match_m: float = setting(PLACE_MATCH_M, "m", PLACE_MATCH_SOURCE)
    wash_station_match_m: float = setting(PLACE_MATCH_M, "m", PLACE_MATCH_SOURCE)
    waybill_site_match_m: float = setting(SITE_MATCH_M, "m", SITE_MATCH_SOURCE)

    def __post_init__(self):
        check_positive("IllegalParkingSettings", self, ("parking_min_s", "parking_lot_match_m",
                                                        "service_area_match_m", "wash_station_match_m",
                                                        "waybill_site_match_m"))

    def radius_by_table(self) -> dict[str, float]:
        return {"parking_lots": self.parking_lot_match_m, "service_areas": self.service_area_match_m,
                "wash_stations": self.wash_station_match_m}


def severe_classes(classes: tuple[str, ...]) -> list[str]:
    return [c for c in classes if c.startswith(SEVERE_CLASS_PREFIX) or c in SEVERE_CLASSES]


class IllegalParkingRule(DwellRule):
    """A loaded truck's long stop outside lots, service areas, wash stations and its own sites."""

    name = RULE_NAME
    min_setting = "parking_min_s"

    def __init__(self, settings: IllegalParkingSettings | None = None):
        self.settings = settings if settings is not None else IllegalParkingSettings()

    def _qualifying(self, stops: pd.DataFrame, rw: RuleWorld) -> tuple[pd.DataFrame, list[Event]]:
        """The newly confirmed stops of loaded trucks outside every allowed place, with drafts."""
        s = self.settings
        radius_by_table = s.radius_by_table()
        places = cached_places(rw, radius_by_table, RULE_NAME)
        cargo: WaybillCargo = rw.cached(f"{RULE_NAME}:cargo", lambda: waybill_cargo(rw.world))
        sites: WaybillSites = rw.cached(f"{RULE_NAME}:sites", lambda: waybill_sites(rw.world, RULE_NAME))
        x, y = stop_xy(stops, RULE_NAME)
        waybill = stop_waybills(stops, len(cargo.ids), RULE_NAME)
        loaded = np.flatnonzero(stops["loaded"].to_numpy(bool) & (waybill >= 0))
        if not len(loaded):
            return stops.iloc[:0], []
        x, y, row = x[loaded], y[loaded], waybill[loaded]
        points = shapely.points(x, y)

        at_place = match_places(places, x, y).at
        site_distance = dict(zip(("loading", "unloading"), waybill_site_distances(sites, row, points)))
        at_site = (site_distance["loading"] <= s.waybill_site_match_m) | (
            site_distance["unloading"] <= s.waybill_site_match_m)  # NaN compares False
        outside = ~at_place & ~at_site
        chosen = loaded[outside]
        if not len(chosen):
            return stops.iloc[:0], []
        x, y, row, points = x[outside], y[outside], row[outside], points[outside]
        near, near_d = nearest_places(places, x, y)
        picked = stops.iloc[chosen].reset_index(drop=True)
        start_ms = picked["start_ms"].to_numpy("int64")
        start_text = iso_times(start_ms)
        confirmed_text = iso_times(picked["confirmed_ms"].to_numpy("int64"))
        drafts = []
        for k in range(len(picked)):  # one per qualifying stop: few
            r = int(row[k])
            severe = severe_classes(cargo.classes[r])
            loading_d, unloading_d = site_distance["loading"][outside][k], site_distance["unloading"][outside][k]
            evidence = {
                "stop_episode_id": str(picked["episode_id"].iloc[k]),
                "stop_start": start_text[k], "stop_confirmed": confirmed_text[k],
                "waybill_id": str(cargo.ids[r]),
                "goods_un_numbers": list(cargo.un_numbers[r]), "hazard_classes": list(cargo.classes[r]),
                "severe_classes": severe,
                "nearest_place": place_evidence(places, int(near[k]), near_d[k]),
                "loading_site_id": str(sites.loading_id[r]),
                "loading_site_distance_m": None if np.isnan(loading_d) else float(loading_d),
                "unloading_site_id": str(sites.unloading_id[r]),
                "unloading_site_distance_m": None if np.isnan(unloading_d) else float(unloading_d),
                "waybill_site_match_m": float(s.waybill_site_match_m),
            }
            drafts.append(make_event(RULE_NAME, picked["vehicle_id"].iloc[k], "open", int(start_ms[k]), None,
                                     float(picked["lon"].iloc[k]), float(picked["lat"].iloc[k]),
                                     SEVERITY_HIGH if severe else SEVERITY_MEDIUM, evidence))
        return picked, drafts
