"""What every drill-down panel shares: links that move the panel (and the map), the back button,
field tables, sections and the incidents list. Pure: data in, Dash components out."""

from __future__ import annotations

import json

import pandas as pd
from dash import dcc, html

from layers.details import MISSING, SCREEN_TIMEZONE, format_value
from layers.grid import GRID_ITEM_TYPE
from layers.style import Text, text

# Links reuse the grid panel's pattern-matching id, so the screen's one details callback moves the
# panel to whatever they name; n < 0 marks the back button (the callback then pops the history).
LINK_TYPE = GRID_ITEM_TYPE
BACK_N = -1
HISTORY_TYPE = "hz-panel-history"  # a dcc.Store in the panel: the (layer, id) pairs opened before
FOCUS_TYPE = "hz-panel-focus"  # a hidden Div in the panel: where the map goes and what it draws (data-focus)
HISTORY_MAX = 20
WINDOW_TYPE = "hz-panel-window"  # a chart's time window switch: {"type": WINDOW_TYPE, "name": <the chart's name>}

LAYER_TITLES: dict[str, Text] = {
    "vehicles": ("危险货物运输车辆", "Hazmat truck"), "hazard_sources": ("重大危险源", "Major hazard source"),
    "monitoring_points": ("监测点", "Monitoring point"), "entities": ("企业", "Enterprise"),
    "sensitive_sites": ("敏感目标", "Sensitive site"), "wash_stations": ("洗消站", "Wash station"),
    "incidents": ("告警事件", "Incident"),
}
INCIDENTS_TITLE: Text = ("告警事件", "Incidents")
NONE_TEXT: Text = ("无", "None")
BACK_TEXT: Text = ("← 返回", "← Back")
INCIDENT_COLUMNS: tuple[Text, ...] = (("时间", "Time"), ("规则", "Rule"), ("级别", "Level"), ("状态", "Status"))


class Links:
    """Numbers each link of one panel, so their pattern-matching ids are unique."""

    def __init__(self) -> None:
        self.n = 0

    def to(self, layer: str, feature_id: str, label: str | None = None) -> html.A:
        self.n += 1
        return html.A(label or feature_id, href="#", className="hz-grid-link hz-panel-link",
                      id={"type": LINK_TYPE, "layer": layer, "id": str(feature_id), "n": self.n})


def local_time(epoch_ms) -> str:
    if epoch_ms is None or pd.isna(epoch_ms):
        return MISSING
    stamp = pd.Timestamp(int(epoch_ms), unit="ms", tz="UTC") if not isinstance(epoch_ms, pd.Timestamp) else epoch_ms
    return stamp.tz_convert(SCREEN_TIMEZONE).strftime("%Y-%m-%d %H:%M")


def window_switch(name: str, options: list[tuple[object, str]], value) -> dcc.RadioItems:
    """The switch between a chart's time windows (the screen's callback redraws the chart named `name`)."""
    return dcc.RadioItems(id={"type": WINDOW_TYPE, "name": name}, className="hz-panel-window", value=value,
                          options=[{"label": label, "value": v} for v, label in options], inline=True,
                          style={"fontSize": "13px"}, inputStyle={"marginRight": "4px"},
                          labelStyle={"marginRight": "14px", "cursor": "pointer", "color": "#d7e3f0"})


def fields(rows: list[tuple[str, object]]) -> html.Table:
    return html.Table(className="hz-panel-fields", children=html.Tbody([
        html.Tr([html.Th(label), html.Td(value if value not in (None, "") else MISSING)]) for label, value in rows
    ]))


def table(columns: list[str], rows: list[list], class_name: str = "") -> html.Table:
    return html.Table(className=f"hz-panel-children {class_name}".strip(), children=[
        html.Thead(html.Tr([html.Th(c) for c in columns])),
        html.Tbody([html.Tr([html.Td(v) for v in row]) for row in rows]),
    ])


def section(title: Text | str, language: str, *children, count: int | None = None) -> list:
    heading = text(title, language) if isinstance(title, tuple) else title
    return [html.H3(heading if count is None else f"{heading} ({count})"), *children]


def outside_scope(data: dict, key: str, language: str) -> list:
    """"N more outside your scope" under a list a scoped user sees only part of (data/drilldown.narrow's
    `hidden`), nothing when it sees the whole list."""
    from layers.labels import OUTSIDE_SCOPE

    n = int((data.get("hidden") or {}).get(key, 0))
    return [html.P(text(OUTSIDE_SCOPE, language).format(n=n), className="hz-panel-outside-scope")] if n else []


def nothing(language: str) -> html.P:
    return html.P(text(NONE_TEXT, language), className="hz-panel-none")


def number(value, unit: str = "") -> str:
    text_ = format_value(value, "float", "en")
    return text_ if text_ == MISSING or not unit else f"{text_} {unit}"


def incidents(frame: pd.DataFrame, language: str, links: Links | None = None) -> list:
    """The entity's incidents, newest first; each opens the incident's own panel."""
    from layers.labels import rule_title, value_label
    from spatial.incidents.levels import BY_SEVERITY

    if not len(frame):
        return section(INCIDENTS_TITLE, language, nothing(language), count=0)
    rows = []
    for item in frame.itertuples(index=False):  # a panel lists at most INCIDENTS_MAX
        level = BY_SEVERITY.get(int(item.severity))
        name = (level.name_zh if language == "zh" else level.name_en) if level else str(item.severity)
        when = local_time(pd.Timestamp(item.first_time))
        rows.append([links.to("incidents", str(item.id), when) if links else when, rule_title(item.rule, language),
                     name, value_label("incident_status", item.status, language)])
    return section(INCIDENTS_TITLE, language,
                   table([text(c, language) for c in INCIDENT_COLUMNS], rows, "hz-panel-incidents"), count=len(frame))


def frame_(layer: str, feature_id: str, title: str, language: str, history: list, focus: dict | None,
           body: list) -> list:
    """The panel around a kind's body: back button, kind, title, the history and focus stores."""
    links = []
    if history:
        back_layer, back_id = history[-1]
        links.append(html.A(text(BACK_TEXT, language), href="#", className="hz-panel-back",
                            id={"type": LINK_TYPE, "layer": back_layer, "id": str(back_id), "n": BACK_N}))
    return [
        *links,
        html.Div(text(LAYER_TITLES[layer], language), className="hz-panel-layer"),
        html.H2(title, className="hz-panel-title", **{"data-id": feature_id, "data-layer": layer}),
        dcc.Store(id={"type": HISTORY_TYPE, "n": 0}, data=[*history, [layer, feature_id]][-HISTORY_MAX:]),
        # read by assets/hazmap_panel.js when the panel changes (a DOM attribute, no callback round trip)
        html.Div(id={"type": FOCUS_TYPE, "n": 0}, className="hz-panel-focus", hidden=True,
                 **{"data-focus": json.dumps(focus or {}, separators=(",", ":"))}),
        html.Div(className="hz-drill", children=body),
    ]
