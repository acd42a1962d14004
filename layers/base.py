"""What a map layer is: a World table, its title, how its features are classed for colour,
and how its fields point at other layers. Each layer module declares one `MapLayer`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from layers.geojson import feature_collection
from layers.style import OTHER, Text, layer_style
from spatial.model import LAYER_SPECS, World

Classifier = Callable[[gpd.GeoDataFrame], np.ndarray]


@dataclass(frozen=True)
class MapLayer:
    name: str  # the World table, one of spatial.model.LAYER_NAMES
    title: Text
    shown_by_default: bool
    classify: Classifier  # frame -> class key per feature (keys of layers.style.LAYER_STYLES[name].classes)
    title_column: str = "name"  # what heads the details panel
    references: dict[str, tuple[str, str]] = field(default_factory=dict)  # column -> (layer, its key column)

    def __post_init__(self) -> None:
        if self.name not in LAYER_SPECS:
            raise ValueError(f"map layer {self.name!r} is not a World layer ({sorted(LAYER_SPECS)})")
        layer_style(self.name)  # every layer has a style
        for column, (target, key) in self.references.items():
            if column not in self.spec.columns or target not in LAYER_SPECS or key not in LAYER_SPECS[target].columns:
                raise ValueError(f"map layer {self.name!r}: bad reference {column} -> {target}.{key}")

    @property
    def spec(self):
        return LAYER_SPECS[self.name]

    def class_keys(self, frame: gpd.GeoDataFrame) -> np.ndarray:
        """The style class of every feature; values the palette does not name fall into
        'other' where the layer has one, and are an error where it has none."""
        keys = np.asarray(self.classify(frame), dtype=object) if len(frame) else np.array([], dtype=object)
        known = np.isin(keys, list(layer_style(self.name).classes))
        if known.all():
            return keys
        if OTHER not in layer_style(self.name).classes:
            raise ValueError(f"{self.name}: no colour for class values {sorted(set(keys[~known].tolist()))}")
        return np.where(known, keys, OTHER)

    def payload(self, world: World) -> bytes:
        """The layer as GeoJSON: geometry plus `id` and the class key `k` (the details panel
        looks everything else up by id, so the wall does not download every attribute)."""
        frame = world.table(self.name)
        properties = pd.DataFrame({"id": frame["id"].astype(str).to_numpy(), "k": self.class_keys(frame)})
        return feature_collection(frame.geometry.to_numpy(), properties, layer=self.name)


def constant(key: str) -> Classifier:
    """Every feature in one class."""
    return lambda frame: np.full(len(frame), key, dtype=object)


def by_column(column: str) -> Classifier:
    """The class is the column's value, as text (missing values become 'other')."""

    def classify(frame: gpd.GeoDataFrame) -> np.ndarray:
        values = frame[column]
        return np.where(values.isna(), OTHER, values.astype(str)).astype(object)

    return classify
