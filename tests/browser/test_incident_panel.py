"""The incident's panel in real headless Chromium (issue 17, "The incident"), logged in as the people
of tests/api/conftest.py: each kind of evidence drawn on the map (window.hazmapEvidence) as the store
holds it; the impact view lists the sites a direct shapely computation finds; texting the driver
shows the terminal's answer when it comes; signing, supervising, disposing and closing in the panel
show in the store's history; the hazard source's panel opens its impact view;
another department's user gets neither the actions nor the impact view."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import shapely

from layers.labels import VALUE_LABELS
from layers.style import text
from spatial.crs import geometry_to_metric, to_metric
from spatial.model import PingBatch, ReadingBatch
from tests.api.conftest import PASSWORD, build_env
from tests.browser.conftest import SCREENSHOTS
from tests.incidents.helpers import ev

pytestmark = pytest.mark.browser

ROUTE_VEHICLE, ROUTE_WAYBILL = "VEH-000001", "WB-000002"  # seed 5: the waybill is loaded 21:10-23:25 UTC, 1 Nov
T_DEVIATION = -225  # minutes after tests/incidents/helpers.T0 (2 Nov 01:00 UTC): 1 Nov 21:15 UTC, 05:15 local (night)
PING_EVERY_MS = 30_000
POINT_SOURCE = "HS-000003"  # seed 5: another hazard source lies within its night-time protective distance


@dataclass
class Incidents:
    env: object
    by_kind: dict  # evidence kind -> incident id
    impact: str  # an incident of the loaded truck beside a sensitive site
    site_position: tuple[float, float]


@pytest.fixture(scope="module")
def incident_app(tmp_path_factory):
    from werkzeug.serving import make_server

    from data.demo import build_world
    from data.incidents import IncidentStore
    from data.reference import load_chemicals

    tmp = tmp_path_factory.mktemp("incident_panel")
    world = build_world(seed=5, scale=0.01, chemicals=load_chemicals())
    env = build_env(f"sqlite:///{(tmp / 'hazmap.sqlite').as_posix()}", world, tmp)
    store = env.store
    # the truck's reports along its waybill's route, 400 m off it, 21:00-21:40 UTC
    route = np.asarray(world.waybills.set_index("id").loc[ROUTE_WAYBILL].geometry.coords)
    n = 80
    ms = pd.Timestamp("2026-11-01T21:00Z").value // 1_000_000 + np.arange(n) * PING_EVERY_MS
    along = np.linspace(0, len(route) - 1, n)
    lon = np.interp(along, np.arange(len(route)), route[:, 0]) + 0.004
    lat = np.interp(along, np.arange(len(route)), route[:, 1])
    store.write_pings(PingBatch.from_arrays(np.full(n, ROUTE_VEHICLE, dtype=object), ms, lon, lat,
                                            speed_kmh=np.full(n, 50.0)))
    points = world.monitoring_points
    point = points[points["hazard_source_id"] == POINT_SOURCE].iloc[0]
    r_ms = ms[0] + np.arange(300) * 60_000
    store.write_readings(ReadingBatch.from_arrays(np.full(300, point["id"], dtype=object), r_ms,
                                                  np.linspace(0.0, 100.0, 300)))
    site = world.sensitive_sites.iloc[0]
    zone = world.restricted_zones.iloc[0]
    beside = (float(site.geometry.centroid.x) + 0.001, float(site.geometry.centroid.y) + 0.0005)
    events = [
        ev("open", T_DEVIATION, rule="route_deviation", subject=ROUTE_VEHICLE, lon=lon[30], lat=lat[30],
           evidence={"waybill_id": ROUTE_WAYBILL, "corridor_m": 200.0}),
        ev("open", T_DEVIATION, rule="stop_near_sensitive_site", subject="VEH-000002", lon=beside[0], lat=beside[1],
           evidence={"site_id": str(site["id"]), "radius_m": 300.0}),
        ev("open", T_DEVIATION + 1, rule="restricted_zone", subject=ROUTE_VEHICLE, lon=lon[40], lat=lat[40],
           evidence={"zone_id": str(zone["id"]), "entry_lon": float(lon[40]), "entry_lat": float(lat[40])}),
        ev("open", T_DEVIATION - 5, rule="speeding", subject=ROUTE_VEHICLE, lon=lon[20], lat=lat[20]),
        ev("close", T_DEVIATION - 5, T_DEVIATION + 5, rule="speeding", subject=ROUTE_VEHICLE, lon=lon[40],
           lat=lat[40]),
        ev("open", T_DEVIATION + 30, rule="point_level", subject=str(point["id"]), lon=point.geometry.x,
           lat=point.geometry.y, evidence={"level": 1}),
        ev("open", T_DEVIATION + 2, rule="fatigue", subject=ROUTE_VEHICLE, lon=beside[0], lat=beside[1]),
    ]
    incidents = IncidentStore(store, world)
    incidents.apply_events(events)
    listed = incidents.list()
    by_rule = {(r, s): i for r, s, i in zip(listed["rule"], listed["subject_id"], listed["id"], strict=True)}
    by_kind = {"route_deviation": by_rule[("route_deviation", ROUTE_VEHICLE)],
               "stop_near_sensitive_site": by_rule[("stop_near_sensitive_site", "VEH-000002")],
               "restricted_zone": by_rule[("restricted_zone", ROUTE_VEHICLE)],
               "positions": by_rule[("speeding", ROUTE_VEHICLE)],
               "point_alarm": by_rule[("point_level", str(point["id"]))]}
    server = make_server("127.0.0.1", 0, env.client.application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hazmap-incident-server", daemon=True)
    thread.start()
    env.url = f"http://127.0.0.1:{server.server_port}/"
    try:
        yield Incidents(env, by_kind, by_rule[("fatigue", ROUTE_VEHICLE)], beside)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        store.close()


def login(page, env, name: str) -> None:
    page.goto(env.url + "login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_selector("#hz-map", timeout=30_000)
    page.wait_for_function("() => window.hazmap && window.hazmap.leafletMap", timeout=30_000)


def open_incident(page, incident_id: str) -> None:
    """As the ticker, the queue and a panel's incident list do: the incident opens in the panel."""
    page.evaluate("(id) => window.dash_clientside.set_props('hz-live-click', "
                  "{data: {layer: 'incidents', id: id, at: Date.now()}})", incident_id)
    page.wait_for_selector(f"#hz-panel.hz-open .hz-panel-title[data-id='{incident_id}'] ~ .hz-drill", timeout=15_000)


def drawn_evidence(page, incident_id: str) -> dict:
    page.wait_for_function("(id) => { const d = window.hazmapEvidence.drawn(); return d && d.id === id; }",
                           arg=incident_id, timeout=15_000)
    return page.evaluate("window.hazmapEvidence.drawn()")


def stored_track(store, vehicle_id: str, start, end) -> np.ndarray:
    frame = store.read_pings(pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(milliseconds=1), [vehicle_id])
    return frame[["lon", "lat"]].to_numpy("float64")


@pytest.mark.parametrize("kind", ["route_deviation", "stop_near_sensitive_site", "restricted_zone", "positions",
                                  "point_alarm"])
def test_the_incidents_evidence_is_drawn_as_the_store_holds_it(page, incident_app, kind):
    from data.incidents import IncidentStore

    env = incident_app.env
    incident_id = incident_app.by_kind[kind]
    row = IncidentStore(env.store, env.world).show(incident_id)["incident"]
    login(page, env, "duty")
    open_incident(page, incident_id)
    drawn = drawn_evidence(page, incident_id)
    assert drawn["kind"] == kind
    first, last = pd.Timestamp(row["first_time"]), pd.Timestamp(row["end_time"] if pd.notna(row["end_time"])
                                                                 else row["last_time"])
    margin = pd.Timedelta(minutes=15)
    if kind in ("route_deviation", "restricted_zone"):  # the track around the episode, as stored
        expected = stored_track(env.store, row["subject_id"], first - margin, last + margin)
        assert len(expected) > 10
        np.testing.assert_allclose(np.asarray(drawn["track"]), expected, atol=1e-9)
    if kind == "route_deviation":
        waybill = env.world.waybills.set_index("id").loc[ROUTE_WAYBILL]
        assert drawn["route"] == len(waybill.geometry.coords)
        assert drawn["corridor_m"] == row["evidence"]["corridor_m"] and drawn["corridor"] >= 1
    if kind == "stop_near_sensitive_site":
        site = env.world.sensitive_sites.set_index("id").loc[row["evidence"]["site_id"]]
        assert drawn["site"]["id"] == row["evidence"]["site_id"]
        assert drawn["site"]["radius_m"] == row["evidence"]["radius_m"] and drawn["site"]["reach"] == 1
        centre = site.geometry.representative_point()
        assert drawn["site"]["centre"] == pytest.approx([centre.x, centre.y], abs=1e-6)
        assert drawn["marker"] == pytest.approx([row["lon"], row["lat"]])  # the stop
    if kind == "restricted_zone":
        zone = env.world.restricted_zones.set_index("id").loc[row["evidence"]["zone_id"]]
        assert drawn["zone"] == {"id": row["evidence"]["zone_id"], "polygons": len(getattr(zone.geometry, "geoms",
                                                                                        [zone.geometry]))}
        assert drawn["entry"] == pytest.approx([row["evidence"]["entry_lon"], row["evidence"]["entry_lat"]])
    if kind == "positions":  # the truck's stored reports during the episode
        expected = stored_track(env.store, row["subject_id"], first, last)
        assert len(expected) == 21  # 10 min at 30 s, both ends
        np.testing.assert_allclose(np.asarray(drawn["positions"]), expected, atol=1e-9)
    if kind == "point_alarm":
        point = env.world.monitoring_points.set_index("id").loc[row["subject_id"]]
        assert drawn["point"] == pytest.approx([point.geometry.x, point.geometry.y])
        hour = pd.Timedelta(hours=1)
        readings = env.store.read_readings(first - hour, last + hour, [row["subject_id"]])
        heading = page.locator("#hz-panel-body h3", has_text="报警前后读数").first.inner_text()
        assert heading.endswith(f"({len(readings)})") and len(readings) > 60
        page.locator(".hz-incident-readings .js-plotly-plot").wait_for(timeout=10_000)
        traces = page.evaluate("() => document.querySelector('.hz-incident-readings .js-plotly-plot')"
                               "._fullData.map(t => [t.name, t.y.length])")  # as plotted (decoded)
        assert traces[0][1] == len(readings)  # every reading around the alarm, then the level lines
        levels = [v for v in (point["high"], point["high_high"]) if pd.notna(v)] or \
            [v for v in (point["low"], point["low_low"]) if pd.notna(v)]
        assert [name for name, _ in traces[1:]] == ["一级报警", "二级报警"][:len(levels)]
        marks = page.evaluate("() => document.querySelector('.hz-incident-readings .js-plotly-plot')"
                              ".layout.shapes.map(s => s.x0)")
        wall = first.tz_convert("Asia/Shanghai").tz_localize(None)  # the chart's axis is Ningbo's wall clock
        assert marks == [int(wall.value // 1_000_000)]
    page.wait_for_timeout(300)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"incident_evidence_{kind}.png"))
    # another entity opened (the subject, by its link) clears the evidence, and so does closing the panel
    page.locator("#hz-panel-body a.hz-panel-link", has_text=row["subject_id"]).first.click()
    page.wait_for_function("() => window.hazmapEvidence.drawn() === null", timeout=10_000)
    page.click(".hz-panel-back")
    drawn_evidence(page, incident_id)
    page.click("#hz-panel-close")
    page.wait_for_function("() => window.hazmapEvidence.drawn() === null", timeout=10_000)


def _erg_radius(world, waybill_id: str, night: bool) -> tuple[float, float]:
    goods = world.waybill_goods[world.waybill_goods["waybill_id"] == waybill_id]["un_number"].astype(str)
    figures = world.chemicals.reindex(goods)
    period = figures["erg_night_m" if night else "erg_day_m"].fillna(figures["erg_isolation_m"])
    return float(figures["erg_isolation_m"].max()), float(period.max())


def test_the_impact_view_lists_the_sites_a_direct_shapely_computation_finds(page, incident_app):
    env = incident_app.env
    world = env.world
    login(page, env, "duty")
    open_incident(page, incident_app.impact)
    page.click(".hz-impact-open a")
    page.wait_for_selector("#hz-panel .hz-impact .hz-impact-sites", timeout=15_000)
    listed = page.locator(".hz-impact-sites tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    # the oracle: the loaded waybill's ERG small-spill figure at night (05:17 local), a metric buffer around
    # the incident's position, each site's own outline, nearest first
    isolation, protective = _erg_radius(world, ROUTE_WAYBILL, night=True)
    x, y = to_metric([incident_app.site_position[0]], [incident_app.site_position[1]])
    subject = shapely.Point(x[0], y[0])
    sites = world.sensitive_sites
    metres = np.array([geometry_to_metric(np.array([g], dtype=object))[0].distance(subject) for g in sites.geometry])
    inside = np.flatnonzero(metres <= protective)
    expected = [sites["id"].iloc[i] for i in inside[np.lexsort((sites["id"].to_numpy()[inside], metres[inside]))]]
    assert expected and listed == expected
    occupancy = page.locator(".hz-impact-sites tbody tr").first.locator("td").nth(1).inner_text()
    first_site = sites.set_index("id").loc[expected[0]]
    assert occupancy == ("—" if pd.isna(first_site["occupancy"]) else f"{int(first_site['occupancy']):,}")
    # the circles drawn, the waybill's emergency phone shown
    page.wait_for_function("(id) => window.hazmapPanel.drawn().id === id", arg=incident_app.impact, timeout=10_000)
    circles = page.evaluate("window.hazmapPanel.drawn().circles")
    assert circles == [{"kind": "isolation", "radius_m": isolation}, {"kind": "protective", "radius_m": protective}]
    marked = drawn_evidence(page, incident_app.impact)  # the sites inside marked on the map, the circle fitted
    assert marked["sites"] == len(expected) and marked["reach_m"] == protective
    phone = world.waybills.set_index("id").loc[ROUTE_WAYBILL, "emergency_phone"]
    assert page.inner_text(".hz-impact-emergency") == phone
    page.screenshot(path=str(SCREENSHOTS / "incident_impact.png"))


def test_texting_the_driver_shows_the_terminals_answer_when_it_comes(page, incident_app):
    from data.channels.store import DeliveryStore, Outcome

    env = incident_app.env
    login(page, env, "duty")
    page.evaluate("(id) => window.dash_clientside.set_props('hz-live-click', "
                  "{data: {layer: 'impact', id: id, at: Date.now()}})", incident_app.impact)
    page.wait_for_selector("#hz-panel .hz-impact-text", timeout=15_000)
    # who to call: each enterprise's contact person and duty phone, on one unbroken line
    contacts = page.locator("#hz-panel .hz-impact-contact").all_inner_texts()
    assert contacts and all(re.fullmatch(r"\S+ · 0574-\d{8}", c.strip()) for c in contacts), contacts
    page.fill("#hz-impact-message", "请立即靠边停车")
    page.click(".hz-impact-text")
    page.wait_for_function("() => document.querySelector('.hz-impact-text-rows tr[data-status=pending]')",
                           timeout=15_000)
    deliveries = DeliveryStore(env.store).list()
    mine = deliveries[deliveries["incident_id"] == incident_app.impact]
    assert len(mine) == 1 and mine["payload"].iloc[0]["text"] == "请立即靠边停车"
    assert mine["requested_by"].iloc[0] == "duty"
    # the terminal answers (what data/channels' sender records on its 0x0001)
    DeliveryStore(env.store).record(mine.iloc[0].to_dict(), Outcome("ok", code=0, answer="success", latency_ms=80.0),
                                    pd.Timestamp.now(tz="UTC"))
    page.wait_for_function("() => document.querySelector('.hz-impact-text-rows tr[data-status=sent]')",
                           timeout=15_000)
    assert "0x0001 0 success" in page.inner_text(".hz-impact-text-rows")
    page.screenshot(path=str(SCREENSHOTS / "incident_impact_text.png"))
    # the incident's own panel lists it too, with its answer
    page.locator("#hz-panel-body a.hz-panel-link", has_text=incident_app.impact).first.click()
    page.wait_for_selector("#hz-panel .hz-incident-history", timeout=15_000)
    page.wait_for_function("() => document.querySelector('.hz-impact-text-rows tr[data-status=sent]')",
                           timeout=15_000)
    history = page.locator(".hz-incident-history").inner_text()
    actions = VALUE_LABELS["incident_action"]
    assert text(actions["driver_text_requested"], "zh") in history and text(actions["driver_text_answered"], "zh") \
        in history
    assert "driver_text" not in history  # labels, not the store's keys


def test_actions_taken_in_the_panel_show_in_the_stores_history(page, incident_app):
    """A department signs, supervises the carrier, disposes with a note and an outcome, and closes."""
    from data.incidents import IncidentStore

    env = incident_app.env
    login(page, env, "dept")
    open_incident(page, env.incident)
    page.wait_for_selector("#hz-incident-deadline", timeout=15_000)
    # the form in the wall's dark look and type size, each field named (no white native controls)
    looks = page.evaluate("""() => ['#hz-incident-note', '#hz-incident-outcome', '#hz-panel .dash-input-container',
        '.hz-action-sign'].map(selector => { const s = getComputedStyle(document.querySelector(selector));
            const [r, g, b] = s.backgroundColor.match(/[0-9.]+/g).map(Number);
            return [selector, (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255, parseFloat(s.fontSize)]; })""")
    assert all(luminance < 0.25 for _, luminance, _ in looks), looks
    assert len({size for _, _, size in looks}) == 1, looks
    labels = page.locator("#hz-panel .hz-incident-field").all_inner_texts()
    assert [label.split()[0] for label in labels] == ["处置结果", "督办期限"], labels
    for action, expected in (("sign", "signed"), ("supervise", "supervised"), ("dispose", "disposed"),
                             ("close", "closed")):
        page.wait_for_selector(f".hz-action-{action}", timeout=15_000)
        page.fill("#hz-incident-note", f"{action}: crew on site")
        if action == "dispose":
            page.select_option("#hz-incident-outcome", "rectified")
        page.click(f".hz-action-{action}")
        try:
            page.wait_for_function(
                "(a) => [...document.querySelectorAll('.hz-incident-history td')].some(td => td.innerText === a)",
                arg=text(VALUE_LABELS["incident_action"][expected], "zh"), timeout=15_000)
        except Exception as exc:
            raise AssertionError(f"{action}: {page.inner_text('#hz-panel-body')[-400:]}") from exc
    shown = IncidentStore(env.store, env.world).show(env.incident)
    history, recipients = shown["history"], shown["recipients"].set_index("recipient_id")
    mine = history[history["actor"] == "dept"]
    assert sorted(set(mine["action"])) == ["closed", "disposed", "signed", "supervised"]
    assert mine.loc[mine["action"] == "supervised", "recipient_id"].tolist() == [env.enterprise]  # the carrier
    assert set(mine.loc[mine["action"] != "supervised", "recipient_id"]) == {env.department}
    assert recipients.loc[env.department, "outcome"] == "rectified"
    assert recipients.loc[env.department, "note"] == "dispose: crew on site"
    assert recipients.loc[env.enterprise, "supervised_by"] == env.department
    page.screenshot(path=str(SCREENSHOTS / "incident_actions.png"))


def _inside(frame, lon: float, lat: float, radius: float, skip=()) -> list[str]:
    """The oracle: ids of `frame` within `radius` m (UTM 51N, each outline on its own), nearest first."""
    x, y = to_metric([lon], [lat])
    subject = shapely.Point(x[0], y[0])
    metres = np.array([geometry_to_metric(np.array([g], dtype=object))[0].distance(subject) for g in frame.geometry])
    keep = np.flatnonzero((metres <= radius) & ~frame["id"].isin(list(skip)).to_numpy())
    return [frame["id"].iloc[i] for i in keep[np.lexsort((frame["id"].to_numpy()[keep], metres[keep]))]]


def _source_radius(world, source_id: str, night: bool) -> float:
    stock = world.hazard_source_chemicals
    figures = world.chemicals.reindex(stock.loc[stock["hazard_source_id"] == source_id, "un_number"].astype(str))
    return float(figures["erg_night_m" if night else "erg_day_m"].fillna(figures["erg_isolation_m"]).max())


ROWS = "rows => rows.map(r => r.dataset.id)"


def test_a_hazard_sources_impact_view_from_its_panel_and_from_its_points_alarm(page, incident_app):
    """From the hazard source's panel (its chemicals, now) and from its point's incident (at the
    incident's time): the same sites and hazard sources as a direct computation."""
    from spatial.impact import is_night

    env = incident_app.env
    world = env.world
    source = world.hazard_sources.set_index("id").loc[POINT_SOURCE]
    lon, lat = source.geometry.x, source.geometry.y
    login(page, env, "duty")
    page.evaluate("(id) => window.dash_clientside.set_props('hz-live-click', "
                  "{data: {layer: 'hazard_sources', id: id, at: Date.now()}})", POINT_SOURCE)
    page.wait_for_selector("#hz-panel .hz-impact-open a", timeout=15_000)
    page.click(".hz-impact-open a")
    page.wait_for_selector("#hz-panel .hz-impact", timeout=15_000)
    radius = _source_radius(world, POINT_SOURCE, is_night(pd.Timestamp.now(tz="UTC")))
    assert page.locator(".hz-impact-sites tbody tr").evaluate_all(ROWS) == _inside(world.sensitive_sites, lon, lat,
                                                                                    radius)
    assert page.locator(".hz-impact-sources tbody tr").evaluate_all(ROWS) == _inside(
        world.hazard_sources, lon, lat, radius, skip=[POINT_SOURCE])
    page.click(".hz-panel-back")  # back to the hazard source
    page.wait_for_function("() => document.querySelector('#hz-panel .hz-drill') && "
                           "!document.querySelector('.hz-impact')", timeout=15_000)
    page.wait_for_selector("#hz-panel .hz-impact-open a", timeout=15_000)  # the hazard source's panel again
    assert page.evaluate("window.hazmapEvidence.drawn()") is None  # the view's marks went with it
    # its point's alarm at 05:45 local: night
    open_incident(page, incident_app.by_kind["point_alarm"])
    page.click(".hz-impact-open a")
    page.wait_for_selector("#hz-panel .hz-impact", timeout=15_000)
    radius = _source_radius(world, POINT_SOURCE, night=True)
    neighbours = _inside(world.hazard_sources, lon, lat, radius, skip=[POINT_SOURCE])
    assert neighbours and page.locator(".hz-impact-sources tbody tr").evaluate_all(ROWS) == neighbours
    assert page.locator(".hz-impact-sites tbody tr").evaluate_all(ROWS) == _inside(world.sensitive_sites, lon, lat,
                                                                                    radius)
    page.screenshot(path=str(SCREENSHOTS / "incident_impact_hazard_source.png"))


def test_another_departments_user_gets_no_action_nor_impact_view(page, incident_app):
    env = incident_app.env
    login(page, env, "dept2")
    for layer in ("incidents", "impact"):
        if page.locator("#hz-panel.hz-open").count():  # closed first, so the next answer is this one's
            page.click("#hz-panel-close")
            page.wait_for_selector("#hz-panel:not(.hz-open)", state="attached", timeout=15_000)
        page.evaluate("([layer, id]) => window.dash_clientside.set_props('hz-live-click', "
                      "{data: {layer: layer, id: id, at: Date.now()}})", [layer, env.incident])
        page.wait_for_selector("#hz-panel.hz-open", timeout=15_000)
        page.wait_for_timeout(800)
        assert page.locator(".hz-incident-button").count() == 0
        assert page.locator(".hz-impact").count() == 0
        assert env.incident not in page.inner_text("#hz-panel-body")


def test_an_action_the_store_refuses_says_why_in_the_officers_language(page, incident_app):
    """The panel went stale: another officer signed the incident meanwhile. Signing again is refused
    (409) and the panel says so in Chinese, the API's own message kept on hover."""
    from data.incidents import IncidentStore
    from layers.panels.incident import REFUSALS

    env = incident_app.env
    incidents = IncidentStore(env.store, env.world)
    mine = incidents.list(recipient_id=env.department)
    stale = next(i for i in mine["id"] if i != env.incident)
    login(page, env, "dept")
    open_incident(page, stale)
    page.wait_for_selector(".hz-action-sign", timeout=15_000)
    incidents.sign([stale], env.department, "colleague")  # behind the panel's back
    page.click(".hz-action-sign")
    result = page.locator("#hz-incident-result")
    expected = f"{text(('签收', 'Sign'), 'zh')}: {text(REFUSALS['409'], 'zh')}"
    page.wait_for_function("(t) => document.querySelector('#hz-incident-result').innerText === t", arg=expected,
                           timeout=15_000)
    assert result.get_attribute("title")  # the API's message, for an engineer
    assert page.locator(".hz-action-sign").is_enabled()  # the officer may act again once the panel is fresh
