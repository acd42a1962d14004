"""Regulated entities (涉危主体), licensed enterprises apart from unlicensed users."""

import numpy as np

from layers.base import MapLayer


def _licensed_or_not(frame) -> np.ndarray:
    return np.where(frame["licensed"].astype(bool).to_numpy(), "licensed", "unlicensed").astype(object)


LAYER = MapLayer(
    name="entities",
    title=("涉危主体", "Regulated entities"),
    shown_by_default=True,
    classify=_licensed_or_not,
    references={"district_adcode": ("districts", "adcode"), "park_id": ("parks", "id")},
)
