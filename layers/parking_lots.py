"""Designated hazmat parking lots."""

from layers.base import MapLayer, constant

LAYER = MapLayer(
    name="parking_lots",
    title=("危货停车场", "Hazmat parking"),
    shown_by_default=True,
    classify=constant("parking_lot"),
)
