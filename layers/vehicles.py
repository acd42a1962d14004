"""Registered hazmat vehicles at their home position (live positions come from the feeds)."""

from layers.base import MapLayer, by_column

LAYER = MapLayer(
    name="vehicles",
    title=("危货车辆", "Hazmat vehicles"),
    shown_by_default=False,  # thousands of dots; the live layer shows where they really are
    classify=by_column("body"),
    title_column="plate",
)
