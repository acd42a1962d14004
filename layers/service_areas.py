"""Expressway service areas."""

from layers.base import MapLayer, constant

LAYER = MapLayer(
    name="service_areas",
    title=("服务区", "Service areas"),
    shown_by_default=True,
    classify=constant("service_area"),
    references={"road_id": ("roads", "id")},
)
