"""A department's and an enterprise's wall in real headless Chromium (issue 14): logged in, the
live canvas draws only their trucks and the static canvas only their entities and points, while
the duty officer's draws the whole fleet; a new incident routed to the department adds its truck
to the department's open wall without a reload (the frame's new scope makes the page reload its
lists). Every truck of the world reports where the world puts it."""

from __future__ import annotations

import threading

import pytest

from tests.api.conftest import PASSWORD, build_env
from tests.api.test_screen_scope import FakeLive
from tests.browser.conftest import SCREENSHOTS, UNREACHABLE_TILES
from tests.incidents.helpers import ev

pytestmark = pytest.mark.browser
LOAD_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def wall(tmp_path_factory):
    from werkzeug.serving import make_server

    from app.settings import Settings
    from app.webapp import create_app
    from data.demo import build_world
    from data.reference import load_chemicals

    api_world = build_world(seed=5, scale=0.01, chemicals=load_chemicals())  # tests/api's world

    tmp = tmp_path_factory.mktemp("scoped_wall")
    url = f"sqlite:///{(tmp / 'hazmap.sqlite').as_posix()}"
    env = build_env(url, api_world, tmp)
    # a red point alarm routed elsewhere: the department's header must not count it
    from data.incidents import IncidentStore

    point = api_world.monitoring_points.iloc[-1]
    incidents = IncidentStore(env.store, api_world)
    incidents.apply_events([ev("open", 1, rule="point_level", subject=str(point["id"]), severity=1,
                               lon=point.geometry.x, lat=point.geometry.y, evidence={"level": 1})])
    alarm = incidents.list(limit=1)["id"].iloc[0]
    assert env.department not in set(incidents.show(alarm)["recipients"]["recipient_id"])
    settings = Settings(var_dir=tmp, database_url=url, tile_url=UNREACHABLE_TILES)
    web = create_app(settings, api_world, api_world.fingerprint(), live=FakeLive(api_world), people=env.people)
    server = make_server("127.0.0.1", 0, web.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hazmap-scoped-wall", daemon=True)
    thread.start()
    env.url = f"http://127.0.0.1:{server.server_port}/"
    try:
        yield env
    finally:
        server.shutdown()
        thread.join(timeout=10)
        env.store.close()


def login(page, env, name: str) -> None:
    page.goto(env.url + "login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#hz-map", timeout=LOAD_TIMEOUT_MS)


def wait_for_trucks(page, n: int) -> None:
    page.wait_for_function("(n) => window.hazmapLive && window.hazmapLive.trucks === n", arg=n,
                           timeout=LOAD_TIMEOUT_MS)


def static_drawn(page) -> dict:
    page.wait_for_function("""() => window.hazmapStatic && window.hazmapStatic.loaded().entities
                                      && window.hazmapStatic.loaded().sensitive_sites""", timeout=LOAD_TIMEOUT_MS)
    page.wait_for_timeout(500)  # the paint after the data arrived
    return page.evaluate("() => window.hazmapStatic.drawn()")


def test_a_departments_wall_draws_its_own_trucks_and_grows_with_its_incidents(page, wall, console):
    env, world = wall, wall.world
    login(page, env, "dept")
    wait_for_trucks(page, 1)
    assert page.evaluate("(id) => window.hazmapLive.stateOf(id)", env.vehicle) == "moving"
    others = world.vehicles["id"][world.vehicles["id"] != env.vehicle]
    assert page.evaluate("(ids) => ids.filter((id) => window.hazmapLive.stateOf(id) !== null)",
                         others.tolist()) == []
    page.wait_for_selector(".hz-wall-trucks .hz-stat-value[data-moving='1']", timeout=LOAD_TIMEOUT_MS)
    counted = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.hz-wall-incidents [data-level]')]
                                     .map((e) => [e.dataset.level, Number(e.dataset.n)]))""")
    assert counted == {"red": 0, "orange": 0, "yellow": 1, "blue": 0}  # its one incident, not the city's
    drawn = static_drawn(page)
    assert drawn["entities"] == 1  # the truck's carrier
    assert drawn["sensitive_sites"] == len(world.sensitive_sites)  # the city's, for everyone
    page.screenshot(path=str(SCREENSHOTS / "scoped_wall_department.png"))

    # a second truck speeding where the first is: routed to the same department, drawn at the next poll
    from data.incidents import IncidentStore

    where = world.vehicles.set_index("id").loc[env.vehicle].geometry
    other = str(others.iloc[0])
    IncidentStore(env.store, world).apply_events([ev("open", 5, subject=other, severity=3, lon=where.x,
                                                     lat=where.y)])
    wait_for_trucks(page, 2)
    assert page.evaluate("(id) => window.hazmapLive.stateOf(id)", other) == "moving"
    assert console.unexpected() == []


def test_an_enterprises_wall_draws_its_fleet_and_the_duty_officers_everything(chromium, wall, console):
    from tests.browser.conftest import WALL_1080, open_page

    env, world = wall, wall.world
    fleet = world.vehicles["id"][world.vehicles["carrier_id"] == env.enterprise]
    for name, trucks in (("ent", len(fleet)), ("duty", len(world.vehicles)), ("admin", 0)):
        context, page = open_page(chromium, WALL_1080, console)
        try:
            login(page, env, name)
            wait_for_trucks(page, trucks)
            drawn = static_drawn(page)
            entities = {"ent": 1, "duty": len(world.entities), "admin": 0}[name]
            assert drawn["entities"] == entities, (name, drawn)
            if name == "ent":
                assert page.evaluate("(ids) => ids.every((id) => window.hazmapLive.stateOf(id) !== null)",
                                     fleet.tolist())
                page.screenshot(path=str(SCREENSHOTS / "scoped_wall_enterprise.png"))
        finally:
            context.close()
    assert console.unexpected() == []
