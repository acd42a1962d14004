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

import re
from dataclasses import dataclass, field

import geopandas as gpd
import h3.api.basic_int as h3_int
import numpy as np
import pandas as pd
import shapely
from numba import njit

from spatial.crs import geometry_to_metric, to_metric
from spatial.h3cells import H3_RES_GRID_FINEST, H3_RES_RISK_GRID, RISK_GRID_RESOLUTIONS, cell_ints, parent_cells
from spatial.model import CARGO_STATES

PARTS: tuple[str, ...] = ("hazard", "alarms", "trucks", "exposure", "incidents")
HAZARD, ALARMS, TRUCKS, EXPOSURE, INCIDENTS = range(len(PARTS))
SCORE_SCALE = 1000  # contributions in thousandths of a point, integers: sums exact in any order

# Bands, lowest first: the Ministry of Emergency Management's blue 低, yellow 一般, orange 较大,
# red 重大 (DOMAIN.md §10), as warning levels 4..1.
BANDS: tuple[str, ...] = ("blue", "yellow", "orange", "red")
BAND_LEVELS = {"blue": 4, "yellow": 3, "orange": 2, "red": 1}
NO_BAND = ""
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
    return _per_distinct(hazard_class, lambda uniq: np.array([_class_factor(v, weights) for v in uniq.tolist()],
                                                             "float64"), memo)


_CLASS = re.compile(r"^(\d(?:\.\d)?)")


def _class_factor(value, weights: RiskWeights) -> float:
    found = None if value is None or value != value else _CLASS.match(str(value).strip())
    main = found.group(1) if found else ""
    top = main.split(".")[0]  # "1.1" -> "1": a division counts as its class
    if main in weights.acute_classes or top in weights.acute_classes:
        return weights.acute_factor
    if main in weights.flammable_classes or top in weights.flammable_classes:
        return weights.flammable_factor
    return weights.other_factor


def protective_distance_m(un_numbers, chemicals: pd.DataFrame, default_m: float, memo: dict | None = None
                          ) -> np.ndarray:
    """Protective distance (m) per UN number from the catalogue: the ERG small-spill day
    protective action distance, else the large-spill distance, else the initial isolation, else
    `default_m` (an unknown or missing UN number too)."""
    return _per_distinct(un_numbers, lambda uniq: _distances_unique(uniq, chemicals, default_m), memo)


def _distances_unique(uniq: np.ndarray, chemicals: pd.DataFrame, default_m: float) -> np.ndarray:
    table: dict[str, float] = {}
    for column in ("erg_isolation_m", "erg_large_spill_m", "erg_day_m"):  # the last found wins: day first
        if column in chemicals.columns:
            values = pd.to_numeric(chemicals[column], errors="coerce")
            values = values[~values.index.duplicated() & values.notna().to_numpy()]
            table.update(zip(map(str, values.index.tolist()), values.to_numpy("float64").tolist()))
    return np.array([default_m if v is None or v != v else table.get(str(v), default_m) for v in uniq.tolist()],
                    "float64")


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
    their metric geometry in a bucket index for `reached`: a square metric grid whose buckets
    list the point sites in them and the area sites whose bounding box overlaps them. A point
    site's distance is exact there; an area site near enough by its bounding box is a candidate,
    decided on exact geometry."""

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
        self._metric = metric
        is_point = (shapely.get_type_id(metric) == 0) if len(geoms) else np.zeros(0, bool)
        bounds = shapely.bounds(metric) if len(geoms) else np.zeros((0, 4))
        # point sites in small buckets (one each); the few area sites in large ones (a box spans few)
        self._points = _BucketIndex(np.flatnonzero(is_point), bounds[is_point], _POINT_BUCKET_M, exact=True)
        self._areas = _BucketIndex(np.flatnonzero(~is_point), bounds[~is_point], _AREA_BUCKET_M, exact=False)
        self._outlines = _Outlines(metric[~is_point])
        self._xy = np.where(is_point[:, None], bounds[:, :2], np.nan)  # a point site's metric x, y
        self._fit = _MetricFit.around(sites.total_bounds) if len(geoms) else None
        self._area_number = np.cumsum(~is_point) - 1  # a site's place among the areas

    def reached(self, x: np.ndarray, y: np.ndarray, distance_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(threat index, site index) of every site within `distance_m` of a threat at metric
        x, y (exact distance to the site's geometry): the point sites' pairs by threat, then the
        area sites' by threat (no sort: a score is a sum)."""
        x = np.asarray(x, "float64")
        t, s, _ = self._pairs(x, np.asarray(y, "float64"), np.asarray(distance_m, "float64"), np.zeros(len(x)))
        return t, s

    def reached_lonlat(self, lon: np.ndarray, lat: np.ndarray, distance_m: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
        """`reached` for threats in WGS-84, the same pairs: their metric position from the
        World's fitted projection (within `error_m` of pyproj's), and a pair that close to its
        threshold decided again on pyproj's exact projection (threats outside the fitted box:
        projected exactly from the start). The projection was a tenth of a full score."""
        lon, lat = np.asarray(lon, "float64"), np.asarray(lat, "float64")
        distance_m = np.asarray(distance_m, "float64")
        fit = self._fit
        if fit is None:
            x, y = to_metric(lon, lat)
            return self.reached(np.asarray(x), np.asarray(y), distance_m)
        near = fit.covers(lon, lat)
        x, y = np.full(len(lon), np.nan), np.full(len(lon), np.nan)
        x[near], y[near] = fit(lon[near], lat[near])
        far = np.flatnonzero(~near & np.isfinite(lon) & np.isfinite(lat))
        if len(far):
            x[far], y[far] = to_metric(lon[far], lat[far])
        t, s, sure = self._pairs(x, y, distance_m, np.where(near, fit.error_m, 0.0))
        unsure = np.unique(t[~sure])
        if not len(unsure):
            return t, s
        ex, ey = to_metric(lon[unsure], lat[unsure])
        tu, su = self.reached(np.asarray(ex), np.asarray(ey), distance_m[unsure])
        keep = ~np.isin(t, unsure)
        return np.concatenate([t[keep], unsure[tu]]), np.concatenate([s[keep], su])

    def _pairs(self, x, y, distance_m, error_m) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(threat, site, sure) of every site within distance + error of a threat; `sure`: within
        distance - error as well (a threat's position known to within error_m)."""
        ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(distance_m) & (distance_m > 0)
        if not ok.any() or not len(self.ids):
            return np.zeros(0, "int64"), np.zeros(0, "int64"), np.zeros(0, bool)
        index = np.flatnonzero(ok)
        x, y, d, e = x[ok], y[ok], distance_m[ok], error_m[ok]
        t, s = self._points.candidates(x, y, d + e)  # a point site's box is its point: the distance
        sure = np.hypot(self._xy[s, 0] - x[t], self._xy[s, 1] - y[t]) <= d[t] - e[t]
        ta, sa = self._areas.candidates(x, y, d + e)
        if len(ta):  # area sites near by their box: the exact distance to the outline decides
            area = self._area_number[sa]
            maybe = self._outlines.within(area, x[ta], y[ta], d[ta] + e[ta])
            ta, sa, area = ta[maybe], sa[maybe], area[maybe]
            certain = self._outlines.within(area, x[ta], y[ta], d[ta] - e[ta]) if e.any() else \
                np.ones(len(ta), bool)
            t, s, sure = np.concatenate([t, ta]), np.concatenate([s, sa]), np.concatenate([sure, certain])
        return index[t], s, sure


class _MetricFit:
    """UTM 51N x, y of lon/lat as a degree-5 polynomial fitted to pyproj once per World over a
    box, with its largest error over a dense check (times 4): within it everywhere in the box
    (micrometres over Ningbo's sites plus 0.1°)."""

    DEGREE = 5
    MARGIN_DEG = 0.1
    MAX_ERROR_M = 0.01  # a worse fit (a continent-wide world) is not used: pyproj for every threat

    @classmethod
    def around(cls, bounds) -> "_MetricFit | None":
        west, south, east, north = (float(v) for v in bounds)
        if not all(np.isfinite([west, south, east, north])):
            return None
        fit = cls(west - cls.MARGIN_DEG, south - cls.MARGIN_DEG, east + cls.MARGIN_DEG, north + cls.MARGIN_DEG)
        return fit if fit.error_m <= cls.MAX_ERROR_M else None

    def __init__(self, west: float, south: float, east: float, north: float):
        self.box = (west, south, east, north)
        self.centre = ((west + east) / 2, (south + north) / 2)
        self.half = max(east - west, north - south) / 2 or 1.0
        grid = np.linspace(-1, 1, 41)
        u, v = (a.ravel() for a in np.meshgrid(grid, grid))
        x, y = (np.asarray(a) for a in to_metric(self.centre[0] + u * self.half, self.centre[1] + v * self.half))
        self.offset = (float(x.mean()), float(y.mean()))
        design = self._design(u, v)
        self.cx = np.linalg.lstsq(design, x - self.offset[0], rcond=None)[0]
        self.cy = np.linalg.lstsq(design, y - self.offset[1], rcond=None)[0]
        rng = np.random.default_rng(0)
        lon, lat = rng.uniform(west, east, 4000), rng.uniform(south, north, 4000)
        ex, ey = (np.asarray(a) for a in to_metric(lon, lat))
        fx, fy = self(lon, lat)
        self.error_m = 4 * float(np.hypot(fx - ex, fy - ey).max()) + 1e-6

    def _design(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        # powers by repeated products (`u ** i` on a float array calls pow() per element: 10x the cost)
        up, vp = [np.ones_like(u)], [np.ones_like(v)]
        for _ in range(self.DEGREE):
            up.append(up[-1] * u)
            vp.append(vp[-1] * v)
        out = np.empty(((self.DEGREE + 1) * (self.DEGREE + 2) // 2, len(u)))  # a term a row: contiguous writes
        k = 0
        for i in range(self.DEGREE + 1):
            for j in range(self.DEGREE + 1 - i):
                np.multiply(up[i], vp[j], out=out[k])
                k += 1
        return out.T

    def covers(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        west, south, east, north = self.box
        return (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)

    def __call__(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        design = self._design((lon - self.centre[0]) / self.half, (lat - self.centre[1]) / self.half)
        return design @ self.cx + self.offset[0], design @ self.cy + self.offset[1]


class _BucketIndex:
    """Sites' metric bounding boxes in a square grid of buckets of `size` m: each bucket lists
    the sites whose box overlaps it, as one array sorted by bucket (CSR). `exact`: the boxes are
    the sites (points), so a pair found is decided."""

    def __init__(self, sites: np.ndarray, bounds: np.ndarray, size: float, exact: bool):
        n = len(bounds)
        self.sites, self.exact = sites.astype("int64"), exact
        self.bounds = np.ascontiguousarray(bounds, "float64").reshape(n, 4)
        self.x0 = float(bounds[:, 0].min()) if n else 0.0
        self.y0 = float(bounds[:, 1].min()) if n else 0.0
        width = float(bounds[:, 2].max()) - self.x0 if n else 0.0
        height = float(bounds[:, 3].max()) - self.y0 if n else 0.0
        # a world spread over a continent gets coarser buckets, never more than _MAX_BUCKETS a side
        self.size = max(size, width / (_MAX_BUCKETS - 1), height / (_MAX_BUCKETS - 1))
        self.nx, self.ny = int(width // self.size) + 1, int(height // self.size) + 1
        lo = np.floor((self.bounds[:, :2] - (self.x0, self.y0)) / self.size).astype("int64")
        hi = np.minimum(np.floor((self.bounds[:, 2:] - (self.x0, self.y0)) / self.size).astype("int64"),
                        (self.nx - 1, self.ny - 1))
        self.first = np.ascontiguousarray(lo)
        span_x, span_y = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
        count = span_x * span_y
        member = np.repeat(np.arange(n), count)
        k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)  # place inside the box
        bucket = (lo[member, 1] + k // span_x[member]) * self.nx + lo[member, 0] + k % span_x[member]
        order = np.argsort(bucket, kind="stable")
        self.members = member[order].astype("int64")
        self.starts = np.searchsorted(bucket[order], np.arange(self.nx * self.ny + 1)).astype("int64")

    def candidates(self, x, y, d) -> tuple[np.ndarray, np.ndarray]:
        """(threat, site) pairs with the site's box within the threat's distance d."""
        if not len(self.members):
            return np.zeros(0, "int64"), np.zeros(0, "int64")
        t, m = _bucket_pairs(np.ascontiguousarray(x), np.ascontiguousarray(y), np.ascontiguousarray(d),
                             self.x0, self.y0, self.size, self.nx, self.ny, self.starts, self.members,
                             self.bounds, self.first, self.exact)
        return t, self.sites[m]


_POINT_BUCKET_M = 500.0  # a protective distance (25-800 m) spans a few buckets; smaller ones cost more buckets than checks
_AREA_BUCKET_M = 2000.0  # areas are few and up to kilometres wide
_MAX_BUCKETS = 2048


@njit(cache=True, nogil=True)
def _bucket_pairs(x, y, d, x0, y0, size, nx, ny, starts, members, bounds, first, exact):  # pragma: no cover - numba
    """Every (threat, member) with the member's box within the threat's distance. A box
    overlapping several buckets of a query is taken only in the lowest of them (a point's box is
    in one bucket: `exact`)."""
    capacity = max(16, 2 * len(x))
    out_t = np.empty(capacity, np.int64)
    out_m = np.empty(capacity, np.int64)
    k = 0
    for t in range(len(x)):
        tx, ty, td = x[t], y[t], d[t]
        qx0 = max(0, int(np.floor((tx - td - x0) / size)))
        qx1 = min(nx - 1, int(np.floor((tx + td - x0) / size)))
        qy0 = max(0, int(np.floor((ty - td - y0) / size)))
        qy1 = min(ny - 1, int(np.floor((ty + td - y0) / size)))
        for iy in range(qy0, qy1 + 1):
            for ix in range(qx0, qx1 + 1):
                b = iy * nx + ix
                for j in range(starts[b], starts[b + 1]):
                    m = members[j]
                    if not exact and (ix != max(qx0, first[m, 0]) or iy != max(qy0, first[m, 1])):
                        continue
                    gx = max(bounds[m, 0] - tx, 0.0, tx - bounds[m, 2])
                    gy = max(bounds[m, 1] - ty, 0.0, ty - bounds[m, 3])
                    if np.sqrt(gx * gx + gy * gy) <= td:
                        if k == capacity:  # grow: pairs per threat vary by orders of magnitude
                            capacity *= 2
                            grown_t = np.empty(capacity, np.int64)
                            grown_m = np.empty(capacity, np.int64)
                            grown_t[:k] = out_t[:k]
                            grown_m[:k] = out_m[:k]
                            out_t, out_m = grown_t, grown_m
                        out_t[k] = t
                        out_m[k] = m
                        k += 1
    return out_t[:k].copy(), out_m[:k].copy()


class _Outlines:
    """Area sites' outlines as flat coordinate rings, for the exact distance of a point to an
    area (0 inside; else to the nearest edge, as GEOS computes it)."""

    def __init__(self, geoms: np.ndarray):
        kinds = shapely.get_type_id(geoms)
        if not np.isin(kinds, (3, 6)).all():  # Polygon, MultiPolygon
            raise ValueError("sensitive_sites must be points or (multi)polygons, got "
                             f"{sorted(set(shapely.get_type_id(geoms).tolist()) - {3, 6})} (shapely type ids)")
        parts, part_of = shapely.get_parts(geoms, return_index=True)
        rings, ring_of_part = shapely.get_rings(parts, return_index=True)
        coords, coord_of = shapely.get_coordinates(rings, return_index=True)
        self.coords = np.ascontiguousarray(coords, "float64").reshape(-1, 2)
        self.ring_start = np.searchsorted(coord_of, np.arange(len(rings) + 1)).astype("int64")
        self.area_rings = np.searchsorted(part_of[ring_of_part], np.arange(len(geoms) + 1)).astype("int64")

    def within(self, area: np.ndarray, x: np.ndarray, y: np.ndarray, d: np.ndarray) -> np.ndarray:
        return _within_outline(area.astype("int64"), np.ascontiguousarray(x), np.ascontiguousarray(y),
                               np.ascontiguousarray(d), self.coords, self.ring_start, self.area_rings)


@njit(cache=True, nogil=True)
def _within_outline(area, x, y, d, coords, ring_start, area_rings):  # pragma: no cover - numba
    """Whether each point lies within d of its area: inside by the even-odd rule over all of the
    area's rings (shells and holes), else its distance to the nearest edge (GEOS's
    point-to-segment formula) is at most d."""
    out = np.zeros(len(area), np.bool_)
    for i in range(len(area)):
        px, py, a = x[i], y[i], area[i]
        inside = False
        best = np.inf
        for r in range(area_rings[a], area_rings[a + 1]):
            for j in range(ring_start[r], ring_start[r + 1] - 1):
                ax, ay = coords[j, 0], coords[j, 1]
                bx, by = coords[j + 1, 0], coords[j + 1, 1]
                if (ay > py) != (by > py) and px < (bx - ax) * (py - ay) / (by - ay) + ax:
                    inside = not inside
                len2 = (bx - ax) * (bx - ax) + (by - ay) * (by - ay)
                if len2 == 0.0:
                    gap = np.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
                else:
                    f = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / len2
                    if f <= 0.0:
                        gap = np.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
                    elif f >= 1.0:
                        gap = np.sqrt((px - bx) * (px - bx) + (py - by) * (py - by))
                    else:
                        gap = abs(((ay - py) * (bx - ax) - (ax - px) * (by - ay)) / len2) * np.sqrt(len2)
                if gap < best:
                    best = gap
        out[i] = inside or best <= d[i]
    return out


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
    rows = _truck_rows(trucks, sites, chemicals, weights)
    return _frame(_spelled(rows, trucks["vehicle_id"].astype(str).to_numpy(object), "vehicles", sites.ids))


def _floats(column: pd.Series) -> np.ndarray:
    return column.to_numpy("float64") if column.dtype == "float64" else \
        pd.to_numeric(column, errors="coerce").to_numpy("float64")


_FEW = 64  # below this many points h3's own call per point beats h3ronpy's fixed cost per call (~80 µs)


def _finest_cells(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Finest cells (uint64) of points that all have a position."""
    if len(lon) >= _FEW:
        return cell_ints(lon, lat, H3_RES_GRID_FINEST)
    return np.array([h3_int.latlng_to_cell(y, x, H3_RES_GRID_FINEST) for x, y in zip(lon.tolist(), lat.tolist())],
                    dtype="uint64")


def _numeric_rows(n: int = 0) -> Rows:
    """Contribution rows as numbers only: cell, part, value, the input row each came from
    (`src`: its key) and an exposure's site index (`site`, -1 for the rest)."""
    return {"cell": np.zeros(n, "uint64"), "part": np.zeros(n, "int8"), "value": np.zeros(n, "int64"),
            "src": np.zeros(n, "int64"), "site": np.full(n, -1, "int64")}


def _truck_rows(trucks: pd.DataFrame, sites: Sites, chemicals: pd.DataFrame, weights: RiskWeights,
                memo: dict | None = None) -> Rows:
    memo = {} if memo is None else memo
    _check_columns(trucks, TRUCK_COLUMNS, "trucks")
    if not len(trucks):
        return _numeric_rows()
    # per distinct value, not per row: a fleet has a few states, classes and UN numbers
    state_code, states = _factorize(trucks["cargo_state"].to_numpy(object))
    states = np.array(["unknown" if s is None or s != s else s for s in states.tolist()], dtype=object)
    bad = ~np.isin(states, CARGO_STATES)
    if bad.any():
        raise ValueError(f"trucks.cargo_state must be one of {CARGO_STATES}, got {sorted(map(str, states[bad]))[:5]}")
    lon, lat = _floats(trucks["lon"]), _floats(trucks["lat"])
    here = np.isfinite(lon) & np.isfinite(lat)
    factor = class_factors(trucks["hazard_class"].to_numpy(object), weights, memo.setdefault("class", {}))
    pts = np.array([weights.truck_cargo_pts[s] for s in states])[state_code] * factor
    keep = np.flatnonzero(here & (pts > 0))
    own = _numeric_rows(len(keep))
    own["cell"] = _finest_cells(lon[keep], lat[keep])
    own["part"][:], own["value"], own["src"] = TRUCKS, _fixed(pts[keep]), keep

    threat = np.array([weights.exposure_truck_threat[s] for s in states])[state_code] * factor
    risky = np.flatnonzero(here & (threat > 0))
    if not len(risky):
        return own
    distance = protective_distance_m(trucks["un_number"].to_numpy(object)[risky], chemicals,
                                     weights.default_protective_m, memo.setdefault("distance", {}))
    t, s = sites.reached_lonlat(lon[risky], lat[risky], distance)
    exposure = _numeric_rows(len(t))
    exposure["cell"], exposure["part"][:] = sites.cell[s], EXPOSURE
    exposure["value"] = _fixed(weights.exposure_pts * sites.people[s] / 1000 * threat[risky[t]])
    exposure["src"], exposure["site"] = risky[t], s
    return {c: np.concatenate([own[c], exposure[c]]) for c in own}


def _spelled(rows: Rows, keys: np.ndarray, kind: str, site_ids: np.ndarray) -> Rows:
    """Numeric rows with kind, item_id and via spelled out: an item is its key's, an exposure
    the site's, reached via its key."""
    exposure = rows["part"] == EXPOSURE
    item_id, via = keys[rows["src"]], np.full(len(rows["src"]), "", dtype=object)
    kinds = np.full(len(item_id), kind, dtype=object)
    via[exposure], item_id[exposure], kinds[exposure] = item_id[exposure], site_ids[rows["site"][exposure]], \
        "sensitive_sites"
    return {"cell": rows["cell"], "part": rows["part"], "value": rows["value"], "kind": kinds,
            "item_id": item_id, "via": via}


def subject_rows(subjects: pd.DataFrame, part: int, kind: str, table: tuple[float, ...]) -> pd.DataFrame:
    """Alarm or incident part of subjects (`SUBJECT_COLUMNS`, severity 1..4); a row whose
    severity is missing or above 4, or without a position, adds nothing."""
    rows = _subject_rows(subjects, part, kind, table)
    return _frame(_spelled(rows, subjects["subject_id"].astype(str).to_numpy(object), kind, np.zeros(0, object)))


def _subject_rows(subjects: pd.DataFrame, part: int, kind: str, table: tuple[float, ...]) -> Rows:
    _check_columns(subjects, SUBJECT_COLUMNS, kind)
    if not len(subjects):
        return _numeric_rows()
    severity = _floats(subjects["severity"])
    lon, lat = _floats(subjects["lon"]), _floats(subjects["lat"])
    keep = np.flatnonzero(np.isin(severity, (1, 2, 3, 4)) & np.isfinite(lon) & np.isfinite(lat))
    rows = _numeric_rows(len(keep))
    rows["cell"] = _finest_cells(lon[keep], lat[keep])
    rows["part"][:], rows["value"], rows["src"] = part, _fixed(_by_level(severity[keep], table, f"{kind}.severity")), keep
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


def _distinct_sorted(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(cells, return_inverse=True) by hashing, then sorting only the distinct cells
    (a few items a cell: 2.4x quicker than sorting them all)."""
    codes, uniq = pd.factorize(np.asarray(cells, "uint64"))
    order = np.argsort(uniq)
    rank = np.empty(len(order), "int64")
    rank[order] = np.arange(len(order))
    return np.asarray(uniq, "uint64")[order], rank[codes]


def _table(cells: np.ndarray, part: np.ndarray, value: np.ndarray, resolution: int, weights: RiskWeights,
           keep_zero: bool = False) -> pd.DataFrame:
    uniq, inverse = _distinct_sorted(cells)
    return _scored(uniq, _part_sums(inverse, part, value, len(uniq)), resolution, weights, keep_zero)


def _part_sums(group: np.ndarray, part: np.ndarray, value: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, parts) int64 sums of `value` by group and part: exact integers (bincount
    would sum in float64)."""
    sums = np.zeros(n_groups * len(PARTS), "int64")
    np.add.at(sums, group.astype("int64") * len(PARTS) + part, value)
    return sums.reshape(n_groups, len(PARTS))


def _scored(cells: np.ndarray, sums: np.ndarray, resolution: int, weights: RiskWeights,
            keep_zero: bool = False) -> pd.DataFrame:
    """The scores table of distinct cells and their parts' integer sums."""
    total = sums.sum(axis=1)
    if not keep_zero:
        cells, sums, total = cells[total > 0], sums[total > 0], total[total > 0]
    index, points = pd.Index(cells, name="cell"), sums / SCORE_SCALE
    columns: dict = {p: points[:, i] for i, p in enumerate(PARTS)}
    columns["score"] = total / SCORE_SCALE
    columns["band"] = pd.Series(bands(columns["score"], resolution, weights), index=index, dtype=object, copy=False)
    return pd.DataFrame(columns, index=index, copy=False)  # one frame built once: columns added one by one cost 2x


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
        self.keys: pd.Index | None = None  # its hash table is built once and kept while no key is new
        self.code = np.zeros(0, "int64")
        self.cols = {c: np.zeros(0, dtype=d) for c, d in zip(_HELD, ("uint64", "int8", "int64", "int64"))}

    def codes_of(self, keys: np.ndarray) -> np.ndarray:
        keys = pd.Index(keys, dtype=object)  # not inferred as Arrow strings: 10x the cost
        if self.keys is None or not len(self.keys):
            codes, uniq = pd.factorize(keys)
            self.keys = pd.Index(uniq, dtype=object)
            return codes.astype("int64")
        found = self.keys.get_indexer(keys)
        fresh = found < 0
        if fresh.any():
            codes, uniq = pd.factorize(keys[fresh])
            found[fresh] = len(self.keys) + codes
            self.keys = self.keys.append(pd.Index(uniq, dtype=object))
        return found.astype("int64")

    def replace(self, codes: np.ndarray, rows: Rows, row_codes: np.ndarray) -> dict[str, np.ndarray]:
        """Drop the rows of `codes`, add `rows`; returns the removed rows' cell, part, value."""
        if not len(self.code):
            removed = {c: self.cols[c][:0] for c in ("cell", "part", "value")}
            self.code = row_codes
            self.cols = {c: rows[c].astype(self.cols[c].dtype, copy=False) for c in _HELD}
            return removed
        hit = np.zeros(len(self.keys), bool)  # codes_of came first: keys is set
        hit[codes] = True
        gone = hit[self.code]
        removed = {c: self.cols[c][gone] for c in ("cell", "part", "value")}
        kept = ~gone
        self.code = np.concatenate([self.code[kept], row_codes])
        for c in _HELD:
            self.cols[c] = np.concatenate([self.cols[c][kept], rows[c].astype(self.cols[c].dtype)])
        return removed

    def frame(self, site_ids: np.ndarray) -> pd.DataFrame:
        rows = dict(self.cols, src=self.code)
        keys = np.zeros(0, object) if self.keys is None else self.keys.to_numpy(object)
        return _frame(_spelled(rows, keys, self.kind, site_ids))


def _last_rows(codes: np.ndarray) -> np.ndarray:
    """Positions of the last row of each key code (a batch's last word per key), in order."""
    if len(codes) < 2 or np.bincount(codes).max() < 2:
        return np.arange(len(codes))
    last = np.full(int(codes.max()) + 1, -1, "int64")
    np.maximum.at(last, codes, np.arange(len(codes)))
    return np.sort(last[last >= 0])


def _as_keys(column: pd.Series) -> np.ndarray:
    """Ids as an object array of str (a number id becomes its text, as it is everywhere else)."""
    keys = column.to_numpy(object)
    return keys if pd.api.types.infer_dtype(keys, skipna=False) == "string" else keys.astype(str).astype(object)


class RiskGrid:
    """The grid of one World, with the live contributions upserted by key.

    `apply(trucks=…, alarms=…, incidents=…)` takes, for each kind given, rows of the items
    that changed (a truck's whole current row; an alarm or incident with its current severity,
    NaN or > 4 when it is over); their old contributions are replaced. Every finest cell whose
    total changed gets the new version, so `scores(resolution, since)` returns the cells at
    `resolution` with a changed child. The finest cells are held sorted: the H3 parents of
    sorted cells of one resolution are sorted too (the parent keeps the leading digits), so a
    coarser table is one pass of sums over runs, no sort. Not thread-safe: callers hold a lock."""

    def __init__(self, world, weights: RiskWeights | None = None):
        self.weights = weights or RiskWeights()
        self.chemicals = world.chemicals
        self.sites = Sites(world.sensitive_sites, self.weights)
        self.static = hazard_source_rows(world, self.sites, self.weights)
        self.live = {k: _Held(kind) for k, kind in _LIVE_ITEM_KINDS.items()}
        self.version = 1
        # class factor and protective distance per distinct value; the catalogue's distances once per World
        catalogue = [*map(str, self.chemicals.index.tolist()), None] if self.chemicals is not None else [None]
        self._distances: dict = {}
        protective_distance_m(np.array(catalogue, dtype=object), self.chemicals, self.weights.default_protective_m,
                              self._distances)
        self._memo: dict[str, dict] = {"distance": dict(self._distances)}
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
        grid._distances = self._distances
        grid._memo = {"distance": dict(self._distances)}
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
        # (a key new to the grid is remembered before bad input raises: a key without rows is nothing)
        new: dict[str, tuple[Rows, np.ndarray]] = {}
        if trucks is not None:
            _check_columns(trucks, TRUCK_COLUMNS, "trucks")
            trucks, codes = self._last_word(trucks, "vehicle_id", self.live["trucks"])
            new["trucks"] = (_truck_rows(trucks, self.sites, self.chemicals, self.weights, self._memo), codes)
        for kind, frame, part, table in (("alarms", alarms, ALARMS, self.weights.alarm_pts),
                                         ("incidents", incidents, INCIDENTS, self.weights.incident_pts)):
            if frame is not None:
                _check_columns(frame, SUBJECT_COLUMNS, kind)
                frame, codes = self._last_word(frame, "subject_id", self.live[kind])
                new[kind] = (_subject_rows(frame, part, kind, table), codes)
        cells, parts, values = [], [], []
        for kind, (rows, codes) in new.items():
            held = self.live[kind]
            removed = held.replace(codes, rows, codes[rows["src"]])
            cells += [rows["cell"], removed["cell"]]
            parts += [rows["part"].astype("int64"), removed["part"].astype("int64")]
            values += [rows["value"], -removed["value"]]
        if cells:
            self._add(np.concatenate(cells), np.concatenate(parts), np.concatenate(values), self.version + 1)
        return self.version

    @staticmethod
    def _last_word(frame: pd.DataFrame, key: str, held: _Held) -> tuple[pd.DataFrame, np.ndarray]:
        """The frame's last row per key (a batch's last word) and the keys' codes."""
        codes = held.codes_of(_as_keys(frame[key])) if len(frame) else np.zeros(0, "int64")
        last = _last_rows(codes)
        return (frame, codes) if len(last) == len(codes) else (frame.iloc[last], codes[last])

    def _add(self, cells: np.ndarray, parts: np.ndarray, values: np.ndarray, version: int) -> None:
        if not len(cells):
            return
        uniq, inverse = _distinct_sorted(cells)
        sums = _part_sums(inverse, parts, values, len(uniq))
        changed = sums.any(axis=1)
        uniq, sums = uniq[changed], sums[changed]
        if not len(uniq):
            return
        self.version = version
        at = np.searchsorted(self._cells, uniq)
        known = at < len(self._cells)
        known[known] = self._cells[at[known]] == uniq[known]
        if (~known).any():  # new cells go in at their sorted places (both arrays are sorted)
            self._cells = np.insert(self._cells, at[~known], uniq[~known])
            self._sums = np.insert(self._sums, at[~known], 0, axis=0)
            self._versions = np.insert(self._versions, at[~known], 0)
            at = np.searchsorted(self._cells, uniq)
        else:
            self._sums, self._versions = self._sums.copy(), self._versions.copy()  # never mutate a shared array
        self._sums[at] += sums
        self._versions[at] = version

    def scores(self, resolution: int = H3_RES_RISK_GRID, since: int = 0) -> pd.DataFrame:
        """Cells at `resolution` (parts, score, band); since > 0: only cells with a child changed
        after version `since`, zero scores included (the screen must drop them)."""
        if resolution not in RISK_GRID_RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RISK_GRID_RESOLUTIONS}, got {resolution!r}")
        parents, sums = parent_cells(self._cells, resolution), self._sums  # sorted, as the cells
        if since > 0:
            wanted = parents[self._versions > since]
            at = np.minimum(np.searchsorted(wanted, parents), max(len(wanted) - 1, 0))
            mine = (wanted[at] == parents) if len(wanted) else np.zeros(len(parents), bool)
            parents, sums = parents[mine], sums[mine]
        if not len(parents):
            return _scored(parents, sums, resolution, self.weights, keep_zero=since > 0)
        starts = np.flatnonzero(np.r_[True, parents[1:] != parents[:-1]])
        return _scored(parents[starts], np.add.reduceat(sums, starts, axis=0), resolution, self.weights,
                       keep_zero=since > 0)
