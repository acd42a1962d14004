"""Every API route as every role, from one table: what a role may not see answers 404, a caller
without a token 401, and the table covers every route of the served OpenAPI document.

The incident (a yellow speeding of a carrier's truck) is routed to `dept`'s department and to
`ent`'s enterprise; `dept2` and `ent2` have nothing routed to them. For state-changing routes
"allowed" is 200 or 409 (the caller got past the permission check; the earlier row may already
have moved the state), and refusals must leave the incident's history unchanged."""

from __future__ import annotations

import pytest

from app.permissions import ACTIONS, RULES, Target, can
from data.people import ROLES, User

ROLE_USERS = ("duty", "dept", "ent", "admin", "wall", "dept2", "ent2", None)
OK, HIDDEN, ANON, ALLOWED = 200, 404, 401, "allowed"  # ALLOWED: 200 or 409


def _routes(env) -> list[tuple[str, str, str, object, dict]]:
    """(method, documented path, actual url, json body, {user: expected})."""
    inc, veh = env.incident, env.vehicle
    point = env.world.monitoring_points["id"].iloc[0]
    span = "from=2026-11-02T00:00:00Z&to=2026-11-02T12:00:00Z"
    read = {"duty": OK, "dept": OK, "ent": OK, "admin": HIDDEN, "wall": OK, "dept2": HIDDEN, "ent2": HIDDEN}
    act = {"duty": ALLOWED, "dept": ALLOWED, "ent": ALLOWED, "admin": HIDDEN, "wall": HIDDEN, "dept2": HIDDEN,
           "ent2": HIDDEN}
    dept_only = {**act, "ent": HIDDEN}
    return [
        ("GET", "/api/health", "/api/health", None, dict.fromkeys(ROLE_USERS, OK)),
        ("GET", "/api/incidents", "/api/incidents", None, {**read, "admin": HIDDEN, "dept2": OK, "ent2": OK}),
        ("GET", "/api/incidents/{incident_id}", f"/api/incidents/{inc}", None, read),
        ("GET", "/api/inbox", "/api/inbox", None,
         {"duty": 400, "dept": OK, "ent": OK, "admin": HIDDEN, "wall": HIDDEN, "dept2": OK, "ent2": OK}),
        ("GET", "/api/kpis", "/api/kpis?by=department", None,
         {"duty": OK, "dept": OK, "ent": HIDDEN, "admin": HIDDEN, "wall": OK, "dept2": OK, "ent2": HIDDEN}),
        ("GET", "/api/entities/{feature_id}", f"/api/entities/{veh}", None, read),
        ("GET", "/api/vehicles/{vehicle_id}/track", f"/api/vehicles/{veh}/track?{span}", None, read),
        ("GET", "/api/points/{point_id}/readings", f"/api/points/{point}/readings?{span}", None,
         {**read, "dept": HIDDEN, "ent": HIDDEN}),
        ("GET", "/api/deliveries", "/api/deliveries", None,
         {"duty": OK, "dept": HIDDEN, "ent": HIDDEN, "admin": OK, "wall": HIDDEN, "dept2": HIDDEN, "ent2": HIDDEN}),
        ("POST", "/api/incidents/{incident_id}/sign", f"/api/incidents/{inc}/sign", {"recipient": env.department},
         act),
        ("POST", "/api/incidents/{incident_id}/dispose", f"/api/incidents/{inc}/dispose",
         {"recipient": env.department, "outcome": "resolved", "measures": "called the driver"}, act),
        ("POST", "/api/incidents/{incident_id}/close", f"/api/incidents/{inc}/close", {"recipient": env.department},
         act),
        ("POST", "/api/incidents/{incident_id}/supervise", f"/api/incidents/{inc}/supervise",
         {"department": env.department, "deadline": "2030-01-01T00:00:00Z"}, dept_only),
        ("POST", "/api/incidents/{incident_id}/text", f"/api/incidents/{inc}/text", {"message": "请靠边停车"},
         dept_only),
    ]


def _body_for(user, body):
    """Department and enterprise users act on their own row: they name none."""
    if body is None or user in ("duty", None):
        return body
    return {k: v for k, v in body.items() if k not in ("recipient", "department")}


def test_every_route_as_every_role(shared_env):
    env = shared_env
    routes = _routes(env)
    documented = {(method.upper(), path) for path, ops in env.client.get("/api/openapi.json").get_json()["paths"]
                  .items() for method in ops}
    assert {(m, p) for m, p, *_ in routes} | {("POST", "/api/token"), ("DELETE", "/api/token")} == documented
    wrong = []
    history = len(env.client.get(f"/api/incidents/{env.incident}", headers=env.headers("duty"))
                  .get_json()["history"])
    for method, _path, url, body, expected in routes:
        for user in ROLE_USERS:
            want = expected.get(user, ANON) if user is not None else expected.get(None, ANON)
            response = env.client.open(url, method=method, json=_body_for(user, body), headers=env.headers(user))
            got = response.status_code
            ok = got in (200, 409) if want == ALLOWED else got == want
            if not ok:
                wrong.append((method, url, user, want, got, response.get_json()))
            if method == "POST" and got in (401, 404):
                now = len(env.client.get(f"/api/incidents/{env.incident}", headers=env.headers("duty"))
                          .get_json()["history"])
                assert now == history, (method, url, user, "a refused request changed the history")
            elif method == "POST":
                history = len(env.client.get(f"/api/incidents/{env.incident}", headers=env.headers("duty"))
                              .get_json()["history"])
    assert wrong == []


def test_lists_are_scoped_to_the_callers_own(shared_env):
    env = shared_env

    def ids(user):
        return [i["id"] for i in env.client.get("/api/incidents", headers=env.headers(user)).get_json()["items"]]

    assert ids("duty") == ids("dept") == ids("ent") == ids("wall") == [env.incident]
    assert ids("dept2") == ids("ent2") == []
    inbox = env.client.get("/api/inbox", headers=env.headers("dept")).get_json()
    assert inbox["recipient"] == env.department
    asked = env.client.get(f"/api/inbox?recipient={env.other_department}", headers=env.headers("dept"))
    assert asked.status_code == 404
    named = env.client.get(f"/api/inbox?recipient={env.department}", headers=env.headers("duty"))
    assert named.status_code == 200 and named.get_json()["recipient"] == env.department
    rows = env.client.get("/api/kpis?by=department", headers=env.headers("dept")).get_json()["rows"]
    assert [r["department"] for r in rows] == [env.department]
    assert env.client.get("/api/kpis?by=department", headers=env.headers("dept2")).get_json()["rows"] == []


def test_a_department_user_cannot_act_on_another_recipients_row(shared_env):
    env = shared_env
    response = env.client.post(f"/api/incidents/{env.incident}/sign", json={"recipient": env.enterprise},
                               headers=env.headers("dept"))
    assert response.status_code == 404


@pytest.mark.parametrize("role", ROLES)
def test_the_permission_table_names_every_role_and_refuses_unknown_actions(role):
    user = User("someone", role, "DEPT-X" if role == "department" else None, "ENT-X" if role == "enterprise" else None)
    assert any(can(user, action) for action in ACTIONS)  # every role can do something
    with pytest.raises(ValueError, match="unknown action"):
        can(user, "incident.delete")
    assert set().union(*RULES.values()) == set(ROLES)
    if role in ("department", "enterprise"):
        own = user.recipient_id
        assert can(user, "incident.read", Target(recipients=frozenset({own})))
        assert not can(user, "incident.read", Target(recipients=frozenset({"DEPT-OTHER", "ENT-OTHER"})))
        assert not can(user, "incident.act", Target(recipients=frozenset({own, "ENT-Y"}), recipient_id="ENT-Y"))
    assert not can(User("off", role, disabled=True), "screen.view")


def test_what_an_enterprise_owns(api_world):
    from app.permissions import Ownership

    owned = Ownership(api_world)
    waybill = api_world.waybills.iloc[0]
    vehicle = api_world.vehicles.set_index("id").loc[waybill["vehicle_id"]]
    assert owned.owners(waybill["id"]) == {vehicle["carrier_id"], waybill["loading_site_id"],
                                           waybill["unloading_site_id"]}
    point = api_world.monitoring_points.iloc[0]
    source = api_world.hazard_sources.set_index("id").loc[point["hazard_source_id"]]
    assert owned.owners(point["id"]) == owned.owners(source.name) == {source["entity_id"]}
    assert owned.owners("VEH-NOPE") == frozenset()
    ent = User("e", "enterprise", enterprise_id=source["entity_id"])
    assert can(ent, "readings.read", Target(owners=owned.owners(point["id"])))
    assert not can(ent, "track.read", Target(owners=frozenset({"ENT-SOMEONE-ELSE"})))


def test_the_screens_routes_as_every_role(shared_env):
    """The screen: every role may look at the wall (its layers narrowed to what it may see:
    tests/api/test_screen_scope.py); without a login a browser is sent to /login and Dash's own
    requests get 401."""
    env = shared_env
    env.client.delete_cookie("hazmap_session")
    version = env.world.fingerprint()
    table = [("/", 302), ("/_dash-layout", 401), (f"/layers/{version}/districts.geojson", 302),
             (f"/layers/{version}/vehicles.geojson", 302), (f"/canvas/{version}/entities.json", 302),
             (f"/search/{version}?q=VEH&lang=en", 302),
             (f"/grid/{version}/state?res=7&since=0", 302), ("/assets/hazmap_map.js", 200), ("/api/health", 200),
             ("/api/openapi.json", 200), ("/metrics", 200)]
    wrong = []
    for url, anonymous in table:
        for user in ROLE_USERS:
            got = env.client.get(url, headers=env.headers(user)).status_code
            want = anonymous if user is None else 200
            if got != want:
                wrong.append((url, user, want, got))
    assert wrong == []
