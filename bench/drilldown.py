"""Drill-down benchmark: the server's half of opening a panel, and loading a truck's 24 h track.

For the demo world at (seed, scale) in an SQLite store with a 24 h track of 2,880 reports (30 s) for
each of `tracks` trucks and a few incidents, measured in the same run (wall time of this process):

- ``panel_ms_p90_<kind>``: data/drilldown.gather + layers/panels.build_panel (figures included)
  for `samples` random entities of the kind, 90th percentile;
- ``anchor_ms_p90_<kind>``: the attribute panel of the same entities (layers/details.describe),
  what a click cost before; ``ratio_<kind>`` = panel ÷ anchor;
- ``track_24h_ms``: the store read of one truck's 24 h (2,880 positions) plus its speed figure,
  the server's part of `replay_load_ms`; ``anchor_read_ms``: the bare store read of the same rows.

The browser's part (click to painted panel, the replay's drawing) is not measured here: the
issue's ``panel_open_ms_p90`` ≤ 300 ms and ``replay_load_ms`` ≤ 500 ms include it.

    python -m bench.drilldown [--seed 7] [--scale 1.0] [--samples 30] [--tracks 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from data import drilldown
from data.demo import build_world
from data.store import Store
from layers.details import FeatureDirectory
from layers.panels import build_panel
from layers.panels.charts import speed_figure
from spatial.model import LiveState, PingBatch

NOW = pd.Timestamp("2026-11-02T04:00:00Z")
TRACK_POSITIONS = 2880  # 24 h at 30 s
TARGETS = {"panel_open_ms_p90": 300.0, "replay_load_ms": 500.0}


def _tracks(world, n: int, rng) -> PingBatch:
    ids = world.vehicles["id"].to_numpy(object)[:n]
    ms = np.int64(NOW.value // 1_000_000) - np.arange(TRACK_POSITIONS)[::-1].astype("int64") * 30_000
    lon0 = world.vehicles.geometry.x.to_numpy()[:n]
    lat0 = world.vehicles.geometry.y.to_numpy()[:n]
    walk = np.cumsum(rng.normal(0, 1e-4, (n, TRACK_POSITIONS)), axis=1)
    return PingBatch.from_arrays(np.repeat(ids, TRACK_POSITIONS), np.tile(ms, n), (lon0[:, None] + walk).ravel(),
                                 (lat0[:, None] + walk).ravel(), rng.uniform(0, 90, n * TRACK_POSITIONS))


def _p90(values) -> float:
    return float(np.percentile(values, 90))


def run(seed: int, scale: float, samples: int, tracks: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    world = build_world(seed=seed, scale=scale)
    directory = FeatureDirectory(world)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{(Path(tmp) / 'bench.sqlite').as_posix()}", upgrade=True)
        try:
            store.replace_world(world)
            batch = _tracks(world, tracks, rng)
            store.write_pings(batch)
            live = LiveState()
            live.apply_pings(batch)
            for kind in drilldown.KINDS:
                table = world.table(kind)
                ids = rng.choice(table["id"].to_numpy(object), size=min(samples, len(table)), replace=False)
                if kind == "vehicles":
                    ids = np.concatenate([world.vehicles["id"].to_numpy(object)[:min(tracks, samples)], ids])[:samples]
                drilldown.gather(world, kind, str(ids[0]), live=live, store=store, now=NOW)  # warm caches
                panel, anchor = [], []
                for feature_id in ids:
                    started = time.perf_counter()
                    data = drilldown.gather(world, kind, str(feature_id), live=live, store=store, now=NOW)
                    build_panel(kind, data, "zh", [])
                    panel.append((time.perf_counter() - started) * 1000)
                    started = time.perf_counter()
                    directory.describe(kind, str(feature_id), "zh")
                    anchor.append((time.perf_counter() - started) * 1000)
                figures[f"panel_ms_p90_{kind}"] = _p90(panel)
                figures[f"anchor_ms_p90_{kind}"] = _p90(anchor)
                figures[f"ratio_{kind}"] = _p90(panel) / max(_p90(anchor), 1e-6)
            vehicle = str(world.vehicles["id"].iloc[0])
            load, bare = [], []
            for _ in range(5):
                started = time.perf_counter()
                track = store.read_pings(NOW - pd.Timedelta(hours=24), NOW + pd.Timedelta(seconds=1), [vehicle])
                speed_figure(track["epoch_ms"], track["speed_kmh"], 80.0, "zh").to_plotly_json()
                load.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                store.read_pings(NOW - pd.Timedelta(hours=24), NOW + pd.Timedelta(seconds=1), [vehicle])
                bare.append((time.perf_counter() - started) * 1000)
            figures["track_24h_positions"] = float(len(track))
            figures["track_24h_ms"] = float(np.median(load))
            figures["anchor_read_ms"] = float(np.median(bare))
        finally:
            store.close()
    return figures


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--tracks", type=int, default=20)
    args = parser.parse_args(argv)
    figures = run(args.seed, args.scale, args.samples, args.tracks)
    for name, value in figures.items():
        print(f"{name:32s} {value:10.1f}")
    print(f"targets (browser included, not measured here): {TARGETS}")


if __name__ == "__main__":
    main()
