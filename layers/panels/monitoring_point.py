"""The monitoring point's panel: its readings chart (1 h / 24 h / 7 d) with the level 1 and 2
lines (high side: high / high_high; low side: low / low_low, as spatial/rules/point_level.py reads
them), its hazard source, its incidents."""

from __future__ import annotations

import numpy as np
import pandas as pd

from layers.labels import rule_title, value_label
from layers.panels.charts import graph, readings_figure
from layers.panels.common import Links, fields, frame_, incidents, local_time, nothing, number, section, table, \
    window_switch
from layers.style import Text, text

L: dict[str, Text] = {
    "source": ("所属危险源", "Hazard source"), "kind": ("类型", "Kind"), "unit": ("单位", "Unit"),
    "level_1": ("一级报警值", "Level 1"), "level_2": ("二级报警值", "Level 2"), "range": ("量程", "Range"),
    "last": ("最新读数", "Latest reading"), "at": ("时间", "At"), "window": ("读数", "Readings"),
    "history": ("状态记录 (7 天)", "Status history (7 days)"), "status": ("状态", "Status"),
    "rule": ("规则", "Rule"), "start": ("开始", "Start"), "end": ("结束", "End"), "ongoing": ("持续中", "ongoing"),
}
READING_WINDOWS: tuple[tuple[str, str], ...] = (("1h", "1 h"), ("24h", "24 h"), ("7d", "7 d"))  # READING_WINDOWS_H


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
        (text(L["kind"], language), value_label("monitoring_kind", row["kind"], language)),
        (text(L["unit"], language), str(row["unit"])),
        (text(L["level_1"], language), number(level_1)), (text(L["level_2"], language), number(level_2)),
        (text(L["range"], language), f"{number(row['range_min'])} – {number(row['range_max'])}"),
    ]
    if len(readings):
        rows += [(text(L["last"], language), number(readings["value"].iloc[-1], str(row["unit"]))),
                 (text(L["at"], language), local_time(readings["epoch_ms"].iloc[-1]))]
    body = [fields(rows), *section(L["window"], language, window_switch("readings", list(READING_WINDOWS),
                                                                       data["window"]),
                                   graph(readings_chart(row, readings, language), "readings"))]
    body += _status_history(data.get("status_history"), language)
    body += incidents(data["incidents"], language, links)
    focus = {"layer": "monitoring_points", "id": str(row["id"]), "lon": float(row.geometry.x),
             "lat": float(row.geometry.y)}
    return frame_("monitoring_points", str(row["id"]), str(row["id"]), language, history, focus, body)


def readings_chart(row, readings, language: str):
    """The point's readings figure with its level 1 and 2 lines."""
    level_1, level_2 = alarm_levels(row)
    return readings_figure(readings["epoch_ms"], readings["value"], str(row["unit"]), level_1, level_2, language)


def _status_history(history, language: str) -> list:
    """The point's status episodes (data/drilldown.status_history), named as the wall's point layer
    names its statuses (layers/live.py: a level alarm, silence, else an instrument fault)."""
    from layers.live import LEVEL_RULES, SILENT_RULES
    from layers.style import LIVE_POINT_STYLES

    if history is None or not len(history):
        return section(L["history"], language, nothing(language), count=0)
    rows = []
    for item in history.itertuples(index=False):  # a week of episodes of one point: a handful
        status = ("alarm_high" if item.severity <= 1 else "alarm") if item.rule in LEVEL_RULES else \
            "silent" if item.rule in SILENT_RULES else "fault"
        end = text(L["ongoing"], language) if item.end is None or pd.isna(item.end) else local_time(item.end)
        rows.append([text(LIVE_POINT_STYLES[status].label, language), rule_title(item.rule, language),
                     local_time(item.start), end])
    return section(L["history"], language, table([text(L[k], language) for k in ("status", "rule", "start", "end")],
                                                 rows, "hz-panel-status"), count=len(history))
