"""The risk score (spatial/risk.py): its parts, its properties (monotone, batch-split free,
parents = sum of children), its bands, and the incremental grid against a full recount."""

from __future__ import annotations

import functools

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from shapely.geometry import Point

from spatial.h3cells import (
    H3_RES_GRID_FINEST,
    RISK_GRID_RESOLUTIONS,
    cell_ints,
    parent_cells,
)
from spatial.model import World
from spatial.risk import (
    EXPOSURE,
    PARTS,
    SCORE_SCALE,
    RiskGrid,
    RiskWeights,
    bands,
    class_factors,
    explain,
    protective_distance_m,
    score_rows,
)

LON0, LAT0 = 121.55, 29.87  # Ningbo
M_PER_DEG_LAT = 111_000.0


@functools.cache
def _chemicals() -> pd.DataFrame:
    from data.reference import load_chemicals

    return load_chemicals()


def small_world(sites=(), sources=()) -> World:
    """A World with some sensitive sites [(id, kind, occupancy, lon, lat)] and hazard sources
    [(id, grade, r, lon, lat, un)], the real chemical catalogue."""
    import geopandas as gpd

    world = World.empty(chemicals=_chemicals())
    if sites:
        world.sensitive_sites = gpd.GeoDataFrame({
            "id": [s[0] for s in sites], "name": [s[0] for s in sites], "kind": [s[1] for s in sites],
            "occupancy": pd.array([s[2] for s in sites], dtype="Int64"),
        }, geometry=[Point(s[3], s[4]) for s in sites], crs="EPSG:4326")
    if sources:
        world.hazard_sources = gpd.GeoDataFrame({
            "id": [s[0] for s in sources], "entity_id": "ENT-1", "name": "x", "people_500m": 10, "alpha": 1.0,
            "s_value": 2.0, "r_value": [float(s[2]) for s in sources], "grade": [s[1] for s in sources],
        }, geometry=[Point(s[3], s[4]) for s in sources], crs="EPSG:4326")
        world.hazard_source_chemicals = pd.DataFrame({
            "hazard_source_id": [s[0] for s in sources], "un_number": [s[5] for s in sources], "quantity_t": 10.0})
    return world


def trucks(rows) -> pd.DataFrame:
    """[(vehicle_id, lon, lat, cargo_state, hazard_class, un_number)]"""
    return pd.DataFrame(list(rows), columns=["vehicle_id", "lon", "lat", "cargo_state", "hazard_class", "un_number"])


def subjects(rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["subject_id", "lon", "lat", "severity"])


def fixed(table: pd.DataFrame) -> pd.DataFrame:
    """Scores as the exact integers they are summed in."""
    return (table[list(PARTS)] * SCORE_SCALE).round().astype("int64")


# -- h3 helpers --------------------------------------------------------------------------------

def test_vectorised_cells_and_parents_agree_with_h3():
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(120.8, 122.3, 300), rng.uniform(28.9, 30.4, 300)
    cells = cell_ints(lon, lat, H3_RES_GRID_FINEST)
    assert [format(int(c), "x") for c in cells[:50]] == [
        h3.latlng_to_cell(y, x, H3_RES_GRID_FINEST) for x, y in zip(lon[:50], lat[:50])]
    for res in RISK_GRID_RESOLUTIONS:
        assert [format(int(c), "x") for c in parent_cells(cells, res)] == [
            h3.cell_to_parent(format(int(c), "x"), res) for c in cells]
    assert cell_ints([np.nan], [30.0], 9).tolist() == [0]


# -- the parts ---------------------------------------------------------------------------------

def test_each_part_from_its_items():
    world = small_world(sources=[("HS-1", 1, 120.0, LON0, LAT0, "1203")])
    grid = RiskGrid(world)
    grid.apply(trucks=trucks([("VEH-1", LON0 + 0.2, LAT0, "loaded", "2.3", "1017")]),
               alarms=subjects([("MP-1", LON0 - 0.2, LAT0, 1)]),
               incidents=subjects([("VEH-9", LON0, LAT0 + 0.2, 2)]))
    w = RiskWeights()
    table = grid.scores(H3_RES_GRID_FINEST)
    cell = lambda lon, lat: cell_ints([lon], [lat], H3_RES_GRID_FINEST)[0]  # noqa: E731
    assert table.loc[cell(LON0, LAT0), "hazard"] == pytest.approx(w.hazard_grade_pts[0] + w.hazard_per_r * 120)
    assert table.loc[cell(LON0 + 0.2, LAT0), "trucks"] == pytest.approx(w.truck_cargo_pts["loaded"] * w.acute_factor)
    assert table.loc[cell(LON0 - 0.2, LAT0), "alarms"] == w.alarm_pts[0]
    assert table.loc[cell(LON0, LAT0 + 0.2), "incidents"] == w.incident_pts[1]
    assert (table["score"] == table[list(PARTS)].sum(axis=1)).all()


def test_class_factors_weigh_acute_cargo_most():
    w = RiskWeights()
    f = class_factors(["2.3", "6.1", "1.1D", "3", "2.1", "8", None, "9"], w)
    assert f.tolist() == [w.acute_factor] * 3 + [w.flammable_factor] * 2 + [w.other_factor] * 3
    assert w.acute_factor > w.flammable_factor > w.other_factor


def test_protective_distance_from_the_catalogue():
    from data.reference import load_chemicals

    d = protective_distance_m(["1017", "1203", "9999", None], load_chemicals(), 100.0)
    assert d[0] == 300  # chlorine: ERG small spill, day (DOMAIN.md §7)
    assert d[2] == d[3] == 100.0  # unknown: the default


def test_exposure_reaches_sites_within_the_cargos_protective_distance_weighted_by_people():
    # chlorine: 300 m by day; a school 250 m away is reached, a hospital 400 m away is not
    school = ("SITE-1", "school", 2000, LON0, LAT0 + 250 / M_PER_DEG_LAT)
    hospital = ("SITE-2", "hospital", 1000, LON0, LAT0 - 400 / M_PER_DEG_LAT)
    grid = RiskGrid(small_world(sites=[school, hospital]))
    grid.apply(trucks=trucks([("VEH-1", LON0, LAT0, "loaded", "2.3", "1017")]))
    rows = grid.rows()
    exposure = rows[rows["part"] == EXPOSURE]
    assert exposure["item_id"].tolist() == ["SITE-1"] and exposure["via"].tolist() == ["VEH-1"]
    w = RiskWeights()
    assert exposure["value"].iloc[0] / SCORE_SCALE == pytest.approx(w.exposure_pts * 2.0 * w.acute_factor)
    # the exposure lies in the site's cell, where the people are
    assert exposure["cell"].iloc[0] == cell_ints([school[3]], [school[4]], H3_RES_GRID_FINEST)[0]
    # a clean empty truck threatens nobody and adds nothing
    grid.apply(trucks=trucks([("VEH-1", LON0, LAT0, "empty_clean", "2.3", "1017")]))
    assert grid.scores(8).empty


def test_missing_occupancy_takes_the_kinds_default_and_water_zones_their_floor():
    w = RiskWeights()
    sites = [("SITE-1", "kindergarten", None, LON0, LAT0 + 0.0005), ("SITE-2", "water_protection", 0, LON0, LAT0 - 0.0005)]
    grid = RiskGrid(small_world(sites=sites))
    assert grid.sites.people.tolist() == [w.default_people["kindergarten"], w.floor_people["water_protection"]]


# -- properties ----------------------------------------------------------------------------------

coords = st.tuples(st.floats(LON0 - 0.05, LON0 + 0.05), st.floats(LAT0 - 0.05, LAT0 + 0.05))
SITES = [("SITE-%d" % i, kind, occ, LON0 + dx, LAT0 + dy) for i, (kind, occ, dx, dy) in enumerate([
    ("school", 1200, 0.0, 0.0), ("residential", 8000, 0.01, -0.02), ("hospital", None, -0.03, 0.02),
    ("water_protection", 0, 0.02, 0.03)])]
UNS = ["1017", "1203", "1005", "1230", "9999"]
CLASSES = ["2.3", "3", "2.3", "3", "8"]
truck_rows_st = st.lists(st.tuples(st.integers(0, 8), coords, st.sampled_from(
    ["loaded", "empty_uncleaned", "empty_clean", "unknown"]), st.integers(0, 4)), max_size=30)


def as_trucks(items) -> pd.DataFrame:
    return trucks((f"VEH-{v}", lon, lat, state, CLASSES[c], UNS[c]) for v, (lon, lat), state, c in items)


@settings(max_examples=40, deadline=None)
@given(base=truck_rows_st, sources=st.lists(st.tuples(st.integers(1, 4), st.floats(0, 300), coords,
                                                       st.integers(0, 4)), max_size=4),
       added=st.one_of(
           st.tuples(st.just("source"), st.integers(1, 4), st.floats(0, 300), coords, st.integers(0, 4)),
           st.tuples(st.just("truck"), coords, st.sampled_from(["loaded", "empty_uncleaned"]), st.integers(0, 4)),
           st.tuples(st.just("alarm"), coords, st.integers(1, 4)),
           st.tuples(st.just("incident"), coords, st.integers(1, 4))))
def test_adding_a_hazard_never_lowers_a_score(base, sources, added):
    hs = [(f"HS-{i}", g, r, lon, lat, UNS[u]) for i, (g, r, (lon, lat), u) in enumerate(sources)]
    before = RiskGrid(small_world(SITES, hs))
    before.apply(trucks=as_trucks(base))
    if added[0] == "source":
        _, g, r, (lon, lat), u = added
        after = RiskGrid(small_world(SITES, hs + [("HS-new", g, r, lon, lat, UNS[u])]))
        after.apply(trucks=as_trucks(base))
    else:
        after = RiskGrid(small_world(SITES, hs))
        after.apply(trucks=as_trucks(base))
        if added[0] == "truck":
            _, (lon, lat), state, c = added
            after.apply(trucks=trucks([("VEH-new", lon, lat, state, CLASSES[c], UNS[c])]))
        else:
            _, (lon, lat), severity = added
            after.apply(**{added[0] + "s": subjects([("X-new", lon, lat, severity)])})
    for res in RISK_GRID_RESOLUTIONS:
        old, new = before.scores(res)["score"], after.scores(res)["score"]
        assert (new.reindex(old.index.union(new.index)).fillna(0)
                >= old.reindex(old.index.union(new.index)).fillna(0)).all()
        assert new.sum() > old.sum() or added[0] == "source" and not len(new)


@settings(max_examples=40, deadline=None)
@given(updates=truck_rows_st, cuts=st.lists(st.integers(0, 30), max_size=5),
       alarms=st.lists(st.tuples(st.integers(0, 4), coords, st.one_of(st.integers(1, 4), st.just(9))), max_size=12))
def test_the_same_score_whatever_the_batch_split(updates, cuts, alarms):
    world = small_world(SITES, [("HS-1", 2, 60.0, LON0, LAT0, "1017")])
    whole = RiskGrid(world)
    whole.apply(trucks=as_trucks(updates), alarms=subjects((f"MP-{p}", lon, lat, s) for p, (lon, lat), s in alarms))
    split = RiskGrid(world)
    bounds = sorted({0, len(updates), *[c for c in cuts if c <= len(updates)]})
    for a, b in zip(bounds, bounds[1:]):
        split.apply(trucks=as_trucks(updates[a:b]))
    for p, (lon, lat), s in alarms:  # one reading at a time
        split.apply(alarms=subjects([(f"MP-{p}", lon, lat, s)]))
    for res in RISK_GRID_RESOLUTIONS:
        pd.testing.assert_frame_equal(whole.scores(res), split.scores(res))
    # and the incremental grid equals a recount of its contributions
    pd.testing.assert_frame_equal(split.scores(8), score_rows(split.rows(), 8))


@settings(max_examples=30, deadline=None)
@given(items=truck_rows_st)
def test_a_parent_cells_score_is_the_sum_of_its_childrens(items):
    grid = RiskGrid(small_world(SITES, [("HS-1", 1, 150.0, LON0 + 0.01, LAT0, "1005")]))
    grid.apply(trucks=as_trucks(items))
    for child_res, parent_res in zip(RISK_GRID_RESOLUTIONS[1:], RISK_GRID_RESOLUTIONS):
        children = fixed(grid.scores(child_res))
        summed = children.groupby(parent_cells(children.index.to_numpy("uint64"), parent_res)).sum()
        summed.index.name = "cell"
        pd.testing.assert_frame_equal(summed, fixed(grid.scores(parent_res)), check_names=False)


# -- bands -------------------------------------------------------------------------------------

def test_bands_follow_the_cut_points_per_res8_area():
    w = RiskWeights()
    yellow, orange, red = w.band_cuts
    assert bands(np.array([0, 1, yellow, orange - 0.01, orange, red]), 8).tolist() == [
        "", "blue", "yellow", "yellow", "orange", "red"]
    # a res-7 cell covers ~7 res-8 cells: its cut points are √7 times higher, res 6's 7 times
    assert bands(np.array([red * 7 ** 0.5 - 1, red * 7 ** 0.5]), 7).tolist() == ["orange", "red"]
    assert bands(np.array([red * 7 - 1, red * 7]), 6).tolist() == ["orange", "red"]
    assert bands(np.array([red / 7 ** 0.5 + 1e-9, red / 7 ** 0.5 - 0.01]), 9).tolist() == ["red", "orange"]


# -- the incremental grid ------------------------------------------------------------------------

def test_changes_since_hold_only_the_cells_that_changed_zeros_included():
    grid = RiskGrid(small_world())
    v1 = grid.apply(trucks=trucks([("VEH-1", LON0, LAT0, "loaded", "3", "1203"),
                                   ("VEH-2", LON0 + 0.3, LAT0, "loaded", "3", "1203")]))
    v2 = grid.apply(trucks=trucks([("VEH-1", LON0 + 0.1, LAT0, "loaded", "3", "1203")]))
    assert v2 > v1
    changed = grid.scores(8, since=v1)
    old_cell, new_cell = cell_ints([LON0, LON0 + 0.1], [LAT0, LAT0], 8)
    assert set(changed.index) == {old_cell, new_cell}
    assert changed.loc[old_cell, "score"] == 0 and changed.loc[old_cell, "band"] == ""
    assert grid.apply(trucks=trucks([("VEH-1", LON0 + 0.1, LAT0, "loaded", "3", "1203")])) == v2  # no change
    assert len(grid.scores(8)) == 2


def test_bad_live_input_is_refused_whole():
    grid = RiskGrid(small_world())
    grid.apply(trucks=trucks([("VEH-1", LON0, LAT0, "loaded", "3", "1203")]))
    before = grid.scores(8)
    with pytest.raises(ValueError, match="cargo_state"):
        grid.apply(trucks=trucks([("VEH-1", LON0 + 0.1, LAT0, "full", "3", "1203")]))
    with pytest.raises(ValueError, match="lacks columns"):
        grid.apply(trucks=trucks([("VEH-1", LON0 + 0.1, LAT0, "loaded", "3", "1203")]),
                   alarms=pd.DataFrame({"subject_id": ["MP-1"]}))
    pd.testing.assert_frame_equal(grid.scores(8), before)


def test_weights_must_not_be_negative():
    with pytest.raises(ValueError, match="≥ 0"):
        RiskWeights(hazard_per_r=-1)
    with pytest.raises(ValueError, match="band_cuts"):
        RiskWeights(band_cuts=(50.0, 20.0, 100.0))


def test_explain_lists_a_cells_items():
    grid = RiskGrid(small_world([SITES[0]], [("HS-1", 1, 100.0, LON0, LAT0, "1017")]))
    cell = cell_ints([LON0], [LAT0], 8)[0]
    items = explain(grid.rows(), cell, 8)
    assert set(items["item_id"]) == {"HS-1", "SITE-0"}
    assert items["points"].sum() == pytest.approx(grid.scores(8).loc[cell, "score"])
    assert (items["part"].isin(PARTS)).all()


# -- the wall's grid feed (layers/grid.py) and its route -----------------------------------------

@pytest.fixture(scope="module")
def demo_world():
    from data.demo import build_world

    return build_world(seed=3, scale=0.03, chemicals=_chemicals())


class _Live:
    def __init__(self):
        from spatial.model import LiveState

        self.state = LiveState()

    def snapshot(self):
        return self.state.copy()


def _client_apply(held: dict, frame: dict) -> dict:
    """What assets/hazmap_grid.js does with a frame."""
    if frame["full"]:
        held = {}
    c = frame["cells"]
    for i, cell in enumerate(c["ids"]):
        if c["band"][i] < 0:
            held.pop(cell, None)
        else:
            held[cell] = (c["score"][i], c["band"][i], tuple(c["parts"][i]))
    return held


def test_the_grid_feed_follows_the_live_state_with_deltas_only(demo_world):
    from layers.grid import GridFeed
    from spatial.model import Event, PingBatch

    live = _Live()
    feed = GridFeed(demo_world, live)
    v = demo_world.vehicles
    ids, x, y = v["id"].to_numpy(object), v.geometry.x.to_numpy(), v.geometry.y.to_numpy()
    t0 = 1_762_000_000_000
    live.state.apply_pings(PingBatch.from_arrays(ids, np.full(len(ids), t0), x, y))
    first = feed.frame(8)
    held = _client_apply({}, first)
    assert first["full"] and len(held) == first["cells"]["n"] > 0

    # one truck drives off, one alert opens on another: only their cells travel
    live.state.apply_pings(PingBatch.from_arrays(ids[:1], [t0 + 30_000], x[:1] + 0.05, y[:1]))
    start = pd.Timestamp(t0, unit="ms", tz="UTC")
    live.state.apply_events([Event("speeding", str(ids[1]), "E1", "open", start, None, x[1], y[1], 1, {})])
    delta = feed.frame(8, first["version"])
    assert not delta["full"] and 0 < delta["cells"]["n"] <= 3
    held = _client_apply(held, delta)
    # closing the alert brings the score back
    live.state.apply_events([Event("speeding", str(ids[1]), "E1", "close", start, start, x[1], y[1], 1, {})])
    held = _client_apply(held, feed.frame(8, delta["version"]))
    full = _client_apply({}, feed.frame(8))
    assert held == full
    assert sum(parts[4] for _, _, parts in full.values()) == 0  # no open alert left
    # a version the grid never had, or 0: the full form
    assert feed.frame(8, 10**9)["full"] and feed.frame(8, 0)["full"]
    with pytest.raises(ValueError, match="res must be one of"):
        feed.frame(5)


def test_cargo_of_the_waybills_on_the_road(demo_world):
    from layers.grid import cargo_by_vehicle

    wb = demo_world.waybills
    row = wb.iloc[0]
    during = pd.Timestamp(row["planned_departure"]) + (pd.Timestamp(row["planned_arrival"])
                                                         - pd.Timestamp(row["planned_departure"])) / 2
    before = pd.Timestamp(wb["planned_departure"].min()) - pd.Timedelta(days=1)
    assert cargo_by_vehicle(demo_world, at=during).loc[row["vehicle_id"], "cargo_state"] == "loaded"
    assert (cargo_by_vehicle(demo_world, at=before)["cargo_state"] == "unknown").all()


def test_the_grid_route_answers_and_refuses_clearly(demo_world, tmp_path):
    import gzip
    import json as jsonlib

    from app.settings import Settings
    from app.webapp import create_app

    web = create_app(Settings(var_dir=tmp_path, tile_url="http://127.0.0.1:9/{z}/{x}/{y}.png"), demo_world,
                     "v1", live=_Live())
    client = web.server.test_client()
    ok = client.get("/grid/v1/state?res=7&since=0", headers={"Accept-Encoding": "gzip"})
    assert ok.status_code == 200 and ok.headers["Cache-Control"] == "no-store"
    frame = jsonlib.loads(gzip.decompress(ok.data))
    assert frame["res"] == 7 and frame["full"] and frame["cells"]["n"] > 0  # the world's part, no truck yet
    assert client.get("/grid/v2/state?res=7").status_code == 404
    bad = client.get("/grid/v1/state?res=5")
    assert bad.status_code == 400 and "res must be one of" in bad.get_json()["error"]
    assert client.get("/grid/v1/state?res=8&since=-1").status_code == 400
    # the counts per cell below the symbols' zoom (layers/grid.PointCounts)
    counts = client.get("/grid/v1/counts?res=6")
    assert counts.status_code == 200 and counts.headers["Cache-Control"] == "no-store"
    layers = counts.get_json()["layers"]
    assert sum(layers["entities"]["n"]) == len(demo_world.entities) and layers["vehicles"]["ids"] == []
    assert client.get("/grid/v2/counts?res=6").status_code == 404
    assert "res must be one of" in client.get("/grid/v1/counts?res=8").get_json()["error"]
    assert client.get("/grid/v1/counts?res=x").status_code == 400


def test_sites_reached_agree_with_a_brute_force_shapely_oracle(demo_world):
    """The k-d narrowing never misses or invents a site: every (threat, site) pair within the
    threat's distance, by exact shapely distance to the site's point or outline."""
    import shapely

    from spatial.crs import geometry_to_metric, to_metric
    from spatial.risk import Sites

    sites = Sites(demo_world.sensitive_sites, RiskWeights())
    rng = np.random.default_rng(4)
    west, south, east, north = demo_world.sensitive_sites.total_bounds
    near = demo_world.sensitive_sites.geometry.representative_point().to_numpy()[rng.integers(0, 10**6, 200) %
                                                                                 len(demo_world.sensitive_sites)]
    lon = np.r_[rng.uniform(west, east, 200), shapely.get_x(near) + rng.normal(0, 0.01, 200)]
    lat = np.r_[rng.uniform(south, north, 200), shapely.get_y(near) + rng.normal(0, 0.01, 200)]
    x, y = (np.asarray(v) for v in to_metric(lon, lat))
    d = rng.choice([25.0, 100.0, 300.0, 800.0, 2500.0], 400)
    d[:5] = 0.0  # no distance: reaches nothing
    x[5] = np.nan  # no position: reaches nothing
    t, s = sites.reached(x, y, d)
    metric = geometry_to_metric(demo_world.sensitive_sites.geometry.to_numpy())
    here = np.isfinite(x)
    gap = np.full((len(x), len(metric)), np.inf)
    gap[here] = shapely.distance(shapely.points(x[here], y[here])[:, None], metric[None, :])
    want_t, want_s = np.nonzero((gap <= d[:, None]) & (d[:, None] > 0))
    assert len(want_t) > 50  # the sample reaches sites, of both kinds of geometry
    assert (shapely.get_type_id(metric[want_s]) != 0).any() and (shapely.get_type_id(metric[want_s]) == 0).any()
    assert sorted(zip(t.tolist(), s.tolist())) == sorted(zip(want_t.tolist(), want_s.tolist()))


# -- cargo state: the engine's waybill stage -> LiveState -> the grid and the truck's panel ------

def _cargo_through_the_engine(body: str) -> list[str]:
    """The truck of tests/rules/test_cargo_state's world loads, unloads, washes: its cargo state
    after each batch of pings, as the live monitor asks the engine (at the batch's newest ping)."""
    from spatial.rules.engine import Engine
    from tests.rules.test_cargo_state import LOAD, TRUCK, UNLOAD, WASH, _drive, _stay, engine_world
    from tests.tracks import track

    path = _stay(LOAD, 3) + _drive(LOAD, UNLOAD) + _stay(UNLOAD, 12) + _drive(UNLOAD, WASH) + _stay(WASH, 40) \
        + _drive(WASH, LOAD)
    pings = track(TRUCK, path)
    engine = Engine(engine_world(body), rules=())
    seen = []
    for start in range(0, len(pings), 8):
        chunk = np.arange(start, min(start + 8, len(pings)))
        engine.step(_take(pings, chunk))
        states, rows = engine.cargo_states([TRUCK], [int(pings.epoch_ms[chunk[-1]])])
        assert (rows >= 0).all() == (states[0] != "unknown")
        if not seen or seen[-1] != states[0]:
            seen.append(states[0])
    return seen


def _take(batch, at):
    from spatial.model import PingBatch

    return PingBatch.from_arrays(batch.vehicle_id[at], batch.epoch_ms[at], batch.lon[at], batch.lat[at],
                                 batch.speed_kmh[at], batch.heading[at], batch.alarm[at], batch.status[at])


def test_a_tank_is_loaded_then_uncleaned_until_washed_then_clean():
    assert _cargo_through_the_engine("tank") == ["loaded", "empty_uncleaned", "empty_clean"]


def test_a_van_is_clean_once_unloaded():
    assert _cargo_through_the_engine("van") == ["loaded", "empty_clean"]


def test_the_live_state_versions_only_a_changed_cargo():
    from spatial.model import LiveState

    state = LiveState()
    state.apply_cargo(["VEH-1", "VEH-2"], ["loaded", "loaded"], ["WB-1", "WB-2"])
    v = state.version
    state.apply_cargo(["VEH-1", "VEH-2"], ["loaded", "empty_uncleaned"], ["WB-1", "WB-2"])
    assert state.version == v + 1
    assert list(state.changes_since(v).cargo.index) == ["VEH-2"]
    state.apply_cargo(["VEH-1"], ["loaded"], ["WB-1"])  # nothing new: no version
    assert state.version == v + 1
    assert state.cargo.loc["VEH-2", "cargo_state"] == "empty_uncleaned"
    assert state.copy().cargo.equals(state.cargo)


def test_the_grid_weighs_an_uncleaned_tank_by_its_residue(demo_world):
    """A truck's part follows the engine's cargo state (LiveState.cargo) and its waybill's goods:
    residue weighs `truck_cargo_pts['empty_uncleaned']`, a clean tank nothing."""
    from layers.grid import GridFeed, goods_by_waybill
    from spatial.h3cells import H3_RES_GRID_FINEST, cell_ints
    from spatial.model import PingBatch
    from spatial.risk import TRUCKS, class_factors

    live = _Live()
    feed = GridFeed(demo_world, live)
    weights = feed.weights
    waybill = demo_world.waybills.iloc[0]
    truck = str(waybill["vehicle_id"])
    lon, lat = 121.3, 29.6  # far from every other truck of the world (none reported)
    live.state.apply_pings(PingBatch.from_arrays([truck], [1_762_000_000_000], [lon], [lat]))
    cell = int(cell_ints([lon], [lat], H3_RES_GRID_FINEST)[0])
    factor = class_factors(goods_by_waybill(demo_world).loc[[waybill["id"]], "hazard_class"].to_numpy(object),
                           weights)[0]

    def trucks_part() -> float:
        table = feed.grid.scores(H3_RES_GRID_FINEST)
        return float(table.loc[np.uint64(cell), PARTS[TRUCKS]]) if np.uint64(cell) in table.index else 0.0

    feed.sync()
    for state, pts in (("loaded", weights.truck_cargo_pts["loaded"]),
                       ("empty_uncleaned", weights.truck_cargo_pts["empty_uncleaned"]),
                       ("empty_clean", 0.0)):
        live.state.apply_cargo([truck], [state], [waybill["id"]])
        feed.sync()
        assert trucks_part() == pytest.approx(pts * factor, abs=1e-3), state
    assert weights.truck_cargo_pts["empty_uncleaned"] > 0


def test_the_truck_panel_shows_the_engines_cargo_state():
    from layers.panels.truck import cargo_state

    assert cargo_state({"cargo_state": "empty_uncleaned", "cargo": "empty"}, "zh") == "空载，未洗消"
    assert cargo_state({"cargo_state": "empty_clean", "cargo": "empty"}, "en") == "Empty, clean"
    assert cargo_state({"cargo_state": None, "cargo": "loaded"}, "en") == "Loaded"  # not judged yet: the waybills


def test_the_live_monitor_keeps_each_trucks_cargo_state_from_the_engine(tmp_path):
    """Every truck that reported has the cargo state the engine's waybill stage gives at its
    newest report (the same slices through a separate Engine)."""
    from app.live import LiveMonitor
    from data.demo import build_world
    from data.reference import load_chemicals
    from data.sim.fleet import plan_fleet
    from data.sim.settings import DEMO_DAY, SimSettings
    from data.store import Store
    from spatial.rules.engine import Engine

    world = build_world(seed=7, scale=0.02, chemicals=load_chemicals())
    url = f"sqlite:///{tmp_path / 'hazmap.sqlite'}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
    sim = SimSettings(seed=3, start=DEMO_DAY + pd.Timedelta(hours=7), hours=3.0, stage_kinds=())
    fleet = plan_fleet(world, sim)
    engine = Engine(world, rules=())
    with LiveMonitor(world, url) as monitor:
        for t0 in range(sim.start_ms, sim.end_ms, 300_000):
            pings = fleet.pings_between(t0, t0 + 300_000)
            monitor.submit_pings(pings)
            engine.step(pings)
        assert monitor.wait_idle(60)
        live = monitor.snapshot()
    newest = live.positions["epoch_ms"].astype("int64")
    states, rows = engine.cargo_states(newest.index.to_numpy(object), newest.to_numpy("int64"))
    assert len(live.cargo) == len(live.positions) > 0
    assert live.cargo["cargo_state"].reindex(newest.index).tolist() == states.tolist()
    assert {"loaded", "empty_uncleaned"} <= set(states)  # the sample has trucks on a trip and after one


def test_point_counts_per_cell_roll_up_each_layers_finest_cells(demo_world):
    """layers/grid.PointCounts: per layer, per cell, the features whose finest cell's parent it is
    (h3 one by one here), the trucks where the live state has them; narrowed by `keep`; a
    resolution it does not draw is refused."""
    import shapely

    from layers.grid import COUNT_RESOLUTIONS, PointCounts
    from spatial.model import PingBatch

    live = _Live()
    v = demo_world.vehicles
    live.state.apply_pings(PingBatch.from_arrays(v["id"].to_numpy(object), np.full(len(v), 1_762_000_000_000),
                                                 v.geometry.x.to_numpy(), v.geometry.y.to_numpy()))
    counts = PointCounts(demo_world, live)
    for res in COUNT_RESOLUTIONS:
        frame = counts.frame(res)
        for name in ("entities", "sensitive_sites", "vehicles"):
            geoms = demo_world.table(name).geometry.to_numpy()
            anchor = np.where(shapely.get_type_id(geoms) == 0, geoms, shapely.point_on_surface(geoms))
            want = pd.Series([h3.cell_to_parent(h3.latlng_to_cell(y, x, H3_RES_GRID_FINEST), res) for x, y in
                              zip(shapely.get_x(anchor), shapely.get_y(anchor))]).value_counts().to_dict()
            got = dict(zip(frame["layers"][name]["ids"], frame["layers"][name]["n"]))
            assert got == want and sum(got.values()) == len(geoms), (name, res)
    hidden = counts.frame(COUNT_RESOLUTIONS[-1], keep=lambda name, ids: np.zeros(len(ids), bool))
    assert all(not layer["ids"] for layer in hidden["layers"].values())
    with pytest.raises(ValueError, match="res must be one of"):
        counts.frame(9)


def test_sites_reached_from_lonlat_equal_the_exact_projections(demo_world):
    """The fitted projection only nominates: every pair equals `reached` on pyproj's exact
    projection, for threats anywhere in the box, on the threshold itself (decided again exactly),
    and outside the fitted box."""
    import shapely

    from spatial.crs import from_metric, geometry_to_metric, to_metric
    from spatial.risk import Sites

    sites = Sites(demo_world.sensitive_sites, RiskWeights())
    assert sites._fit is not None and sites._fit.error_m < 1e-3
    rng = np.random.default_rng(9)
    west, south, east, north = demo_world.sensitive_sites.total_bounds
    points = geometry_to_metric(shapely.point_on_surface(demo_world.sensitive_sites.geometry.to_numpy()))
    pick = rng.integers(0, len(points), 300)
    angle = rng.uniform(0, 2 * np.pi, 300)
    d = rng.choice([25.0, 100.0, 300.0, 800.0], 300)
    # on the threshold of a point site (and of an area's anchor), near it, anywhere, far outside
    edge_lon, edge_lat = from_metric(shapely.get_x(points[pick]) + d * np.cos(angle),
                                     shapely.get_y(points[pick]) + d * np.sin(angle))
    lon = np.r_[edge_lon, rng.uniform(west, east, 300), [west - 3.0, np.nan]]
    lat = np.r_[edge_lat, rng.uniform(south, north, 300), [south - 3.0, 30.0]]
    distance = np.r_[d, rng.choice([25.0, 300.0, 2500.0], 300), [800.0, 800.0]]
    got = sites.reached_lonlat(lon, lat, distance)
    x, y = (np.asarray(v) for v in to_metric(lon, lat))
    want = sites.reached(x, y, distance)
    assert len(want[0]) > 100
    assert sorted(zip(*map(np.ndarray.tolist, got))) == sorted(zip(*map(np.ndarray.tolist, want)))
