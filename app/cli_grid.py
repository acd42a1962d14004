"""`hazmap grid --at TIME` (the risk grid at any time the store still holds) and
`hazmap bench grid`, registered on app/cli.py's command groups when it imports this module.

The grid at T is spatial/risk.py's score of the live picture as it stood at T, rebuilt from
the store: each truck's newest ping in [T - window, T) (its cargo: the waybill whose planned
departure is at or before T and which had not arrived or unloaded by T), the level alarms and
the open alerts at T from the stored events (an episode opened before T and not closed by T,
at its newest severity; the stop rule's own episodes left out, as on the wall).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from app.cli import UserError, _load_world, _open_store, _parse_time, _settings, bench_cli, cli

OUT_SUFFIXES = (".geojson", ".json")


def open_episodes_at(events: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """Episodes open at `at` from stored events (EVENT_FRAME_COLUMNS, any order): one row per
    episode with its rule, subject, newest severity and position."""
    if not len(events):
        return pd.DataFrame(columns=["episode_id", "rule", "subject_id", "severity", "lon", "lat"])
    before = events[events["event_time"] < at].sort_values("seq", kind="stable")
    closed = set(before.loc[before["phase"] == "close", "episode_id"])
    alive = before[(before["phase"] != "close") & ~before["episode_id"].isin(closed)]
    newest = alive.drop_duplicates("episode_id", keep="last")
    return newest[["episode_id", "rule", "subject_id", "severity", "lon", "lat"]].reset_index(drop=True)


def grid_inputs_at(store, world, at: pd.Timestamp, window_s: float) -> dict[str, pd.DataFrame]:
    """The live inputs of spatial.risk as they stood at `at` (see the module docstring)."""
    from layers.grid import cargo_by_vehicle
    from layers.live import LEVEL_RULES, LiveEncodingSettings

    pings = store.read_pings(at - pd.Timedelta(seconds=window_s), at)
    newest = pings.sort_values("epoch_ms", kind="stable").drop_duplicates("vehicle_id", keep="last")
    cargo = cargo_by_vehicle(world, at=at).reindex(newest["vehicle_id"].to_numpy(object))
    trucks = pd.DataFrame({
        "vehicle_id": newest["vehicle_id"].to_numpy(object), "lon": newest["lon"].to_numpy("float64"),
        "lat": newest["lat"].to_numpy("float64"),
        "cargo_state": cargo["cargo_state"].fillna("unknown").to_numpy(object),
        "hazard_class": cargo["hazard_class"].to_numpy(object), "un_number": cargo["un_number"].to_numpy(object)})

    episodes = open_episodes_at(store.read_events(until=at), at)
    episodes = episodes[~episodes["rule"].isin(LiveEncodingSettings().not_alert_rules)]
    # where an episode carries no position, its subject's: the point's place, the truck's ping
    points = world.monitoring_points
    where = pd.concat([
        pd.DataFrame({"lon": points.geometry.x.to_numpy(), "lat": points.geometry.y.to_numpy()},
                     index=points["id"].astype(str).to_numpy(object)),
        trucks.set_index("vehicle_id")[["lon", "lat"]]])
    where = where[~where.index.duplicated()]
    fallback = where.reindex(episodes["subject_id"].to_numpy(object))
    episodes = episodes.assign(lon=episodes["lon"].fillna(pd.Series(fallback["lon"].to_numpy(), index=episodes.index)),
                               lat=episodes["lat"].fillna(pd.Series(fallback["lat"].to_numpy(), index=episodes.index)))
    worst = episodes.sort_values("severity", kind="stable").drop_duplicates("subject_id")
    incidents = worst[["subject_id", "lon", "lat", "severity"]].reset_index(drop=True)
    level = episodes[episodes["rule"].isin(LEVEL_RULES)].sort_values("severity", kind="stable") \
        .drop_duplicates("subject_id")
    alarms = level[["subject_id", "lon", "lat", "severity"]].reset_index(drop=True)
    return {"trucks": trucks, "alarms": alarms, "incidents": incidents}


def grid_at(store, world, at: pd.Timestamp, resolution: int, window_s: float, weights=None):
    """(RiskGrid with the picture at `at` applied, its scores at `resolution`)."""
    from spatial.risk import RiskGrid

    grid = RiskGrid(world, weights)
    grid.apply(**grid_inputs_at(store, world, at, window_s))
    return grid, grid.scores(resolution)


def scores_geojson(table: pd.DataFrame, at: pd.Timestamp, resolution: int) -> dict:
    """A FeatureCollection of the cells (h3 hexagons, WGS-84) with their parts, score and band."""
    import h3

    from spatial.h3cells import cell_hex
    from spatial.risk import PARTS

    features = []
    for cell, row in zip(cell_hex(table.index.to_numpy("uint64")), table.to_dict("records")):
        ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(cell)]
        features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring + ring[:1]]},
                         "properties": {"cell": cell, "score": round(row["score"], 3), "band": row["band"],
                                        **{p: round(row[p], 3) for p in PARTS}}})
    return {"type": "FeatureCollection", "properties": {"at": at.isoformat(), "resolution": resolution},
            "features": features}


@cli.command("grid")
def grid(
    ctx: typer.Context,
    at: Annotated[str, typer.Option("--at", help="ISO 8601 time (no offset: Asia/Shanghai)")],
    res: Annotated[int | None, typer.Option("--res", help="H3 resolution: 6, 7, 8 or 9 (default 8)")] = None,
    window: Annotated[float, typer.Option(help="seconds before TIME a truck's newest ping may be")] = 1800.0,
    as_json: Annotated[bool, typer.Option("--json", help="the cells as one JSON document")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="write the cells as GeoJSON (.geojson)")] = None,
) -> None:
    """The risk grid at a past time, from the stored positions, readings' alarms and alerts."""
    from spatial.h3cells import H3_RES_RISK_GRID, RISK_GRID_RESOLUTIONS
    from spatial.risk import BANDS, PARTS, weights_from

    resolution = H3_RES_RISK_GRID if res is None else res
    if resolution not in RISK_GRID_RESOLUTIONS:
        raise UserError(f"--res must be one of {', '.join(map(str, RISK_GRID_RESOLUTIONS))}, got {res}")
    if out is not None and out.suffix.lower() not in OUT_SUFFIXES:
        raise UserError(f"--out must end in .geojson or .json, got {out.name!r}")
    if not (np.isfinite(window) and window > 0):
        raise UserError(f"--window must be a number of seconds > 0, got {window}")
    when = _parse_time(at, "--at").tz_convert("UTC")
    settings = _settings(ctx)
    try:
        weights = weights_from(settings.risk_weights)
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad HAZMAP_RISK_WEIGHTS: {exc}") from exc
    world = _load_world(settings)
    store = _open_store(settings)
    try:
        _, table = grid_at(store, world, when, resolution, window, weights)
    finally:
        store.close()
    if out is not None:
        out.write_text(json.dumps(scores_geojson(table, when, resolution), ensure_ascii=False), encoding="utf-8")
    if as_json:
        from spatial.h3cells import cell_hex

        cells = [{"cell": c, "score": round(r["score"], 3), "band": r["band"], **{p: round(r[p], 3) for p in PARTS}}
                 for c, r in zip(cell_hex(table.index.to_numpy("uint64")), table.to_dict("records"))]
        typer.echo(json.dumps({"at": when.isoformat(), "resolution": resolution, "cells": cells}, ensure_ascii=False))
        return
    counts = table["band"].value_counts()
    typer.echo(f"risk grid at {when.tz_convert('Asia/Shanghai'):%Y-%m-%d %H:%M:%S} (Asia/Shanghai), res {resolution}: "
               f"{len(table)} cells; " + ", ".join(f"{b} {int(counts.get(b, 0))}" for b in reversed(BANDS)))
    for cell, row in table.sort_values("score", ascending=False).head(10).iterrows():
        parts = "  ".join(f"{p} {row[p]:.1f}" for p in PARTS if row[p])
        typer.echo(f"  {format(int(cell), 'x')}  {row['score']:8.1f}  {row['band']:<6}  {parts}")
    if out is not None:
        typer.echo(f"wrote {len(table)} cells to {out}", err=True)


@bench_cli.command("grid")
def bench_grid(
    seed: Annotated[int, typer.Option(help="demo world seed")] = 7,
    scale: Annotated[float, typer.Option(help="fraction of Ningbo's counts")] = 1.0,
    repeat: Annotated[int, typer.Option(help="runs per figure (the median is printed)")] = 5,
    ticks: Annotated[int, typer.Option(help="incremental ticks per figure")] = 20,
) -> None:
    """The risk grid: full and incremental scores at every resolution, 3,419 and 15,000 trucks,
    against a GeoPandas/h3 groupby of the same inputs."""
    from bench.grid import run_grid_bench

    run_grid_bench(seed=seed, scale=scale, repeat=repeat, ticks=ticks)
