"""Search the wall by plate, name or id: entities, hazard sources, monitoring points, trucks,
sensitive sites (and the few stations, lots, areas and shops). Pure: built once from the World,
answered with numpy/pandas string operations over every feature at once.

A hit carries what the wall needs to fly to it and open it: the layer, the id, the text shown,
and a lon/lat inside the feature (a point's own; an area's representative point).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from layers.catalog import map_layer
from layers.style import Text, text
from spatial.model import World

SEARCHED_LAYERS: tuple[str, ...] = (
    "vehicles", "entities", "hazard_sources", "monitoring_points", "sensitive_sites", "wash_stations",
    "parking_lots", "service_areas", "repair_shops",
)
MAX_HITS = 10
MAX_QUERY_CHARS = 64
# Plates are written 浙B·Z4189, 浙B Z4189 or 浙BZ4189, ids ENT-000004 or ent000004: separators do not count.
_SEPARATORS = r"[·•. \t_-]+"  # not newline: it parts the fields of a key
SEARCH_PLACEHOLDER: Text = ("搜索车牌、名称或编号", "Search plate, name or id")
NO_HITS: Text = ("无结果", "Nothing found")


class SearchIndex:
    """Every searchable feature's id, plate, names and position, in one frame."""

    def __init__(self, world: World):
        frames = []
        for name in SEARCHED_LAYERS:
            table = world.table(name)
            if not len(table):
                continue
            geometries = table.geometry.to_numpy()
            anchor = np.where(shapely.get_type_id(geometries) == 0, geometries, shapely.point_on_surface(geometries))
            ids = table["id"].astype(str).to_numpy(object)
            plate = table["plate"].astype(str).to_numpy(object) if "plate" in table else np.full(len(table), "", object)
            label = table["name"].astype(str).to_numpy(object) if "name" in table else ids
            label_en = (table["name_en"].fillna(table["name"]).astype(str).to_numpy(object)
                        if "name_en" in table else label)
            label = np.where(plate != "", plate, label)
            label_en = np.where(plate != "", plate, label_en)
            frames.append(pd.DataFrame({
                "layer": name, "id": ids, "label": label, "label_en": label_en,
                "lon": shapely.get_x(anchor), "lat": shapely.get_y(anchor),
                "key": _normal(pd.Series(ids).str.cat([pd.Series(plate), pd.Series(label), pd.Series(label_en)],
                                                      sep="\n")).to_numpy(object),
            }))
        self.frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["layer", "id", "label", "label_en", "lon", "lat", "key"])
        self._ids = _normal(self.frame["id"])
        self._labels = _normal(self.frame["label"])

    def find(self, query: str, language: str, limit: int = MAX_HITS, keep: np.ndarray | None = None) -> list[dict]:
        """Up to `limit` hits for `query` (case-insensitive; a plate's or id's exact match first,
        then those starting with it, then any containing it); with `keep` (a boolean array over
        `frame`: what one user may see, app/permissions.py), among those only. Raises ValueError
        for an empty or over-long query."""
        if len((query or "").strip()) > MAX_QUERY_CHARS:
            raise ValueError(f"the search text is {len(query.strip())} characters; at most {MAX_QUERY_CHARS} are taken")
        wanted = _normal(pd.Series([query or ""])).iloc[0]
        if not wanted:
            raise ValueError("the search text is empty")
        keys = self.frame["key"]
        contains = keys.str.contains(wanted, regex=False).to_numpy(bool)
        if keep is not None:
            contains = contains & keep
        if not contains.any():
            return []
        exact = ((self._ids == wanted) | (self._labels == wanted)).to_numpy(bool)
        prefix = (self._ids.str.startswith(wanted) | self._labels.str.startswith(wanted)).to_numpy(bool)
        rank = np.where(exact, 0, np.where(prefix, 1, 2))
        order = np.lexsort((self._ids.to_numpy(object).astype(str), rank))
        order = order[contains[order]][:limit]
        hits = self.frame.iloc[order]
        label = hits["label_en" if language == "en" else "label"]
        return [{"layer": layer, "layer_title": text(map_layer(layer).title, language), "id": fid, "label": lab,
                 "lon": round(float(lon), 6), "lat": round(float(lat), 6)}
                for layer, fid, lab, lon, lat in zip(hits["layer"], hits["id"], label, hits["lon"], hits["lat"],
                                                     strict=True)]


def _normal(values: pd.Series) -> pd.Series:
    """Lower case without separators (one line per field kept: a match never spans two fields)."""
    return values.astype(str).str.lower().str.replace(_SEPARATORS, "", regex=True)
