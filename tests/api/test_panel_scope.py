"""The drill-down panels and the impact view narrowed per role (issue 14: each sees its own warnings
and nobody else's), asked through the screen's own panel callback as each user (bearer token):
a department opening its incident's carrier sees its truck, not the carrier's fleet; an enterprise
opening its hazard source's impact view sees another carrier's truck inside only as a count; the
duty officer sees everything. What each should see is worked out from the world's own tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from app.i18n import ui
from data.drilldown import gather, narrow
from tests.api.conftest import PASSWORD
from tests.api.test_screen_scope import FakeLive, screen  # noqa: F401 - the screen on both stores

PANEL_OUTPUT = "..hz-panel-body.children...hz-panel.className.."


def _panel(env, user: str, layer: str, feature_id: str) -> str:
    """The panel `user`'s screen draws when it opens (layer, id), as its text (ids and labels)."""
    body = {
        "output": PANEL_OUTPUT,
        "outputs": [{"id": "hz-panel-body", "property": "children"}, {"id": "hz-panel", "property": "className"}],
        "inputs": [[], {"id": "hz-live-click", "property": "data", "value": {"layer": layer, "id": feature_id}},
                   {"id": "hz-panel-close", "property": "n_clicks", "value": None},
                   {"id": "hz-grid-click", "property": "data", "value": None}, []],
        "state": [{"id": "hz-language", "property": "data", "value": "en"}, []],
        "changedPropIds": ["hz-live-click.data"],
    }
    response = env.client.post("/_dash-update-component", json=body, headers=env.headers(user))
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return json.dumps(response.get_json()["response"]["hz-panel-body"]["children"], ensure_ascii=False)


def test_a_carriers_panel_lists_only_the_trucks_the_user_may_see(screen):  # noqa: F811
    env = screen
    fleet = set(env.world.vehicles["id"][env.world.vehicles["carrier_id"] == env.enterprise])
    others = fleet - {env.vehicle}
    assert others  # a fleet to leave out
    duty, dept, ent = (_panel(env, u, "entities", env.enterprise) for u in ("duty", "dept", "ent"))
    assert all(f'"{v}"' in duty for v in fleet) and all(f'"{v}"' in ent for v in fleet)
    assert f'"{env.vehicle}"' in dept and not any(f'"{v}"' in dept for v in others)
    assert f"Vehicles ({len(fleet)})" in duty and "Vehicles (1)" in dept
    assert f'"{env.incident}"' in dept and f'"{env.incident}"' in duty  # its incident listed under the carrier
    # the truck's own panel names its carrier to the department (it sees it through the incident)
    assert f'"{env.enterprise}"' in _panel(env, "dept", "vehicles", env.vehicle)


@pytest.fixture(scope="module")
def source_with_another_carriers_truck(screen):  # noqa: F811
    """A hazard source whose impact holds a loaded truck of another enterprise, and a user of the
    source's enterprise (added once per store)."""
    from data.people import Actor

    env, w = screen, screen.world
    live = FakeLive(w).state
    carrier = w.vehicles.set_index("id")["carrier_id"]
    for source, owner in zip(w.hazard_sources["id"], w.hazard_sources["entity_id"]):
        trucks = gather(w, "hazard_sources", source, live=live)["impact"].trucks["id"]
        foreign = [t for t in trucks if carrier.get(t) != owner]
        if foreign:
            break
    else:
        pytest.fail("the test world has no hazard source with another carrier's loaded truck inside its reach")
    env.people.add_user("plant", "enterprise", by=Actor("test", "admin", "test"), password=PASSWORD, enterprise=owner)
    response = env.client.post("/api/token", json={"username": "plant", "password": PASSWORD})
    env.tokens["plant"] = response.get_json()["token"]
    return env, source, foreign


def test_the_impact_view_counts_the_trucks_outside_the_users_scope(source_with_another_carriers_truck):
    env, source, foreign = source_with_another_carriers_truck
    for layer in ("impact", "hazard_sources"):
        duty, plant = _panel(env, "duty", layer, source), _panel(env, "plant", layer, source)
        assert f'"{source}"' in plant  # its own source's view opens
        assert all(f'"{t}"' in duty for t in foreign) and "outside your scope" not in duty
        assert not any(f'"{t}"' in plant for t in foreign)
        assert f"{len(foreign)} more outside your scope" in plant


def test_the_department_cannot_open_the_carriers_other_trucks(screen):  # noqa: F811
    env = screen
    other = sorted(set(env.world.vehicles["id"][env.world.vehicles["carrier_id"] == env.enterprise]) - {env.vehicle})[0]
    assert ui("not_found", "en") in _panel(env, "dept", "vehicles", other)  # as if it did not exist
    assert f'"{other}"' in _panel(env, "duty", "vehicles", other)


def test_narrow_keeps_only_the_visible_related_rows_and_incidents():
    """The gathered data's lists cut by the visible set: features by id, incidents by id, one
    enterprise row dropped when not visible; None keeps everything as gathered."""
    from types import SimpleNamespace

    data = {"vehicles": pd.DataFrame({"id": ["VEH-1", "VEH-2"]}),
            "readings": pd.DataFrame({"point_id": ["MP-1", "MP-2", "MP-2"], "value": [1.0, 2.0, 3.0]}),
            "incidents": pd.DataFrame({"id": ["INC-1", "INC-2"]}),
            "carrier": pd.Series({"id": "ENT-9", "name": "x"})}
    assert narrow(data, None) is data
    seen = narrow(data, SimpleNamespace(features=frozenset({"VEH-2", "MP-2"}), incidents=frozenset({"INC-1"})))
    assert seen["vehicles"]["id"].tolist() == ["VEH-2"] and seen["readings"]["value"].tolist() == [2.0, 3.0]
    assert seen["incidents"]["id"].tolist() == ["INC-1"] and seen["carrier"] is None
    assert seen["hidden"]["vehicles"] == 1 and len(data["vehicles"]) == 2  # the gathered data untouched


def test_a_scoped_users_incidents_are_chosen_before_the_newest_first_limit(screen):  # noqa: F811
    """incidents_of's `only` narrows in the query, so another's newer incidents cannot push the
    user's out of the panel's list."""
    from data.drilldown import incidents_of

    env = screen
    assert incidents_of(env.store, [env.vehicle], limit=1)["id"].tolist() == [env.incident]
    assert incidents_of(env.store, [env.vehicle], limit=1, only=frozenset({env.incident}))["id"].tolist() == \
        [env.incident]
    assert incidents_of(env.store, [env.vehicle], only=frozenset({"INC-not-routed-to-me"})).empty
    assert incidents_of(env.store, [env.vehicle], only=frozenset()).empty
