"""Builders shared by the monitoring-point rule tests (no tests here).

Points are rows of `world.monitoring_points`; readings are `ReadingBatch`es written as value
lists at a fixed interval from T0. `events_of` runs readings through the real point stage
(cleaning included) with the chosen rules and returns events as comparable tuples; the
oracles in the test files restate each rule in plain Python over per-point reading lists and
do not import spatial/rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import pandas as pd
import shapely

from spatial.model import ReadingBatch
from tests.tracks import T0_MS, layer, metric_geometry, tiny_world

MIN_MS = 60_000


def point(point_id: str, kind: str = "combustible_gas", *, high=25.0, high_high=50.0, low=None, low_low=None,
          range_min=0.0, range_max=100.0, unit: str | None = None, substance_un: str | None = None,
          hazard_source_id: str = "HS-000001", at=(0.0, 0.0)) -> dict:
    units = {"combustible_gas": "%LEL", "toxic_gas": "mg/m3", "level": "m", "pressure": "MPa", "temperature": "°C"}
    return {"id": point_id, "hazard_source_id": hazard_source_id, "kind": kind, "unit": unit or units[kind],
            "substance_un": substance_un, "low_low": low_low, "low": low, "high": high, "high_high": high_high,
            "range_min": range_min, "range_max": range_max, "geometry": metric_geometry(shapely.Point(*at))}


def point_world(*points: dict):
    return tiny_world(monitoring_points=layer("monitoring_points", list(points)))


def readings(point_id: str, values: Sequence[float], *, start_ms: int = T0_MS,
             interval_s: float | Sequence[float] = 60.0) -> ReadingBatch:
    """One point's readings every `interval_s` (or at the given successive gaps) from start_ms."""
    n = len(values)
    gaps = np.broadcast_to(np.asarray(interval_s, "float64"), (max(n - 1, 0),))
    times = start_ms + np.concatenate([[0.0], np.cumsum(gaps) * 1000]).round().astype("int64")[:n]
    return ReadingBatch.from_arrays([point_id] * n, times, np.asarray(values, "float64"))


def at_times(point_id: str, times_ms: Sequence[int], values: Sequence[float]) -> ReadingBatch:
    return ReadingBatch.from_arrays([point_id] * len(times_ms), np.asarray(times_ms, "int64"), values)


def merge(*batches: ReadingBatch, by_time: bool = True) -> ReadingBatch:
    """Several batches as one, in time order (stable) or simply appended."""
    frame = pd.concat([b.to_frame() for b in batches], ignore_index=True)
    if by_time:
        frame = frame.sort_values("epoch_ms", kind="stable")
    return ReadingBatch.from_arrays(frame["point_id"].to_numpy(object), frame["epoch_ms"].to_numpy("int64"),
                                    frame["value"].to_numpy("float64"))


def split(batch: ReadingBatch, cuts: Sequence[int]) -> list[ReadingBatch]:
    """The batch cut at the given positions (arrival order kept)."""
    bounds = [0, *sorted({int(c) for c in cuts if 0 < c < len(batch)}), len(batch)]
    return [ReadingBatch.from_arrays(batch.point_id[a:b], batch.epoch_ms[a:b], batch.value[a:b])
            for a, b in pairwise(bounds)]


def one_at_a_time(batch: ReadingBatch) -> list[ReadingBatch]:
    return split(batch, range(1, len(batch)))


def event_key(event) -> tuple:
    """An event as a comparable tuple (times in ms)."""
    end = None if event.end is None else int(event.end.value // 1_000_000)
    return (event.rule, event.subject_id, event.phase, int(event.start.value // 1_000_000), end, event.severity,
            tuple(sorted((k, repr(v)) for k, v in event.evidence.items())))


def events_of(world, rules, batches: Sequence[ReadingBatch], now_ms: Sequence[int | None] | None = None,
              settings=None) -> list:
    """Every event of the point stage running only `rules`, over the batches in order (each
    with its `now_ms`), sorted in the engine's order."""
    from spatial.rules.engine import sort_events
    from spatial.rules.points import PointEngine, PointEngineSettings

    engine = PointEngine(world, settings or PointEngineSettings(), rules=rules)
    events = []
    for k, batch in enumerate(batches):
        events.extend(engine.step(batch, None if now_ms is None else now_ms[k]))
    events.extend(engine.flush())
    return sort_events(events)
