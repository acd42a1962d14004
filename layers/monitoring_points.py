"""Monitoring points of the major hazard sources, by what they measure."""

from layers.base import MapLayer, by_column

LAYER = MapLayer(
    name="monitoring_points",
    title=("监测点", "Monitoring points"),
    shown_by_default=False,  # 5,196 dots: the officer turns them on when needed
    classify=by_column("kind"),
    title_column="id",
    references={"hazard_source_id": ("hazard_sources", "id")},
)
