"""The base that is always drawn, whether or not a tile server answers: the land (union of
the districts, a shade lighter than the sea behind it), the district outlines and the
district names. Orientation for a duty officer when the basemap is down."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from shapely.ops import polylabel

from layers.geojson import feature_collection
from spatial.model import World

BASE_LAYERS = ("land", "district_outlines", "district_labels")

# Tolerance of the label position search, in degrees (≈ 100 m): finer changes nothing on screen.
_LABEL_TOLERANCE_DEG = 0.001


def land(world: World) -> bytes:
    geoms = world.districts.geometry.to_numpy()
    if not len(geoms):
        return feature_collection(np.array([], dtype=object), pd.DataFrame({"k": []}), layer="land")
    union = shapely.union_all(geoms)
    return feature_collection(np.array([union], dtype=object), pd.DataFrame({"k": ["land"]}), layer="land")


def district_outlines(world: World) -> bytes:
    districts = world.districts
    return feature_collection(
        shapely.boundary(districts.geometry.to_numpy()),
        pd.DataFrame({"id": districts["id"].astype(str).to_numpy(), "k": "outline"}),
        layer="district_outlines",
    )


def label_points(geometries: np.ndarray) -> np.ndarray:
    """Where to write each district's name: the pole of inaccessibility of its largest part
    (an island county's name goes on its main island, never in the sea)."""
    parts, owner = shapely.get_parts(geometries, return_index=True)
    areas = pd.Series(shapely.area(parts))
    largest = areas.groupby(owner).idxmax().reindex(range(len(geometries)))
    # polylabel has no vectorised form; this runs once per district (ten of them).
    return np.array([polylabel(parts[i], tolerance=_LABEL_TOLERANCE_DEG) for i in largest.to_numpy()], dtype=object)


def district_labels(world: World) -> bytes:
    districts = world.districts
    return feature_collection(
        label_points(districts.geometry.to_numpy()) if len(districts) else np.array([], dtype=object),
        pd.DataFrame(
            {
                "id": districts["id"].astype(str).to_numpy(),
                "name": districts["name"].astype(str).to_numpy(),
                "name_en": districts["name_en"].astype(str).to_numpy(),
            }
        ),
        layer="district_labels",
    )


BASE_BUILDERS = {"land": land, "district_outlines": district_outlines, "district_labels": district_labels}
