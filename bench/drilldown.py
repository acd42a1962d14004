"""Drill-down benchmark: the server's half of opening a panel, and loading a truck's 24 h track.

For the demo world at (seed, scale) in an SQLite store with a 24 h track of 2,880 reports (30 s) for
each of `tracks` trucks and a few incidents, measured in the same run (wall time of this process):

- ``panel_ms_p90_<kind>``: data/drilldown.gather + layers/panels.build_panel (figures included)
  for `samples` random entities of the kind, 90th percentile;
- ``anchor_ms_p90_<kind>``: the attribute panel of the same entities (layers/details.describe),
  what a click cost before; ``ratio_<kind>`` = panel ÷ anchor;
- ``track_24h_ms``: the store read of one truck's 24 h (2,880 positions) plus its speed figure,
  the server's part of `replay_load_ms`; ``anchor_read_ms``: the bare store read of the same rows.

The browser's part is `browser_figures`, run by ``hazmap bench map`` (bench/map.py) in its
Chromium: the issue's ``panel_open_ms_p90`` ≤ 300 ms and ``replay_load_ms`` ≤ 500 ms.

    python -m bench.drilldown [--seed 7] [--scale 1.0] [--samples 30] [--tracks 20]
"""

from __future__ import annotations

import argparse
import json
import os
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
                json.dumps(speed_figure(track["epoch_ms"], track["speed_kmh"], 80.0, "zh"))
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


# --- the browser's half (hazmap bench map) -------------------------------------------------------
# The wall (every layer on, the live canvas fed) with a store holding a 24 h track of TRACK_POSITIONS
# reports for each sampled truck (ending at its live position) and a day of readings at 1 min for the
# sampled points and the points of the sampled hazard sources. For each kind, `samples` entities with
# no other point feature within ISOLATED_M (so the click can only hit them) are clicked where they
# are drawn at zoom 17, as an officer would; the panel is closed between clicks (not timed).
#
# - panel_open_ms_p90_<kind>: the press (pointerdown) to the animation frame in which the panel shows
#   the clicked entity and every chart in it holds its drawn Plotly SVG; panel_open_ms_p90: over all;
# - replay_load_ms: the press on a truck to its replay ready (track drawn, marker, slider, marks:
#   assets/hazmap_panel.js readyAt), p90 over the trucks; replay_positions: the positions it holds;
# - panel_first_open_ms: the very first panel of the page (Plotly's bundle loads then), not in the p90s;
# - panel_misses: clicks whose panel showed another entity or none within PANEL_TIMEOUT_MS;
# - anchor_panel_open_ms_p90: the repair shops' attribute panels (ANCHOR_KIND); ratio_panel_open:
#   panel_open_ms_p90 / anchor; load_average_1min: the machine's load when the run ended.
BROWSER_KINDS = ("vehicles", "hazard_sources", "monitoring_points", "entities", "sensitive_sites", "wash_stations")
# The anchor, in the same run: the same click on a repair shop, whose panel is the plain attribute
# table (no drill-down data, no chart): what any panel costs on this machine at this moment.
ANCHOR_KIND = "repair_shops"
ISOLATED_M = 40.0
CLICK_ZOOM = 17
PANEL_TIMEOUT_MS = 20_000
READING_STEP_MS = 60_000

PRESS_JS = """() => { if (window.__hzPress) return; window.__hzPress = true;
    document.addEventListener('pointerdown', () => { window.__pressAt = performance.now(); }, true); }"""

ANCHOR_JS = """([layer, name]) => {
    const title = document.querySelector('#hz-panel-body .hz-panel-title');
    if (!title) return false;
    return title.innerText === name ? {at: performance.now(), charts: 0} : {miss: true};
}"""

PAINTED_JS = """([layer, id]) => {
    const node = document.querySelector('#hz-panel-body .hz-panel-focus');
    if (!node) return document.querySelector('#hz-panel-body .hz-panel-title') ? {miss: true} : false;
    const focus = JSON.parse(node.getAttribute('data-focus') || '{}');
    if (focus.layer !== layer || focus.id !== id) return {miss: true, layer: focus.layer, id: focus.id};
    const charts = [...document.querySelectorAll('#hz-panel-body .hz-panel-chart')];
    if (!charts.every(c => c.querySelector('.main-svg'))) return false;
    if (![...document.querySelectorAll('#hz-panel-body img.hz-panel-spark')].every(i => i.complete)) return false;
    if (layer === 'vehicles' && document.querySelector('#hz-panel-body .hz-replay')) {
        const replay = window.hazmapPanel && window.hazmapPanel.replay();
        if (!replay) return false;
        return {at: performance.now(), charts: charts.length, replayAt: replay.readyAt, positions: replay.positions};
    }
    return {at: performance.now(), charts: charts.length};
}"""


def _points_everywhere(world, live) -> np.ndarray:
    """Every point feature the wall draws (each point layer and the live trucks) as lon/lat rows."""
    import shapely

    from spatial.model import LAYER_NAMES

    rows = []
    for name in LAYER_NAMES:
        geometry = world.table(name).geometry.to_numpy()
        points = geometry[shapely.get_type_id(geometry) == 0] if len(geometry) else geometry
        rows.append(np.column_stack([shapely.get_x(points), shapely.get_y(points)]) if len(points) else
                    np.empty((0, 2)))
    rows.append(live.positions[["lon", "lat"]].to_numpy("float64"))
    return np.vstack(rows)


def isolated(world, live, lonlat: np.ndarray) -> np.ndarray:
    """Whether each lon/lat row has no other point the wall draws within ISOLATED_M (a click there
    can only open it)."""
    return _isolated(np.asarray(lonlat, dtype="float64").reshape(-1, 2), _points_everywhere(world, live))


def _isolated(lonlat: np.ndarray, everywhere: np.ndarray) -> np.ndarray:
    """Whether each point has no other drawn point within ISOLATED_M (itself counts once)."""
    import shapely

    from spatial.crs import to_metric

    ex, ey = to_metric(everywhere[:, 0], everywhere[:, 1])
    x, y = to_metric(lonlat[:, 0], lonlat[:, 1])
    tree = shapely.STRtree(shapely.points(ex, ey))
    hits = tree.query(shapely.points(x, y), predicate="dwithin", distance=ISOLATED_M)[0]
    counts = np.bincount(hits, minlength=len(lonlat))
    return counts <= 1


def _samples(world, live, samples: int, rng) -> dict[str, pd.DataFrame]:
    """Per kind: id, lon, lat of `samples` isolated entities (trucks at their live positions)."""
    import shapely

    everywhere = _points_everywhere(world, live)
    chosen = {}
    for kind in (*BROWSER_KINDS, ANCHOR_KIND):
        if kind == "vehicles":
            frame = live.positions[["lon", "lat"]].rename_axis("id").reset_index()
        else:
            table = world.table(kind)
            table = table[shapely.get_type_id(table.geometry.to_numpy()) == 0]
            frame = pd.DataFrame({"id": table["id"].astype(str).to_numpy(object), "lon": table.geometry.x.to_numpy(),
                                  "lat": table.geometry.y.to_numpy(), "name": table["name" if "name" in table.columns else "id"].astype(str).to_numpy(object)})
        frame = frame[_isolated(frame[["lon", "lat"]].to_numpy("float64"), everywhere)]
        take = rng.choice(len(frame), size=min(samples + 1, len(frame)), replace=False)  # + 1: the warm-up
        chosen[kind] = frame.iloc[np.sort(take)].reset_index(drop=True)
    return chosen


def _fill_store(store, world, chosen: dict[str, pd.DataFrame], now_ms: int, rng) -> None:
    """The sampled trucks' 24 h tracks (a walk ending at the live position, with a stop) and a day of
    readings for the sampled points and the points of the sampled hazard sources."""
    from spatial.model import ReadingBatch

    trucks = chosen["vehicles"]
    n = len(trucks)
    ms = now_ms - np.arange(TRACK_POSITIONS)[::-1].astype("int64") * 30_000
    steps = rng.normal(0, 2e-3, (n, TRACK_POSITIONS))  # ~200 m a report: driving
    steps[:, TRACK_POSITIONS // 2:TRACK_POSITIONS // 2 + 60] = 0.0  # half an hour still: a stop to mark
    walk = np.cumsum(steps[:, ::-1], axis=1)[:, ::-1] - steps[:, -1:]  # ends at 0: the live position
    lon = trucks["lon"].to_numpy()[:, None] + walk
    lat = trucks["lat"].to_numpy()[:, None] + walk * 0.7
    store.write_pings(PingBatch.from_arrays(np.repeat(trucks["id"].to_numpy(object), TRACK_POSITIONS),
                                            np.tile(ms, n), lon.ravel(), lat.ravel(),
                                            rng.uniform(0, 90, n * TRACK_POSITIONS)))
    points = world.monitoring_points
    wanted = set(chosen["monitoring_points"]["id"]) | set(
        points.loc[points["hazard_source_id"].isin(chosen["hazard_sources"]["id"]), "id"].astype(str))
    ids = np.array(sorted(wanted), dtype=object)
    steps = 24 * 3_600_000 // READING_STEP_MS
    times = now_ms - np.arange(steps)[::-1].astype("int64") * READING_STEP_MS
    values = 40 + 10 * np.sin(np.arange(steps) / 60.0)[None, :] + rng.normal(0, 1, (len(ids), steps))
    store.write_readings(ReadingBatch.from_arrays(np.repeat(ids, steps), np.tile(times, len(ids)), values.ravel()))


def _open(page, kind: str, feature_id: str, lon: float, lat: float, name: str | None = None) -> dict | None:
    """Close the panel, centre the map on the entity at CLICK_ZOOM, press it; what PAINTED_JS saw
    (with the press's time), None when no panel came."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.evaluate("() => { const b = document.getElementById('hz-panel-close'); if (b) b.click(); }")
    try:
        page.wait_for_function("() => !document.querySelector('#hz-panel-body .hz-panel-focus')",
                               timeout=PANEL_TIMEOUT_MS)
    except PlaywrightTimeout:  # the panel did not close: this sample is a miss, counted
        print(f"drill-down bench: the panel did not close before {kind} {feature_id}")
        return None
    if kind == "vehicles":  # where the screen has the truck now (it may have moved since the sample)
        lon, lat = page.evaluate("(id) => window.hazmapLive.positionsOf(id)", feature_id) or (lon, lat)
    page.evaluate("([lat, lon, z]) => { window.hazmap.leafletMap.setView([lat, lon], z, {animate: false}); }",
                  [lat, lon, CLICK_ZOOM])
    page.wait_for_timeout(500)  # the canvases redraw at the new view (not timed)
    x, y = page.evaluate("""([lat, lon, id]) => { const map = window.hazmap.leafletMap;
        const box = map.getContainer().getBoundingClientRect();
        const drawn = id && window.hazmapLive.drawnPixel(id);
        const p = drawn ? {x: drawn[0], y: drawn[1]} : map.latLngToContainerPoint([lat, lon]);
        return [box.left + p.x, box.top + p.y]; }""", [lat, lon, feature_id if kind == "vehicles" else None])
    page.mouse.click(x, y)
    try:
        script, arg = (ANCHOR_JS, [kind, name]) if kind == ANCHOR_KIND else (PAINTED_JS, [kind, feature_id])
        seen = page.wait_for_function(script, arg=arg, polling="raf",
                                      timeout=PANEL_TIMEOUT_MS).json_value()
    except PlaywrightTimeout:  # no panel: a miss, counted
        return None
    if seen.get("miss"):
        page.screenshot(path=str(Path(tempfile.gettempdir()) / f"hazmap-drill-miss-{kind}.png"))
        print(f"drill-down bench: pressed {kind} {feature_id}, the panel shows {seen.get('layer')} {seen.get('id')}")
    seen["pressAt"] = page.evaluate("window.__pressAt")
    return seen


def browser_figures(browser, world, *, seed: int = 7, samples: int = 15) -> dict[str, float]:
    """The drill-down's browser timings on `world` (see above), in `browser` (Playwright Chromium)."""
    from werkzeug.serving import make_server

    import app.webapp as webapp
    from app.settings import Settings
    from bench.map import RouteFeed

    rng = np.random.default_rng(seed)
    feed = RouteFeed(world, seed=seed)
    live = feed.snapshot()
    now_ms = int(live.positions["epoch_ms"].max())
    chosen = _samples(world, live, samples, rng)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{(Path(tmp) / 'drill.sqlite').as_posix()}", upgrade=True)
        server, started = None, False
        try:
            store.replace_world(world)
            _fill_store(store, world, chosen, now_ms, rng)
            feed.start()
            started = True
            settings = Settings(var_dir=Path(tmp) / "var", tile_url="http://127.0.0.1:9/{z}/{x}/{y}.png", language="zh")
            web = webapp.create_app(settings, world, world_version=world.fingerprint(), live=feed, store=store)
            server = make_server("127.0.0.1", 0, web.server, threaded=True)
            import threading

            threading.Thread(target=server.serve_forever, daemon=True).start()
            context = browser.new_context(viewport={"width": 1920, "height": 1080}, device_scale_factor=1)
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            page.wait_for_function("() => window.hazmap && window.hazmap.leafletMap && window.hazmapPanel "
                                   "&& window.hazmapLive && window.hazmapLive.trucks > 0", timeout=120_000)
            # Plotly's bundle loads with the first chart a panel shows (a truck's: the first kind), in
            # the page's first panel, reported apart as panel_first_open_ms
            page.wait_for_timeout(1000)
            page.evaluate(PRESS_JS)
            every, misses, replays, positions = [], 0, [], []
            for kind in (*BROWSER_KINDS, ANCHOR_KIND):
                times = []
                for item in chosen[kind].itertuples(index=False):
                    seen = _open(page, kind, str(item.id), float(item.lon), float(item.lat),
                                 getattr(item, "name", None))
                    if seen is None or seen.get("miss"):
                        misses += 1
                        continue
                    if "panel_first_open_ms" not in figures:
                        figures["panel_first_open_ms"] = seen["at"] - seen["pressAt"]
                        continue  # the page's first panel loads Plotly: reported apart
                    times.append(seen["at"] - seen["pressAt"])
                    if "replayAt" in seen:
                        replays.append(seen["replayAt"] - seen["pressAt"])
                        positions.append(seen["positions"])
                if kind == ANCHOR_KIND:
                    figures["anchor_panel_open_ms_p90"] = float(np.percentile(times, 90)) if times else float("nan")
                    continue
                figures[f"panel_open_ms_p90_{kind}"] = float(np.percentile(times, 90)) if times else float("nan")
                figures[f"panel_open_n_{kind}"] = len(times)
                every += times
            figures["panel_open_ms_p90"] = float(np.percentile(every, 90)) if every else float("nan")
            figures["panel_open_ms_p50"] = float(np.percentile(every, 50)) if every else float("nan")
            figures["replay_load_ms"] = float(np.percentile(replays, 90)) if replays else float("nan")
            figures["replay_positions"] = float(np.median(positions)) if positions else float("nan")
            figures["panel_misses"] = misses
            figures["ratio_panel_open"] = figures["panel_open_ms_p90"] / figures["anchor_panel_open_ms_p90"]
            figures["load_average_1min"] = os.getloadavg()[0]
            context.close()
        finally:
            if server is not None:
                server.shutdown()
            if started:
                feed.stop()
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
    print(f"targets (click to painted panel, in the browser: hazmap bench map --part drilldown): {TARGETS}")


if __name__ == "__main__":
    main()
