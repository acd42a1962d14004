"""The basemap presets in real headless Chromium (layers/display_crs.py, assets/hazmap_crs.js).

A tile server of our own (a thread in the test) serves generated PNG tiles, dark except for a
magenta mark at one entity's position: its GCJ-02 position under /gcj/, its WGS-84 position under
/wgs/. With GCJ-02 tiles (tile_crs = gcj02) the entity's symbol on the static canvas must land
on the GCJ-02 mark, with WGS-84 tiles on the WGS-84 mark (±2 px; the two marks lie > 50 px apart
at the zoom used, so a wall that forgot the shift fails). A click on the mark gives back the
entity's WGS-84 position. Offline (basemap none) the wall asks no tile server at all and the
console stays clean.
"""

from __future__ import annotations

import io
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from spatial.crs import gcj02_to_wgs84, wgs84_to_gcj02
from tests.browser.conftest import SCREENSHOTS, UNREACHABLE_TILES, WALL_1080, open_page
from tests.browser.test_map import assert_no_console_errors
from tests.browser.test_wall import _lonely_entity, wait_for_drawn

pytestmark = pytest.mark.browser

LOAD_TIMEOUT_MS = 30_000
MARK_RGB = (255, 0, 255)
MARK_HALF_PX = 3  # a 7x7 square
ZOOM = 16  # integer: tiles drawn unscaled; ~2 m a pixel in Ningbo
TILE_PX = 256
_MERCATOR_R = 6378137.0


def mercator_pixel(lon: float, lat: float, zoom: int) -> tuple[float, float]:
    """Leaflet's EPSG3857 pixel of a lon/lat (the position a tile server draws it at)."""
    scale = TILE_PX * 2 ** zoom
    x = _MERCATOR_R * math.radians(lon)
    y = _MERCATOR_R * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))
    return scale * (0.5 + x / (2 * math.pi * _MERCATOR_R)), scale * (0.5 - y / (2 * math.pi * _MERCATOR_R))


class MarkTiles:
    """Tiles with one mark at `marks[kind]` ((lon, lat) in that kind's datum); counts requests."""

    def __init__(self):
        self.marks: dict[str, tuple[float, float]] = {}
        self.requests = 0

    def tile(self, kind: str, z: int, x: int, y: int) -> bytes:
        from PIL import Image, ImageDraw

        image = Image.new("RGB", (TILE_PX, TILE_PX), (30, 40, 50))
        if kind in self.marks:
            px, py = mercator_pixel(*self.marks[kind], z)
            cx, cy = px - x * TILE_PX, py - y * TILE_PX
            ImageDraw.Draw(image).rectangle([round(cx) - MARK_HALF_PX, round(cy) - MARK_HALF_PX,
                                             round(cx) + MARK_HALF_PX, round(cy) + MARK_HALF_PX], fill=MARK_RGB)
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()


@pytest.fixture(scope="module")
def tile_server():
    tiles = MarkTiles()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            parts = self.path.strip("/").removesuffix(".png").split("/")
            try:
                kind, z, x, y = parts[0], *map(int, parts[1:4])
            except (ValueError, IndexError):
                self.send_error(404)
                return
            tiles.requests += 1
            body = tiles.tile(kind, z, x, y)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="hazmap-test-tiles", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", tiles
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _serve(stored_world, tmp_path_factory, **settings_options):
    """The wall of the session's stored world with these settings, on a free port; (url, stop)."""
    from werkzeug.serving import make_server

    from app.settings import Settings
    from app.webapp import create_app

    settings = Settings(var_dir=tmp_path_factory.mktemp("var"), language="zh", **settings_options)
    web = create_app(settings, stored_world.world, world_version=stored_world.world.fingerprint())
    server = make_server("127.0.0.1", 0, web.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hazmap-basemap-app", daemon=True)
    thread.start()

    def stop():
        server.shutdown()
        thread.join(timeout=10)

    return f"http://127.0.0.1:{server.server_port}/", stop


def _mark_centre(page) -> tuple[float, float]:
    """Centre of the magenta mark on the screen, the overlays hidden (tiles only)."""
    from PIL import Image

    style = page.add_style_tag(content=".leaflet-map-pane > .leaflet-pane:not(.leaflet-tile-pane) "
                                       "{ visibility: hidden !important; } "
                                       ".hz-tiles { filter: none !important; }")  # the dark theme's filter
    try:
        page.wait_for_timeout(200)
        shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)
    finally:
        style.evaluate("s => s.remove()")
    magenta = (np.abs(shot - np.array(MARK_RGB)).sum(axis=2) < 30)
    ys, xs = np.nonzero(magenta)
    assert len(xs) >= 16, "the tile's mark is not on the screen"
    return float(xs.mean()), float(ys.mean())


def _drawn_centre(page, x: float, y: float, half: int = 12) -> tuple[float, float]:
    """Centre of what the static canvas drew within `half` px of screen point (x, y)."""
    alpha = page.evaluate(
        """([x, y, half]) => {
            const canvas = window.hazmapStatic.canvas(), map = window.hazmap.leafletMap;
            const box = map.getContainer().getBoundingClientRect();
            const p = map.containerPointToLayerPoint([x - box.left, y - box.top]), o = L.DomUtil.getPosition(canvas);
            const left = Math.round(p.x - o.x) - half, top = Math.round(p.y - o.y) - half;
            const data = canvas.getContext('2d').getImageData(left, top, 2 * half + 1, 2 * half + 1).data;
            const a = []; for (let i = 3; i < data.length; i += 4) { a.push(data[i]); }
            return a;
        }""", [x, y, half])
    grid = np.asarray(alpha).reshape(2 * half + 1, 2 * half + 1)
    ys, xs = np.nonzero(grid > 0)
    assert len(xs), f"the static canvas drew nothing within {half} px of the mark at ({x:.0f}, {y:.0f})"
    return x - half + float(xs.mean()), y - half + float(ys.mean())


def _wait_for_tiles(page) -> None:
    page.wait_for_function(
        """() => { const tiles = [...document.querySelectorAll('img.leaflet-tile')];
                   return tiles.length > 0 && tiles.every(t => t.complete && t.classList.contains('leaflet-tile-loaded')); }""",
        timeout=LOAD_TIMEOUT_MS)


@pytest.mark.parametrize("tile_crs", ["gcj02", "wgs84"])
def test_an_overlay_lands_on_the_tiles_mark(chromium, tile_server, stored_world, tmp_path_factory, console, tile_crs):
    tiles_url, tiles = tile_server
    entity_id, lon, lat = _lonely_entity(stored_world.world)
    glon, glat = (float(v) for v in wgs84_to_gcj02(lon, lat))
    tiles.marks = {"wgs": (lon, lat), "gcj": (glon, glat)}
    gx, gy = mercator_pixel(glon, glat, ZOOM)
    wx, wy = mercator_pixel(lon, lat, ZOOM)
    assert math.hypot(gx - wx, gy - wy) > 50  # the shift matters at this zoom: a wall without it fails
    kind = "gcj" if tile_crs == "gcj02" else "wgs"
    url, stop = _serve(stored_world, tmp_path_factory, tile_url=f"{tiles_url}/{kind}/{{z}}/{{x}}/{{y}}.png",
                       tile_crs=tile_crs)
    context, page = open_page(chromium, WALL_1080, console)
    try:
        page.goto(url)
        wait_for_drawn(page, {"entities": stored_world.counts["entities"]})
        page.evaluate("([lat, lon, z]) => window.hazmap.leafletMap.setView([lat, lon], z, {animate: false})",
                      [lat, lon, ZOOM])
        _wait_for_tiles(page)
        page.wait_for_timeout(300)  # the canvases redraw on the next frame
        mark_x, mark_y = _mark_centre(page)
        drawn_x, drawn_y = _drawn_centre(page, mark_x, mark_y)
        assert abs(drawn_x - mark_x) <= 2 and abs(drawn_y - mark_y) <= 2, \
            f"{entity_id} drawn at ({drawn_x:.1f}, {drawn_y:.1f}), the tiles' mark at ({mark_x:.1f}, {mark_y:.1f})"
        # a click on the mark is a click on the entity's WGS-84 position (the store's datum)
        clicked = page.evaluate(
            """([x, y]) => { const m = window.hazmap.leafletMap, b = m.getContainer().getBoundingClientRect();
                const ll = m.containerPointToLatLng([x - b.left, y - b.top]); return [ll.lng, ll.lat]; }""",
            [mark_x, mark_y])
        metres = math.hypot((clicked[0] - lon) * 111_320 * math.cos(math.radians(lat)), (clicked[1] - lat) * 111_320)
        assert metres < 5, f"a click on the mark gave {clicked}, {metres:.1f} m from the entity"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"basemap-{tile_crs}.png"))
    finally:
        context.close()
        stop()
    assert_no_console_errors(console)


def test_the_wall_s_gcj02_formula_is_spatial_crs_s(page, live_server):
    """assets/hazmap_crs.js writes out spatial/crs.py's formula: the two agree over the city, both ways."""
    lon, lat = np.meshgrid(np.linspace(120.8, 122.3, 16), np.linspace(28.8, 30.5, 16))
    lon, lat = lon.ravel(), lat.ravel()
    page.goto(live_server.url)
    page.wait_for_function("window.hazmapCrs", timeout=LOAD_TIMEOUT_MS)
    forward = np.asarray(page.evaluate("(pts) => pts.map(([x, y]) => window.hazmapCrs.forward(x, y))",
                                       np.column_stack([lon, lat]).tolist()))
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert np.abs(forward - np.column_stack([glon, glat])).max() < 1e-10
    assert np.abs(forward - np.column_stack([lon, lat])).max() > 1e-3  # a real shift (hundreds of metres)
    back = np.asarray(page.evaluate("(pts) => pts.map(([x, y]) => window.hazmapCrs.inverse(x, y))",
                                    np.column_stack([glon, glat]).tolist()))
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    assert np.abs(back - np.column_stack([wlon, wlat])).max() < 1e-8  # ~1 mm
    assert np.abs(back - np.column_stack([lon, lat])).max() < 1e-8


def test_offline_the_wall_asks_no_tile_server(chromium, stored_world, tmp_path_factory, console):
    url, stop = _serve(stored_world, tmp_path_factory, basemap="none")
    context, page = open_page(chromium, WALL_1080, console)
    foreign = []
    page.on("request", lambda request: None if request.url.startswith(url) else foreign.append(request.url))
    try:
        page.goto(url)
        wait_for_drawn(page, {"entities": stored_world.counts["entities"]})
        page.evaluate("window.hazmap.leafletMap.setZoom(12, {animate: false})")
        page.wait_for_timeout(1000)
        assert page.locator("img.leaflet-tile").count() == 0
        assert page.locator(".hz-map path, .hz-map canvas").count() > 0  # the land and outlines still orient
    finally:
        context.close()
        stop()
    assert foreign == []
    assert console.tile_failures == 0
    assert_no_console_errors(console)


def test_a_tile_server_that_never_answers_is_not_asked_on_every_zoom(page, live_server, console):
    """The browser tests' tiles point at a closed port: after a few failures the wall stops asking
    for tiles on every pan and zoom (assets/hazmap_map.js), and the tile layer, which never loaded
    one, stays hidden (assets/hazmap.css: no filtered empty layer to composite)."""
    asked = []
    page.on("request", lambda request: asked.append(request.url) if request.url.startswith(
        UNREACHABLE_TILES.split("{")[0]) else None)
    page.goto(live_server.url)
    wait_for_drawn(page, {"entities": live_server.stored.counts["entities"]})
    at_load, still = -1, 0  # the load's asking done: no new request for a second
    for _ in range(60):
        page.wait_for_timeout(250)
        still = still + 1 if len(asked) == at_load else 0
        at_load = len(asked)
        if still >= 4:
            break
    assert at_load > 0, "the wall asked the configured tile server at first"
    for zoom in (11, 12, 10):
        page.evaluate(f"window.hazmap.leafletMap.setZoom({zoom}, {{animate: false}})")
        page.wait_for_timeout(300)
    page.evaluate("window.hazmap.leafletMap.panBy([400, 200], {animate: false})")
    page.wait_for_timeout(300)
    later = asked[at_load:]  # at most the probe: one of the tiles that failed, every 30 s
    assert set(later) <= set(asked[:at_load]) and len(set(later)) <= 1, (
        "no tile asked of a dead server after the first failures", later)
    assert page.evaluate("getComputedStyle(document.querySelector('.hz-tiles')).visibility") == "hidden"
    assert page.evaluate("getComputedStyle(document.querySelector('.hz-tiles')).filter") == "none"
    assert_no_console_errors(console)
