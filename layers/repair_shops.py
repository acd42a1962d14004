"""Repair shops where a hazmat truck may legitimately stop."""

from layers.base import MapLayer, constant

LAYER = MapLayer(
    name="repair_shops",
    title=("维修点", "Repair shops"),
    shown_by_default=True,
    classify=constant("repair_shop"),
)
