"""The demo world: counts, determinism, geography, grading, routes and waybills."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import shapely
from scipy import sparse
from scipy.sparse import csgraph

from data.demo import FIXED_COUNTS, REAL_COUNTS, build_world, scaled_count
from data.reference import load_chemicals, load_districts
from spatial.crs import geometry_to_metric
from spatial.grading import grade_sources
from spatial.model import DEPARTMENT_KINDS, LAYER_SPECS, WORLD_SPECS

SEED = 20211
SCALE = 0.04


@pytest.fixture(scope="module")
def world():
    return build_world(SEED, SCALE)


@pytest.fixture(scope="module")
def full_world():
    return build_world(SEED, 1.0)


@pytest.fixture(scope="module")
def land():
    geom = shapely.union_all(load_districts().geometry.to_numpy())
    shapely.prepare(geom)
    return geom


def expected_counts(scale: float) -> dict[str, int]:
    c = {k: scaled_count(v, scale) for k, v in REAL_COUNTS.items()}
    return {
        "districts": 10,
        "parks": FIXED_COUNTS["parks"],
        "entities": c["licensed_entities"] + c["unlicensed_entities"],
        "hazard_sources": c["hazard_sources"],
        "monitoring_points": c["monitoring_points"],
        "vehicles": c["vehicles"],
        "waybills": 2 * c["vehicles"],
        "active_waybills": c["vehicles"],
        "wash_stations": c["wash_stations"],
        "parking_lots": c["parking_lots"],
        "service_areas": c["service_areas"],
        "repair_shops": c["repair_shops"],
        "restricted_zones": FIXED_COUNTS["restricted_zones"],
    }


def check_counts(w, scale):
    counts = w.counts()
    for name, n in expected_counts(scale).items():
        assert counts[name] == n, name
    c = {k: scaled_count(v, scale) for k, v in REAL_COUNTS.items()}
    assert int(w.entities["licensed"].sum()) == c["licensed_entities"]
    kinds = w.sensitive_sites["kind"].value_counts()
    unlicensed = w.entities[~w.entities["licensed"]]["category"].value_counts()
    assert kinds["school"] == unlicensed["school"]  # every school using chemicals is protected
    assert kinds["hospital"] == unlicensed["hospital"]
    assert kinds["kindergarten"] == c["kindergartens"]
    assert kinds["elderly_home"] == c["elderly_homes"]
    assert kinds["government"] == c["government_sites"]
    assert kinds["residential"] == c["residential_areas"]
    assert kinds["water_protection"] == FIXED_COUNTS["water_protection"]


def test_counts_at_small_scale(world):
    check_counts(world, SCALE)


def test_full_scale_counts_and_grades(full_world):
    w = full_world
    check_counts(w, 1.0)
    assert len(w.entities) == 7046 and int(w.entities["licensed"].sum()) == 2936
    assert len(w.hazard_sources) == 371 and len(w.monitoring_points) == 5196 and len(w.vehicles) == 3419
    grades = w.hazard_sources["grade"].value_counts()
    assert set(grades.index) == {1, 2, 3, 4}
    assert grades[1] < grades[4] and grades[1] < 0.15 * len(w.hazard_sources)  # grade 1 rare, 4 common
    assert 2000 <= len(w.roads) <= 12000  # a few thousand segments
    share = w.entities.loc[w.entities["licensed"], "park_id"].notna().mean()
    assert share >= 0.60


def test_columns_and_ids_follow_the_spec(world):
    for name, table in world.tables().items():
        spec = WORLD_SPECS[name]
        expected = spec.columns + (["geometry"] if spec.is_layer else [])
        assert list(table.columns) == expected, name
        if spec.is_layer:
            assert table.crs.to_epsg() == 4326
            assert not table.geometry.is_empty.any() and table.geometry.is_valid.all(), name
            ids = table["id"]
            assert ids.is_unique, name
            assert ids.str.startswith(spec.id_prefix).all(), name
            if name != "districts":  # DIST-<adcode>; the others are zero-padded numbers
                digits = ids.str.slice(len(spec.id_prefix))
                assert digits.str.fullmatch(r"\d+").all() and digits.str.len().nunique() == 1, name
        for f in spec.fields:
            column = table[f.name]
            if f.required:
                assert column.notna().all(), f"{name}.{f.name}"
            if f.kind == "strlist":
                assert column.map(lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)).all()
    assert isinstance(world.waybills["planned_departure"].dtype, pd.DatetimeTZDtype)
    assert str(world.waybills["planned_departure"].dt.tz) == "UTC"


def test_same_seed_same_world_other_seed_other_world(world):
    again = build_world(SEED, SCALE)
    for name, table in world.tables().items():
        other = again.table(name)
        pd.testing.assert_frame_equal(
            pd.DataFrame(table).drop(columns="geometry", errors="ignore"),
            pd.DataFrame(other).drop(columns="geometry", errors="ignore"),
            obj=name,
        )
        if "geometry" in table:
            assert shapely.equals_exact(table.geometry.to_numpy(), other.geometry.to_numpy(), 0).all(), name
    different = build_world(SEED + 1, SCALE)
    assert not shapely.equals_exact(world.entities.geometry.to_numpy(), different.entities.geometry.to_numpy(), 1e-9).all()
    assert not world.waybills["loading_site_id"].equals(different.waybills["loading_site_id"])


def test_everything_lies_on_land(world, land):
    for name, table in world.tables().items():
        if name == "districts" or name not in LAYER_SPECS:
            continue
        outside = ~shapely.covered_by(table.geometry.to_numpy(), land)
        assert not outside.any(), f"{name}: {table['id'][outside].tolist()[:5]} leave the land"


def test_nothing_in_xiangshan_harbour(world):
    # mid-harbour, between Xiangshan and Yinzhou: inside the district outlines, yet sea
    harbour = shapely.buffer(shapely.Point(121.72, 29.585), 0.005)
    for name in ("roads", "entities", "waybills", "sensitive_sites"):
        assert not world.table(name).geometry.intersects(harbour).any(), name


def test_licensed_enterprises_mostly_in_their_parks(world):
    lic = world.entities[world.entities["licensed"]]
    assert lic["park_id"].notna().mean() >= 0.60
    assert set(lic["category"]) == {"production", "use", "trade", "transport", "disposal"}
    parks = world.parks.set_index("id").geometry
    in_park = lic[lic["park_id"].notna()]
    assert shapely.covered_by(in_park.geometry.to_numpy(), parks.reindex(in_park["park_id"]).to_numpy()).all()
    unl = world.entities[~world.entities["licensed"]]
    assert unl["park_id"].isna().all() and set(unl["category"]) == {"school", "hospital", "research"}
    assert world.entities["name"][world.entities["licensed"]].is_unique


def test_hazard_sources_are_major_and_graded_by_gb18218(world):
    hs, chem = world.hazard_sources, world.hazard_source_chemicals
    catalogue = load_chemicals()
    assert (hs["s_value"] >= 1.0).all()
    per_source = chem.groupby("hazard_source_id").size().reindex(hs["id"])
    assert per_source.between(1, 4).all()
    assert catalogue.loc[chem["un_number"], "gb18218_q_t"].notna().all()
    graded = grade_sources(hs[["id", "people_500m"]], chem, catalogue)
    np.testing.assert_allclose(hs["s_value"], graded["s_value"])
    np.testing.assert_allclose(hs["r_value"], graded["r_value"])
    np.testing.assert_array_equal(hs["alpha"], graded["alpha"])
    np.testing.assert_array_equal(hs["grade"], graded["grade"])
    # every grade and every α band occurs once the world has ≥ 5 sources (by construction)
    assert len(hs) >= 5
    assert set(hs["grade"]) == {1, 2, 3, 4}
    assert set(hs["alpha"]) == {0.5, 1.0, 1.2, 1.5, 2.0}
    # in a production or storage enterprise, inside its park when it has one
    hosts = world.entities.set_index("id").loc[hs["entity_id"]]
    assert hosts["category"].isin(["production", "trade"]).all()
    parks = world.parks.set_index("id").geometry
    in_park = hosts["park_id"].notna().to_numpy()
    assert shapely.covered_by(hs.geometry.to_numpy()[in_park],
                              parks.reindex(hosts["park_id"][in_park]).to_numpy()).all()


def test_monitoring_points_watch_their_sources(world):
    mp, hs, chem = world.monitoring_points, world.hazard_sources, world.hazard_source_chemicals
    catalogue = load_chemicals()
    assert set(hs["id"]) <= set(mp["hazard_source_id"])  # every source has some
    src = hs.set_index("id").geometry.reindex(mp["hazard_source_id"])
    d = shapely.distance(geometry_to_metric(mp.geometry.to_numpy()), geometry_to_metric(src.to_numpy()))
    assert d.max() <= 150.0 + 1e-6
    gas = mp[mp["kind"].isin(["combustible_gas", "toxic_gas"])]
    assert mp["substance_un"][~mp.index.isin(gas.index)].isna().all()
    own = set(zip(chem["hazard_source_id"], chem["un_number"]))
    assert all(pair in own for pair in zip(gas["hazard_source_id"], gas["substance_un"]))
    detector = catalogue.loc[gas["substance_un"], "gas_detector"].to_numpy()
    assert (detector == np.where(gas["kind"] == "combustible_gas", "combustible", "toxic")).all()
    comb = mp[mp["kind"] == "combustible_gas"]
    assert (comb["unit"] == "%LEL").all() and (comb["high"] == 25).all() and (comb["high_high"] == 50).all()
    tox = mp[mp["kind"] == "toxic_gas"]
    oel = catalogue.loc[tox["substance_un"], "oel_mg_m3"].to_numpy()
    np.testing.assert_allclose(tox["high"], oel, rtol=1e-3)
    np.testing.assert_allclose(tox["high_high"], 2 * oel, rtol=1e-3)
    for level in ("low_low", "low", "high", "high_high"):
        v = mp[level]
        assert ((v.isna()) | ((v >= mp["range_min"]) & (v <= mp["range_max"]))).all(), level
    assert (mp["high"] < mp["high_high"]).all()


def test_roads_form_one_network_with_hazmat_limits(world):
    roads = world.roads
    coords = shapely.get_coordinates(roads.geometry.to_numpy())
    assert len(coords) == 2 * len(roads)  # straight segments between nodes
    _, node = np.unique(np.round(coords, 9), axis=0, return_inverse=True)
    node = node.reshape(-1, 2)
    n = node.max() + 1
    graph = sparse.coo_matrix((np.ones(len(node)), (node[:, 0], node[:, 1])), shape=(n, n))
    assert csgraph.connected_components(graph, directed=False)[0] == 1
    expressway = roads["road_class"] == "expressway"
    assert (roads.loc[expressway, "speed_limit_kmh"] == 80).all()
    assert (roads.loc[~expressway, "speed_limit_kmh"] <= 60).all()
    assert (roads["speed_limit_kmh"] == 40).any()
    assert roads.loc[expressway, "name"].str.contains("高速").all()
    assert {"G15沈海高速", "G1501宁波绕城高速"} <= set(roads.loc[expressway, "name"])
    sa = world.service_areas.merge(roads[["id", "road_class", "geometry"]], left_on="road_id", right_on="id")
    assert len(sa) == len(world.service_areas) and (sa["road_class"] == "expressway").all()
    on_road = shapely.distance(geometry_to_metric(sa["geometry_x"].to_numpy()), geometry_to_metric(sa["geometry_y"].to_numpy()))
    assert on_road.max() < 1.0


def test_routes_follow_the_roads_between_the_sites(world):
    wb = world.waybills
    roads_m = geometry_to_metric(world.roads.geometry.to_numpy())
    tree = shapely.STRtree(roads_m)
    routes_m = geometry_to_metric(wb.geometry.to_numpy())
    coords, which = shapely.get_coordinates(routes_m, return_index=True)
    first = np.r_[True, which[1:] != which[:-1]]
    last = np.r_[which[1:] != which[:-1], True]
    inner = ~first & ~last
    _, dist = tree.query_nearest(shapely.points(coords[inner]), return_distance=True, all_matches=False)
    assert dist.max() < 1.0  # every vertex between the two stubs is a road node
    # so is every segment between them: its midpoint lies on a road too
    inner_next = inner[:-1] & inner[1:]
    mids = (coords[:-1][inner_next] + coords[1:][inner_next]) / 2
    _, dist = tree.query_nearest(shapely.points(mids), return_distance=True, all_matches=False)
    assert dist.max() < 1.0
    sites = world.entities.set_index("id").geometry
    starts = geometry_to_metric(sites.reindex(wb["loading_site_id"]).to_numpy())
    ends = geometry_to_metric(sites.reindex(wb["unloading_site_id"]).to_numpy())
    assert shapely.distance(shapely.points(coords[first]), starts).max() < 0.01
    assert shapely.distance(shapely.points(coords[last]), ends).max() < 0.01
    # the stubs from the sites to the network are short
    stub_start = np.hypot(*(coords[np.flatnonzero(first) + 1] - coords[first]).T)
    assert np.percentile(stub_start, 95) < 2500


def test_each_vehicle_has_one_live_and_one_previous_waybill(world):
    wb, veh = world.waybills, world.vehicles
    by_status = wb.groupby(["vehicle_id", "status"]).size().unstack(fill_value=0)
    assert set(by_status.index) == set(veh["id"])
    assert (by_status["active"] == 1).all() and (by_status["done"] == 1).all()
    active = wb[wb["status"] == "active"].set_index("vehicle_id")
    done = wb[wb["status"] == "done"].set_index("vehicle_id").reindex(active.index)
    assert (done["planned_arrival"] < active["planned_departure"]).all()
    base = pd.Timestamp("2026-11-02", tz="Asia/Shanghai")
    local = active["planned_departure"].dt.tz_convert("Asia/Shanghai")
    assert ((local >= base) & (local < base + pd.Timedelta(days=1))).all()
    length_km = shapely.length(geometry_to_metric(wb.geometry.to_numpy())) / 1000
    hours = (wb["planned_arrival"] - wb["planned_departure"]).dt.total_seconds() / 3600
    np.testing.assert_allclose(hours, length_km / 50.0, atol=1 / 3600)
    loading = world.entities.set_index("id").loc[wb["loading_site_id"]]
    unloading = world.entities.set_index("id").loc[wb["unloading_site_id"]]
    assert loading["licensed"].all() and loading["category"].isin(["production", "trade"]).all()
    assert unloading["licensed"].all() and unloading["category"].isin(["use", "trade"]).all()
    assert (wb["loading_site_id"] != wb["unloading_site_id"]).all()
    assert (wb["consignor"].to_numpy() == loading["name"].to_numpy()).all()


def test_vehicles(world, land):
    veh = world.vehicles
    assert veh["plate"].is_unique and veh["plate"].str.fullmatch(r"[\u4e00-\u9fff][A-Z]?·[A-Z0-9]\d{4}").all()
    assert veh["plate"].str.startswith("浙B").mean() > 0.5
    assert veh["terminal_phone"].is_unique and veh["terminal_phone"].str.fullmatch(r"\d{12}").all()
    assert set(veh["body"]) <= {"tank", "van"}
    carriers = world.entities[world.entities["category"] == "transport"]
    assert set(veh["carrier"]) <= set(carriers["name"])
    vans = veh["body"] == "van"
    assert (veh.loc[vans, "approved_media"].map(len) == 0).all()
    goods = world.waybill_goods.merge(world.waybills[["id", "vehicle_id"]], left_on="waybill_id", right_on="id")
    tank_goods = goods[goods["vehicle_id"].isin(veh.loc[~vans, "id"])]
    approved = veh.set_index("id")["approved_media"]
    assert all(un in approved[v] for v, un in zip(tank_goods["vehicle_id"], tank_goods["un_number"]))


def test_goods_mixed_loads_and_medium_changes(world):
    goods, wb, veh = world.waybill_goods, world.waybills, world.vehicles
    catalogue = load_chemicals()
    assert (goods["hazard_class"].to_numpy() == catalogue.loc[goods["un_number"], "hazard_class"].to_numpy()).all()
    assert (goods["quantity_t"] > 0).all()
    assert set(goods["waybill_id"]) == set(wb["id"])
    assert goods.groupby("waybill_id")["seq"].apply(lambda s: list(s) == list(range(1, len(s) + 1))).all()
    explosive = goods["hazard_class"].str.startswith("1.1")
    flammable = goods["hazard_class"] == "3"
    mixed = set(goods.loc[explosive, "waybill_id"]) & set(goods.loc[flammable, "waybill_id"])
    assert len(mixed) == max(1, round(0.02 * len(wb)))
    medium = goods[goods["seq"] == 1].merge(wb[["id", "vehicle_id", "status"]], left_on="waybill_id", right_on="id")
    medium = medium.pivot(index="vehicle_id", columns="status", values="un_number")
    tanks = veh.loc[veh["body"] == "tank", "id"]
    changed = (medium.loc[tanks, "active"] != medium.loc[tanks, "done"]).sum()
    assert changed == max(1, round(0.05 * len(tanks)))


def test_restricted_zones_and_sensitive_sites(world):
    zones = world.restricted_zones
    assert zones["closed_from"].str.fullmatch(r"\d\d:\d\d").all() and zones["closed_to"].str.fullmatch(r"\d\d:\d\d").all()
    water = zones[zones["kind"] == "water_protection"]
    assert len(water) == 5 and all(set(b) >= {"1", "2.3", "6.1", "7", "8"} for b in water["barred_classes"])
    assert {"横山水库", "皎口水库", "周公宅水库", "亭下水库", "白溪水库"} == {re.sub("饮用水.*", "", n) for n in water["name"]}
    core = zones[zones["kind"] == "city_core"]
    assert set(zip(core["closed_from"], core["closed_to"])) == {("07:00", "09:00"), ("17:00", "19:00")}
    assert (core["speed_limit_kmh"] == 40).all()
    assert (zones["kind"] == "tunnel").sum() == 1
    # no planned route goes through the tunnel, none with water-barred goods through a water zone
    tunnel = zones.loc[zones["kind"] == "tunnel", "geometry"].iloc[0]
    assert not world.waybills.geometry.intersects(tunnel).any()
    goods = world.waybill_goods
    barred_goods = goods["hazard_class"].map(lambda c: any(c == b or c.startswith(b + ".") for b in water["barred_classes"].iloc[0]))
    barred_routes = world.waybills[world.waybills["id"].isin(goods.loc[barred_goods, "waybill_id"])]
    assert len(barred_routes) > 0
    assert not barred_routes.geometry.intersects(shapely.union_all(water.geometry.to_numpy())).any()
    sites = world.sensitive_sites
    polygonal = sites["kind"].isin(["residential", "water_protection"])
    assert sites.geometry[polygonal].geom_type.isin(["Polygon", "MultiPolygon"]).all()
    assert (sites.geometry[~polygonal].geom_type == "Point").all()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="scale"):
        build_world(1, 0)
    with pytest.raises(ValueError, match="gb18218_q_t"):
        build_world(1, 0.01, chemicals=load_chemicals().drop(columns="gb18218_q_t"))


def test_departments_routing_and_carriers(world):
    """The city's 15 departments and a district office per district; every vehicle's carrier is a
    licensed transport enterprise; every routing role reaches a department kind the world has."""
    departments = world.departments
    assert departments["id"].is_unique and departments["id"].str.startswith("DEPT-").all()
    city = departments[departments["district_adcode"].isna()]
    assert len(city) == 15 and city["kind"].is_unique and "district_office" not in set(city["kind"])
    assert set(departments["kind"]) <= set(DEPARTMENT_KINDS)
    offices = departments[departments["kind"] == "district_office"]
    assert sorted(offices["district_adcode"]) == sorted(world.districts["adcode"])
    entities = world.entities.set_index("id")
    carriers = entities.loc[world.vehicles["carrier_id"]]
    assert carriers["licensed"].all() and (carriers["category"] == "transport").all()
    assert (carriers["name"].to_numpy() == world.vehicles["carrier"].to_numpy()).all()
    roles = set(world.routing["role"])
    assert roles - {"carrier", "plant", "district_office"} <= set(city["kind"])
    assert world.routing["id"].is_unique
