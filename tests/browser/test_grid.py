"""The risk grid in real headless Chromium: the real Dash app with a live source whose
LiveState the test changes.

What a duty officer relies on: the cells on the screen carry the score spatial/risk.py
computes (their colour read back from the grid's canvas); hovering a cell shows its parts;
zooming in changes the resolution; a point alarm raised in the feed turns its cell's colour
within two polls; a click on a cell opens its parts and contents in the side panel.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import h3
import numpy as np
import pandas as pd
import pytest

from layers.grid import PART_LABELS, resolution_for_zoom
from layers.style import RISK_BAND_STYLES
from spatial.h3cells import cell_hex
from spatial.model import Event, LiveState, PingBatch, ReadingBatch
from spatial.risk import PARTS, RiskGrid
from tests.browser.conftest import SCREENSHOTS, UNREACHABLE_TILES

pytestmark = pytest.mark.browser

SEED = 5
SCALE = 0.05
T0_MS = int(pd.Timestamp("2026-11-02T08:00:00+08:00").value // 1_000_000)
LOAD_TIMEOUT_MS = 30_000
STREET_ZOOM = 12.5  # resolution 8 on the wall


class Feed:
    """A live source: every truck standing at home, every point read once; `raise_alarm`
    opens a severity-1 level alarm on a point as the point engine would."""

    def __init__(self, world):
        v, mp = world.vehicles, world.monitoring_points
        self._state = LiveState()
        self._lock = threading.Lock()
        self._state.apply_pings(PingBatch.from_arrays(
            v["id"].to_numpy(object), np.full(len(v), T0_MS), v.geometry.x.to_numpy(), v.geometry.y.to_numpy(),
            np.zeros(len(v)), np.zeros(len(v))))
        self._state.apply_readings(ReadingBatch.from_arrays(mp["id"].to_numpy(object), np.full(len(mp), T0_MS),
                                                            np.ones(len(mp))))

    def snapshot(self) -> LiveState:
        with self._lock:
            return self._state.copy()

    def raise_alarm(self, point_id: str, lon: float, lat: float) -> None:
        start = pd.Timestamp(T0_MS + 60_000, unit="ms", tz="UTC")
        with self._lock:
            self._state.apply_readings(ReadingBatch.from_arrays([point_id], [T0_MS + 60_000], [99.0]))
            self._state.apply_events([Event("point_level", point_id, f"{point_id}-hh", "open", start, None, lon, lat,
                                            1, {})])


@dataclass
class GridApp:
    url: str
    world: object
    feed: Feed


@pytest.fixture(scope="module")
def grid_app(tmp_path_factory) -> Iterator[GridApp]:
    from werkzeug.serving import make_server

    from app.settings import Settings
    from app.webapp import create_app
    from data.demo import build_world

    world = build_world(seed=SEED, scale=SCALE)
    feed = Feed(world)
    settings = Settings(var_dir=tmp_path_factory.mktemp("var"), tile_url=UNREACHABLE_TILES, language="zh")
    web = create_app(settings, world, world_version=world.fingerprint(), live=feed)
    server = make_server("127.0.0.1", 0, web.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hazmap-grid-test-server", daemon=True)
    thread.start()
    try:
        yield GridApp(f"http://127.0.0.1:{server.server_port}/", world, feed)
    finally:
        server.shutdown()
        thread.join(timeout=10)


def expected_scores(app: GridApp, resolution: int) -> pd.DataFrame:
    """What spatial/risk.py computes for the feed's picture (via the same inputs as the app)."""
    from layers.grid import GridFeed

    feed = GridFeed(app.world, app.feed)
    feed.sync()
    table = feed.grid.scores(resolution)
    table.index = cell_hex(table.index.to_numpy("uint64"))
    return table


def _rgb(hex_colour: str) -> list[int]:
    return [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]


# The grid canvas's pixel under a page point (from the canvas itself: the band colour, its alpha).
GRID_PIXEL_JS = """([x, y]) => {
    const map = window.hazmap.leafletMap, canvas = window.hazmapGrid.canvas();
    const box = map.getContainer().getBoundingClientRect();
    const layer = map.containerPointToLayerPoint([x - box.left, y - box.top]);
    const origin = L.DomUtil.getPosition(canvas);
    const ratio = canvas.width / canvas.clientWidth;
    const px = Math.floor((layer.x - origin.x) * ratio), py = Math.floor((layer.y - origin.y) * ratio);
    return Array.from(canvas.getContext('2d').getImageData(px, py, 1, 1).data);
}"""


def open_wall(page, app: GridApp) -> None:
    page.goto(app.url)
    page.wait_for_function("window.hazmapGrid && window.hazmapGrid.polls > 0", timeout=LOAD_TIMEOUT_MS, polling=100)


def view(page, lon: float, lat: float, zoom: float) -> None:
    page.evaluate("([lon, lat, zoom]) => { window.hazmap.leafletMap.setView([lat, lon], zoom, {animate: false}); }",
                  [lon, lat, zoom])
    page.wait_for_function("(res) => window.hazmapGrid.res === res && window.hazmapGrid.version > 0",
                           arg=resolution_for_zoom(zoom), timeout=LOAD_TIMEOUT_MS, polling=100)
    page.wait_for_timeout(300)  # one frame drawn


def band_pixel(page, cell: str) -> list[int]:
    return page.evaluate(GRID_PIXEL_JS, page.evaluate("(id) => window.hazmapGrid.cellPixel(id)", cell))


def assert_drawn_in(page, cell: str, band: str) -> None:
    r, g, b, a = band_pixel(page, cell)
    want = _rgb(RISK_BAND_STYLES[band].color)
    assert a > 0 and max(abs(r - want[0]), abs(g - want[1]), abs(b - want[2])) <= 3, (cell, band, [r, g, b, a])


def test_cells_on_screen_carry_the_computed_score_and_hover_shows_the_parts(page, grid_app, console):
    open_wall(page, grid_app)
    res = page.evaluate("window.hazmapGrid.res")
    shown = page.evaluate("window.hazmapGrid.cells()")
    want = expected_scores(grid_app, res)
    assert set(shown) == set(want.index)
    sample = want.sort_values("score").index[np.linspace(0, len(want) - 1, 8).astype(int)]
    for cell in sample:
        assert shown[cell]["score"] == pytest.approx(want.loc[cell, "score"], abs=0.051)
        assert shown[cell]["band"] == want.loc[cell, "band"]
        assert shown[cell]["parts"] == pytest.approx(want.loc[cell, list(PARTS)].to_numpy(float).tolist(), abs=0.051)

    # drawn in its band's colour: zoom to street level at the strongest cell
    top = want["score"].idxmax()
    lat, lon = h3.cell_to_latlng(top)
    view(page, lon, lat, STREET_ZOOM)
    street = expected_scores(grid_app, 8)
    cell = h3.latlng_to_cell(lat, lon, 8)
    cell = cell if cell in street.index else street["score"].idxmax()
    assert_drawn_in(page, cell, street.loc[cell, "band"])

    # hover: the parts of the cell under the mouse
    x, y = page.evaluate("(id) => window.hazmapGrid.cellPixel(id)", cell)
    page.mouse.move(x + 2, y + 2)
    page.mouse.move(x, y)
    page.wait_for_function("(id) => document.querySelector('.hz-grid-tip').dataset.cell === id", arg=cell,
                           timeout=5_000, polling=50)
    tip = page.inner_text(".hz-grid-tip")
    assert f"{street.loc[cell, 'score']:.1f}" in tip
    for part in PARTS:
        value = street.loc[cell, part]
        if value > 0:
            assert PART_LABELS[part][0] in tip and f"{value:.1f}" in tip
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "grid_hover.png"))
    assert console.unexpected() == []


def test_zooming_changes_the_resolution(page, grid_app):
    open_wall(page, grid_app)
    lon, lat = grid_app.world.hazard_sources.geometry.x.iloc[0], grid_app.world.hazard_sources.geometry.y.iloc[0]
    seen = []
    for zoom in (9.0, 11.0, 12.5, 14.0):
        view(page, lon, lat, zoom)
        res = page.evaluate("window.hazmapGrid.res")
        cells = page.evaluate("Object.keys(window.hazmapGrid.cells())")
        assert cells and {h3.get_resolution(c) for c in cells} == {res}
        seen.append(res)
    assert seen == [6, 7, 8, 9]


def test_a_point_alarm_turns_its_cells_colour_within_two_polls(page, grid_app, console):
    world, feed = grid_app.world, grid_app.feed
    before = expected_scores(grid_app, 8)
    # a point whose res-8 cell changes band with a severity-1 alarm (+ its open alert)
    points = world.monitoring_points
    lon, lat = points.geometry.x.to_numpy(), points.geometry.y.to_numpy()
    cells = [h3.latlng_to_cell(y, x, 8) for x, y in zip(lon, lat)]
    grid = RiskGrid(world)
    chosen = None
    for i in np.argsort([before["score"].get(c, 0.0) for c in cells]):
        after = grid.fresh()
        after.apply(alarms=pd.DataFrame({"subject_id": [points["id"].iloc[i]], "lon": [lon[i]], "lat": [lat[i]],
                                         "severity": [1]}))
        band_then = before["band"].get(cells[i], "")
        if band_then and after.scores(8)["band"].iloc[0] != band_then or not band_then:
            chosen = i
            break
    assert chosen is not None
    point, cell = str(points["id"].iloc[chosen]), cells[chosen]
    open_wall(page, grid_app)
    view(page, lon[chosen], lat[chosen], STREET_ZOOM)
    band_before = page.evaluate("(id) => (window.hazmapGrid.cells()[id] || {}).band || ''", cell)
    assert band_before == before["band"].get(cell, "")
    polls = page.evaluate("window.hazmapGrid.polls")
    frames = len(page.evaluate("window.hazmapGrid.stats().changedCells"))

    feed.raise_alarm(point, lon[chosen], lat[chosen])
    band_after = expected_scores(grid_app, 8).loc[cell, "band"]
    assert band_after != band_before
    page.wait_for_function("([id, band]) => (window.hazmapGrid.cells()[id] || {}).band === band",
                           arg=[cell, band_after], timeout=10_000, polling=50)
    assert page.evaluate("window.hazmapGrid.polls") - polls <= 2
    page.wait_for_timeout(300)
    assert_drawn_in(page, cell, band_after)
    # only the cell that changed travelled in the frames since the alarm
    assert sum(page.evaluate("window.hazmapGrid.stats().changedCells")[frames:]) == 1
    assert console.unexpected() == []


def test_a_click_on_a_cell_opens_its_parts_and_contents(page, grid_app, console):
    open_wall(page, grid_app)
    hs = grid_app.world.hazard_sources
    # next to a hazard source (the source itself is a point feature and keeps its own click)
    lon, lat = hs.geometry.x.iloc[0], hs.geometry.y.iloc[0]
    view(page, lon, lat, STREET_ZOOM)
    cell = h3.latlng_to_cell(lat, lon, 8)
    x, y = page.evaluate("(id) => window.hazmapGrid.cellPixel(id)", cell)
    hx, hy = page.evaluate("""([lon, lat]) => {
        const map = window.hazmap.leafletMap, p = map.latLngToContainerPoint([lat, lon]);
        const box = map.getContainer().getBoundingClientRect();
        return [p.x + box.left, p.y + box.top];
    }""", [lon, lat])
    for dx, dy in ((20, 0), (-20, 0), (0, 20), (0, -20), (15, 15)):
        if page.evaluate("([x, y]) => window.hazmapGrid.cellAt(x, y)", [hx + dx, hy + dy]) == cell:
            page.mouse.click(hx + dx, hy + dy)
            break
    else:
        page.mouse.click(x, y)
    page.wait_for_selector(".hz-grid-items", timeout=10_000)
    body = page.inner_text("#hz-panel-body")
    assert cell in body and str(hs["id"].iloc[0]) in body
    # the contents are links: one opens the hazard source's own details
    page.click(f".hz-grid-link:text-is('{hs['id'].iloc[0]}')")
    page.wait_for_function("(id) => document.querySelector('#hz-panel-body').innerText.includes('重大危险源')"
                           " && !document.querySelector('.hz-grid-items')", arg=str(hs["id"].iloc[0]), timeout=10_000)
    assert console.unexpected() == []
