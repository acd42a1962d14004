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

    recipients_for(incidents, world or prepare_routing(world)) -> DataFrame[RECIPIENT_COLUMNS]
        incidents: DataFrame[incident_id, rule, subject_id, subject_kind?, lon, lat, level]
        (level: severity 1 red ... 4 blue; subject_kind from the id prefix when absent)
    escalation_target(recipients, world) -> DataFrame[ESCALATION_COLUMNS]
        one row per input row that has somebody above it (the input's index kept).
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class PreparedRouting:
    """What routing reads of a World, indexed once (prepare_routing): a batch's routing then costs
    its incidents, not the world's tables (~30 ms a call at the city's scale before)."""

    world: World | None
    departments: pd.DataFrame
    routing: pd.DataFrame
    city_em: str
    offices: pd.Series  # district adcode -> its district office
    city: pd.Series  # department kind -> the city's department of that kind
    vehicle_index: pd.Index
    carrier: np.ndarray  # per vehicle, None appended (a -1 lookup)
    point_index: pd.Index
    plant: np.ndarray  # per monitoring point, None appended
    entity_index: pd.Index
    entity_district: np.ndarray  # per entity, None appended


def prepare_routing(world: World | None) -> PreparedRouting:
    departments = _departments(world)
    vehicles = world.vehicles if world is not None else pd.DataFrame({"id": []})
    points = world.monitoring_points if world is not None else pd.DataFrame({"id": []})
    entities = world.entities if world is not None else pd.DataFrame({"id": [], "district_adcode": []})
    carrier = vehicles["carrier_id"].to_numpy(dtype=object) if "carrier_id" in vehicles.columns \
        else np.full(len(vehicles), None, dtype=object)
    if world is not None and len(points) and len(world.hazard_sources):
        plant = points["hazard_source_id"].map(world.hazard_sources.set_index("id")["entity_id"]).to_numpy(dtype=object)
    else:
        plant = np.full(len(points), None, dtype=object)
    return PreparedRouting(
        world=world, departments=departments, routing=_routing(world), city_em=_city_emergency_id(departments),
        offices=_district_offices(departments),
        city=departments[departments["district_adcode"].isna()].drop_duplicates("kind").set_index("kind")["id"],
        vehicle_index=pd.Index(vehicles["id"].to_numpy(dtype=object)), carrier=np.append(carrier, None),
        point_index=pd.Index(points["id"].to_numpy(dtype=object)), plant=np.append(plant, None),
        entity_index=pd.Index(entities["id"].to_numpy(dtype=object)),
        entity_district=np.append(entities["district_adcode"].to_numpy(dtype=object), None))


def recipients_for(incidents: pd.DataFrame, world: World | PreparedRouting | None) -> pd.DataFrame:
    """Every recipient of every incident (see the module docstring), in incident order then
    routing-row order. Works on integer codes: the routing rows matching each distinct (rule,
    subject kind, severity) are found once, then every incident's rows are gathered with numpy.
    `world`: a World, or the same prepared once (prepare_routing) by a caller routing often."""
    missing = [c for c in ("incident_id", "rule", "subject_id", "lon", "lat", "level") if c not in incidents.columns]
    if missing:
        raise ValueError(f"recipients_for: incidents lack column(s) {', '.join(missing)}")
    prepared = world if isinstance(world, PreparedRouting) else prepare_routing(world)
    world = prepared.world
    n = len(incidents)
    incident_ids = incidents["incident_id"].to_numpy(dtype=object)
    subject_ids = incidents["subject_id"].to_numpy(dtype=object)
    subject_kind = (incidents["subject_kind"].to_numpy(dtype=object) if "subject_kind" in incidents.columns
                    else _subject_kinds(subject_ids))
    severity = pd.to_numeric(incidents["level"], errors="raise").to_numpy(dtype="int64")
    city_em = prepared.city_em
    home, enterprise = _home(subject_ids, subject_kind, prepared)
    district = _districts_at(incidents["lon"].to_numpy(dtype="float64"),
                             incidents["lat"].to_numpy(dtype="float64"), world, home)

    # The rows of each distinct (rule, subject kind, severity), in routing-id order, the first per
    # role: different roles never resolve to one recipient (one department per city kind, district
    # offices apart, enterprises apart), so each recipient comes once without a dedupe over rows.
    routing = prepared.routing
    rule_codes, rules = pd.factorize(pd.Series(incidents["rule"].to_numpy(dtype=object), dtype=object))
    kind_codes, kinds = pd.factorize(pd.Series(subject_kind, dtype=object))
    n_kinds = max(len(kinds), 1)
    level = np.clip(severity, 0, 5)  # below 1 passes every bound, above 4 none: lumped exactly
    combo_of, combos = pd.factorize((rule_codes.astype("int64") * n_kinds + kind_codes) * 6 + level)
    table_rule, table_kind = routing["rule"].to_numpy(), routing["subject_kind"].to_numpy()
    table_max, table_role = routing["max_severity"].to_numpy(), routing["role"].to_numpy()
    matched = []
    for c in np.asarray(combos).tolist():  # a few dozen distinct cases, not incidents
        pair, sev = divmod(c, 6)
        rule, kind = rules[pair // n_kinds], kinds[pair % n_kinds]
        hit = (table_kind == kind) & ((table_rule == rule) | (table_rule == "*")) \
            & (np.isnan(table_max) | (sev <= table_max))
        rows = np.flatnonzero(hit)
        matched.append(rows[np.unique(table_role[rows], return_index=True)[1]] if len(rows) else rows)
    matched = [np.sort(m) for m in matched]
    sizes = np.array([len(m) for m in matched], dtype="int64")
    flat = np.concatenate(matched) if matched else np.array([], dtype="int64")
    starts = np.cumsum(sizes) - sizes
    count = sizes[combo_of] if n else np.array([], dtype="int64")
    inc = np.repeat(np.arange(n), count)
    within = np.arange(len(inc)) - np.repeat(np.cumsum(count) - count, count)
    row = flat[np.repeat(starts[combo_of], count) + within] if len(inc) else np.array([], dtype="int64")

    # who holds each role: the subject's enterprise, the place's district office, a city department
    role = routing["role"].to_numpy(dtype=object)
    offices = prepared.offices
    at = offices.index.get_indexer(district) if len(offices) else np.full(n, -1)
    office_of = np.append(offices.to_numpy(dtype=object), None)[at]
    city = prepared.city
    at = city.index.get_indexer(role) if len(city) else np.full(len(role), -1)
    city_of_row = np.append(city.to_numpy(dtype=object), None)[at]
    is_enterprise_row = np.isin(role, ENTERPRISE_ROLES)
    fits = np.where(role == "carrier", "vehicle", np.where(role == "plant", "monitoring_point", None))
    recipient = np.where(role[row] == "district_office", office_of[inc], city_of_row[row]).astype(object)
    on_enterprise = is_enterprise_row[row]
    recipient[on_enterprise] = np.where(subject_kind[inc[on_enterprise]] == fits[row[on_enterprise]],
                                        enterprise[inc[on_enterprise]], None)
    found = pd.notna(recipient)
    inc, row, recipient = inc[found], row[found], recipient[found]
    kind = np.where(is_enterprise_row[row], "enterprise", "department").astype(object)
    row_role = role[row]

    # nothing is routed to nobody: the city's emergency management takes what no row reached
    unrouted = np.flatnonzero(np.bincount(inc, minlength=n) == 0)
    if len(unrouted):
        inc = np.concatenate([inc, unrouted])
        recipient = np.concatenate([recipient, np.full(len(unrouted), city_em, dtype=object)])
        kind = np.concatenate([kind, np.full(len(unrouted), "department", dtype=object)])
        row_role = np.concatenate([row_role, np.full(len(unrouted), CITY_EMERGENCY_KIND, dtype=object)])
        order = np.argsort(inc, kind="stable")
        inc, recipient, kind, row_role = inc[order], recipient[order], kind[order], row_role[order]
    columns = (incident_ids[inc], kind, recipient, row_role, district[inc])
    # object columns (None for nothing), as the store's writers take them
    return pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in zip(RECIPIENT_COLUMNS, columns)})


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
    kind = recipients["recipient_kind"].to_numpy(dtype=object)
    who = recipients["recipient_id"].to_numpy(dtype=object)
    adcode = recipients["district_adcode"].to_numpy(dtype=object)
    at = offices.index.get_indexer(adcode) if len(offices) else np.full(len(adcode), -1)
    to_office = (kind == "enterprise") & (at >= 0)
    target = np.where(to_office, np.append(offices.to_numpy(dtype=object), None)[at], city_em).astype(object)
    role = np.where(to_office, "district_office", CITY_EMERGENCY_KIND).astype(object)
    keep = who != city_em
    index = recipients.index[keep]
    columns = (recipients["incident_id"].to_numpy(dtype=object)[keep], who[keep],
               np.full(int(keep.sum()), "department", dtype=object), target[keep], role[keep], adcode[keep])
    return pd.DataFrame({c: pd.Series(v, dtype=object, index=index) for c, v in zip(ESCALATION_COLUMNS, columns)})


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
    offices = offices.drop_duplicates("district_adcode")
    return pd.Series(offices["id"].to_numpy(dtype=object), index=pd.Index(offices["district_adcode"].to_numpy(dtype=object)))


def _home(subject_ids: np.ndarray, subject_kind: np.ndarray, prepared: PreparedRouting
          ) -> tuple[np.ndarray, np.ndarray]:
    """Per incident: its district when the place is unknown (the home district of the enterprise
    that must act), and that enterprise (a truck's carrier, a point's plant) or None."""
    n = len(subject_ids)
    enterprise = np.full(n, None, dtype=object)
    home = np.full(n, None, dtype=object)
    if prepared.world is None:
        return home, enterprise
    if len(prepared.vehicle_index):
        is_vehicle = subject_kind == "vehicle"
        at = prepared.vehicle_index.get_indexer(subject_ids[is_vehicle])
        enterprise[is_vehicle] = prepared.carrier[at]  # -1: not a known vehicle -> the None appended
    if len(prepared.point_index):
        is_point = subject_kind == "monitoring_point"
        enterprise[is_point] = prepared.plant[prepared.point_index.get_indexer(subject_ids[is_point])]
    enterprise = np.where(pd.isna(enterprise), None, enterprise).astype(object)
    if len(prepared.entity_index):
        home = prepared.entity_district[prepared.entity_index.get_indexer(enterprise)]
    return home, enterprise


def _districts_at(lon: np.ndarray, lat: np.ndarray, world: World | None, home: np.ndarray) -> np.ndarray:
    """The adcode of the district holding each position; `home` where it is unknown or outside."""
    out = np.asarray(home, dtype=object).copy()
    if world is None or not len(world.districts):
        return out
    known = np.isfinite(lon) & np.isfinite(lat)
    if not known.any():
        return out
    rows = np.flatnonzero(known)
    x, y = lon[rows], lat[rows]
    found = np.zeros(len(rows), dtype=bool)
    # one vectorised test per district (a city has about ten), on coordinates: no Point objects
    for adcode, outline in zip(world.districts["adcode"].to_numpy(dtype=object), world.districts.geometry.to_numpy()):
        shapely.prepare(outline)
        inside = ~found & shapely.intersects_xy(outline, x, y)  # a border point: the first district
        out[rows[inside]] = adcode
        found |= inside
    return out
