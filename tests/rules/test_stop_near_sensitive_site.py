"""stop_near_sensitive_site: boundary tables, an independent brute-force oracle, streaming.

The oracle below (`oracle_incidents`) does not import spatial.rules: it measures the exact
shapely distance from every stop to every site in EPSG:32651 and re-implements the radius,
day/night, cargo and severity rules plainly from the rule's documentation, one stop and one
site at a time, and the exemptions likewise: a stop at its waybill's own loading / unloading
site (world.entities), and an empty truck's stop within 150 m of any parking lot, service area,
wash station or repair shop (never merely near some enterprise: issue 11). The exemption of an
empty truck at its previous unloading / next loading site and the residue of an uncleaned tank
have their own tables below. Stops are given as the engine would hand them (DataFrames with the
stop columns), placed in metre offsets so they graze every boundary.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from data.demo import build_world
from data.reference import load_chemicals
from spatial.crs import from_metric, geometry_to_metric
from spatial.rules.base import STOP_COLUMNS, RuleBatch, RuleWorld, settings_rows
from spatial.rules.stop_near_sensitive_site import (
    StopNearSensitiveSiteRule,
    StopNearSensitiveSiteSettings,
)
from tests.tracks import ORIGIN_X, ORIGIN_Y, layer, metric_geometry, tiny_world

CHEMICALS = load_chemicals()
LOCAL = "Asia/Shanghai"


def local_ms(text: str) -> int:
    """'2026-11-02 05:59' in Ningbo's local time -> UTC epoch milliseconds."""
    return int(pd.Timestamp(text, tz=LOCAL).tz_convert("UTC").value // 1_000_000)


DAY_MS = local_ms("2026-11-02 10:00")
NIGHT_MS = local_ms("2026-11-02 23:00")


# --- builders -------------------------------------------------------------------------------

def stop_row(vehicle_id: str, dx: float, dy: float = 0.0, *, confirmed_ms: int = DAY_MS, dwell_s: float = 300,
             end_ms: int = -1, waybill: int = -1, loaded: bool = False, slot: int = 0) -> dict:
    """A stop at metre offset (dx, dy) from the origin, confirmed at `confirmed_ms`."""
    x, y = ORIGIN_X + dx, ORIGIN_Y + dy
    lon, lat = from_metric(x, y)
    start_ms = confirmed_ms - int(dwell_s * 1000)
    return {
        "slot": slot, "vehicle_id": vehicle_id, "episode_id": f"stop:{vehicle_id}:{start_ms}", "start_ms": start_ms,
        "confirmed_ms": confirmed_ms, "end_ms": end_ms, "lon": float(lon), "lat": float(lat), "x": x, "y": y,
        "waybill": waybill, "loaded": loaded,
    }


STOP_DTYPES = {"vehicle_id": object, "episode_id": object, "lon": "float64", "lat": "float64", "x": "float64",
               "y": "float64", "loaded": bool}


def stops_frame(rows: list[dict]) -> pd.DataFrame:
    """Stop rows as the engine's stops_opened / stops_closed frame (column dtypes as base.empty_stops)."""
    return pd.DataFrame({c: np.array([r[c] for r in rows], dtype=STOP_DTYPES.get(c, "int64")) for c in STOP_COLUMNS})


def closed(rows: list[dict], after_s: float = 600) -> list[dict]:
    return [{**r, "end_ms": r["confirmed_ms"] + int(after_s * 1000)} for r in rows]


def batch(opened: list[dict] | pd.DataFrame = (), closed_rows: list[dict] | pd.DataFrame = ()) -> RuleBatch:
    as_frame = lambda rows: rows if isinstance(rows, pd.DataFrame) else stops_frame(list(rows))
    return RuleBatch.empty().with_columns(stops_opened=as_frame(opened), stops_closed=as_frame(closed_rows))


def site(site_id: str, kind: str, geometry_m, name: str | None = None) -> dict:
    return {"id": site_id, "name": name or f"{kind} {site_id}", "kind": kind, "geometry": metric_geometry(geometry_m)}


# Every waybill of world_with loads at ENT-1 and unloads at ENT-2; by default both lie far from
# everything, so only the tests about the exemption put a stop at one of them.
FAR_ENTITIES = {"ENT-1": shapely.Point(-20_000, 0), "ENT-2": shapely.Point(20_000, 0)}


def entity(entity_id: str, geometry_m) -> dict:
    return {"id": entity_id, "name": f"厂 {entity_id}", "licensed": True, "category": "production",
            "district_adcode": "330212", "park_id": None, "geometry": metric_geometry(geometry_m)}


def world_with(sites: list[dict], cargo: list[list[tuple[str, str]]] = (), chemicals=CHEMICALS,
               entities: dict | None = None, places: dict | None = None) -> RuleWorld:
    """A world with the given sites, one waybill per entry of `cargo` (a list of (UN, class)),
    the enterprises `entities` (id -> metric geometry; FAR_ENTITIES by default) and `places`
    (World table, e.g. "parking_lots" -> {id -> metric point}; none by default)."""
    departure = pd.Timestamp("2026-11-02 00:00", tz="UTC")
    waybills = layer("waybills", [
        {"id": f"WB-{i:06d}", "vehicle_id": f"VEH-{i:06d}", "status": "active", "loading_site_id": "ENT-1",
         "unloading_site_id": "ENT-2", "consignor": "甲", "consignee": "乙", "carrier": "丙",
         "planned_departure": departure, "planned_arrival": departure + pd.Timedelta(hours=20),
         "emergency_phone": "110", "geometry": metric_geometry(shapely.LineString([(0, 0), (5000, 0)]))}
        for i in range(len(cargo))
    ])
    goods = pd.DataFrame(
        [{"waybill_id": f"WB-{i:06d}", "seq": k + 1, "un_number": un, "name": un, "hazard_class": cls,
          "packing_group": None, "quantity_t": 10.0}
         for i, items in enumerate(cargo) for k, (un, cls) in enumerate(items)],
        columns=["waybill_id", "seq", "un_number", "name", "hazard_class", "packing_group", "quantity_t"],
    )
    entities = FAR_ENTITIES if entities is None else entities
    world = tiny_world(sensitive_sites=layer("sensitive_sites", sites), waybills=waybills, waybill_goods=goods,
                       entities=layer("entities", [entity(k, g) for k, g in entities.items()]),
                       **{table: layer(table, [{"id": k, "name": k, "geometry": metric_geometry(g)}
                                               for k, g in rows.items()])
                          for table, rows in (places or {}).items()})
    world.chemicals = chemicals
    return RuleWorld(world)


def run(rule, world: RuleWorld, batches: list[RuleBatch]):
    state, events = rule.initial_state(), []
    for b in batches:
        state, out = rule.step(state, b, world)
        events.extend(out)
    return state, events


# --- the oracle (no spatial.rules inside) -----------------------------------------------------

ORACLE_KIND_RADIUS_M = {"school": 300, "kindergarten": 300, "hospital": 300, "elderly_home": 300,
                        "residential": 200, "government": 200, "water_protection": 100}
ORACLE_SEVERITY = {  # kind -> (acute cargo, other cargo, empty), as documented in the rule
    "school": (1, 2, 3), "kindergarten": (1, 2, 3), "hospital": (1, 2, 3), "elderly_home": (1, 2, 3),
    "government": (2, 3, 4), "residential": (2, 3, 4), "water_protection": (2, 2, 4),
}


ORACLE_OWN_SITE_MATCH_M = 300


def oracle_at_own_site(stop, world, match_m: float) -> bool:
    """On a waybill and within match_m of its loading or unloading site (a site not in
    world.entities cannot count)."""
    if stop.waybill < 0:
        return False
    waybill = world.waybills.iloc[stop.waybill]
    point = shapely.Point(stop.x, stop.y)
    for site_id in (waybill["loading_site_id"], waybill["unloading_site_id"]):
        found = world.entities[world.entities["id"] == site_id]
        if len(found) and shapely.distance(point, geometry_to_metric(found.geometry.iloc[0])) <= match_m:
            return True
    return False


# Where an empty truck may stand, as documented: table -> match radius (m).
ORACLE_EMPTY_PLACE_MATCH_M = {"parking_lots": 150, "service_areas": 150, "wash_stations": 150, "repair_shops": 150}


def oracle_empty_at_place(stop, places: list[tuple[object, float]]) -> bool:
    """An empty truck (not: loaded flag on a waybill) within its radius of any (metric geometry,
    radius) place."""
    if stop.loaded and stop.waybill >= 0:
        return False
    point = shapely.Point(stop.x, stop.y)
    return any(shapely.distance(point, geometry) <= radius for geometry, radius in places)


def oracle_incidents(stops: pd.DataFrame, world, exempt_own_sites: bool = True,
                     own_site_match_m: float = ORACLE_OWN_SITE_MATCH_M, exempt_empty_at_places: bool = True,
                     empty_place_match_m: dict | None = None) -> dict[tuple[str, int], dict]:
    """(vehicle, stop start) -> {severity, primary site, every hit (site id, radius, distance)}."""
    sites = world.sensitive_sites
    site_geoms = [geometry_to_metric(g) for g in sites.geometry]
    goods_by_waybill: dict[str, list] = {}
    for good in world.waybill_goods.itertuples():
        goods_by_waybill.setdefault(good.waybill_id, []).append(good)
    catalogue = world.chemicals
    empty_places = [(geometry, radius)
                    for table, radius in (empty_place_match_m or ORACLE_EMPTY_PLACE_MATCH_M).items()
                    if len(world.table(table))
                    for geometry in geometry_to_metric(world.table(table).geometry.to_numpy())]
    found = {}
    for stop in stops.itertuples():
        if exempt_own_sites and oracle_at_own_site(stop, world, own_site_match_m):
            continue
        if exempt_empty_at_places and oracle_empty_at_place(stop, empty_places):
            continue
        hour = pd.Timestamp(int(stop.confirmed_ms), unit="ms", tz="UTC").tz_convert(LOCAL).hour
        day = 6 <= hour < 20
        loaded = bool(stop.loaded) and stop.waybill >= 0
        erg, acute = None, False
        if loaded:
            for good in sorted(goods_by_waybill.get(world.waybills["id"].iloc[stop.waybill], []), key=lambda g: g.seq):
                cls, tih = str(good.hazard_class), False
                if len(catalogue.columns) and good.un_number in catalogue.index:
                    entry = catalogue.loc[good.un_number]
                    figure = entry["erg_day_m"] if day else entry["erg_night_m"]
                    if math.isnan(figure):
                        figure = entry["erg_isolation_m"]
                    if not math.isnan(figure):
                        erg = figure if erg is None else max(erg, figure)
                    tih = not (math.isnan(entry["erg_day_m"]) and math.isnan(entry["erg_night_m"]))
                acute = acute or cls.startswith("1.") or cls in ("2.1", "2.3") or tih
        tier = 2 if not loaded else (0 if acute else 1)
        point = shapely.Point(stop.x, stop.y)
        hits = []
        for j, (site_id, kind) in enumerate(zip(sites["id"], sites["kind"])):
            radius = ORACLE_KIND_RADIUS_M[kind]
            if erg is not None and kind != "water_protection" and erg > radius:
                radius = erg
            distance = shapely.distance(point, site_geoms[j])
            if distance <= radius:
                hits.append((ORACLE_SEVERITY[kind][tier], distance, j, site_id, float(radius)))
        if hits:
            hits.sort()
            found[(stop.vehicle_id, int(stop.start_ms))] = {
                "severity": hits[0][0], "site_id": hits[0][3],
                "hits": sorted((h[3], h[4]) for h in hits), "distances": {h[3]: h[1] for h in hits},
            }
    return found


def incidents_of(events) -> dict[tuple[str, int], dict]:
    out = {}
    for e in events:
        assert e.phase == "open"
        sites = [e.evidence, *e.evidence["other_sites"]]
        key = (e.subject_id, int(e.start.value // 1_000_000))
        assert key not in out, f"two incidents for one stop {key}"
        out[key] = {
            "severity": e.severity, "site_id": e.evidence["site_id"],
            "hits": sorted((s["site_id"], s["radius_m"]) for s in sites),
            "distances": {s["site_id"]: s["distance_m"] for s in sites},
        }
    return out


def assert_agrees_with_oracle(events, stops: pd.DataFrame, world: RuleWorld, **oracle_settings) -> None:
    expected = oracle_incidents(stops, world.world, **oracle_settings)
    got = incidents_of(events)
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        have = got[key]
        for field in ("severity", "site_id", "hits"):
            assert have[field] == want[field], (key, field)
        assert have["distances"] == pytest.approx(want["distances"], abs=1e-9), key


# --- boundary table -------------------------------------------------------------------------

SQUARE = shapely.box(0, -200, 400, 200)  # a water zone / residential block, west edge at x=0
CL = [("1017", "2.3")]
CASES = [
    # (case, site kind, site geometry (metres), stop dx, confirmed local time, cargo, loaded,
    #  expected (radius_m, radius source, severity) or None for no incident)
    *[(f"{k} 299.9 m", k, shapely.Point(0, 0), 299.9, "10:00", None, False, (300, "kind", 3))
      for k in ("school", "kindergarten", "hospital", "elderly_home")],
    *[(f"{k} 300.1 m", k, shapely.Point(0, 0), 300.1, "10:00", None, False, None)
      for k in ("school", "kindergarten", "hospital", "elderly_home")],
    ("school 299.999 m", "school", shapely.Point(0, 0), 299.999, "10:00", None, False, (300, "kind", 3)),
    ("school 300.001 m", "school", shapely.Point(0, 0), 300.001, "10:00", None, False, None),
    ("residential 199.9 m", "residential", shapely.Point(0, 0), 199.9, "10:00", None, False, (200, "kind", 4)),
    ("residential 200.1 m", "residential", shapely.Point(0, 0), 200.1, "10:00", None, False, None),
    ("government 199.9 m", "government", shapely.Point(0, 0), 199.9, "10:00", None, False, (200, "kind", 4)),
    ("government 200.1 m", "government", shapely.Point(0, 0), 200.1, "10:00", None, False, None),
    ("inside a residential block", "residential", SQUARE, 200.0, "10:00", None, False, (200, "kind", 4)),
    ("residential block 199.9 m", "residential", SQUARE, -199.9, "10:00", None, False, (200, "kind", 4)),
    ("residential block 200.1 m", "residential", SQUARE, -200.1, "10:00", None, False, None),
    ("inside a water zone", "water_protection", SQUARE, 200.0, "10:00", None, False, (100, "kind", 4)),
    ("on a water zone's edge", "water_protection", SQUARE, 0.0, "10:00", None, False, (100, "kind", 4)),
    ("water zone 99.9 m", "water_protection", SQUARE, -99.9, "10:00", None, False, (100, "kind", 4)),
    ("water zone 100.1 m", "water_protection", SQUARE, -100.1, "10:00", None, False, None),
    ("water zone 99.9 m, loaded", "water_protection", SQUARE, -99.9, "10:00", [("1203", "3")], True, (100, "kind", 2)),
    ("water zone not widened by ERG", "water_protection", SQUARE, -500, "23:00", CL, True, None),
    # chlorine: ERG small spill 300 m by day, 1100 m by night; day is 06:00 to 20:00 at confirmation
    ("chlorine 700 m 05:59", "school", shapely.Point(0, 0), 700, "05:59", CL, True, (1100, "erg", 1)),
    ("chlorine 700 m 06:00", "school", shapely.Point(0, 0), 700, "06:00", CL, True, None),
    ("chlorine 700 m 19:59", "school", shapely.Point(0, 0), 700, "19:59", CL, True, None),
    ("chlorine 700 m 20:00", "school", shapely.Point(0, 0), 700, "20:00", CL, True, (1100, "erg", 1)),
    ("chlorine 1099.9 m night", "school", shapely.Point(0, 0), 1099.9, "23:00", CL, True, (1100, "erg", 1)),
    ("chlorine 1100.1 m night", "school", shapely.Point(0, 0), 1100.1, "23:00", CL, True, None),
    ("chlorine 299.9 m day", "school", shapely.Point(0, 0), 299.9, "12:00", CL, True, (300, "kind", 1)),
    ("chlorine 300.1 m day", "school", shapely.Point(0, 0), 300.1, "12:00", CL, True, None),
    ("chlorine, empty truck", "school", shapely.Point(0, 0), 700, "23:00", CL, False, None),
    ("chlorine, empty truck 299.9 m", "school", shapely.Point(0, 0), 299.9, "23:00", CL, False, (300, "kind", 3)),
    ("chlorine residential 1000 m night", "residential", shapely.Point(0, 0), 1000, "23:00", CL, True,
     (1100, "erg", 2)),
    ("chlorine government 250 m day", "government", shapely.Point(0, 0), 250, "12:00", CL, True, (300, "erg", 2)),
    # explosives: no Table 1 figure, the isolation distance (500 m) widens instead
    ("explosive 499.9 m", "hospital", shapely.Point(0, 0), 499.9, "12:00", [("0081", "1.1D")], True,
     (500, "erg", 1)),
    ("explosive 500.1 m", "hospital", shapely.Point(0, 0), 500.1, "12:00", [("0081", "1.1D")], True, None),
    ("gasoline 299.9 m", "school", shapely.Point(0, 0), 299.9, "12:00", [("1203", "3")], True, (300, "kind", 2)),
    ("LPG is acute", "kindergarten", shapely.Point(0, 0), 299.9, "12:00", [("1075", "2.1")], True, (300, "kind", 1)),
    # TIH goods of class 6.1 and 8 (ERG Table 1 rows in the catalogue) are acute too
    ("HCN (6.1, TIH) is acute", "school", shapely.Point(0, 0), 299.9, "12:00", [("1051", "6.1")], True,
     (300, "kind", 1)),
    ("HF (8, TIH) 399.9 m night", "school", shapely.Point(0, 0), 399.9, "23:00", [("1052", "8")], True,
     (400, "erg", 1)),
    ("gasoline + chlorine", "school", shapely.Point(0, 0), 1000, "23:00", [("1203", "3"), ("1017", "2.3")], True,
     (1100, "erg", 1)),
    ("not in the catalogue 299.9 m", "school", shapely.Point(0, 0), 299.9, "23:00", [("9999", "3")], True,
     (300, "kind", 2)),
    ("not in the catalogue 300.1 m", "school", shapely.Point(0, 0), 300.1, "23:00", [("9999", "3")], True, None),
]


@pytest.mark.parametrize("case, kind, geometry, dx, clock, cargo, loaded, expected", CASES, ids=[c[0] for c in CASES])
def test_boundary_table(case, kind, geometry, dx, clock, cargo, loaded, expected):
    world = world_with([site("SITE-1", kind, geometry)], [cargo] if cargo else [])
    row = stop_row("VEH-1", dx, confirmed_ms=local_ms(f"2026-11-02 {clock}"), waybill=0 if cargo else -1,
                   loaded=loaded)
    rule = StopNearSensitiveSiteRule()
    _, events = run(rule, world, [batch([row])])
    assert_agrees_with_oracle(events, stops_frame([row]), world)
    if expected is None:
        assert events == []
        return
    (event,) = events
    radius, source, severity = expected
    assert (event.evidence["radius_m"], event.evidence["radius_source"], event.severity) == (radius, source, severity)
    assert event.evidence["distance_m"] <= radius
    assert event.evidence["site_id"] == "SITE-1" and event.evidence["site_kind"] == kind


# --- a stop the waybill plans ------------------------------------------------------------------

SCHOOL = site("SITE-1", "school", shapely.Point(0, 0))
STOP_DX = 100.0  # every stop below lies 100 m from the school, well inside its 300 m
OWN_SITE_CASES = [
    # (case, entities (id -> metric geometry), stop on the waybill?, loaded, clock, settings, raised?)
    ("loaded, at its own loading site", {"ENT-1": shapely.Point(STOP_DX, 0), "ENT-2": FAR_ENTITIES["ENT-2"]},
     True, True, "10:00", {}, False),
    ("loaded, at its own unloading site", {"ENT-1": FAR_ENTITIES["ENT-1"], "ENT-2": shapely.Point(STOP_DX + 50, 0)},
     True, True, "10:00", {}, False),
    ("loaded, 299.9 m from its own site", {"ENT-1": shapely.Point(STOP_DX, 299.9), "ENT-2": FAR_ENTITIES["ENT-2"]},
     True, True, "10:00", {}, False),
    ("loaded, 300.1 m from its own site", {"ENT-1": shapely.Point(STOP_DX, 300.1), "ENT-2": FAR_ENTITIES["ENT-2"]},
     True, True, "10:00", {}, True),
    ("loaded, 301 m from its own site", {"ENT-1": shapely.Point(STOP_DX + 301, 0), "ENT-2": FAR_ENTITIES["ENT-2"]},
     True, True, "10:00", {}, True),
    ("loaded, at another plant near the school", {**FAR_ENTITIES, "ENT-3": shapely.Point(STOP_DX, 0)},
     True, True, "10:00", {}, True),
    ("loaded, at its own site, exemption off", {"ENT-1": shapely.Point(STOP_DX, 0), "ENT-2": FAR_ENTITIES["ENT-2"]},
     True, True, "10:00", {"exempt_own_sites": False}, True),
    ("loaded, 400 m from its own site, match 500 m", {**FAR_ENTITIES, "ENT-1": shapely.Point(STOP_DX, 400)},
     True, True, "10:00", {"own_site_match_m": 500.0}, False),
    # near some plant is no business of an empty truck (issue 11: schools and hospitals are
    # registered chemical users); only its own previous / next waybill's site is (tested below)
    ("empty truck (no waybill) at a plant near the school", {"ENT-1": shapely.Point(STOP_DX, 0),
                                                            "ENT-2": shapely.Point(STOP_DX, 0)},
     False, False, "10:00", {}, True),
    ("loaded flag without a waybill at a plant", {"ENT-1": shapely.Point(STOP_DX, 0), "ENT-2": FAR_ENTITIES["ENT-2"]},
     False, True, "10:00", {}, True),
    ("empty truck at a plant, both exemptions off", {"ENT-1": shapely.Point(STOP_DX, 0),
                                                    "ENT-2": FAR_ENTITIES["ENT-2"]},
     False, False, "10:00", {"exempt_own_sites": False, "exempt_empty_at_places": False}, True),
    ("own loading site missing from entities", {"ENT-2": FAR_ENTITIES["ENT-2"],
                                                "ENT-9": shapely.Point(STOP_DX, 0)},
     True, True, "10:00", {}, True),
    ("no entities at all", {}, True, True, "10:00", {}, True),
    # chlorine at night widens the school's radius to 1,100 m: still exempt at its own site
    ("chlorine at night, at its own site", {"ENT-1": shapely.Point(STOP_DX, 0), "ENT-2": FAR_ENTITIES["ENT-2"]},
     True, True, "23:00", {}, False),
]


@pytest.mark.parametrize("case, entities, on_waybill, loaded, clock, overrides, raised", OWN_SITE_CASES,
                         ids=[c[0] for c in OWN_SITE_CASES])
def test_stop_at_its_own_site(case, entities, on_waybill, loaded, clock, overrides, raised):
    world = world_with([SCHOOL], [CL], entities=entities)
    row = stop_row("VEH-1", STOP_DX, confirmed_ms=local_ms(f"2026-11-02 {clock}"), waybill=0 if on_waybill else -1,
                   loaded=loaded)
    settings = StopNearSensitiveSiteSettings(**overrides)
    _, events = run(StopNearSensitiveSiteRule(settings), world, [batch([row])])
    assert_agrees_with_oracle(events, stops_frame([row]), world, **oracle_settings(settings))
    assert len(events) == (1 if raised else 0)
    if raised:
        assert events[0].evidence["site_id"] == "SITE-1" and events[0].evidence["distance_m"] == pytest.approx(STOP_DX)


def oracle_settings(settings: StopNearSensitiveSiteSettings) -> dict:
    """The rule's exemption settings as the oracle's keyword arguments."""
    return {"exempt_own_sites": settings.exempt_own_sites, "own_site_match_m": settings.own_site_match_m,
            "exempt_empty_at_places": settings.exempt_empty_at_places,
            "empty_place_match_m": {"parking_lots": settings.parking_lot_match_m,
                                    "service_areas": settings.service_area_match_m,
                                    "wash_stations": settings.wash_station_match_m,
                                    "repair_shops": settings.repair_shop_match_m}}


# --- an empty truck standing where it may ------------------------------------------------------

AT_SCHOOL = {"ENT-1": FAR_ENTITIES["ENT-1"], "ENT-2": FAR_ENTITIES["ENT-2"]}
EMPTY_CASES = [
    # (case, entities (id -> metric point), places (table -> {id -> metric point}), on a waybill?,
    #  loaded, settings, raised?); every stop lies STOP_DX from the school, inside its 300 m
    ("empty truck at a plant near the school", {**AT_SCHOOL, "ENT-3": shapely.Point(STOP_DX, 0)}, {},
     False, False, {}, True),
    ("empty truck 299.9 m from a plant", {**AT_SCHOOL, "ENT-3": shapely.Point(STOP_DX, 299.9)}, {},
     False, False, {}, True),
    ("empty truck at a parking lot near the school", AT_SCHOOL,
     {"parking_lots": {"PL-1": shapely.Point(STOP_DX + 50, 0)}}, False, False, {}, False),
    ("empty truck at a service area", AT_SCHOOL, {"service_areas": {"SA-1": shapely.Point(STOP_DX, 149.9)}},
     False, False, {}, False),
    ("empty truck at a wash station", AT_SCHOOL, {"wash_stations": {"WS-1": shapely.Point(STOP_DX, -100)}},
     False, False, {}, False),
    ("empty truck at a repair shop", AT_SCHOOL, {"repair_shops": {"RS-1": shapely.Point(STOP_DX - 10, 0)}},
     False, False, {}, False),
    ("on a waybill, loaded flag off, at another plant", {**AT_SCHOOL, "ENT-3": shapely.Point(STOP_DX, 0)}, {},
     True, False, {}, True),
    ("on a waybill, loaded flag off, at a wash station", AT_SCHOOL,
     {"wash_stations": {"WS-1": shapely.Point(STOP_DX, 0)}}, True, False, {}, False),
    ("empty truck 301 m from a plant, 151 m from every place",
     {**AT_SCHOOL, "ENT-3": shapely.Point(STOP_DX + 301, 0)},
     {table: {f"{prefix}-1": shapely.Point(STOP_DX, -151)} for table, prefix in (
         ("parking_lots", "PL"), ("service_areas", "SA"), ("wash_stations", "WS"), ("repair_shops", "RS"))},
     False, False, {}, True),
    ("empty truck 300.1 m from a plant", {**AT_SCHOOL, "ENT-3": shapely.Point(STOP_DX, 300.1)}, {},
     False, False, {}, True),
    ("empty truck 150.1 m from a parking lot", AT_SCHOOL, {"parking_lots": {"PL-1": shapely.Point(STOP_DX, 150.1)}},
     False, False, {}, True),
    ("loaded truck at another (not own) plant", {**AT_SCHOOL, "ENT-3": shapely.Point(STOP_DX, 0)}, {},
     True, True, {}, True),
    ("loaded truck at a parking lot near the school", AT_SCHOOL,
     {"parking_lots": {"PL-1": shapely.Point(STOP_DX, 0)}}, True, True, {}, True),
    ("empty truck at a plant, exempt_empty_at_places=False", {**AT_SCHOOL, "ENT-3": shapely.Point(STOP_DX, 0)}, {},
     False, False, {"exempt_empty_at_places": False}, True),
    ("empty truck at a parking lot, exempt_empty_at_places=False", AT_SCHOOL,
     {"parking_lots": {"PL-1": shapely.Point(STOP_DX, 0)}}, False, False, {"exempt_empty_at_places": False}, True),
    ("empty truck 250 m from a lot, parking_lot_match_m 300", AT_SCHOOL,
     {"parking_lots": {"PL-1": shapely.Point(STOP_DX, 250)}}, False, False, {"parking_lot_match_m": 300.0}, False),
]


@pytest.mark.parametrize("case, entities, places, on_waybill, loaded, overrides, raised", EMPTY_CASES,
                         ids=[c[0] for c in EMPTY_CASES])
def test_empty_truck_where_it_may_stand(case, entities, places, on_waybill, loaded, overrides, raised):
    world = world_with([SCHOOL], [CL], entities=entities, places=places)
    row = stop_row("VEH-1", STOP_DX, waybill=0 if on_waybill else -1, loaded=loaded)
    settings = StopNearSensitiveSiteSettings(**overrides)
    _, events = run(StopNearSensitiveSiteRule(settings), world, [batch([row])])
    assert_agrees_with_oracle(events, stops_frame([row]), world, **oracle_settings(settings))
    assert len(events) == (1 if raised else 0)
    if raised:  # severity as before: the table's, by cargo
        (event,) = events
        assert event.evidence["site_id"] == "SITE-1" and event.evidence["distance_m"] == pytest.approx(STOP_DX)
        assert (event.severity, event.evidence["cargo"]) == ((1, "acute") if loaded else (3, "empty"))


def test_exempt_stops_drop_out_of_a_mixed_batch():
    """Exempt and raised stops in one batch: the others raise with their own evidence, and the
    exempt stops' closes pass silently."""
    world = world_with([SCHOOL], [CL, [("1203", "3")]],
                       entities={"ENT-1": shapely.Point(STOP_DX, 0), "ENT-2": FAR_ENTITIES["ENT-2"]},
                       places={"parking_lots": {"PL-1": shapely.Point(STOP_DX, 0)}})
    # both waybills load at ENT-1, where VEH-1 and VEH-3 stop; VEH-2 stops 250 m from the school
    # on its far side, 350 m from ENT-1
    rows = [stop_row("VEH-1", STOP_DX, waybill=0, loaded=True, slot=0),
            stop_row("VEH-2", -250, waybill=1, loaded=True, slot=1),
            stop_row("VEH-3", STOP_DX, waybill=1, loaded=True, slot=2),
            stop_row("VEH-4", -250, slot=3),
            stop_row("VEH-5", STOP_DX, slot=4)]  # empty, at the parking lot: where it may stand
    rule = StopNearSensitiveSiteRule()
    state, events = run(rule, world, [batch(rows), batch([], closed(rows))])
    assert [(e.subject_id, e.phase) for e in events] == [("VEH-2", "open"), ("VEH-4", "open"),
                                                         ("VEH-2", "close"), ("VEH-4", "close")]
    assert state.open == {}
    veh2, veh4 = events[0].evidence, events[1].evidence
    assert (veh2["waybill_id"], veh2["goods_un_numbers"], veh2["cargo"], events[0].severity) == (
        "WB-000001", ["1203"], "other", 2)
    assert (veh4["waybill_id"], veh4["cargo"], events[1].severity) == (None, "empty", 3)
    assert veh2["stop_episode_id"] == rows[1]["episode_id"] and veh4["stop_episode_id"] == rows[3]["episode_id"]
    assert_agrees_with_oracle(events[:2], stops_frame(rows), world)


def test_open_and_close_carry_the_evidence():
    world = world_with([site("SITE-1", "school", shapely.Point(0, 0), "实验小学")], [CL])
    row = stop_row("VEH-000007", 700, confirmed_ms=local_ms("2026-11-02 21:30"), waybill=0, loaded=True, dwell_s=420)
    rule = StopNearSensitiveSiteRule()
    state, (opening,) = rule.step(rule.initial_state(), batch([row]), world)
    assert len(state.open) == 1
    assert opening.rule == "stop_near_sensitive_site" and opening.subject_id == "VEH-000007"
    assert opening.phase == "open" and opening.end is None
    assert opening.start == pd.Timestamp(row["start_ms"], unit="ms", tz="UTC")
    assert opening.episode_id == f"stop_near_sensitive_site:VEH-000007:{row['start_ms']}"
    assert (opening.lon, opening.lat) == (row["lon"], row["lat"])
    e = opening.evidence
    assert e["site_name"] == "实验小学" and e["distance_m"] == pytest.approx(700, abs=1e-6)
    assert (e["radius_m"], e["kind_radius_m"], e["radius_source"]) == (1100, 300, "erg")
    assert (e["erg_radius_m"], e["erg_un_number"], e["erg_period"], e["erg_figure"]) == (
        1100, "1017", "night", "protective_action")
    assert (e["loaded"], e["waybill_id"], e["goods_un_numbers"], e["cargo"]) == (True, "WB-000000", ["1017"], "acute")
    assert e["stop_episode_id"] == row["episode_id"]
    assert e["stop_confirmed_local"].startswith("2026-11-02T21:30:00")
    assert pd.Timestamp(e["stop_start"]) == opening.start
    json.dumps(e)  # plain values only: incidents are stored and sent as JSON

    end_ms = row["confirmed_ms"] + 900_000
    state, (closing,) = rule.step(state, batch([], [{**row, "end_ms": end_ms}]), world)
    assert state.open == {}
    assert closing.phase == "close" and closing.episode_id == opening.episode_id
    assert closing.end == pd.Timestamp(end_ms, unit="ms", tz="UTC") and closing.start == opening.start
    assert closing.severity == opening.severity
    assert closing.evidence["duration_s"] == (end_ms - row["start_ms"]) / 1000
    json.dumps(closing.evidence)


def test_one_incident_per_stop_names_the_most_serious_site():
    sites = [
        site("SITE-A", "residential", shapely.Point(50, 0)),
        site("SITE-B", "school", shapely.Point(250, 0)),
        site("SITE-C", "hospital", shapely.Point(0, 100)),
        site("SITE-D", "school", shapely.Point(0, 2000)),  # far away
    ]
    world = world_with(sites)
    _, (event,) = run(StopNearSensitiveSiteRule(), world, [batch([stop_row("VEH-1", 0)])])
    # empty truck: hospital and school severity 3, residential 4; the nearer of the 3s leads
    assert (event.severity, event.evidence["site_id"]) == (3, "SITE-C")
    assert [s["site_id"] for s in event.evidence["other_sites"]] == ["SITE-B", "SITE-A"]
    assert event.evidence["site_count"] == 3
    assert [s["severity"] for s in event.evidence["other_sites"]] == [3, 4]


def test_loaded_flag_without_a_waybill_does_not_widen():
    world = world_with([site("SITE-1", "school", shapely.Point(0, 0))], [CL])
    rows = [stop_row("VEH-1", 700, confirmed_ms=NIGHT_MS, waybill=-1, loaded=True),
            stop_row("VEH-2", 250, confirmed_ms=NIGHT_MS, waybill=-1, loaded=True)]
    _, (event,) = run(StopNearSensitiveSiteRule(), world, [batch(rows)])
    assert event.subject_id == "VEH-2" and event.severity == 3
    e = event.evidence
    assert (e["cargo"], e["waybill_id"], e["erg_radius_m"]) == ("empty", None, None)


def test_goods_missing_from_the_catalogue_are_named():
    world = world_with([site("SITE-1", "school", shapely.Point(0, 0))], [[("9999", "3"), ("1203", "3")]])
    _, (event,) = run(StopNearSensitiveSiteRule(), world, [batch([stop_row("VEH-1", 100, waybill=0, loaded=True)])])
    e = event.evidence
    assert e["goods_not_in_catalogue"] == ["9999"] and e["goods_un_numbers"] == ["9999", "1203"]
    assert (e["radius_source"], e["radius_m"], e["erg_radius_m"], e["erg_un_number"]) == ("kind", 300, 50, "1203")


def test_without_a_catalogue_the_kind_radius_stands():
    world = world_with([site("SITE-1", "school", shapely.Point(0, 0))], [CL], chemicals=pd.DataFrame())
    near = stop_row("VEH-1", 299.9, confirmed_ms=NIGHT_MS, waybill=0, loaded=True)
    far = stop_row("VEH-2", 700, confirmed_ms=NIGHT_MS, waybill=0, loaded=True)
    _, events = run(StopNearSensitiveSiteRule(), world, [batch([near, far])])
    (event,) = events
    assert event.subject_id == "VEH-1" and event.severity == 1  # declared class 2.3 still counts
    assert event.evidence["goods_not_in_catalogue"] == ["1017"] and event.evidence["erg_radius_m"] is None


def test_substance_without_any_erg_figure_is_listed():
    # carbon monoxide with its ERG distances taken out of the catalogue: a 2.3 gas without any figure
    no_erg = CHEMICALS.copy()
    no_erg.loc["1016", ["erg_isolation_m", "erg_day_m", "erg_night_m"]] = np.nan
    world = world_with([site("SITE-1", "school", shapely.Point(0, 0))], [[("1016", "2.3")]], chemicals=no_erg)
    _, (event,) = run(StopNearSensitiveSiteRule(), world,
                      [batch([stop_row("VEH-1", 200, waybill=0, loaded=True, confirmed_ms=NIGHT_MS)])])
    assert event.evidence["goods_without_erg"] == ["1016"] and event.evidence["radius_source"] == "kind"
    assert event.severity == 1


def test_settings_change_the_radii():
    world = world_with([site("SITE-1", "school", shapely.Point(0, 0)), site("SITE-2", "water_protection",
                                                                            shapely.Point(3000, 0))], [CL])
    rule = StopNearSensitiveSiteRule(StopNearSensitiveSiteSettings(
        school_radius_m=500, erg_widened_kinds=("school", "water_protection"), night_starts_local_hour=22))
    rows = [stop_row("VEH-1", 450), stop_row("VEH-2", 3000 - 700, confirmed_ms=local_ms("2026-11-02 21:00"),
                                             waybill=0, loaded=True),
            stop_row("VEH-3", 3000 - 700, confirmed_ms=local_ms("2026-11-02 22:00"), waybill=0, loaded=True)]
    _, events = run(rule, world, [batch(rows)])
    assert [(e.subject_id, e.evidence["radius_m"]) for e in events] == [("VEH-1", 500), ("VEH-3", 1100)]


def test_stops_that_never_raised_close_silently():
    world = world_with([site("SITE-1", "school", shapely.Point(0, 0))])
    far, near = stop_row("VEH-1", 900), stop_row("VEH-2", 10)
    rule = StopNearSensitiveSiteRule()
    state, events = run(rule, world, [batch([far, near]), batch([], closed([far])), batch([], closed([near]))])
    assert [(e.subject_id, e.phase) for e in events] == [("VEH-2", "open"), ("VEH-2", "close")]
    assert state.open == {}
    # a stop that opened and closed in one step gives both events, open first
    _, events = run(rule, world, [batch([near], closed([near]))])
    assert [e.phase for e in events] == ["open", "close"]


def test_no_sites_no_events():
    _, events = run(StopNearSensitiveSiteRule(), world_with([]), [batch([stop_row("VEH-1", 0)])])
    assert events == []


def test_settings_are_listed_with_units_and_sources():
    rows = {r["name"]: r for r in settings_rows("stop_near_sensitive_site", StopNearSensitiveSiteSettings())}
    for kind, metres in ORACLE_KIND_RADIUS_M.items():
        assert rows[f"{kind}_radius_m"]["value"] == metres and rows[f"{kind}_radius_m"]["unit"] == "m"
    assert all(r["source"] for r in rows.values())
    assert (rows["day_starts_local_hour"]["value"], rows["night_starts_local_hour"]["value"]) == (6, 20)
    assert (rows["own_site_match_m"]["value"], rows["own_site_match_m"]["unit"]) == (ORACLE_OWN_SITE_MATCH_M, "m")
    assert rows["exempt_own_sites"]["value"] is True
    assert "waybill plans" in rows["exempt_own_sites"]["source"]
    assert rows["exempt_empty_at_places"]["value"] is True
    assert "empty truck" in rows["exempt_empty_at_places"]["source"]
    for table, metres in ORACLE_EMPTY_PLACE_MATCH_M.items():
        name = {"parking_lots": "parking_lot_match_m",
                "service_areas": "service_area_match_m", "wash_stations": "wash_station_match_m",
                "repair_shops": "repair_shop_match_m"}[table]
        assert (rows[name]["value"], rows[name]["unit"]) == (metres, "m"), name


@pytest.mark.parametrize("overrides, message", [
    ({"school_radius_m": -1.0}, "school_radius_m"),
    ({"water_protection_radius_m": float("nan")}, "water_protection_radius_m"),
    ({"erg_widened_kinds": ("school", "prison")}, "prison"),
    ({"day_starts_local_hour": 20, "night_starts_local_hour": 6}, "day_starts_local_hour"),
    ({"own_site_match_m": 0.0}, "own_site_match_m"),
    ({"own_site_match_m": float("inf")}, "own_site_match_m"),
    ({"parking_lot_match_m": 0.0}, "parking_lot_match_m"),
    ({"service_area_match_m": float("nan")}, "service_area_match_m"),
    ({"wash_station_match_m": True}, "wash_station_match_m"),
    ({"repair_shop_match_m": "150"}, "repair_shop_match_m"),
])
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        StopNearSensitiveSiteSettings(**overrides)
    with pytest.raises(TypeError, match="exempt_own_sites"):
        StopNearSensitiveSiteSettings(exempt_own_sites="no")
    with pytest.raises(TypeError, match="exempt_empty_at_places"):
        StopNearSensitiveSiteSettings(exempt_empty_at_places=1)
    with pytest.raises(TypeError, match="exempt_adjacent_sites"):
        StopNearSensitiveSiteSettings(exempt_adjacent_sites=None)


def test_bad_input_is_named():
    rule = StopNearSensitiveSiteRule()
    unknown_kind = world_with([site("SITE-9", "prison", shapely.Point(0, 0))])
    with pytest.raises(ValueError, match="SITE-9.*prison"):
        rule.step(rule.initial_state(), batch([stop_row("VEH-1", 0)]), unknown_kind)
    bowtie = shapely.Polygon([(0, 0), (100, 100), (100, 0), (0, 100)])
    with pytest.raises(ValueError, match="SITE-8.*invalid"):
        rule.step(rule.initial_state(), batch([stop_row("VEH-1", 0)]), world_with([site("SITE-8", "school", bowtie)]))
    world = world_with([site("SITE-1", "school", shapely.Point(0, 0))])
    with pytest.raises(ValueError, match="lacks columns.*'x'"):
        rule.step(rule.initial_state(), batch(stops_frame([stop_row("VEH-1", 0)]).drop(columns=["x"])), world)
    with pytest.raises(ValueError, match="waybill row 3"):
        rule.step(rule.initial_state(), batch([stop_row("VEH-1", 0, waybill=3, loaded=True)]), world)
    row = stop_row("VEH-1", 0)
    state, _ = rule.step(rule.initial_state(), batch([row]), world)
    with pytest.raises(ValueError, match="opened twice"):
        rule.step(state, batch([row]), world)


# --- random stops against a demo world --------------------------------------------------------

@pytest.fixture(scope="module")
def demo():
    return RuleWorld(build_world(11, scale=0.02, chemicals=CHEMICALS))


def random_stops(draw, world: RuleWorld, n_max: int) -> list[dict]:
    """Stops around sensitive sites, around waybills' own loading / unloading sites (some of
    which lie near sensitive sites in the demo world) and around lots, service areas, wash
    stations and repair shops, with or without a waybill."""
    sites = world.world.sensitive_sites
    anchors = geometry_to_metric(sites.geometry.representative_point().to_numpy())
    waybills = world.world.waybills
    entity_xy = dict(zip(world.world.entities["id"], geometry_to_metric(world.world.entities.geometry.to_numpy())))
    places = geometry_to_metric(np.concatenate([world.world.table(t).geometry.to_numpy() for t in (
        "parking_lots", "service_areas", "wash_stations", "repair_shops")]))
    n = draw(st.integers(1, n_max))
    rows = []
    t0 = local_ms("2026-11-02 00:00")
    for k in range(n):
        waybill = draw(st.integers(-1, len(waybills) - 1))
        anchor_at = draw(st.sampled_from(["site", "site", "loading_site_id", "unloading_site_id", "place"]))
        if anchor_at == "site":
            anchor = anchors[draw(st.integers(0, len(sites) - 1))]
        elif anchor_at == "place":
            anchor = places[draw(st.integers(0, len(places) - 1))]
        else:  # an empty truck (-1) stops at some waybill's plant
            anchor = entity_xy[waybills[anchor_at].iloc[waybill if waybill >= 0 else draw(
                st.integers(0, len(waybills) - 1))]]
        distance = draw(st.one_of(
            st.sampled_from([0.0, 99.9, 100.1, 149.9, 150.1, 199.9, 200.1, 299.9, 300.1, 499.9, 500.1, 699.9, 1099.9,
                             1100.1]),
            st.floats(0, 2500)))
        angle = draw(st.floats(0, 2 * math.pi))
        x = shapely.get_x(anchor) + distance * math.cos(angle)
        y = shapely.get_y(anchor) + distance * math.sin(angle)
        lon, lat = from_metric(x, y)
        start_ms = t0 + draw(st.integers(0, 2 * 86_400_000))
        confirmed_ms = start_ms + draw(st.integers(300_000, 1_800_000))
        rows.append({
            "slot": k, "vehicle_id": f"VEH-{k:06d}", "episode_id": f"stop:VEH-{k:06d}:{start_ms}",
            "start_ms": start_ms, "confirmed_ms": confirmed_ms,
            "end_ms": confirmed_ms + draw(st.integers(0, 3_600_000)),
            "lon": float(lon), "lat": float(lat), "x": float(x), "y": float(y),
            "waybill": waybill, "loaded": draw(st.booleans()),
        })
    return rows


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_stops_agree_with_the_oracle(demo, data):
    rows = data.draw(st.composite(lambda draw: random_stops(draw, demo, 25))())
    stops = stops_frame([{**r, "end_ms": -1} for r in rows])
    _, events = run(StopNearSensitiveSiteRule(), demo, [batch(stops)])
    assert_agrees_with_oracle(events, stops, demo)


@hsettings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_streaming_same_events_however_the_stops_are_split(demo, data):
    rows = data.draw(st.composite(lambda draw: random_stops(draw, demo, 15))())
    # The timeline the stop stage would produce: each stop opens at confirmation and closes
    # when the truck leaves after its last stopped ping.
    timeline = sorted([(r["confirmed_ms"], 0, i) for i, r in enumerate(rows)]
                      + [(r["end_ms"] + 1, 1, i) for i, r in enumerate(rows)])
    cuts = sorted(data.draw(st.sets(st.integers(1, len(timeline) - 1), max_size=len(timeline) - 1)))

    def batches(cut_points):
        out = []
        for a, b in zip([0, *cut_points], [*cut_points, len(timeline)]):
            part = timeline[a:b]
            out.append(batch([{**rows[i], "end_ms": -1} for _, phase, i in part if phase == 0],
                             [rows[i] for _, phase, i in part if phase == 1]))
        return out

    rule = StopNearSensitiveSiteRule()
    whole_state, whole = run(rule, demo, [batch([{**r, "end_ms": -1} for r in rows], rows)])
    split_state, split = run(rule, demo, batches(cuts))
    single_state, single = run(rule, demo, batches(list(range(1, len(timeline)))))
    key = lambda e: (e.episode_id, e.phase)
    assert sorted(whole, key=key) == sorted(split, key=key) == sorted(single, key=key)
    assert whole_state.open == split_state.open == single_state.open == {}
    # within a step, events come in the order they were decided: opens at confirmation, closes at the end
    decided = [pd.Timestamp(e.evidence["stop_confirmed"]) if e.phase == "open" else e.end for e in whole]
    assert decided == sorted(decided)
    opens = {e.episode_id for e in whole if e.phase == "open"}
    assert opens == {e.episode_id for e in whole if e.phase == "close"}
    # the oracle agrees on which stops raise an incident
    assert {(e.subject_id, int(e.start.value // 1_000_000)) for e in whole if e.phase == "open"} == set(
        oracle_incidents(stops_frame(rows), demo.world))


def test_demo_world_raises_incidents_of_every_severity(demo):
    """A sanity check on a realistic world: stops at every site's anchor with every waybill."""
    sites = demo.world.sensitive_sites
    anchors = geometry_to_metric(sites.geometry.representative_point().to_numpy())
    n_wb = len(demo.world.waybills)
    rows = []
    for j, anchor in enumerate(anchors):
        for k, (loaded, clock) in enumerate([(True, "23:00"), (False, "10:00")]):
            x, y = shapely.get_x(anchor) + 150, shapely.get_y(anchor)
            lon, lat = from_metric(x, y)
            confirmed = local_ms(f"2026-11-02 {clock}")
            rows.append({"slot": 2 * j + k, "vehicle_id": f"VEH-{2 * j + k:06d}",
                         "episode_id": f"stop:{2 * j + k}", "start_ms": confirmed - 300_000, "confirmed_ms": confirmed,
                         "end_ms": -1, "lon": float(lon), "lat": float(lat), "x": x, "y": y,
                         "waybill": (j * 7) % n_wb, "loaded": loaded})
    stops = stops_frame(rows)
    _, events = run(StopNearSensitiveSiteRule(), demo, [batch(stops)])
    assert_agrees_with_oracle(events, stops, demo)
    assert {e.severity for e in events} == {1, 2, 3, 4}
    assert any(e.evidence["radius_source"] == "erg" for e in events)


def test_state_is_not_mutated_by_a_step():
    world = world_with([site("SITE-1", "school", shapely.Point(0, 0))])
    rule = StopNearSensitiveSiteRule()
    row = stop_row("VEH-1", 10)
    state, _ = rule.step(rule.initial_state(), batch([row]), world)
    before = dict(state.open)
    rule.step(state, batch([], closed([row])), world)
    assert state.open == before


# --- an empty truck where it has business: its previous unloading / next loading site -----------

# all within the school's 300 m, each more than 300 m (the match radius) from the others
PREV_UNLOAD, NEXT_LOAD, PREV_LOAD, NOBODYS = (shapely.Point(0, 280), shapely.Point(280, 0), shapely.Point(0, -280),
                                              shapely.Point(-280, 0))


def business_world(next_status: str = "active", other_vehicle: bool = False) -> RuleWorld:
    """One truck VEH-000001 (slot 0) with two waybills: WB-A loads at ENT-A and unloads at ENT-B,
    08:00-10:00 local; WB-B loads at ENT-C at 14:00 (status `next_status`). Every plant lies near
    the school; ENT-D is nobody's."""
    def wb(wb_id, load, unload, dep, arr, status="active", vehicle_id="VEH-000001"):
        return {"id": wb_id, "vehicle_id": vehicle_id, "status": status, "loading_site_id": load,
                "unloading_site_id": unload, "consignor": "甲", "consignee": "乙", "carrier": "丙",
                "planned_departure": pd.Timestamp(local_ms(f"2026-11-02 {dep}"), unit="ms", tz="UTC"),
                "planned_arrival": pd.Timestamp(local_ms(f"2026-11-02 {arr}"), unit="ms", tz="UTC"),
                "emergency_phone": "110", "geometry": metric_geometry(shapely.LineString([(0, 0), (5000, 0)]))}
    owner = "VEH-000002" if other_vehicle else "VEH-000001"
    waybills = layer("waybills", [wb("WB-A", "ENT-A", "ENT-B", "06:00", "07:00", vehicle_id=owner),
                                  wb("WB-B", "ENT-C", "ENT-F", "14:00", "15:00", next_status, vehicle_id=owner)])
    entities = {"ENT-A": PREV_LOAD, "ENT-B": PREV_UNLOAD, "ENT-C": NEXT_LOAD, "ENT-D": NOBODYS,
                "ENT-F": shapely.Point(20_000, 0)}
    vehicles = layer("vehicles", [
        {"id": v, "plate": v, "carrier": "丙", "body": "tank", "approved_media": ["1017"], "terminal_phone": v[-6:],
         "driver": "张", "escort": "李", "geometry": metric_geometry(shapely.Point(0, 0))}
        for v in ("VEH-000001", "VEH-000002")])
    world = tiny_world(sensitive_sites=layer("sensitive_sites", [SCHOOL]), waybills=waybills, vehicles=vehicles,
                       entities=layer("entities", [entity(k, g) for k, g in entities.items()]))
    world.chemicals = CHEMICALS
    return RuleWorld(world)


BUSINESS_CASES = [
    # (case, where the empty truck stands, confirmed local time, world options, settings, raised?)
    ("at its previous unloading site", PREV_UNLOAD, "11:00", {}, {}, False),
    ("at its next loading site, waiting", NEXT_LOAD, "11:00", {}, {}, False),
    ("at its previous waybill's loading site", PREV_LOAD, "11:00", {}, {}, True),
    ("at nobody's plant", NOBODYS, "11:00", {}, {}, True),
    ("next waybill cancelled", NEXT_LOAD, "11:00", {"next_status": "cancelled"}, {}, True),
    ("another truck's sites", PREV_UNLOAD, "11:00", {"other_vehicle": True}, {}, True),
    ("before any waybill: the first one's loading site", PREV_LOAD, "05:00", {}, {}, False),
    ("exemption off", PREV_UNLOAD, "11:00", {}, {"exempt_adjacent_sites": False}, True),
    ("after its last waybill, at its unloading site", shapely.Point(20_000, 0), "23:00", {}, {}, False),
]


@pytest.mark.parametrize("case, where, clock, options, overrides, raised", BUSINESS_CASES,
                         ids=[c[0] for c in BUSINESS_CASES])
def test_empty_truck_where_it_has_business(case, where, clock, options, overrides, raised):
    world = business_world(**options)
    # the far unloading site of WB-B: put the school there too for the last case
    if case.startswith("after its last"):
        world = RuleWorld(world.world)
        world.world.sensitive_sites = layer("sensitive_sites", [site("SITE-1", "school", shapely.Point(20_100, 0))])
    row = stop_row("VEH-000001", float(where.x), float(where.y), confirmed_ms=local_ms(f"2026-11-02 {clock}"))
    _, events = run(StopNearSensitiveSiteRule(StopNearSensitiveSiteSettings(**overrides)), world, [batch([row])])
    assert len(events) == (1 if raised else 0)


# --- cargo state: an uncleaned empty tank near a site -----------------------------------------------

def with_residue(row: dict, residue: int) -> pd.DataFrame:
    frame = stops_frame([row])
    frame["residue"] = np.array([residue], "int64")
    return frame


@pytest.mark.parametrize("dx, clock, raised", [(250.0, "10:00", True), (700.0, "23:00", False)])
def test_an_uncleaned_tank_counts_as_its_last_cargo_without_erg_widening(dx, clock, raised):
    world = world_with([SCHOOL], [CL])
    row = stop_row("VEH-1", dx, confirmed_ms=local_ms(f"2026-11-02 {clock}"))
    _, events = run(StopNearSensitiveSiteRule(), world, [batch(with_residue(row, 0))])
    assert len(events) == int(raised)  # chlorine loaded at night would reach 1,100 m: residue does not widen
    if raised:
        (event,) = events
        # a school and "other cargo": 2 (an empty truck would be 3; chlorine loaded 1)
        assert event.severity == 2
        e = event.evidence
        assert (e["cargo"], e["residue_waybill_id"], e["residue_un_numbers"], e["radius_source"]) == (
            "residue", "WB-000000", ["1017"], "kind")
    # without residue the same empty stop is severity 3
    _, plain = run(StopNearSensitiveSiteRule(), world, [batch(with_residue(row, -1))])
    assert [e.severity for e in plain] == ([3] if raised else [])
