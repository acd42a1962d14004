"""Every map layer in the order of the layers control, and the payloads the server hands out."""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np

from layers import (
    districts,
    entities,
    hazard_sources,
    monitoring_points,
    parking_lots,
    parks,
    repair_shops,
    restricted_zones,
    roads,
    sensitive_sites,
    service_areas,
    vehicles,
    wash_stations,
    waybills,
)
from layers.base import MapLayer
from layers.basemap import BASE_BUILDERS, BASE_LAYERS
from spatial.model import LAYER_NAMES, World

# Control order: context first (districts, parks), then what is regulated, then what protects
# or restricts, then transport, then the places a truck may stop.
LAYERS: tuple[MapLayer, ...] = (
    districts.LAYER,
    parks.LAYER,
    hazard_sources.LAYER,
    entities.LAYER,
    monitoring_points.LAYER,
    sensitive_sites.LAYER,
    restricted_zones.LAYER,
    roads.LAYER,
    waybills.LAYER,
    vehicles.LAYER,
    wash_stations.LAYER,
    parking_lots.LAYER,
    service_areas.LAYER,
    repair_shops.LAYER,
)
_BY_NAME = {layer.name: layer for layer in LAYERS}
if set(_BY_NAME) != set(LAYER_NAMES) or len(_BY_NAME) != len(LAYERS):
    raise RuntimeError(f"layers.catalog must list every World layer once: {sorted(set(LAYER_NAMES) ^ set(_BY_NAME))}")

# gzip level 6: within a few per cent of level 9's size at a third of the time.
_GZIP_LEVEL = 6


def map_layer(name: str) -> MapLayer:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no map layer {name!r}; layers: {list(_BY_NAME)}") from None


@dataclass(frozen=True)
class Payload:
    """One layer's GeoJSON, plain and gzip-compressed, built once per World."""

    body: bytes
    gzipped: bytes


def build_payloads(world: World) -> dict[str, Payload]:
    """GeoJSON of every World layer and of the base (land, district outlines and names)."""
    raw = {layer.name: layer.payload(world) for layer in LAYERS}
    raw.update({name: BASE_BUILDERS[name](world) for name in BASE_LAYERS})
    return {name: Payload(body, gzip.compress(body, _GZIP_LEVEL, mtime=0)) for name, body in raw.items()}


def class_keys_present(world: World) -> dict[str, set[str]]:
    """layer -> the style classes its features fall in (the legend shows only these)."""
    return {layer.name: set(np.unique(layer.class_keys(world.table(layer.name))).tolist()) for layer in LAYERS}


def world_bounds(world: World) -> list[list[float]]:
    """[[south, west], [north, east]] of the districts (the city the wall looks at)."""
    if not len(world.districts):
        raise ValueError("the world has no districts: nothing to fit the map to")
    west, south, east, north = world.districts.total_bounds.tolist()
    return [[south, west], [north, east]]
