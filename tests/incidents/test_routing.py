"""Routing (spatial/incidents/routing.py) over the demo's departments and routing table, on a
small hand-made World: who gets which incident, and who is next up when nobody signs."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import MultiPolygon, Point, Polygon

from app.live import NOT_ALERTS
from data.demo._departments import build_departments, build_routing
from spatial.incidents.routing import ESCALATION_COLUMNS, RECIPIENT_COLUMNS, escalation_target, recipients_for
from spatial.model import World
from spatial.rules.engine import Engine
from spatial.rules.points import PointEngine

HAISHU, ZHENHAI = "330203", "330211"
IN_HAISHU, IN_ZHENHAI, OUTSIDE = (121.55, 29.85), (121.65, 29.95), (120.0, 31.0)


def _square(lon: float, lat: float, size: float = 0.1) -> MultiPolygon:
    return MultiPolygon([Polygon([(lon, lat), (lon + size, lat), (lon + size, lat + size), (lon, lat + size)])])


def _layer(rows: list[dict]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs="EPSG:4326")


def small_world() -> World:
    """Two districts; carrier ENT-C (Zhenhai) runs VEH-1, VEH-2 has no carrier; plant ENT-P
    (Haishu) owns HS-1 with point MP-1; the demo's departments and routing."""
    world = World.empty()
    world.districts = _layer([
        {"id": f"DIST-{HAISHU}", "adcode": HAISHU, "name": "海曙区", "name_en": "Haishu",
         "geometry": _square(121.5, 29.8)},
        {"id": f"DIST-{ZHENHAI}", "adcode": ZHENHAI, "name": "镇海区", "name_en": "Zhenhai",
         "geometry": _square(121.6, 29.9)},
    ])
    world.entities = _layer([
        {"id": "ENT-C", "name": "甬运危运", "licensed": True, "category": "transport", "district_adcode": ZHENHAI,
         "park_id": None, "geometry": Point(121.61, 29.91)},
        {"id": "ENT-P", "name": "海曙化工", "licensed": True, "category": "production", "district_adcode": HAISHU,
         "park_id": None, "geometry": Point(121.51, 29.81)},
    ])
    world.hazard_sources = _layer([
        {"id": "HS-1", "entity_id": "ENT-P", "name": "储罐区", "people_500m": 10, "alpha": 1.0, "s_value": 2.0,
         "r_value": 2.0, "grade": 4, "geometry": Point(121.51, 29.81)},
    ])
    world.monitoring_points = _layer([
        {"id": "MP-1", "hazard_source_id": "HS-1", "kind": "level", "unit": "m", "range_min": 0.0,
         "range_max": 10.0, "geometry": Point(121.51, 29.81)},
    ])
    world.vehicles = _layer([
        {"id": f"VEH-{n}", "plate": f"浙B0000{n}", "carrier": "甬运危运", "body": "tank", "approved_media": [],
         "terminal_phone": f"01390000000{n}", "driver": "张三", "escort": "李四", "carrier_id": carrier,
         "geometry": Point(121.61, 29.91)}
        for n, carrier in ((1, "ENT-C"), (2, None))
    ])
    world.departments = build_departments(world.districts)
    world.routing = build_routing()
    return world


WORLD = small_world()
TRUCK_ROLES = {"DEPT-TP": "traffic_police", "DEPT-TR": "transport", "ENT-C": "carrier"}

# (case, rule, subject, position, severity) -> {recipient: role}
CASES = [
    ("a truck's incident: traffic police, transport, the district office of the place, the carrier",
     "speeding", "VEH-1", IN_HAISHU, 3, {**TRUCK_ROLES, f"DEPT-{HAISHU}": "district_office"}),
    ("red also reaches the city's emergency management",
     "speeding", "VEH-1", IN_HAISHU, 1,
     {**TRUCK_ROLES, f"DEPT-{HAISHU}": "district_office", "DEPT-EM": "emergency_management"}),
    ("the district is where it happened, not the carrier's home",
     "route_deviation", "VEH-1", IN_ZHENHAI, 2, {**TRUCK_ROLES, f"DEPT-{ZHENHAI}": "district_office"}),
    ("place unknown: the carrier's home district",
     "speeding", "VEH-1", (np.nan, np.nan), 3, {**TRUCK_ROLES, f"DEPT-{ZHENHAI}": "district_office"}),
    ("outside every district: the carrier's home district",
     "speeding", "VEH-1", OUTSIDE, 3, {**TRUCK_ROLES, f"DEPT-{ZHENHAI}": "district_office"}),
    ("a truck without a carrier: the departments only",
     "speeding", "VEH-2", IN_HAISHU, 3,
     {"DEPT-TP": "traffic_police", "DEPT-TR": "transport", f"DEPT-{HAISHU}": "district_office"}),
    ("washing adds ecology and environment, not the traffic police",
     "suspected_washing", "VEH-1", IN_HAISHU, 3,
     {"DEPT-TR": "transport", "DEPT-EE": "ecology_environment", "ENT-C": "carrier",
      f"DEPT-{HAISHU}": "district_office"}),
    ("a point alarm: emergency management, the district office and the plant",
     "point_level", "MP-1", IN_HAISHU, 2,
     {"DEPT-EM": "emergency_management", f"DEPT-{HAISHU}": "district_office", "ENT-P": "plant"}),
    ("a red point alarm also reaches fire and rescue; emergency management once",
     "point_level", "MP-1", IN_HAISHU, 1,
     {"DEPT-EM": "emergency_management", f"DEPT-{HAISHU}": "district_office", "ENT-P": "plant",
      "DEPT-FR": "fire_rescue"}),
    ("an instrument fault: the plant and the district office",
     "point_stuck", "MP-1", IN_HAISHU, 3, {f"DEPT-{HAISHU}": "district_office", "ENT-P": "plant"}),
    ("a rule without its own rows: the '*' rows",
     "new_rule", "VEH-1", IN_HAISHU, 3, {"ENT-C": "carrier", f"DEPT-{HAISHU}": "district_office"}),
    ("nobody reached: the city's emergency management",
     "speeding", "BOAT-1", OUTSIDE, 3, {"DEPT-EM": "emergency_management"}),
]


def _incidents(cases) -> pd.DataFrame:
    return pd.DataFrame({
        "incident_id": [f"INC-{i}" for i in range(len(cases))],
        "rule": [c[1] for c in cases], "subject_id": [c[2] for c in cases],
        "subject_kind": [{"VEH": "vehicle", "MP": "monitoring_point"}.get(c[2].split("-")[0], "other") for c in cases],
        "lon": [c[3][0] for c in cases], "lat": [c[3][1] for c in cases], "level": [c[4] for c in cases],
    })


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_recipients_of_one_incident(case):
    got = recipients_for(_incidents([case]), WORLD)
    assert list(got.columns) == RECIPIENT_COLUMNS
    assert dict(zip(got["recipient_id"], got["role"])) == case[5]
    assert got["recipient_id"].is_unique
    enterprises = got["recipient_id"].str.startswith("ENT-")
    assert (got["recipient_kind"] == np.where(enterprises, "enterprise", "department")).all()


def test_all_incidents_at_once_give_the_same_rows_as_one_by_one():
    together = recipients_for(_incidents(CASES), WORLD)
    one_by_one = pd.concat([recipients_for(_incidents([c]), WORLD).assign(incident_id=np.array([f"INC-{i}"], dtype=object)[0])
                            for i, c in enumerate(CASES)], ignore_index=True)
    pd.testing.assert_frame_equal(together, one_by_one.astype(object))
    district = together.drop_duplicates("incident_id").set_index("incident_id")["district_adcode"]
    assert district.tolist() == [HAISHU, HAISHU, ZHENHAI, ZHENHAI, ZHENHAI, HAISHU, HAISHU, HAISHU, HAISHU,
                                 HAISHU, HAISHU, None]


def test_without_a_world_everything_goes_to_the_city():
    got = recipients_for(_incidents(CASES[:2]), None)
    assert got["recipient_id"].tolist() == ["DEPT-EM", "DEPT-EM"]
    assert escalation_target(got, None).empty


def test_subject_kind_comes_from_the_id_when_not_given():
    incidents = _incidents(CASES[:1]).drop(columns="subject_kind")
    assert dict(zip(*recipients_for(incidents, WORLD)[["recipient_id", "role"]].T.to_numpy())) == CASES[0][5]


ESCALATIONS = [
    # (recipient kind, recipient, district of the incident) -> (next up, role) or None
    ("enterprise", "ENT-C", HAISHU, (f"DEPT-{HAISHU}", "district_office")),
    ("enterprise", "ENT-P", ZHENHAI, (f"DEPT-{ZHENHAI}", "district_office")),
    ("enterprise", "ENT-C", None, ("DEPT-EM", "emergency_management")),
    ("enterprise", "ENT-C", "339999", ("DEPT-EM", "emergency_management")),
    ("department", f"DEPT-{HAISHU}", HAISHU, ("DEPT-EM", "emergency_management")),
    ("department", "DEPT-TP", HAISHU, ("DEPT-EM", "emergency_management")),
    ("department", "DEPT-EM", HAISHU, None),
]


def test_escalation_goes_enterprise_district_city_and_stops_there():
    rows = pd.DataFrame({
        "incident_id": [f"INC-{i}" for i in range(len(ESCALATIONS))],
        "recipient_kind": [e[0] for e in ESCALATIONS], "recipient_id": [e[1] for e in ESCALATIONS],
        "role": "whatever", "district_adcode": np.array([e[2] for e in ESCALATIONS], dtype=object),
    }, index=pd.RangeIndex(10, 10 + len(ESCALATIONS)))
    got = escalation_target(rows, WORLD)
    assert list(got.columns) == ESCALATION_COLUMNS
    expected = {10 + i: e[3] for i, e in enumerate(ESCALATIONS) if e[3] is not None}
    assert {i: (r.recipient_id, r.role) for i, r in got.iterrows()} == expected
    assert (got["from_recipient_id"] == rows.loc[got.index, "recipient_id"]).all()
    assert (got["recipient_kind"] == "department").all()


def test_an_escalated_recipient_escalates_further_up_to_the_top():
    """Three tiers, as the IncidentStore climbs them: carrier -> district office -> city -> nobody."""
    first = recipients_for(_incidents(CASES[:1]), WORLD)
    carrier = first[first["recipient_id"] == "ENT-C"]
    chain = []
    rows = carrier
    while len(rows):
        rows = escalation_target(rows, WORLD)
        chain += rows["recipient_id"].tolist()
    assert chain == [f"DEPT-{HAISHU}", "DEPT-EM"]


def test_the_demo_routes_every_rule_the_engines_can_raise():
    """Each rule the vehicle and point engines run (the stop stage is not an alert) has rows of
    its own, and its incidents reach a department and the enterprise that must act."""
    vehicle_rules = [r.name for r in Engine(World.empty()).rules if r.name not in NOT_ALERTS]
    point_rules = [r.name for r in PointEngine(World.empty()).rules]
    routing = WORLD.routing
    for rules, kind in ((vehicle_rules, "vehicle"), (point_rules, "monitoring_point")):
        named = set(routing.loc[routing["subject_kind"] == kind, "rule"])
        # instrument faults have no rows of their own: the '*' rows (plant, district office) take them
        assert set(rules) - named == ({"point_stuck", "point_range", "point_interruption"} if kind != "vehicle"
                                      else set())
        assert "*" in named
    cases = [(r, r, "VEH-1", IN_HAISHU, 4, None) for r in vehicle_rules] + \
            [(r, r, "MP-1", IN_HAISHU, 4, None) for r in point_rules]
    got = recipients_for(_incidents(cases), WORLD)
    assert not got.duplicated(["incident_id", "recipient_id"]).any()
    per_incident = got.groupby("incident_id")
    assert per_incident.ngroups == len(cases)
    assert (per_incident["recipient_kind"].agg(set) == {"department", "enterprise"}).all()
    enterprise = got[got["recipient_kind"] == "enterprise"].set_index("incident_id")["recipient_id"]
    assert enterprise.tolist() == ["ENT-C"] * len(vehicle_rules) + ["ENT-P"] * len(point_rules)
    city_roles = ~got["role"].isin(["district_office", "carrier", "plant"])
    reached_city = got[city_roles].groupby("incident_id").size()
    truck_ids = [f"INC-{i}" for i in range(len(vehicle_rules))]
    assert reached_city.reindex(truck_ids).notna().all()  # every truck rule names a city department


def test_rows_naming_one_role_twice_reach_it_once():
    """A rule row and a '*' row for the same department, with and without a severity bound."""
    world = small_world()
    extra = pd.DataFrame({"id": ["RT-000a", "RT-999"], "rule": ["speeding", "*"], "subject_kind": "vehicle",
                          "role": ["emergency_management", "traffic_police"],
                          "max_severity": pd.array([2, None], dtype="Int64")})
    world.routing = pd.concat([world.routing, extra], ignore_index=True)
    cases = [("", "speeding", "VEH-1", IN_HAISHU, severity, None) for severity in (1, 2, 3)]
    got = recipients_for(_incidents(cases), world)
    assert not got.duplicated(["incident_id", "recipient_id"]).any()
    reached = got.groupby("incident_id")["recipient_id"].agg(set)
    assert reached["INC-0"] == reached["INC-1"] == {*TRUCK_ROLES, f"DEPT-{HAISHU}", "DEPT-EM"}
    assert reached["INC-2"] == {*TRUCK_ROLES, f"DEPT-{HAISHU}"}


def test_no_incidents_no_rows_and_missing_columns_are_named():
    empty = recipients_for(_incidents([]), WORLD)
    assert empty.empty and list(empty.columns) == RECIPIENT_COLUMNS
    assert escalation_target(empty, WORLD).empty
    with pytest.raises(ValueError, match="level"):
        recipients_for(_incidents(CASES[:1]).drop(columns="level"), WORLD)
