"""Districts and county-level divisions: clickable outlines above the always-drawn base."""

from layers.base import MapLayer, constant

LAYER = MapLayer(
    name="districts",
    title=("行政区", "Districts"),
    shown_by_default=True,
    classify=constant("district"),
)
