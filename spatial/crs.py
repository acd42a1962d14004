"""Coordinate systems: WGS-84 <-> GCJ-02 and the metric projection every rule uses.

Inside hazmap every coordinate is WGS-84 lon/lat. GCJ-02 (the datum of Amap and Tencent
data) appears only at the edges: importing such data, or choosing a GCJ-02 basemap.

pyproj/PROJ do not implement GCJ-02 (it is an obfuscation, not a geodetic datum), so the
published forward formula is written out here; the inverse has no closed form and is
found by fixed-point iteration until the round trip is within `GCJ_INVERSE_TOLERANCE_M`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer

WGS84 = "EPSG:4326"
# UTM zone 51N covers all of Ningbo (120°E-126°E): the metric CRS of every rule.
METRIC_CRS = "EPSG:32651"

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 formula.
_A = 6378245.0
_EE = 0.00669342162296594323

GCJ_INVERSE_TOLERANCE_M = 0.01
_MAX_INVERSE_ITERATIONS = 30
_METRES_PER_DEGREE = 111_320.0


def _offset(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The GCJ-02 shift (dlon, dlat) in degrees at WGS-84 (lon, lat)."""
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    dlat = (
        -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """WGS-84 lon/lat (scalars or arrays) to GCJ-02. Valid inside China, where it applies."""
    lon = np.asarray(lon, dtype="float64")
    lat = np.asarray(lat, dtype="float64")
    dlon, dlat = _offset(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 lon/lat to WGS-84, iterated until forward(result) is within 1 cm of the input."""
    g_lon = np.asarray(lon, dtype="float64")
    g_lat = np.asarray(lat, dtype="float64")
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(_MAX_INVERSE_ITERATIONS):
        f_lon, f_lat = wgs84_to_gcj02(w_lon, w_lat)
        err_lon, err_lat = f_lon - g_lon, f_lat - g_lat
        w_lon = w_lon - err_lon
        w_lat = w_lat - err_lat
        err_m = np.hypot(err_lon * np.cos(np.radians(g_lat)), err_lat) * _METRES_PER_DEGREE
        if np.all(err_m < GCJ_INVERSE_TOLERANCE_M / 10):
            break
    return w_lon, w_lat


def geometry_gcj02_to_wgs84(geoms):
    """Shift every vertex of shapely geometries (array-like) from GCJ-02 to WGS-84."""
    return shapely.transform(geoms, lambda xy: np.column_stack(gcj02_to_wgs84(xy[:, 0], xy[:, 1])))


def geometry_wgs84_to_gcj02(geoms):
    """Shift every vertex of shapely geometries (array-like) from WGS-84 to GCJ-02."""
    return shapely.transform(geoms, lambda xy: np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1])))


@lru_cache(maxsize=None)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def to_metric(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """WGS-84 lon/lat to UTM 51N metres (x, y)."""
    return _transformer(WGS84, METRIC_CRS).transform(np.asarray(lon, "float64"), np.asarray(lat, "float64"))


def from_metric(x, y) -> tuple[np.ndarray, np.ndarray]:
    """UTM 51N metres back to WGS-84 lon/lat."""
    return _transformer(METRIC_CRS, WGS84).transform(np.asarray(x, "float64"), np.asarray(y, "float64"))


def geometry_to_metric(geoms):
    """Shapely geometries (array-like) in WGS-84 to UTM 51N."""
    return shapely.transform(geoms, lambda xy: np.column_stack(to_metric(xy[:, 0], xy[:, 1])))


def geometry_from_metric(geoms):
    """Shapely geometries (array-like) in UTM 51N back to WGS-84."""
    return shapely.transform(geoms, lambda xy: np.column_stack(from_metric(xy[:, 0], xy[:, 1])))
