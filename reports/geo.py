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
        doc = table.to_geo_dict(na="null", drop_id=True)
        for feature in doc["features"]:
            feature["properties"] = {"layer": layer, **{k: _clean(v) for k, v in feature["properties"].items()}}
            features.append(feature)
    return {"type": "FeatureCollection", "name": f"snapshot {area.name}",
            "at": local_time(snapshot.at), "at_utc": pd.Timestamp(snapshot.at).isoformat(),
            "area": area.name, "resolution": snapshot.resolution,
            "figures": {k: _clean(v) for k, v in snapshot.figures.items()}, "features": features}


def snapshot_geojson(snapshot) -> bytes:
    return json.dumps(snapshot_features(snapshot), ensure_ascii=False, allow_nan=False).encode("utf-8")
