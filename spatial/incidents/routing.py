"""Who must act on an incident, and who is next up when a recipient does not sign (pure).

Routing is data: the World's `routing` table (spatial.model.PLAIN_SPECS; the exchange format's
routing.csv) maps a rule (or '*') and a subject kind, up to a severity, to roles; the World's
`departments` table says who holds each role. Roles:

- a department kind (traffic_police, transport, emergency_management, …): the city's department
  of that kind (district_adcode empty);
- `district_office`: the district office of the district the incident happened in (the World's
  district polygons); where the place is unknown or outside every district, the subject's home
  district (the carrier's or the plant's);
- `carrier`: the enterprise in the truck's `vehicles.carrier_id`;
- `plant`: the entity owning the point's hazard source.

Rows add up; each recipient gets an incident once (the first row naming it gives its role). An
incident no row reaches anybody with — no routing table, no carrier, an unknown subject — goes
to the city's emergency management department, so nothing is routed to nobody.

Escalation (an overdue recipient): an enterprise -> the district office of the incident's
district (the city's emergency management where there is none) -> the city's emergency
management, which has nobody above it; a city department -> the city's emergency management.

    recipients_for(incidents, world) -> DataFrame[RECIPIENT_COLUMNS]
        incidents: DataFrame[incident_id, rule, subject_id, subject_kind?, lon, lat, level]
        (level: severity 1 red ... 4 blue; subject_kind from the id prefix when absent)
    escalation_target(recipients, world) -> DataFrame[ESCALATION_COLUMNS]
        one row per input row that has somebody above it (the input's index kept).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from spatial.model import PLAIN_SPECS, World

# The city's emergency management department when the World names none (no departments table).
CITY_EMERGENCY_ID = "DEPT-EM"
CITY_EMERGENCY_KIND = "emergency_management"
RECIPIENT_COLUMNS = ["incident_id", "recipient_kind", "recipient_id", "role", "district_adcode"]
ESCALATION_COLUMNS = ["incident_id", "from_recipient_id", "recipient_kind", "recipient_id", "role",
                      "district_adcode"]
ENTERPRISE_ROLES = ("carrier", "plant")
_SUBJECT_PREFIXES = {"VEH-": "vehicle", "MP-": "monitoring_point"}


def recipients_for(incidents: pd.DataFrame, world: World | None) -> pd.DataFrame:
    """Every recipient of every incident (see the module docstring), in incident order then
    routing-row order."""
    missing = [c for c in ("incident_id", "rule", "subject_id", "lon", "lat", "level") if c not in incidents.columns]
    if missing:
        raise ValueError(f"recipients_for: incidents lack column(s) {', '.join(missing)}")
    n = len(incidents)
    inc = pd.DataFrame({
        "_i": np.arange(n),
        "incident_id": incidents["incident_id"].astype(str).to_numpy(),
        "rule": incidents["rule"].astype(str).to_numpy(),
        "subject_id": incidents["subject_id"].astype(str).to_numpy(),
        "subject_kind": (incidents["subject_kind"].astype(str).to_numpy() if "subject_kind" in incidents.columns
                         else _subject_kinds(incidents["subject_id"])),
        "severity": pd.to_numeric(incidents["level"], errors="raise").to_numpy(dtype="int64"),
    })
    departments = _departments(world)
    city_em = _city_emergency_id(departments)
    home, enterprise = _home(inc, world)
    inc["enterprise_id"] = enterprise
    inc["district_adcode"] = _districts_at(incidents["lon"].to_numpy(dtype="float64"),
                                           incidents["lat"].to_numpy(dtype="float64"), world, home)

    routing = _routing(world)
    exact = inc.merge(routing[routing["rule"] != "*"], on=["rule", "subject_kind"])
    wildcard = inc.merge(routing[routing["rule"] == "*"].drop(columns="rule"), on="subject_kind")
    hits = pd.concat([exact, wildcard], ignore_index=True)
    hits = hits[hits["max_severity"].isna().to_numpy() | (hits["severity"].to_numpy() <=
                                                         hits["max_severity"].fillna(4).to_numpy(dtype="int64"))]

    role = hits["role"].to_numpy(dtype=object)
    recipient = np.full(len(hits), None, dtype=object)
    is_enterprise = np.isin(role, ENTERPRISE_ROLES)
    fits = ((role == "carrier") & (hits["subject_kind"].to_numpy() == "vehicle")) | (
        (role == "plant") & (hits["subject_kind"].to_numpy() == "monitoring_point"))
    recipient[is_enterprise & fits] = hits["enterprise_id"].to_numpy(dtype=object)[is_enterprise & fits]
    offices = _district_offices(departments)
    is_office = role == "district_office"
    recipient[is_office] = pd.Series(hits["district_adcode"].to_numpy(dtype=object)[is_office]).map(offices).to_numpy()
    city = departments[departments["district_adcode"].isna()].drop_duplicates("kind").set_index("kind")["id"]
    is_city = ~is_enterprise & ~is_office
    recipient[is_city] = pd.Series(role[is_city]).map(city).to_numpy()

    out = pd.DataFrame({
        "_i": hits["_i"].to_numpy(), "_row": hits["row"].to_numpy(),
        "incident_id": hits["incident_id"].to_numpy(),
        "recipient_kind": np.where(is_enterprise, "enterprise", "department").astype(object),
        "recipient_id": recipient, "role": role, "district_adcode": hits["district_adcode"].to_numpy(dtype=object),
    })
    out = out[pd.notna(out["recipient_id"]).to_numpy()]
    # nothing is routed to nobody: the city's emergency management takes what no row reached
    unrouted = inc[~inc["_i"].isin(out["_i"])]
    fallback = pd.DataFrame({
        "_i": unrouted["_i"].to_numpy(), "_row": np.full(len(unrouted), -1),
        "incident_id": unrouted["incident_id"].to_numpy(), "recipient_kind": "department",
        "recipient_id": city_em, "role": CITY_EMERGENCY_KIND,
        "district_adcode": unrouted["district_adcode"].to_numpy(dtype=object),
    })
    out = pd.concat([out, fallback], ignore_index=True) if len(fallback) else out
    out = out.sort_values(["_i", "_row"], kind="stable").drop_duplicates(["incident_id", "recipient_id"])
    out = out[RECIPIENT_COLUMNS].reset_index(drop=True).astype(object)
    return out.where(out.notna(), None)


def escalation_target(recipients: pd.DataFrame, world: World | None) -> pd.DataFrame:
    """The next recipient up for each row (see the module docstring); rows with nobody above
    them are left out, the others keep their index."""
    missing = [c for c in ("incident_id", "recipient_kind", "recipient_id", "district_adcode")
               if c not in recipients.columns]
    if missing:
        raise ValueError(f"escalation_target: recipients lack column(s) {', '.join(missing)}")
    departments = _departments(world)
    city_em = _city_emergency_id(departments)
    offices = _district_offices(departments)
    kind = recipients["recipient_kind"].astype(str).to_numpy()
    who = recipients["recipient_id"].astype(str).to_numpy()
    adcode = recipients["district_adcode"].to_numpy(dtype=object)
    office = pd.Series(adcode, dtype=object).map(offices).to_numpy(dtype=object)
    to_office = (kind == "enterprise") & pd.notna(office)
    target = np.where(to_office, office, city_em).astype(object)
    role = np.where(to_office, "district_office", CITY_EMERGENCY_KIND).astype(object)
    keep = who != city_em
    out = pd.DataFrame({
        "incident_id": recipients["incident_id"].astype(str).to_numpy(), "from_recipient_id": who,
        "recipient_kind": "department", "recipient_id": target, "role": role, "district_adcode": adcode,
    }, index=recipients.index)
    out = out[keep][ESCALATION_COLUMNS].astype(object)
    return out.where(out.notna(), None)


# --- the World's tables as routing needs them -------------------------------------------------


def _subject_kinds(subject_ids) -> np.ndarray:
    ids = pd.Series(subject_ids, dtype=object).astype(str)
    out = np.full(len(ids), "other", dtype=object)
    for prefix, kind in _SUBJECT_PREFIXES.items():
        out[ids.str.startswith(prefix).to_numpy()] = kind
    return out


def _table(world: World | None, name: str) -> pd.DataFrame:
    table = None if world is None else getattr(world, name, None)
    if table is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PLAIN_SPECS[name].columns})
    return table


def _departments(world: World | None) -> pd.DataFrame:
    return _table(world, "departments").sort_values("id", kind="stable")


def _routing(world: World | None) -> pd.DataFrame:
    routing = _table(world, "routing").sort_values("id", kind="stable").reset_index(drop=True)
    return pd.DataFrame({
        "row": np.arange(len(routing)),
        "rule": routing["rule"].astype(str).to_numpy(),
        "subject_kind": routing["subject_kind"].astype(str).to_numpy(),
        "role": routing["role"].astype(str).to_numpy(),
        "max_severity": pd.to_numeric(routing["max_severity"]).astype("float64").to_numpy(),
    })


def _city_emergency_id(departments: pd.DataFrame) -> str:
    em = departments.loc[(departments["kind"] == CITY_EMERGENCY_KIND) & departments["district_adcode"].isna(), "id"]
    return str(em.iloc[0]) if len(em) else CITY_EMERGENCY_ID


def _district_offices(departments: pd.DataFrame) -> pd.Series:
    offices = departments[(departments["kind"] == "district_office") & departments["district_adcode"].notna()]
    return offices.drop_duplicates("district_adcode").set_index("district_adcode")["id"]


def _home(inc: pd.DataFrame, world: World | None) -> tuple[np.ndarray, np.ndarray]:
    """Per incident: the enterprise that must act (a truck's carrier, a point's plant) and its
    district (the home district where the place is unknown)."""
    n = len(inc)
    enterprise = np.full(n, None, dtype=object)
    if world is None:
        return np.full(n, None, dtype=object), enterprise
    subject = inc["subject_id"]
    vehicles = world.vehicles
    if "carrier_id" in vehicles.columns and len(vehicles):
        carrier = vehicles.set_index("id")["carrier_id"]
        is_vehicle = (inc["subject_kind"] == "vehicle").to_numpy()
        enterprise[is_vehicle] = subject[is_vehicle].map(carrier).to_numpy(dtype=object)
    if len(world.monitoring_points) and len(world.hazard_sources):
        plant = world.monitoring_points.set_index("id")["hazard_source_id"].map(
            world.hazard_sources.set_index("id")["entity_id"])
        is_point = (inc["subject_kind"] == "monitoring_point").to_numpy()
        enterprise[is_point] = subject[is_point].map(plant).to_numpy(dtype=object)
    enterprise = np.where(pd.isna(enterprise), None, enterprise).astype(object)
    home = pd.Series(enterprise, dtype=object).map(world.entities.set_index("id")["district_adcode"]) \
        if len(world.entities) else pd.Series([None] * n, dtype=object)
    return home.to_numpy(dtype=object), enterprise


def _districts_at(lon: np.ndarray, lat: np.ndarray, world: World | None, home: np.ndarray) -> np.ndarray:
    """The adcode of the district holding each position; `home` where it is unknown or outside."""
    out = np.asarray(home, dtype=object).copy()
    if world is None or not len(world.districts):
        return out
    known = np.isfinite(lon) & np.isfinite(lat)
    if not known.any():
        return out
    points = shapely.points(lon[known], lat[known])
    tree = shapely.STRtree(world.districts.geometry.to_numpy())
    point_index, district_index = tree.query(points, predicate="intersects")  # a border point: the first
    first = np.unique(point_index, return_index=True)[1]
    rows = np.flatnonzero(known)[point_index[first]]
    out[rows] = world.districts["adcode"].to_numpy(dtype=object)[district_index[first]]
    return out
