"""Plotly figures for the drill-down panels, styled for the dark wall, labelled in both languages.

Times arrive as epoch milliseconds (UTC) and are drawn in Asia/Shanghai, as the wall shows time:
the x values are the local wall-clock milliseconds on a date axis. Figures are plain dicts built
from whole columns (no per-point Python loop): a plotly.graph_objects Figure with the dark template
cost 150-200 ms of a panel's server time (validation and the template's deep copies) for the same
JSON. A chart is a dcc.Graph without the mode bar, static on the wall apart from hover."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
from dash import dcc, html

from layers.details import SCREEN_TIMEZONE
from layers.style import Text, text

INK = "#d7e3f0"
GRID = "rgba(215, 227, 240, 0.12)"
LINE = "#4fc3f7"
LIMIT = "#ff8c1a"  # the orange warning colour: a limit or level 1
LIMIT_2 = "#e02020"  # red: level 2
_CONFIG = {"displayModeBar": False, "staticPlot": False, "responsive": True}

SPEED_TITLE: Text = ("车速 (km/h)", "Speed (km/h)")
SPEED_LIMIT: Text = ("道路限速", "Road limit")
READINGS_TITLE: Text = ("读数", "Readings")
LEVEL_1: Text = ("一级报警", "Level 1 alarm")
LEVEL_2: Text = ("二级报警", "Level 2 alarm")
TIME: Text = ("时间", "Time")
NO_DATA: Text = ("该时段无数据", "No data in the window")
CHART_TYPE = "hz-panel-chart"  # a chart's pattern-matching id: {"type": CHART_TYPE, "name": ...}


def local_ms(epoch_ms) -> np.ndarray:
    """UTC epoch milliseconds as the wall clock in Asia/Shanghai, in milliseconds (what a date axis shows)."""
    stamps = pd.to_datetime(np.asarray(epoch_ms, dtype="int64"), unit="ms", utc=True)
    return stamps.tz_convert(SCREEN_TIMEZONE).tz_localize(None).as_unit("ms").asi8


def _line(x, y, name: str, colour: str, width: float = 1.5, dash: str | None = None, hover: bool = True) -> dict:
    trace = {"type": "scatter", "mode": "lines", "x": x, "y": y, "name": name,
             "line": {"color": colour, "width": width, **({"dash": dash} if dash else {})}}
    if not hover:
        trace["hoverinfo"] = "skip"
    return trace


def _hline(x, value, name: str, colour: str) -> list[dict]:
    if value is None or not np.isfinite(value) or not len(x):
        return []
    return [_line([int(x[0]), int(x[-1])], [float(value), float(value)], name, colour, dash="dash", hover=False)]


def _figure(traces: list[dict], title: str, height: int, language: str, compact: bool = False) -> dict:
    axis = {"gridcolor": GRID, "showticklabels": not compact, "zeroline": False, "linecolor": GRID}
    layout = {
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"color": INK, "size": 12}, "height": height, "showlegend": not compact,
        "margin": {"l": 40 if not compact else 4, "r": 8, "t": 26 if title else 4, "b": 28 if not compact else 4},
        "legend": {"orientation": "h", "y": -0.25, "font": {"size": 11}},
        "hovermode": "x unified", "hoverlabel": {"bgcolor": "#1b2733", "font": {"color": INK}},
        "xaxis": {**axis, "type": "date"}, "yaxis": dict(axis),
    }
    if title:
        layout["title"] = {"text": title, "font": {"size": 13}, "x": 0.01}
    if not compact and not any(len(t["x"]) for t in traces):  # an empty window says so
        layout["annotations"] = [{"text": text(NO_DATA, language), "showarrow": False, "xref": "paper",
                                  "yref": "paper", "x": 0.5, "y": 0.5, "font": {"color": INK, "size": 13}}]
    return {"data": traces, "layout": layout}


def speed_figure(epoch_ms, speed_kmh, limit_kmh: float | None, language: str) -> dict:
    x = local_ms(epoch_ms)
    traces = [_line(x.tolist(), np.asarray(speed_kmh, dtype="float64").tolist(), text(SPEED_TITLE, language), LINE)]
    traces += _hline(x, limit_kmh, text(SPEED_LIMIT, language), LIMIT)
    return _figure(traces, text(SPEED_TITLE, language), 190, language)


def readings_figure(epoch_ms, values, unit: str, level_1, level_2, language: str, compact: bool = False,
                    title: str | None = None) -> dict:
    x = local_ms(epoch_ms)
    traces = [_line(x.tolist(), np.asarray(values, dtype="float64").tolist(),
                    f"{text(READINGS_TITLE, language)} ({unit})", LINE)]
    traces += _hline(x, level_1, text(LEVEL_1, language), LIMIT)
    traces += _hline(x, level_2, text(LEVEL_2, language), LIMIT_2)
    label = title if title is not None else f"{text(READINGS_TITLE, language)} ({unit})"
    return _figure(traces, "" if compact else label, 56 if compact else 190, language, compact=compact)


SPARK_WIDTH, SPARK_HEIGHT = 240, 40  # px: the image's own size; a column per pixel keeps every peak


def sparkline(epoch_ms, values, level_1, level_2, title: str = "") -> html.Img:
    """A small line of readings against the level 1 (orange) and 2 (red) lines, as an SVG image:
    a hazard source shows one per point, and a Plotly graph each cost the browser 100-200 ms
    (bench/drilldown.py), an image nothing. Each pixel column keeps its bucket's min and max."""
    t = np.asarray(epoch_ms, dtype="float64")
    v = np.asarray(values, dtype="float64")
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    levels = [x for x in (level_1, level_2) if x is not None and np.isfinite(x)]
    parts = []
    if len(t):
        low, high = float(min(v.min(), *levels)), float(max(v.max(), *levels))
        span_v = (high - low) or 1.0
        span_t = (t[-1] - t[0]) or 1.0
        y = lambda value: (SPARK_HEIGHT - 2) - (np.asarray(value) - low) / span_v * (SPARK_HEIGHT - 4)  # noqa: E731
        column = np.minimum(((t - t[0]) / span_t * (SPARK_WIDTH - 1)).astype("int64"), SPARK_WIDTH - 1)
        starts = np.flatnonzero(np.r_[True, column[1:] != column[:-1]])
        xs = np.repeat(column[starts], 2).astype("float64")
        ys = np.column_stack([np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts)]).ravel()
        path = " ".join(f"{a:.0f},{b:.1f}" for a, b in zip(xs, y(ys), strict=True))
        for level, colour in zip((level_1, level_2), (LIMIT, LIMIT_2), strict=True):
            if level is not None and np.isfinite(level):
                h = float(y(level))
                parts.append(f'<line x1="0" x2="{SPARK_WIDTH}" y1="{h:.1f}" y2="{h:.1f}" stroke="{colour}" '
                             'stroke-width="1" stroke-dasharray="4 3"/>')
        parts.append(f'<polyline fill="none" stroke="{LINE}" stroke-width="1.2" points="{path}"/>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" '
           f'viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}">{"".join(parts)}</svg>')
    return html.Img(src="data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii"),
                    className="hz-panel-spark", title=title, alt=title, width=SPARK_WIDTH, height=SPARK_HEIGHT,
                    **{"data-points": str(len(t))})


def graph(figure: dict, name: str, class_name: str = "hz-panel-chart") -> html.Div:
    """The chart in a slot of its figure's height: the page's first chart waits for Plotly's bundle
    (loaded with the first dcc.Graph, app/webapp.py) while the panel's fields already show; the slot
    keeps its place, so nothing below it moves when the chart fills in."""
    height = (figure.get("layout") or {}).get("height")
    return html.Div(dcc.Graph(figure=figure, config=_CONFIG, className=class_name, id={"type": CHART_TYPE, "name": name}),
                    className="hz-panel-chart-slot", style={"minHeight": f"{int(height)}px"} if height else None)
