"""GeoDataFrame -> GeoJSON FeatureCollection bytes, vectorised (shapely 2 writes the
geometries, pandas the properties), with coordinates rounded to what a screen can show."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

# 6 decimals of a degree ≈ 0.1 m: finer than any pixel on the wall, and a third of the bytes
# of full double precision.
COORDINATE_DECIMALS = 6

_EMPTY = b'{"type":"FeatureCollection","features":[]}'


def feature_collection(
    geometries: np.ndarray,
    properties: pd.DataFrame,
    *,
    layer: str,
    decimals: int = COORDINATE_DECIMALS,
) -> bytes:
    """A FeatureCollection of `geometries` (WGS-84 lon/lat shapely objects) with one row of
    `properties` each, as UTF-8 bytes.

    Raises ValueError naming `layer` when the lengths differ or a geometry is missing or
    empty: a feature that cannot be drawn is a data error, not something to drop quietly.
    """
    geometries = np.asarray(geometries, dtype=object)
    if len(geometries) != len(properties):
        raise ValueError(f"{layer}: {len(geometries)} geometries but {len(properties)} property rows")
    if not len(geometries):
        return _EMPTY
    missing = shapely.is_missing(geometries) | shapely.is_empty(geometries)
    if missing.any():
        ids = properties["id"].to_numpy()[missing][:5].tolist() if "id" in properties else np.flatnonzero(missing)[:5]
        raise ValueError(f"{layer}: {int(missing.sum())} features have no geometry (first: {list(ids)})")
    bounds = shapely.total_bounds(geometries)
    if bounds[0] < -180 or bounds[2] > 180 or bounds[1] < -90 or bounds[3] > 90:
        raise ValueError(f"{layer}: coordinates {bounds.tolist()} are not WGS-84 lon/lat")

    rounded = shapely.transform(geometries, lambda xy: np.round(xy, decimals))
    geometry_json = pd.Series(shapely.to_geojson(rounded), dtype=object)
    property_json = pd.Series(
        properties.to_json(orient="records", lines=True, force_ascii=False).splitlines(), dtype=object
    )
    features = '{"type":"Feature","geometry":' + geometry_json + ',"properties":' + property_json + "}"
    body = '{"type":"FeatureCollection","features":[' + ",".join(features.tolist()) + "]}"
    return body.encode("utf-8")
