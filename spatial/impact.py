"""The impact view of a truck or a hazard source in trouble: pure, vectorised.

`erg_distances(un_numbers, catalogue, night)` picks the cargo's ERG 2016 Table 1 small-spill
figures (the largest over the goods; a good without a day/night figure falls back to its initial
isolation distance, as the stop-near-sensitive-site rule does). `impact(world, lon, lat, …)`
lists what lies inside them around the subject: sensitive sites (with occupancy), hazard
sources and loaded trucks, each with its distance in metres (UTM 51N) and the zone it is in
(`isolation` inside the initial isolation distance, else `protective`), nearest first.

Distances are exact shapely distances from the subject point to each geometry (a site's outline,
not its centre). The figures themselves come from the chemical catalogue, which marks each as
checked against DOMAIN.md or not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from spatial.crs import geometry_to_metric, to_metric
from spatial.model import World

# ERG 2016: "day" is sunrise to sunset; taken as 06:00-20:00 Asia/Shanghai, the same engineering
# default as spatial/rules/stop_near_sensitive_site.py (issue 4).
DAY_STARTS_LOCAL_HOUR = 6
NIGHT_STARTS_LOCAL_HOUR = 20
LOCAL_TIMEZONE = "Asia/Shanghai"
ZONES = ("isolation", "protective")


@dataclass(frozen=True)
class ErgDistances:
    period: str  # day | night
    isolation_m: float  # NaN when no good has a figure
    protective_m: float  # the period's protective-action distance (or the isolation one when none)
    un_number: str | None  # the good that sets protective_m


@dataclass(frozen=True)
class Impact:
    distances: ErgDistances
    sites: pd.DataFrame  # id, name, kind, occupancy, distance_m, zone
    hazard_sources: pd.DataFrame  # id, name, entity_id, distance_m, zone
    trucks: pd.DataFrame  # id, distance_m, zone


def is_night(at) -> bool:
    """Is `at` (an aware time, or naive UTC) in the ERG's night at Ningbo?"""
    stamp = pd.Timestamp(at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    hour = stamp.tz_convert(LOCAL_TIMEZONE).hour
    return not (DAY_STARTS_LOCAL_HOUR <= hour < NIGHT_STARTS_LOCAL_HOUR)


def erg_distances(un_numbers, catalogue: pd.DataFrame, night: bool) -> ErgDistances:
    """The largest isolation and protective distances over `un_numbers` (catalogue indexed by UN)."""
    period = "night" if night else "day"
    un = pd.Index([str(u) for u in un_numbers], dtype=object)
    columns = ["erg_isolation_m", f"erg_{period}_m"]
    if not len(un) or not all(c in catalogue.columns for c in columns):
        return ErgDistances(period, float("nan"), float("nan"), None)
    figures = catalogue.reindex(un)[columns].astype("float64")
    isolation = figures["erg_isolation_m"].to_numpy()
    protective = figures[f"erg_{period}_m"].to_numpy()
    protective = np.where(np.isnan(protective), isolation, protective)
    if np.isnan(protective).all():
        return ErgDistances(period, float("nan"), float("nan"), None)
    best = int(np.nanargmax(protective))
    return ErgDistances(period, float(np.nanmax(isolation)) if not np.isnan(isolation).all() else float("nan"),
                        float(protective[best]), str(un[best]))


def protective_by_group(keys, un_numbers, catalogue: pd.DataFrame, night: bool) -> pd.Series:
    """The protective distance (m) per group of goods (a waybill's, a hazard source's): the largest
    over its goods of the period's figure, else the isolation one, as `erg_distances`; NaN when none."""
    period = "night" if night else "day"
    keys = pd.Index(np.asarray(keys, dtype=object))
    columns = ["erg_isolation_m", f"erg_{period}_m"]
    if not len(keys) or not all(c in catalogue.columns for c in columns):
        return pd.Series(np.nan, index=keys.unique(), dtype="float64")
    figures = catalogue[columns].astype("float64").reindex(np.asarray(un_numbers, dtype=object).astype(str))
    metres = figures[f"erg_{period}_m"].fillna(figures["erg_isolation_m"]).to_numpy()
    return pd.Series(metres, index=keys).groupby(level=0, sort=False).max()


def _within(geometries, subject: shapely.Point, distances: ErgDistances) -> tuple[np.ndarray, np.ndarray]:
    """Distances (m) from the subject to each WGS-84 geometry and the mask of those inside the
    protective distance; a tree query narrows, the exact distance decides."""
    n = len(geometries)
    metres = np.full(n, np.inf)
    if not n or np.isnan(distances.protective_m):
        return metres, np.zeros(n, bool)
    metric = geometry_to_metric(np.asarray(geometries, dtype=object))
    candidates = shapely.STRtree(metric).query(subject, predicate="dwithin", distance=distances.protective_m)
    metres[candidates] = shapely.distance(metric[candidates], subject)
    return metres, metres <= distances.protective_m


def _listed(frame: pd.DataFrame, metres: np.ndarray, inside: np.ndarray, columns: list[str],
            distances: ErgDistances) -> pd.DataFrame:
    out = pd.DataFrame({c: frame[c].to_numpy()[inside] for c in columns})  # not .loc on a whole GeoDataFrame
    out["distance_m"] = metres[inside]
    isolation = distances.isolation_m if not np.isnan(distances.isolation_m) else -1.0
    out["zone"] = np.where(out["distance_m"].to_numpy() <= isolation, ZONES[0], ZONES[1])
    return out.sort_values(["distance_m", "id"], kind="stable").reset_index(drop=True)


def impact(world: World, lon: float, lat: float, un_numbers, at, *, trucks: pd.DataFrame | None = None,
           exclude_ids=()) -> Impact:
    """What the cargo `un_numbers` at (lon, lat) reaches at time `at` (day or night by it).
    `trucks`: loaded trucks' live positions (id, lon, lat); `exclude_ids`: the subject itself."""
    if not (np.isfinite(lon) and np.isfinite(lat)):
        raise ValueError(f"the subject's position must be finite, got lon={lon!r}, lat={lat!r}")
    catalogue = world.chemicals
    if len(catalogue) and "un_number" in catalogue.columns:
        catalogue = catalogue.set_index("un_number")
    distances = erg_distances(un_numbers, catalogue, is_night(at))
    x, y = to_metric([lon], [lat])
    subject = shapely.Point(float(x[0]), float(y[0]))
    excluded = {str(i) for i in exclude_ids}

    sites = world.sensitive_sites
    metres, inside = _within(sites.geometry.to_numpy(), subject, distances)
    site_rows = _listed(sites, metres, inside & ~sites["id"].isin(excluded).to_numpy(),
                        ["id", "name", "kind", "occupancy"], distances)

    sources = world.hazard_sources
    metres, inside = _within(sources.geometry.to_numpy(), subject, distances)
    source_rows = _listed(sources, metres, inside & ~sources["id"].isin(excluded).to_numpy(),
                          ["id", "name", "entity_id"], distances)

    if trucks is None or not len(trucks):
        truck_rows = pd.DataFrame({"id": pd.Series(dtype=object), "distance_m": pd.Series(dtype="float64"),
                                   "zone": pd.Series(dtype=object)})
    else:
        points = shapely.points(trucks["lon"].to_numpy("float64"), trucks["lat"].to_numpy("float64"))
        metres, inside = _within(points, subject, distances)
        frame = trucks.reset_index(drop=True)
        truck_rows = _listed(frame, metres, inside & ~frame["id"].astype(str).isin(excluded).to_numpy(),
                             ["id"], distances)
    return Impact(distances, site_rows, source_rows, truck_rows)
