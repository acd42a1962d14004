"""Metric (UTM 51N) geometry helpers for the generator: outlines, sampling on land."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

from spatial.crs import to_metric


def blob(rng: np.random.Generator, lon: float, lat: float, radius_m: float, elongation: float,
         bearing_deg: float, vertices: int = 28) -> Polygon:
    """A smooth irregular outline around (lon, lat): an ellipse with low-frequency noise."""
    x0, y0 = (float(v) for v in to_metric(lon, lat))
    t = np.linspace(0.0, 2 * np.pi, vertices, endpoint=False)
    noise = np.zeros_like(t)
    for k in (2, 3, 5):  # a few harmonics keep the outline smooth
        noise += rng.uniform(-0.12, 0.12) * np.cos(k * t + rng.uniform(0, 2 * np.pi)) / (k / 2)
    a = radius_m * np.sqrt(elongation)
    b = radius_m / np.sqrt(elongation)
    u, v = a * np.cos(t) * (1 + noise), b * np.sin(t) * (1 + noise)
    theta = np.radians(90.0 - bearing_deg)  # bearing clockwise from north -> maths angle
    x = x0 + u * np.cos(theta) - v * np.sin(theta)
    y = y0 + u * np.sin(theta) + v * np.cos(theta)
    return Polygon(np.column_stack([x, y]))


def as_multipolygon(geom) -> MultiPolygon:
    """Polygonal parts of a geometry as a MultiPolygon (slivers from clipping dropped)."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and g.area > 1.0]
    if not parts:
        raise ValueError("geometry has no polygonal part left after clipping")
    return MultiPolygon(parts)


def sample_in(rng: np.random.Generator, area, n: int) -> np.ndarray:
    """n uniform points (x, y) inside a (prepared) polygonal geometry, by rejection."""
    if n == 0:
        return np.empty((0, 2))
    shapely.prepare(area)
    xmin, ymin, xmax, ymax = area.bounds
    fill = max(area.area / ((xmax - xmin) * (ymax - ymin)), 0.01)
    out: list[np.ndarray] = []
    got = 0
    while got < n:
        m = int((n - got) / fill * 1.3) + 16
        xy = rng.uniform([xmin, ymin], [xmax, ymax], size=(m, 2))
        xy = xy[shapely.contains_xy(area, xy[:, 0], xy[:, 1])]
        out.append(xy)
        got += len(xy)
    return np.concatenate(out)[:n]


def sample_around(rng: np.random.Generator, centres: np.ndarray, spreads_m: np.ndarray, weights: np.ndarray,
                  n: int, area) -> tuple[np.ndarray, np.ndarray]:
    """n points in Gaussian clouds around weighted centres (metric), kept inside `area`.
    Returns the points and the index of the centre each one belongs to."""
    if n == 0:
        return np.empty((0, 2)), np.empty(0, dtype=int)
    shapely.prepare(area)
    p = np.asarray(weights, dtype="float64") / np.sum(weights)
    pts, owners = [], []
    got = 0
    while got < n:
        m = int((n - got) * 1.5) + 16
        which = rng.choice(len(p), m, p=p)
        xy = centres[which] + rng.normal(size=(m, 2)) * spreads_m[which, None]
        ok = shapely.contains_xy(area, xy[:, 0], xy[:, 1])
        pts.append(xy[ok])
        owners.append(which[ok])
        got += ok.sum()
    return np.concatenate(pts)[:n], np.concatenate(owners)[:n]


def jitter_within(rng: np.random.Generator, xy: np.ndarray, radius_m: float, area) -> np.ndarray:
    """Each point moved by up to radius_m in a random direction, kept where it was when the
    move would leave `area` (the original points must lie in it)."""
    if len(xy) == 0:
        return xy.copy()
    shapely.prepare(area)
    r = radius_m * np.sqrt(rng.random(len(xy)))
    t = rng.uniform(0, 2 * np.pi, len(xy))
    moved = xy + np.column_stack([r * np.cos(t), r * np.sin(t)])
    ok = shapely.contains_xy(area, moved[:, 0], moved[:, 1])
    return np.where(ok[:, None], moved, xy)


def containing_index(polygons: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Index of the first polygon covering each point, -1 where none does."""
    tree = shapely.STRtree(polygons)
    points = shapely.points(xy)
    pair = tree.query(points, predicate="covered_by")
    out = np.full(len(xy), -1, dtype=int)
    # query returns pairs sorted by input index; keep the lowest polygon index per point
    order = np.lexsort((pair[1], pair[0]))
    first = np.unique(pair[0][order], return_index=True)[1]
    out[pair[0][order][first]] = pair[1][order][first]
    return out
