"""The H3 risk grid: every cell's risk score, kept as its parts so it can be explained.

A score is a sum of *contributions*, each one an item of the world or of the live picture
placed at one point, hence in one H3 cell (docs/risk.md has the formula and the weights):

- **hazard**: a major hazard source, `hazard_grade_pts[grade] + hazard_per_r · R`;
- **alarms**: a monitoring point in alarm, `alarm_pts[severity]`;
- **trucks**: a present truck, `truck_cargo_pts[cargo_state] · class_factor(hazard class)`
  (acute classes 1, 2.3, 6.1, 7 weigh most);
- **exposure**: a sensitive site within the protective distance (ERG, by UN number) of a
  hazard source or of a loaded / uncleaned truck, `exposure_pts · people/1000 · threat`,
  placed in the *site's* cell (the people are there); `people` is the site's occupancy
  (missing: the kind's default; at least the kind's floor, e.g. a drinking-water zone);
- **incidents**: an open alert of a subject, `incident_pts[severity]`.

Contributions are whole numbers of 1/`SCORE_SCALE` point (int64), so sums are exact: the same
score whatever order or batch split the live input came in, and a cell's score at a coarser
resolution is exactly the sum of its children's (an item belongs to the H3 parent of its cell
at `H3_RES_GRID_FINEST`). All weights are ≥ 0, so adding an item never lowers a score.

`RiskGrid` keeps the world's contributions and upserts the live ones (trucks, alarms,
incidents by key), versioning every finest cell it changes, so a screen asks only for the
cells changed since the version it holds. Pure: no I/O; frames in, frames out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from spatial.crs import geometry_to_metric, to_metric
from spatial.h3cells import H3_RES_GRID_FINEST, H3_RES_RISK_GRID, RISK_GRID_RESOLUTIONS, cell_ints, parent_cells

PARTS: tuple[str, ...] = ("hazard", "alarms", "trucks", "exposure", "incidents")
HAZARD, ALARMS, TRUCKS, EXPOSURE, INCIDENTS = range(len(PARTS))
SCORE_SCALE = 1000  # contributions in thousandths of a point, integers: sums exact in any order

# Bands, lowest first: the Ministry of Emergency Management's blue 低, yellow 一般, orange 较大,
# red 重大 (DOMAIN.md §10), as warning levels 4..1.
BANDS: tuple[str, ...] = ("blue", "yellow", "orange", "red")
BAND_LEVELS = {"blue": 4, "yellow": 3, "orange": 2, "red": 1}
NO_BAND = ""
CARGO_STATES = ("loaded", "empty_uncleaned", "empty_clean", "unknown")
TRUCK_COLUMNS = ("vehicle_id", "lon", "lat", "cargo_state", "hazard_class", "un_number")
SUBJECT_COLUMNS = ("subject_id", "lon", "lat", "severity")
ROW_COLUMNS = ("cell", "part", "value", "kind", "item_id", "via")


@dataclass(frozen=True)
class RiskWeights:
    """Every weight of the score (engineering defaults: no regulation fixes a cell score;
    docs/risk.md explains each). Points are per item; all ≥ 0."""

    # A major hazard source by GB 18218 grade 1..4, plus per unit of its R value.
    hazard_grade_pts: tuple[float, float, float, float] = (40.0, 25.0, 15.0, 8.0)
    hazard_per_r: float = 0.1
    # A monitoring point in alarm, by severity 1..4 (point_level: 1 = high-high).
    alarm_pts: tuple[float, float, float, float] = (20.0, 12.0, 8.0, 4.0)
    # A present truck by cargo state (an empty tank not yet cleaned still carries residue:
    # ADR 1.1.3.6); `unknown` is a truck without an active waybill.
    truck_cargo_pts: dict[str, float] = field(default_factory=lambda: {
        "loaded": 4.0, "empty_uncleaned": 2.0, "empty_clean": 0.0, "unknown": 0.0})
    # Class factors: acute hazards (explosives, toxic gas, toxic, radioactive) weigh most.
    acute_classes: tuple[str, ...] = ("1", "2.3", "6.1", "7")
    acute_factor: float = 2.5
    flammable_classes: tuple[str, ...] = ("2.1", "3", "4.1", "4.2", "4.3", "5.1", "5.2")
    flammable_factor: float = 1.5
    other_factor: float = 1.0
    # Exposure: points per 1,000 people of a site reached, times the threat's weight.
    exposure_pts: float = 1.0
    # Threat weight of a hazard source by grade 1..4 (its R is in its own part).
    exposure_source_threat: tuple[float, float, float, float] = (2.0, 1.5, 1.0, 0.5)
    # Threat weight of a truck by cargo state (times its class factor).
    exposure_truck_threat: dict[str, float] = field(default_factory=lambda: {
        "loaded": 1.0, "empty_uncleaned": 0.5, "empty_clean": 0.0, "unknown": 0.0})
    # People at a site whose occupancy is missing, by kind (GB/T 37243 class 1 is ≥ 100 people).
    default_people: dict[str, float] = field(default_factory=lambda: {
        "school": 1500, "kindergarten": 250, "hospital": 800, "elderly_home": 200, "residential": 5000,
        "water_protection": 0, "government": 300})
    default_people_other: float = 100.0
    # People-equivalent floor by kind: a drinking-water source serves a town though nobody lives on it.
    floor_people: dict[str, float] = field(default_factory=lambda: {"water_protection": 1000})
    # Protective distance (m) when the catalogue has none for a substance (engineering default,
    # ERG's smallest initial isolation is 30 m, its general spill isolation 50-100 m).
    default_protective_m: float = 100.0
    # An open alert by severity 1..4.
    incident_pts: tuple[float, float, float, float] = (60.0, 30.0, 15.0, 5.0)
    # Band cut points (lower bounds of yellow, orange, red) for a res-8 cell. A cell at
    # resolution r covers ~7^(8-r) res-8 cells; its cut points are these times
    # 7^(band_level_exponent·(8-r)): with ½, √7 a level, between a sum (1: a coarse cell would
    # never turn red where one of its children is) and a density (0: every coarse cell red),
    # so a cluster stands out at city zoom.
    band_cuts: tuple[float, float, float] = (20.0, 50.0, 100.0)
    band_level_exponent: float = 0.5

    def __post_init__(self) -> None:
        for name in ("hazard_grade_pts", "alarm_pts", "exposure_source_threat", "incident_pts"):
            values = getattr(self, name)
            if len(values) != 4:
                raise ValueError(f"RiskWeights.{name} needs 4 values (grade or severity 1..4), got {values!r}")
        for name in ("truck_cargo_pts", "exposure_truck_threat"):
            if set(getattr(self, name)) != set(CARGO_STATES):
                raise ValueError(f"RiskWeights.{name} must weigh exactly {CARGO_STATES}, got {sorted(getattr(self, name))}")
        flat = [*self.hazard_grade_pts, self.hazard_per_r, *self.alarm_pts, *self.truck_cargo_pts.values(),
                self.acute_factor, self.flammable_factor, self.other_factor, self.exposure_pts,
                *self.exposure_source_threat, *self.exposure_truck_threat.values(), *self.default_people.values(),
                self.default_people_other, *self.floor_people.values(), self.default_protective_m,
                *self.incident_pts, *self.band_cuts, self.band_level_exponent]
        if not all(np.isfinite(v) and v >= 0 for v in flat):
            raise ValueError("every RiskWeights weight must be a finite number ≥ 0 (a negative weight would let "
                             "an added hazard lower a score)")
        if list(self.band_cuts) != sorted(self.band_cuts) or self.band_cuts[0] <= 0:
            raise ValueError(f"RiskWeights.band_cuts must be increasing and > 0, got {self.band_cuts!r}")


def weights_from(overrides: dict | None) -> RiskWeights:
    """RiskWeights with some fields overridden (settings: lists become tuples); an unknown name
    is a ValueError naming it."""
    overrides = dict(overrides or {})
    known = set(RiskWeights.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown risk weights {unknown}; known: {sorted(known)}")
    return RiskWeights(**{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


# -- small vectorised helpers -----------------------------------------------------------------

def _fixed(points: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(points, "float64") * SCORE_SCALE).astype("int64")


def _by_level(levels, table: tuple[float, ...], what: str) -> np.ndarray:
    levels = np.asarray(levels)
    levels = levels.astype("float64") if levels.dtype.kind in "biuf" else \
        pd.to_numeric(pd.Series(levels, dtype=object), errors="coerce").to_numpy("float64")
    bad = ~np.isin(levels, (1, 2, 3, 4))
    if bad.any():
        raise ValueError(f"{what} must be 1..4, got {sorted(set(levels[bad].tolist()))[:5]}")
    return np.asarray(table, "float64")[levels.astype("int64") - 1]


def _per_distinct(values, compute, memo: dict | None) -> np.ndarray:
    """`compute` (distinct values -> floats) applied to each value, each distinct value computed
    once, and at most once per `memo` (a dict the caller keeps: a live grid asks again and again
    for the same few classes and UN numbers)."""
    codes, uniq = _factorize(values)
    if memo is None:
        return compute(uniq)[codes] if len(uniq) else np.zeros(0, "float64")
    keys = [None if v is None or v != v else v for v in uniq.tolist()]  # NaN -> None: one key
    fresh = [k for k in dict.fromkeys(keys) if k not in memo]
    if fresh:
        memo.update(zip(fresh, compute(np.array(fresh, dtype=object)).tolist()))
    return np.array([memo[k] for k in keys], "float64")[codes] if keys else np.zeros(0, "float64")


def class_factors(hazard_class, weights: RiskWeights, memo: dict | None = None) -> np.ndarray:
    """Class factor of each dangerous-goods class (`1.1D` counts as class 1); missing: other."""
    return _per_distinct(hazard_class, lambda uniq: _class_factors_unique(
        pd.Series(uniq, dtype=object).fillna(""), weights), memo)


def _class_factors_unique(cls: pd.Series, weights: RiskWeights) -> np.ndarray:
    cls = cls.astype(str).str.strip()
    main = cls.str.extract(r"^(\d(?:\.\d)?)", expand=False).fillna("")
    top = main.str.split(".").str[0]  # "1.1" -> "1": a division counts as its class
    acute = (main.isin(weights.acute_classes) | top.isin(weights.acute_classes)).to_numpy()
    flammable = (main.isin(weights.flammable_classes) | top.isin(weights.flammable_classes)).to_numpy()
    return np.where(acute, weights.acute_factor, np.where(flammable, weights.flammable_factor, weights.other_factor))


def protective_distance_m(un_numbers, chemicals: pd.DataFrame, default_m: float, memo: dict | None = None
                          ) -> np.ndarray:
    """Protective distance (m) per UN number from the catalogue: the ERG small-spill day
    protective action distance, else the large-spill distance, else the initial isolation, else
    `default_m` (an unknown or missing UN number too)."""
    return _per_distinct(un_numbers, lambda uniq: _distances_unique(uniq, chemicals, default_m), memo)


def _distances_unique(uniq: np.ndarray, chemicals: pd.DataFrame, default_m: float) -> np.ndarray:
    un = pd.Index(pd.Series(uniq, dtype=object).fillna("").astype(str).to_numpy(object), dtype=object)
    out = np.full(len(un), np.nan)
    for column in ("erg_day_m", "erg_large_spill_m", "erg_isolation_m"):
        if column in chemicals.columns:
            values = pd.to_numeric(chemicals[column], errors="coerce")
            values = values[~values.index.duplicated()]
            found = values.reindex(un).to_numpy("float64")
            out = np.where(np.isnan(out), found, out)
    return np.where(np.isnan(out), default_m, out)


Rows = dict  # column name (ROW_COLUMNS) -> numpy array: contribution rows inside the hot path


def _rows(cell, part, value, kind, item_id, via=None) -> Rows:
    n = len(cell)
    return {
        "cell": np.asarray(cell, "uint64"), "part": np.full(n, part, "int8"), "value": np.asarray(value, "int64"),
        "kind": np.full(n, kind, dtype=object), "item_id": np.asarray(item_id, dtype=object),
        "via": np.full(n, "", dtype=object) if via is None else np.asarray(via, dtype=object),
    }


def _cat(*parts: Rows) -> Rows:
    return {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}


def _frame(rows: Rows) -> pd.DataFrame:
    # object columns, not pandas' Arrow strings: converting 15,000 ids costs more than the score
    return pd.DataFrame({c: pd.Series(rows[c], dtype=rows[c].dtype) for c in ROW_COLUMNS})


def _factorize(values) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values) of an object array; the per-row work of the callers is then
    done once per distinct value (a few classes, states, UN numbers)."""
    codes, uniq = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=False)
    return codes, np.asarray(uniq, dtype=object)


def _lookup(values: np.ndarray, table: dict[str, float]) -> np.ndarray:
    codes, uniq = _factorize(values)
    return np.array([table.get(v, 0.0) for v in uniq.tolist()], "float64")[codes] if len(uniq) else \
        np.zeros(0, "float64")


def _empty() -> Rows:
    return _rows(np.zeros(0, "uint64"), HAZARD, np.zeros(0, "int64"), "", np.zeros(0, dtype=object))


def empty_rows() -> pd.DataFrame:
    return _frame(_empty())


def _check_columns(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing} (needs {list(columns)})")


# -- the world's sites, once ------------------------------------------------------------------

class Sites:
    """Sensitive sites as the exposure part needs them: people (occupancy, or the kind's
    default, at least the kind's floor), the cell of each site's representative point, and
    their metric geometry indexed for `reached`: point sites in a k-d tree (a point's distance
    is exact there), other sites by their bounding circle, refined on exact geometry."""

    def __init__(self, sites: gpd.GeoDataFrame, weights: RiskWeights):
        _check_columns(sites, ("id", "kind"), "sensitive_sites")
        self.ids = sites["id"].astype(str).to_numpy(object)
        kinds = sites["kind"].astype(str)
        occupancy = (pd.to_numeric(sites["occupancy"], errors="coerce") if "occupancy" in sites.columns
                     else pd.Series(np.nan, index=sites.index)).to_numpy("float64")
        if (occupancy < 0).any():
            raise ValueError(f"sensitive_sites.occupancy must be ≥ 0: {list(self.ids[occupancy < 0][:5])}")
        default = kinds.map(weights.default_people).fillna(weights.default_people_other).to_numpy("float64")
        floor = kinds.map(weights.floor_people).fillna(0.0).to_numpy("float64")
        self.people = np.maximum(np.where(np.isnan(occupancy), default, occupancy), floor)
        geoms = sites.geometry.to_numpy()
        metric = geometry_to_metric(geoms) if len(geoms) else np.zeros(0, dtype=object)
        points = shapely.point_on_surface(geoms) if len(geoms) else np.zeros(0, dtype=object)
        self.cell = cell_ints(shapely.get_x(points), shapely.get_y(points), H3_RES_GRID_FINEST) \
            if len(geoms) else np.zeros(0, "uint64")
        is_point = shapely.get_type_id(metric) == 0 if len(geoms) else np.zeros(0, bool)
        self._point_index = np.flatnonzero(is_point)
        xy = shapely.get_coordinates(metric[is_point]) if is_point.any() else np.zeros((0, 2))
        self._point_tree = cKDTree(xy)
        self._area_index = np.flatnonzero(~is_point)
        self._areas = metric[~is_point]
        if len(self._areas):
            centre = shapely.get_coordinates(shapely.centroid(self._areas))
            corners = shapely.bounds(self._areas)
            self._area_radius = np.hypot(corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]) / 2 \
                + np.hypot(centre[:, 0] - (corners[:, 0] + corners[:, 2]) / 2, centre[:, 1] - (corners[:, 1] + corners[:, 3]) / 2)
        else:
            centre, self._area_radius = np.zeros((0, 2)), np.zeros(0)
        self._area_tree = cKDTree(centre)
        self._max_area_radius = float(self._area_radius.max()) if len(self._area_radius) else 0.0

    def reached(self, x: np.ndarray, y: np.ndarray, distance_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(threat index, site index) of every site within `distance_m` of a threat at metric
        x, y (exact distance to the site's geometry), ordered by threat then site."""
        ok = np.isfinite(x) & np.isfinite(y) & (distance_m > 0)
        if not ok.any() or not len(self.ids):
            return np.zeros(0, "int64"), np.zeros(0, "int64")
        index = np.flatnonzero(ok)
        xy, d = np.column_stack([x[ok], y[ok]]), distance_m[ok]
        threats = cKDTree(xy)
        found_t, found_s = [], []
        if len(self._point_index):
            # every pair within the largest distance, then each threat's own (a point's distance is exact)
            pairs = threats.sparse_distance_matrix(self._point_tree, float(d.max()), output_type="ndarray")
            keep = pairs["v"] <= d[pairs["i"]]
            found_t.append(pairs["i"][keep])
            found_s.append(self._point_index[pairs["j"][keep]])
        if len(self._area_index):
            # candidates: threats within an area's bounding circle + the largest distance
            # (one ball per area: a few hundred), narrowed by each threat's own distance
            balls = threats.query_ball_point(self._area_tree.data, self._area_radius + float(d.max()),
                                             return_sorted=False)
            counts = np.fromiter(map(len, balls), np.int64, len(balls))
            t = np.concatenate(balls).astype("int64") if counts.sum() else np.zeros(0, "int64")
            a = np.repeat(np.arange(len(balls)), counts)
            gap = np.hypot(*(xy[t] - self._area_tree.data[a]).T)
            near = gap <= d[t] + self._area_radius[a]
            t, a = t[near], a[near]
            if len(t):  # candidates only: exact distance to the outline
                exact = shapely.distance(shapely.points(xy[t]), self._areas[a]) <= d[t]
                found_t.append(t[exact])
                found_s.append(self._area_index[a[exact]])
        t = np.concatenate(found_t).astype("int64") if found_t else np.zeros(0, "int64")
        s = np.concatenate(found_s).astype("int64") if found_s else np.zeros(0, "int64")
        order = np.lexsort((s, t))
        return index[t[order]], s[order]


# -- contributions ----------------------------------------------------------------------------

def hazard_source_rows(world, sites: Sites, weights: RiskWeights) -> pd.DataFrame:
    """Hazard part of every major hazard source and the exposure of the sites within the
    protective distance of its worst substance (the largest distance among its chemicals)."""
    hs = world.hazard_sources
    if not len(hs):
        return empty_rows()
    return _frame(_hazard_source_rows(world, sites, weights))


def _hazard_source_rows(world, sites: Sites, weights: RiskWeights) -> Rows:
    hs = world.hazard_sources
    _check_columns(hs, ("id", "grade", "r_value"), "hazard_sources")
    ids = hs["id"].astype(str).to_numpy(object)
    grade = hs["grade"].to_numpy()
    lon, lat = hs.geometry.x.to_numpy(), hs.geometry.y.to_numpy()
    r_value = pd.to_numeric(hs["r_value"], errors="coerce").fillna(0).clip(lower=0).to_numpy("float64")
    pts = _by_level(grade, weights.hazard_grade_pts, "hazard_sources.grade") + weights.hazard_per_r * r_value
    own = _rows(cell_ints(lon, lat, H3_RES_GRID_FINEST), HAZARD, _fixed(pts), "hazard_sources", ids)

    chem = world.hazard_source_chemicals
    distance = np.full(len(ids), weights.default_protective_m)
    if len(chem):
        d = protective_distance_m(chem["un_number"], world.chemicals, weights.default_protective_m)
        worst = pd.Series(d).groupby(chem["hazard_source_id"].astype(str).to_numpy()).max()
        distance = worst.reindex(ids).fillna(weights.default_protective_m).to_numpy("float64")
    x, y = to_metric(lon, lat)
    threat = _by_level(grade, weights.exposure_source_threat, "hazard_sources.grade")
    t, s = sites.reached(np.asarray(x), np.asarray(y), distance)
    exposure = _rows(sites.cell[s], EXPOSURE, _fixed(weights.exposure_pts * sites.people[s] / 1000 * threat[t]),
                     "sensitive_sites", sites.ids[s], ids[t])
    return _cat(own, exposure)


def truck_rows(trucks: pd.DataFrame, sites: Sites, chemicals: pd.DataFrame, weights: RiskWeights) -> pd.DataFrame:
    """Trucks part of every present truck (`TRUCK_COLUMNS`; no position: nothing) and the
    exposure of the sites within its cargo's protective distance."""
    return _frame(_truck_rows(trucks, sites, chemicals, weights))


def _truck_rows(trucks: pd.DataFrame, sites: Sites, chemicals: pd.DataFrame, weights: RiskWeights,
                memo: dict | None = None) -> Rows:
    memo = {} if memo is None else memo
    _check_columns(trucks, TRUCK_COLUMNS, "trucks")
    if not len(trucks):
        return _empty() | {"src": np.zeros(0, "int64"), "site": np.zeros(0, "int64")}
    state = trucks["cargo_state"].to_numpy(object)
    state = np.where(pd.isna(state), "unknown", state).astype(object)
    bad = ~np.isin(state, CARGO_STATES)
    if bad.any():
        raise ValueError(f"trucks.cargo_state must be one of {CARGO_STATES}, got {sorted(set(state[bad]))[:5]}")
    lon = pd.to_numeric(trucks["lon"], errors="coerce").to_numpy("float64")
    lat = pd.to_numeric(trucks["lat"], errors="coerce").to_numpy("float64")
    here = np.isfinite(lon) & np.isfinite(lat)
    ids = trucks["vehicle_id"].to_numpy(object)
    factor = class_factors(trucks["hazard_class"].to_numpy(object), weights, memo.setdefault("class", {}))
    pts = _lookup(state, weights.truck_cargo_pts) * factor
    cell = cell_ints(lon, lat, H3_RES_GRID_FINEST)
    keep = here & (pts > 0)
    own = _rows(cell[keep], TRUCKS, _fixed(pts[keep]), "vehicles", ids[keep])
    own["src"] = np.flatnonzero(keep)  # the input row each contribution came from (its key)
    own["site"] = np.full(int(keep.sum()), -1, "int64")  # an exposure's site index; -1 for the rest

    threat = _lookup(state, weights.exposure_truck_threat) * factor
    risky = here & (threat > 0)
    if not risky.any():
        return own
    distance = np.zeros(len(ids))
    distance[risky] = protective_distance_m(trucks["un_number"].to_numpy(object)[risky], chemicals,
                                            weights.default_protective_m, memo.setdefault("distance", {}))
    x, y = np.full(len(ids), np.nan), np.full(len(ids), np.nan)
    x[risky], y[risky] = to_metric(lon[risky], lat[risky])
    t, s = sites.reached(x, y, distance)
    exposure = _rows(sites.cell[s], EXPOSURE, _fixed(weights.exposure_pts * sites.people[s] / 1000 * threat[t]),
                     "sensitive_sites", sites.ids[s], ids[t])
    exposure["src"], exposure["site"] = t, s
    return _cat(own, exposure)


def subject_rows(subjects: pd.DataFrame, part: int, kind: str, table: tuple[float, ...]) -> pd.DataFrame:
    """Alarm or incident part of subjects (`SUBJECT_COLUMNS`, severity 1..4); a row whose
    severity is missing or above 4, or without a position, adds nothing."""
    return _frame(_subject_rows(subjects, part, kind, table))


def _subject_rows(subjects: pd.DataFrame, part: int, kind: str, table: tuple[float, ...]) -> Rows:
    _check_columns(subjects, SUBJECT_COLUMNS, kind)
    if not len(subjects):
        return _empty() | {"src": np.zeros(0, "int64"), "site": np.zeros(0, "int64")}
    severity = pd.to_numeric(subjects["severity"], errors="coerce").to_numpy("float64")
    lon = pd.to_numeric(subjects["lon"], errors="coerce").to_numpy("float64")
    lat = pd.to_numeric(subjects["lat"], errors="coerce").to_numpy("float64")
    keep = np.isin(severity, (1, 2, 3, 4)) & np.isfinite(lon) & np.isfinite(lat)
    pts = _by_level(severity[keep], table, f"{kind}.severity")
    rows = _rows(cell_ints(lon[keep], lat[keep], H3_RES_GRID_FINEST), part, _fixed(pts), kind,
                 subjects["subject_id"].astype(str).to_numpy(object)[keep])
    rows["src"] = np.flatnonzero(keep)
    rows["site"] = np.full(len(rows["src"]), -1, "int64")
    return rows


# -- scores -----------------------------------------------------------------------------------

def score_rows(rows: pd.DataFrame, resolution: int = H3_RES_RISK_GRID, weights: RiskWeights | None = None
               ) -> pd.DataFrame:
    """Each cell's parts (points), score and band at `resolution` from contribution rows:
    indexed by cell (uint64), columns PARTS, `score`, `band`; cells scoring 0 are left out."""
    weights = weights or RiskWeights()
    if resolution not in RISK_GRID_RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RISK_GRID_RESOLUTIONS}, got {resolution!r}")
    cells = parent_cells(rows["cell"].to_numpy("uint64"), resolution)
    return _table(cells, rows["part"].to_numpy("int64"), rows["value"].to_numpy("int64"), resolution, weights)


def _table(cells: np.ndarray, part: np.ndarray, value: np.ndarray, resolution: int, weights: RiskWeights,
           keep_zero: bool = False) -> pd.DataFrame:
    uniq, inverse = np.unique(cells, return_inverse=True)
    sums = np.zeros((len(uniq), len(PARTS)), "int64")
    np.add.at(sums, (inverse, part), value)
    total = sums.sum(axis=1)
    keep = np.ones(len(uniq), bool) if keep_zero else total > 0
    out = pd.DataFrame(sums[keep] / SCORE_SCALE, columns=list(PARTS), index=pd.Index(uniq[keep], name="cell"))
    out["score"] = total[keep] / SCORE_SCALE
    out["band"] = pd.Series(bands(out["score"].to_numpy(), resolution, weights), index=out.index, dtype=object)
    return out


def bands(score: np.ndarray, resolution: int, weights: RiskWeights | None = None) -> np.ndarray:
    """Band name of each score at `resolution` ('' for 0): blue > 0, then yellow, orange, red
    from `band_cuts` × 7^(band_level_exponent · (8 - resolution))."""
    weights = weights or RiskWeights()
    density = np.asarray(score, "float64") / 7.0 ** (weights.band_level_exponent * (H3_RES_RISK_GRID - resolution))
    code = np.searchsorted(np.asarray(weights.band_cuts), density, side="right")
    names = np.array(BANDS, dtype=object)[code]
    return np.where(density > 0, names, NO_BAND).astype(object)


def explain(rows: pd.DataFrame, cell: int, resolution: int) -> pd.DataFrame:
    """The contributions inside one cell: kind, item_id, via (the threat of an exposure), part
    name and points, largest first."""
    inside = rows[parent_cells(rows["cell"].to_numpy("uint64"), resolution) == np.uint64(cell)]
    out = inside.assign(part=np.array(PARTS, dtype=object)[inside["part"].to_numpy("int64")],
                        points=inside["value"].to_numpy("int64") / SCORE_SCALE)
    return out[["part", "kind", "item_id", "via", "points"]].sort_values("points", ascending=False,
                                                                          kind="stable").reset_index(drop=True)


# -- the incremental grid ---------------------------------------------------------------------

LIVE_KINDS = ("trucks", "alarms", "incidents")
_LIVE_ITEM_KINDS = {"trucks": "vehicles", "alarms": "monitoring_points", "incidents": "incidents"}
_HELD = ("cell", "part", "value", "site")


class _Held:
    """The live contribution rows of one kind as numeric arrays, each row tagged with the
    integer code of its key (the truck or subject it came from: replacing a key's rows is a
    mask) and, for an exposure, the index of the site; ids are only spelled out by `frame`."""

    def __init__(self, kind: str):
        self.kind = kind
        self.keys = pd.Index([], dtype=object)
        self.code = np.zeros(0, "int64")
        self.cols = {c: np.zeros(0, dtype=d) for c, d in zip(_HELD, ("uint64", "int8", "int64", "int64"))}

    def codes_of(self, keys: np.ndarray) -> np.ndarray:
        keys = pd.Index(keys, dtype=object)  # not inferred as Arrow strings: 10x the cost
        found = self.keys.get_indexer(keys)
        if (found < 0).any():
            fresh = pd.unique(keys[found < 0].to_numpy(object))
            self.keys = self.keys.append(pd.Index(fresh, dtype=object))
            found = self.keys.get_indexer(keys)
        return found.astype("int64")

    def replace(self, codes: np.ndarray, rows: Rows, row_codes: np.ndarray) -> dict[str, np.ndarray]:
        """Drop the rows of `codes`, add `rows`; returns the removed rows' cell, part, value."""
        hit = np.zeros(len(self.keys), bool)
        hit[codes] = True
        gone = hit[self.code]
        removed = {c: self.cols[c][gone] for c in ("cell", "part", "value")}
        kept = ~gone
        self.code = np.concatenate([self.code[kept], row_codes])
        for c in _HELD:
            self.cols[c] = np.concatenate([self.cols[c][kept], rows[c].astype(self.cols[c].dtype)])
        return removed

    def frame(self, site_ids: np.ndarray) -> pd.DataFrame:
        keys = self.keys.to_numpy(object)[self.code]
        exposure = self.cols["part"] == EXPOSURE
        sites = site_ids[self.cols["site"][exposure]]
        item_id, via, kind = keys.copy(), np.full(len(keys), "", dtype=object), np.full(len(keys), self.kind, object)
        item_id[exposure], via[exposure], kind[exposure] = sites, keys[exposure], "sensitive_sites"
        return _frame({"cell": self.cols["cell"], "part": self.cols["part"], "value": self.cols["value"],
                       "kind": kind, "item_id": item_id, "via": via})


def _last_per_key(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    dup = pd.Index(frame[key].to_numpy(object), dtype=object).duplicated(keep="last")
    return frame[~dup] if dup.any() else frame


class RiskGrid:
    """The grid of one World, with the live contributions upserted by key.

    `apply(trucks=…, alarms=…, incidents=…)` takes, for each kind given, rows of the items
    that changed (a truck's whole current row; an alarm or incident with its current severity,
    NaN or > 4 when it is over); their old contributions are replaced. Every finest cell whose
    total changed gets the new version, so `scores(resolution, since)` returns the cells at
    `resolution` with a changed child. Not thread-safe: callers hold a lock."""

    def __init__(self, world, weights: RiskWeights | None = None):
        self.weights = weights or RiskWeights()
        self.chemicals = world.chemicals
        self.sites = Sites(world.sensitive_sites, self.weights)
        self.static = hazard_source_rows(world, self.sites, self.weights)
        self.live = {k: _Held(kind) for k, kind in _LIVE_ITEM_KINDS.items()}
        self.version = 1
        self._memo: dict[str, dict] = {}  # class factor and protective distance per distinct value
        self._cells = np.zeros(0, "uint64")  # finest cells ever touched, sorted
        self._sums = np.zeros((0, len(PARTS)), "int64")
        self._versions = np.zeros(0, "int64")
        self._add(self.static["cell"].to_numpy("uint64"), self.static["part"].to_numpy("int64"),
                  self.static["value"].to_numpy("int64"), 1)
        self._static_cells = (self._cells, self._sums.copy(), self._versions.copy())

    def fresh(self) -> "RiskGrid":
        """A grid of the same World with no live items, sharing the prepared world part."""
        grid = object.__new__(RiskGrid)
        grid.weights, grid.chemicals, grid.sites, grid.static = self.weights, self.chemicals, self.sites, self.static
        grid.live = {k: _Held(kind) for k, kind in _LIVE_ITEM_KINDS.items()}
        grid.version = 1
        grid._memo = {}
        grid._cells, grid._sums, grid._versions = self._static_cells
        grid._static_cells = self._static_cells
        return grid

    def rows(self) -> pd.DataFrame:
        """The contribution rows of the whole grid (world and live)."""
        return pd.concat([self.static, *(h.frame(self.sites.ids) for h in self.live.values())], ignore_index=True)

    def apply(self, trucks: pd.DataFrame | None = None, alarms: pd.DataFrame | None = None,
              incidents: pd.DataFrame | None = None) -> int:
        """Upsert live items; returns the grid's version (unchanged when nothing changed).
        Bad input raises before anything changes."""
        new: dict[str, tuple[Rows, np.ndarray]] = {}
        if trucks is not None:
            _check_columns(trucks, TRUCK_COLUMNS, "trucks")
            trucks = _last_per_key(trucks, "vehicle_id")  # a batch's last word per truck
            rows = _truck_rows(trucks, self.sites, self.chemicals, self.weights, self._memo)
            # every row's key is its truck's (an exposure's too): the input row it came from
            new["trucks"] = (rows, trucks["vehicle_id"].to_numpy(object).astype(str).astype(object))
        for kind, frame, part, table in (("alarms", alarms, ALARMS, self.weights.alarm_pts),
                                         ("incidents", incidents, INCIDENTS, self.weights.incident_pts)):
            if frame is not None:
                _check_columns(frame, SUBJECT_COLUMNS, kind)
                frame = _last_per_key(frame, "subject_id")
                rows = _subject_rows(frame, part, kind if kind == "incidents" else "monitoring_points", table)
                new[kind] = (rows, frame["subject_id"].to_numpy(object).astype(str).astype(object))
        cells, parts, values = [], [], []
        for kind, (rows, keys) in new.items():
            held = self.live[kind]
            codes = held.codes_of(keys)
            removed = held.replace(codes, rows, codes[rows["src"]])
            cells += [rows["cell"], removed["cell"]]
            parts += [rows["part"].astype("int64"), removed["part"].astype("int64")]
            values += [rows["value"], -removed["value"]]
        if cells:
            self._add(np.concatenate(cells), np.concatenate(parts), np.concatenate(values), self.version + 1)
        return self.version

    def _add(self, cells: np.ndarray, parts: np.ndarray, values: np.ndarray, version: int) -> None:
        if not len(cells):
            return
        uniq, inverse = np.unique(cells, return_inverse=True)
        sums = np.zeros((len(uniq), len(PARTS)), "int64")
        np.add.at(sums, (inverse, parts), values)
        changed = sums.any(axis=1)
        uniq, sums = uniq[changed], sums[changed]
        if not len(uniq):
            return
        self.version = version
        known = np.isin(uniq, self._cells, assume_unique=True)
        if (~known).any():
            cells = np.concatenate([self._cells, uniq[~known]])
            order = np.argsort(cells, kind="stable")
            self._cells = cells[order]
            self._sums = np.concatenate([self._sums, np.zeros(((~known).sum(), len(PARTS)), "int64")])[order]
            self._versions = np.concatenate([self._versions, np.zeros((~known).sum(), "int64")])[order]
        else:
            self._sums, self._versions = self._sums.copy(), self._versions.copy()  # never mutate a shared array
        at = np.searchsorted(self._cells, uniq)
        self._sums[at] += sums
        self._versions[at] = version

    def scores(self, resolution: int = H3_RES_RISK_GRID, since: int = 0) -> pd.DataFrame:
        """Cells at `resolution` (parts, score, band); since > 0: only cells with a child changed
        after version `since`, zero scores included (the screen must drop them)."""
        if resolution not in RISK_GRID_RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RISK_GRID_RESOLUTIONS}, got {resolution!r}")
        parents = parent_cells(self._cells, resolution)
        if since > 0:
            wanted = np.unique(parents[self._versions > since])
            mine = np.isin(parents, wanted)
        else:
            mine = np.ones(len(parents), bool)
        parents, sums = parents[mine], self._sums[mine]
        n = len(parents)
        rows_part = np.tile(np.arange(len(PARTS)), n)
        return _table(np.repeat(parents, len(PARTS)), rows_part, sums.reshape(-1), resolution, self.weights,
                      keep_zero=since > 0)
