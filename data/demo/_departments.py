"""The demo's departments and incident routing table (plain World tables, see spatial.model).

The city names 15 departments (DOMAIN.md §1) without listing them: the 15 below are the usual
members of a Chinese city's hazardous-chemicals safety committee, not checked against Ningbo's
roster. Each district gets a district office (its emergency management bureau). Phones and
mailboxes are made up (the .example domain).

The routing table is the demo's reading of who acts on what: every truck incident reaches its
carrier and the district office of where it happened, every point incident the plant and the
district office; each rule adds the departments whose duty it touches, and red incidents
(severity 1) always reach the city's emergency management.
"""

from __future__ import annotations

import pandas as pd

from spatial.model import PLAIN_SPECS

# kind: (id suffix, Chinese name, English name)
CITY_DEPARTMENTS: dict[str, tuple[str, str, str]] = {
    "emergency_management": ("EM", "宁波市应急管理局", "Ningbo Emergency Management Bureau"),
    "traffic_police": ("TP", "宁波市公安局交通警察局", "Ningbo Traffic Police"),
    "public_security": ("PS", "宁波市公安局", "Ningbo Public Security Bureau"),
    "transport": ("TR", "宁波市交通运输局", "Ningbo Transport Bureau"),
    "ecology_environment": ("EE", "宁波市生态环境局", "Ningbo Ecology and Environment Bureau"),
    "market_supervision": ("MS", "宁波市市场监督管理局", "Ningbo Market Supervision Administration"),
    "fire_rescue": ("FR", "宁波市消防救援支队", "Ningbo Fire and Rescue Detachment"),
    "housing_construction": ("HC", "宁波市住房和城乡建设局", "Ningbo Housing and Urban-Rural Development Bureau"),
    "economy_information": ("EI", "宁波市经济和信息化局", "Ningbo Economy and Information Technology Bureau"),
    "commerce": ("CO", "宁波市商务局", "Ningbo Commerce Bureau"),
    "health": ("HE", "宁波市卫生健康委员会", "Ningbo Health Commission"),
    "maritime": ("MA", "宁波海事局", "Ningbo Maritime Safety Administration"),
    "port": ("PO", "宁波市港航管理中心", "Ningbo Port and Shipping Administration"),
    "natural_resources": ("NR", "宁波市自然资源和规划局", "Ningbo Natural Resources and Planning Bureau"),
    "urban_management": ("UM", "宁波市综合行政执法局", "Ningbo Urban Management and Law Enforcement Bureau"),
}

# (rule or "*", subject kind, role, max severity or None); ids follow this order.
VEHICLE_RULES_DEPARTMENTS: dict[str, tuple[str, ...]] = {
    "route_deviation": ("traffic_police", "transport"),
    "speeding": ("traffic_police", "transport"),
    "stop_near_sensitive_site": ("traffic_police", "transport", "emergency_management"),
    "illegal_parking": ("traffic_police", "transport"),
    "suspected_washing": ("transport", "ecology_environment"),
    "media_change_unwashed": ("transport", "market_supervision"),
    "restricted_zone": ("traffic_police", "transport", "ecology_environment"),
    "fatigue": ("traffic_police", "transport"),
    "offline": ("transport",),
    "terminal_alarm": ("traffic_police", "transport"),
    "mixed_loading": ("traffic_police", "transport", "emergency_management"),
    "unapproved_medium": ("transport", "market_supervision"),
}
POINT_RULES_DEPARTMENTS: dict[str, tuple[str, ...]] = {
    "point_level": ("emergency_management",),
    "point_rate": ("emergency_management",),
    "point_stuck": (),  # instrument faults: the plant and the district office see to them
    "point_range": (),
    "point_interruption": (),
}


def routing_rows() -> list[tuple[str, str, str, int | None]]:
    rows: list[tuple[str, str, str, int | None]] = [
        ("*", "vehicle", "carrier", None),
        ("*", "vehicle", "district_office", None),
        ("*", "vehicle", "emergency_management", 1),
        ("*", "monitoring_point", "plant", None),
        ("*", "monitoring_point", "district_office", None),
        ("*", "monitoring_point", "emergency_management", 1),
        ("point_level", "monitoring_point", "fire_rescue", 1),
    ]
    for subject, table in (("vehicle", VEHICLE_RULES_DEPARTMENTS), ("monitoring_point", POINT_RULES_DEPARTMENTS)):
        rows += [(rule, subject, kind, None) for rule, kinds in table.items() for kind in kinds]
    return rows


def build_departments(districts: pd.DataFrame) -> pd.DataFrame:
    """The 15 city departments, then one district office per district (DEPT-<adcode>)."""
    rows = []
    for n, (kind, (suffix, name, name_en)) in enumerate(CITY_DEPARTMENTS.items()):
        rows.append({"id": f"DEPT-{suffix}", "name": name, "name_en": name_en, "kind": kind,
                     "district_adcode": None, "contact": "值班室", "phone": f"0574-8918{n:04d}",
                     "email": f"duty-{suffix.lower()}@nb-safety.example"})
    for n, district in enumerate(districts.sort_values("adcode").itertuples(index=False)):
        rows.append({"id": f"DEPT-{district.adcode}", "name": f"{district.name}应急管理局",
                     "name_en": f"{district.name_en} emergency management (district office)",
                     "kind": "district_office", "district_adcode": district.adcode, "contact": "值班室",
                     "phone": f"0574-8928{n:04d}", "email": f"duty-{district.adcode}@nb-safety.example"})
    columns = PLAIN_SPECS["departments"].columns
    return pd.DataFrame(rows, columns=columns).astype(object)


def build_routing() -> pd.DataFrame:
    rows = routing_rows()
    frame = pd.DataFrame({
        "id": [f"RT-{i:03d}" for i in range(1, len(rows) + 1)],
        "rule": [r[0] for r in rows],
        "subject_kind": [r[1] for r in rows],
        "role": [r[2] for r in rows],
        "max_severity": pd.array([r[3] for r in rows], dtype="Int64"),
    })
    return frame[PLAIN_SPECS["routing"].columns]
