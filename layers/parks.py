"""Chemical parks (化工园区)."""

from layers.base import MapLayer, constant

LAYER = MapLayer(
    name="parks",
    title=("化工园区", "Chemical parks"),
    shown_by_default=True,
    classify=constant("park"),
    references={"district_adcode": ("districts", "adcode")},
)
