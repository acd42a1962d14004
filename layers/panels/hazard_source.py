"""The hazard source's panel: its enterprise, chemicals with quantities and critical quantities,
how R and the grade come out (GB 18218-2018: R = α · Σ βᵢ·qᵢ/Qᵢ), its monitoring points with 24 h
sparklines against their alarm levels, its incidents, and loaded trucks within its protective
distance now (the impact view, spatial/impact.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from layers.labels import value_label
from layers.panels.charts import sparkline
from layers.panels.common import Links, fields, frame_, incidents, nothing, number, outside_scope, section, table
from layers.panels.impact import open_link
from layers.panels.monitoring_point import alarm_levels
from layers.style import Text, text

L: dict[str, Text] = {
    "enterprise": ("所属企业", "Enterprise"), "people": ("500 m 内人数", "People within 500 m"),
    "alpha": ("α (GB 18218 表5)", "α (GB 18218 table 5)"), "s": ("S = Σ q/Q", "S = Σ q/Q"),
    "r": ("R = α·Σ β·q/Q", "R = α·Σ β·q/Q"), "grade": ("等级 (表6)", "Grade (table 6)"),
    "stored": ("登记 R / 等级", "Registered R / grade"),
    "chemicals": ("危险化学品", "Chemicals"), "un": ("UN号", "UN"), "name": ("品名", "Name"),
    "q": ("q (t)", "q (t)"), "Q": ("临界量 Q (t)", "Critical Q (t)"), "ratio": ("q/Q", "q/Q"), "beta": ("β", "β"),
    "points": ("监测点 (24 h)", "Monitoring points (24 h)"),
    "trucks": ("防护距离内的重载车辆", "Loaded trucks within the protective distance"),
    "distance": ("ERG 防护距离", "ERG protective distance"), "dist": ("距离 (m)", "Distance (m)"),
    "sites": ("防护距离内的敏感目标", "Sensitive sites within the protective distance"),
    "occupancy": ("人数", "Occupancy"),
}


def build(data: dict, language: str, history: list) -> list:
    row, links = data["row"], Links()
    entity = data["entity"]
    view = data["impact"]
    # people within 500 m and the registered R and grade are in the attribute table above; here R is worked out
    rows = [
        (text(L["enterprise"], language), links.to("entities", entity["id"], str(entity["name"]))
         if entity is not None else str(row["entity_id"])),
        (text(L["alpha"], language), number(data["alpha"])),
        (text(L["s"], language), f"{data['s_value']:.2f}"),
        (text(L["r"], language), f"{data['r_value']:.2f}"),
        (text(L["grade"], language), value_label("grade", data["grade"], language)),
        (text(L["distance"], language), _distance(view.distances, language)),
    ]
    body = [fields(rows)]
    body.append(open_link(links, str(row["id"]), language))  # its impact view (layers/panels/impact.py)
    chemicals = data["chemicals"]
    name = "name_zh" if language == "zh" else "name_en"
    body += section(L["chemicals"], language, table(
        [text(L[k], language) for k in ("un", "name", "q", "Q", "ratio", "beta")],
        [[str(u), str(n) if isinstance(n, str) else "—", number(q), number(cq), _two(r), number(b)]
         for u, n, q, cq, r, b in zip(chemicals["un_number"], chemicals[name], chemicals["quantity_t"],
                                      chemicals["gb18218_q_t"], chemicals["ratio"], chemicals["gb18218_beta"],
                                      strict=True)]), count=len(chemicals))
    body += section(L["points"], language, *_sparklines(data["points"], data["readings"], links, language)
                    or [nothing(language)], count=len(data["points"]))
    trucks = view.trucks
    body += section(L["trucks"], language, table(
        [text(("车辆", "Truck"), language), text(L["dist"], language)],
        [[links.to("vehicles", t), f"{d:,.0f}"] for t, d in zip(trucks["id"], trucks["distance_m"], strict=True)])
        if len(trucks) else nothing(language), *outside_scope(data, "trucks", language), count=len(trucks))
    sites = view.sites
    body += section(L["sites"], language, table(
        [text(("目标", "Site"), language), text(L["occupancy"], language), text(L["dist"], language)],
        [[links.to("sensitive_sites", i, str(n)), _int(o), f"{d:,.0f}"]
         for i, n, o, d in zip(sites["id"], sites["name"], sites["occupancy"], sites["distance_m"], strict=True)])
        if len(sites) else nothing(language), count=len(sites))
    body += incidents(data["incidents"], language, links)
    focus = {"layer": "hazard_sources", "id": str(row["id"]), "lon": float(row.geometry.x),
             "lat": float(row.geometry.y), "circles": _circles(view.distances)}
    return frame_("hazard_sources", str(row["id"]), str(row["name"]), language, history, focus, body)


def _two(value) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.2f}"


def _int(value) -> str:
    return "—" if value is None or pd.isna(value) else f"{int(value):,}"


def _distance(distances, language: str) -> str:
    if not np.isfinite(distances.protective_m):
        return "—"
    period = text(("夜间", "night") if distances.period == "night" else ("白天", "day"), language)
    return f"{distances.isolation_m:,.0f} / {distances.protective_m:,.0f} m ({period}, UN{distances.un_number})"


def _circles(distances) -> list[dict]:
    return [{"radius_m": float(r), "kind": k} for r, k in
            ((distances.isolation_m, "isolation"), (distances.protective_m, "protective")) if np.isfinite(r)]


def _sparklines(points: pd.DataFrame, readings: pd.DataFrame, links: Links, language: str) -> list:
    from dash import html

    by_point = {k: g for k, g in readings.groupby("point_id", sort=False)} if len(readings) else {}
    out = []
    for point in points.itertuples(index=False):  # a source has a handful of points
        level_1, level_2 = alarm_levels(point._asdict())
        series = by_point.get(point.id)
        chart = sparkline(series["epoch_ms"], series["value"], level_1, level_2,
                          f"{point.id}: {series['value'].iloc[-1]:g} {point.unit}") \
            if series is not None else html.Span("—")
        out.append(html.Div(className="hz-panel-sparkrow", children=[
            html.Div([links.to("monitoring_points", point.id), html.Span(f" {value_label('monitoring_kind', point.kind, language)} ({point.unit})")]), chart]))
    return out
