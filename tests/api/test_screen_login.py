"""The screen with people installed, in headless Chromium: the login form, the wall after it with
Dash's callbacks carrying the CSRF token on their own, and the details panel obeying the roles
(an enterprise user opening another enterprise's hazard source is told it is not there)."""

from __future__ import annotations

import threading

import pytest

from tests.api.conftest import PASSWORD, build_env
from tests.browser.conftest import UNREACHABLE_TILES, WALL_1080
from tests.browser.test_map import click_feature, wait_for_counts
from tests.services import CHROMIUM_ARGS, chromium_path

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def people_server(api_world, tmp_path_factory):
    from werkzeug.serving import make_server

    tmp = tmp_path_factory.mktemp("screen")
    env = build_env(f"sqlite:///{(tmp / 'hazmap.sqlite').as_posix()}", api_world, tmp)
    from app.settings import Settings
    from app.webapp import create_app

    settings = Settings(var_dir=tmp, tile_url=UNREACHABLE_TILES, language="zh")
    web = create_app(settings, api_world, api_world.fingerprint(), people=env.people)
    server = make_server("127.0.0.1", 0, web.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hazmap-people-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", env
    finally:
        server.shutdown()
        thread.join(timeout=10)
        env.store.close()


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _open_as(browser, url: str, user: str):
    context = browser.new_context(viewport=WALL_1080)
    page = context.new_page()
    statuses: list[tuple[str, int]] = []
    page.on("response", lambda r: statuses.append((r.url, r.status)))
    page.goto(url)
    assert "/login" in page.url  # a stranger gets the form
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector(".leaflet-container", timeout=60_000)
    return context, page, statuses


def test_logging_in_and_the_panel_obeying_the_roles(browser, people_server):
    url, env = people_server
    world = env.world
    source = world.hazard_sources[world.hazard_sources["entity_id"] != env.other_enterprise].iloc[0]
    own = int((world.hazard_sources["entity_id"] == env.other_enterprise).sum())
    counts = {"duty": {"hazard_sources": len(world.hazard_sources)}, "ent2": {"hazard_sources": own}}
    shown = {}
    for user in ("duty", "ent2"):
        context, page, statuses = _open_as(browser, url, user)
        try:
            wait_for_counts(page, counts[user])  # an enterprise's map draws its own sources only
            if user == "duty":
                click_feature(page, "hazard_sources", source["id"])
            else:  # not drawn for it: ask the panel for it as a crafted request would
                page.evaluate("""(id) => window.dash_clientside.set_props("hz-live-click",
                                     {data: {layer: "hazard_sources", id: id, at: Date.now()}})""", source["id"])
            panel = page.locator("#hz-panel.hz-open")
            panel.wait_for(timeout=15_000)
            shown[user] = panel.inner_text()
            callbacks = [s for u, s in statuses if "_dash-update-component" in u]
            assert callbacks and set(callbacks) == {200}, statuses  # dash-renderer sent X-CSRFToken itself
        finally:
            context.close()
    assert source["name"] in shown["duty"]
    assert source["name"] not in shown["ent2"] and "该要素已不在当前数据中" in shown["ent2"]
