"""Drill-down panels of every kind in real headless Chromium, each opened by a click where the
entity is drawn, its figures checked against the store: a truck (speed chart 2 h / 24 h, the replay's
stops and incidents), a monitoring point (readings 24 h / 7 d, status history), an enterprise, a
sensitive site (who is near it now), a wash station (visits, trucks washed today); and the map's
focus: a click on the map never moves it, a related link brings its entity into view, and a panel
that arrives after the officer moved the map leaves the map where the officer put it.

The app runs without people (no login) on a SQLite store and a fixed live picture: every truck at
its registered position at NOW, the loaded ones on their waybills.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import shapely

from tests.browser.conftest import SCREENSHOTS, UNREACHABLE_TILES
from tests.browser.test_map import control_checkbox
from tests.incidents.helpers import ev

pytestmark = pytest.mark.browser

NOW = pd.Timestamp("2026-11-02T04:00:00Z")  # 12:00 in Ningbo; the live picture's newest report
NOW_MS = int(NOW.value // 1_000_000)


class StaticLive:
    """A live source that does not move: the screen reads the same picture on every poll."""

    def __init__(self, state):
        self.state = state

    def snapshot(self):
        return self.state.copy()


def _stop_track(vehicle_id: str, lon: float, lat: float, n: int = 2880, rng=None) -> tuple:
    """24 h at 30 s ending at (lon, lat): driving, with a 40 min stop at the middle."""
    rng = rng or np.random.default_rng(0)
    steps = rng.normal(0, 2e-3, n)  # ~200 m a report
    steps[n // 2:n // 2 + 80] = 0.0  # 40 min still
    walk = np.cumsum(steps[::-1])[::-1] - steps[-1]
    ms = NOW_MS - np.arange(n)[::-1].astype("int64") * 30_000
    return ms, lon + walk, lat + walk * 0.5, (np.arange(n) % 80).astype("float64")


@pytest.fixture(scope="module")
def kinds_app(tmp_path_factory):
    from werkzeug.serving import make_server

    import app.webapp as webapp
    from app.settings import Settings
    from bench.drilldown import isolated
    from data.demo import build_world
    from data.incidents import IncidentStore
    from data.reference import load_chemicals
    from data.store import Store
    from spatial.crs import from_metric, geometry_to_metric, to_metric
    from spatial.model import LiveState, PingBatch, ReadingBatch

    tmp = tmp_path_factory.mktemp("kinds")
    world = build_world(seed=5, scale=0.02, chemicals=load_chemicals())
    store = Store.open(f"sqlite:///{(tmp / 'hazmap.sqlite').as_posix()}", upgrade=True)
    store.replace_world(world)
    world = store.load_world(chemicals=world.chemicals)  # the screen shows what the store holds
    vehicles = world.vehicles.copy()
    # the truck under test is on the road 3-6 km from its carrier's depot (where trucks are registered),
    # somewhere nothing else is drawn within 40 m: at zoom 17 its carrier's link must move the map
    truck_at = vehicles.dropna(subset=["carrier_id"]).index[0]
    depot_x, depot_y = to_metric([vehicles.geometry.x[truck_at]], [vehicles.geometry.y[truck_at]])
    for dx, dy in ((3000, 0), (0, 3000), (-3000, 0), (0, -3000), (4000, 4000), (-4000, 4000), (6000, 0)):
        x, y = from_metric([depot_x[0] + dx], [depot_y[0] + dy])
        empty = LiveState()
        if isolated(world, empty, [[x[0], y[0]]])[0]:
            break
    vehicles.loc[truck_at, "geometry"] = shapely.Point(x[0], y[0])
    live = LiveState()
    live.apply_pings(PingBatch.from_arrays(vehicles["id"].to_numpy(object), np.full(len(vehicles), NOW_MS),
                                           vehicles.geometry.x.to_numpy(), vehicles.geometry.y.to_numpy(),
                                           speed_kmh=np.full(len(vehicles), 40.0)))
    lonlat = np.column_stack([vehicles.geometry.x.to_numpy(), vehicles.geometry.y.to_numpy()])
    alone = vehicles[isolated(world, live, lonlat)]
    truck = vehicles.loc[truck_at]
    assert truck["id"] in set(alone["id"])
    ms, lon, lat, speed = _stop_track(truck["id"], truck.geometry.x, truck.geometry.y)
    store.write_pings(PingBatch.from_arrays(np.full(len(ms), truck["id"], dtype=object), ms, lon, lat,
                                            speed_kmh=speed))
    incidents = IncidentStore(store, world)
    at_minutes = (NOW - pd.Timedelta(hours=5) - pd.Timestamp("2026-11-02T01:00:00Z")) / pd.Timedelta(minutes=1)
    incidents.apply_events([ev("open", at_minutes, subject=truck["id"], rule="speeding", lon=float(lon[2000]),
                               lat=float(lat[2000]))])
    # a monitoring point with 7 days of 10 min readings, a level alarm that ended and one going on
    points = world.monitoring_points.dropna(subset=["high", "high_high"])
    points = points[isolated(world, live, np.column_stack([points.geometry.x, points.geometry.y]))]
    point = points.iloc[0]
    n = 7 * 24 * 6 + 1
    rms = NOW_MS - np.arange(n)[::-1].astype("int64") * 600_000
    store.write_readings(ReadingBatch.from_arrays(np.full(n, point["id"], dtype=object), rms,
                                                  np.linspace(0, float(point["high"]), n)))
    store.write_events([ev("open", 60, rule="point_level", subject=point["id"], severity=2),
                        ev("close", 60, 90, rule="point_level", subject=point["id"], severity=2),
                        ev("open", 150, rule="point_level", subject=point["id"], severity=1)])
    # a wash station: one truck stops 25 min 40 m from it, another drives past within 150 m
    stations = world.wash_stations
    station = stations[isolated(world, live, np.column_stack([stations.geometry.x, stations.geometry.y]))].iloc[0]
    sx, sy = to_metric([station.geometry.x], [station.geometry.y])
    washed, passing = vehicles["id"].iloc[-1], vehicles["id"].iloc[-2]  # not clicked: anywhere
    wms = NOW_MS - 3_600_000 + np.arange(80).astype("int64") * 30_000
    offsets = np.r_[np.r_[np.linspace(-2000, 40, 20), np.full(50, 40.0), np.linspace(40, 2000, 10)],
                    np.linspace(-2000, 2000, 80)]
    wlon, wlat = from_metric(sx[0] + offsets, np.full(160, sy[0] + 20.0))
    store.write_pings(PingBatch.from_arrays(np.repeat(np.array([washed, passing], dtype=object), 80),
                                            np.tile(wms, 2), wlon, wlat, speed_kmh=np.full(160, 20.0)))

    settings = Settings(var_dir=tmp / "var", tile_url=UNREACHABLE_TILES, language="en")
    web = webapp.create_app(settings, world, world.fingerprint(), live=StaticLive(live), store=store)
    server = make_server("127.0.0.1", 0, web.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hazmap-kinds-server", daemon=True)
    thread.start()
    env = SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}/", world=world, store=store, live=live,
                          truck=truck, point=point, station=station, washed=washed, passing=passing)
    try:
        yield env
    finally:
        server.shutdown()
        thread.join(timeout=10)
        store.close()


FOCUS_JS = """(id) => { const n = document.querySelector('#hz-panel-body .hz-panel-focus');
    return !!n && JSON.parse(n.getAttribute('data-focus')).id === id; }"""
CHART_POINTS_JS = """() => { const g = document.querySelector('#hz-panel-body .hz-panel-chart .js-plotly-plot');
    return g && g.data ? g.data.map(t => t.y.length) : null; }"""


def open_wall(page, env) -> None:
    page.goto(env.url)
    page.wait_for_function("() => window.hazmap && window.hazmap.leafletMap && window.hazmapPanel && "
                           "window.hazmapLive && window.hazmapLive.trucks > 0", timeout=60_000)


def click_drawn(page, lon: float, lat: float, zoom: int = 17) -> None:
    """Centre the map on a position and click where it is drawn (canvas layers have no DOM node)."""
    page.evaluate("([lat, lon, z]) => { window.hazmap.leafletMap.setView([lat, lon], z, {animate: false}); }",
                  [lat, lon, zoom])
    page.wait_for_timeout(400)  # the canvases redraw at the new view
    x, y = page.evaluate("""([lat, lon]) => { const map = window.hazmap.leafletMap;
        const p = map.latLngToContainerPoint([lat, lon]), box = map.getContainer().getBoundingClientRect();
        return [box.left + p.x, box.top + p.y]; }""", [lat, lon])
    page.mouse.click(x, y)


def wait_panel(page, feature_id: str) -> None:
    try:
        page.wait_for_function(FOCUS_JS, arg=feature_id, timeout=20_000)
    except Exception:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"drilldown_no_panel_{feature_id}.png"))
        raise AssertionError(f"no panel for {feature_id}: {page.inner_text('#hz-panel-body')[:300]!r}") from None


def centre(page) -> tuple[float, float]:
    return tuple(page.evaluate("(() => { const c = window.hazmap.leafletMap.getCenter(); return [c.lng, c.lat]; })()"))


# The map's centre once it has stopped moving: Leaflet moves a dragged map in animation frames (and
# may glide on after the button is up), so the centre read right after a drag can be a step short.
STILL_CENTRE_JS = """async () => {
    const map = window.hazmap.leafletMap, frame = () => new Promise(r => requestAnimationFrame(() => r()));
    let last = null, same = 0;
    while (same < 5) {
        await frame();
        const c = map.getCenter(), key = c.lng + ',' + c.lat;
        same = key === last ? same + 1 : 0;
        last = key;
    }
    const c = map.getCenter();
    return [c.lng, c.lat];
}"""


def section_rows(page, class_name: str) -> list[list[str]]:
    return page.evaluate("""(cls) => [...document.querySelectorAll('#hz-panel-body table.' + cls + ' tbody tr')]
        .map(tr => [...tr.children].map(td => td.innerText))""", class_name)


def test_a_truck_clicked_on_the_map_charts_its_stored_speeds_and_replays_its_stops_and_incidents(page, kinds_app):
    from data.drilldown import track_stops
    from data.incidents import IncidentStore

    env = kinds_app
    truck = env.truck
    open_wall(page, env)
    click_drawn(page, truck.geometry.x, truck.geometry.y)
    wait_panel(page, truck["id"])
    stored_2h = env.store.read_pings(NOW - pd.Timedelta(hours=2), NOW + pd.Timedelta(seconds=1), [truck["id"]])
    stored_24h = env.store.read_pings(NOW - pd.Timedelta(hours=24), NOW + pd.Timedelta(seconds=1), [truck["id"]])
    page.wait_for_function("(n) => { const g = document.querySelector('#hz-panel-body .hz-panel-chart .js-plotly-plot');"
                           " return g && g.data && g.data[0].y.length === n; }", arg=len(stored_2h), timeout=15_000)
    # 24 h: the switch redraws the chart with the day's reports
    page.locator("#hz-panel-body .hz-panel-window label").filter(has_text="24 h").click()
    page.wait_for_function("(n) => { const g = document.querySelector('#hz-panel-body .hz-panel-chart .js-plotly-plot');"
                           " return g && g.data && g.data[0].y.length === n; }", arg=len(stored_24h), timeout=15_000)
    assert page.evaluate(CHART_POINTS_JS)[0] == len(stored_24h) == 2880
    # the replay: its stops are the rules' stop stage over the stored day, its incidents the IncidentStore's
    page.wait_for_function("() => window.hazmapPanel.replay() !== null", timeout=15_000)
    replay = page.evaluate("window.hazmapPanel.replay()")
    assert replay["positions"] == 2880
    stops = track_stops(stored_24h)
    assert [(s["start_ms"], s["end_ms"]) for s in replay["marks"]["stops"]] == \
        list(zip(stops["start_ms"].tolist(), stops["end_ms"].tolist(), strict=True))
    assert len(stops) >= 1 and any(e - s >= 39 * 60_000 for s, e in zip(stops["start_ms"], stops["end_ms"],
                                                                          strict=True))
    listed = IncidentStore(env.store, env.world).list()
    mine = listed[listed["subject_id"] == truck["id"]]
    assert sorted(i["id"] for i in replay["marks"]["incidents"]) == sorted(mine["id"]) and len(mine) == 1
    (mark,) = replay["marks"]["incidents"]
    assert (mark["lon"], mark["lat"]) == pytest.approx((float(mine["lon"].iloc[0]), float(mine["lat"].iloc[0])),
                                                       abs=1e-6)
    # the ticks under the slider: one per stop and incident; a click on the incident's moves the replay there
    assert page.locator(".hz-replay-marks .hz-replay-stop").count() == len(stops)
    page.locator(".hz-replay-marks .hz-replay-incident").click()
    assert page.evaluate("window.hazmapPanel.replay().t") == mark["epoch_ms"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "drilldown_truck_replay_marks.png"))


def test_a_monitoring_point_clicked_on_the_map_charts_its_stored_readings_and_status_history(page, kinds_app):
    from layers.catalog import map_layer

    env = kinds_app
    point = env.point
    open_wall(page, env)
    label, checkbox = control_checkbox(page, map_layer("monitoring_points").title[1])
    if not checkbox.is_checked():
        label.click()
    click_drawn(page, point.geometry.x, point.geometry.y)
    wait_panel(page, point["id"])
    for window, hours in (("24 h", 24), ("7 d", 168), ("1 h", 1)):
        if window != "24 h":
            page.locator("#hz-panel-body .hz-panel-window label").filter(has_text=window).click()
        stored = env.store.read_readings(NOW - pd.Timedelta(hours=hours), NOW + pd.Timedelta(milliseconds=1),
                                         [point["id"]])
        page.wait_for_function("(n) => { const g = document.querySelector('#hz-panel-body .hz-panel-chart "
                               ".js-plotly-plot'); return g && g.data && g.data[0].y.length === n; }",
                               arg=len(stored), timeout=15_000)
        traces = page.evaluate("""() => document.querySelector('#hz-panel-body .hz-panel-chart .js-plotly-plot')
            .data.map(t => [t.name, t.y[0]])""")
        assert traces[1:] == [["Level 1 alarm", float(point["high"])], ["Level 2 alarm", float(point["high_high"])]]
    events = env.store.read_events(subject_id=point["id"])
    rows = section_rows(page, "hz-panel-status")
    assert len(rows) == events["episode_id"].nunique() == 2
    assert rows[0][3] == "ongoing" and rows[1][3] != "ongoing"  # newest first: the alarm going on, then the ended one
    page.screenshot(path=str(SCREENSHOTS / "drilldown_monitoring_point.png"))


def test_an_enterprise_clicked_on_the_map_lists_its_sources_vehicles_and_points_as_stored(page, kinds_app):
    from bench.drilldown import isolated

    env = kinds_app
    world = env.world
    entities = world.entities
    entities = entities[isolated(world, env.live, np.column_stack([entities.geometry.x, entities.geometry.y]))]
    # the one with the most to list (a plant's hazard source often sits on the plant: then a carrier)
    listed = (entities["id"].map(world.hazard_sources["entity_id"].value_counts()).fillna(0)
              + entities["id"].map(world.vehicles["carrier_id"].value_counts()).fillna(0))
    entity = entities.iloc[int(np.argmax(listed.to_numpy()))]
    assert listed.max() > 0
    open_wall(page, env)
    click_drawn(page, entity.geometry.x, entity.geometry.y)
    wait_panel(page, entity["id"])
    headings = page.evaluate("[...document.querySelectorAll('#hz-panel-body .hz-drill h3')].map(h => h.innerText)")
    sources = world.hazard_sources[world.hazard_sources["entity_id"] == entity["id"]]
    points = world.monitoring_points[world.monitoring_points["hazard_source_id"].isin(sources["id"])]
    vehicles = world.vehicles[world.vehicles["carrier_id"] == entity["id"]]
    assert f"Hazard sources ({len(sources)})" in headings and f"Monitoring points ({len(points)})" in headings
    assert f"Vehicles ({len(vehicles)})" in headings
    links = page.evaluate("[...document.querySelectorAll('#hz-panel-body .hz-panel-links a')].map(a => a.innerText)")
    assert set(sources["name"]) | set(vehicles["plate"][:60]) <= set(links)


def test_a_sensitive_site_clicked_on_the_map_shows_who_is_near_it_now(page, kinds_app):
    from spatial.crs import geometry_to_metric, to_metric
    from spatial.impact import is_night, protective_by_group

    env = kinds_app
    world = env.world
    sites = world.sensitive_sites[shapely.get_type_id(world.sensitive_sites.geometry.to_numpy()) == 0]
    # the site with the most hazard sources whose protective distance reaches it: something to list
    catalogue = world.chemicals.set_index("un_number") if "un_number" in world.chemicals.columns else world.chemicals
    stock = world.hazard_source_chemicals
    reach = protective_by_group(stock["hazard_source_id"], stock["un_number"], catalogue, is_night(NOW))
    sources = world.hazard_sources
    sx, sy = to_metric(sources.geometry.x.to_numpy(), sources.geometry.y.to_numpy())
    radius = reach.reindex(sources["id"].to_numpy()).to_numpy("float64")
    site_xy = geometry_to_metric(sites.geometry.to_numpy())
    counts = [int((shapely.distance(shapely.points(sx, sy), s) <= np.nan_to_num(radius, nan=-1)).sum())
              for s in site_xy]  # a direct shapely computation, site by site
    from bench.drilldown import isolated

    alone = isolated(world, env.live, np.column_stack([sites.geometry.x, sites.geometry.y]))
    best = int(np.argmax(np.where(alone, counts, -1)))
    site = sites.iloc[best]
    open_wall(page, env)
    click_drawn(page, site.geometry.x, site.geometry.y)
    wait_panel(page, site["id"])
    headings = page.evaluate("[...document.querySelectorAll('#hz-panel-body .hz-drill h3')].map(h => h.innerText)")
    assert f"Hazard sources whose distance reaches it ({counts[best]})" in headings
    fields = dict(zip(page.locator("#hz-panel-body .hz-drill .hz-panel-fields th").all_inner_texts(),
                      page.locator("#hz-panel-body .hz-drill .hz-panel-fields td").all_inner_texts()))
    assert fields["Occupancy"] == ("—" if pd.isna(site["occupancy"]) else f"{int(site['occupancy']):,}")


def test_a_wash_station_clicked_on_the_map_lists_its_visits_and_the_truck_washed_there(page, kinds_app):
    env = kinds_app
    station = env.station
    open_wall(page, env)
    click_drawn(page, station.geometry.x, station.geometry.y)
    wait_panel(page, station["id"])
    visits = section_rows(page, "hz-panel-visits")
    assert sorted(r[0] for r in visits) == sorted([env.washed, env.passing])
    washed = section_rows(page, "hz-panel-washed")
    assert [r[0] for r in washed] == [env.washed]
    assert int(washed[0][3]) >= 24  # minutes still at the station


def test_a_click_on_the_map_leaves_the_view_and_a_related_link_brings_its_entity_into_view(page, kinds_app):
    env = kinds_app
    truck = env.truck
    carrier = env.world.entities.set_index("id").loc[truck["carrier_id"]]
    open_wall(page, env)
    click_drawn(page, truck.geometry.x, truck.geometry.y)
    before = centre(page)
    wait_panel(page, truck["id"])
    page.wait_for_timeout(300)
    assert centre(page) == pytest.approx(before, abs=1e-9) and page.evaluate("window.hazmapPanel.flies()") == 0
    # the carrier is far away at this zoom: its link moves the panel and brings it into view
    page.evaluate("() => { window.hazmap.leafletMap.setZoom(17, {animate: false}); }")
    page.locator("#hz-panel-body a.hz-panel-link").filter(has_text=str(carrier["name"])).first.click()
    wait_panel(page, truck["carrier_id"])
    page.wait_for_function("() => window.hazmapPanel.flies() === 1", timeout=10_000)
    in_view = page.evaluate("([lat, lon]) => window.hazmap.leafletMap.getBounds().contains([lat, lon])",
                            [carrier.geometry.y, carrier.geometry.x])
    assert in_view
    # back to the truck: asked for, so the map goes back to it too
    page.click("#hz-panel-body .hz-panel-back")
    wait_panel(page, truck["id"])
    assert page.evaluate("([lat, lon]) => window.hazmap.leafletMap.getBounds().contains([lat, lon])",
                         [truck.geometry.y, truck.geometry.x])


def test_a_panel_arriving_after_the_officer_moved_the_map_does_not_yank_it_back(page, kinds_app, monkeypatch):
    import app.webapp as webapp

    env = kinds_app
    truck = env.truck
    carrier = env.world.entities.set_index("id").loc[truck["carrier_id"]]
    open_wall(page, env)
    click_drawn(page, truck.geometry.x, truck.geometry.y)
    wait_panel(page, truck["id"])
    page.evaluate("() => { window.hazmap.leafletMap.setZoom(17, {animate: false}); }")
    slow = webapp._drill_panel

    def late_panel(*args, **kwargs):  # the server takes its time: the officer pans meanwhile
        time.sleep(1.5)
        return slow(*args, **kwargs)

    monkeypatch.setattr(webapp, "_drill_panel", late_panel)
    page.locator("#hz-panel-body a.hz-panel-link").filter(has_text=str(carrier["name"])).first.click()
    box = page.locator("#hz-map").bounding_box()
    x, y = box["x"] + box["width"] / 3, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 150, y + 60, steps=8)
    page.mouse.up()
    moved = tuple(page.evaluate(STILL_CENTRE_JS))  # where the officer left it (the panel still ~1 s away)
    wait_panel(page, truck["carrier_id"])
    page.wait_for_timeout(500)
    assert centre(page) == pytest.approx(moved, abs=1e-9)
    assert page.evaluate("window.hazmapPanel.flies()") == 0
    assert not page.evaluate("([lat, lon]) => window.hazmap.leafletMap.getBounds().contains([lat, lon])",
                             [carrier.geometry.y, carrier.geometry.x])


@pytest.mark.parametrize("language", ["en", "zh"])
def test_a_panels_attributes_show_while_plotlys_bundle_is_still_loading(page, kinds_app, language):
    """The first chart of the page waits for Plotly's bundle (loaded with the first dcc.Graph,
    app/webapp.py): held back here, the point's panel already shows its attributes, fields and
    status history, its chart's place empty; released, the chart fills in."""
    from layers.labels import FIELD_LABELS
    from layers.style import text

    env = kinds_app
    point = env.point
    held = []
    page.route("**/plotly.min.js*", lambda route: held.append(route))
    open_wall(page, env)
    if language == "zh":
        page.locator("#hz-language-switch").click()
        page.wait_for_function("() => document.querySelector('.hz-root') && "
                               "document.querySelector('.hz-root').lang === 'zh-CN'", timeout=30_000)
        open_wall(page, env)
    assert page.evaluate("() => typeof window.Plotly") == "undefined" and not held  # the wall alone never asks
    page.evaluate("(id) => window.dash_clientside.set_props('hz-live-click', "
                  "{data: {layer: 'monitoring_points', id, at: Date.now()}})", str(point["id"]))  # as a click does
    wait_panel(page, point["id"])
    page.wait_for_function("() => document.querySelectorAll('#hz-panel-body .hz-panel-status tbody tr').length > 0",
                           timeout=15_000)
    page.wait_for_timeout(500)  # time for anything that would wait on the bundle to show itself too early
    assert held, "Plotly's bundle was never asked for: the chart no longer waits on it"
    assert page.evaluate("() => typeof window.Plotly") == "undefined"
    assert page.locator("#hz-panel-body .js-plotly-plot").count() == 0
    shown = page.inner_text("#hz-panel-body")
    for key in ("hazard_source_id", "high", "high_high"):  # the attribute table (layers/details.py)
        assert text(FIELD_LABELS[key], language) in shown, key
    assert page.locator("#hz-panel-body .hz-panel-fields").first.is_visible()
    assert page.locator("#hz-panel-body .hz-panel-status").is_visible()
    page.screenshot(path=str(SCREENSHOTS / f"drilldown_chart_loading_{language}.png"))
    slot = page.locator("#hz-panel-body .hz-panel-chart-slot").first
    slot.scroll_into_view_if_needed()
    page.locator("#hz-panel").screenshot(path=str(SCREENSHOTS / f"drilldown_chart_loading_{language}_panel.png"))
    below = "() => document.querySelector('#hz-panel-body .hz-panel-status').getBoundingClientRect().top"
    before = page.evaluate(below)
    assert slot.bounding_box()["height"] >= 190  # the chart's place kept: layers/panels/charts.py graph
    for route in held:
        route.continue_()
    page.wait_for_function(CHART_POINTS_JS, timeout=30_000)
    assert page.evaluate("() => typeof window.Plotly") == "object"
    assert abs(page.evaluate(below) - before) < 2, "the status history moved when the chart filled in"
    page.locator("#hz-panel").screenshot(path=str(SCREENSHOTS / f"drilldown_chart_loaded_{language}_panel.png"))
