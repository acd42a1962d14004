"""The wall-screen map in real headless Chromium, on a demo world read back from a store.

What a duty officer relies on: every feature of every layer is drawn (as many as the store
holds), on hazmap's own canvases (none left on Leaflet's: one screen-sized canvas fewer to
composite on every frame); clicking a hazard source shows its id and grade; the
page logs no error besides the unreachable tiles; and without tiles the land, the district
outlines and names still show.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from layers.catalog import LAYERS
from layers.labels import VALUE_LABELS
from layers.static_canvas import CANVAS_LAYERS
from layers.vector_canvas import VECTOR_LAYERS
from layers.style import LAND, SEA
from tests.browser.conftest import SCREENSHOTS, WALL_2160, open_page

pytestmark = pytest.mark.browser

LOAD_TIMEOUT_MS = 30_000

# Features drawn on the map per layer, read from Leaflet itself: every layer the map holds
# that carries a GeoJSON feature, grouped by the hazmap layer it belongs to.
DRAWN_COUNTS_JS = """() => {
    const counts = {};
    window.hazmap.leafletMap.eachLayer(layer => {
        const name = layer.options && layer.options.hazmapLayer;
        if (name && layer.feature) { counts[name] = (counts[name] || 0) + 1; }
    });
    // The large point layers are drawn on their own canvas (assets/hazmap_static.js), the lines
    // and areas on theirs (assets/hazmap_vector.js).
    [window.hazmapStatic, window.hazmapVector].forEach(canvas => {
        const onCanvas = canvas ? canvas.drawn() : {};
        Object.entries(onCanvas).forEach(([name, n]) => { if (n) { counts[name] = (counts[name] || 0) + n; } });
    });
    return counts;
}"""

# Features whose paths are not on a canvas renderer (DOM markers or SVG would be a regression).
NOT_ON_CANVAS_JS = """() => {
    const bad = [];
    const onCanvas = path => path._renderer instanceof L.Canvas;
    window.hazmap.leafletMap.eachLayer(layer => {
        if (!(layer.options && layer.options.hazmapLayer && layer.feature)) { return; }
        const parts = layer.getLayers ? layer.getLayers() : [layer];
        if (!parts.every(onCanvas)) { bad.push(layer.options.hazmapLayer + ':' + layer.feature.properties.id); }
    });
    return bad;
}"""

# The canvases of Leaflet's own renderers in the overlay pane: none while no panel marks anything
# (every layer and the district outlines are on hazmap's canvases).
LEAFLET_OVERLAY_CANVASES_JS = """() => window.hazmap.leafletMap.getPane('overlayPane').querySelectorAll('canvas').length"""


def expected_counts(live_server, names=None) -> dict[str, int]:
    names = names or [layer.name for layer in LAYERS]
    return {name: live_server.stored.counts[name] for name in names}


def wait_for_counts(page, expected: dict[str, int]) -> dict[str, int]:
    """Wait until the map draws exactly `expected` (0 meaning: not drawn), then return what it draws."""
    wanted = {name: n for name, n in expected.items()}
    try:
        page.wait_for_function(
            """(wanted) => {
                if (!(window.hazmap && window.hazmap.leafletMap)) return false;
                const drawn = (%s)();
                return Object.entries(wanted).every(([name, n]) => (drawn[name] || 0) === n);
            }""" % DRAWN_COUNTS_JS,
            arg=wanted,
            timeout=LOAD_TIMEOUT_MS,
            polling=100,
        )
    except Exception as exc:  # report what was drawn instead of a bare timeout
        drawn = page.evaluate(DRAWN_COUNTS_JS) if page.evaluate("!!(window.hazmap && window.hazmap.leafletMap)") else {}
        raise AssertionError(f"map never drew the expected features:\n expected {wanted}\n drawn    {drawn}") from exc
    return page.evaluate(DRAWN_COUNTS_JS)


def layer_title(name: str) -> str:
    return next(layer.title[0] for layer in LAYERS if layer.name == name)


def control_checkbox(page, title: str):
    label = page.locator(".leaflet-control-layers-overlays label").filter(has_text=title)
    try:  # the layers control is drawn by the page's first render, which a loaded machine delays
        label.first.wait_for(state="attached", timeout=30_000)
    except PlaywrightTimeoutError:
        pass  # the count below says what is missing
    assert label.count() == 1, f"one overlay named {title!r} in the layers control"
    return label, label.locator("input")


def assert_no_console_errors(console):
    assert console.unexpected() == [], "console errors besides unreachable tiles:\n" + "\n".join(console.unexpected())


def test_every_layer_draws_every_feature_the_store_holds(page, live_server, console):
    page.goto(live_server.url)
    stored = live_server.stored.counts
    defaults = {layer.name: (stored[layer.name] if layer.shown_by_default else 0) for layer in LAYERS}
    wait_for_counts(page, defaults)

    for layer in LAYERS:  # switch every overlay on through the layers control
        label, checkbox = control_checkbox(page, layer.title[0])
        assert checkbox.is_checked() == layer.shown_by_default, layer.name
        if not layer.shown_by_default:
            label.click()
    drawn = wait_for_counts(page, expected_counts(live_server))
    assert drawn == {**expected_counts(live_server), "base": live_server.stored.counts["districts"]}
    assert all(drawn[layer.name] > 0 for layer in LAYERS), f"the demo world leaves a layer empty: {drawn}"

    # Canvas only: no feature drawn as a DOM marker or SVG; the ten district names are the only markers.
    assert page.evaluate(NOT_ON_CANVAS_JS) == []
    assert page.locator(".leaflet-marker-icon").count() == live_server.stored.counts["districts"]
    assert page.locator(".leaflet-overlay-pane svg").count() == 0
    # Every layer on hazmap's canvases: Leaflet's own canvas is not even created.
    assert [layer.name for layer in LAYERS if layer.name not in CANVAS_LAYERS + VECTOR_LAYERS] == []
    assert page.evaluate(LEAFLET_OVERLAY_CANVASES_JS) == 0

    # Layers switched off and on again come back (the static canvas draws its layers in a fixed order).
    for name in ("districts", "parks", "sensitive_sites", "hazard_sources"):
        label, _ = control_checkbox(page, layer_title(name))
        label.click()
        label.click()
    wait_for_counts(page, expected_counts(live_server))

    assert console.tile_failures > 0, "tiles were expected to fail here (no tile server is reachable)"
    assert_no_console_errors(console)


def click_feature(page, layer: str, feature_id: str, zoom: int = 16) -> None:
    """Centre the map on a point feature and click it where it is drawn, as an officer would."""
    if layer in CANVAS_LAYERS:  # drawn on the static canvas (assets/hazmap_static.js), not by Leaflet
        page.wait_for_function("([l, id]) => window.hazmapStatic && window.hazmapStatic.lonLatOf(l, id)",
                               arg=[layer, feature_id], timeout=LOAD_TIMEOUT_MS)
        lon, lat = page.evaluate("([l, id]) => window.hazmapStatic.lonLatOf(l, id)", [layer, feature_id])
        page.evaluate("([lat, lon, z]) => window.hazmap.leafletMap.setView([lat, lon], z, {animate: false})",
                      [lat, lon, zoom])
        page.wait_for_timeout(300)  # let the canvas redraw at the new view
        x, y = page.evaluate("""([lat, lon]) => {
            const map = window.hazmap.leafletMap, p = map.latLngToContainerPoint([lat, lon]);
            const box = map.getContainer().getBoundingClientRect();
            return [box.left + p.x, box.top + p.y];
        }""", [lat, lon])
        page.mouse.click(x, y)
        return
    position = page.evaluate(
        """([layerName, id, zoom]) => {
            const map = window.hazmap.leafletMap;
            let found = null;
            map.eachLayer(l => { if (l.options.hazmapLayer === layerName && l.feature && l.feature.properties.id === id) found = l; });
            if (!found) return null;
            map.setView(found.getLatLng(), zoom, {animate: false});
            return true;
        }""",
        [layer, feature_id, zoom],
    )
    assert position, f"{feature_id} is not on the map"
    page.wait_for_timeout(300)  # let the canvas redraw at the new view
    x, y = page.evaluate(
        """([layerName, id]) => {
            const map = window.hazmap.leafletMap;
            let found = null;
            map.eachLayer(l => { if (l.options.hazmapLayer === layerName && l.feature && l.feature.properties.id === id) found = l; });
            const point = map.latLngToContainerPoint(found.getLatLng());
            const box = map.getContainer().getBoundingClientRect();
            return [box.left + point.x, box.top + point.y];
        }""",
        [layer, feature_id],
    )
    page.mouse.click(x, y)


def test_clicking_a_hazard_source_shows_its_id_and_grade(page, live_server, console):
    hazard_sources = live_server.stored.world.hazard_sources.sort_values(["grade", "id"])
    source = hazard_sources.iloc[0]  # the most severe grade the world holds
    grade = str(int(source["grade"]))
    page.goto(live_server.url)
    wait_for_counts(page, {"hazard_sources": live_server.stored.counts["hazard_sources"]})

    click_feature(page, "hazard_sources", source["id"])
    panel = page.locator("#hz-panel.hz-open")
    panel.wait_for(timeout=10_000)
    assert panel.locator(".hz-panel-layer").inner_text() == "重大危险源"
    assert panel.locator(".hz-panel-title").inner_text() == source["name"]
    fields = dict(zip(panel.locator(".hz-panel-fields th").all_inner_texts(),
                      panel.locator(".hz-panel-fields td").all_inner_texts()))
    assert fields["编号"] == source["id"]
    assert fields["危险源等级"] == VALUE_LABELS["grade"][grade][0]

    # The switch turns the whole screen to English; the panel follows.
    page.locator("#hz-language-switch").click()
    page.wait_for_load_state()
    wait_for_counts(page, {"hazard_sources": live_server.stored.counts["hazard_sources"]})
    assert page.locator(".leaflet-control-layers-overlays").inner_text().count("Major hazard sources") == 1
    click_feature(page, "hazard_sources", source["id"])
    panel.wait_for(timeout=10_000)
    fields = dict(zip(panel.locator(".hz-panel-fields th").all_inner_texts(),
                      panel.locator(".hz-panel-fields td").all_inner_texts()))
    assert fields["ID"] == source["id"]
    assert fields["Grade"] == f"Grade {grade}"

    page.locator("#hz-panel-close").click()
    page.locator("#hz-panel.hz-open").wait_for(state="detached", timeout=5_000)
    assert_no_console_errors(console)


def _rgb(hex_colour: str) -> list[int]:
    return [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]


# The land at a lon/lat: the colour and opacity of the land's SVG path covering it ([0, 0, 0, 0]
# where none does). The land is SVG (assets/hazmap_map.js `landStyle`), never a 2D canvas.
LAND_PIXEL_JS = """([lat, lon]) => {
    const map = window.hazmap.leafletMap, pane = map.getPane('hzland');
    const p = map.latLngToLayerPoint([lat, lon]);
    for (const path of pane.querySelectorAll('svg path')) {
        if (!path.isPointInFill(new DOMPoint(p.x, p.y))) continue;
        const style = getComputedStyle(path), rgb = style.fill.match(/\\d+/g).map(Number);
        return [...rgb, Math.round(255 * parseFloat(style.fillOpacity) * parseFloat(style.opacity))];
    }
    return [0, 0, 0, 0];
}"""


def test_wall_screen_without_tiles(chromium, page, live_server, console):
    """Look of the wall at 1920x1080 and 3840x2160 with no tile server: land brighter than the
    sea, district outlines and names drawn, legend and control on screen, nothing scrolls."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    districts = live_server.stored.world.districts
    defaults = {layer.name: live_server.stored.counts[layer.name] for layer in LAYERS if layer.shown_by_default}

    page.goto(live_server.url)
    wait_for_counts(page, {**defaults, "base": len(districts)})
    page.wait_for_function("document.querySelectorAll('.hz-district-label').length > 0", timeout=LOAD_TIMEOUT_MS)
    assert sorted(page.locator(".hz-district-label").all_inner_texts()) == sorted(districts["name"])

    # Land and sea: the land is painted where the districts are and nowhere else, as SVG: a 2D
    # canvas is copied at every commit (software compositing), an SVG path only when it changes.
    assert page.evaluate("window.hazmap.leafletMap.getPane('hzland').querySelectorAll('canvas').length") == 0
    inland = districts.geometry.representative_point().iloc[0]
    assert page.evaluate(LAND_PIXEL_JS, [inland.y, inland.x]) == [*_rgb(LAND), 255]
    assert page.evaluate(LAND_PIXEL_JS, [29.2, 122.6])[3] == 0  # the East China Sea
    background = page.evaluate("getComputedStyle(document.querySelector('.hz-map')).backgroundColor")
    assert background == "rgb({}, {}, {})".format(*_rgb(SEA))

    _assert_fits_the_screen(page)
    page.screenshot(path=str(SCREENSHOTS / "map.png"))
    assert_no_console_errors(console)

    context, big = open_page(chromium, WALL_2160, console)
    try:
        big.goto(live_server.url)
        wait_for_counts(big, {**defaults, "base": len(districts)})
        _assert_fits_the_screen(big)
        assert big.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)") >= 38
        big.screenshot(path=str(SCREENSHOTS / "map-2160.png"))
    finally:
        context.close()
    assert_no_console_errors(console)


def _assert_fits_the_screen(page) -> None:
    sizes = page.evaluate(
        """() => ({scroll: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
                   view: [innerWidth, innerHeight]})"""
    )
    assert sizes["scroll"] == sizes["view"], f"the page scrolls: {json.dumps(sizes)}"
    view_w, view_h = sizes["view"]
    boxes = {name: page.locator(selector).bounding_box() for name, selector in (
        ("legend", "#hz-legend"), ("control", ".leaflet-control-layers"), ("header", ".hz-header"))}
    for name, box in boxes.items():
        assert box and box["width"] > 0 and box["height"] > 0, f"{name} is not shown"
        inside = box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= view_w
        assert inside and box["y"] + box["height"] <= view_h, f"{name} leaves the screen: {box}"
    legend, control = boxes["legend"], boxes["control"]
    assert control["y"] + control["height"] <= legend["y"], f"layers control {control} overlaps the legend {legend}"
