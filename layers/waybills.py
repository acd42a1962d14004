"""Electronic waybills (电子运单) drawn as their planned routes."""

from layers.base import MapLayer, by_column

LAYER = MapLayer(
    name="waybills",
    title=("运单路线", "Waybill routes"),
    shown_by_default=False,  # thousands of lines; turned on to follow the flows
    classify=by_column("status"),
    title_column="id",
    references={
        "vehicle_id": ("vehicles", "id"),
        "loading_site_id": ("entities", "id"),
        "unloading_site_id": ("entities", "id"),
    },
)
