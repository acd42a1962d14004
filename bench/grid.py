"""Risk-grid benchmark: spatial/risk.py against a plain GeoPandas/h3 groupby of the same inputs.

For the demo world (seed, scale) and a live state of its 3,419 trucks and of 15,000 (the world's
plus copies placed along its waybill routes; cargo states as the engine gives them over a day:
60 % loaded, 25 % empty tanks not yet washed, 10 % washed, 5 % unknown), 1 % of the monitoring
points in alarm and 2 % of the trucks with an open alert, measured in the same run (CPU time of this process, median of
`repeat`: per core, and steady on a shared machine where wall time is mostly other processes'):

- ``full_ms_<n>_res<r>``: a new `RiskGrid` (the world's hazard sources and their exposure), the
  whole live state applied, the cells scored at resolution r;
- ``tick_ms_<n>_res<r>``: one incremental tick: the trucks that report in 2 s (1/15 of them at
  30 s reports) move ~300 m, `apply` + `scores(r, since)` (what a poll asks);
- ``anchor_ms_<n>_res<r>``: GeoPandas: a GeoDataFrame per kind of item, `h3.latlng_to_cell` per
  row (res 9, then `cell_to_parent`), exposure by `sjoin` of the threats' protective-distance
  points (EPSG:32651) with the sites, `dwithin` the protective distance, `groupby` + `pivot_table` per cell;
- ``ratio_<n>_res<r>`` = anchor ÷ full (both medians of `repeat`); ``identical_<n>``: every cell
  of either side, its five parts and its score agree to 0.05 point (the score rounds each item to
  0.001 point); an empty side fails.

    python -m bench.grid [--seed 7] [--scale 1.0] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely

from data.demo import build_world
from layers.grid import cargo_by_vehicle
from spatial.crs import METRIC_CRS
from spatial.h3cells import H3_RES_GRID_FINEST, RISK_GRID_RESOLUTIONS
from spatial.model import CARGO_STATES, World
from spatial.risk import PARTS, RiskGrid, RiskWeights, class_factors, protective_distance_m

FLEETS = (3419, 15000)
TICK_SHARE = 2 / 30  # a 2 s poll over trucks reporting every 30 s
TICK_MOVE_DEG = 0.003  # ~300 m
TARGETS = {"full_ms_res8": 200.0, "tick_ms": 20.0, "ratio": 5.0}
CARGO_MIX = (0.6, 0.25, 0.1, 0.05)  # CARGO_STATES: loaded, empty_uncleaned, empty_clean, unknown


def live_inputs(world: World, n_trucks: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Trucks along the waybill routes (the world's vehicles first, then copies), alarms and
    incidents, as spatial.risk takes them."""
    rng = np.random.default_rng(seed)
    cargo = cargo_by_vehicle(world)
    routes = world.waybills.geometry.to_numpy()
    route_of = rng.integers(0, len(routes), n_trucks)
    points = shapely.line_interpolate_point(routes[route_of], rng.random(n_trucks), normalized=True)
    ids = world.vehicles["id"].astype(str).to_numpy(object)
    n_world = min(n_trucks, len(ids))
    vehicle_ids = np.concatenate([ids[:n_world], np.array([f"VEH-X{i:06d}" for i in range(n_trucks - n_world)],
                                                          dtype=object)])
    like = cargo.iloc[np.r_[np.arange(n_world), rng.integers(0, len(cargo), n_trucks - n_world)]]
    # the engine's cargo states over a working day (LiveState.cargo): most trucks on a trip, some
    # empty tanks not yet washed (residue of their last cargo), some washed or without a waybill
    state = rng.choice(np.array(CARGO_STATES, dtype=object), n_trucks, p=CARGO_MIX)
    # object columns, as the app's layers.grid.trucks_frame builds them
    trucks = pd.DataFrame({"vehicle_id": pd.Series(vehicle_ids, dtype=object), "lon": shapely.get_x(points),
                           "lat": shapely.get_y(points), "cargo_state": pd.Series(state, dtype=object),
                           **{c: pd.Series(like[c].to_numpy(object), dtype=object) for c in ("hazard_class", "un_number")}})
    mp = world.monitoring_points
    alarmed = rng.choice(len(mp), max(1, len(mp) // 100), replace=False)
    alarms = pd.DataFrame({"subject_id": mp["id"].to_numpy(object)[alarmed], "lon": mp.geometry.x.to_numpy()[alarmed],
                           "lat": mp.geometry.y.to_numpy()[alarmed], "severity": rng.integers(1, 3, len(alarmed))})
    alerted = rng.choice(n_trucks, max(1, n_trucks // 50), replace=False)
    incidents = pd.DataFrame({"subject_id": vehicle_ids[alerted], "lon": trucks["lon"].to_numpy()[alerted],
                              "lat": trucks["lat"].to_numpy()[alerted], "severity": rng.integers(1, 5, len(alerted))})
    return {"trucks": trucks, "alarms": alarms, "incidents": incidents}


def full_score(prepared: RiskGrid, live: dict, resolution: int) -> pd.DataFrame:
    """The live state applied to the World's prepared grid (sites indexed, hazard sources scored:
    once per World, as the app does), then every cell scored at `resolution`."""
    grid = prepared.fresh()
    grid.apply(**live)
    return grid.scores(resolution)


def anchor_prepare(world: World, weights: RiskWeights | None = None) -> dict:
    """The anchor's world part, prepared once as well: the hazard sources' points and threats,
    the sites with their people, in EPSG:32651."""
    w = weights or RiskWeights()
    hs = world.hazard_sources
    hs_pts = hs["grade"].map(lambda g: w.hazard_grade_pts[int(g) - 1]) + w.hazard_per_r * hs["r_value"]
    sites = world.sensitive_sites.copy()
    occupancy = pd.to_numeric(sites["occupancy"], errors="coerce")
    people = occupancy.fillna(sites["kind"].map(w.default_people).fillna(w.default_people_other))
    sites["people"] = np.maximum(people, sites["kind"].map(w.floor_people).fillna(0))
    anchors = gpd.GeoDataFrame(sites[["id"]], geometry=sites.geometry.representative_point(), crs="EPSG:4326")
    sites["site_fine"] = anchors.geometry.apply(lambda p: h3.latlng_to_cell(p.y, p.x, H3_RES_GRID_FINEST))
    chem = world.hazard_source_chemicals.assign(
        d=protective_distance_m(world.hazard_source_chemicals["un_number"], world.chemicals, w.default_protective_m))
    hs_d = chem.groupby("hazard_source_id")["d"].max()
    hs_threat = gpd.GeoDataFrame({"threat": hs["grade"].map(lambda g: w.exposure_source_threat[int(g) - 1]),
                                  "d": hs["id"].map(hs_d).fillna(w.default_protective_m)}, geometry=hs.geometry,
                                 crs="EPSG:4326").to_crs(METRIC_CRS)
    return {"weights": w, "hs": hs.assign(points=hs_pts, fine=hs.geometry.apply(
                lambda p: h3.latlng_to_cell(p.y, p.x, H3_RES_GRID_FINEST))),
            "hs_threat": hs_threat, "sites": sites[["people", "site_fine", "geometry"]].to_crs(METRIC_CRS),
            "chemicals": world.chemicals}


def anchor_score(prepared: dict, live: dict, resolution: int) -> pd.DataFrame:
    """The same score the plain way: GeoDataFrames, h3 per row, sjoin, groupby + pivot."""
    w = prepared["weights"]

    def cells(frame: gpd.GeoDataFrame) -> pd.Series:
        return frame.geometry.apply(lambda p: h3.cell_to_parent(h3.latlng_to_cell(p.y, p.x, H3_RES_GRID_FINEST),
                                                                resolution))

    hs = prepared["hs"]
    parts = [pd.DataFrame({"cell": hs["fine"].map(lambda c: h3.cell_to_parent(c, resolution)), "part": "hazard",
                           "points": hs["points"]})]
    for name, frame, table in (("alarms", live["alarms"], w.alarm_pts), ("incidents", live["incidents"],
                                                                         w.incident_pts)):
        g = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs="EPSG:4326")
        parts.append(pd.DataFrame({"cell": cells(g), "part": name,
                                   "points": g["severity"].map(lambda s: table[int(s) - 1])}))
    t = live["trucks"]
    trucks = gpd.GeoDataFrame(t, geometry=gpd.points_from_xy(t["lon"], t["lat"]), crs="EPSG:4326")
    trucks["factor"] = class_factors(trucks["hazard_class"], w)
    trucks["points"] = trucks["cargo_state"].map(w.truck_cargo_pts) * trucks["factor"]
    present = trucks[trucks["points"] > 0]
    parts.append(pd.DataFrame({"cell": cells(present), "part": "trucks", "points": present["points"]}))

    trucks["threat"] = trucks["cargo_state"].map(w.exposure_truck_threat) * trucks["factor"]
    risky = trucks[trucks["threat"] > 0]
    tr_threat = gpd.GeoDataFrame({"threat": risky["threat"], "d": protective_distance_m(
        risky["un_number"], prepared["chemicals"], w.default_protective_m)}, geometry=risky.geometry,
        crs="EPSG:4326").to_crs(METRIC_CRS)
    threats = pd.concat([prepared["hs_threat"], tr_threat], ignore_index=True)
    hits = gpd.sjoin(threats, prepared["sites"], predicate="dwithin", distance=threats["d"].to_numpy())
    parts.append(pd.DataFrame({"cell": hits["site_fine"].map(lambda c: h3.cell_to_parent(c, resolution)),
                               "part": "exposure", "points": w.exposure_pts * hits["people"] / 1000 * hits["threat"]}))
    table = pd.concat(parts, ignore_index=True).pivot_table(index="cell", columns="part", values="points",
                                                             aggfunc="sum", fill_value=0.0)
    return table.reindex(columns=list(PARTS), fill_value=0.0)


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) * 1000)
    return float(np.median(times))


def tick_ms(prepared: RiskGrid, live: dict, resolution: int, ticks: int, seed: int = 1) -> float:
    rng = np.random.default_rng(seed)
    grid = prepared.fresh()
    grid.apply(**live)
    trucks = live["trucks"].copy()
    times = []
    for _ in range(ticks):
        moved = trucks.sample(frac=TICK_SHARE, random_state=int(rng.integers(1 << 31))).copy()
        moved["lon"] += rng.uniform(-TICK_MOVE_DEG, TICK_MOVE_DEG, len(moved))
        moved["lat"] += rng.uniform(-TICK_MOVE_DEG, TICK_MOVE_DEG, len(moved))
        trucks.loc[moved.index, ["lon", "lat"]] = moved[["lon", "lat"]]
        since = grid.version
        t0 = time.process_time()
        grid.apply(trucks=moved)
        grid.scores(resolution, since)
        times.append((time.process_time() - t0) * 1000)
    return float(np.median(times))


def identical(ours: pd.DataFrame, anchor: pd.DataFrame) -> bool:
    """Every cell of either side, every part and the score, to 0.05 point; nothing to compare
    fails."""
    columns = [*PARTS, "score"]
    mine = ours[columns].copy()
    mine.index = [format(int(c), "x") for c in mine.index]
    theirs = anchor[list(PARTS)].assign(score=anchor[list(PARTS)].sum(axis=1))
    both = mine.index.union(theirs.index)
    if not len(both) or not len(mine) or not len(theirs):
        return False
    return bool(np.allclose(mine.reindex(both).fillna(0).to_numpy("float64"),
                            theirs.reindex(both)[columns].fillna(0).to_numpy("float64"), atol=0.05, rtol=0))


def run_grid_bench(seed: int = 7, scale: float = 1.0, repeat: int = 5, ticks: int = 20,
                   out: Callable[[str], None] = print, fleets: tuple[int, ...] = FLEETS) -> dict:
    t0 = time.perf_counter()
    world = build_world(seed=seed, scale=scale)
    out(f"world: seed {seed}, scale {scale}: {len(world.hazard_sources)} hazard sources, "
        f"{len(world.sensitive_sites)} sensitive sites, {len(world.monitoring_points)} points "
        f"({time.perf_counter() - t0:.1f} s)")
    figures: dict[str, float | bool] = {}
    prepared = RiskGrid(world)
    anchor_world = anchor_prepare(world)
    figures["prepare_ms"] = round(_median_ms(lambda: RiskGrid(world), repeat), 1)
    figures["anchor_prepare_ms"] = round(_median_ms(lambda: anchor_prepare(world), repeat), 1)
    out(f"world part, once per World: {figures['prepare_ms']} ms (anchor {figures['anchor_prepare_ms']} ms)")
    for n in fleets:
        live = live_inputs(world, n, seed)
        same = True
        for res in RISK_GRID_RESOLUTIONS:
            full = _median_ms(lambda: full_score(prepared, live, res), repeat)
            tick = tick_ms(prepared, live, res, ticks)
            anchor = _median_ms(lambda: anchor_score(anchor_world, live, res), repeat)
            figures[f"full_ms_{n}_res{res}"] = round(full, 1)
            figures[f"tick_ms_{n}_res{res}"] = round(tick, 2)
            figures[f"anchor_ms_{n}_res{res}"] = round(anchor, 1)
            figures[f"ratio_{n}_res{res}"] = round(anchor / full, 1)
            ours = full_score(prepared, live, res)
            same = same and identical(ours, anchor_score(anchor_world, live, res))
            out(f"{n:>6} trucks, res {res}: {len(ours):>6} cells  full {full:8.1f} ms  tick {tick:6.2f} ms  "
                f"GeoPandas/h3 {anchor:8.1f} ms  ratio {anchor / full:5.1f}x")
        figures[f"identical_{n}"] = same
    out(f"targets: full at res 8 <= {TARGETS['full_ms_res8']:.0f} ms, tick <= {TARGETS['tick_ms']:.0f} ms, "
        f">= {TARGETS['ratio']:.0f}x the anchor")
    for name, value in figures.items():
        out(f"{name}={value}")
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=20)
    args = parser.parse_args(argv)
    run_grid_bench(seed=args.seed, scale=args.scale, repeat=args.repeat, ticks=args.ticks)


if __name__ == "__main__":
    main()
