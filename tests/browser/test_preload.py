"""The wall's payloads fetched from the page's head (issue 16: the first full render), in real
headless Chromium against the real app with a live source.

app/webapp.py inlines assets/hazmap_preload.js at the top of the page: the canvas layers shown at
start (their typed arrays, the vector layers' meta and first band, the live lists and first full
frame) are fetched with the page and parked for the layer scripts, and the GeoJSON layers and
dash-leaflet's chunks are `<link rel=preload>`ed. What must hold: every payload reaches the server
once — the layer scripts and dash-leaflet take the preloaded responses instead of asking again —
the layers draw every feature from them, and after a world change (the server serving another
world, whose URLs carry another version) a reload draws the new world from its own payloads,
never the old ones.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from layers.catalog import LAYERS
from layers.static_canvas import CANVAS_LAYERS
from layers.vector_canvas import VECTOR_LAYERS
from spatial.model import LiveState, PingBatch
from tests.browser.conftest import UNREACHABLE_TILES

pytestmark = pytest.mark.browser

LOAD_TIMEOUT_MS = 60_000
FEED_MS = 1_793_000_000_000  # the parked trucks' report time
SHOWN = [layer.name for layer in LAYERS if layer.shown_by_default]
GEOJSON = ["land", "district_labels"] + [
    name for name in SHOWN if name not in CANVAS_LAYERS and name not in VECTOR_LAYERS]
CHUNKS = ["/_dash-component-suites/dash_leaflet/async-GeoJSON.js",
          "/_dash-component-suites/dash_leaflet/async-EditControl.ts.js"]

# Every layer shown at start drawn in full, every truck on the live canvas (as bench/map.py waits).
DRAWN_JS = """([expected, trucks]) => {
    if (!(window.hazmap && window.hazmap.leafletMap && window.hazmapLive)) return false;
    const counts = {};
    window.hazmap.leafletMap.eachLayer(l => {
        const name = l.options && l.options.hazmapLayer;
        if (name && l.feature) counts[name] = (counts[name] || 0) + 1;
    });
    [window.hazmapStatic, window.hazmapVector].forEach(canvas => Object.entries(canvas.drawn())
        .forEach(([k, n]) => { if (n) counts[k] = (counts[k] || 0) + n; }));
    return Object.entries(expected).every(([k, n]) => counts[k] === n) && window.hazmapLive.trucks === trucks;
}"""


class _ParkedFeed:
    """A live source whose every truck stands at its home."""

    def __init__(self, world):
        vehicles = world.vehicles
        n = len(vehicles)
        self._state = LiveState()
        self._state.apply_pings(PingBatch.from_arrays(
            vehicles["id"].astype(str).to_numpy(object), np.full(n, FEED_MS), vehicles.geometry.x.to_numpy(),
            vehicles.geometry.y.to_numpy(), np.zeros(n), np.zeros(n)))

    def snapshot(self) -> LiveState:
        return self._state.copy()


class _Origin:
    """One origin serving one app at a time (a restart with another world), counting the
    requests it receives by path and query."""

    def __init__(self):
        self.app = None
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        query = environ.get("QUERY_STRING", "")
        with self._lock:
            self.requests[environ["PATH_INFO"] + (f"?{query}" if query else "")] += 1
        return self.app(environ, start_response)

    def serve(self, world, tmp_path) -> str:
        from app.settings import Settings
        from app.webapp import create_app

        version = world.fingerprint()
        settings = Settings(var_dir=tmp_path, tile_url=UNREACHABLE_TILES, language="zh")
        self.app = create_app(settings, world, world_version=version, live=_ParkedFeed(world)).server
        return version


@pytest.fixture
def origin():
    from werkzeug.serving import make_server

    origin = _Origin()
    server = make_server("127.0.0.1", 0, origin, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hazmap-preload-server", daemon=True)
    thread.start()
    try:
        yield origin, f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _payloads(version: str, band: int) -> list[str]:
    """The URLs the page's head starts for this world: what the layer scripts must take."""
    return ([f"/canvas/{version}/{name}.json" for name in SHOWN if name in CANVAS_LAYERS]
            + [f"/vector/{version}/{name}.json" for name in SHOWN if name in VECTOR_LAYERS]
            + [f"/vector/{version}/{name}/{band}.bin" for name in SHOWN if name in VECTOR_LAYERS]
            + [f"/live/{version}/static.json", f"/live/{version}/state?since=0"]
            + [f"/layers/{version}/district_outlines.geojson"])  # drawn on the vector canvas


def _load(page, world) -> None:
    expected = {name: len(world.table(name)) for name in SHOWN}
    page.wait_for_function(DRAWN_JS, arg=[expected, len(world.vehicles)], timeout=LOAD_TIMEOUT_MS, polling=100)
    page.wait_for_function("window.hazmapLive.polls >= 1", timeout=LOAD_TIMEOUT_MS)


def _assert_each_fetched_once(page, origin, version: str) -> None:
    band = page.evaluate(f"window.hazmapVector.band({VECTOR_LAYERS[0]!r}).index")
    payloads = _payloads(version, band)
    assert sorted(page.evaluate("window.hazmapPreload.taken()")) == sorted(payloads), \
        "every payload the head started is taken by its layer script"
    assert page.evaluate("window.hazmapPreload.parked()") == [], "nothing started in vain"
    once = payloads + [f"/layers/{version}/{name}.geojson" for name in GEOJSON] + CHUNKS
    assert {url: origin.requests[url] for url in once} == {url: 1 for url in once}, \
        "each payload reaches the server once: the layers use what the page's head fetched"


def test_the_layers_draw_from_the_payloads_the_page_head_fetched_once(page, origin, stored_world, tmp_path,
                                                                      console):
    server, url = origin
    version = server.serve(stored_world.world, tmp_path)
    page.goto(url)
    _load(page, stored_world.world)
    _assert_each_fetched_once(page, server, version)
    assert console.unexpected() == []


def test_a_world_change_draws_the_new_worlds_payloads(page, origin, stored_world, tmp_path, console):
    from data.demo import build_world
    from data.reference import load_chemicals

    server, url = origin
    old = server.serve(stored_world.world, tmp_path / "old")
    page.goto(url)
    _load(page, stored_world.world)

    world = build_world(seed=8, scale=0.02, chemicals=load_chemicals())  # another world: another version
    new = server.serve(world, tmp_path / "new")
    assert new != old and len(world.entities) != len(stored_world.world.entities)
    server.requests.clear()
    page.reload()
    _load(page, world)  # the new world's counts on every layer, its trucks on the live canvas
    _assert_each_fetched_once(page, server, new)
    assert [path for path in server.requests if old in path] == [], "nothing of the old world is asked for"
    assert console.unexpected() == []


# Each screen-sized canvas's first 2D call, with what its layer held then (an init script: before
# the page's own scripts).
FIRST_DRAWS_JS = """(() => {
    window.__firstDraws = {};
    const P = CanvasRenderingContext2D.prototype;
    ['clearRect', 'putImageData', 'drawImage', 'fill', 'stroke', 'fillRect'].forEach(method => {
        const original = P[method];
        P[method] = function () {
            const pane = this.canvas.parentNode && String(this.canvas.parentNode.className || '');
            const name = pane && (pane.match(/leaflet-(hz\\w+)-pane/) || [])[1];
            if (name && !(name in window.__firstDraws)) {
                window.__firstDraws[name] = {
                    trucks: window.hazmapLive ? window.hazmapLive.trucks : null,
                    gridPolls: window.hazmapGrid ? window.hazmapGrid.polls : null};
            }
            return original.apply(this, arguments);
        };
    });
})();"""


def test_the_first_render_draws_the_live_and_grid_canvases_once_their_data_is_in(page, origin, stored_world,
                                                                                 tmp_path, console):
    """The live canvas joins the map with its first frame applied (drawn once, its trucks in it,
    not first with the points alone) and the risk grid's with its first frame (not empty first):
    each draw of a screen-sized canvas in the first render is a copy the compositor makes."""
    server, url = origin
    server.serve(stored_world.world, tmp_path)
    page.add_init_script(FIRST_DRAWS_JS)
    page.goto(url)
    _load(page, stored_world.world)
    page.wait_for_function("window.hazmapGrid.polls >= 1 && window.__firstDraws.hzgrid", timeout=LOAD_TIMEOUT_MS)
    first = page.evaluate("window.__firstDraws")
    assert first["hzlive"]["trucks"] == len(stored_world.world.vehicles), first
    assert first["hzgrid"]["gridPolls"] >= 1, first
    assert console.unexpected() == []


def test_the_page_runs_on_the_regenerator_runtime_without_dashs_polyfill(page, origin, stored_world, tmp_path,
                                                                         console):
    """app/webapp.py replaces Dash's @babel/polyfill (core-js 2 + regenerator-runtime, 99 KB)
    with the regenerator runtime alone, inlined: the lazy component loaders of Dash's bundles
    still find `regeneratorRuntime`, and no request goes to the polyfill, nor to dash_table's bundle
    (no module of the app may use a DataTable: its bundle is left out of the page)."""
    server, url = origin
    server.serve(stored_world.world, tmp_path)
    page.goto(url)
    _load(page, stored_world.world)
    assert page.evaluate("typeof window.regeneratorRuntime.mark") == "function"
    assert page.evaluate("window._babelPolyfill") is None, "core-js is not loaded"
    assert not [path for path in server.requests if "polyfill" in path or "dash_table" in path]
    assert not [path for package in ("app", "layers") for path in (Path(__file__).parents[2] / package).rglob("*.py")
                if re.search(r"\bDataTable\b|import dash_table|dash_table\.", path.read_text(encoding="utf-8"))]
    assert console.unexpected() == []


def _component(node, component_id):
    """The component of a Dash layout (JSON) with this id, or None."""
    if isinstance(node, list):
        return next((found for child in node if (found := _component(child, component_id)) is not None), None)
    if not isinstance(node, dict) or "props" not in node:
        return None
    if node["props"].get("id") == component_id:
        return node
    return next((found for value in node["props"].values() if (found := _component(value, component_id)) is not None),
                None)


def test_the_legend_is_one_component_drawn_from_its_attribute(page, origin, stored_world, tmp_path, console):
    """The legend (with every layer on some 130 Dash components, over half of the layout React
    renders and every store update of the loading wall runs through) is one aside carrying its
    groups as an attribute, drawn as plain DOM by assets/hazmap_wall.js: every group and entry of
    the attribute on screen, a swatch per entry."""
    server, url = origin
    server.serve(stored_world.world, tmp_path)
    page.goto(url)
    _load(page, stored_world.world)
    legend = _component(page.evaluate("fetch('/_dash-layout').then(r => r.json())"), "hz-legend")
    assert legend is not None and not legend["props"].get("children"), "no components under the legend"
    import json

    data = json.loads(legend["props"]["data-legend"])
    entries = [entry for group in data["groups"] for entry in group[1]]
    assert len(data["groups"]) >= 3 and len(entries) >= 10, data
    drawn = page.evaluate("""() => ({
        groups: [...document.querySelectorAll('#hz-legend .hz-legend-group')].map(g => [
            g.querySelector('.hz-legend-title').textContent,
            [...g.querySelectorAll('.hz-legend-entry')].map(e => [e.textContent,
                e.querySelector('.hz-swatch').style.getPropertyValue('--swatch')])]),
        title: document.querySelector('#hz-legend h2').textContent})""")
    assert drawn["title"] == data["title"]
    assert drawn["groups"] == [[group[0], [[entry[3], entry[2]] for entry in group[1]]] for group in data["groups"]]
    assert console.unexpected() == []


def test_the_wall_loads_without_a_server_callback_its_header_drawn_with_the_layout(page, origin, stored_world,
                                                                                   tmp_path, console):
    """The live header and the delivery line come with the layout, figures in: no callback asks the
    server for them while the wall loads (each such round trip brought store updates and renders to
    the loading page), and their 5 s ticks refresh them afterwards."""
    server, url = origin
    server.serve(stored_world.world, tmp_path)
    page.goto(url)
    _load(page, stored_world.world)
    header = page.evaluate("""() => ({points: document.querySelectorAll('#hz-wall-header .hz-wall-points [data-n]').length,
        trucks: document.querySelectorAll('#hz-wall-header .hz-wall-trucks [data-moving]').length})""")
    assert header == {"points": 1, "trucks": 1}, header
    # before the first tick (5 s after the Interval is drawn): no callback reached the server
    asked = page.evaluate("""performance.getEntriesByType('resource')
        .filter(e => e.name.includes('/_dash-update-component') && e.startTime < 4500).length""")
    assert asked == 0
    page.wait_for_function("""performance.getEntriesByType('resource')
        .filter(e => e.name.includes('/_dash-update-component')).length >= 2""", timeout=20_000)
    assert console.unexpected() == []
