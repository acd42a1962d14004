"""What every format shares: how a figure is printed, the tables' titles and column labels,
the CJK font, the local time zone."""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

import pandas as pd

LOCAL_TZ = "Asia/Shanghai"

# A TrueType CJK font: Noto CJK's CFF outlines break reportlab (and matplotlib's PDF backend).
CJK_FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
)


def cjk_font_path() -> Path:
    for path in CJK_FONT_CANDIDATES:
        if path.exists():
            return path
    raise FileNotFoundError("no TrueType CJK font: install Debian's fonts-wqy-zenhei "
                            f"(looked for {', '.join(map(str, CJK_FONT_CANDIDATES))})")


def fmt(value) -> str:
    """A figure as every text format prints it: integers plain, others to at most 3 decimals."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "是" if value else "否"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if v != v:
            return ""
        text = f"{v:.3f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return str(value)


def local_time(at: pd.Timestamp) -> str:
    return f"{pd.Timestamp(at).tz_convert(LOCAL_TZ):%Y-%m-%d %H:%M:%S}"


# table -> (title zh, title en); columns -> label (zh / en)
TABLE_TITLES = {
    "hazard_sources": ("重大危险源", "Major hazard sources"),
    "monitoring_points": ("监测点", "Monitoring points"),
    "points_in_alarm": ("报警监测点", "Points in alarm"),
    "trucks": ("在途车辆", "Trucks present"),
    "sensitive_sites": ("暴露敏感目标", "Sensitive sites exposed"),
    "incidents": ("告警事件", "Incidents"),
    "cells": ("风险网格", "Grid cells"),
}
COLUMN_LABELS = {
    "id": "编号 id", "name": "名称 name", "entity": "企业 entity", "grade": "等级 grade", "r_value": "R值 R",
    "chemicals": "化学品 chemicals", "hazard_source_id": "危险源 source", "kind": "类型 kind", "unit": "单位 unit",
    "state": "状态 state", "level": "级别 level", "vehicle_id": "车辆 vehicle", "plate": "车牌 plate",
    "carrier": "承运人 carrier", "cargo_state": "载货 cargo", "hazard_class": "类别 class",
    "un_number": "UN号 UN", "chemical": "货物 goods", "occupancy": "人数 people", "reached_by": "波及来源 reached by",
    "exposure_points": "暴露分 exposure", "rule": "规则 rule", "subject_id": "对象 subject", "level_zh": "等级 level",
    "status": "处置状态 status", "open_at_t": "时点未关闭 open at T", "first_time": "首次时间 first",
    "closed_at": "关闭时间 closed", "recipients": "接收方 recipients", "disposed": "已处置 disposed",
    "departments": "接收单位 to", "cell": "网格 cell", "score": "分值 score", "band": "风险等级 band",
    "hazard": "危险源分 hazard", "alarms": "报警分 alarms", "exposure": "暴露分 exposure",
    "incidents": "事件分 incidents", "lon": "经度 lon", "lat": "纬度 lat",
}


def printable_tables(snapshot) -> dict[str, pd.DataFrame]:
    """The tables the PDF and the XLSX print (the XLSX every row, the PDF the first rows):
    plain frames without geometry, lon/lat rounded to 6 decimals."""
    out = {}
    for name, table in snapshot.tables.items():
        frame = pd.DataFrame(table.drop(columns="geometry"))
        for c in ("lon", "lat"):
            if c in frame.columns:
                frame[c] = frame[c].astype(float).round(6)
        out[name] = frame
    points = out["monitoring_points"]
    out["points_in_alarm"] = points[points["state"] != "normal"].reset_index(drop=True)
    return {k: out[k] for k in ("hazard_sources", "points_in_alarm", "trucks", "sensitive_sites", "incidents",
                                "cells", "monitoring_points")}
