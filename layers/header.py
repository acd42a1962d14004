"""The wall's live header: open incidents by level, monitoring points in alarm, trucks moving /
stopped / offline, today's handling rate and the feed's health, as pure figures from the
LiveState and the figures the app reads (incident store, live monitor and gateway stats), and
their Dash components.

`header_figures(...)` is pure (frames and dicts in, a dict of numbers out) so a test can hold the
header to the live state; `header_children(figures, language)` lays them out. Level names and
colours come from spatial/incidents/levels.py, the truck and point states from layers/live.py
(the same rule that colours the canvas counts here).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from dash import html

from layers.live import (
    P_ALARM,
    P_ALARM_HIGH,
    LiveEncodingSettings,
    newest_report_ms,
    point_statuses,
)
from layers.labels import rule_title
from layers.style import Text, text
from spatial.incidents.levels import LEVELS
from spatial.model import LiveState

LABELS: dict[str, Text] = {
    "incidents": ("未关闭事件", "Open incidents"),
    "points_alarm": ("监测点报警", "Points in alarm"),
    "trucks": ("车辆", "Trucks"),
    "moving": ("行驶", "moving"),
    "stopped": ("停驶", "stopped"),
    "offline": ("离线", "offline"),
    "handling_rate": ("今日处置率", "Handled today"),
    "feed": ("数据接入", "Feed"),
    "terminals": ("终端", "terminals"),
    "reports_per_s": ("条/秒", "reports/s"),
    "age": ("最新", "newest"),
    "stale": ("数据中断", "feed stale"),
    "seconds_ago": ("秒前", "s ago"),
}


def truck_counts(state: LiveState, settings: LiveEncodingSettings | None = None,
                 only: frozenset[str] | None = None) -> dict[str, int]:
    """Trucks with a position: moving (faster than the parked speed), stopped, offline (silent
    longer than the stale time behind the fleet's newest report, whatever they last reported).
    An alert does not change which of the three a truck is. `only`: of these trucks alone (one
    user's, app/permissions.py); staleness still counts from the whole fleet's newest report."""
    settings = settings or LiveEncodingSettings()
    positions = state.positions
    if only is not None:
        positions = positions[positions.index.isin(list(only))]
    if not len(positions):
        return {"moving": 0, "stopped": 0, "offline": 0}
    newest = newest_report_ms(state)
    offline = newest - positions["epoch_ms"].to_numpy("int64") > settings.stale_after_s * 1000
    moving = pd.to_numeric(positions["speed_kmh"], errors="coerce").to_numpy("float64") > \
        settings.moving_min_speed_kmh  # NaN speed: stopped
    return {"moving": int((moving & ~offline).sum()), "stopped": int((~moving & ~offline).sum()),
            "offline": int(offline.sum())}


def points_in_alarm(state: LiveState, point_ids: pd.Index) -> int:
    """Monitoring points whose status on the wall is a level alarm (either severity)."""
    if not len(point_ids):
        return 0
    status = point_statuses(point_ids, state.readings, state.alerts)
    return int(np.isin(status, (P_ALARM, P_ALARM_HIGH)).sum())


def handling_rate(pushed: dict | None, disposed: dict | None) -> float | None:
    """Disposed / pushed over every level (spatial/incidents/kpis.py's handling rate), None
    when nothing was pushed."""
    total = sum(int(v) for v in (pushed or {}).values())
    if not total:
        return None
    return sum(int(v) for v in (disposed or {}).values()) / total


def header_figures(state: LiveState, point_ids: pd.Index, incidents: dict | None, monitor: dict | None,
                   max_silence_s: float, trucks: frozenset[str] | None = None) -> dict:
    """Every figure of the header. `incidents`: {"open_by_level": {key: n}, "pushed_by_level",
    "disposed_by_level"} over today (empty or None without an incident store); `monitor`: the
    live monitor's stats() (its "gateway" part: terminals and reports/s), or None; the feed is
    stale when nothing has arrived for more than `max_silence_s` (0: never judged stale)."""
    incidents = incidents or {}
    open_by_level = {level.key: int((incidents.get("open_by_level") or {}).get(level.key, 0)) for level in LEVELS}
    monitor = monitor or {}
    gateway = monitor.get("gateway") or {}
    ago = monitor.get("last_input_s_ago")
    stale = bool(max_silence_s > 0 and (ago is None or ago > max_silence_s)) if monitor else False
    return {
        "incidents": open_by_level if incidents else None,
        "points_alarm": points_in_alarm(state, point_ids),
        "trucks": truck_counts(state, only=trucks),
        "handling_rate": handling_rate(incidents.get("pushed_by_level"), incidents.get("disposed_by_level")),
        "feed": {"terminals": gateway.get("authenticated_terminals"), "reports_per_s": gateway.get("reports_per_s"),
                 "last_input_s_ago": ago, "stale": stale} if monitor else None,
    }


def _stat(label: str, value, class_name: str = "", **data) -> html.Span:
    return html.Span(className=f"hz-stat hz-wall-stat {class_name}".strip(), children=[
        html.Span(label, className="hz-stat-label"), html.Span(value, className="hz-stat-value", **data)])


def header_children(figures: dict, language: str) -> list:
    """The header's live part: each figure carries a `data-*` attribute with its raw value (the
    browser tests compare them with the live state)."""
    label = {k: text(v, language) for k, v in LABELS.items()}
    children = []
    if figures["incidents"] is not None:
        chips = [html.Span(f"{(level.name_zh if language == 'zh' else level.name_en)} {figures['incidents'][level.key]}",
                           className=f"hz-level hz-level-{level.key}", style={"--level": level.colour},
                           **{"data-level": level.key, "data-n": str(figures["incidents"][level.key])})
                 for level in LEVELS]
        children.append(html.Span(className="hz-stat hz-wall-stat hz-wall-incidents", children=[
            html.Span(label["incidents"], className="hz-stat-label"), html.Span(chips, className="hz-stat-value")]))
    children.append(_stat(label["points_alarm"], f"{figures['points_alarm']:,}", "hz-wall-points",
                          **{"data-n": str(figures["points_alarm"])}))
    trucks = figures["trucks"]
    children.append(_stat(label["trucks"], " / ".join(f"{label[k]} {trucks[k]:,}" for k in ("moving", "stopped", "offline")),
                          "hz-wall-trucks", **{f"data-{k}": str(trucks[k]) for k in trucks}))
    rate = figures["handling_rate"]
    children.append(_stat(label["handling_rate"], "—" if rate is None else f"{rate:.0%}", "hz-wall-rate"))
    feed = figures["feed"]
    if feed is not None:
        ago = feed["last_input_s_ago"]
        parts = [f"{label['terminals']} {feed['terminals'] if feed['terminals'] is not None else '—'}",
                 f"{feed['reports_per_s'] if feed['reports_per_s'] is not None else '—'} {label['reports_per_s']}",
                 f"{label['age']} {'—' if ago is None else f'{ago:.0f}'}{label['seconds_ago']}"]
        if feed["stale"]:
            parts.insert(0, label["stale"])
        children.append(_stat(label["feed"], " · ".join(parts),
                              "hz-wall-feed" + (" hz-feed-stale" if feed["stale"] else ""),
                              **{"data-stale": "true" if feed["stale"] else "false"}))
    return children


# -- the incident ticker and the queue of incidents not yet signed for ------------------------------

# spatial/incidents/lifecycle.py SUBJECT_KINDS -> the map layer that holds the subject
SUBJECT_LAYERS = {"vehicle": "vehicles", "monitoring_point": "monitoring_points", "hazard_source": "hazard_sources",
                  "entity": "entities"}
TICKER_LABELS: dict[str, Text] = {
    "recent": ("新事件", "New incidents"),
    "queue": ("待签收", "Awaiting signature"),
    "mute": ("静音", "Mute"),
    "unmute": ("取消静音", "Sound on"),
    "none": ("暂无", "None"),
}


def incident_items(frame: pd.DataFrame, language: str, title_of=None) -> list[dict]:
    """Rows of IncidentStore.list() as the ticker and the queue show them: id, level (key, name,
    colour), rule title, subject (its id, and what the wall calls it: `title_of(layer, id, language)`,
    e.g. FeatureDirectory.title_of, gives a truck's plate; its id where it gives none), where to open
    it (its layer and a lon/lat), local time, status."""
    if not len(frame):
        return []
    from spatial.incidents.levels import BY_SEVERITY

    times = pd.to_datetime(frame["first_time"], utc=True).dt.tz_convert("Asia/Shanghai").dt.strftime("%H:%M")
    out = []
    for row, at in zip(frame.itertuples(index=False), times, strict=True):  # a page of at most a few dozen rows
        level = BY_SEVERITY[int(row.severity)]
        lon, lat = (None if pd.isna(v) else round(float(v), 6) for v in (row.lon, row.lat))
        layer = SUBJECT_LAYERS.get(str(row.subject_kind))
        subject = (title_of(layer, str(row.subject_id), language) if title_of else None) or str(row.subject_id)
        out.append({
            "id": str(row.id), "level": level.key, "colour": level.colour,
            "level_name": level.name_zh if language == "zh" else level.name_en,
            "rule": rule_title(row.rule, language),
            "subject_id": str(row.subject_id), "subject": subject, "layer": layer,
            "lon": lon, "lat": lat, "time": at, "status": str(row.status),
        })
    return out
