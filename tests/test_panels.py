"""Drill-down panels: data/drilldown.py gathers from a real store (both backends), layers/panels/ lays
out; the figures the panel shows are checked against the store and against independent computations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import shapely

from data import drilldown
from layers.panels import BACK_N, FOCUS_TYPE, HISTORY_TYPE, KINDS, LINK_TYPE, build_panel, next_history
from spatial.grading import grade_sources
from spatial.model import LiveState, PingBatch, ReadingBatch
from tests.incidents.helpers import ev

NOW = pd.Timestamp("2026-11-02T04:00:00Z")  # 12:00 in Ningbo: the ERG's day


@pytest.fixture(scope="module")
def world():
    from data.demo import build_world

    return build_world(seed=7, scale=0.05)


def _focus(panel) -> dict:
    (node,) = _by_id_type(panel, FOCUS_TYPE)
    return json.loads(node.to_plotly_json()["props"]["data-focus"])


def _walk(node):
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, (list, tuple)):
        for child in children:
            yield from _walk(child)
    elif children is not None:
        yield from _walk(children)


def _all(panel) -> list:
    return [n for top in panel for n in _walk(top)]


def _by_id_type(panel, kind: str) -> list:
    return [n for n in _all(panel) if isinstance(getattr(n, "id", None), dict) and n.id.get("type") == kind]


def _field(panel, label: str):
    """The value cell beside a field label (a Th/Td pair of a fields table)."""
    nodes = _all(panel)
    for i, node in enumerate(nodes):
        if type(node).__name__ == "Th" and node.children == label:
            row = nodes[i - 1]
            return row.children[1].children
    raise AssertionError(f"no field {label!r}")


def _track(vehicle_id: str, lon: float, lat: float, n: int = 120) -> PingBatch:
    ms = np.int64(NOW.value // 1_000_000) - np.arange(n)[::-1].astype("int64") * 30_000
    speeds = (np.arange(n) % 90).astype("float64")
    return PingBatch.from_arrays(np.full(n, vehicle_id, dtype=object), ms, lon + np.arange(n) * 1e-4,
                                 np.full(n, lat), speed_kmh=speeds)


def test_the_truck_panel_shows_its_stored_speeds_carrier_waybill_and_incidents(world, store):
    from data.incidents import IncidentStore

    vehicle = world.vehicles.iloc[0]
    batch = _track(vehicle["id"], vehicle.geometry.x, vehicle.geometry.y)
    store.replace_world(world)
    store.write_pings(batch)
    IncidentStore(store, world).apply_events([ev("open", 0, subject=vehicle["id"], rule="speeding")])
    live = LiveState()
    live.apply_pings(batch)

    data = drilldown.truck(world, vehicle["id"], live=live, store=store, now=NOW)
    panel = build_panel("vehicles", data, "en", [])
    stored = store.read_pings(NOW - pd.Timedelta(hours=2), NOW + pd.Timedelta(seconds=1), [vehicle["id"]])
    (chart,) = [n for n in _all(panel) if type(n).__name__ == "Graph"]
    np.testing.assert_array_equal(np.asarray(chart.figure.data[0].y), stored["speed_kmh"].to_numpy())
    assert len(stored) == 120  # 2 h of 30 s reports, all inside the window
    (title,) = [n for n in panel if type(n).__name__ == "H2"]
    assert title.children == vehicle["plate"]  # the panel's own title without an attribute head
    assert _field(panel, "Speed") == f"{batch.speed_kmh[-1]:g} km/h"
    carrier = _field(panel, "Carrier")
    assert carrier.id["layer"] == "entities" and carrier.id["id"] == vehicle["carrier_id"]
    incidents = [n for n in _all(panel) if type(n).__name__ == "Table" and "hz-panel-incidents" in n.className]
    assert len(incidents) == 1 and data["incidents"]["subject_id"].tolist() == [vehicle["id"]]
    if data["waybill"] is not None:  # the planned route goes to the map
        assert len(_focus(panel)["route"]) == len(shapely.get_coordinates(data["waybill"].geometry))


def test_the_hazard_source_panel_works_out_r_and_grade_as_gb18218_does(world):
    live = LiveState()
    for source in world.hazard_sources.head(5).itertuples():
        data = drilldown.hazard_source(world, source.id, live=live, now=NOW)
        expected = grade_sources(world.hazard_sources[world.hazard_sources["id"] == source.id],
                                 world.hazard_source_chemicals[world.hazard_source_chemicals["hazard_source_id"]
                                                               == source.id], world.chemicals).iloc[0]
        assert data["r_value"] == pytest.approx(expected["r_value"])
        assert data["grade"] == expected["grade"] == source.grade
        panel = build_panel("hazard_sources", data, "zh", [])
        assert _field(panel, "R = α·Σ β·q/Q") == f"{expected['r_value']:.2f}"
        chemicals = [n for n in _all(panel) if type(n).__name__ == "Table" and n.className == "hz-panel-children"]
        assert len(chemicals[0].children[1].children) == len(data["chemicals"])


def test_the_hazard_source_panel_lists_the_loaded_trucks_inside_its_protective_distance(world):
    source = world.hazard_sources.iloc[0]
    loaded = drilldown.loaded_waybills(world, NOW)
    assert len(loaded)
    vehicle_ids = loaded["vehicle_id"].unique()[:2]
    live = LiveState()  # two loaded trucks at the source's gate, the rest far away
    live.apply_pings(PingBatch.from_arrays(
        vehicle_ids, np.full(2, NOW.value // 1_000_000), np.full(2, source.geometry.x + 0.0005),
        np.full(2, source.geometry.y)))
    data = drilldown.hazard_source(world, source["id"], live=live, now=NOW)
    assert sorted(data["impact"].trucks["id"]) == sorted(vehicle_ids)
    panel = build_panel("hazard_sources", data, "en", [])
    linked = {n.id["id"] for n in _by_id_type(panel, LINK_TYPE) if n.id["layer"] == "vehicles"}
    assert linked == set(vehicle_ids)
    assert [c["kind"] for c in _focus(panel)["circles"]] == ["isolation", "protective"]


def test_the_point_panel_charts_its_stored_readings_against_its_levels(world, store):
    point = world.monitoring_points.dropna(subset=["high", "high_high"]).iloc[0]
    ms = np.int64(NOW.value // 1_000_000) - np.arange(50)[::-1].astype("int64") * 60_000
    store.write_readings(ReadingBatch.from_arrays(np.full(50, point["id"], dtype=object), ms,
                                                  np.linspace(0, point["high_high"] * 1.1, 50)))
    data = drilldown.monitoring_point(world, point["id"], store=store, now=NOW, window="1h")
    panel = build_panel("monitoring_points", data, "en", [])
    (chart,) = [n for n in _all(panel) if type(n).__name__ == "Graph"]
    assert len(chart.figure.data[0].y) == 50
    levels = {trace.name: trace.y[0] for trace in chart.figure.data[1:]}
    assert levels == {"Level 1 alarm": point["high"], "Level 2 alarm": point["high_high"]}
    with pytest.raises(ValueError, match="window"):
        drilldown.monitoring_point(world, point["id"], store=store, now=NOW, window="3d")


def test_the_sensitive_site_panel_finds_loaded_trucks_within_their_cargos_distance(world):
    site = world.sensitive_sites.iloc[0]
    loaded = drilldown.loaded_waybills(world, NOW).drop_duplicates("vehicle_id")
    goods = world.waybill_goods.groupby("waybill_id")["un_number"].agg(list)
    reach = np.array([drilldown.erg_distances(goods.get(w, []), world.chemicals, False).protective_m
                      for w in loaded["id"]])
    loaded = loaded[np.isfinite(reach)]  # a cargo with an ERG distance
    near, far = loaded["vehicle_id"].iloc[0], loaded["vehicle_id"].iloc[1]
    centre = shapely.centroid(site.geometry)
    live = LiveState()
    live.apply_pings(PingBatch.from_arrays(np.array([near, far], dtype=object), np.full(2, NOW.value // 1_000_000),
                                           np.array([centre.x, centre.x + 0.5]), np.array([centre.y, centre.y])))
    data = drilldown.sensitive_site(world, site["id"], live=live, now=NOW)
    trucks = data["trucks"]["id"].tolist()
    assert near in trucks  # standing on the site
    assert far not in trucks  # 50 km away


def test_every_kind_builds_in_both_languages_with_links_a_focus_and_the_back_stack(world):
    assert set(drilldown.KINDS) | {"incidents"} == set(KINDS)
    for layer in drilldown.KINDS:
        feature_id = str(world.table(layer)["id"].iloc[0])
        data = drilldown.gather(world, layer, feature_id, live=LiveState(), now=NOW)
        for language in ("zh", "en"):
            panel = build_panel(layer, data, language, [["entities", "ENT-000009"]])
            (history,) = _by_id_type(panel, HISTORY_TYPE)
            assert history.data == [["entities", "ENT-000009"], [layer, feature_id]]
            back = [n for n in _by_id_type(panel, LINK_TYPE) if n.id["n"] == BACK_N]
            assert [(b.id["layer"], b.id["id"]) for b in back] == [("entities", "ENT-000009")]
            ns = [n.id["n"] for n in _by_id_type(panel, LINK_TYPE)]
            assert len(ns) == len(set(ns))  # each link's id is unique in the panel
    with pytest.raises(LookupError):
        drilldown.gather(world, "vehicles", "VEH-NOPE", now=NOW)


def test_the_back_button_returns_along_the_history():
    shown = [["vehicles", "VEH-1"], ["entities", "ENT-1"], ["hazard_sources", "HS-1"]]  # HS-1 is shown
    assert next_history(shown, "entities", "ENT-1", back=True) == [["vehicles", "VEH-1"]]
    assert next_history(shown, "monitoring_points", "MP-1", back=False) == shown
    assert next_history([], "vehicles", "VEH-1", back=True) == []
    assert next_history(shown, "hazard_sources", "HS-1", back=False) == shown[:-1]  # opened again: no loop


def test_an_attribute_head_replaces_the_panels_own_kind_and_title(world):
    from dash import html

    data = drilldown.gather(world, "entities", str(world.entities["id"].iloc[0]), now=NOW)
    head = [html.Div("kind", className="hz-panel-layer"), html.H2("title", className="hz-panel-title"),
            html.Table(className="hz-panel-fields")]
    panel = build_panel("entities", data, "zh", [["vehicles", "VEH-000001"]], head)
    assert panel[0].className == "hz-panel-back" and panel[1:4] == head
    assert [n for n in panel if getattr(n, "className", None) == "hz-panel-title"] == [head[1]]


def test_the_incident_panel_shows_recipients_history_and_only_the_allowed_actions(world, store):
    from data.incidents import IncidentStore

    vehicle = world.vehicles.iloc[0]
    store.replace_world(world)
    incidents = IncidentStore(store, world)
    incidents.apply_events([ev("open", 0, subject=vehicle["id"], rule="speeding", severity=1)])
    (incident_id,) = incidents.list()["id"]
    data = drilldown.gather(world, "incidents", incident_id, store=store, now=NOW)
    shown = incidents.show(incident_id)
    every = ("sign", "dispose", "close", "supervise", "text")
    assert len([n for n in _all(build_panel("incidents", data, "zh", [], actions=every))
                if type(n).__name__ == "Button"]) == len(every)
    panel = build_panel("incidents", data, "en", [["vehicles", vehicle["id"]]], actions=("sign", "text"))
    nodes = _all(panel)
    buttons = [n for n in nodes if type(n).__name__ == "Button"]
    assert [b.to_plotly_json()["props"]["data-action"] for b in buttons] == ["sign", "text"]
    recipients = [n for n in nodes if type(n).__name__ == "Table" and "hz-incident-recipients" in n.className]
    assert len(recipients[0].children[1].children) == len(shown["recipients"]) > 0
    history = [n for n in nodes if type(n).__name__ == "Table" and "hz-incident-history" in n.className]
    assert len(history[0].children[1].children) == len(shown["history"])
    subject = _field(panel, "Subject")
    assert (subject.id["layer"], subject.id["id"]) == ("vehicles", vehicle["id"])
    read_only = build_panel("incidents", data, "en", [])
    assert not [n for n in _all(read_only) if type(n).__name__ == "Button"]
    with pytest.raises(LookupError):
        drilldown.gather(world, "incidents", "INC-NOPE", store=store, now=NOW)
    # the truck's panel links its incident
    truck = build_panel("vehicles", drilldown.truck(world, vehicle["id"], store=store, now=NOW), "en", [])
    assert incident_id in {n.id["id"] for n in _by_id_type(truck, LINK_TYPE) if n.id["layer"] == "incidents"}
