"""Zones closed to hazmat trucks (art. 49), for good or at set hours, or with a lower limit."""

from layers.base import MapLayer, by_column

LAYER = MapLayer(
    name="restricted_zones",
    title=("限行区域", "Restricted zones"),
    shown_by_default=True,
    classify=by_column("kind"),
)
