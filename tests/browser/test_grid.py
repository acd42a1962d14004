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

from layers.grid import COUNT_LAYERS, PART_LABELS, resolution_for_zoom
from layers.style import RISK_BAND_STYLES
from spatial.h3cells import cell_hex
from spatial.model import Event, LiveState, PingBatch, ReadingBatch
from spatial.risk import PARTS, RiskWeights, bands
from tests.browser.conftest import SCREENSHOTS, UNREACHABLE_TILES

pytestmark = pytest.mark.browser

SEED = 5
SCALE = 0.05
T0_MS = int(pd.Timestamp("2026-11-02T08:00:00+08:00").value // 1_000_000)
LOAD_TIMEOUT_MS = 30_000
STREET_ZOOM = 12.5  # resolution 8 on the wall
SYMBOL_ZOOM = 12.0  # point symbols from here on, counts per cell below (the setting's default)
CITY_ZOOM = 10.5  # counts in resolution-6 cells


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
    settings = Settings(var_dir=tmp_path_factory.mktemp("var"), tile_url=UNREACHABLE_TILES, language="zh",
                        point_symbols_min_zoom=SYMBOL_ZOOM)
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
    # the grid places an item by its finest cell: a res-8 cell is the parent of that (H3 cells do not
    # nest exactly, so it may differ from the point's own res-8 cell)
    cells = [h3.cell_to_parent(h3.latlng_to_cell(y, x, 9), 8) for x, y in zip(lon, lat)]
    weights = RiskWeights()
    chosen = None
    for i in np.argsort([before["score"].get(c, 0.0) for c in cells]):  # the alarm's own part alone changes the band
        raised = bands(np.array([before["score"].get(cells[i], 0.0) + weights.alarm_pts[0]]), 8, weights)[0]
        if raised != before["band"].get(cells[i], ""):
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


def expected_counts(app: GridApp, resolution: int, tmp_path) -> dict[str, dict[str, int]]:
    """Per point layer, per cell at `resolution`: the store's own counts of its `h3_cell` column
    (resolution 9) rolled up to their parents, for the layers that have one (entities, monitoring
    points); for sensitive sites (areas too: at their point on surface, where the wall draws them)
    and the feed's trucks, h3 one feature at a time, the same way."""
    import shapely
    import sqlalchemy as sa

    from data.store import Store

    def rolled_up(cells, n=None) -> dict[str, int]:
        out: dict[str, int] = {}
        for cell, k in zip(cells, n if n is not None else [1] * len(cells)):
            parent = h3.cell_to_parent(cell, resolution)
            out[parent] = out.get(parent, 0) + int(k)
        return out

    out = {}
    url = f"sqlite:///{tmp_path / 'grid-counts.sqlite'}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(app.world)
        with store.engine.connect() as connection:
            for name in ("entities", "monitoring_points"):
                rows = connection.execute(sa.text(f"SELECT h3_cell, COUNT(*) FROM {name} GROUP BY h3_cell")).all()
                out[name] = rolled_up([r[0] for r in rows], [r[1] for r in rows])
    geoms = app.world.sensitive_sites.geometry.to_numpy()
    anchor = np.where(shapely.get_type_id(geoms) == 0, geoms, shapely.point_on_surface(geoms))
    out["sensitive_sites"] = rolled_up([h3.latlng_to_cell(y, x, 9) for x, y in
                                        zip(shapely.get_x(anchor), shapely.get_y(anchor))])
    where = app.feed.snapshot().positions
    out["vehicles"] = rolled_up([h3.latlng_to_cell(float(y), float(x), 9) for x, y in zip(where["lon"], where["lat"])])
    return out


# The counts canvas's pixels in a square of 2·half+1 page pixels around a page point: how many are
# the badge's dark disc, how many its light digits.
COUNTS_BADGE_JS = """([x, y, half]) => {
    const map = window.hazmap.leafletMap, canvas = window.hazmapCounts.canvas();
    const box = map.getContainer().getBoundingClientRect();
    const layer = map.containerPointToLayerPoint([x - box.left, y - box.top]);
    const origin = L.DomUtil.getPosition(canvas);
    const ratio = canvas.width / canvas.clientWidth;
    const px = Math.floor((layer.x - origin.x - half) * ratio), py = Math.floor((layer.y - origin.y - half) * ratio);
    const side = Math.floor((2 * half + 1) * ratio), data = canvas.getContext('2d').getImageData(px, py, side, side).data;
    let dark = 0, light = 0;
    for (let i = 0; i < data.length; i += 4) {
        const hi = Math.max(data[i], data[i + 1], data[i + 2]), lo = Math.min(data[i], data[i + 1], data[i + 2]);
        if (data[i + 3] > 150 && hi < 80) { dark += 1; }
        if (data[i + 3] > 150 && lo > 200) { light += 1; }
    }
    return [dark, light];
}"""


def test_city_zoom_shows_counts_per_cell_and_street_zoom_the_symbols(page, grid_app, console, tmp_path):
    """Below the symbols' zoom the point layers show as counts per cell: each drawn cell's count
    per shown layer equals the data's, a badge is painted at its centre, and no truck or point
    symbol is drawn; from that zoom on the symbols are back and no count is drawn."""
    open_wall(page, grid_app)
    v = grid_app.world.vehicles
    lon, lat = float(np.median(v.geometry.x)), float(np.median(v.geometry.y))
    view(page, lon, lat, CITY_ZOOM)
    page.wait_for_function("() => window.hazmapCounts.active() && window.hazmapCounts.res === 6 && "
                           "window.hazmapCounts.drawn > 0", timeout=LOAD_TIMEOUT_MS, polling=100)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / "grid_counts_city.png"))
    shown = page.evaluate("window.hazmapCounts.shownLayers()")
    assert "vehicles" in shown and "monitoring_points" in shown, shown
    on_screen = page.evaluate("window.hazmapCounts.counts()")
    want = expected_counts(grid_app, 6, tmp_path)
    assert on_screen, "no counts drawn at city zoom"
    for cell, layers in on_screen.items():
        assert layers == {name: want[name][cell] for name in shown if cell in want[name]}, cell
    for name in shown:  # no cell of the data is missing on the screen
        assert set(want[name]) <= set(on_screen), name
    # the badge is painted where the busiest cells are (what the officer reads)
    busiest = sorted(on_screen, key=lambda c: -sum(on_screen[c].values()))[:5]
    for cell in busiest:
        x, y = page.evaluate("(id) => window.hazmapCounts.cellPixel(id)", cell)
        box = page.evaluate("() => { const b = window.hazmap.leafletMap.getContainer().getBoundingClientRect(); "
                            "return [b.left, b.top, b.right, b.bottom]; }")
        if not (box[0] + 20 < x < box[2] - 20 and box[1] + 20 < y < box[3] - 20):
            continue
        dark, light = page.evaluate(COUNTS_BADGE_JS, [x, y, 9])  # the badge: a dark disc, light digits
        assert dark > 40 and light > 5, (cell, dark, light)
    # the symbols give way: no truck drawn, no feature of a counted layer drawn; the few point layers
    # that are not counted (hazard sources, stations, lots, shops) show at every zoom
    truck = str(v["id"].iloc[0])
    assert page.evaluate("(id) => window.hazmapLive.drawnPixel(id)", truck) is None
    drawn = page.evaluate("window.hazmapStatic.drawn()")
    assert not any(n for name, n in drawn.items() if name in COUNT_LAYERS), drawn
    assert drawn["hazard_sources"] > 0, drawn

    view(page, lon, lat, STREET_ZOOM)
    page.wait_for_function("() => !window.hazmapCounts.active() && window.hazmapCounts.drawn === 0",
                           timeout=LOAD_TIMEOUT_MS, polling=100)
    page.wait_for_function("() => Object.keys(window.hazmapLive.shown).length > 0", timeout=LOAD_TIMEOUT_MS)
    page.evaluate("([lon, lat]) => window.hazmap.leafletMap.setView([lat, lon], 12.5, {animate: false})",
                  [float(v.geometry.x.iloc[0]), float(v.geometry.y.iloc[0])])
    page.wait_for_function("(id) => window.hazmapLive.drawnPixel(id) !== null", arg=truck, timeout=LOAD_TIMEOUT_MS,
                           polling=100)
    page.screenshot(path=str(SCREENSHOTS / "grid_counts_street.png"))
    assert not console.unexpected()
