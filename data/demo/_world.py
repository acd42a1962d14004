"""Builds the demo World (see data/demo/__init__.py).

Work happens in UTM 51N metres on the land (the union of the real district outlines, shrunk
by LAND_MARGIN_M so that nothing generated touches the coast after the conversion back to
WGS-84). Every random draw comes from numpy Generators spawned from the seed, one per part,
so a part's output does not depend on how many draws another part made.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import geopandas as gpd
import shapely
import shapely.ops

from data.demo import _names
from data.demo._departments import build_departments, build_routing
from data.demo._geometry import as_multipolygon, blob, containing_index, jitter_within, sample_around, sample_in
from data.demo._places import CHEMICAL_PARKS, CITY_CORE, RESERVOIRS, TOWNS, TUNNEL
from data.demo._roads import RoadNetwork, build_network, shortest_paths
from spatial.crs import WGS84, from_metric, geometry_from_metric, geometry_to_metric, to_metric
from spatial.grading import alpha_for_people, grade_sources
from spatial.model import CHILD_SPECS, ENTITY_CATEGORIES_LICENSED, LAYER_SPECS, World

# Counts of the real city at scale 1 (DOMAIN.md §1 where it gives them; the rest are
# plausible figures for a city of Ningbo's size).
REAL_COUNTS: dict[str, int] = {
    # Ningbo reports 7,046 regulated entities, 2,936 of them licensed, and also "4,077 unlicensed
    # users (schools, hospitals, research institutes…)": 2,936 + 4,077 = 7,013, so 33 unlicensed
    # users fall outside the named kinds. The headline total is kept: 7,046 - 2,936 = 4,110.
    "licensed_entities": 2936,
    "unlicensed_entities": 4110,
    "hazard_sources": 371,
    "monitoring_points": 5196,
    "vehicles": 3419,
    "wash_stations": 40,
    "parking_lots": 30,
    "service_areas": 12,
    "repair_shops": 60,
    "kindergartens": 900,
    "elderly_homes": 250,
    "government_sites": 80,
    "residential_areas": 400,
}
# Real features that exist once whatever the scale.
FIXED_COUNTS: dict[str, int] = {
    "parks": len(CHEMICAL_PARKS),
    "water_protection": len(RESERVOIRS),
    "restricted_zones": len(RESERVOIRS) + 1 + 2,  # reservoirs, the tunnel, the core at two rush hours
}
# The day the live (active) waybills run on; done waybills precede it.
BASE_DAY = pd.Timestamp("2026-11-02 00:00", tz="Asia/Shanghai")

LAND_MARGIN_M = 2.0
HARBOUR_HALF_WIDTH_M = 1800.0  # Xiangshan Harbour is 3–8 km wide
HARBOUR_MOUTH_EXTENSION_M = 15000.0
MIN_PARK_SHARE = 0.65  # share of licensed enterprises placed in parks (≥ 60 % required)
LICENSED_SHARES = {"production": 0.30, "use": 0.28, "trade": 0.24, "transport": 0.12, "disposal": 0.06}
# how strongly each category is drawn into the parks
PARK_AFFINITY = {"production": 0.9, "use": 0.45, "trade": 0.55, "transport": 0.35, "disposal": 0.8}
UNLICENSED_SHARES = {"school": 0.55, "hospital": 0.30, "research": 0.15}
# α bands (≥100, 50–99, 30–49, 1–29, 0 people) and target grades 1..4, how often they occur
PEOPLE_BAND_P = np.array([0.35, 0.20, 0.15, 0.20, 0.10])
GRADE_P = np.array([0.06, 0.16, 0.33, 0.45])
GRADE_R_RANGE = {1: (100.0, 400.0), 2: (50.0, 100.0), 3: (10.0, 50.0), 4: (0.0, 10.0)}
GRADE_MARGIN = 0.03  # keep targets this far inside their band so rounding cannot move them
MONITORING_KIND_P = {"level": 0.28, "temperature": 0.20, "pressure": 0.20, "combustible_gas": 0.20, "toxic_gas": 0.12}
# GB/T 50493-2019: combustible gas level 1 ≤ 25 % LEL, level 2 ≤ 50 % LEL; toxic level 1
# 100 % OEL, level 2 200 % OEL.
COMBUSTIBLE_HIGH_PCT_LEL, COMBUSTIBLE_HIGH_HIGH_PCT_LEL = 25.0, 50.0
TOXIC_HIGH_OEL, TOXIC_HIGH_HIGH_OEL = 1.0, 2.0
POINT_NEAR_SOURCE_M = 150.0
TANK_SHARE = 0.62
MIXED_LOAD_SHARE = 0.02  # of waybills: explosives with a flammable liquid (ADR 7.5.2.1)
MEDIUM_CHANGE_SHARE = 0.05  # of tank trucks: active medium differs from the previous one
PLANNED_SPEED_KMH = 50.0
TANK_CLASSES = ("2.1", "2.2", "2.3", "3", "8")
ALL_CLASSES = ["1", "2.1", "2.2", "2.3", "3", "4.1", "4.2", "4.3", "5.1", "5.2", "6.1", "6.2", "7", "8", "9"]
# Drinking-water protection zones closed to these classes all day (危险货物道路运输安全管理办法 art. 49).
WATER_BARRED = ["1", "2.3", "6.1", "7", "8"]
PLATE_REGIONS = (("浙B", 0.86), ("浙A", 0.03), ("浙D", 0.02), ("浙C", 0.02), ("沪", 0.02), ("苏E", 0.015),
                 ("皖B", 0.012), ("赣A", 0.008), ("闽C", 0.008), ("鲁B", 0.007))
PLATE_CHARS = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"), dtype=object)


def scaled_count(real: int, scale: float) -> int:
    return max(1, int(round(real * scale)))


def build_world(seed: int, scale: float = 1.0, chemicals: pd.DataFrame | None = None) -> World:
    """A synthetic Ningbo, identical for the same seed and scale (see the module docstring)."""
    if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    from data.reference import load_chemicals, load_districts

    chemicals = load_chemicals() if chemicals is None else chemicals
    _check_catalogue(chemicals)
    # a part added later takes the next child: the earlier parts' draws stay as they were
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(13)]
    counts = {k: scaled_count(v, scale) for k, v in REAL_COUNTS.items()}
    if counts["licensed_entities"] < len(ENTITY_CATEGORIES_LICENSED):
        raise ValueError(f"scale {scale} is too small: the world needs a licensed enterprise of each of the "
                         f"{len(ENTITY_CATEGORIES_LICENSED)} categories (scale ≥ 0.002)")

    districts = load_districts()
    land_wgs = shapely.union_all(districts.geometry.to_numpy())
    land = shapely.buffer(geometry_to_metric(land_wgs), -LAND_MARGIN_M)
    land = shapely.difference(land, _xiangshan_harbour(districts))
    main_land = max(shapely.get_parts(land), key=lambda g: g.area)
    district_geoms = shapely.buffer(geometry_to_metric(districts.geometry.to_numpy()), 0)
    shapely.prepare(land)

    water_zones, water_surfaces = _reservoirs(rngs[0], land)
    net = build_network(rngs[1], main_land, shapely.union_all(water_surfaces))
    free_land = shapely.difference(land, shapely.union_all(water_zones))
    parks = _parks(rngs[2], main_land, water_zones, district_geoms, districts)
    ent = _entities(rngs[3], counts, parks, free_land, main_land, district_geoms, districts)
    hs, hs_chem = _hazard_sources(rngs[4], counts["hazard_sources"], ent, parks, free_land, chemicals)
    mp = _monitoring_points(rngs[5], counts["monitoring_points"], hs, hs_chem, parks, free_land, chemicals)
    zones, blocked = _restricted_zones(rngs[6], net, water_zones, land)
    veh, wb, goods = _transport(rngs[7], counts["vehicles"], ent, land, net, blocked, zones, chemicals)
    # who answers for each enterprise (the incident panels' "who to call")
    ent["table"]["contact"] = _names.person_names(rngs[12], len(ent["table"]["id"]))
    facilities = _facilities(rngs[8], counts, net, parks, free_land, district_geoms, districts)
    sites = _sensitive_sites(rngs[9], counts, ent, parks, free_land, water_zones)

    return World(
        districts=districts[[*LAYER_SPECS["districts"].columns, "geometry"]].reset_index(drop=True),
        parks=_layer("parks", parks["table"], parks["geoms"]),
        entities=_layer("entities", ent["table"], ent["xy"]),
        hazard_sources=_layer("hazard_sources", hs["table"], hs["xy"]),
        monitoring_points=_layer("monitoring_points", mp["table"], mp["xy"]),
        vehicles=_layer("vehicles", veh["table"], veh["xy"]),
        waybills=_layer("waybills", wb["table"], wb["routes"]),
        roads=_roads_layer(net),
        wash_stations=_layer("wash_stations", *facilities["wash_stations"]),
        parking_lots=_layer("parking_lots", *facilities["parking_lots"]),
        service_areas=_layer("service_areas", *facilities["service_areas"]),
        repair_shops=_layer("repair_shops", *facilities["repair_shops"]),
        sensitive_sites=_layer("sensitive_sites", sites["table"], sites["geoms"]),
        restricted_zones=_layer("restricted_zones", zones["table"], zones["geoms"]),
        hazard_source_chemicals=_child("hazard_source_chemicals", hs_chem),
        waybill_goods=_child("waybill_goods", goods),
        departments=build_departments(districts),
        routing=build_routing(),
        chemicals=chemicals,
    )


# --- helpers ------------------------------------------------------------------------------


def _check_catalogue(chemicals: pd.DataFrame) -> None:
    needed = ["name_zh", "hazard_class", "packing_group", "gb18218_q_t", "gb18218_beta", "gas_detector",
              "oel_mg_m3"]
    missing = [c for c in needed if c not in chemicals.columns]
    if missing:
        raise ValueError(f"chemical catalogue lacks columns {missing}")
    graded = chemicals["gb18218_q_t"].notna() & ~chemicals["hazard_class"].str.startswith("1")
    if graded.sum() < 4:
        raise ValueError("chemical catalogue needs at least 4 non-explosive substances with a GB 18218 Q")
    toxic = chemicals["gas_detector"] == "toxic"
    if chemicals.loc[toxic, "oel_mg_m3"].isna().any():
        raise ValueError("chemical catalogue: toxic-gas-detected substances need an OEL")
    if not chemicals["hazard_class"].str.startswith("1.1").any() or not (chemicals["hazard_class"] == "3").any():
        raise ValueError("chemical catalogue needs an explosive of division 1.1 and a class 3 liquid (mixed loads)")


def _allocate(n: int, shares: dict[str, float]) -> np.ndarray:
    """Largest-remainder split of n over the categories, each at least 1 when n allows."""
    keys = list(shares)
    p = np.array([shares[k] for k in keys])
    p = p / p.sum()
    base = np.floor(p * n).astype(int)
    if n >= len(keys):
        base = np.maximum(base, 1)
    while base.sum() > n:
        base[np.argmax(base)] -= 1
    order = np.argsort(-(p * n - base), kind="stable")
    i = 0
    while base.sum() < n:
        base[order[i % len(keys)]] += 1
        i += 1
    return np.repeat(np.array(keys, dtype=object), base)


def _xy(points) -> np.ndarray:
    return shapely.get_coordinates(points)


def _to_wgs_points(xy: np.ndarray) -> np.ndarray:
    lon, lat = from_metric(xy[:, 0], xy[:, 1])
    return shapely.points(np.column_stack([lon, lat]))


def _layer(name: str, table: dict, geometry) -> gpd.GeoDataFrame:
    spec = LAYER_SPECS[name]
    required = {f.name for f in spec.fields if f.required}
    if not required <= set(table) <= set(spec.columns):
        raise RuntimeError(f"{name}: generated columns {sorted(table)} differ from the spec {spec.columns}")
    table = {c: table.get(c) for c in spec.columns}  # optional columns the generator leaves out: empty
    geoms = _to_wgs_points(geometry) if isinstance(geometry, np.ndarray) and geometry.dtype != object else (
        geometry_from_metric(np.asarray(geometry, dtype=object)))
    frame = pd.DataFrame({c: table[c] for c in spec.columns})
    for f in spec.fields:
        if f.kind == "bool":
            frame[f.name] = frame[f.name].astype(bool)
        elif f.kind == "int":
            frame[f.name] = frame[f.name].astype("int64" if f.required else "Int64")
        elif f.kind == "float":
            frame[f.name] = frame[f.name].astype("float64")
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84)


def _child(name: str, table: dict) -> pd.DataFrame:
    spec = CHILD_SPECS[name]
    if set(table) != set(spec.columns):
        raise RuntimeError(f"{name}: generated columns {sorted(table)} differ from the spec {spec.columns}")
    return pd.DataFrame({c: table[c] for c in spec.columns})


def _district_codes(xy: np.ndarray, district_geoms: np.ndarray, districts: gpd.GeoDataFrame) -> np.ndarray:
    idx = containing_index(district_geoms, xy)
    if (idx < 0).any():
        # a point in a gap between outlines: take the nearest district
        tree = shapely.STRtree(district_geoms)
        idx[idx < 0] = tree.nearest(shapely.points(xy[idx < 0]))
    return districts["adcode"].to_numpy()[idx]


def _nearest_town(xy: np.ndarray) -> np.ndarray:
    town_xy = np.column_stack(to_metric([t.lon for t in TOWNS], [t.lat for t in TOWNS]))
    d = np.hypot(xy[:, None, 0] - town_xy[None, :, 0], xy[:, None, 1] - town_xy[None, :, 1])
    return np.argmin(d, axis=1)


def _town_arrays():
    xy = np.column_stack(to_metric([t.lon for t in TOWNS], [t.lat for t in TOWNS]))
    return (
        xy,
        np.array([t.spread_m for t in TOWNS]),
        np.array([t.weight for t in TOWNS]),
        np.array([t.name for t in TOWNS], dtype=object),
    )


# --- geography ----------------------------------------------------------------------------


def _xiangshan_harbour(districts: gpd.GeoDataFrame):
    """The sea inside the district outlines: Xiangshan Harbour (象山港), the long inlet whose
    middle line is the border between Xiangshan and Beilun/Yinzhou/Fenghua, widened to
    HARBOUR_HALF_WIDTH_M and carried out to its mouth."""
    by_name = districts.set_index("name_en").geometry
    missing = {"Xiangshan", "Beilun", "Yinzhou", "Fenghua"} - set(by_name.index)
    if missing:
        raise ValueError(f"district outlines lack {sorted(missing)}")
    north = shapely.union_all(by_name[["Beilun", "Yinzhou", "Fenghua"]].to_numpy())
    border = shapely.line_merge(shapely.intersection(shapely.boundary(north), shapely.boundary(by_name["Xiangshan"])))
    middle = max(shapely.get_parts(geometry_to_metric(border)), key=lambda g: g.length)
    xy = shapely.get_coordinates(middle)
    if xy[0, 0] > xy[-1, 0]:
        xy = xy[::-1]  # west (the harbour's head) to east (its mouth)
    line = shapely.linestrings(xy)
    towards_mouth = xy[-1] - shapely.get_coordinates(shapely.line_interpolate_point(line, line.length - 5000.0))[0]
    mouth = xy[-1] + towards_mouth / np.hypot(*towards_mouth) * HARBOUR_MOUTH_EXTENSION_M
    return shapely.buffer(shapely.linestrings(np.vstack([xy, mouth])), HARBOUR_HALF_WIDTH_M)



def _reservoirs(rng, land):
    zones, surfaces = [], []
    for r in RESERVOIRS:  # five real reservoirs
        zone = blob(rng, r.lon, r.lat, r.radius_m, r.elongation, r.bearing_deg)
        surface = blob(rng, r.lon, r.lat, r.radius_m * 0.45, r.elongation * 1.3, r.bearing_deg)
        zones.append(as_multipolygon(shapely.intersection(zone, land)))
        surfaces.append(shapely.intersection(surface, land))
    return np.array(zones, dtype=object), np.array(surfaces, dtype=object)


def _parks(rng, main_land, water_zones, district_geoms, districts):
    avoid = shapely.union_all(water_zones)
    geoms = []
    for p in CHEMICAL_PARKS:  # seven real parks
        outline = blob(rng, p.lon, p.lat, p.radius_m, p.elongation, p.bearing_deg)
        geoms.append(as_multipolygon(shapely.difference(shapely.intersection(outline, main_land), avoid)))
    geoms = np.array(geoms, dtype=object)
    shapely.prepare(geoms)
    rep = _xy(shapely.point_on_surface(geoms))
    n = len(geoms)
    return {
        "geoms": geoms,
        "weights": np.array([p.weight for p in CHEMICAL_PARKS]),
        "table": {
            "id": _names.numbered("CP-", n, 2),
            "name": np.array([p.name for p in CHEMICAL_PARKS], dtype=object),
            "name_en": np.array([p.name_en for p in CHEMICAL_PARKS], dtype=object),
            "district_adcode": _district_codes(rep, district_geoms, districts),
        },
    }


def _entities(rng, counts, parks, free_land, main_land, district_geoms, districts):
    n_lic, n_unl = counts["licensed_entities"], counts["unlicensed_entities"]
    category = rng.permutation(_allocate(n_lic, LICENSED_SHARES))
    # which licensed enterprises sit in a park: exactly ceil(share · n), drawn by affinity
    n_in_park = int(np.ceil(MIN_PARK_SHARE * n_lic))
    affinity = np.array([PARK_AFFINITY[c] for c in category])
    in_park = np.zeros(n_lic, bool)
    in_park[rng.choice(n_lic, n_in_park, replace=False, p=affinity / affinity.sum())] = True
    lic_xy = np.empty((n_lic, 2))
    park_index = np.full(n_lic, -1)
    park_of = rng.choice(len(parks["geoms"]), n_in_park, p=parks["weights"] / parks["weights"].sum())
    slots = np.flatnonzero(in_park)
    for k, geom in enumerate(parks["geoms"]):  # seven parks
        mine = slots[park_of == k]
        lic_xy[mine] = sample_in(rng, geom, len(mine))
        park_index[mine] = k
    town_xy, spread, weight, town_name = _town_arrays()
    outside = shapely.difference(shapely.intersection(free_land, main_land), shapely.union_all(parks["geoms"]))
    lic_xy[~in_park], _ = sample_around(rng, town_xy, spread * 1.6, weight, int((~in_park).sum()), outside)

    # unlicensed users follow the people: the central districts and the county seats
    unl_cat = rng.permutation(_allocate(n_unl, UNLICENSED_SHARES))
    people = weight ** 1.3
    unl_xy, _ = sample_around(rng, town_xy, spread, people, n_unl, shapely.difference(
        free_land, shapely.union_all(parks["geoms"])))

    xy = np.concatenate([lic_xy, unl_xy])
    nearest_town = town_name[_nearest_town(xy)]
    names = np.concatenate([
        _names.firm_names(rng, category, nearest_town[:n_lic]),
        _names.unlicensed_names(rng, unl_cat, nearest_town[n_lic:]),
    ])
    park_ids = parks["table"]["id"]
    park_id = np.concatenate([np.where(park_index >= 0, park_ids[np.maximum(park_index, 0)], None),
                              np.full(n_unl, None, dtype=object)])
    n = n_lic + n_unl
    return {
        "xy": xy,
        "park_index": np.concatenate([park_index, np.full(n_unl, -1)]),
        "table": {
            "id": _names.numbered("ENT-", n),
            "name": names,
            "licensed": np.arange(n) < n_lic,
            "category": np.concatenate([category, unl_cat]).astype(object),
            "district_adcode": _district_codes(xy, district_geoms, districts),
            "park_id": park_id.astype(object),
        },
    }


# --- major hazard sources and monitoring ---------------------------------------------------


def _area_per_point(park_index: np.ndarray, parks, land) -> np.ndarray:
    """The polygon a point must stay in: its park, or the land."""
    areas = np.array([land] * len(park_index), dtype=object)
    in_park = park_index >= 0
    areas[in_park] = parks["geoms"][park_index[in_park]]
    return areas


def _hazard_sources(rng, n, ent, parks, land, chemicals):
    table = ent["table"]
    # production plants and storage depots (trade) hold the major hazards
    host_weight = np.select([table["category"] == "production", table["category"] == "trade"], [3.0, 1.0], 0.0)
    host_weight *= np.where(ent["park_index"] >= 0, 2.0, 1.0)
    hosts = rng.choice(len(host_weight), n, p=host_weight / host_weight.sum())
    areas = _area_per_point(ent["park_index"][hosts], parks, land)
    xy = jitter_within(rng, ent["xy"][hosts], 250.0, areas)

    # α bands and target grades: every band and grade once first, then by frequency
    band = np.concatenate([rng.permutation(5), rng.choice(5, max(n - 5, 0), p=PEOPLE_BAND_P)])[:n]
    low = np.array([100, 50, 30, 1, 0])[band]
    high = np.array([3000, 99, 49, 29, 0])[band]
    people = np.where(band == 0, np.round(np.exp(rng.uniform(np.log(100), np.log(3000), n))),
                      rng.integers(low, high + 1)).astype(np.int64)
    target = np.concatenate([rng.permutation(4) + 1, rng.choice(4, max(n - 4, 0), p=GRADE_P) + 1])[:n]

    pool = chemicals[chemicals["gb18218_q_t"].notna() & ~chemicals["hazard_class"].str.startswith("1")]
    pool_un = pool.index.to_numpy(dtype=object)
    pool_beta = pool["gb18218_beta"].to_numpy(dtype="float64")
    pool_q = pool["gb18218_q_t"].to_numpy(dtype="float64")
    # grade-4 targets use substances with β ≤ 4, so α·β stays below 10 at S ≥ 1
    allowed = np.ones((n, len(pool_un)), bool)
    allowed[target == 4] = pool_beta <= 4.0
    k = np.minimum(rng.choice([1, 2, 3, 4], n, p=[0.35, 0.35, 0.2, 0.1]), allowed.sum(axis=1))
    # weighted draw without replacement (key u^(1/w), largest first): the high grades lean on
    # the substances with a large β, as real grade-1 and grade-2 sources do
    weight = np.where(target[:, None] <= 2, pool_beta[None, :], 1.0)
    keys = np.where(allowed, rng.random((n, len(pool_un))) ** (1.0 / weight), -1.0)
    picked = np.argsort(-keys, axis=1, kind="stable")[:, :4]
    used = np.arange(4)[None, :] < k[:, None]
    share = np.where(used, rng.gamma(2.0, size=(n, 4)), 0.0)
    share = share / share.sum(axis=1, keepdims=True)
    share = np.where(used, np.maximum(share, 0.05), 0.0)
    share = share / share.sum(axis=1, keepdims=True)
    beta_mix = (share * pool_beta[picked]).sum(axis=1)  # Σ βᵢ fᵢ

    alpha = np.asarray(alpha_for_people(people))
    lo = np.array([GRADE_R_RANGE[g][0] for g in target]) * (1 + GRADE_MARGIN)
    hi = np.array([GRADE_R_RANGE[g][1] for g in target]) * (1 - GRADE_MARGIN)
    r_min = alpha * beta_mix * (1 + GRADE_MARGIN)  # S just above 1
    lo = np.maximum(lo, r_min)
    hi = np.maximum(hi, lo)
    r_target = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    s = r_target / (alpha * beta_mix)
    quantity = np.round(share * s[:, None] * pool_q[picked], 3)

    ids = _names.numbered("HS-", n)
    rows, cols = np.nonzero(used)
    chem = {
        "hazard_source_id": ids[rows],
        "un_number": pool_un[picked[rows, cols]],
        "quantity_t": np.maximum(quantity[rows, cols], 0.001),
    }
    main = pool["name_zh"].to_numpy(dtype=object)[picked[:, 0]]
    unit = np.array(["储罐区", "罐区", "生产装置", "仓库", "装卸区"], dtype=object)[rng.integers(0, 5, n)]
    frame = {"id": ids, "entity_id": table["id"][hosts], "name": table["name"][hosts] + main + unit,
             "people_500m": people}
    graded = grade_sources(pd.DataFrame({"id": ids, "people_500m": people}), pd.DataFrame(chem), chemicals)
    for c in ("alpha", "s_value", "r_value", "grade"):
        frame[c] = graded[c].to_numpy()
    return {"xy": xy, "table": frame, "park_index": ent["park_index"][hosts]}, chem


def _monitoring_points(rng, n, hs, hs_chem, parks, land, chemicals):
    n_src = len(hs["table"]["id"])
    chem = pd.DataFrame(hs_chem)
    chem["detector"] = chemicals["gas_detector"].reindex(chem["un_number"]).to_numpy()
    per_source = chem.groupby("hazard_source_id", sort=False).size().reindex(hs["table"]["id"]).to_numpy()
    base = min(3, n // n_src) if n >= n_src else 0
    counts = np.full(n_src, base)
    if n < n_src:  # fewer points than sources: spread them one each over the first n
        counts[:n] = 1
    else:
        p = (1 + per_source) / (1 + per_source).sum()
        counts += rng.multinomial(n - base * n_src, p)
    source = np.repeat(np.arange(n_src), counts)
    src_id = hs["table"]["id"][source]

    kinds = np.array(list(MONITORING_KIND_P), dtype=object)
    kind = kinds[rng.choice(len(kinds), n, p=np.array(list(MONITORING_KIND_P.values())))]
    has = {d: np.isin(hs["table"]["id"], chem.loc[chem["detector"] == d, "hazard_source_id"].unique())
           for d in ("combustible", "toxic")}
    for detector, k in (("combustible", "combustible_gas"), ("toxic", "toxic_gas")):
        lacking = (kind == k) & ~has[detector][source]
        kind[lacking] = kinds[rng.integers(0, 3, lacking.sum())]  # a process measurement instead

    # the gas each detector watches: one of its source's substances with that detector
    pid = np.arange(n)
    points = pd.DataFrame({"pid": pid, "hazard_source_id": src_id,
                           "detector": np.where(kind == "combustible_gas", "combustible",
                                                np.where(kind == "toxic_gas", "toxic", ""))})
    cand = points[points["detector"] != ""].merge(chem[["hazard_source_id", "detector", "un_number"]],
                                                  on=["hazard_source_id", "detector"])
    cand["key"] = rng.random(len(cand))
    chosen = cand.sort_values(["pid", "key"]).drop_duplicates("pid").set_index("pid")["un_number"]
    substance = np.full(n, None, dtype=object)
    substance[chosen.index.to_numpy()] = chosen.to_numpy()
    oel = chemicals["oel_mg_m3"].reindex(pd.Series(substance).fillna("")).to_numpy(dtype="float64")

    nan = np.full(n, np.nan)
    unit = np.select([kind == "level", kind == "temperature", kind == "pressure", kind == "combustible_gas"],
                     ["m", "°C", "MPa", "%LEL"], "mg/m3").astype(object)
    tank_h = rng.choice([8.0, 10.0, 12.0, 15.0, 18.0, 20.0], n)
    t_op = np.round(rng.uniform(15, 85, n))
    p_range = rng.choice([1.6, 2.5, 4.0, 6.0, 10.0], n)
    toxic_range = _nice_ceil(10 * np.where(np.isfinite(oel), oel, 1.0))  # a detector range of ~10 OEL
    is_ = {k: kind == k for k in MONITORING_KIND_P}
    range_min = np.select([is_["temperature"]], [-40.0], 0.0)
    range_max = np.select([is_["level"], is_["temperature"], is_["pressure"], is_["combustible_gas"]],
                          [tank_h, 200.0, p_range, 100.0], toxic_range)
    high = np.select(
        [is_["level"], is_["temperature"], is_["pressure"], is_["combustible_gas"]],
        [0.85 * tank_h, t_op + 15, 0.75 * p_range, COMBUSTIBLE_HIGH_PCT_LEL], TOXIC_HIGH_OEL * oel)
    high_high = np.select(
        [is_["level"], is_["temperature"], is_["pressure"], is_["combustible_gas"]],
        [0.95 * tank_h, t_op + 25, 0.85 * p_range, COMBUSTIBLE_HIGH_HIGH_PCT_LEL], TOXIC_HIGH_HIGH_OEL * oel)
    low = np.select([is_["level"], is_["pressure"]], [0.10 * tank_h, 0.10 * p_range], np.nan)
    low_low = np.where(is_["level"], 0.05 * tank_h, nan)

    areas = _area_per_point(hs["park_index"][source], parks, land)
    xy = jitter_within(rng, hs["xy"][source], POINT_NEAR_SOURCE_M, areas)
    return {
        "xy": xy,
        "table": {
            "id": _names.numbered("MP-", n), "hazard_source_id": src_id, "kind": kind, "unit": unit,
            "substance_un": substance, "low_low": low_low, "low": low, "high": np.round(high, 3),
            "high_high": np.round(high_high, 3), "range_min": range_min, "range_max": range_max,
        },
    }


# --- restricted zones ----------------------------------------------------------------------


def _nice_ceil(x: np.ndarray) -> np.ndarray:
    """Round up to one significant digit (23 -> 30, 0.42 -> 0.5)."""
    magnitude = 10.0 ** np.floor(np.log10(x))
    return np.ceil(np.round(x / magnitude, 9)) * magnitude


def _restricted_zones(rng, net: RoadNetwork, water_zones, land):
    """Drinking-water zones, a long tunnel and the city core at rush hours; also which road
    edges no hazmat route may use (the tunnel's)."""
    rows = []  # (name, kind, closed_from, closed_to, barred_classes, speed_limit_kmh, geometry)
    for r, zone in zip(RESERVOIRS, water_zones):
        rows.append((f"{r.name}饮用水水源保护区", "water_protection", "00:00", "24:00", WATER_BARRED, np.nan, zone))

    # the tunnel: the bore of the long ordinary road edge nearest its place, closed to all
    # dangerous goods (its portals stay clear of the roads meeting there)
    name, lon, lat = TUNNEL
    mid = (net.node_xy[net.edge_nodes[:, 0]] + net.node_xy[net.edge_nodes[:, 1]]) / 2
    candidates = (net.road_class != "expressway") & (net.length_m > 1200)
    tunnel_edge = int(np.argmin(np.where(candidates, np.hypot(*(mid - np.array(to_metric(lon, lat))).T), np.inf)))
    line = net.lines[tunnel_edge]
    bore = shapely.ops.substring(line, 100.0, line.length - 100.0)
    tunnel = as_multipolygon(shapely.intersection(shapely.buffer(bore, 20.0, cap_style="flat"), land))
    rows.append((name, "tunnel", "00:00", "24:00", ALL_CLASSES, np.nan, tunnel))
    blocked = np.zeros(len(net.length_m), bool)
    blocked[tunnel_edge] = True

    core_name, lon, lat, radius = CITY_CORE
    core = as_multipolygon(shapely.intersection(blob(rng, lon, lat, radius, 1.2, 45), land))
    for label, start, end in (("早高峰", "07:00", "09:00"), ("晚高峰", "17:00", "19:00")):
        rows.append((f"{core_name}（{label}禁行）", "city_core", start, end, ALL_CLASSES, 40.0, core))

    names, kinds, froms, tos, barred, speed, geoms = zip(*rows)
    table = {
        "id": _names.numbered("ZONE-", len(rows), 3), "name": np.array(names, dtype=object),
        "kind": np.array(kinds, dtype=object), "closed_from": np.array(froms, dtype=object),
        "closed_to": np.array(tos, dtype=object), "barred_classes": _object_list(barred),
        "speed_limit_kmh": np.array(speed, dtype="float64"),
    }
    return {"table": table, "geoms": np.array(geoms, dtype=object), "water": np.asarray(water_zones)}, blocked


def _object_list(lists) -> np.ndarray:
    out = np.empty(len(lists), dtype=object)
    out[:] = [list(x) for x in lists]
    return out


def _barred(classes: np.ndarray, barred: list[str]) -> np.ndarray:
    """Whether each class string falls under a barred class ('1' covers '1.1D')."""
    classes = pd.Series(classes, dtype=object).fillna("")
    out = np.zeros(len(classes), bool)
    for b in barred:
        out |= (classes == b).to_numpy() | classes.str.startswith(b + ".").to_numpy()
    return out


# --- vehicles, waybills, routes -------------------------------------------------------------


def _transport(rng, n_veh, ent, land, net: RoadNetwork, blocked, zones, chemicals):
    table = ent["table"]
    cat = table["category"]
    licensed = table["licensed"]
    carriers = np.flatnonzero(licensed & (cat == "transport"))
    size = rng.lognormal(0.0, 1.0, len(carriers))
    carrier_of = carriers[rng.choice(len(carriers), n_veh, p=size / size.sum())]
    carrier_phone = "0574-8" + np.char.mod("%07d", rng.choice(10_000_000, len(table["id"]), replace=False)).astype(object)
    table["phone"] = carrier_phone  # each enterprise's duty phone: a waybill's emergency phone is its carrier's
    xy = jitter_within(rng, ent["xy"][carrier_of], 120.0, land)

    region_p = np.array([p for _, p in PLATE_REGIONS])
    region = np.array([r for r, _ in PLATE_REGIONS], dtype=object)[rng.choice(len(PLATE_REGIONS), n_veh, p=region_p / region_p.sum())]
    code = rng.choice(len(PLATE_CHARS) * 10_000, n_veh, replace=False)
    plate = region + "·" + PLATE_CHARS[code // 10_000] + np.char.mod("%04d", code % 10_000).astype(object)
    tail = rng.choice(4 * 10**9, n_veh, replace=False)
    phone = "01" + np.array(["3", "5", "8", "4"], dtype=object)[tail // 10**9] + np.char.mod("%09d", tail % 10**9).astype(object)
    is_tank = rng.random(n_veh) < TANK_SHARE
    body = np.where(is_tank, "tank", "van").astype(object)

    # goods: tanks carry one liquid or gas; vans one or two packaged goods
    classes = chemicals["hazard_class"]
    un_all = chemicals.index.to_numpy(dtype=object)
    tank_pool = un_all[classes.isin(TANK_CLASSES).to_numpy()]
    # packaged goods: no explosives but 1.4S, which may travel with any class
    van_pool = un_all[(~classes.str.startswith("1") | (classes == "1.4S")).to_numpy()]
    explosives = un_all[classes.str.startswith("1.1").to_numpy()]
    flammable_liquids = un_all[(classes == "3").to_numpy()]

    n_wb = 2 * n_veh  # per vehicle: the previous trip (done), then the live one (active)
    vehicle = np.repeat(np.arange(n_veh), 2)
    status = np.tile(np.array(["done", "active"], dtype=object), n_veh)
    wb_tank = is_tank[vehicle]
    first = np.where(wb_tank, tank_pool[rng.integers(0, len(tank_pool), n_wb)],
                     van_pool[rng.integers(0, len(van_pool), n_wb)])
    # a tank keeps its medium between trips unless it is one of the few that changes
    tanks = np.flatnonzero(is_tank)
    changers = rng.choice(tanks, min(len(tanks), scaled_count(len(tanks) * MEDIUM_CHANGE_SHARE, 1.0)), replace=False) \
        if len(tanks) else np.empty(0, int)
    keep = np.ones(n_veh, bool)
    keep[changers] = False
    active_rows = np.arange(n_veh) * 2 + 1
    first[active_rows[is_tank & keep]] = first[active_rows[is_tank & keep] - 1]
    same = first[active_rows[changers]] == first[active_rows[changers] - 1]
    while same.any():  # redraw until the medium really differs
        first[active_rows[changers[same]]] = tank_pool[rng.integers(0, len(tank_pool), same.sum())]
        same = first[active_rows[changers]] == first[active_rows[changers] - 1]
    second = np.full(n_wb, None, dtype=object)
    two = ~wb_tank & (rng.random(n_wb) < 0.2)
    second[two] = van_pool[rng.integers(0, len(van_pool), two.sum())]
    second[two & (second == first)] = None
    # a few vans mix a 1.1 explosive with a flammable liquid (forbidden, ADR 7.5.2.1)
    vans_active = np.flatnonzero(~wb_tank & (status == "active"))
    n_mixed = min(len(vans_active), scaled_count(MIXED_LOAD_SHARE * n_wb, 1.0))
    mixed = rng.choice(vans_active, n_mixed, replace=False)
    first[mixed] = explosives[rng.integers(0, len(explosives), n_mixed)]
    second[mixed] = flammable_liquids[rng.integers(0, len(flammable_liquids), n_mixed)]

    media = pd.DataFrame({"v": vehicle[wb_tank], "un": first[wb_tank]}).drop_duplicates().sort_values(["v", "un"])
    by_vehicle = media.groupby("v", sort=True)["un"].agg(list).to_dict()
    approved = _object_list([by_vehicle.get(v, []) for v in range(n_veh)])

    # loading at a producer or trader, unloading at a user or trader
    loaders = np.flatnonzero(licensed & np.isin(cat, ["production", "trade"]))
    unloaders = np.flatnonzero(licensed & np.isin(cat, ["use", "trade"]))
    load = loaders[rng.integers(0, len(loaders), n_wb)]
    unload = unloaders[rng.integers(0, len(unloaders), n_wb)]
    clash = load == unload
    while clash.any():
        unload[clash] = unloaders[rng.integers(0, len(unloaders), clash.sum())]
        clash = (load == unload) & (len(unloaders) > 1)

    goods_rows = np.concatenate([np.arange(n_wb), np.flatnonzero(second != None)])  # noqa: E711
    goods_un = np.concatenate([first, second[second != None]])  # noqa: E711
    water_barred = _barred(chemicals["hazard_class"].reindex(goods_un).to_numpy(), WATER_BARRED)
    barred_wb = np.zeros(n_wb, bool)
    np.logical_or.at(barred_wb, goods_rows, water_barred)
    routes, length_m = _routes(net, blocked, zones["water"], ent["xy"][load], ent["xy"][unload], barred_wb)

    # whole seconds from the start of the base day (UTC); the live trip leaves between 05:00
    # and 19:00 local, the previous one ended 2–30 h before
    duration_s = np.round(length_m / (PLANNED_SPEED_KMH / 3.6)).astype(np.int64)
    active_dep_s = np.round(rng.uniform(5 * 3600, 19 * 3600, n_veh) / 60).astype(np.int64) * 60
    gap_s = np.round(rng.uniform(2 * 3600, 30 * 3600, n_veh) / 60).astype(np.int64) * 60
    departure_s = np.empty(n_wb, dtype=np.int64)
    departure_s[1::2] = active_dep_s
    departure_s[0::2] = active_dep_s - gap_s - duration_s[0::2]
    base_s = int(BASE_DAY.timestamp())
    departure = pd.to_datetime(base_s + departure_s, unit="s", utc=True)
    arrival = pd.to_datetime(base_s + departure_s + duration_s, unit="s", utc=True)

    wb_ids = _names.numbered("WB-", n_wb)
    carrier_name = table["name"][carrier_of]
    wb = {
        "id": wb_ids, "vehicle_id": _names.numbered("VEH-", n_veh)[vehicle], "status": status,
        "loading_site_id": table["id"][load], "unloading_site_id": table["id"][unload],
        "consignor": table["name"][load], "consignee": table["name"][unload],
        "carrier": carrier_name[vehicle], "planned_departure": departure, "planned_arrival": arrival,
        "emergency_phone": carrier_phone[carrier_of][vehicle],
        **_actual_times(status, departure, arrival),
    }
    seq = np.concatenate([np.ones(n_wb, int), np.full(len(goods_rows) - n_wb, 2)])
    order = np.lexsort((seq, goods_rows))
    goods_rows, goods_un, seq = goods_rows[order], goods_un[order], seq[order]
    cat_rows = chemicals.reindex(goods_un)
    gclass = cat_rows["hazard_class"].to_numpy(dtype=object)
    q = np.where(wb_tank[goods_rows], rng.uniform(8, 32, len(goods_rows)), rng.uniform(0.5, 15, len(goods_rows)))
    q = np.where(np.char.startswith(gclass.astype(str), "2"), q * 0.6, q)
    q = np.where(np.char.startswith(gclass.astype(str), "1"), rng.uniform(0.1, 3.0, len(goods_rows)), q)
    pg = cat_rows["packing_group"].to_numpy(dtype=object)
    goods = {
        "waybill_id": wb_ids[goods_rows], "seq": seq, "un_number": goods_un,
        "name": cat_rows["name_zh"].to_numpy(dtype=object), "hazard_class": gclass,
        "packing_group": np.where(pg == "", None, pg), "quantity_t": np.round(q, 2),
    }
    vehicles = {
        "id": _names.numbered("VEH-", n_veh), "plate": plate, "carrier": carrier_name, "body": body,
        "approved_media": approved, "terminal_phone": phone, "driver": _names.person_names(rng, n_veh),
        "escort": _names.person_names(rng, n_veh),
        "carrier_id": table["id"][carrier_of],  # the licensed transport enterprise (incidents reach it)
    }
    return {"table": vehicles, "xy": xy}, {"table": wb, "routes": routes}, goods


def _routes(net: RoadNetwork, blocked, water_zones, start_xy, end_xy, avoid_water):
    """Quickest road routes between sites, as metric LineStrings: site, its nearest road
    node, the road nodes, the destination's node, the destination. Goods barred from the
    drinking-water zones avoid every road touching them where another way exists."""
    o, d = net.nearest_node(start_xy), net.nearest_node(end_xy)
    full = net.travel_graph(blocked)
    water = shapely.intersects(net.lines, shapely.union_all(water_zones))
    strict = net.travel_graph(blocked | water)
    nodes_parts, owner_parts = [], []
    use_strict = avoid_water.copy()
    idx_s = np.flatnonzero(use_strict)
    if len(idx_s):
        nodes_s, owner_s, ok = shortest_paths(strict, o[idx_s], d[idx_s])
        use_strict[idx_s[~ok]] = False  # no way round: take the ordinary route
        keep = ok[owner_s]
        nodes_parts.append(nodes_s[keep])
        owner_parts.append(idx_s[owner_s[keep]])
    idx_f = np.flatnonzero(~use_strict)
    if len(idx_f):
        nodes_f, owner_f, ok = shortest_paths(full, o[idx_f], d[idx_f])
        if not ok.all():
            raise RuntimeError("road network is not connected between some sites")
        nodes_parts.append(nodes_f)
        owner_parts.append(idx_f[owner_f])
    nodes = np.concatenate(nodes_parts)
    owner = np.concatenate(owner_parts)
    order = np.argsort(owner, kind="stable")  # paths stay in their own order
    nodes, owner = nodes[order], owner[order]

    n = len(start_xy)
    count = np.bincount(owner, minlength=n)
    size = count + 2
    offset = np.cumsum(size) - size
    coords = np.empty((size.sum(), 2))
    coords[offset] = start_xy
    coords[offset + size - 1] = end_xy
    first_of = np.cumsum(count) - count
    rank = np.arange(len(nodes)) - first_of[owner]
    coords[offset[owner] + 1 + rank] = net.node_xy[nodes]
    lines = shapely.linestrings(coords, indices=np.repeat(np.arange(n), size))
    return lines, shapely.length(lines)


# --- facilities and sensitive sites --------------------------------------------------------


def _near_roads(rng, net: RoadNetwork, centres_xy, spreads, weights, n, area, offset_m):
    """n points beside road nodes around weighted centres, kept in `area`."""
    raw, _ = sample_around(rng, centres_xy, spreads, weights, n, area)
    node = net.node_xy[net.nearest_node(raw)]
    usable = shapely.contains_xy(area, node[:, 0], node[:, 1])
    return jitter_within(rng, np.where(usable[:, None], node, raw), offset_m, area)


def _facilities(rng, counts, net: RoadNetwork, parks, free_land, district_geoms, districts):
    town_xy, spread, weight, town_name = _town_arrays()
    park_xy = _xy(shapely.centroid(parks["geoms"]))
    industrial_xy = np.concatenate([park_xy, town_xy])
    industrial_spread = np.concatenate([np.full(len(park_xy), 2500.0), spread * 1.5])
    industrial_w = np.concatenate([parks["weights"] * 30, weight])
    out = {}

    n = counts["wash_stations"]
    xy = _near_roads(rng, net, industrial_xy, industrial_spread, industrial_w, n, free_land, 60.0)
    trade = _names.combos(rng, n)
    out["wash_stations"] = ({"id": _names.numbered("WS-", n), "name": "宁波" + trade + "槽罐车清洗站",
                             "district_adcode": _district_codes(xy, district_geoms, districts)}, xy)

    n = counts["parking_lots"]
    xy = _near_roads(rng, net, industrial_xy, industrial_spread, industrial_w, n, free_land, 80.0)
    place = town_name[_nearest_town(xy)]
    out["parking_lots"] = ({"id": _names.numbered("PL-", n),
                            "name": place + _names.combos(rng, n) + "危险货物运输车辆专用停车场",
                            "capacity": (rng.integers(2, 31, n) * 10).astype(np.int64)}, xy)

    # service areas: evenly along the expressways, on their own segments
    n = counts["service_areas"]
    xy, road_index = _service_area_points(net, n)
    place = pd.Series(town_name[_nearest_town(xy)])
    nth = place.groupby(place).cumcount().to_numpy()  # a second area near the same town: 宁海南服务区
    place = place.to_numpy(dtype=object) + np.array(["", "南", "北", "东", "西"] * 4, dtype=object)[nth % 20]
    road_ids = _names.numbered("ROAD-", len(net.length_m))
    out["service_areas"] = ({"id": _names.numbered("SA-", n), "name": place + "服务区",
                             "road_id": road_ids[road_index]}, xy)

    n = counts["repair_shops"]
    xy = _near_roads(rng, net, town_xy, spread * 1.5, weight, n, free_land, 100.0)
    out["repair_shops"] = ({"id": _names.numbered("RS-", n),
                            "name": "宁波" + _names.combos(rng, n) + "危险货物运输车辆维修有限公司"}, xy)
    return out


def _service_area_points(net: RoadNetwork, n: int):
    paths = [p for _, p in net.expressway_paths]
    u = np.concatenate([p[:-1] for p in paths])
    v = np.concatenate([p[1:] for p in paths])
    edges = net.edge_index(u, v)
    # skip repeats: expressways sharing a stretch count it once
    _, first = np.unique(edges, return_index=True)
    keep = np.sort(first)
    u, v, edges = u[keep], v[keep], edges[keep]
    seg = net.length_m[edges]
    end = np.cumsum(seg)
    at = (np.arange(n) + 0.5) * end[-1] / n
    k = np.searchsorted(end, at)
    frac = 1.0 - (end[k] - at) / seg[k]
    frac = np.clip(frac, 0.1, 0.9)
    xy = net.node_xy[u[k]] + (net.node_xy[v[k]] - net.node_xy[u[k]]) * frac[:, None]
    return xy, edges[k]


# A done trip that was over before the demo day's traffic (05:00 local; the simulator starts at
# 06:00) records when it really left and unloaded: a few minutes after plan (synthetic, no draw
# from the generators, so every other value stays as it was). Later done trips are driven live.
ACTUAL_BEFORE = pd.Timedelta(hours=5)


def _actual_times(status: np.ndarray, departure: pd.DatetimeIndex, arrival: pd.DatetimeIndex) -> dict:
    row = np.arange(len(status))
    recorded = (status == "done") & np.asarray(arrival < BASE_DAY + ACTUAL_BEFORE)
    late_departure = pd.to_timedelta((row * 7) % 16, unit="min")  # 0-15 min
    late_unloading = pd.to_timedelta(10 + (row * 11) % 31, unit="min")  # 10-40 min
    actual_departure = pd.Series(departure + late_departure).where(recorded)
    # a late start never shortens the planned trip: unloading ends after the actual departure
    unloading = np.maximum(arrival + late_unloading, departure + late_departure + (arrival - departure))
    actual_unloading = pd.Series(unloading).where(recorded)
    return {"actual_departure": actual_departure.to_numpy(), "actual_unloading": actual_unloading.to_numpy()}


# Synthetic occupancy of the demo's sensitive sites by kind (people: pupils, children, beds,
# residents, staff); not from any statistic. A water protection zone holds nobody.
SITE_OCCUPANCY_RANGE = {
    "school": (800, 3000), "kindergarten": (150, 400), "hospital": (200, 2000), "elderly_home": (50, 400),
    "residential": (2000, 15000), "water_protection": (0, 0), "government": (100, 800),
}


def _sensitive_sites(rng, counts, ent, parks, free_land, water_zones):
    town_xy, spread, weight, town_name = _town_arrays()
    table = ent["table"]
    people = weight ** 1.3
    area = shapely.difference(free_land, shapely.union_all(parks["geoms"]))
    names, kinds, geoms = [], [], []
    # schools and hospitals that use chemicals are also protected targets
    for kind in ("school", "hospital"):
        mine = (~table["licensed"]) & (table["category"] == kind)
        names.append(table["name"][mine]), kinds.append(np.full(mine.sum(), kind, dtype=object))
        geoms.append(shapely.points(ent["xy"][mine]))
    for kind, key, words in (
        ("kindergarten", "kindergartens", ["幼儿园", "实验幼儿园", "中心幼儿园"]),
        ("elderly_home", "elderly_homes", ["敬老院", "养老院", "颐养院", "老年公寓"]),
        ("government", "government_sites", ["人民政府", "街道办事处", "社区居委会", "便民服务中心"]),
    ):
        n = counts[key]
        xy, owner = sample_around(rng, town_xy, spread, people, n, area)
        suffix = np.array(words, dtype=object)[rng.integers(0, len(words), n)]
        names.append(town_name[owner] + _names.combos(rng, n) + suffix)
        kinds.append(np.full(n, kind, dtype=object))
        geoms.append(shapely.points(xy))

    # residential areas: small blocks around town centres, kept off parks and water zones
    n = counts["residential_areas"]
    centre, owner = sample_around(rng, town_xy, spread, people, n, area)
    radius = rng.uniform(150, 450, n)
    block = shapely.buffer(shapely.points(centre), radius, quad_segs=2)
    block = shapely.intersection(block, area)
    suffix = np.array(["小区", "花园", "家园", "新村", "公寓", "苑"], dtype=object)[rng.integers(0, 6, n)]
    names.append(town_name[owner] + _names.combos(rng, n) + suffix)
    kinds.append(np.full(n, "residential", dtype=object))
    geoms.append(np.array([as_multipolygon(g) for g in block], dtype=object))  # a few hundred

    names.append(np.array([f"{r.name}饮用水水源保护区" for r in RESERVOIRS], dtype=object))
    kinds.append(np.full(len(RESERVOIRS), "water_protection", dtype=object))
    geoms.append(np.asarray(water_zones, dtype=object))

    names_a = np.concatenate(names)
    kinds_a = np.concatenate(kinds)
    # Occupancy (pupils, beds, residents): synthetic, uniform in a plausible range per kind;
    # drawn last from this generator so every draw above stays as it was.
    low, high = np.array([SITE_OCCUPANCY_RANGE[k] for k in kinds_a]).T
    occupancy = np.rint(low + rng.random(len(kinds_a)) * (high - low)).astype("int64")
    return {
        "geoms": np.concatenate(geoms),
        "table": {"id": _names.numbered("SITE-", len(names_a)), "name": names_a, "kind": kinds_a,
                  "occupancy": occupancy},
    }


def _roads_layer(net: RoadNetwork) -> gpd.GeoDataFrame:
    m = len(net.length_m)
    return _layer("roads", {
        "id": _names.numbered("ROAD-", m), "name": net.name, "road_class": net.road_class,
        "speed_limit_kmh": net.speed_kmh,
    }, net.lines)
