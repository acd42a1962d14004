"""Plotly figures for the drill-down panels, styled for the dark wall, labelled in both languages.

Times arrive as epoch milliseconds (UTC) and are drawn in Asia/Shanghai, as the wall shows time.
Figures are built from whole columns (no per-point Python loop); a chart is a dcc.Graph without
the mode bar, static on the wall apart from hover."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import dcc

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


def _times(epoch_ms) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(epoch_ms, dtype="int64"), unit="ms", utc=True).tz_convert(SCREEN_TIMEZONE) \
        .tz_localize(None)


def _layout(figure: go.Figure, title: str, height: int, language: str, compact: bool = False) -> go.Figure:
    figure.update_layout(
        template="plotly_dark", paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
        font={"color": INK, "size": 12}, height=height, showlegend=not compact,
        margin={"l": 40 if not compact else 4, "r": 8, "t": 26 if title else 4, "b": 28 if not compact else 4},
        title={"text": title, "font": {"size": 13}, "x": 0.01} if title else None,
        legend={"orientation": "h", "y": -0.25, "font": {"size": 11}},
        hovermode="x unified",
    )
    figure.update_xaxes(gridcolor=GRID, showticklabels=not compact, title=None)
    figure.update_yaxes(gridcolor=GRID, showticklabels=not compact, zeroline=False)
    return figure


def _hline(figure: go.Figure, x, value, name: str, colour: str) -> None:
    if value is None or not np.isfinite(value) or not len(x):
        return
    figure.add_trace(go.Scatter(x=[x[0], x[-1]], y=[value, value], mode="lines", name=name,
                                line={"color": colour, "dash": "dash", "width": 1.5}, hoverinfo="skip"))


def speed_figure(epoch_ms, speed_kmh, limit_kmh: float | None, language: str) -> go.Figure:
    x = _times(epoch_ms)
    figure = go.Figure(go.Scatter(x=x, y=np.asarray(speed_kmh, dtype="float64"), mode="lines",
                                  name=text(SPEED_TITLE, language), line={"color": LINE, "width": 1.5}))
    _hline(figure, x, limit_kmh, text(SPEED_LIMIT, language), LIMIT)
    return _layout(figure, text(SPEED_TITLE, language), 190, language)


def readings_figure(epoch_ms, values, unit: str, level_1, level_2, language: str, compact: bool = False,
                    title: str | None = None) -> go.Figure:
    x = _times(epoch_ms)
    figure = go.Figure(go.Scatter(x=x, y=np.asarray(values, dtype="float64"), mode="lines",
                                  name=f"{text(READINGS_TITLE, language)} ({unit})", line={"color": LINE, "width": 1.5}))
    _hline(figure, x, level_1, text(LEVEL_1, language), LIMIT)
    _hline(figure, x, level_2, text(LEVEL_2, language), LIMIT_2)
    label = title if title is not None else f"{text(READINGS_TITLE, language)} ({unit})"
    return _layout(figure, "" if compact else label, 56 if compact else 190, language, compact=compact)


def graph(figure: go.Figure, name: str, class_name: str = "hz-panel-chart") -> dcc.Graph:
    return dcc.Graph(figure=figure, config=_CONFIG, className=class_name, id={"type": "hz-panel-chart", "name": name})
