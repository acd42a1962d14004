"""The screen's routes narrowed per role (app/permissions.py Scopes), walked as every role from
one table: the live canvas (static lists, frames, trail), the layer files (GeoJSON and the static
canvas), search and the wall's incident ticker and queue. A department sees the incident routed
to it, its truck and the truck's carrier; an enterprise its own vehicles, entity and points; the
duty officer and the kiosk everything; an admin only the city's public layers.

What each role should see is worked out here from the world's own tables (carrier_id, hazard
sources' entity), not from app/permissions.py."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from spatial.model import LiveState, PingBatch
from tests.api.conftest import backend_url, build_env
from tests.conftest import STORE_BACKENDS
from tests.incidents.helpers import ev

ROLE_USERS = ("duty", "dept", "ent", "admin", "wall", "dept2", "ent2")
T0_MS = int(pd.Timestamp("2026-11-02T01:00:00Z").value // 1_000_000)


class FakeLive:
    """Every truck of the world reporting where the world puts it; settings say the monitor runs
    the incident processor (the wall's ticker is served)."""

    def __init__(self, world):
        v = world.vehicles
        self.state = LiveState()
        n = len(v)
        self.state.apply_pings(PingBatch.from_arrays(v["id"].astype(str).to_numpy(object), np.full(n, T0_MS),
                                                     v.geometry.x.to_numpy(), v.geometry.y.to_numpy(),
                                                     np.full(n, 30.0), np.zeros(n)))
        self.settings = SimpleNamespace(incidents=object())

    def snapshot(self) -> LiveState:
        return self.state


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def screen(request, api_world, tmp_path_factory):
    from app.settings import Settings
    from app.webapp import create_app

    tmp = tmp_path_factory.mktemp("scope")
    url, drop = backend_url(request, tmp)
    env = build_env(url, api_world, tmp)
    settings = Settings(var_dir=tmp, database_url=url, tile_url="http://127.0.0.1:9/{z}/{x}/{y}.png")
    web = create_app(settings, api_world, api_world.fingerprint(), live=FakeLive(api_world), people=env.people)
    env.client = web.server.test_client()
    try:
        yield env
    finally:
        env.store.close()
        if drop is not None:
            drop()


def _expected(env) -> dict[str, dict[str, set[str]]]:
    """user -> layer -> the ids it should see (None-free: every layer named)."""
    w = env.world
    vehicles, entities = set(w.vehicles["id"]), set(w.entities["id"])
    points, sites = set(w.monitoring_points["id"]), set(w.sensitive_sites["id"])
    source_owner = dict(zip(w.hazard_sources["id"], w.hazard_sources["entity_id"]))
    point_owner = w.monitoring_points["hazard_source_id"].map(source_owner)

    def owned(enterprise):
        return {"vehicles": set(w.vehicles["id"][w.vehicles["carrier_id"] == enterprise]),
                "entities": {enterprise},
                "monitoring_points": set(w.monitoring_points["id"][(point_owner == enterprise).to_numpy()]),
                "sensitive_sites": sites, "incidents": set()}

    everything = {"vehicles": vehicles, "entities": entities, "monitoring_points": points, "sensitive_sites": sites,
                  "incidents": {env.incident}}
    nothing = {"vehicles": set(), "entities": set(), "monitoring_points": set(), "sensitive_sites": sites,
               "incidents": set()}
    return {
        "duty": everything, "wall": everything, "admin": nothing,
        "dept": {**nothing, "vehicles": {env.vehicle}, "entities": {env.enterprise}, "incidents": {env.incident}},
        "dept2": nothing,
        "ent": {**owned(env.enterprise), "incidents": {env.incident}},
        "ent2": owned(env.other_enterprise),
    }


def _decode(array_b64: str, index_bytes: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(array_b64), "<u2" if index_bytes == 2 else "<u4")


def _live_trucks(env, user) -> tuple[set[str], set[str], dict]:
    """(ids in the static list, ids drawn by a full frame, the frame) as `user`'s screen decodes them."""
    version = env.world.fingerprint()
    static = env.client.get(f"/live/{version}/static.json", headers=env.headers(user)).get_json()
    scope = static.get("scope")
    frame = env.client.get(f"/live/{version}/state?since=0" + (f"&scope={scope}" if scope else ""),
                           headers=env.headers(user)).get_json()
    assert frame.get("scope") == scope
    ids = static["vehicles"]["ids"]
    drawn = {ids[i] for i in _decode(frame["trucks"]["idx"], static["vehicles"]["index_bytes"])}
    assert frame["points"]["n"] == static["points"]["n"]  # a full frame: every listed point's status
    return set(ids), drawn, static


def _geojson_ids(env, user, layer) -> set[str]:
    body = env.client.get(f"/layers/{env.world.fingerprint()}/{layer}.geojson", headers=env.headers(user))
    assert body.status_code == 200
    return {f["properties"]["id"] for f in body.get_json()["features"]}


def _canvas_ids(env, user, layer) -> set[str]:
    body = env.client.get(f"/canvas/{env.world.fingerprint()}/{layer}.json", headers=env.headers(user))
    assert body.status_code == 200
    return set(body.get_json()["ids"])


def test_every_screen_route_as_every_role(screen):
    env = screen
    expected = _expected(env)
    version = env.world.fingerprint()
    plate = env.world.vehicles.set_index("id").loc[env.vehicle, "plate"]
    wrong = []
    for user in ROLE_USERS:
        want = expected[user]
        listed, drawn, static = _live_trucks(env, user)
        points = set(static["points"]["ids"])
        seen = {
            "live static vehicles": listed, "live frame vehicles": drawn, "live static points": points,
            "vehicles.geojson": _geojson_ids(env, user, "vehicles"),
            "hazard_sources.geojson": _geojson_ids(env, user, "hazard_sources"),
            "entities canvas": _canvas_ids(env, user, "entities"),
            "monitoring_points canvas": _canvas_ids(env, user, "monitoring_points"),
            "sensitive_sites canvas": _canvas_ids(env, user, "sensitive_sites"),
            "districts.geojson": _geojson_ids(env, user, "districts"),
        }
        sources = env.world.hazard_sources
        should = {
            "live static vehicles": want["vehicles"], "live frame vehicles": want["vehicles"],
            "live static points": want["monitoring_points"], "vehicles.geojson": want["vehicles"],
            "hazard_sources.geojson": set(sources["id"][sources["entity_id"].isin(want["entities"])])
            if user not in ("duty", "wall") else set(sources["id"]),
            "entities canvas": want["entities"], "monitoring_points canvas": want["monitoring_points"],
            "sensitive_sites canvas": want["sensitive_sites"], "districts.geojson": set(env.world.districts["id"]),
        }
        if user == "dept":  # a department sees the incident's subject and its carrier, not the carrier's sources
            should["hazard_sources.geojson"] = set()
        for what in seen:
            if seen[what] != should[what]:
                wrong.append((user, what, len(should[what]), len(seen[what]),
                              sorted(seen[what] ^ should[what])[:3]))
        trail = env.client.get(f"/live/{version}/trail/{env.vehicle}", headers=env.headers(user)).status_code
        if trail != (200 if env.vehicle in want["vehicles"] else 404):
            wrong.append((user, "trail", trail))
        found = env.client.get(f"/search/{version}", query_string={"q": plate, "lang": "en"},
                               headers=env.headers(user)).get_json()
        assert "hits" in found, (user, found)
        hits = found["hits"]
        if ({h["id"] for h in hits} & {env.vehicle}) != ({env.vehicle} & want["vehicles"]):
            wrong.append((user, "search", hits))
        wall = env.client.get(f"/incidents/{version}/wall?lang=en", headers=env.headers(user)).get_json()
        if {i["id"] for i in wall["recent"]} != want["incidents"] or \
                {i["id"] for i in wall["queue"]} != want["incidents"] or wall["unsigned"] != len(want["incidents"]):
            wrong.append((user, "wall incidents", wall))
    assert wrong == []


def test_the_duty_officers_live_feed_is_the_shared_unfiltered_one(screen):
    """No scope work for who sees everything: the lists are the world's, cached for good."""
    env = screen
    version = env.world.fingerprint()
    duty = env.client.get(f"/live/{version}/static.json", headers=env.headers("duty"))
    dept = env.client.get(f"/live/{version}/static.json", headers=env.headers("dept"))
    assert "scope" not in duty.get_json() and "immutable" in duty.headers["Cache-Control"]
    assert dept.get_json()["scope"] and dept.headers["Cache-Control"] == "private, no-store"
    frame = env.client.get(f"/live/{version}/state?since=0", headers=env.headers("duty")).get_json()
    assert "scope" not in frame and frame["trucks"]["n"] == len(env.world.vehicles)


def test_a_new_incident_routed_to_a_department_shows_its_truck(env, api_world, store_url, tmp_path):
    """The department's lists grow with what is routed to it: the next frame carries a new scope
    (the screen reloads its lists) and the static lists hold the new truck."""
    from app.settings import Settings
    from app.webapp import create_app
    from data.incidents import IncidentStore

    settings = Settings(var_dir=tmp_path, database_url=store_url, tile_url="http://127.0.0.1:9/{z}/{x}/{y}.png")
    web = create_app(settings, api_world, api_world.fingerprint(), live=FakeLive(api_world), people=env.people)
    env.client = web.server.test_client()
    listed, drawn, static = _live_trucks(env, "dept")
    assert listed == drawn == {env.vehicle}
    # a second truck speeding where the first one is: routed to the same district's department
    where = api_world.vehicles.set_index("id").loc[env.vehicle].geometry
    other = str(api_world.vehicles["id"][api_world.vehicles["id"] != env.vehicle].iloc[0])
    incidents = IncidentStore(env.store, api_world)
    incidents.apply_events([ev("open", 5, subject=other, severity=3, lon=where.x, lat=where.y)])
    newest = incidents.list(limit=1)
    assert env.department in set(incidents.show(newest["id"].iloc[0])["recipients"]["recipient_id"])
    version = api_world.fingerprint()
    frame = env.client.get(f"/live/{version}/state?since=1&scope={static['scope']}",
                           headers=env.headers("dept")).get_json()
    assert frame["full"] and frame["scope"] != static["scope"]
    listed, drawn, _ = _live_trucks(env, "dept")
    assert listed == drawn == {env.vehicle, other}
    assert _geojson_ids(env, "dept", "vehicles") == {env.vehicle, other}


def test_a_grid_cells_list_names_only_what_the_user_may_see(api_world):
    """The cell's contents (the risk grid's click panel) list a scoped user's own features and the
    city's sensitive sites, never another's trucks or sources, nor name one as a `via`."""
    from layers.grid import GridFeed, panel_children
    from spatial.h3cells import H3_RES_RISK_GRID, cell_hex, cell_ints

    feed = GridFeed(api_world, FakeLive(api_world))
    v = api_world.vehicles
    cells = pd.Series(cell_ints(v.geometry.x.to_numpy(), v.geometry.y.to_numpy(), H3_RES_RISK_GRID))
    cell = cell_hex(np.asarray([cells.value_counts().idxmax()], "uint64"))[0]  # the cell with most trucks
    _, contents = feed.cell(cell, H3_RES_RISK_GRID)
    here = set(contents["item_id"][contents["kind"] == "vehicles"])
    assert len(here) >= 2  # another's truck to leave out
    mine = sorted(here)[0]
    everything = str(panel_children(feed, cell, H3_RES_RISK_GRID, "en"))
    narrowed = str(panel_children(feed, cell, H3_RES_RISK_GRID, "en", visible=frozenset({mine})))
    assert all(v in everything for v in here)
    assert mine in narrowed and not any(v in narrowed for v in here - {mine})
    others = set(contents["item_id"]) | set(contents["via"]) - {""}
    sites = set(contents["item_id"][contents["kind"] == "sensitive_sites"])
    assert not any(i in narrowed for i in others - {mine} - sites)
    assert all(s in narrowed for s in sites)


def test_an_entitys_related_features_are_only_those_the_user_may_see(screen):
    """The API names a carrier's trucks to whoever sees them all, a department only the one its
    incident is about (the carrier is visible to it through that incident)."""
    env = screen

    def related(user):
        body = env.client.get(f"/api/entities/{env.enterprise}", headers=env.headers(user)).get_json()
        return {r["id"] for r in body["related"] if r["layer"] == "vehicles"}

    fleet = set(env.world.vehicles["id"][env.world.vehicles["carrier_id"] == env.enterprise])
    assert len(fleet) >= 2
    assert related("duty") == related("ent") == fleet
    assert related("dept") == {env.vehicle}
