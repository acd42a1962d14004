"""`hazmap bench snapshot`: a district's snapshot in every format with the app warm (world
loaded, risk grid built, fonts and renderers loaded by a first run), per format, beside
GeoPandas writing the same features to GeoJSON in the same run. Target: all five formats
(PDF, PNG, XLSX, GeoJSON, HTML) and the snapshot itself in ≤ 3 s.

The live picture is synthetic and deterministic: every truck of the demo world at its depot
with its waybill's cargo, one monitoring point in 20 in alarm, one open incident per 10 trucks.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TARGET_S = 3.0


def _picture(world, at: pd.Timestamp):
    from layers.grid import cargo_by_vehicle

    v = world.vehicles
    cargo = cargo_by_vehicle(world)
    trucks = pd.DataFrame({"vehicle_id": v["id"].to_numpy(object), "lon": v.geometry.x.to_numpy(),
                           "lat": v.geometry.y.to_numpy(),
                           "cargo_state": cargo["cargo_state"].reindex(v["id"]).fillna("unknown").to_numpy(object),
                           "hazard_class": cargo["hazard_class"].reindex(v["id"]).to_numpy(object),
                           "un_number": cargo["un_number"].reindex(v["id"]).to_numpy(object)})
    mp = world.monitoring_points.iloc[::20]
    alarms = pd.DataFrame({"subject_id": mp["id"].to_numpy(object), "lon": mp.geometry.x.to_numpy(),
                           "lat": mp.geometry.y.to_numpy(), "severity": (np.arange(len(mp)) % 4) + 1})
    sub = trucks.iloc[::10]
    n = len(sub)
    incidents = pd.DataFrame({
        "id": [f"INC-{i:06d}" for i in range(n)], "rule": "speeding", "subject_id": sub["vehicle_id"].to_numpy(object),
        "severity": (np.arange(n) % 4) + 1, "status": np.where(np.arange(n) % 3 == 0, "closed", "pushed"),
        "first_time": at - pd.to_timedelta(np.arange(n) % 48, unit="h"),
        "closed_at": pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]"),
        "lon": sub["lon"].to_numpy(), "lat": sub["lat"].to_numpy()})
    open_alerts = incidents[["subject_id", "lon", "lat", "severity"]]
    return trucks, alarms, open_alerts, incidents


def run_snapshot_bench(seed: int = 7, scale: float = 1.0, repeat: int = 3, district: str = "北仑区") -> dict:
    from data.demo import build_world
    from data.reference import load_chemicals
    from reports.snapshot import FORMATS, render_snapshot
    from spatial.risk import RiskGrid
    from spatial.snapshot import resolve_area, snapshot

    t0 = time.perf_counter()
    world = build_world(seed=seed, scale=scale, chemicals=load_chemicals())
    at = pd.Timestamp("2026-11-02T02:00:00Z")
    trucks, alarms, open_alerts, incidents = _picture(world, at)
    grid = RiskGrid(world)
    grid.apply(trucks=trucks, alarms=alarms, incidents=open_alerts)
    rows = grid.rows()
    print(f"world seed {seed} scale {scale:g}: {len(world.entities)} entities, {len(world.vehicles)} trucks, "
          f"{len(world.monitoring_points)} points; set up in {time.perf_counter() - t0:.1f} s")

    def make():
        area = resolve_area(world, "district", district)
        return snapshot(world, area, at, trucks=trucks, alarms=alarms, open_alerts=open_alerts, rows=rows,
                        incidents=incidents)

    snap = make()
    render_snapshot(snap)  # warm: fonts, imports, caches
    names = ("snapshot", *FORMATS, "all", "geopandas_geojson")
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}

    def timed(name, fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        wall[name].append(time.perf_counter() - w)
        cpu[name].append(time.process_time() - c)
        return out

    layers = {name: t for name, t in snap.tables.items() if len(t)}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            snap = timed("snapshot", make)
            for fmt in FORMATS:
                timed(fmt, lambda: render_snapshot(snap, (fmt,)))
            # the export as the screen and the CLI make it: the snapshot, then every format (one map)
            timed("all", lambda: render_snapshot(make()))

            def anchor():  # GeoPandas writing the same features (every layer, its attributes) to GeoJSON
                for name, table in layers.items():
                    table.to_file(Path(tmp) / f"{name}.geojson", driver="GeoJSON", engine="pyogrio")
            timed("geopandas_geojson", anchor)
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    f = snap.figures
    print(f"district {district}: {f['hazard_sources']} hazard sources, {f['trucks']} trucks, "
          f"{f['monitoring_points']} points, {f['cells']} cells, {sum(map(len, layers.values()))} features")
    print("(CPU time is the figure to read on a loaded machine; wall time beside it)")
    print(f"{'figure':<20}{'cpu s':>8}{'× geopandas':>13}{'wall s':>9}{'× geopandas':>13}")
    for k in names:
        print(f"{k:<20}{med_cpu[k]:>8.3f}{med_cpu[k] / med_cpu['geopandas_geojson']:>13.1f}"
              f"{med[k]:>9.3f}{med[k] / med['geopandas_geojson']:>13.1f}")
    verdict = "met" if med_cpu["all"] <= TARGET_S else "NOT met"
    print(f"target: the snapshot and all five formats ≤ {TARGET_S:g} s: {med_cpu['all']:.2f} s CPU "
          f"({med['all']:.2f} s wall), {verdict}")
    return med


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.snapshot", description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--district", default="北仑区")
    args = parser.parse_args(argv)
    run_snapshot_bench(seed=args.seed, scale=args.scale, repeat=args.repeat, district=args.district)


if __name__ == "__main__":
    main()
