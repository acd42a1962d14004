"""The monitoring point's panel: its readings chart (1 h / 24 h / 7 d) with the level 1 and 2
lines (high side: high / high_high; low side: low / low_low, as spatial/rules/point_level.py reads
them), its hazard source, its incidents."""

from __future__ import annotations

import numpy as np

from layers.panels.charts import graph, readings_figure
from layers.panels.common import Links, fields, frame_, incidents, local_time, nothing, number, section
from layers.style import Text, text

L: dict[str, Text] = {
    "source": ("所属危险源", "Hazard source"), "kind": ("类型", "Kind"), "unit": ("单位", "Unit"),
    "level_1": ("一级报警值", "Level 1"), "level_2": ("二级报警值", "Level 2"), "range": ("量程", "Range"),
    "last": ("最新读数", "Latest reading"), "at": ("时间", "At"), "window": ("读数", "Readings"),
}


def _finite(value) -> float | None:
    try:
        number_ = float(value)
    except (TypeError, ValueError):
        return None
    return number_ if np.isfinite(number_) else None


def alarm_levels(row) -> tuple[float | None, float | None]:
    """(level 1, level 2) of a point: the high side when set, else the low side."""
    high, high_high = _finite(row.get("high")), _finite(row.get("high_high"))
    if high is not None or high_high is not None:
        return high, high_high
    return _finite(row.get("low")), _finite(row.get("low_low"))


def build(data: dict, language: str, history: list) -> list:
    row, links = data["row"], Links()
    level_1, level_2 = alarm_levels(row)
    readings = data["readings"]
    rows = [
        (text(L["source"], language), links.to("hazard_sources", row["hazard_source_id"])),
        (text(L["kind"], language), str(row["kind"])), (text(L["unit"], language), str(row["unit"])),
        (text(L["level_1"], language), number(level_1)), (text(L["level_2"], language), number(level_2)),
        (text(L["range"], language), f"{number(row['range_min'])} – {number(row['range_max'])}"),
    ]
    if len(readings):
        rows += [(text(L["last"], language), number(readings["value"].iloc[-1], str(row["unit"]))),
                 (text(L["at"], language), local_time(readings["epoch_ms"].iloc[-1]))]
    chart = graph(readings_figure(readings["epoch_ms"], readings["value"], str(row["unit"]), level_1, level_2,
                                  language), "readings") if len(readings) else nothing(language)
    body = [fields(rows), *section(f"{text(L['window'], language)} ({data['window']})", language, chart,
                                   count=len(readings))]
    body += incidents(data["incidents"], language, links)
    focus = {"layer": "monitoring_points", "id": str(row["id"]), "lon": float(row.geometry.x),
             "lat": float(row.geometry.y)}
    return frame_("monitoring_points", str(row["id"]), str(row["id"]), language, history, focus, body)
