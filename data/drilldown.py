"""What a drill-down panel shows about one entity, gathered from the World, the live picture and
the store (pings, readings, incidents). Plain dicts of rows and frames; layers/panels/ lays them out.

Every gatherer takes the same keywords: `live` (a LiveState copy or None), `store` (a Store or
None: without one the charts come from the live trail only and no incidents are listed) and
`now` (aware UTC; default: the newest live report, else the wall clock). A missing id raises
LookupError, which the screen shows as "not found".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa

from spatial.grading import alpha_for_people, grade_for_r
from spatial.impact import impact, is_night, protective_by_group
from spatial.model import LiveState, World

KINDS = ("vehicles", "hazard_sources", "monitoring_points", "entities", "sensitive_sites", "wash_stations")
SPEED_WINDOWS_H = (2, 24)
REPLAY_HOURS = 24  # the track replay covers the truck's last day from the store
READING_WINDOWS_H = {"1h": 1, "24h": 24, "7d": 168}
INCIDENTS_MAX = 20  # newest first: a panel lists the recent ones, the incident list has the rest
# A truck counts as loaded from its waybill's departure until its unloading, else until the planned
# arrival plus this grace (the waybill stage's default, spatial/rules/waybills.py).
UNLOADING_GRACE = pd.Timedelta(hours=2)
WASH_VISIT_RADIUS_M = 150.0  # a report this close to a wash station counts as a visit (not checked: engineering)


_POSITIONS: dict[tuple[int, str], tuple] = {}  # (id(frame), column) -> (frame, {value: row positions})


def _positions(frame: pd.DataFrame, column: str) -> dict:
    """The row positions of each value of a World table's column, built once per table (a click
    must not compare every row's id: 5-20 ms a lookup at Ningbo scale on Arrow strings)."""
    held = _POSITIONS.get((id(frame), column))
    if held is None or held[0] is not frame:
        if len(_POSITIONS) >= 64:
            _POSITIONS.clear()
        held = _POSITIONS[(id(frame), column)] = (frame, frame.groupby(column, sort=False).indices)
    return held[1]


def _rows(frame: pd.DataFrame, column: str, value) -> pd.DataFrame:
    """The rows of `frame` whose `column` equals `value`, in table order."""
    return frame.iloc[_positions(frame, column).get(value, np.empty(0, "int64"))]


def _row(frame: pd.DataFrame, feature_id: str, what: str) -> pd.Series:
    match = _rows(frame, "id", feature_id)
    if not len(match):
        raise LookupError(f"no {what} {feature_id!r}")
    return match.iloc[0]


def _now(live: LiveState | None, now) -> pd.Timestamp:
    if now is not None:
        stamp = pd.Timestamp(now)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if live is not None and len(live.positions):
        return pd.Timestamp(int(live.positions["epoch_ms"].max()), unit="ms", tz="UTC")
    return pd.Timestamp.now(tz="UTC")


def _catalogue(world: World) -> pd.DataFrame:
    catalogue = world.chemicals
    if len(catalogue) and "un_number" in catalogue.columns:
        catalogue = catalogue.set_index("un_number")
    return catalogue


def incidents_of(store, subject_ids, limit: int = INCIDENTS_MAX, since: pd.Timestamp | None = None,
                 only=None) -> pd.DataFrame:
    """The newest incidents about any of `subject_ids` (id, rule, subject_id, status, severity,
    first_time, last_time, lon, lat); `since`: only those still going at or after it; `only`: among
    these incident ids (a scoped user's, chosen before the limit); empty without a store."""
    columns = ["id", "rule", "subject_id", "status", "severity", "first_time", "last_time", "lon", "lat"]
    subjects = sorted({str(s) for s in subject_ids})
    if store is None or not subjects or (only is not None and not only):
        return pd.DataFrame(columns=columns)
    from data.incidents import incidents

    query = (sa.select(*(incidents.c[c] for c in columns))
             .where(store._in_values(incidents.c.subject_id, subjects, "in_subjects"))
             .order_by(incidents.c.first_time.desc(), incidents.c.id).limit(limit))
    if since is not None:
        query = query.where(incidents.c.last_time >= since.to_pydatetime())
    if only is not None:
        query = query.where(store._in_values(incidents.c.id, only, "in_ids"))
    with store.engine.connect() as connection:
        rows = connection.execute(query).all()
    return pd.DataFrame(rows, columns=columns)


_PER_WORLD: dict[tuple[int, object], tuple] = {}  # (id(world), what) -> (world, value): built once per World


def _per_world(world: World, what, build):
    """`build()` once per World (a click must not redo what only the World decides)."""
    held = _PER_WORLD.get((id(world), what))
    if held is None or held[0] is not world:
        if len(_PER_WORLD) >= 32:
            _PER_WORLD.clear()
        held = _PER_WORLD[(id(world), what)] = (world, build())
    return held[1]


def _waybill_spans(world: World) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = world.waybills
    start = pd.to_datetime(w["actual_departure"], utc=True).fillna(pd.to_datetime(w["planned_departure"], utc=True))
    end = pd.to_datetime(w["actual_unloading"], utc=True).fillna(
        pd.to_datetime(w["planned_arrival"], utc=True) + UNLOADING_GRACE)
    return ((w["status"] != "cancelled").to_numpy(bool), start.to_numpy("datetime64[ns]"),
            end.to_numpy("datetime64[ns]"))


def loaded_waybills(world: World, now: pd.Timestamp) -> pd.DataFrame:
    """Waybills whose truck carries their goods at `now` (not cancelled; departed, not unloaded)."""
    valid, start, end = _per_world(world, "waybill_spans", lambda: _waybill_spans(world))
    at = np.datetime64(pd.Timestamp(now).tz_convert("UTC").tz_localize(None).to_datetime64(), "ns")
    return world.waybills[valid & (start <= at) & (at < end)]  # NaT compares False: never loaded


def loaded_trucks(world: World, live: LiveState | None, now: pd.Timestamp) -> pd.DataFrame:
    """Live positions of the loaded trucks: id, lon, lat, waybill_id (their cargo: world.waybill_goods)."""
    if live is None or not len(live.positions):
        return pd.DataFrame(columns=["id", "lon", "lat", "waybill_id"])
    waybills = loaded_waybills(world, now).drop_duplicates("vehicle_id", keep="last")
    positions = live.positions[["lon", "lat"]]
    frame = waybills[["id", "vehicle_id"]].rename(columns={"id": "waybill_id"}).merge(
        positions, left_on="vehicle_id", right_index=True)
    return frame.rename(columns={"vehicle_id": "id"})[["id", "lon", "lat", "waybill_id"]].reset_index(drop=True)


_ROAD_TREES: dict[int, tuple] = {}  # id(roads) -> (roads, geometries, STRtree): built once per World


def _road_tree(roads: pd.DataFrame):
    import shapely

    held = _ROAD_TREES.get(id(roads))
    if held is None or held[0] is not roads:
        if len(_ROAD_TREES) >= 4:
            _ROAD_TREES.clear()
        geometries = roads.geometry.to_numpy()
        held = _ROAD_TREES[id(roads)] = (roads, geometries, shapely.STRtree(geometries))
    return held[1], held[2]


def _speed_limit(world: World, lon: float, lat: float) -> float | None:
    """The speed limit of the road nearest the position (within 50 m), if any."""
    roads = world.roads
    if not len(roads) or not np.isfinite(lon):
        return None
    from spatial.crs import geometry_to_metric, to_metric
    import shapely

    tree_geoms, tree = _road_tree(roads)
    near = tree.query(shapely.Point(lon, lat), predicate="dwithin", distance=0.001)
    if not len(near):
        return None
    x, y = to_metric([lon], [lat])
    metres = shapely.distance(geometry_to_metric(tree_geoms[near]), shapely.Point(x[0], y[0]))
    best = int(np.argmin(metres))
    return float(roads["speed_limit_kmh"].iloc[near[best]]) if metres[best] <= 50 else None


def _track(store, live: LiveState | None, vehicle_id: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The truck's reports in [start, end]: from the store, else the live trail."""
    if store is not None:
        frame = store.read_pings(start, end + pd.Timedelta(milliseconds=1), [vehicle_id])
        return frame[["epoch_ms", "lon", "lat", "speed_kmh"]].reset_index(drop=True)
    if live is None:
        return pd.DataFrame(columns=["epoch_ms", "lon", "lat", "speed_kmh"])
    trail = live.trail(vehicle_id)
    keep = (trail["epoch_ms"] >= start.value // 1_000_000) & (trail["epoch_ms"] <= end.value // 1_000_000)
    return trail.loc[keep, ["epoch_ms", "lon", "lat", "speed_kmh"]].reset_index(drop=True)


def track_stops(track: pd.DataFrame, settings=None) -> pd.DataFrame:
    """The stops in tracks (vehicle_id, epoch_ms, lon, lat) as the rules' stop stage finds them
    (spatial/rules/stop.py: MovingPandas' detector, `StopSettings` defaults unless given):
    vehicle_id, start_ms, end_ms (a stop still open at the track's end: its last report), lon,
    lat (the stop's median), confirmed_lon, confirmed_lat (its median when confirmed, which the
    wash-visit rules match to places). Reports at one instant twice count once."""
    from spatial.crs import to_metric
    from spatial.rules.base import RuleBatch
    from spatial.rules.stop import StopRule, StopSettings

    columns = ["vehicle_id", "start_ms", "end_ms", "lon", "lat", "confirmed_lon", "confirmed_lat"]
    if not len(track):
        return pd.DataFrame(columns=columns)
    frame = track.assign(vehicle_id=track["vehicle_id"].astype(str)).sort_values(["vehicle_id", "epoch_ms"]) \
        .drop_duplicates(["vehicle_id", "epoch_ms"])
    ids = frame["vehicle_id"].to_numpy(object)
    slot = pd.factorize(ids)[0].astype("int64")
    lon, lat = frame["lon"].to_numpy("float64"), frame["lat"].to_numpy("float64")
    x, y = to_metric(lon, lat)
    n = len(frame)
    batch = RuleBatch.empty().with_columns(
        slot=slot, vehicle_id=ids, epoch_ms=frame["epoch_ms"].to_numpy("int64"), lon=lon, lat=lat,
        x=np.asarray(x, "float64"), y=np.asarray(y, "float64"), speed_kmh=np.full(n, np.nan),
        speed_derived=np.ones(n, bool), heading=np.full(n, np.nan), alarm=np.zeros(n, "uint32"),
        status=np.zeros(n, "uint32"), waybill=np.full(n, -1, "int64"), loaded=np.zeros(n, bool))
    rule = StopRule(settings or StopSettings())
    _, events = rule.step(rule.initial_state(), batch, None)
    last_ms = frame.groupby("vehicle_id")["epoch_ms"].max()
    stops: dict[str, dict] = {}
    for event in events:  # one or two per stop, not per report
        row = stops.setdefault(event.episode_id, {"vehicle_id": event.subject_id,
                                                  "start_ms": event.start.value // 1_000_000,
                                                  "end_ms": int(last_ms[event.subject_id])})
        row["lon"], row["lat"] = event.lon, event.lat  # the close's median covers the whole stop
        if event.phase == "open":
            row["confirmed_lon"], row["confirmed_lat"] = event.lon, event.lat
        if event.end is not None:
            row["end_ms"] = event.end.value // 1_000_000
    out = pd.DataFrame(list(stops.values()), columns=columns)
    return out.sort_values(["vehicle_id", "start_ms"]).reset_index(drop=True)


def replay_incidents(store, vehicle_id: str, start: pd.Timestamp, end: pd.Timestamp, only=None) -> pd.DataFrame:
    """The truck's incidents going during the replay's window with a position: id, rule, epoch_ms
    (its first time, or the window's start for one that began before), lon, lat."""
    frame = incidents_of(store, [vehicle_id], limit=200, since=start, only=only)
    if not len(frame):
        return pd.DataFrame(columns=["id", "rule", "epoch_ms", "lon", "lat"])
    first = pd.to_datetime(frame["first_time"], utc=True)
    frame = frame[(first <= end) & frame["lon"].notna() & frame["lat"].notna()].copy()
    first = pd.to_datetime(frame["first_time"], utc=True).clip(lower=start)
    frame["epoch_ms"] = ((first - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).astype("int64")
    return frame.sort_values(["epoch_ms", "id"])[["id", "rule", "epoch_ms", "lon", "lat"]].reset_index(drop=True)


def speed_series(world: World, vehicle_id: str, hours: int, *, live: LiveState | None = None, store=None,
                 now=None) -> dict:
    """The speed chart's data for a window (SPEED_WINDOWS_H): track (epoch_ms, lon, lat, speed_kmh),
    the road's limit at its newest position, hours."""
    if hours not in SPEED_WINDOWS_H:
        raise ValueError(f"hours must be one of {SPEED_WINDOWS_H}, got {hours!r}")
    _row(world.vehicles, vehicle_id, "truck")
    at = _now(live, now)
    track = _track(store, live, vehicle_id, at - pd.Timedelta(hours=hours), at)
    position = live.positions.loc[vehicle_id] if live is not None and vehicle_id in live.positions.index else None
    lon = float(position["lon"]) if position is not None else float(track["lon"].iloc[-1]) if len(track) else np.nan
    lat = float(position["lat"]) if position is not None else float(track["lat"].iloc[-1]) if len(track) else np.nan
    return {"track": track, "hours": hours, "speed_limit_kmh": _speed_limit(world, lon, lat) if np.isfinite(lon)
            else None}


def point_readings(world: World, point_id: str, window: str, *, live: LiveState | None = None, store=None,
                   now=None) -> pd.DataFrame:
    """A point's readings (epoch_ms, value) over a window (READING_WINDOWS_H); without a store its
    last live reading."""
    if window not in READING_WINDOWS_H:
        raise ValueError(f"window must be one of {tuple(READING_WINDOWS_H)}, got {window!r}")
    _row(world.monitoring_points, point_id, "monitoring point")
    at = _now(live, now)
    if store is not None:
        return store.read_readings(at - pd.Timedelta(hours=READING_WINDOWS_H[window]),
                                   at + pd.Timedelta(milliseconds=1), [point_id])[["epoch_ms", "value"]]
    if live is not None and point_id in live.readings.index:
        return live.readings.loc[[point_id], ["epoch_ms", "value"]].reset_index(drop=True)
    return pd.DataFrame(columns=["epoch_ms", "value"])


STATUS_HISTORY_DAYS = 7  # a point's status history: its rule episodes over the last week


def status_history(store, point_id: str, now: pd.Timestamp) -> pd.DataFrame:
    """A point's status episodes from the stored events of the point rules (newest first): rule,
    severity (the episode's highest), start, end (NaT while open)."""
    columns = ["rule", "severity", "start", "end"]
    if store is None:
        return pd.DataFrame(columns=columns)
    events = store.read_events(since=now - pd.Timedelta(days=STATUS_HISTORY_DAYS),
                               until=now + pd.Timedelta(milliseconds=1), subject_id=point_id)
    if not len(events):
        return pd.DataFrame(columns=columns)
    grouped = events.groupby("episode_id", sort=False).agg(rule=("rule", "first"), severity=("severity", "min"),
                                                          start=("start", "min"), end=("end", "max"))
    return grouped.sort_values("start", ascending=False)[columns].reset_index(drop=True)


def _entity_names(world: World, ids) -> dict[str, str]:
    """Enterprise names by id (a waybill's loading and unloading sites)."""
    entities = world.entities
    at = _positions(entities, "id")
    found = entities.iloc[[int(at[i][0]) for i in ids if isinstance(i, str) and i in at]]  # two at most
    return dict(zip(found["id"].astype(str), found["name"].astype(str), strict=True))


def truck(world: World, vehicle_id: str, *, live: LiveState | None = None, store=None, now=None,
          hours: int = SPEED_WINDOWS_H[0], incident_ids=None) -> dict:
    if hours not in SPEED_WINDOWS_H:
        raise ValueError(f"hours must be one of {SPEED_WINDOWS_H}, got {hours!r}")
    row = _row(world.vehicles, vehicle_id, "truck")
    at = _now(live, now)
    carrier = None
    if "carrier_id" in row.index and isinstance(row["carrier_id"], str):
        match = _rows(world.entities, "id", row["carrier_id"])
        carrier = match.iloc[0] if len(match) else None
    own = _rows(world.waybills, "vehicle_id", vehicle_id)
    loaded = loaded_waybills(world, at)
    loaded = loaded[loaded["vehicle_id"] == vehicle_id]
    active = own[own["status"] == "active"]
    waybill = (loaded if len(loaded) else active if len(active) else own.iloc[0:0]).head(1)
    waybill = waybill.iloc[0] if len(waybill) else None
    goods = pd.DataFrame()
    if waybill is not None:
        goods = world.waybill_goods[world.waybill_goods["waybill_id"] == waybill["id"]].sort_values("seq").copy()
        names_en = _catalogue(world).reindex(goods["un_number"].astype(str))  # the English wall's names
        goods["name_en"] = names_en["name_en"].to_numpy() if "name_en" in names_en.columns else None
    position = None
    if live is not None and vehicle_id in live.positions.index:
        position = live.positions.loc[vehicle_id]
    replay = _track(store, live, vehicle_id, at - pd.Timedelta(hours=REPLAY_HOURS), at)  # the replay's 24 h
    track = replay[replay["epoch_ms"] >= (at - pd.Timedelta(hours=hours)).value // 1_000_000].reset_index(drop=True)
    lon = float(position["lon"]) if position is not None else float(track["lon"].iloc[-1]) if len(track) else np.nan
    lat = float(position["lat"]) if position is not None else float(track["lat"].iloc[-1]) if len(track) else np.nan
    start = at - pd.Timedelta(hours=REPLAY_HOURS)
    return {
        "row": row, "carrier": carrier, "waybill": waybill, "goods": goods,
        "cargo": "loaded" if len(loaded) else "empty",
        "cargo_state": live.cargo["cargo_state"].get(vehicle_id) if live is not None else None,  # the engine's
        "position": position, "track": track, "replay": replay, "hours": hours, "now": at,
        "replay_stops": track_stops(replay.assign(vehicle_id=vehicle_id)),
        "replay_incidents": replay_incidents(store, vehicle_id, start, at, only=incident_ids),
        "speed_limit_kmh": _speed_limit(world, lon, lat) if np.isfinite(lon) else None,
        "incidents": incidents_of(store, [vehicle_id], only=incident_ids),
        "site_names": _entity_names(world, [] if waybill is None else [waybill["loading_site_id"],
                                                                        waybill["unloading_site_id"]]),
    }


def hazard_source(world: World, source_id: str, *, live: LiveState | None = None, store=None, now=None,
                  incident_ids=None) -> dict:
    row = _row(world.hazard_sources, source_id, "hazard source")
    at = _now(live, now)
    catalogue = _catalogue(world)
    chemicals = world.hazard_source_chemicals
    chemicals = chemicals[chemicals["hazard_source_id"] == source_id].copy()
    figures = catalogue.reindex(chemicals["un_number"].astype(str))
    for column in ("name_zh", "name_en", "gb18218_q_t", "gb18218_beta"):
        chemicals[column] = figures[column].to_numpy() if column in figures.columns else np.nan
    chemicals["ratio"] = chemicals["quantity_t"].to_numpy("float64") / chemicals["gb18218_q_t"].to_numpy("float64")
    chemicals["beta_ratio"] = chemicals["ratio"] * chemicals["gb18218_beta"].to_numpy("float64")
    alpha = float(alpha_for_people(int(row["people_500m"])))
    r = alpha * float(np.nansum(chemicals["beta_ratio"]))
    points = world.monitoring_points[world.monitoring_points["hazard_source_id"] == source_id]
    readings = pd.DataFrame(columns=["point_id", "epoch_ms", "value"])
    if store is not None and len(points):
        readings = store.read_readings(at - pd.Timedelta(hours=24), at + pd.Timedelta(milliseconds=1),
                                       points["id"].tolist())[["point_id", "epoch_ms", "value"]]
    trucks = loaded_trucks(world, live, at)
    view = impact(world, row.geometry.x, row.geometry.y, chemicals["un_number"].astype(str).tolist(), at,
                  trucks=trucks, exclude_ids=[source_id])
    return {
        "row": row, "entity": _row(world.entities, row["entity_id"], "enterprise") if (
            world.entities["id"] == row["entity_id"]).any() else None,
        "chemicals": chemicals, "alpha": alpha, "s_value": float(np.nansum(chemicals["ratio"])), "r_value": r,
        "grade": int(grade_for_r(r)), "points": points, "readings": readings, "impact": view, "now": at,
        "incidents": incidents_of(store, [source_id, *points["id"]], only=incident_ids),
    }


def monitoring_point(world: World, point_id: str, *, live: LiveState | None = None, store=None, now=None,
                     window: str = "24h", incident_ids=None) -> dict:
    if window not in READING_WINDOWS_H:
        raise ValueError(f"window must be one of {tuple(READING_WINDOWS_H)}, got {window!r}")
    row = _row(world.monitoring_points, point_id, "monitoring point")
    at = _now(live, now)
    readings = point_readings(world, point_id, window, live=live, store=store, now=at)
    return {"row": row, "readings": readings, "window": window, "now": at,
            "status_history": status_history(store, point_id, at),
            "incidents": incidents_of(store, [point_id], only=incident_ids)}


def enterprise(world: World, entity_id: str, *, live: LiveState | None = None, store=None, now=None,
               incident_ids=None) -> dict:
    row = _row(world.entities, entity_id, "enterprise")
    sources = world.hazard_sources[world.hazard_sources["entity_id"] == entity_id]
    points = world.monitoring_points[world.monitoring_points["hazard_source_id"].isin(sources["id"])]
    vehicles = world.vehicles
    vehicles = vehicles[vehicles["carrier_id"] == entity_id] if "carrier_id" in vehicles.columns else vehicles.iloc[0:0]
    return {"row": row, "hazard_sources": sources, "points": points, "vehicles": vehicles, "now": _now(live, now),
            "incidents": incidents_of(store, [entity_id, *sources["id"], *points["id"], *vehicles["id"]],
                                      only=incident_ids)}


def sensitive_site(world: World, site_id: str, *, live: LiveState | None = None, store=None, now=None,
                   incident_ids=None) -> dict:
    """Who is near the site now: loaded trucks within their cargo's protective distance of it, and
    hazard sources whose protective distance (by their chemicals) reaches it."""
    import shapely

    from spatial.crs import geometry_to_metric, to_metric

    row = _row(world.sensitive_sites, site_id, "sensitive site")
    at = _now(live, now)
    night = is_night(at)
    catalogue = _catalogue(world)
    site = geometry_to_metric(np.array([row.geometry], dtype=object))[0]

    def reach(ids, lon, lat, radius) -> pd.DataFrame:
        x, y = to_metric(lon, lat)
        metres = shapely.distance(shapely.points(x, y), site) if len(ids) else np.array([])
        keep = np.nan_to_num(radius, nan=-1.0) >= metres
        out = pd.DataFrame({"id": np.asarray(ids, dtype=object)[keep], "distance_m": metres[keep],
                            "radius_m": radius[keep]})
        return out.sort_values(["distance_m", "id"]).reset_index(drop=True)

    trucks = loaded_trucks(world, live, at)
    goods = world.waybill_goods
    by_waybill = _per_world(world, ("by_waybill", night), lambda: protective_by_group(
        goods["waybill_id"], goods["un_number"], catalogue, night))
    near_trucks = reach(trucks["id"].to_numpy(), trucks["lon"].to_numpy("float64"), trucks["lat"].to_numpy("float64"),
                        by_waybill.reindex(trucks["waybill_id"].to_numpy()).to_numpy("float64"))
    sources = world.hazard_sources
    stock = world.hazard_source_chemicals
    by_source = _per_world(world, ("by_source", night), lambda: protective_by_group(
        stock["hazard_source_id"], stock["un_number"], catalogue, night))
    near_sources = reach(sources["id"].to_numpy(), sources.geometry.x.to_numpy(), sources.geometry.y.to_numpy(),
                         by_source.reindex(sources["id"].to_numpy()).to_numpy("float64"))
    near_sources["name"] = sources.set_index("id")["name"].reindex(near_sources["id"]).to_numpy()
    return {"row": row, "trucks": near_trucks, "hazard_sources": near_sources, "night": night, "now": at,
            "incidents": incidents_of(store, [site_id], only=incident_ids)}


def wash_station(world: World, station_id: str, *, live: LiveState | None = None, store=None, now=None,
                 incident_ids=None) -> dict:
    """Trucks that reported within WASH_VISIT_RADIUS_M of the station since local midnight (the
    store narrows by a box around the station; the exact metric distance decides)."""
    from data.schema import pings
    from spatial.crs import to_metric

    row = _row(world.wash_stations, station_id, "wash station")
    at = _now(live, now)
    midnight = at.tz_convert("Asia/Shanghai").normalize().tz_convert("UTC")
    visits = pd.DataFrame(columns=["vehicle_id", "first_ms", "last_ms", "reports"])
    washed = pd.DataFrame(columns=["vehicle_id", "start_ms", "end_ms"])
    if store is not None:
        lon, lat = float(row.geometry.x), float(row.geometry.y)
        pad = 2 * WASH_VISIT_RADIUS_M / 111_000.0  # degrees, generous at Ningbo's latitude
        query = (sa.select(pings.c.vehicle_id, pings.c.time, pings.c.lon, pings.c.lat)
                 .where(pings.c.time >= midnight.to_pydatetime(), pings.c.time <= at.to_pydatetime(),
                        pings.c.lon.between(lon - pad, lon + pad), pings.c.lat.between(lat - pad, lat + pad)))
        with store.engine.connect() as connection:
            frame = pd.DataFrame(connection.execute(query).all(), columns=["vehicle_id", "time", "lon", "lat"])
        if len(frame):
            x, y = to_metric(frame["lon"].to_numpy("float64"), frame["lat"].to_numpy("float64"))
            sx, sy = to_metric([lon], [lat])
            frame["epoch_ms"] = (pd.to_datetime(frame["time"], utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(
                milliseconds=1)
            near = frame[np.hypot(x - sx[0], y - sy[0]) <= WASH_VISIT_RADIUS_M]
            visits = (near.groupby("vehicle_id")["epoch_ms"].agg(first_ms="min", last_ms="max", reports="size")
                      .reset_index().sort_values("first_ms").reset_index(drop=True))
            washed = _washed(store, visits["vehicle_id"].tolist(), midnight, at, sx[0], sy[0])
    districts = world.districts
    district = districts[districts["adcode"].astype(str) == str(row["district_adcode"])] if len(districts) else districts
    return {"row": row, "visits": visits, "washed": washed, "now": at,
            "district": None if not len(district) else {"name": str(district["name"].iloc[0]),
                                                         "name_en": str(district["name_en"].iloc[0])},
            "incidents": incidents_of(store, [station_id], only=incident_ids)}


def _washed(store, vehicle_ids: list, since: pd.Timestamp, until: pd.Timestamp, x: float, y: float) -> pd.DataFrame:
    """The wash visits among `vehicle_ids` since `since`, as the rules define one (spatial/rules/
    dwell.py wash_visits): a stop of the truck over its day's track whose median when confirmed lies
    within WASH_STATION_MATCH_M of the station: vehicle_id, start_ms, end_ms."""
    from spatial.crs import to_metric
    from spatial.rules.dwell import WASH_STATION_MATCH_M

    if not vehicle_ids:
        return pd.DataFrame(columns=["vehicle_id", "start_ms", "end_ms"])
    tracks = store.read_pings(since, until + pd.Timedelta(milliseconds=1), vehicle_ids)
    stops = track_stops(tracks[["vehicle_id", "epoch_ms", "lon", "lat"]])
    if len(stops):
        sx, sy = to_metric(stops["confirmed_lon"].to_numpy("float64"), stops["confirmed_lat"].to_numpy("float64"))
        stops = stops[np.hypot(np.asarray(sx) - x, np.asarray(sy) - y) <= WASH_STATION_MATCH_M]
    return stops[["vehicle_id", "start_ms", "end_ms"]].sort_values(["start_ms", "vehicle_id"]).reset_index(drop=True)


GATHERERS = {"vehicles": truck, "hazard_sources": hazard_source, "monitoring_points": monitoring_point,
             "entities": enterprise, "sensitive_sites": sensitive_site, "wash_stations": wash_station}


def gather(world: World, layer: str, feature_id: str, *, visible=None, **kwargs) -> dict:
    """The panel data of one entity of a drill-down kind (KINDS); `visible` (app/permissions.Visible:
    `features`, `incidents`; None: the user sees all) narrows its related rows (`narrow`)."""
    if layer not in GATHERERS:
        raise LookupError(f"no drill-down panel for layer {layer!r}")
    if visible is not None and layer != "incidents":  # its incidents chosen before the newest-first limit
        kwargs["incident_ids"] = visible.incidents
    return narrow(GATHERERS[layer](world, feature_id, **kwargs), visible)


# --- a scoped user's panel (issue 14: each sees its own warnings and nobody else's) ----------------

# panel key -> the column naming the related feature; each frame is cut to the visible ids in one isin.
# The city's public layers (sensitive sites, stations, zones ...) are never narrowed.
RELATED_FEATURES = {"hazard_sources": "id", "points": "id", "vehicles": "id", "trucks": "id", "readings": "point_id",
                    "visits": "vehicle_id", "washed": "vehicle_id"}
RELATED_INCIDENTS = ("incidents", "replay_incidents")
RELATED_ROWS = ("carrier", "entity")  # one enterprise row (a truck's carrier, a source's owner)


def _keep(frame: pd.DataFrame, column: str, ids) -> pd.DataFrame:
    return frame[frame[column].astype(str).isin(ids).to_numpy(bool)]


def narrow_impact(view, visible) -> tuple[object, dict[str, int]]:
    """An impact (spatial.impact.Impact) with the hazard sources and trucks `visible` does not name
    dropped, and how many each list lost (the sites inside stay: a public layer)."""
    if visible is None:
        return view, {"hazard_sources": 0, "trucks": 0}
    import dataclasses

    sources = _keep(view.hazard_sources, "id", visible.features)
    trucks = _keep(view.trucks, "id", visible.features)
    hidden = {"hazard_sources": len(view.hazard_sources) - len(sources), "trucks": len(view.trucks) - len(trucks)}
    return dataclasses.replace(view, hazard_sources=sources, trucks=trucks), hidden


def narrow(data: dict, visible) -> dict:
    """The panel `data` without the related rows `visible` does not name: other enterprises' trucks,
    sources and points, incidents not routed to the user; `data["hidden"]` counts the rows dropped
    from each list (the "who is near" lists, trucks and hazard sources, say so: the picture is
    partial). None: everything kept."""
    if visible is None:
        return data
    out, hidden = dict(data), {}
    for key, column in RELATED_FEATURES.items():
        frame = out.get(key)
        if isinstance(frame, pd.DataFrame) and column in frame.columns:
            out[key] = _keep(frame, column, visible.features)
            hidden[key] = len(frame) - len(out[key])
    for key in RELATED_INCIDENTS:
        frame = out.get(key)
        if isinstance(frame, pd.DataFrame) and "id" in frame.columns:
            out[key] = _keep(frame, "id", visible.incidents)
    for key in RELATED_ROWS:
        row = out.get(key)
        if row is not None and str(row["id"]) not in visible.features:
            out[key] = None
    if out.get("impact") is not None:
        out["impact"], lost = narrow_impact(out["impact"], visible)
        hidden["trucks"] = lost["trucks"]
    out["hidden"] = hidden
    return out


def chart_window(world: World, layer: str, feature_id: str, window, **kwargs) -> dict:
    """A panel chart's data for another time window: a truck's speed (`window` in SPEED_WINDOWS_H,
    hours), a point's readings (`window` a READING_WINDOWS_H key) with its row."""
    if layer == "vehicles":
        return speed_series(world, feature_id, int(window), **kwargs)
    if layer == "monitoring_points":
        return {"row": _row(world.monitoring_points, feature_id, "monitoring point"),
                "readings": point_readings(world, feature_id, str(window), **kwargs)}
    raise LookupError(f"no chart window for layer {layer!r}")


def incident(world: World, incident_id: str, *, live: LiveState | None = None, store=None, now=None) -> dict:
    """One incident as IncidentStore.show gives it (row, recipients, history), for its panel."""
    if store is None:
        raise LookupError(f"no incident {incident_id!r}: this screen has no store")
    from data.incidents import IncidentError, IncidentStore

    try:
        shown = IncidentStore(store, world).show(incident_id)
    except IncidentError as exc:
        raise LookupError(str(exc)) from None
    from data.incident_view import evidence  # what the map draws for it (assets/hazmap_evidence.js)

    names = _incident_names(world, [*shown["recipients"]["recipient_id"], shown["incident"]["subject_id"]])
    return {**shown, "now": _now(live, now), "evidence": evidence(world, shown["incident"], store), "names": names}


# the tables an incident's recipients and subject are named from, and the column that names them
_NAMED_BY = (("departments", "name"), ("entities", "name"), ("vehicles", "plate"), ("hazard_sources", "name"),
             ("sensitive_sites", "name"), ("wash_stations", "name"))


def _incident_names(world: World, ids) -> dict[str, tuple[str, str]]:
    """Who an incident went to and what it is about, by name: id -> (Chinese, English). A department
    has both; an enterprise, a truck's plate or a site has one name; an id the World does not hold
    (a monitoring point, a recipient since removed) is left out, and the panel shows the id."""
    wanted = {str(i) for i in ids if isinstance(i, str)}
    names: dict[str, tuple[str, str]] = {}
    for table_name, column in _NAMED_BY:
        table = getattr(world, table_name, None)
        if table is None or column not in table.columns or not len(table):
            continue
        found = table[table["id"].astype(str).isin(wanted)]
        english = found["name_en"] if "name_en" in found.columns else found[column]
        for feature_id, zh, en in zip(found["id"].astype(str), found[column], english, strict=True):
            if isinstance(zh, str) and zh:
                names[feature_id] = (zh, en if isinstance(en, str) and en else zh)
    return names


GATHERERS["incidents"] = incident
