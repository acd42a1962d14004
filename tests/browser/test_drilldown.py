"""Drill-down panels in real headless Chromium, logged in as the people of tests/api/conftest.py:
a hazard source opened by a click on the map shows R and its chemicals as the store has them; a truck
clicked on the map lists its incident, which opens in the panel, and signing it there shows in the
store's history; a department user gets no action on another department's incident."""

from __future__ import annotations

import threading
import time

import pytest

from spatial.grading import grade_sources
from tests.api.conftest import PASSWORD, build_env
from tests.browser.conftest import SCREENSHOTS, UNREACHABLE_TILES
from tests.browser.test_map import click_feature, control_checkbox
from layers.catalog import map_layer
from layers.labels import VALUE_LABELS
from layers.style import text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def drill_app(tmp_path_factory):
    from werkzeug.serving import make_server

    from data.demo import build_world
    from data.reference import load_chemicals

    tmp = tmp_path_factory.mktemp("drill")
    world = build_world(seed=5, scale=0.01, chemicals=load_chemicals())
    env = build_env(f"sqlite:///{(tmp / 'hazmap.sqlite').as_posix()}", world, tmp)
    server = make_server("127.0.0.1", 0, env.client.application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hazmap-drill-server", daemon=True)
    thread.start()
    env.url = f"http://127.0.0.1:{server.server_port}/"
    try:
        yield env
    finally:
        server.shutdown()
        thread.join(timeout=10)
        env.store.close()
    assert UNREACHABLE_TILES


def login(page, env, name: str) -> None:
    page.goto(env.url + "login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_selector("#hz-map", timeout=30_000)


def _fields(panel) -> dict[str, str]:
    return dict(zip(panel.locator(".hz-panel-fields th").all_inner_texts(),
                    panel.locator(".hz-panel-fields td").all_inner_texts()))


def test_a_hazard_source_clicked_on_the_map_shows_r_and_its_chemicals_as_stored(page, drill_app):
    env = drill_app
    login(page, env, "duty")
    world = env.store.load_world(chemicals=env.world.chemicals)
    source = world.hazard_sources.iloc[0]
    page.wait_for_function("() => window.hazmap && window.hazmap.leafletMap", timeout=30_000)
    label, checkbox = control_checkbox(page, map_layer("hazard_sources").title[0])
    if not checkbox.is_checked():
        label.click()
    page.wait_for_timeout(1000)
    click_feature(page, "hazard_sources", source["id"])
    panel = page.locator("#hz-panel.hz-open")
    page.wait_for_selector("#hz-panel .hz-drill", timeout=15_000)
    fields = _fields(panel)
    expected = grade_sources(world.hazard_sources[world.hazard_sources["id"] == source["id"]],
                             world.hazard_source_chemicals[world.hazard_source_chemicals["hazard_source_id"]
                                                           == source["id"]], world.chemicals).iloc[0]
    assert fields["R = α·Σ β·q/Q"] == f"{expected['r_value']:.2f}"
    assert fields["等级 (表6)"] == text(VALUE_LABELS["grade"][str(int(expected["grade"]))], "zh")  # 一级 … 四级
    n_chemicals = int((world.hazard_source_chemicals["hazard_source_id"] == source["id"]).sum())
    chemicals = panel.locator(".hz-drill .hz-panel-children").first
    assert chemicals.locator("tbody tr").count() == n_chemicals
    # the map drew the ERG circles of its chemicals around it
    page.wait_for_function("(id) => window.hazmapPanel.drawn().id === id", arg=source["id"], timeout=10_000)
    drawn = page.evaluate("window.hazmapPanel.drawn()")
    assert [c["kind"] for c in drawn["circles"]] in (["isolation", "protective"], [])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "drilldown_hazard_source.png"))


def test_an_incident_opened_from_its_truck_is_signed_in_the_panel_and_recorded(page, drill_app):
    from data.incidents import IncidentStore

    env = drill_app
    login(page, env, "dept")
    page.wait_for_function("() => window.hazmap && window.hazmap.leafletMap", timeout=30_000)
    label, checkbox = control_checkbox(page, map_layer("vehicles").title[0])
    if not checkbox.is_checked():
        label.click()
    page.wait_for_timeout(1000)
    click_feature(page, "vehicles", env.vehicle)
    page.wait_for_selector("#hz-panel .hz-drill", timeout=15_000)
    page.locator(f".hz-panel-incidents a").first.click()
    page.wait_for_selector("#hz-panel .hz-incident-buttons", timeout=15_000)
    assert page.locator(".hz-panel-back").count() == 1  # back to the truck
    page.fill("#hz-incident-note", "on site, checking")
    page.click(".hz-action-sign")
    try:
        page.wait_for_function(
            "(a) => [...document.querySelectorAll('.hz-incident-history td')].some(td => td.innerText === a)",
            arg=text(VALUE_LABELS["incident_action"]["signed"], "zh"), timeout=15_000)
    except Exception as exc:
        raise AssertionError(f"not signed: {page.inner_text('#hz-panel-body')[-600:]}") from exc
    page.screenshot(path=str(SCREENSHOTS / "drilldown_incident.png"))
    history = IncidentStore(env.store, env.world).show(env.incident)["history"]
    signed = history[(history["action"] == "signed") & (history["recipient_id"] == env.department)]
    assert len(signed) == 1 and signed["actor"].iloc[0] == "dept"
    page.click(".hz-panel-back")
    page.wait_for_function(
        "(id) => document.querySelector('.hz-panel-title') && !document.querySelector('.hz-incident-buttons')",
        arg=env.vehicle, timeout=15_000)


def test_a_department_user_gets_no_action_on_another_departments_incident(page, drill_app):
    env = drill_app
    login(page, env, "dept2")
    page.wait_for_function("() => window.hazmap && window.hazmap.leafletMap", timeout=30_000)
    page.evaluate("(id) => window.dash_clientside.set_props('hz-live-click', "
                  "{data: {layer: 'incidents', id: id, at: Date.now()}})", env.incident)
    page.wait_for_selector("#hz-panel.hz-open", timeout=15_000)
    page.wait_for_timeout(500)
    assert page.locator(".hz-incident-buttons").count() == 0
    assert env.incident not in page.inner_text("#hz-panel-body")


def test_the_replay_moves_the_marker_along_the_stored_track(page, drill_app):
    import numpy as np
    import pandas as pd

    from spatial.model import PingBatch

    env = drill_app
    vehicle = env.world.vehicles.set_index("id").loc[env.vehicle]
    now_ms = int(pd.Timestamp.now(tz="UTC").value // 1_000_000) - 60_000
    n = 2880  # 24 h at 30 s
    ms = now_ms - np.arange(n)[::-1].astype("int64") * 30_000
    lon = vehicle.geometry.x + np.linspace(0, 0.2, n)
    lat = vehicle.geometry.y + np.sin(np.linspace(0, 6, n)) * 0.02
    env.store.write_pings(PingBatch.from_arrays(np.full(n, env.vehicle, dtype=object), ms, lon, lat,
                                                speed_kmh=np.full(n, 50.0)))
    written_at = time.monotonic()
    login(page, env, "duty")
    page.wait_for_function("() => window.hazmap && window.hazmap.leafletMap", timeout=30_000)
    label, checkbox = control_checkbox(page, map_layer("vehicles").title[0])
    if not checkbox.is_checked():
        label.click()
    page.wait_for_timeout(1000)
    click_feature(page, "vehicles", env.vehicle)
    page.wait_for_selector("#hz-panel .hz-replay-play", timeout=15_000)
    start = page.evaluate("window.hazmapPanel.replay()")
    # the first report inside the server's last 24 h: the window's start moved on by as long as the
    # page took to open the panel since the track was written (long on a busy machine)
    waited_ms = (time.monotonic() - written_at) * 1000
    assert start["t"] in set(ms.tolist()) and start["t"] <= ms[0] + waited_ms + 60_000
    page.select_option(".hz-replay-speed", "600")
    page.click(".hz-replay-play")
    # ≥ 5 min of track at 600× is 0.5 s of the page's time; a loaded machine may give it fewer frames
    page.wait_for_function(f"window.hazmapPanel.replay().t > {start['t'] + 300_000}", timeout=20_000)
    page.click(".hz-replay-play")  # pause
    state = page.evaluate("window.hazmapPanel.replay()")
    assert not state["playing"] and state["t"] > ms[0] + 300_000  # ≥ 5 min of track in 1.5 s at 600×
    # the marker is where the stored track was at the replay's time
    assert state["lon"] == pytest.approx(np.interp(state["t"], ms, lon), abs=1e-6)
    assert state["lat"] == pytest.approx(np.interp(state["t"], ms, lat), abs=1e-6)
    page.screenshot(path=str(SCREENSHOTS / "drilldown_replay.png"))
