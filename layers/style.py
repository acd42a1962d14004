"""Every colour, size and legend text of the map, in one place.

The clientside functions in `assets/hazmap_map.js` draw nothing of their own: each
`dl.GeoJSON` gets its layer's `hideout()` (class key -> colour and size, draw level) and
every feature carries its class key in the property `k`.

Texts are (Chinese, English) pairs; `text(pair, language)` picks one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from spatial.incidents.levels import LEVELS as WARNING_LEVELS

Text = tuple[str, str]
Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")
GeometryKind = Literal["point", "line", "area"]


def text(pair: Text, language: str) -> str:
    """The Chinese or English half of a (zh, en) pair."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    return pair[0] if language == "zh" else pair[1]


# --- the wall screen's base colours (assets/hazmap.css uses the same values) ---------------
SEA = "#0a1522"  # map background: what shows where neither land nor tiles are drawn
LAND = "#172a40"  # union of the districts, a shade lighter than the sea
DISTRICT_OUTLINE = "#5d7ea3"
DISTRICT_LABEL = "#a9c1dc"

# Draw levels: higher is drawn above and wins a click where features overlap. Areas lie
# below lines, lines below points; hazard sources are on top of everything.
LEVEL_BASE_OUTLINE = 0


@dataclass(frozen=True)
class ClassStyle:
    """How one class of feature looks; `color` is the point fill or the line/outline colour."""

    label: Text
    color: str
    radius_px: float = 4.0  # points only
    weight_px: float = 1.5  # outline of areas, width of lines, ring of points
    stroke: str | None = None  # ring colour of points (None: same as color)
    fill_opacity: float = 0.85
    dash: str | None = None

    def as_hideout(self) -> dict:
        out = {
            "color": self.color,
            "weight": self.weight_px,
            "fillOpacity": self.fill_opacity,
            "radius": self.radius_px,
            "stroke": self.stroke or self.color,
        }
        if self.dash:
            out["dashArray"] = self.dash
        return out


@dataclass(frozen=True)
class LayerStyle:
    kinds: tuple[GeometryKind, ...]  # geometry kinds expected, the legend's swatch shape first
    classes: dict[str, ClassStyle]  # class key -> style; keys are what the layer's classify() returns
    levels: dict[GeometryKind, int] = field(default_factory=dict)  # draw level per kind of geometry

    def __post_init__(self) -> None:
        missing = [kind for kind in self.kinds if kind not in self.levels]
        if missing:
            raise ValueError(f"LayerStyle: no draw level for {missing}")

    def hideout(self, layer_name: str) -> dict:
        """What the clientside style functions need, passed through `dl.GeoJSON(hideout=…)`."""
        return {
            "layer": layer_name,
            # Every kind gets a level: a geometry the layer does not expect is drawn at its main level.
            "levels": {kind: self.levels.get(kind, self.levels[self.kinds[0]]) for kind in ("area", "line", "point")},
            "classes": {k: c.as_hideout() for k, c in self.classes.items()},
        }


OTHER = "other"  # class key of a value the palette does not name: still drawn, in grey


def _other(kind_label: Text = ("其他", "Other")) -> ClassStyle:
    return ClassStyle(kind_label, "#8a94a6", radius_px=3.5, fill_opacity=0.6)


# Sensitive sites: small dots ringed in the sea's colour, so the white-ringed, larger hazard
# sources stay the first thing the eye finds.
_SITE = {"radius_px": 3.6, "weight_px": 0.8, "stroke": SEA, "fill_opacity": 0.9}

HAZARD_GRADE_COLORS = {  # GB 18218 grades, the red-orange-yellow-blue of Chinese risk maps
    "1": "#ff3030",
    "2": "#ff8a1c",
    "3": "#ffd21f",
    "4": "#3a86ff",
}

LAYER_STYLES: dict[str, LayerStyle] = {
    "districts": LayerStyle(
        ("area",),
        {"district": ClassStyle(("行政区", "District"), "#6fa8dc", weight_px=2.0, fill_opacity=0.03)},
        {"area": 1},
    ),
    "parks": LayerStyle(
        ("area",),
        {"park": ClassStyle(("化工园区", "Chemical park"), "#c77dff", weight_px=2.0, fill_opacity=0.22)},
        {"area": 2},
    ),
    "restricted_zones": LayerStyle(
        ("area", "line", "point"),  # zones are areas; a closed tunnel or bridge may come as a line
        {
            "city_core": ClassStyle(("城区限时禁行", "City core, closed at set hours"), "#ff9f1c", weight_px=2.0,
                                    fill_opacity=0.12, dash="8 5"),
            "water_protection": ClassStyle(("水源保护区禁行", "Water protection, closed"), "#ff4f79", weight_px=2.0,
                                           fill_opacity=0.14, dash="8 5"),
            "tunnel": ClassStyle(("隧道禁行", "Tunnel, closed"), "#ff4fd8", weight_px=3.0, fill_opacity=0.5),
            OTHER: _other(("其他限制区", "Other restriction")),
        },
        {"area": 3, "line": 3, "point": 11},
    ),
    "sensitive_sites": LayerStyle(
        ("point", "area"),  # most are points (a school), some areas (a water protection zone)
        {
            "school": ClassStyle(("学校", "School"), "#e056fd", **_SITE),
            "kindergarten": ClassStyle(("幼儿园", "Kindergarten"), "#f78fb3", **_SITE),
            "hospital": ClassStyle(("医院", "Hospital"), "#ff6b81", **_SITE),
            "elderly_home": ClassStyle(("养老院", "Elderly home"), "#fab1a0", **_SITE),
            "residential": ClassStyle(("居民区", "Residential area"), "#dfe6e9", **{**_SITE, "fill_opacity": 0.35}),
            "water_protection": ClassStyle(("饮用水源保护区", "Drinking-water protection"), "#1ec8ff",
                                           **{**_SITE, "weight_px": 1.5, "fill_opacity": 0.3}),
            "government": ClassStyle(("政府机关", "Government"), "#ffeaa7", **_SITE),
            OTHER: _other(("其他敏感目标", "Other sensitive site")),
        },
        {"area": 4, "line": 4, "point": 11},
    ),
    "roads": LayerStyle(
        ("line",),
        {
            "expressway": ClassStyle(("高速公路", "Expressway"), "#d9a441", weight_px=2.6, fill_opacity=0),
            "arterial": ClassStyle(("干线公路", "Arterial road"), "#8fa3b8", weight_px=1.3, fill_opacity=0),
            "urban": ClassStyle(("城市道路", "Urban road"), "#5f7186", weight_px=0.9, fill_opacity=0),
            OTHER: ClassStyle(("其他道路", "Other road"), "#5f7186", weight_px=1.0, fill_opacity=0),
        },
        {"line": 5},
    ),
    "waybills": LayerStyle(
        ("line",),
        {
            "active": ClassStyle(("在途运单", "Active waybill"), "#2ee6c5", weight_px=1.8, fill_opacity=0),
            "planned": ClassStyle(("待发运单", "Planned waybill"), "#5b8cff", weight_px=1.4, fill_opacity=0,
                                  dash="6 6"),
            "done": ClassStyle(("已完成运单", "Completed waybill"), "#56657a", weight_px=1.0, fill_opacity=0),
            OTHER: ClassStyle(("其他运单", "Other waybill"), "#8a94a6", weight_px=1.0, fill_opacity=0),
        },
        {"line": 6},
    ),
    "monitoring_points": LayerStyle(
        ("point",),
        {
            "level": ClassStyle(("液位", "Level"), "#4cc9f0", radius_px=2.5, weight_px=0.5),
            "temperature": ClassStyle(("温度", "Temperature"), "#f77f00", radius_px=2.5, weight_px=0.5),
            "pressure": ClassStyle(("压力", "Pressure"), "#c23bd4", radius_px=2.5, weight_px=0.5),
            "combustible_gas": ClassStyle(("可燃气体", "Combustible gas"), "#ffbe0b", radius_px=2.5, weight_px=0.5),
            "toxic_gas": ClassStyle(("有毒气体", "Toxic gas"), "#80ed99", radius_px=2.5, weight_px=0.5),
            OTHER: _other(("其他监测", "Other measurement")),
        },
        {"point": 7},
    ),
    "entities": LayerStyle(
        ("point",),
        {
            "licensed": ClassStyle(("持证企业", "Licensed enterprise"), "#35b8ff", radius_px=3.2, weight_px=0.6,
                                   stroke="#0a1522"),
            "unlicensed": ClassStyle(("非持证使用单位", "Unlicensed user"), "#98a6b9", radius_px=2.8,
                                     weight_px=0.6, stroke="#0a1522", fill_opacity=0.75),
        },
        {"point": 8},
    ),
    "vehicles": LayerStyle(
        ("point",),
        {
            "tank": ClassStyle(("罐式车辆", "Tank vehicle"), "#a3e635", radius_px=3, weight_px=0.6, stroke="#0a1522"),
            "van": ClassStyle(("厢式车辆", "Van"), "#65a30d", radius_px=3, weight_px=0.6, stroke="#0a1522"),
            OTHER: ClassStyle(("其他危货车辆", "Other hazmat vehicle"), "#6b8f3a", radius_px=3, weight_px=0.6,
                              stroke="#0a1522"),
        },
        {"point": 9},
    ),
    "wash_stations": LayerStyle(
        ("point",),
        {"wash_station": ClassStyle(("洗消站", "Tank-washing station"), "#00e0c6", radius_px=6, weight_px=2,
                                    stroke="#e6fffb")},
        {"point": 10},
    ),
    "parking_lots": LayerStyle(
        ("point",),
        {"parking_lot": ClassStyle(("危货停车场", "Hazmat parking lot"), "#8c7bff", radius_px=6, weight_px=2,
                                   stroke="#efeaff")},
        {"point": 10},
    ),
    "service_areas": LayerStyle(
        ("point",),
        {"service_area": ClassStyle(("服务区", "Service area"), "#7fc8f8", radius_px=5, weight_px=1.5,
                                    stroke="#e8f6ff")},
        {"point": 10},
    ),
    "repair_shops": LayerStyle(
        ("point",),
        {"repair_shop": ClassStyle(("维修点", "Repair shop"), "#c9ced6", radius_px=5, weight_px=1.5,
                                   stroke="#0a1522")},
        {"point": 10},
    ),
    "hazard_sources": LayerStyle(
        ("point",),
        {
            g: ClassStyle((f"{'一二三四'[int(g) - 1]}级", f"Grade {g}"), c, radius_px=10.0 - int(g),
                          weight_px=1.6, stroke="#ffffff", fill_opacity=0.95)
            for g, c in HAZARD_GRADE_COLORS.items()
        },
        {"point": 12},
    ),
}

# The live layer (layers/live.py, assets/hazmap_live.js): one style per truck state and per
# monitoring point status, keyed by the names in layers.live.TRUCK_STATES / POINT_STATUSES.
# Fills are opaque: the browser tests read a truck's colour back from the canvas.
LIVE_TRUCK_STYLES: dict[str, ClassStyle] = {
    "parked": ClassStyle(("停驶", "Parked / still"), "#9fb3c8", radius_px=3.2, weight_px=1.0, stroke=SEA, fill_opacity=1),
    "moving": ClassStyle(("行驶", "Moving"), "#3ddc84", radius_px=4.2, weight_px=1.0, stroke=SEA, fill_opacity=1),
    "stale": ClassStyle(("失联（超20分钟无上报）", "No report > 20 min"), "#5c6b7d", radius_px=3.0, weight_px=1.0,
                        stroke=SEA, fill_opacity=1),
    "alert": ClassStyle(("告警（三、四级）", "Alert, severity 3-4"), "#ffb020", radius_px=5.5, weight_px=1.5, stroke="#1a1000",
                        fill_opacity=1),
    "alert_high": ClassStyle(("告警（一、二级）", "Alert, severity 1-2"), "#ff2d55", radius_px=6.5, weight_px=2.0,
                             stroke="#ffffff", fill_opacity=1),
}
LIVE_POINT_STYLES: dict[str, ClassStyle] = {
    "unknown": ClassStyle(("尚无数据", "No reading yet"), "#4a5a6e", radius_px=1.8, weight_px=0, fill_opacity=1),
    "normal": ClassStyle(("正常", "Normal"), "#2f9e7a", radius_px=2.2, weight_px=0, fill_opacity=1),
    "silent": ClassStyle(("数据中断", "Silent (no data)"), "#a29bfe", radius_px=3.0, weight_px=1.0, stroke=SEA,
                         fill_opacity=1),
    "fault": ClassStyle(("仪表故障", "Instrument fault"), "#f6e05e", radius_px=3.5, weight_px=1.0, stroke=SEA,
                        fill_opacity=1),
    "alarm": ClassStyle(("超限报警", "Level alarm"), "#ff8a1c", radius_px=5.0, weight_px=1.5, stroke="#ffffff",
                        fill_opacity=1),
    "alarm_high": ClassStyle(("超限报警（一级）", "Level alarm, severity 1"), "#ff3030", radius_px=6.0, weight_px=2.0,
                             stroke="#ffffff", fill_opacity=1),
}

# The risk grid's bands (spatial/risk.py BANDS): the Ministry of Emergency Management's four
# warning levels, their names and colours from spatial/incidents/levels.py (DOMAIN.md §10);
# the stronger the band, the more opaque its hexagons.
_BAND_OPACITY = {"red": 0.55, "orange": 0.5, "yellow": 0.42, "blue": 0.32}
RISK_BAND_STYLES: dict[str, ClassStyle] = {
    level.key: ClassStyle((f"{level.name_zh}风险", f"{level.name_en.capitalize()} risk"), level.colour,
                          fill_opacity=_BAND_OPACITY[level.key])
    for level in WARNING_LEVELS
}

BASE_HIDEOUT = {  # the always-drawn base: land, district outlines and names
    "land": {"fill": LAND, "level": LEVEL_BASE_OUTLINE},
    "outline": {"color": DISTRICT_OUTLINE, "weight": 1.6, "level": LEVEL_BASE_OUTLINE},
    "label": {"color": DISTRICT_LABEL},
}


def layer_style(name: str) -> LayerStyle:
    try:
        return LAYER_STYLES[name]
    except KeyError:
        raise KeyError(f"no style for map layer {name!r}; styled layers: {sorted(LAYER_STYLES)}") from None


@dataclass(frozen=True)
class LegendEntry:
    label: str
    color: str
    shape: GeometryKind
    dash: str | None = None


@dataclass(frozen=True)
class LegendGroup:
    layer: str
    title: str
    entries: tuple[LegendEntry, ...]


def legend(
    layers: list[tuple[str, Text]], language: str, present: dict[str, set[str]] | None = None
) -> list[LegendGroup]:
    """Legend groups for (layer name, layer title) pairs, in that order.

    `present` (layer -> class keys found in the data) drops the swatches of classes that
    the world does not hold, so the legend never explains a colour nobody can see.
    """
    groups = []
    for name, title in layers:
        style = layer_style(name)
        shape = style.kinds[0]
        entries = tuple(
            LegendEntry(text(c.label, language), c.color, shape, c.dash)
            for key, c in style.classes.items()
            if present is None or key in present.get(name, set())
        )
        groups.append(LegendGroup(name, text(title, language), entries))
    return groups
