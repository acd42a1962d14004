"""Sensitive sites (GB/T 37243 protected targets): points or areas, by kind."""

from layers.base import MapLayer, by_column

LAYER = MapLayer(
    name="sensitive_sites",
    title=("敏感目标", "Sensitive sites"),
    shown_by_default=True,
    classify=by_column("kind"),
)
