"""Approved tank-washing stations (槽罐车洗消站)."""

from layers.base import MapLayer, constant

LAYER = MapLayer(
    name="wash_stations",
    title=("洗消站", "Washing stations"),
    shown_by_default=True,
    classify=constant("wash_station"),
    references={"district_adcode": ("districts", "adcode")},
)
