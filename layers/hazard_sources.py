"""Major hazard sources (重大危险源), coloured by their GB 18218 grade."""

import numpy as np

from layers.base import MapLayer


def _grade(frame) -> np.ndarray:
    return frame["grade"].astype("Int64").astype(str).to_numpy(dtype=object)


LAYER = MapLayer(
    name="hazard_sources",
    title=("重大危险源", "Major hazard sources"),
    shown_by_default=True,
    classify=_grade,
    references={"entity_id": ("entities", "id")},
)
