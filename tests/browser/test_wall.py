"""The wall at full scale in real headless Chromium: the large static point layers on their
typed-array canvas (assets/hazmap_static.js, layers/static_canvas.py).

What a duty officer relies on: switched on, each canvas layer draws as many features as the
store holds (at the city view and at a zoom where symbols show) and marks its first paint; a
click on one of its points opens that feature in the side panel; an area's outline shows from
the outline zoom on; switched off, the layer is gone; the console stays clean. Screenshots with
every layer on are kept at 1920x1080 and 3840x2160.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from layers.catalog import LAYERS, map_layer
from layers.static_canvas import CANVAS_LAYERS, OUTLINE_MIN_ZOOM
from layers.vector_canvas import VECTOR_LAYERS
from tests.browser.conftest import SCREENSHOTS, WALL_2160, open_page
from tests.browser.test_map import assert_no_console_errors, control_checkbox

pytestmark = pytest.mark.browser

LOAD_TIMEOUT_MS = 30_000


def switch_on_every_layer(page) -> None:
    for layer in LAYERS:
        label, checkbox = control_checkbox(page, layer.title[0])
        if not checkbox.is_checked():
            label.click()


def wait_for_drawn(page, expected: dict[str, int]) -> dict[str, int]:
    try:
        page.wait_for_function(
            """(wanted) => window.hazmapStatic && Object.entries(wanted).every(
                   ([name, n]) => window.hazmapStatic.drawn()[name] === n)""",
            arg=expected, timeout=LOAD_TIMEOUT_MS, polling=100)
    except Exception as exc:
        drawn = page.evaluate("window.hazmapStatic ? window.hazmapStatic.drawn() : null")
        raise AssertionError(f"the canvas never drew {expected}; it drew {drawn}") from exc
    return page.evaluate("window.hazmapStatic.drawn()")


def set_view(page, lon: float, lat: float, zoom: float) -> None:
    page.evaluate("([lat, lon, z]) => window.hazmap.leafletMap.setView([lat, lon], z, {animate: false})",
                  [lat, lon, zoom])
    page.wait_for_timeout(300)  # the canvas redraws on the next frame


def container_pixel(page, lon: float, lat: float) -> tuple[float, float]:
    return tuple(page.evaluate(
        """([lat, lon]) => {
            const map = window.hazmap.leafletMap, p = map.latLngToContainerPoint([lat, lon]);
            const box = map.getContainer().getBoundingClientRect();
            return [box.left + p.x, box.top + p.y];
        }""", [lat, lon]))


def test_each_canvas_layer_draws_every_stored_feature_and_marks_its_first_paint(page, live_server, console):
    stored = live_server.stored.counts
    page.goto(live_server.url)
    defaults = {name: stored[name] if map_layer(name).shown_by_default else 0 for name in CANVAS_LAYERS}
    wait_for_drawn(page, defaults)
    switch_on_every_layer(page)
    assert wait_for_drawn(page, {name: stored[name] for name in CANVAS_LAYERS}) == \
        {name: stored[name] for name in CANVAS_LAYERS}
    marks = page.evaluate("performance.getEntriesByType('mark').map(m => m.name)")
    assert {f"hazmap:layer:{name}" for name in CANVAS_LAYERS} <= set(marks)
    # no circle marker of these layers on Leaflet's own canvas: they are drawn once, on ours
    leaflet_drawn = page.evaluate("""(names) => { let n = 0; window.hazmap.leafletMap.eachLayer(l => {
        if (l.feature && names.includes(l.options.hazmapLayer)) n++; }); return n; }""", list(CANVAS_LAYERS))
    assert leaflet_drawn == 0

    # At a zoom where symbols show (a street's view of the densest part): what the view holds.
    world = live_server.stored.world
    entities = world.entities
    centre = entities.geometry.iloc[0]
    set_view(page, centre.x, centre.y, 14)
    bounds = page.evaluate("""() => { const b = window.hazmap.leafletMap.getBounds();
        return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; }""")
    box = shapely.box(*bounds)
    in_view = int(shapely.contains(box, entities.geometry.to_numpy()).sum())
    drawn = page.evaluate("window.hazmapStatic.drawn()")["entities"]
    # the canvas is padded 10 % around the view: it draws what the view holds and a margin more
    assert in_view >= 1 and in_view <= drawn <= len(entities)

    # Switched off, a layer is gone from the canvas.
    label, _ = control_checkbox(page, map_layer("entities").title[0])
    label.click()
    wait_for_drawn(page, {"entities": 0})
    assert_no_console_errors(console)


def _lonely_entity(world) -> tuple[str, float, float]:
    """An entity with no other point feature within 60 m (so a click on it can only mean it)."""
    entities = world.entities
    others = np.concatenate([world.table(n).geometry.to_numpy() for n in (
        "hazard_sources", "monitoring_points", "vehicles", "wash_stations", "parking_lots", "service_areas",
        "repair_shops")] + [shapely.point_on_surface(world.sensitive_sites.geometry.to_numpy())])
    tree = shapely.STRtree(others)
    for i, geometry in enumerate(entities.geometry.to_numpy()):
        others_near = tree.query(geometry, predicate="dwithin", distance=6e-4)
        near_entities = shapely.dwithin(entities.geometry.to_numpy(), geometry, 6e-4).sum() - 1
        if not len(others_near) and not near_entities:
            return str(entities["id"].iloc[i]), geometry.x, geometry.y
    raise AssertionError("the demo world has no entity standing alone")


def test_a_click_on_a_canvas_point_opens_it_in_the_panel(page, live_server, console):
    entity_id, lon, lat = _lonely_entity(live_server.stored.world)
    page.goto(live_server.url)
    wait_for_drawn(page, {"entities": live_server.stored.counts["entities"]})
    set_view(page, lon, lat, 16)
    x, y = container_pixel(page, lon, lat)
    page.mouse.click(x, y)
    panel = page.locator("#hz-panel.hz-open")
    panel.wait_for(timeout=10_000)
    assert panel.locator(".hz-panel-layer").inner_text() == map_layer("entities").title[0]
    fields = dict(zip(panel.locator(".hz-panel-fields th").all_inner_texts(),
                      panel.locator(".hz-panel-fields td").all_inner_texts()))
    assert fields["编号"] == entity_id

    # A click on the empty map next to it opens nothing of the canvas's.
    page.locator("#hz-panel-close").click()
    page.locator("#hz-panel.hz-open").wait_for(state="detached", timeout=5_000)
    assert page.evaluate("([x, y]) => window.hazmapStatic.hitAt(x, y)", [x - 60 - page.evaluate(
        "window.hazmap.leafletMap.getContainer().getBoundingClientRect().left"), y - 60 - page.evaluate(
        "window.hazmap.leafletMap.getContainer().getBoundingClientRect().top")]) is None
    assert_no_console_errors(console)


# -- the vector canvas: lines and areas (assets/hazmap_vector.js, layers/vector_canvas.py) -------------

def wait_for_vector(page, expected: dict[str, int]) -> dict[str, int]:
    try:
        page.wait_for_function(
            """(wanted) => window.hazmapVector && Object.entries(wanted).every(
                   ([name, n]) => window.hazmapVector.drawn()[name] === n)""",
            arg=expected, timeout=LOAD_TIMEOUT_MS, polling=100)
    except Exception as exc:
        drawn = page.evaluate("window.hazmapVector ? window.hazmapVector.drawn() : null")
        raise AssertionError(f"the vector canvas never drew {expected}; it drew {drawn}") from exc
    return page.evaluate("window.hazmapVector.drawn()")


def test_each_vector_layer_draws_every_stored_feature_and_none_is_on_leaflet(page, live_server, console):
    stored = live_server.stored.counts
    page.goto(live_server.url)
    wait_for_vector(page, {name: stored[name] if map_layer(name).shown_by_default else 0 for name in VECTOR_LAYERS})
    switch_on_every_layer(page)
    # and over them, always, the district outlines of the base (`base`: one per district)
    assert wait_for_vector(page, {name: stored[name] for name in VECTOR_LAYERS}) == \
        {**{name: stored[name] for name in VECTOR_LAYERS}, "base": stored["districts"]}
    marks = page.evaluate("performance.getEntriesByType('mark').map(m => m.name)")
    assert {f"hazmap:layer:{name}" for name in VECTOR_LAYERS} <= set(marks)
    leaflet_drawn = page.evaluate("""(names) => { let n = 0; window.hazmap.leafletMap.eachLayer(l => {
        if (l.feature && names.includes(l.options.hazmapLayer)) n++; }); return n; }""", list(VECTOR_LAYERS))
    assert leaflet_drawn == 0
    # the city view draws the coarsest band; a street's view a finer one, fetched when first needed
    assert page.evaluate("window.hazmapVector.band('roads').index") == 0
    road = live_server.stored.world.roads.geometry.iloc[0].interpolate(0.5, normalized=True)
    set_view(page, road.x, road.y, 15)
    page.wait_for_function("window.hazmapVector.band('roads').loaded", timeout=10_000)
    assert page.evaluate("window.hazmapVector.band('roads').index") > 0
    # switched off, a layer is gone from the canvas
    label, _ = control_checkbox(page, map_layer("waybills").title[0])
    label.click()
    wait_for_vector(page, {"waybills": 0})
    assert_no_console_errors(console)


def _lonely_road(world) -> tuple[str, float, float]:
    """A road's midpoint with no route, other road or point feature within 60 m."""
    others = np.concatenate([world.table(n).geometry.to_numpy() for n in (
        "hazard_sources", "monitoring_points", "vehicles", "wash_stations", "parking_lots", "service_areas",
        "repair_shops", "entities", "waybills")] + [shapely.point_on_surface(world.sensitive_sites.geometry.to_numpy())])
    tree, roads = shapely.STRtree(others), world.roads.geometry.to_numpy()
    for i, middle in enumerate(shapely.line_interpolate_point(roads, 0.5, normalized=True)):
        near_roads = shapely.dwithin(roads, middle, 6e-4).sum() - 1
        if not len(tree.query(middle, predicate="dwithin", distance=6e-4)) and not near_roads:
            return str(world.roads["id"].iloc[i]), middle.x, middle.y
    raise AssertionError("the demo world has no road standing alone")


def test_a_click_on_a_road_opens_it_and_the_empty_map_beside_it_does_not(page, live_server, console):
    road_id, lon, lat = _lonely_road(live_server.stored.world)
    page.goto(live_server.url)
    label, checkbox = control_checkbox(page, map_layer("roads").title[0])
    if not checkbox.is_checked():
        label.click()
    wait_for_vector(page, {"roads": live_server.stored.counts["roads"]})
    set_view(page, lon, lat, 16)
    page.wait_for_function("window.hazmapVector.clickable().roads", timeout=10_000)
    page.screenshot(path=str(SCREENSHOTS / "wall-road-click.png"))
    x, y = container_pixel(page, lon, lat)
    page.mouse.click(x, y)
    panel = page.locator("#hz-panel.hz-open")
    panel.wait_for(timeout=10_000)
    assert panel.locator(".hz-panel-layer").inner_text() == map_layer("roads").title[0]
    fields = dict(zip(panel.locator(".hz-panel-fields th").all_inner_texts(),
                      panel.locator(".hz-panel-fields td").all_inner_texts()))
    assert fields["编号"] == road_id
    box = page.evaluate("(() => { const b = window.hazmap.leafletMap.getContainer().getBoundingClientRect(); "
                        "return [b.left, b.top]; })()")
    assert page.evaluate("([x, y]) => window.hazmapVector.hitAt(x, y)", [x - box[0], y - box[1]])["id"] == road_id
    # 40 px beside it (no route, road or point within 60 m): no line; at most the district it lies in
    beside = page.evaluate("([x, y]) => window.hazmapVector.hitAt(x, y)", [x - box[0] + 40, y - box[1] + 40])
    assert beside is None or (beside["area"] and beside["layer"] == "districts"), beside
    assert_no_console_errors(console)


# Alpha of the static canvas at a lon/lat.
CANVAS_ALPHA_JS = """([lat, lon]) => {
    const canvas = window.hazmapStatic.canvas(), map = window.hazmap.leafletMap;
    const p = map.latLngToLayerPoint([lat, lon]), origin = L.DomUtil.getPosition(canvas);
    return canvas.getContext('2d').getImageData(Math.round(p.x - origin.x), Math.round(p.y - origin.y), 1, 1).data[3];
}"""


def test_area_outlines_show_from_the_outline_zoom_on(page, live_server, console):
    sites = live_server.stored.world.sensitive_sites
    areas = sites[shapely.get_type_id(sites.geometry.to_numpy()) != 0]
    # the largest area: its outline lies away from its drawn point at the outline zoom
    area = areas.geometry.iloc[int(np.argmax(shapely.area(areas.geometry.to_numpy())))]
    vertex = shapely.get_coordinates(shapely.simplify(area.exterior if area.geom_type == "Polygon"
                                                      else max(area.geoms, key=lambda g: g.area).exterior, 0))[0]
    page.goto(live_server.url)
    wait_for_drawn(page, {"sensitive_sites": live_server.stored.counts["sensitive_sites"]})
    set_view(page, vertex[0], vertex[1], OUTLINE_MIN_ZOOM - 1)
    assert page.evaluate(CANVAS_ALPHA_JS, [vertex[1], vertex[0]]) == 0
    set_view(page, vertex[0], vertex[1], OUTLINE_MIN_ZOOM + 1)
    assert page.evaluate(CANVAS_ALPHA_JS, [vertex[1], vertex[0]]) > 0
    assert_no_console_errors(console)


def test_screenshots_with_every_layer_on(chromium, page, live_server, console):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    expected = {name: live_server.stored.counts[name] for name in CANVAS_LAYERS}
    page.goto(live_server.url)
    wait_for_drawn(page, {n: c for n, c in expected.items() if map_layer(n).shown_by_default})
    switch_on_every_layer(page)
    wait_for_drawn(page, expected)
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / "wall-1080.png"))
    context, big = open_page(chromium, WALL_2160, console)
    try:
        big.goto(live_server.url)
        wait_for_drawn(big, {n: c for n, c in expected.items() if map_layer(n).shown_by_default})
        switch_on_every_layer(big)
        wait_for_drawn(big, expected)
        big.wait_for_timeout(500)
        big.screenshot(path=str(SCREENSHOTS / "wall-2160.png"))
    finally:
        context.close()
    assert_no_console_errors(console)


# -- the live header (layers/header.py) -----------------------------------------------------------

from tests.browser.test_live_map import live_app  # noqa: E402,F401 - the scripted live feed's app


def test_the_header_shows_the_live_state(chromium, page, live_app, console):  # noqa: F811
    import pandas as pd

    from layers.header import points_in_alarm, truck_counts

    live_app.feed.pause()  # hold the state still: the header is compared with it
    try:
        state = live_app.feed.snapshot()
        trucks = truck_counts(state)
        alarms = points_in_alarm(state, pd.Index(live_app.world.monitoring_points["id"].astype(str)))
        page.goto(live_app.url)
        header = page.locator("#hz-wall-header .hz-wall-trucks .hz-stat-value")
        header.wait_for(timeout=LOAD_TIMEOUT_MS)
        page.wait_for_function(
            """(t) => { const e = document.querySelector('#hz-wall-header .hz-wall-trucks .hz-stat-value');
                return e && e.dataset.moving === String(t.moving) && e.dataset.stopped === String(t.stopped)
                    && e.dataset.offline === String(t.offline); }""", arg=trucks, timeout=LOAD_TIMEOUT_MS)
        assert page.locator("#hz-wall-header .hz-wall-points .hz-stat-value").get_attribute("data-n") == str(alarms)
        assert sum(trucks.values()) == len(state.positions) > 0
        _assert_no_scrollbars(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "wall-live-1080.png"))
        context, big = open_page(chromium, WALL_2160, console)
        try:
            big.goto(live_app.url)
            big.locator("#hz-wall-header .hz-wall-trucks").wait_for(timeout=LOAD_TIMEOUT_MS)
            _assert_no_scrollbars(big)
            big.screenshot(path=str(SCREENSHOTS / "wall-live-2160.png"))
        finally:
            context.close()
    finally:
        live_app.feed.resume()
    assert_no_console_errors(console)


def _assert_no_scrollbars(page) -> None:
    sizes = page.evaluate("""() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight,
                                    innerWidth, innerHeight]""")
    assert sizes[:2] == sizes[2:], f"the page scrolls: {sizes}"


# -- search (layers/search.py, assets/hazmap_wall.js) -----------------------------------------------


def test_search_finds_a_plate_flies_there_and_opens_it(page, live_server, console):
    truck = live_server.stored.world.vehicles.iloc[7]
    page.goto(live_server.url)
    wait_for_drawn(page, {"entities": live_server.stored.counts["entities"]})
    page.locator("#hz-search-input").fill(truck["plate"].replace("·", ""))  # as typed: no separator
    hit = page.locator("#hz-search-results .hz-search-hit").first
    hit.wait_for(timeout=10_000)
    assert truck["plate"] in hit.inner_text() and truck["id"] in hit.inner_text()
    hit.click()
    panel = page.locator("#hz-panel.hz-open")
    panel.wait_for(timeout=10_000)
    assert truck["plate"] in panel.inner_text() and truck["id"] in panel.inner_text()
    page.wait_for_function(
        """([lat, lon]) => { const m = window.hazmap.leafletMap, c = m.getCenter();
            return m.getZoom() >= 16 && Math.abs(c.lat - lat) < 1e-4 && Math.abs(c.lng - lon) < 1e-4; }""",
        arg=[truck.geometry.y, truck.geometry.x], timeout=10_000)
    assert page.locator("#hz-search-results.hz-open").count() == 0  # the list closes once a hit is opened

    # Nothing found says so; the English switch changes the box's texts.
    page.locator("#hz-search-input").fill("没有这样的东西")
    page.locator("#hz-search-results .hz-search-none").wait_for(timeout=10_000)
    assert page.locator("#hz-search-results .hz-search-none").inner_text() == "无结果"
    page.locator("#hz-language-switch").click()
    page.wait_for_load_state()
    page.locator("#hz-search-input").wait_for(timeout=LOAD_TIMEOUT_MS)
    assert page.locator("#hz-search-input").get_attribute("placeholder") == "Search plate, name or id"
    assert_no_console_errors(console)


# -- the incident ticker and queue (assets/hazmap_wall.js) ------------------------------------------


class _StillFeed:
    """A live source whose monitor runs the incident processor (what makes the wall show incidents)."""

    def __init__(self):
        from types import SimpleNamespace

        from spatial.incidents.lifecycle import IncidentSettings
        from spatial.model import LiveState

        self.settings = SimpleNamespace(incidents=IncidentSettings())
        self._state = LiveState()

    def snapshot(self):
        return self._state.copy() if hasattr(self._state, "copy") else self._state


def _red_event(subject: str, episode: str, lon: float, lat: float):
    import pandas as pd

    from spatial.model import Event

    return Event("speeding", subject, episode, "open", pd.Timestamp("2026-11-02T01:00:00Z"), None, lon, lat, 1,
                 {"speed_kmh": 95})


@pytest.fixture(scope="module")
def incident_app(stored_world, tmp_path_factory):
    import threading

    from werkzeug.serving import make_server

    from app.settings import Settings
    from app.webapp import create_app
    from data.incidents import IncidentStore
    from data.store import Store
    from tests.browser.conftest import UNREACHABLE_TILES

    world = stored_world.world
    url = f"sqlite:///{(tmp_path_factory.mktemp('incidents') / 'hazmap.sqlite').as_posix()}"
    store = Store.open(url, upgrade=True)
    store.replace_world(world)
    incidents = IncidentStore(store, world)
    truck = world.vehicles.iloc[0]
    incidents.apply_events([_red_event(truck["id"], "ep-1", truck.geometry.x, truck.geometry.y)])
    settings = Settings(var_dir=tmp_path_factory.mktemp("var"), tile_url=UNREACHABLE_TILES, language="zh",
                        database_url=url)
    # the store: what the incident's panel is read from (a screen without people)
    web = create_app(settings, world, world_version=world.fingerprint(), live=_StillFeed(), store=store)
    server = make_server("127.0.0.1", 0, web.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hazmap-wall-incidents", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", incidents, world
    finally:
        server.shutdown()
        thread.join(timeout=10)
        store.close() if hasattr(store, "close") else None


def test_a_new_red_incident_flashes_in_the_ticker_and_its_click_opens_it(page, incident_app, console):
    url, incidents, world = incident_app
    page.goto(url)
    page.wait_for_function("window.hazmapWall && window.hazmapWall.ticker().polls > 0", timeout=LOAD_TIMEOUT_MS)
    first = incidents.list()
    assert page.evaluate("window.hazmapWall.ticker().queue") == first["id"].tolist()  # unsigned: in the queue
    assert page.evaluate("window.hazmapWall.ticker().flashed") == []  # what was there at load does not flash

    truck = world.vehicles.iloc[1]
    incidents.apply_events([_red_event(truck["id"], "ep-2", truck.geometry.x, truck.geometry.y)])
    # the incident not there before (both start at the same time: "newest first" does not tell them apart)
    new_id = next(i for i in incidents.list()["id"] if i not in set(first["id"]))
    page.wait_for_function("(id) => window.hazmapWall.ticker().flashed.includes(id)", arg=new_id,
                           timeout=LOAD_TIMEOUT_MS)
    row = page.locator(f"#hz-incidents .hz-incident[data-id='{new_id}']").first
    assert "超速" in row.inner_text() and "重大" in row.inner_text()
    assert row.locator(".hz-incident-subject").inner_text() == truck["plate"]  # a truck by its plate, not its id
    row.click()
    panel = page.locator("#hz-panel.hz-open")
    panel.wait_for(timeout=10_000)
    # the incident itself opens (not its subject): its subject is a link in it
    page.wait_for_function("(id) => document.querySelector('#hz-panel.hz-open').innerText.includes(id)",
                           arg=truck["id"], timeout=10_000)
    assert "告警事件" in panel.inner_text() and "超速" in panel.inner_text()
    assert truck["id"] in panel.inner_text()
    assert page.evaluate("window.hazmapWall.opened()") == {"layer": "incidents", "id": new_id, "subject": truck["id"]}
    # the map flew there: the incident in view at a street's zoom (its panel may then frame the evidence)
    page.wait_for_function(
        """([lat, lon]) => { const m = window.hazmap.leafletMap;
            return m.getZoom() >= 14 && m.getBounds().contains([lat, lon]); }""",
        arg=[truck.geometry.y, truck.geometry.x], timeout=10_000)

    # the sound can be muted (kept for the next page load)
    page.locator(".hz-incidents-mute").click()
    assert page.evaluate("window.hazmapWall.ticker().muted") is True
    assert_no_console_errors(console)


# -- self-healing (assets/hazmap_wall.js, assets/hazmap_live.js) -----------------------------------


def test_a_network_drop_is_said_in_the_header_and_healed(page, live_app, console):  # noqa: F811
    page.goto(live_app.url)
    page.wait_for_function("window.hazmapLive && window.hazmapLive.polls > 0", timeout=LOAD_TIMEOUT_MS)
    page.route("**/live/**", lambda route: route.abort())  # the network drops under the live feed
    page.wait_for_function("window.hazmapWall.link() === 'down'", timeout=LOAD_TIMEOUT_MS)
    assert page.locator("#hz-link-status").inner_text() == "连接中断，正在重连"
    assert page.locator(".hz-map .leaflet-pane").count() > 0  # the map stays, no dialog
    page.unroute("**/live/**")
    page.wait_for_function("window.hazmapWall.link() === 'back'", timeout=LOAD_TIMEOUT_MS)
    assert page.locator("#hz-link-status").inner_text() == "已重新连接并同步"
    assert page.evaluate("window.hazmapLive.trucks") == len(live_app.feed.snapshot().positions)
    # failed fetches log as console errors in Chromium: those of the dropped /live/ polls are expected
    assert [e for e in console.unexpected() if "/live/" not in e and "ERR_FAILED" not in e] == []


# -- layout at both wall sizes (assets/hazmap.css, assets/hazmap_wall.js) ---------------------------

# Boxes of the map's controls and the wall's panels that must not overlap one another.
CONTROL_BOXES_JS = """() => Object.fromEntries([
    ['zoom', '.leaflet-control-zoom'], ['scale', '.leaflet-control-scale'], ['draw', '.leaflet-draw'],
    ['attribution', '.leaflet-control-attribution'], ['export', '.hz-snapshot'], ['layers', '.leaflet-control-layers'],
    ['legend', '#hz-legend'], ['incidents', '#hz-incidents']].map(([name, selector]) => {
        const e = document.querySelector(selector), r = e && e.getBoundingClientRect();
        return [name, r && r.width && r.height ? [r.left, r.top, r.right, r.bottom] : null];
    }))"""
# The world's bounds (the districts) on the screen against the map's size.
WORLD_ON_MAP_JS = """() => {
    const map = window.hazmap.leafletMap, b = JSON.parse(document.querySelector('.hz-root').dataset.bounds);
    const sw = map.latLngToContainerPoint(b[0]), ne = map.latLngToContainerPoint(b[1]), size = map.getSize();
    const box = map.getContainer().getBoundingClientRect();
    return {width: (ne.x - sw.x) / size.x, height: (sw.y - ne.y) / size.y, map: [box.left, box.top, box.right, box.bottom],
            inside: sw.x >= -1 && ne.x <= size.x + 1 && ne.y >= -1 && sw.y <= size.y + 1};
}"""


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("size", ["1080", "2160"])
def test_the_city_fills_the_map_without_scrollbars_or_overlapping_controls(chromium, incident_app, console, size):
    from tests.browser.conftest import WALL_1080

    viewport = WALL_1080 if size == "1080" else WALL_2160
    url, _incidents, _world = incident_app
    context, page = open_page(chromium, viewport, console)
    try:
        page.goto(url)
        page.wait_for_function("window.hazmapWall && window.hazmapWall.fitted() > 0 && window.hazmapWall.ticker().polls > 0",
                               timeout=LOAD_TIMEOUT_MS)
        page.locator("#hz-wall-header .hz-wall-trucks").wait_for(timeout=LOAD_TIMEOUT_MS)
        page.wait_for_timeout(500)
        _assert_no_scrollbars(page)
        world = page.evaluate(WORLD_ON_MAP_JS)
        assert world["map"][2] <= viewport["width"] and world["map"][3] <= viewport["height"], world
        assert world["inside"] and max(world["width"], world["height"]) >= 0.7, f"the city is small on the map: {world}"
        boxes = {k: v for k, v in page.evaluate(CONTROL_BOXES_JS).items() if v is not None}
        assert {"zoom", "scale", "export", "legend", "incidents"} <= set(boxes), boxes
        clashes = [(a, b) for i, a in enumerate(sorted(boxes)) for b in sorted(boxes)[i + 1:]
                   if _overlaps(boxes[a], boxes[b])]
        assert clashes == [], f"overlapping at {size}: {clashes} ({boxes})"
        # the drawing tools scale with the other controls (their sprite is 30 px at any size)
        zoom_button, draw_button = page.evaluate("""() => ['.leaflet-control-zoom-in', '.leaflet-draw-toolbar a']
            .map(selector => document.querySelector(selector).getBoundingClientRect().height)""")
        assert 0.75 <= draw_button / zoom_button <= 1.25, (size, draw_button, zoom_button)
        # the briefing's day field as high as the buttons beside it (Dash 4 wraps it in a box of 34 px)
        field, button = page.evaluate("""() => ['#hz-briefing-day', '.hz-snapshot .hz-snapshot-button']
            .map(selector => document.querySelector(selector).getBoundingClientRect().height)""")
        assert abs(field - button) <= 2, (size, field, button)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"wall-layout-{size}.png"))
    finally:
        context.close()
    assert_no_console_errors(console)
