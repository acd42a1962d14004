"""The wall in headless Chromium (Debian's, through Playwright) with every layer on: how long the
first full render takes, how long a pan redraws, how long a live tick takes from its answer to its
paint, how many browser tasks pass 50 ms while the feed runs, and how many bytes a tick costs.

The app runs in this process (the real Dash app on a werkzeug server in a thread) on the demo
world at `--scale` with a scripted live feed: every truck placed on a waybill route, 1/15 of them
(30 s reports over a 2 s poll) moving on along it every 2 s. Measured in the same run:

- ``first_render_ms``: navigation start to the moment every layer is drawn (every GeoJSON layer
  holds all its features, each static and vector canvas layer has marked its first paint and
  drawn all its features, the live canvas holds every truck): every layer is on from the start;
  timed in the page at the first animation frame that shows them all (``first_render_seen_ms``:
  as read by a further call afterwards, the bench's figure before the sixth round);
- ``pan_redraw_ms_p90``: a 300 px pan, from the call to the second animation frame after it (the
  static and vector canvases keep their drawing through a pan within their padding);
- ``zoom_redraw_ms_p90``: a one-step zoom in or out (every canvas redraws what the view shows),
  measured the same way (``zoom_in_ms_p50``, ``zoom_out_ms_p50``: the two apart); ``zoom_settled_ms_p90`` to the end of the static and vector canvases'
  padding, drawn off screen after the view in idle strips (assets/hazmap_canvas.js ``viewFirst``);
- ``tick_to_paint_ms_p50`` / ``_p90`` at 3,419 and at 15,000 trucks: a poll's decode + paint
  (assets/hazmap_live.js stats; the paint from its start to its image put, across the short tasks
  it runs in), ``tick_longest_task_ms_max``: the longest of those tasks;
- ``long_tasks_over_50ms``: PerformanceObserver long tasks over 50 ms while the feed runs;
- ``static_canvas_paint_ms_p90``, ``vector_canvas_paint_ms_p90``: what those canvases' own redraws
  took in the page's script (a 2D canvas rasterises its paths later, outside this figure);
  ``static_worker_ms_p90``: the static canvas's stamping on its worker (assets/hazmap_static_worker.js;
  nan when the page stamped), ``static_wait_ms_p90``: how long the page waited for it at a pan's or
  zoom's put (the live and vector canvases drawn meanwhile);
- ``bytes_per_tick``: mean gzip bytes on the wire of a poll (Resource Timing), ``chars_per_tick``
  the JSON it decodes;
- the anchor: every layer as dash-leaflet GeoJSON (the static points as circle markers, lines and
  areas as Leaflet paths: the wall before layers/static_canvas.py and layers/vector_canvas.py):
  ``anchor_first_render_ms``, ``anchor_pan_redraw_ms_p90``, ``anchor_zoom_redraw_ms_p90`` and the
  ratios anchor ÷ canvas.

    python -m bench.map [--seed 7] [--scale 1.0] [--ticks 15] [--pans 15] [--busy K]
    hazmap bench map ...

``--busy K`` runs K busy loops (``python -c 'while True: pass'``, nice 0) beside the whole run: a
reproducible load for the question whether the targets hold on a machine doing other work (issue
16's eleventh round); the load average at the start is printed with the world line.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

# Debian's Chromium, never a browser Playwright downloads; the flags the test suite uses too.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def _chromium() -> str:
    import shutil

    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        raise SystemExit("hazmap bench map needs Debian's Chromium: apt-get install chromium")
    return path

FLEETS = (3419, 15000)
TICK_S = 2.0
MOVING_SHARE = 2 / 30
TARGETS = {"first_render_ms": 1500, "pan_redraw_ms_p90": 100, "tick_to_paint_ms_p50": 50,
           "tick_to_paint_ms_p90": 100, "long_tasks_over_50ms": 0, "bytes_per_tick": 10_000,
           "panel_open_ms_p90": 300, "replay_load_ms": 500}  # the last two: bench/drilldown.browser_figures
LOAD_TIMEOUT_MS = 120_000


class RouteFeed:
    """A live source: every truck on a waybill route, a share moving on every TICK_S."""

    def __init__(self, world, seed: int = 0):
        from spatial.model import LiveState

        rng = np.random.default_rng(seed)
        self.ids = world.vehicles["id"].astype(str).to_numpy(object)
        routes = world.waybills.geometry.to_numpy()
        self.routes = routes[rng.integers(0, len(routes), len(self.ids))]
        self.share = rng.random(len(self.ids))
        self.rng = rng
        self.epoch_ms = int(pd.Timestamp("2026-11-02T01:00:00Z").value // 1_000_000)
        self._state = LiveState()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._apply(np.arange(len(self.ids)))
        self._thread = threading.Thread(target=self._run, name="bench-map-feed", daemon=True)

    def _apply(self, which: np.ndarray) -> None:
        from spatial.model import PingBatch

        points = shapely.line_interpolate_point(self.routes[which], self.share[which], normalized=True)
        n = len(which)
        batch = PingBatch.from_arrays(self.ids[which], np.full(n, self.epoch_ms), shapely.get_x(points),
                                      shapely.get_y(points), np.full(n, 45.0), self.rng.uniform(0, 360, n))
        with self._lock:
            self._state.apply_pings(batch)

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            self.epoch_ms += int(TICK_S * 1000)
            moving = self.rng.choice(len(self.ids), max(1, int(len(self.ids) * MOVING_SHARE)), replace=False)
            self.share[moving] = np.minimum(1.0, self.share[moving] + 0.01)
            self._apply(moving)

    def snapshot(self):
        with self._lock:
            return self._state.copy()

    def start(self) -> "RouteFeed":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def with_fleet(world, n: int):
    """The world with exactly `n` vehicles: its own, then copies with new ids and plates."""
    vehicles = world.vehicles
    if n <= len(vehicles):
        return dataclasses.replace(world, vehicles=vehicles.iloc[:n].copy())
    extra = vehicles.iloc[np.arange(n - len(vehicles)) % len(vehicles)].copy()
    extra["id"] = [f"VEH-B{i:06d}" for i in range(len(extra))]
    extra["plate"] = [f"浙B·X{i:05d}" for i in range(len(extra))]
    return dataclasses.replace(world, vehicles=pd.concat([vehicles, extra], ignore_index=True))


def _all_layers_on():
    """Every overlay shown from the start (the bench's wall: every layer on)."""
    import app.webapp as webapp
    import layers.catalog as catalog

    shown = tuple(dataclasses.replace(layer, shown_by_default=True) for layer in catalog.LAYERS)
    catalog.LAYERS = webapp.LAYERS = shown


def serve(world, live, canvas: bool):
    from werkzeug.serving import make_server

    import app.webapp as webapp
    from app.settings import Settings

    from layers.static_canvas import CANVAS_LAYERS
    from layers.vector_canvas import VECTOR_LAYERS

    # the anchor: every layer as dash-leaflet GeoJSON (points as circle markers, lines and areas as paths)
    webapp.CANVAS_LAYERS = CANVAS_LAYERS if canvas else ()
    webapp.VECTOR_LAYERS = VECTOR_LAYERS if canvas else ()
    settings = Settings(var_dir=Path(tempfile.mkdtemp(prefix="hazmap-bench-map-")),
                        tile_url="http://127.0.0.1:9/{z}/{x}/{y}.png", language="zh",
                        point_symbols_min_zoom=0)  # the symbols at every zoom: what the bench measures
    web = webapp.create_app(settings, world, world_version=world.fingerprint(), live=live)
    server = make_server("127.0.0.1", 0, web.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


DRAWN_JS = """([expected, canvas, trucks]) => {
    if (!(window.hazmap && window.hazmap.leafletMap)) return false;
    const counts = {};
    window.hazmap.leafletMap.eachLayer(l => {
        const name = l.options && l.options.hazmapLayer;
        if (name && l.feature) counts[name] = (counts[name] || 0) + 1;
    });
    [window.hazmapStatic, window.hazmapVector].forEach(canvas => { if (canvas) Object.entries(canvas.drawn())
        .forEach(([k, n]) => { if (n) counts[k] = (counts[k] || 0) + n; }); });
    const marks = performance.getEntriesByType('mark').map(m => m.name);
    const drawn = Object.entries(expected).every(([k, n]) => counts[k] === n)
        && canvas.every(name => marks.includes('hazmap:layer:' + name))
        && (!window.hazmapLive || window.hazmapLive.trucks === trucks);
    // polled at each animation frame: the frame that first shows every layer, timed in the page
    return drawn ? performance.now() : false;
}"""

PAN_JS = """async (pans) => {
    const map = window.hazmap.leafletMap, out = [];
    const frame = () => new Promise(r => requestAnimationFrame(() => r()));
    for (let i = 0; i < pans; i++) {
        await frame();
        const t0 = performance.now();
        map.panBy([i % 2 ? -300 : 300, 0], {animate: false});
        await frame(); await frame();
        out.push(performance.now() - t0);
    }
    return out;
}"""


# A zoom redraws every canvas (a pan within a canvas's padding need not): in and out by one step
# about the centre, no animation, to the second frame after. The static and vector canvases draw the
# view within the zoom and their padding (off screen) afterwards in idle strips: each zoom starts once
# those are done too (as a zoom every few seconds at the wall would), and `settled` is the time to
# that end.
ZOOM_JS = """async (zooms) => {
    const map = window.hazmap.leafletMap, out = [], settled = [], z0 = map.getZoom();
    const frame = () => new Promise(r => requestAnimationFrame(() => r()));
    const done = () => [window.hazmapStatic, window.hazmapVector].every(h => !h || !h.settled || !h.canvas() || h.settled());
    const settle = async () => { while (!done()) { await new Promise(r => setTimeout(r, 5)); } };
    for (let i = 0; i < zooms; i++) {
        await settle();
        await frame();
        const t0 = performance.now();
        map.setZoom(i % 2 ? z0 : z0 + 1, {animate: false});
        await frame(); await frame();
        out.push(performance.now() - t0);
        await settle();
        settled.push(performance.now() - t0);
    }
    map.setZoom(z0, {animate: false});
    await settle();
    return {redraw: out, settled: settled};
}"""


def measure(browser, url: str, world, canvas_layers: tuple[str, ...], trucks: int, ticks: int, pans: int,
            feed: bool = True) -> dict:
    from layers.catalog import LAYERS

    context = browser.new_context(viewport={"width": 1920, "height": 1080}, device_scale_factor=1)
    page = context.new_page()
    page.add_init_script("""window.__longTasks = [];
        new PerformanceObserver(list => list.getEntries().forEach(e => window.__longTasks.push(e.duration)))
            .observe({type: 'longtask', buffered: true});""")
    expected = {layer.name: len(world.table(layer.name)) for layer in LAYERS}
    page.goto(url)
    first = page.wait_for_function(DRAWN_JS, arg=[expected, list(canvas_layers), trucks], timeout=LOAD_TIMEOUT_MS,
                                   polling="raf").json_value()
    # as the bench read it before the sixth round: a further call after the poll, which waits for the
    # page's next task (160-250 ms apart while it loads) and the round trip
    seen = page.evaluate("performance.now()")
    page.wait_for_timeout(1000)
    zooms = page.evaluate(ZOOM_JS, pans)
    out = {"first_render_ms": first, "first_render_seen_ms": seen, "pan_ms": page.evaluate(PAN_JS, pans), "zoom_ms": zooms["redraw"],
           "zoom_settled_ms": zooms["settled"],
           # what the static canvas itself took per redraw (the rest of a pan: Leaflet's canvas, the grid, live)
           "static_paint_ms": page.evaluate("window.hazmapStatic ? window.hazmapStatic.stats().paintMs : []"),
           "vector_paint_ms": page.evaluate("window.hazmapVector ? window.hazmapVector.stats().paintMs : []"),
           # the static canvas's worker: its stamping per redraw, and the page's wait for it
           "static_worker_ms": page.evaluate("window.hazmapStatic ? window.hazmapStatic.stats().workerMs : []"),
           "static_wait_ms": page.evaluate("window.hazmapStatic ? window.hazmapStatic.stats().waitMs : []")}
    if feed:
        page.evaluate("window.__longTasks = []; performance.clearResourceTimings()")
        polls = page.evaluate("window.hazmapLive.polls")
        page.wait_for_function("(n) => window.hazmapLive.polls >= n", arg=polls + ticks,
                               timeout=int(ticks * TICK_S * 1000 * 4 + 30_000))
        stats = page.evaluate("window.hazmapLive.stats()")
        n = min(ticks, len(stats["paintMs"]), len(stats["decodeMs"]))
        out["tick_ms"] = (np.array(stats["paintMs"][-n:]) + np.array(stats["decodeMs"][-n:])).tolist()
        out["tick_task_ms"] = stats.get("chunkMs", [])[-n:]  # a tick's longest task of stamping
        out["chars"] = stats["payloadChars"][-n:]
        out["bytes"] = page.evaluate("""performance.getEntriesByType('resource')
            .filter(e => e.name.includes('/state?since=')).map(e => e.encodedBodySize)""")
        out["long_tasks"] = page.evaluate("window.__longTasks")
    context.close()
    return out


def _zoom_in_out(zoom_ms: list[float], suffix: str) -> dict[str, float]:
    """The zooms in (ZOOM_JS's even ones) and out apart, medians: a zoom in draws more of the city's
    detail and its commit ends later, so it lands a frame tick later (docs/performance.md, issue 16,
    twelfth round)."""
    ms = np.asarray(zoom_ms, dtype=float)
    return {f"zoom_in_ms_p50{suffix}": float(np.median(ms[0::2])), f"zoom_out_ms_p50{suffix}": float(np.median(ms[1::2]))}


def _worker_figures(run: dict, suffix: str) -> dict[str, float]:
    """The static canvas's worker over the run's redraws (pans, zooms, strips): p90 of its stamping
    and of the page's wait for it; nan where the page stamped every redraw itself."""
    def p90(values: list[float]) -> float:
        return float(np.percentile(values, 90)) if values else float("nan")

    return {f"static_worker_ms_p90{suffix}": p90(run["static_worker_ms"]),
            f"static_wait_ms_p90{suffix}": p90(run["static_wait_ms"])}


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--ticks", type=int, default=15)
    parser.add_argument("--pans", type=int, default=15)
    parser.add_argument("--part", choices=("all", "wall", "drilldown"), default="all",
                        help="the wall's figures, the drill-down's (bench/drilldown.py), or both")
    parser.add_argument("--samples", type=int, default=15, help="drill-down: clicks per kind")
    parser.add_argument("--busy", type=int, default=0, metavar="K",
                        help="K busy-loop processes beside the run (a reproducible load on a shared machine)")
    args = parser.parse_args(argv)
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        _run(args, load)
    finally:
        for loop in busy:
            loop.kill()
            loop.wait()


def _run(args: argparse.Namespace, load: str) -> None:
    from playwright.sync_api import sync_playwright

    from data.demo import build_world
    from data.reference import load_chemicals
    from layers.static_canvas import CANVAS_LAYERS
    from layers.vector_canvas import VECTOR_LAYERS

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    started = time.perf_counter()
    world = build_world(seed=args.seed, scale=args.scale, chemicals=load_chemicals())
    _all_layers_on()
    print(f"world seed={args.seed} scale={args.scale}: entities={len(world.entities)} "
          f"monitoring_points={len(world.monitoring_points)} sensitive_sites={len(world.sensitive_sites)} "
          f"vehicles={len(world.vehicles)} (built in {time.perf_counter() - started:.1f} s); "
          f"busy loops {args.busy}, load average {load} at the start")
    figures: dict[str, float] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            if args.part != "wall":  # click to panel painted, the replay's load (bench/drilldown.py)
                from bench.drilldown import browser_figures

                figures.update(browser_figures(browser, world, seed=args.seed, samples=args.samples))
                if args.part == "drilldown":
                    print("\n".join(f"{k}={v:.1f}" for k, v in figures.items()))
                    return
            # the anchor first: the static layers as GeoJSON circle markers, no live feed
            server = serve(world, None, canvas=False)
            anchor = measure(browser, f"http://127.0.0.1:{server.server_port}/", world, (), 0, 0, args.pans,
                             feed=False)
            server.shutdown()
            for fleet in FLEETS:
                fleet_world = with_fleet(world, fleet)
                feed = RouteFeed(fleet_world, seed=args.seed).start()
                server = serve(fleet_world, feed, canvas=True)
                try:
                    run = measure(browser, f"http://127.0.0.1:{server.server_port}/", fleet_world,
                                  CANVAS_LAYERS + VECTOR_LAYERS, fleet, args.ticks, args.pans)
                finally:
                    server.shutdown()
                    feed.stop()
                tick = np.array(run["tick_ms"])
                figures[f"tick_to_paint_ms_p50_{fleet}"] = float(np.percentile(tick, 50))
                figures[f"tick_to_paint_ms_p90_{fleet}"] = float(np.percentile(tick, 90))
                figures[f"long_tasks_over_50ms_{fleet}"] = int(sum(1 for d in run["long_tasks"] if d > 50))
                if run["tick_task_ms"]:
                    figures[f"tick_longest_task_ms_max_{fleet}"] = float(np.max(run["tick_task_ms"]))
                figures[f"bytes_per_tick_{fleet}"] = float(np.mean(run["bytes"])) if run["bytes"] else float("nan")
                figures[f"chars_per_tick_{fleet}"] = float(np.mean(run["chars"]))
                if fleet == FLEETS[0]:
                    figures["first_render_ms"] = run["first_render_ms"]
                    figures["first_render_seen_ms"] = run["first_render_seen_ms"]
                    figures["pan_redraw_ms_p90"] = float(np.percentile(run["pan_ms"], 90))
                    figures["zoom_redraw_ms_p90"] = float(np.percentile(run["zoom_ms"], 90))
                    figures.update(_zoom_in_out(run["zoom_ms"], ""))
                    figures["zoom_settled_ms_p90"] = float(np.percentile(run["zoom_settled_ms"], 90))
                    figures["static_canvas_paint_ms_p90"] = float(np.percentile(run["static_paint_ms"], 90))
                    figures["vector_canvas_paint_ms_p90"] = float(np.percentile(run["vector_paint_ms"], 90))
                    figures.update(_worker_figures(run, ""))
                else:
                    figures[f"first_render_ms_{fleet}"] = run["first_render_ms"]
                    figures[f"first_render_seen_ms_{fleet}"] = run["first_render_seen_ms"]
                    figures[f"pan_redraw_ms_p90_{fleet}"] = float(np.percentile(run["pan_ms"], 90))
                    figures[f"zoom_redraw_ms_p90_{fleet}"] = float(np.percentile(run["zoom_ms"], 90))
                    figures.update(_zoom_in_out(run["zoom_ms"], f"_{fleet}"))
                    figures[f"zoom_settled_ms_p90_{fleet}"] = float(np.percentile(run["zoom_settled_ms"], 90))
                    figures.update(_worker_figures(run, f"_{fleet}"))
        finally:
            browser.close()
    figures["anchor_first_render_ms"] = anchor["first_render_ms"]
    figures["anchor_pan_redraw_ms_p90"] = float(np.percentile(anchor["pan_ms"], 90))
    figures["anchor_zoom_redraw_ms_p90"] = float(np.percentile(anchor["zoom_ms"], 90))
    figures["ratio_first_render"] = figures["anchor_first_render_ms"] / figures["first_render_ms"]
    figures["ratio_pan_redraw"] = figures["anchor_pan_redraw_ms_p90"] / figures["pan_redraw_ms_p90"]
    figures["ratio_zoom_redraw"] = figures["anchor_zoom_redraw_ms_p90"] / figures["zoom_redraw_ms_p90"]
    for name, value in figures.items():
        print(f"{name}={value:.1f}" if isinstance(value, float) else f"{name}={value}")
    print("targets: " + ", ".join(f"{k} <= {v:,}" for k, v in TARGETS.items()))


if __name__ == "__main__":
    main()
