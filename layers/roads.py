"""The road network the rules use (speed limits, routes)."""

from layers.base import MapLayer, by_column

LAYER = MapLayer(
    name="roads",
    title=("道路", "Roads"),
    shown_by_default=False,  # the basemap shows roads; this layer is the rules' network
    classify=by_column("road_class"),
)
