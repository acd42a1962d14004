"""A tiny builder for test tracks and worlds (in the spirit of movingpandas' tests).

Tracks are written in metres on EPSG:32651 around an origin in Ningbo, so a test can put a
ping exactly 499.9 m or 500.1 m from a route; they come out as real WGS-84 `PingBatch`es.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from spatial.crs import from_metric, to_metric
from spatial.model import LAYER_SPECS, PingBatch, World
from spatial.rules.base import RuleBatch, RuleWorld

# A point in Yinzhou, Ningbo, in UTM 51N metres; tracks are offsets from it.
ORIGIN_X, ORIGIN_Y = (float(v) for v in to_metric(121.55, 29.85))
T0_MS = int(pd.Timestamp("2026-11-02 08:00", tz="Asia/Shanghai").value // 1_000_000)


def lonlat(xy: Sequence[tuple[float, float]] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metre offsets from the origin -> WGS-84 lon/lat arrays."""
    xy = np.asarray(xy, dtype="float64").reshape(-1, 2)
    return from_metric(xy[:, 0] + ORIGIN_X, xy[:, 1] + ORIGIN_Y)


def metric_geometry(geom):
    """A shapely geometry drawn in metre offsets -> the same geometry in WGS-84."""
    return shapely.transform(geom, lambda xy: np.column_stack(lonlat(xy)))


def track(
    vehicle_id: str,
    xy: Sequence[tuple[float, float]] | np.ndarray,
    *,
    start_ms: int = T0_MS,
    interval_s: float | Sequence[float] = 30.0,
    speed_kmh: float | Sequence[float] | None = None,
) -> PingBatch:
    """One vehicle's pings at the given metre offsets, every `interval_s` (or at the given
    cumulative gaps). `speed_kmh` None leaves the reported speed unknown (NaN)."""
    xy = np.asarray(xy, dtype="float64").reshape(-1, 2)
    n = len(xy)
    gaps = np.broadcast_to(np.asarray(interval_s, dtype="float64"), (max(n - 1, 0),))
    times = start_ms + np.concatenate([[0.0], np.cumsum(gaps) * 1000]).round().astype("int64")[:n]
    lon, lat = lonlat(xy)
    speed = None if speed_kmh is None else np.broadcast_to(np.asarray(speed_kmh, "float64"), (n,))
    return PingBatch.from_arrays([vehicle_id] * n, times, lon, lat, speed_kmh=speed)


def concat(batches: Iterable[PingBatch]) -> PingBatch:
    batches = list(batches)
    return PingBatch.from_frame(pd.concat([b.to_frame() for b in batches], ignore_index=True))


def one_at_a_time(batch: PingBatch) -> list[PingBatch]:
    """The same pings as single-ping batches, in the batch's (arrival) order."""
    frame = batch.to_frame()
    return [PingBatch.from_frame(frame.iloc[[i]]) for i in range(len(frame))]


def rule_batch(
    pings: PingBatch,
    world: RuleWorld,
    *,
    waybill: int | np.ndarray = -1,
    loaded: bool | np.ndarray = False,
) -> RuleBatch:
    """What the engine would release for already-clean pings: sorted by (slot, time), metric
    coordinates, speed derived where not reported. For testing one rule on its own."""
    frame = pings.to_frame()
    ids = frame["vehicle_id"].to_numpy(dtype=object)
    slot = world.vehicle_ids.get_indexer(ids).astype("int64")
    unknown = slot < 0
    if unknown.any():
        codes, _ = pd.factorize(ids[unknown], sort=True)
        slot[unknown] = len(world.vehicle_ids) + codes
    order = np.lexsort((frame["epoch_ms"].to_numpy(), slot))
    frame, slot = frame.iloc[order].reset_index(drop=True), slot[order]
    ids = ids[order]
    x, y = to_metric(frame["lon"].to_numpy(), frame["lat"].to_numpy())
    t = frame["epoch_ms"].to_numpy("int64")
    same = np.r_[False, slot[1:] == slot[:-1]]
    step_m = np.r_[np.nan, np.hypot(np.diff(x), np.diff(y))]
    step_s = np.r_[np.nan, np.diff(t) / 1000.0]
    derived = np.where(same, step_m / np.where(step_s > 0, step_s, np.nan) * 3.6, np.nan)
    reported = frame["speed_kmh"].to_numpy("float64")
    n = len(frame)
    return RuleBatch(
        slot=slot, vehicle_id=ids, epoch_ms=t, lon=frame["lon"].to_numpy(), lat=frame["lat"].to_numpy(),
        x=np.asarray(x), y=np.asarray(y), speed_kmh=np.where(np.isnan(reported), derived, reported),
        speed_derived=np.isnan(reported), heading=frame["heading"].to_numpy("float64"),
        alarm=frame["alarm"].to_numpy("uint32"), status=frame["status"].to_numpy("uint32"),
        waybill=np.broadcast_to(np.asarray(waybill, "int64"), (n,)).copy(),
        loaded=np.broadcast_to(np.asarray(loaded, bool), (n,)).copy(),
    )


def layer(name: str, rows: list[dict]) -> gpd.GeoDataFrame:
    """A World layer from row dicts with a `geometry` (already WGS-84); missing optional
    fields are None."""
    spec = LAYER_SPECS[name]
    data = {c: [r.get(c) for r in rows] for c in spec.columns}
    return gpd.GeoDataFrame(data, geometry=[r["geometry"] for r in rows], crs="EPSG:4326")


def tiny_world(**tables: pd.DataFrame) -> World:
    """An empty World with the given tables filled in (e.g. vehicles=layer("vehicles", [...]))."""
    world = World.empty()
    for name, table in tables.items():
        setattr(world, name, table)
    return world


def vehicle(vehicle_id: str, body: str = "tank", media: Sequence[str] = ("1203",)) -> dict:
    return {
        "id": vehicle_id, "plate": f"浙B{vehicle_id[-5:]}", "carrier": "测试运输", "body": body,
        "approved_media": list(media), "terminal_phone": "0" + vehicle_id[-11:].rjust(11, "0"),
        "driver": "张三", "escort": "李四", "geometry": metric_geometry(shapely.Point(0, 0)),
    }
