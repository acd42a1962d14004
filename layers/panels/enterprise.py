"""The enterprise's panel: its hazard sources, vehicles (as carrier), monitoring points, incidents."""

from __future__ import annotations

from layers.details import format_value
from layers.labels import value_label
from layers.panels.common import Links, fields, frame_, incidents, nothing, section
from layers.style import Text, text

L: dict[str, Text] = {
    "category": ("类别", "Category"), "licensed": ("许可", "Licensed"), "park": ("化工园区", "Chemical park"),
    "sources": ("重大危险源", "Hazard sources"), "vehicles": ("车辆", "Vehicles"),
    "points": ("监测点", "Monitoring points"),
}
LINKS_MAX = 60  # a large carrier's fleet: the first ones, the count says how many


def _linked(links: Links, layer: str, ids, names=None) -> list:
    from dash import html

    items = list(zip(ids, names if names is not None else ids, strict=True))[:LINKS_MAX]
    return [html.Div(className="hz-panel-links", children=[
        item for i, (k, n) in enumerate(items) for item in ((" · " if i else ""), links.to(layer, str(k), str(n)))])]


def build(data: dict, language: str, history: list) -> list:
    row, links = data["row"], Links()
    rows = [(text(L["category"], language), value_label("category", row["category"], language)),
            (text(L["licensed"], language), format_value(row["licensed"], "bool", language)),
            (text(L["park"], language), str(row["park_id"]) if isinstance(row["park_id"], str) else "—")]
    body = [fields(rows)]
    for key, layer, frame, names in (
            ("sources", "hazard_sources", data["hazard_sources"], data["hazard_sources"]["name"]),
            ("vehicles", "vehicles", data["vehicles"], data["vehicles"]["plate"]),
            ("points", "monitoring_points", data["points"], None)):
        body += section(L[key], language, *(_linked(links, layer, frame["id"], names) if len(frame)
                                            else [nothing(language)]), count=len(frame))
    body += incidents(data["incidents"], language, links)
    focus = {"layer": "entities", "id": str(row["id"]), "lon": float(row.geometry.x), "lat": float(row.geometry.y)}
    return frame_("entities", str(row["id"]), str(row["name"]), language, history, focus, body)
