"""GeoJSON of every feature of a snapshot with its attributes (RFC 7946, WGS-84), the area's
outline first; the key figures, time and area ride along as foreign members."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from reports.common import local_time

LAYER_ORDER = ("hazard_sources", "monitoring_points", "trucks", "sensitive_sites", "incidents", "cells")


def _clean(value):
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if value != value else float(value)
    return value


def snapshot_features(snapshot) -> dict:
    area = snapshot.area
    features = [{"type": "Feature", "geometry": shapely.geometry.mapping(area.geometry),
                 "properties": {"layer": "area", "name": area.name, "kind": area.kind, "note": area.note}}]
    for layer in LAYER_ORDER:
        table: gpd.GeoDataFrame = snapshot.tables[layer]
        if not len(table):
            continue
        props = pd.DataFrame(table.drop(columns="geometry"))
        props = props.astype(object).where(props.notna(), None)
        records = [{k: _clean(v) for k, v in r.items()} for r in props.to_dict("records")]
        if (table.geom_type == "Point").all():  # coordinates straight from the arrays (geopandas' iterfeatures is slow)
            xs, ys = shapely.get_x(table.geometry.values), shapely.get_y(table.geometry.values)
            geoms = [{"type": "Point", "coordinates": [x, y]} for x, y in zip(xs.tolist(), ys.tolist())]
        else:
            geoms = [shapely.geometry.mapping(g) for g in table.geometry]
        features += [{"type": "Feature", "geometry": g, "properties": {"layer": layer, **r}}
                     for g, r in zip(geoms, records)]
    return {"type": "FeatureCollection", "name": f"snapshot {area.name}",
            "at": local_time(snapshot.at), "at_utc": pd.Timestamp(snapshot.at).isoformat(),
            "area": area.name, "resolution": snapshot.resolution,
            "figures": {k: _clean(v) for k, v in snapshot.figures.items()}, "features": features}


def snapshot_geojson(snapshot) -> bytes:
    return json.dumps(snapshot_features(snapshot), ensure_ascii=False, allow_nan=False).encode("utf-8")
