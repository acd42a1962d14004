"""What an incident's panel draws and what its impact view lists, gathered from the World and
the store. Plain dicts of JSON-ready values and frames; layers/panels/incident.py and
layers/panels/impact.py lay them out, assets/hazmap_evidence.js draws the evidence.

The evidence by rule:
- route deviation: the truck's stored track around the episode, the waybill's approved route and
  its corridor (the route buffered by the evidence's `corridor_m`, in UTM 51N);
- stop near a sensitive site: the stop, the site's outline and the ring of its radius around it;
- restricted zone: the zone's outline, where the truck entered, its track around the episode;
- a monitoring point's alarm: the point, and its readings around the alarm (for the chart);
- any other truck rule: the truck's stored positions during the episode, and the incident's.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa

from spatial.crs import geometry_from_metric, geometry_to_metric
from spatial.impact import impact
from spatial.model import ENTITY_CONTACT_COLUMNS, LiveState, World

TRACK_MARGIN = pd.Timedelta(minutes=15)  # the track drawn runs this far before and after the episode
READINGS_MARGIN = pd.Timedelta(hours=1)  # the readings charted around a point's alarm
EPISODE_MAX = pd.Timedelta(hours=24)  # an episode still open draws at most its last day
TRACK_POINTS_MAX = 2000  # a longer track is thinned evenly (its ends kept) before it reaches the browser
OUTLINE_TOLERANCE_M = 2.0  # outlines and buffers simplified to this, so the payload stays small
EVIDENCE_KINDS = ("route_deviation", "stop_near_sensitive_site", "restricted_zone", "point_alarm", "positions")


def evidence_kind(rule: str, subject_id: str) -> str:
    if str(subject_id).startswith("MP-"):
        return "point_alarm"
    return rule if rule in EVIDENCE_KINDS[:3] else "positions"


def _utc(value) -> pd.Timestamp | None:
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _window(row: dict, margin: pd.Timedelta) -> tuple[pd.Timestamp, pd.Timestamp]:
    first = _utc(row["first_time"])
    last = _utc(row.get("end_time")) or _utc(row["last_time"]) or first
    return max(first, last - EPISODE_MAX) - margin, last + margin


def _thin(frame: pd.DataFrame, limit: int = TRACK_POINTS_MAX) -> pd.DataFrame:
    if len(frame) <= limit:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, limit).round().astype("int64"))
    return frame.iloc[keep]


def _track(store, vehicle_id: str, start: pd.Timestamp, end: pd.Timestamp) -> list[list]:
    """[[epoch_ms, lon, lat], ...] of the truck's stored reports in [start, end]."""
    if store is None:
        return []
    frame = store.read_pings(start, end + pd.Timedelta(milliseconds=1), [vehicle_id])
    frame = _thin(frame[["epoch_ms", "lon", "lat"]].reset_index(drop=True))
    return [[int(t), float(x), float(y)] for t, x, y in
            zip(frame["epoch_ms"].to_numpy(), frame["lon"].to_numpy(), frame["lat"].to_numpy(), strict=True)]


def _rings(geometry) -> list[list[list[list[float]]]]:
    """A (multi)polygon as [polygon: [ring: [[lon, lat], ...]]] (exterior first, then holes)."""
    parts = getattr(geometry, "geoms", [geometry])
    out = []
    for part in parts:
        if part.is_empty or part.geom_type != "Polygon":
            continue
        rings = [part.exterior, *part.interiors]
        out.append([np.round(np.asarray(r.coords)[:, :2], 6).tolist() for r in rings])
    return out


def _outline(geometry) -> list:
    """A WGS-84 geometry for the map: polygons as rings, a line as its coordinates, a point as [lon, lat]."""
    if geometry is None or geometry.is_empty:
        return []
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return _rings(geometry)
    if geometry.geom_type in ("Point", "MultiPoint"):
        return []  # drawn as its centre
    return _rings(geometry.buffer(0))  # a line or collection has no outline of its own


def _buffered(geometry, metres: float) -> list:
    """The WGS-84 geometry grown by `metres` (UTM 51N), as rings."""
    metric = geometry_to_metric(np.array([geometry], dtype=object))[0]
    grown = shapely.simplify(shapely.buffer(metric, float(metres), quad_segs=8), OUTLINE_TOLERANCE_M)
    return _rings(geometry_from_metric(np.array([grown], dtype=object))[0])


def _feature(frame: pd.DataFrame, feature_id) -> pd.Series | None:
    """One row by id (a positional pick: a boolean mask over a GeoDataFrame copies it whole)."""
    if feature_id is None or not len(frame):
        return None
    hit = np.flatnonzero(frame["id"].to_numpy() == str(feature_id))
    return frame.iloc[int(hit[0])] if len(hit) else None


def _incident_row(store, incident_id: str) -> dict:
    """The incident's own row (its recipients and history are the incident panel's, not needed here)."""
    from data.incidents import incidents

    with store.engine.connect() as connection:
        row = connection.execute(sa.select(incidents).where(incidents.c.id == str(incident_id))).mappings().first()
    if row is None:
        raise LookupError(f"no incident {incident_id!r}")
    return dict(row)


def _number(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def evidence(world: World, row: dict, store) -> dict:
    """What the map draws for the incident `row` (IncidentStore.show's "incident"), JSON-ready;
    `readings` (a frame, for the panel's chart) for a point's alarm."""
    kind = evidence_kind(str(row["rule"]), str(row["subject_id"]))
    found = row.get("evidence") or {}
    subject = str(row["subject_id"])
    out: dict = {"id": str(row["id"]), "kind": kind}
    lon, lat = _number(row.get("lon")), _number(row.get("lat"))
    if lon is not None and lat is not None:
        out["at"] = [lon, lat]
    if kind == "point_alarm":
        point = _feature(world.monitoring_points, subject)
        if point is not None:
            out["point"] = [float(point.geometry.x), float(point.geometry.y)]
            out["point_row"] = point  # its levels and unit, for the chart (not sent to the map)
        start, end = _window(row, READINGS_MARGIN)
        readings = pd.DataFrame(columns=["epoch_ms", "value"])
        if store is not None:
            readings = store.read_readings(start, end, [subject])[["epoch_ms", "value"]].reset_index(drop=True)
        out["readings"] = readings
        out["alarm_ms"] = int(_utc(row["first_time"]).value // 1_000_000)
        out["readings_window"] = [int(start.value // 1_000_000), int(end.value // 1_000_000)]
        return out
    if kind == "route_deviation":
        out["track"] = _track(store, subject, *_window(row, TRACK_MARGIN))
        waybill = _feature(world.waybills, found.get("waybill_id"))
        corridor_m = _number(found.get("corridor_m"))
        if waybill is not None and waybill.geometry is not None and not waybill.geometry.is_empty:
            out["route"] = np.round(np.asarray(waybill.geometry.coords)[:, :2], 6).tolist()
            out["waybill_id"] = str(waybill["id"])
            if corridor_m is not None:
                out["corridor_m"] = corridor_m
                out["corridor"] = _buffered(waybill.geometry, corridor_m)
        return out
    if kind == "stop_near_sensitive_site":
        site = _feature(world.sensitive_sites, found.get("site_id"))
        radius_m = _number(found.get("radius_m"))
        if site is not None:
            centre = site.geometry.representative_point()
            out["site"] = {"id": str(site["id"]), "name": str(site["name"]), "radius_m": radius_m,
                           "centre": [round(centre.x, 6), round(centre.y, 6)], "outline": _outline(site.geometry),
                           "reach": _buffered(site.geometry, radius_m) if radius_m is not None else []}
        return out
    if kind == "restricted_zone":
        zone = _feature(world.restricted_zones, found.get("zone_id"))
        if zone is not None:
            out["zone"] = {"id": str(zone["id"]), "name": str(zone["name"]), "outline": _outline(zone.geometry)}
        entry = (_number(found.get("entry_lon")), _number(found.get("entry_lat")))
        if None not in entry:
            out["entry"] = list(entry)
        out["track"] = _track(store, subject, *_window(row, TRACK_MARGIN))
        return out
    out["positions"] = [p[1:] for p in _track(store, subject, *_window(row, pd.Timedelta(0)))]
    return out


# --- the impact view ------------------------------------------------------------------------------

TEXT_COLUMNS = ["delivery_id", "created_at", "requested_by", "text", "status", "attempts", "sent_at",
                "answer", "code", "last_error"]


def driver_texts(store, incident_id: str) -> pd.DataFrame:
    """The texts sent to the incident's truck (JT/T 808 0x8300), newest first, each with its state
    (pending | sent | dead) and the terminal's 0x0001 answer when it came."""
    if store is None:
        return pd.DataFrame(columns=TEXT_COLUMNS)
    from data.channels.store import attempts, deliveries as d

    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.select(d.c.delivery_id, d.c.created_at, d.c.requested_by, d.c.payload, d.c.status, d.c.attempts,
                      d.c.sent_at, d.c.last_error)
            .where(d.c.incident_id == str(incident_id), d.c.event == "text")
            .order_by(d.c.created_at.desc(), d.c.delivery_id)).all()
        ids = [r.delivery_id for r in rows]
        answers = connection.execute(
            sa.select(attempts.c.delivery_id, attempts.c.answer, attempts.c.code)
            .where(attempts.c.delivery_id.in_(ids)).order_by(attempts.c.seq)).all() if ids else []
    last = {a.delivery_id: (a.answer, a.code) for a in answers}  # the newest attempt wins
    return pd.DataFrame([
        [r.delivery_id, r.created_at, r.requested_by, (r.payload or {}).get("text"), r.status, int(r.attempts),
         r.sent_at, *last.get(r.delivery_id, (None, None)), r.last_error] for r in rows], columns=TEXT_COLUMNS)


def _contacts(entity: pd.Series | None, role: str) -> dict | None:
    """An enterprise's name and whatever contact fields the World holds for it."""
    if entity is None:
        return None
    contact = {"role": role, "id": str(entity["id"]), "name": str(entity["name"])}
    for column in ENTITY_CONTACT_COLUMNS:
        if column in entity.index and isinstance(entity[column], str) and entity[column]:
            contact[column] = entity[column]
    return contact


def _truck_position(world: World, live: LiveState | None, store, vehicle_id: str,
                    at: pd.Timestamp) -> tuple[float, float] | None:
    """Live, else its last stored report of the day, else where the World last placed it."""
    if live is not None and vehicle_id in live.positions.index:
        position = live.positions.loc[vehicle_id]
        return float(position["lon"]), float(position["lat"])
    track = _track(store, vehicle_id, at - EPISODE_MAX, at)
    if track:
        return track[-1][1], track[-1][2]
    vehicle = _feature(world.vehicles, vehicle_id)
    geometry = None if vehicle is None else vehicle.geometry
    return None if geometry is None or geometry.is_empty else (float(geometry.x), float(geometry.y))


def impact_view(world: World, feature_id: str, *, live: LiveState | None = None, store=None, now=None,
                visible=None) -> dict:
    """The impact view of a truck (VEH-), a hazard source (HS-) or an incident (INC-) about either
    (a monitoring point's incident: its hazard source): where, what cargo, ERG distances by the
    incident's time (else now), what lies inside, nearest first, and who to call. `visible`
    (app/permissions.Visible; None: sees all): the hazard sources and trucks inside it does not
    name are only counted (`hidden`)."""
    from data.drilldown import _now, loaded_trucks, loaded_waybills, narrow_impact

    feature_id = str(feature_id)
    incident = None
    if feature_id.startswith("INC-"):
        if store is None:
            raise LookupError(f"no incident {feature_id!r}: this screen has no store")
        incident = _incident_row(store, feature_id)
        subject = str(incident["subject_id"])
        at = _utc(incident["last_time"])
    else:
        subject, at = feature_id, _now(live, now)
    if subject.startswith("MP-"):
        point = _feature(world.monitoring_points, subject)
        if point is None:
            raise LookupError(f"no monitoring point {subject!r}")
        subject = str(point["hazard_source_id"])
    out: dict = {"id": feature_id, "incident": incident, "subject_id": subject, "at": at, "texts": None,
                 "contacts": [], "waybill": None, "vehicle": None}
    if subject.startswith("HS-"):
        source = _feature(world.hazard_sources, subject)
        if source is None:
            raise LookupError(f"no hazard source {subject!r}")
        lon, lat = float(source.geometry.x), float(source.geometry.y)
        stock = world.hazard_source_chemicals
        goods = stock.loc[stock["hazard_source_id"] == subject, ["un_number", "quantity_t"]].reset_index(drop=True)
        out["contacts"] = [c for c in [_contacts(_feature(world.entities, source["entity_id"]), "plant")] if c]
        out["subject_name"] = str(source["name"])
    elif subject.startswith("VEH-"):
        vehicle = _feature(world.vehicles, subject)
        if vehicle is None:
            raise LookupError(f"no truck {subject!r}")
        position = (_number(incident.get("lon")), _number(incident.get("lat"))) if incident is not None else None
        if position is None or None in position:
            position = _truck_position(world, live, store, subject, at)
        if position is None:
            raise LookupError(f"{subject} has no known position")
        lon, lat = position
        own = world.waybills.iloc[np.flatnonzero(world.waybills["vehicle_id"].to_numpy() == subject)]
        mine = loaded_waybills(SimpleNamespace(waybills=own), at)  # only its own waybills looked at
        waybill = mine.iloc[-1] if len(mine) else None
        bill = world.waybill_goods
        goods = (bill.loc[bill["waybill_id"] == waybill["id"], ["un_number", "name", "quantity_t"]]
                 .reset_index(drop=True)
                 if waybill is not None else pd.DataFrame(columns=["un_number", "name", "quantity_t"]))
        carrier = _feature(world.entities, vehicle.get("carrier_id")) if "carrier_id" in vehicle.index else None
        out["vehicle"] = {"id": subject, "plate": str(vehicle["plate"]), "driver": vehicle.get("driver"),
                          "escort": vehicle.get("escort"), "terminal_phone": vehicle.get("terminal_phone")}
        out["subject_name"] = str(vehicle["plate"])
        if waybill is not None:
            out["waybill"] = {"id": str(waybill["id"]), "emergency_phone": waybill.get("emergency_phone"),
                              "consignor": waybill.get("consignor"), "consignee": waybill.get("consignee")}
        out["contacts"] = [c for c in [
            _contacts(carrier, "carrier"),
            _contacts(_feature(world.entities, waybill["loading_site_id"]) if waybill is not None else None, "plant"),
            _contacts(_feature(world.entities, waybill["unloading_site_id"]) if waybill is not None else None,
                      "consignee"),
        ] if c]
        if incident is not None:
            out["texts"] = driver_texts(store, feature_id)
    else:
        raise LookupError(f"no impact view for {feature_id!r}: a truck, a hazard source or an incident about one")
    trucks = loaded_trucks(world, live, _now(live, now))  # who is loaded where now (the live positions' time)
    view = impact(world, lon, lat, goods["un_number"].astype(str).tolist(), at, trucks=trucks, exclude_ids=[subject])
    view, out["hidden"] = narrow_impact(view, visible)
    inside = world.sensitive_sites.set_index("id").geometry.reindex(view.sites["id"])
    points = shapely.point_on_surface(inside.to_numpy()) if len(inside) else np.array([], dtype=object)
    out.update(lon=lon, lat=lat, goods=goods, impact=view,
               site_points=np.round(shapely.get_coordinates(points), 6).tolist())  # the sites inside, for the map
    return out
