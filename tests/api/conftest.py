"""API fixtures: a small demo world on each store backend with incidents routed to a department
and a carrier, one user per role (and a department and an enterprise with nothing routed to
them), the app with people installed, and a bearer token per user."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from tests.conftest import STORE_BACKENDS
from tests.incidents.helpers import ev

PASSWORD = "correct horse battery"


def cheap_hasher():
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # tests only: the real one is slow on purpose


@pytest.fixture(scope="session")
def api_world():
    from data.demo import build_world
    from data.reference import load_chemicals

    return build_world(seed=5, scale=0.01, chemicals=load_chemicals())


@dataclass
class Env:
    client: object
    world: object
    people: object
    store: object
    incident: str  # routed to `dept` and `ent`
    vehicle: str
    department: str
    enterprise: str
    other_department: str
    other_enterprise: str
    tokens: dict = field(default_factory=dict)

    def headers(self, user: str | None) -> dict:
        return {} if user is None else {"Authorization": f"Bearer {self.tokens[user]}"}


def build_env(store_url, world, tmp_path) -> Env:
    from app.settings import Settings
    from app.webapp import create_app
    from data.incidents import IncidentStore
    from data.people import Actor, PeopleStore
    from data.store import Store

    store = Store.open(store_url, upgrade=True)
    store.replace_world(world)
    carriers = world.vehicles.dropna(subset=["carrier_id"])
    vehicle, carrier = str(carriers["id"].iloc[0]), str(carriers["carrier_id"].iloc[0])
    incidents = IncidentStore(store, world)
    incidents.apply_events([ev("open", 0, subject=vehicle, severity=3, lon=float(carriers.geometry.iloc[0].x),
                               lat=float(carriers.geometry.iloc[0].y))])
    listed = incidents.list()
    incident = str(listed["id"].iloc[0])
    recipients = incidents.show(incident)["recipients"]
    departments = [r for r in recipients["recipient_id"] if r.startswith("DEPT-")]
    assert departments and carrier in set(recipients["recipient_id"]), recipients
    other_dept = next(d for d in world.departments["id"] if d not in set(recipients["recipient_id"]))
    other_ent = next(e for e in world.entities["id"] if e != carrier and e not in set(world.vehicles["carrier_id"]))
    people = PeopleStore(store, hasher=cheap_hasher())
    admin = Actor("test", "admin", "test")
    for name, role, dept, ent in [("duty", "duty_officer", None, None), ("dept", "department", departments[0], None),
                                  ("ent", "enterprise", None, carrier), ("admin", "admin", None, None),
                                  ("wall", "kiosk", None, None), ("dept2", "department", other_dept, None),
                                  ("ent2", "enterprise", None, other_ent)]:
        people.add_user(name, role, by=admin, password=PASSWORD, department=dept, enterprise=ent)
    settings = Settings(var_dir=tmp_path, database_url=store_url, tile_url="http://127.0.0.1:9/{z}/{x}/{y}.png")
    web = create_app(settings, world, world.fingerprint(), people=people)
    client = web.server.test_client()
    env = Env(client, world, people, store, incident, vehicle, departments[0], carrier, other_dept, other_ent)
    for name in ("duty", "dept", "ent", "admin", "wall", "dept2", "ent2"):
        response = client.post("/api/token", json={"username": name, "password": PASSWORD})
        assert response.status_code == 200, response.get_json()
        env.tokens[name] = response.get_json()["token"]
    return env


@pytest.fixture
def env(store_url, api_world, tmp_path):
    """A fresh environment on each backend (for tests that change it)."""
    made = build_env(store_url, api_world, tmp_path)
    try:
        yield made
    finally:
        made.store.close()


def backend_url(request, tmp):
    """A fresh store URL on the fixture's backend (request.param) and how to drop it (None for
    SQLite: the file goes with tmp)."""
    if request.param == "sqlite":
        return f"sqlite:///{(tmp / 'hazmap.sqlite').as_posix()}", None
    admin, template = request.getfixturevalue("postgis_template")
    name = f"hazmap_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')

    def drop():
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return admin.url.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def shared_env(request, api_world, tmp_path_factory):
    """One environment per backend for a whole module (read-mostly tests)."""
    tmp = tmp_path_factory.mktemp("api")
    url, drop = backend_url(request, tmp)
    made = build_env(url, api_world, tmp)
    try:
        yield made
    finally:
        made.store.close()
        if drop is not None:
            drop()
