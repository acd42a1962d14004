"""An area's risk as it stood at a time T: a pure function of the World, the live picture at T
and the incidents (frames in, frames out; no I/O).

`resolve_area` turns what an officer picked (a district or park by name, a bbox, an H3 cell
of any resolution, a drawn or uploaded GeoJSON geometry) into one valid polygon inside the
city, clipped where it runs out of it; `snapshot` computes what is inside:

- entities by category, major hazard sources with grade, R and chemicals;
- monitoring points and their state at T (level alarm by severity, another open alert, normal);
- trucks present (their newest ping in the window before T) and what they carry;
- sensitive sites exposed: reached by a hazard source or truck within its protective distance
  (the risk grid's exposure rows), with the reachers and the people there;
- incidents open at T or first seen in the `recent` window before it, with their handling;
- the area's score and its parts: the sum of spatial/risk.py's contributions of the items
  inside (an exposure counts where its site is), and those contributions per grid cell, so
  the cells' scores add up to the area's.

Every table carries lon/lat (cells: their hexagon), so each renderer (reports/) writes the
same rows and the same `figures`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import box, shape
from shapely.validation import explain_validity

from spatial.crs import geometry_to_metric
from spatial.h3cells import H3_RES_RISK_GRID, cell_hex
from spatial.incidents.levels import BY_SEVERITY, level_keys
from spatial.risk import PARTS, SCORE_SCALE, score_rows

AREA_KINDS = ("district", "park", "bbox", "h3", "geojson", "drawn")
RECENT = pd.Timedelta(hours=24)  # incidents first seen this long before T count as recent
MIN_AREA_M2 = 1.0  # below this an area is empty (a degenerate drawing)
TABLES = ("hazard_sources", "monitoring_points", "trucks", "sensitive_sites", "incidents", "cells")


class AreaError(ValueError):
    """An area or time the snapshot cannot be made for; the message says what was wrong."""


@dataclass(frozen=True)
class Area:
    kind: str  # AREA_KINDS
    name: str  # as the officer named it (district name, bbox text, cell, file name)
    geometry: object  # shapely (Multi)Polygon in WGS-84, inside the city
    clipped_share: float = 0.0  # share of the asked area outside the city, cut off

    @property
    def note(self) -> str:
        if self.clipped_share <= 0:
            return ""
        return f"clipped to the city: {self.clipped_share:.1%} of the area lay outside it"


@dataclass
class Snapshot:
    area: Area
    at: pd.Timestamp
    figures: dict[str, float | int]  # key figures, in print order (FIGURE_LABELS)
    tables: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)  # TABLES, each with geometry
    entities_by_category: pd.DataFrame = field(default_factory=pd.DataFrame)
    resolution: int = H3_RES_RISK_GRID
    context: gpd.GeoDataFrame | None = None  # the districts (name, geometry): the map's orientation


# Key figures: name -> (Chinese, English) label; every format prints these, in this order.
FIGURE_LABELS: dict[str, tuple[str, str]] = {
    "area_km2": ("面积(平方公里)", "area (km²)"),
    "score": ("区域风险分值", "area risk score"),
    **{f"score_{p}": (f"分值·{zh}", f"score: {p}") for p, zh in
       zip(PARTS, ("重大危险源", "监测报警", "车辆", "敏感目标暴露", "告警事件"))},
    "entities": ("企业", "entities"),
    "hazard_sources": ("重大危险源", "major hazard sources"),
    **{f"hazard_sources_grade_{g}": (f"{zh}重大危险源", f"grade {g} hazard sources") for g, zh in
       zip(range(1, 5), ("一级", "二级", "三级", "四级"))},
    "monitoring_points": ("监测点", "monitoring points"),
    "points_in_alarm": ("报警监测点", "points in alarm"),
    "trucks": ("在途车辆", "trucks present"),
    "trucks_loaded": ("重载车辆", "loaded trucks"),
    "sensitive_sites_exposed": ("暴露敏感目标", "sensitive sites exposed"),
    "people_exposed": ("暴露人数", "people exposed"),
    "incidents_open": ("未关闭告警", "incidents open"),
    "incidents_recent": ("近24小时告警", "incidents in the last 24 h"),
    "cells": ("风险网格数", "grid cells"),
}


# -- the area ---------------------------------------------------------------------------------

def _area_m2(geom) -> float:
    return float(shapely.area(geometry_to_metric(np.array([geom], dtype=object)))[0])


def city_outline(world) -> object:
    """The union of the districts: what 'inside the city' means."""
    return shapely.union_all(world.districts.geometry.to_numpy())


def _polygonal(geom) -> object:
    if isinstance(geom, shapely.GeometryCollection) and not isinstance(geom, (shapely.MultiPolygon,)):
        parts = [g for g in geom.geoms if isinstance(g, (shapely.Polygon, shapely.MultiPolygon))]
        return shapely.union_all(parts) if parts else shapely.Polygon()
    return geom


def _by_name(table: gpd.GeoDataFrame, name: str, what: str) -> object:
    wanted = str(name).strip()
    columns = [c for c in ("name", "name_en", "adcode", "id") if c in table.columns]
    hit = np.zeros(len(table), bool)
    for c in columns:
        hit |= table[c].astype(str).str.casefold().to_numpy() == wanted.casefold()
    if not hit.any():
        known = ", ".join(table["name"].astype(str).tolist())
        raise AreaError(f"unknown {what} {name!r}: one of {known}")
    return table.geometry[hit].iloc[0]


def area_geometry(world, kind: str, value) -> tuple[object, str]:
    """(geometry in WGS-84, its name) for what the officer picked; raises AreaError."""
    if kind == "district":
        return _by_name(world.districts, value, "district"), str(value)
    if kind == "park":
        return _by_name(world.parks, value, "park"), str(value)
    if kind == "bbox":
        try:
            w, s, e, n = (float(v) for v in (value.split(",") if isinstance(value, str) else value))
        except (TypeError, ValueError) as exc:
            raise AreaError(f"bbox must be four numbers W,S,E,N, got {value!r}") from exc
        if not np.isfinite([w, s, e, n]).all() or not (-180 <= w <= 180 and -180 <= e <= 180
                                                       and -90 <= s <= 90 and -90 <= n <= 90):
            raise AreaError(f"bbox must be longitudes and latitudes W,S,E,N, got {value!r}")
        if w >= e or s >= n:
            raise AreaError(f"bbox is empty: W must be < E and S < N, got {value!r}")
        return box(w, s, e, n), f"bbox {w:g},{s:g},{e:g},{n:g}"
    if kind == "h3":
        cell = str(value).strip().lower()
        if not h3.is_valid_cell(cell):
            raise AreaError(f"not an H3 cell: {value!r}")
        ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
        return shapely.Polygon(ring), f"H3 {cell} (res {h3.get_resolution(cell)})"
    if kind in ("geojson", "drawn"):
        return geojson_geometry(value), "drawn area" if kind == "drawn" else "GeoJSON area"
    raise AreaError(f"area kind must be one of {', '.join(AREA_KINDS)}, got {kind!r}")


def geojson_geometry(doc: dict) -> object:
    """The (union of the) polygon(s) of a GeoJSON geometry, Feature or FeatureCollection."""
    if not isinstance(doc, dict) or "type" not in doc:
        raise AreaError("GeoJSON must be an object with a 'type'")
    kind = doc["type"]
    try:
        if kind == "FeatureCollection":
            geoms = [shape(f["geometry"]) for f in doc.get("features", []) if f.get("geometry")]
        elif kind == "Feature":
            geoms = [shape(doc["geometry"])] if doc.get("geometry") else []
        else:
            geoms = [shape(doc)]
    except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException) as exc:
        raise AreaError(f"GeoJSON geometry cannot be read: {exc}") from exc
    polys = [g for g in geoms if isinstance(g, (shapely.Polygon, shapely.MultiPolygon))]
    if len(polys) != len(geoms):
        raise AreaError("GeoJSON area must be Polygon or MultiPolygon geometries only")
    if not polys:
        raise AreaError("GeoJSON area is empty: no polygon in it")
    for g in polys:
        if not g.is_valid:
            raise AreaError(f"GeoJSON polygon is not valid ({explain_validity(g)}): "
                            "a self-intersecting outline cannot bound an area")
    return shapely.union_all(polys)


def resolve_area(world, kind: str, value) -> Area:
    """What the officer picked -> an Area inside the city (clipped, saying so); AreaError for an
    empty, self-intersecting or wholly outside area, an unknown district or park."""
    geom, name = area_geometry(world, kind, value)
    if geom is None or geom.is_empty:
        raise AreaError(f"{name}: the area is empty")
    if not geom.is_valid:
        raise AreaError(f"{name}: the outline is not valid ({explain_validity(geom)}): "
                        "a self-intersecting outline cannot bound an area")
    asked_m2 = _area_m2(geom)
    if asked_m2 < MIN_AREA_M2:
        raise AreaError(f"{name}: the area is empty ({asked_m2:.2f} m²)")
    city = city_outline(world)
    inside = _polygonal(shapely.intersection(geom, city))
    inside_m2 = 0.0 if inside.is_empty else _area_m2(inside)
    if inside_m2 < MIN_AREA_M2:
        raise AreaError(f"{name}: the area lies wholly outside the city")
    share = max(0.0, 1.0 - inside_m2 / asked_m2)
    if share < 1e-6:  # rounding of the union's edges: not a clip
        return Area(kind, name, geom, 0.0)
    return Area(kind, name, inside, share)


def check_time(at: pd.Timestamp, now: pd.Timestamp, earliest: pd.Timestamp | None) -> None:
    """A snapshot time must not be in the future nor before the store's oldest data."""
    if at > now:
        raise AreaError(f"--at {at.tz_convert('Asia/Shanghai'):%Y-%m-%d %H:%M:%S} is in the future")
    if earliest is None:
        raise AreaError("the store holds no pings or events: there is no past to show")
    if at < earliest:
        raise AreaError(f"--at {at.tz_convert('Asia/Shanghai'):%Y-%m-%d %H:%M:%S} is before the store's data "
                        f"(from {earliest.tz_convert('Asia/Shanghai'):%Y-%m-%d %H:%M:%S})")


# -- the snapshot -----------------------------------------------------------------------------

def _inside(geometry, lon, lat) -> np.ndarray:
    lon = np.asarray(lon, "float64")
    lat = np.asarray(lat, "float64")
    ok = np.isfinite(lon) & np.isfinite(lat)
    out = np.zeros(len(lon), bool)
    if ok.any():
        shapely.prepare(geometry)
        out[ok] = shapely.intersects_xy(geometry, lon[ok], lat[ok])
    return out


def _points(frame: pd.DataFrame, columns: list[str]) -> gpd.GeoDataFrame:
    frame = frame.reset_index(drop=True)
    return gpd.GeoDataFrame(frame[columns], geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=4326)


def snapshot(world, area: Area, at: pd.Timestamp, *, trucks: pd.DataFrame, alarms: pd.DataFrame,
             open_alerts: pd.DataFrame, rows: pd.DataFrame, incidents: pd.DataFrame,
             recipients: pd.DataFrame | None = None, resolution: int = H3_RES_RISK_GRID,
             recent: pd.Timedelta = RECENT) -> Snapshot:
    """The area's snapshot at `at`.

    trucks, alarms, open_alerts: the risk grid's live inputs at `at` (spatial.risk TRUCK_COLUMNS,
    SUBJECT_COLUMNS); rows: the grid's contribution rows with those inputs applied
    (RiskGrid.rows()); incidents: the incident store's rows (id, rule, subject_id, severity,
    status, first_time, closed_at, lon, lat, …); recipients: their recipient rows (optional)."""
    geom = area.geometry
    at = pd.Timestamp(at).tz_convert("UTC")

    # world items inside
    ent = world.entities
    ent_in = ent[_inside(geom, ent.geometry.x, ent.geometry.y)]
    by_cat = ent_in.groupby("category").size().rename("entities").reset_index() \
        if len(ent_in) else pd.DataFrame({"category": [], "entities": []})

    hs = world.hazard_sources
    hs_mask = _inside(geom, hs.geometry.x, hs.geometry.y)
    hs_in = hs[hs_mask]
    chem = world.hazard_source_chemicals
    names = world.chemicals["name_zh"] if "name_zh" in world.chemicals.columns else pd.Series(dtype=object)
    chem = chem[chem["hazard_source_id"].isin(hs_in["id"])]
    un_text = chem["un_number"].astype(str)
    label = ("UN" + un_text + " " + names.reindex(un_text).fillna("").astype(str).to_numpy() + " "
             + chem["quantity_t"].map(lambda q: f"{q:g} t").astype(str))  # per chemical row of a source (few)
    chem_text = label.groupby(chem["hazard_source_id"].to_numpy()).agg("; ".join)
    ent_names = ent.set_index("id")["name"]
    hazard = pd.DataFrame({
        "id": hs_in["id"].astype(str).to_numpy(), "name": hs_in["name"].to_numpy(),
        "entity": ent_names.reindex(hs_in["entity_id"]).to_numpy(object),
        "grade": hs_in["grade"].astype("int64").to_numpy(), "r_value": hs_in["r_value"].astype(float).round(2).to_numpy(),
        "chemicals": chem_text.reindex(hs_in["id"]).fillna("").to_numpy(object),
        "lon": hs_in.geometry.x.to_numpy(), "lat": hs_in.geometry.y.to_numpy()})

    mp = world.monitoring_points
    mp_in = mp[_inside(geom, mp.geometry.x, mp.geometry.y)]
    alarm_sev = alarms.drop_duplicates("subject_id").set_index("subject_id")["severity"] if len(alarms) else pd.Series(dtype=float)
    other = set(open_alerts["subject_id"].astype(str)) if len(open_alerts) else set()
    sev = alarm_sev.reindex(mp_in["id"].astype(str)).to_numpy("float64")
    state = np.where(np.isfinite(sev), "alarm", np.where(mp_in["id"].astype(str).isin(other), "alert", "normal"))
    points = pd.DataFrame({
        "id": mp_in["id"].astype(str).to_numpy(), "hazard_source_id": mp_in["hazard_source_id"].to_numpy(),
        "kind": mp_in["kind"].to_numpy(), "unit": mp_in["unit"].to_numpy(), "state": state,
        "level": np.where(np.isfinite(sev), level_keys(np.nan_to_num(sev, nan=4).astype("int64")), ""),
        "lon": mp_in.geometry.x.to_numpy(), "lat": mp_in.geometry.y.to_numpy()})

    t_in = trucks[_inside(geom, trucks["lon"], trucks["lat"])]
    veh = world.vehicles.set_index("id")
    un = t_in["un_number"].astype(object)
    truck_table = pd.DataFrame({
        "vehicle_id": t_in["vehicle_id"].astype(str).to_numpy(),
        "plate": veh["plate"].reindex(t_in["vehicle_id"]).to_numpy(object),
        "carrier": veh["carrier"].reindex(t_in["vehicle_id"]).to_numpy(object),
        "cargo_state": t_in["cargo_state"].to_numpy(object),
        "hazard_class": t_in["hazard_class"].fillna("").astype(str).to_numpy(object),
        "un_number": un.fillna("").astype(str).to_numpy(object),
        "chemical": names.reindex(un.fillna("").astype(str)).fillna("").to_numpy(object),
        "lon": t_in["lon"].to_numpy("float64"), "lat": t_in["lat"].to_numpy("float64")})

    # which contributions are the area's: their item is inside (an exposure: its site)
    sites = world.sensitive_sites
    sites_in = sites[sites.geometry.intersects(geom).to_numpy()]
    subj_in = open_alerts[_inside(geom, open_alerts["lon"], open_alerts["lat"])]["subject_id"] if len(open_alerts) else []
    alarm_in = alarms[_inside(geom, alarms["lon"], alarms["lat"])]["subject_id"] if len(alarms) else []
    inside_ids = {
        "hazard_sources": set(hazard["id"]), "vehicles": set(truck_table["vehicle_id"]),
        "monitoring_points": set(map(str, alarm_in)), "incidents": set(map(str, subj_in)),
        "sensitive_sites": set(sites_in["id"].astype(str))}
    kind = rows["kind"].to_numpy(object)
    item = rows["item_id"].to_numpy(object).astype(str)
    mine = np.zeros(len(rows), bool)
    for k, ids in inside_ids.items():
        sel = kind == k
        mine[sel] = np.isin(item[sel], list(ids))
    own = rows[mine]
    parts = np.zeros(len(PARTS), "int64")
    np.add.at(parts, own["part"].to_numpy("int64"), own["value"].to_numpy("int64"))

    exposure = own[own["kind"] == "sensitive_sites"]
    reach = exposure.groupby("item_id").agg(points=("value", "sum"),
                                            reached_by=("via", lambda v: ", ".join(sorted(set(map(str, v))))))
    exposed = sites_in[sites_in["id"].astype(str).isin(reach.index)]
    rp = exposed.geometry.representative_point()
    people = pd.to_numeric(exposed["occupancy"], errors="coerce") if "occupancy" in exposed.columns \
        else pd.Series(np.nan, index=exposed.index)
    site_table = pd.DataFrame({
        "id": exposed["id"].astype(str).to_numpy(), "name": exposed["name"].to_numpy(),
        "kind": exposed["kind"].to_numpy(), "occupancy": people.to_numpy("float64"),
        "reached_by": reach["reached_by"].reindex(exposed["id"].astype(str)).to_numpy(object),
        "exposure_points": (reach["points"].reindex(exposed["id"].astype(str)).to_numpy("float64") / SCORE_SCALE).round(3),
        "lon": rp.x.to_numpy(), "lat": rp.y.to_numpy()})

    # incidents open at T or first seen in the recent window, inside the area
    inc = incidents
    first = pd.to_datetime(inc["first_time"], utc=True)
    closed = pd.to_datetime(inc["closed_at"], utc=True)
    open_at = (first <= at) & (closed.isna() | (closed > at))
    recent_at = (first <= at) & (first > at - recent)
    keep = (open_at | recent_at).to_numpy() & _inside(geom, inc["lon"], inc["lat"])
    inc = inc[keep]
    handled = pd.DataFrame(index=inc["id"].astype(str))
    if recipients is not None and len(recipients):
        rec = recipients[recipients["incident_id"].isin(inc["id"])]
        g = rec.groupby("incident_id")
        handled = pd.DataFrame({"recipients": g.size(), "signed": g["signed_at"].count(),
                                "disposed": g["disposed_at"].count(),
                                "departments": g["recipient_id"].agg(lambda v: ", ".join(sorted(set(map(str, v)))))})
    handled = handled.reindex(inc["id"].astype(str))
    incident_table = pd.DataFrame({
        "id": inc["id"].astype(str).to_numpy(), "rule": inc["rule"].to_numpy(object),
        "subject_id": inc["subject_id"].to_numpy(object),
        "level": level_keys(inc["severity"].astype("int64").to_numpy()),
        "level_zh": [BY_SEVERITY[int(s)].name_zh for s in inc["severity"]],
        "status": inc["status"].to_numpy(object),
        "open_at_t": open_at[keep].to_numpy(),
        "first_time": first[keep].dt.tz_convert("Asia/Shanghai").dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(object),
        "closed_at": closed[keep].dt.tz_convert("Asia/Shanghai").dt.strftime("%Y-%m-%d %H:%M:%S").fillna("").to_numpy(object),
        "recipients": handled.get("recipients", pd.Series(np.nan, index=handled.index)).fillna(0).astype("int64").to_numpy(),
        "disposed": handled.get("disposed", pd.Series(np.nan, index=handled.index)).fillna(0).astype("int64").to_numpy(),
        "departments": handled.get("departments", pd.Series("", index=handled.index)).fillna("").to_numpy(object),
        "lon": inc["lon"].astype(float).to_numpy(), "lat": inc["lat"].astype(float).to_numpy()})

    cells = score_rows(own, resolution) if len(own) else pd.DataFrame(columns=[*PARTS, "score", "band"])
    hexes = np.array(cell_hex(cells.index.to_numpy("uint64")), dtype=object)
    cell_geoms = [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in hexes]
    cell_table = gpd.GeoDataFrame(
        {"cell": hexes, **{p: cells[p].to_numpy("float64") for p in PARTS},
         "score": cells["score"].to_numpy("float64"), "band": cells["band"].to_numpy(object)},
        geometry=gpd.GeoSeries(cell_geoms, crs=4326), crs=4326).sort_values("score", ascending=False,
                                                                            kind="stable").reset_index(drop=True)

    area_km2 = _area_m2(geom) / 1e6
    grades = hazard["grade"].to_numpy()
    figures: dict[str, float | int] = {
        "area_km2": round(area_km2, 2),
        "score": round(float(parts.sum()) / SCORE_SCALE, 3),
        **{f"score_{p}": round(float(parts[i]) / SCORE_SCALE, 3) for i, p in enumerate(PARTS)},
        "entities": int(len(ent_in)),
        "hazard_sources": int(len(hazard)),
        **{f"hazard_sources_grade_{g}": int((grades == g).sum()) for g in range(1, 5)},
        "monitoring_points": int(len(points)),
        "points_in_alarm": int((points["state"] == "alarm").sum()),
        "trucks": int(len(truck_table)),
        "trucks_loaded": int((truck_table["cargo_state"] == "loaded").sum()),
        "sensitive_sites_exposed": int(len(site_table)),
        "people_exposed": int(np.nansum(site_table["occupancy"].to_numpy("float64"))),
        "incidents_open": int(incident_table["open_at_t"].sum()),
        "incidents_recent": int(recent_at[keep].sum()),
        "cells": int(len(cell_table)),
    }
    tables = {
        "hazard_sources": _points(hazard, list(hazard.columns)),
        "monitoring_points": _points(points, list(points.columns)),
        "trucks": _points(truck_table, list(truck_table.columns)),
        "sensitive_sites": _points(site_table, list(site_table.columns)),
        "incidents": _points(incident_table, list(incident_table.columns)),
        "cells": cell_table,
    }
    return Snapshot(area=area, at=at, figures=figures, tables=tables, entities_by_category=by_cat,
                    resolution=resolution, context=world.districts[["name", "geometry"]])
