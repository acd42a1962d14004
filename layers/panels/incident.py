"""The incident's panel: what happened (rule, level, status, subject as a link, times, evidence),
its recipients with their states, its history, and the actions the user's role allows (sign,
dispose with note and outcome, supervise, close, text the driver). The buttons post to the REST
API (assets/hazmap_panel.js), so the one permission function, validation and audit decide and
record; the screen only offers what `actions` says is allowed. Its evidence (data/incident_view.py)
rides in a hidden `.hz-evidence` element that assets/hazmap_evidence.js draws on the map; a
monitoring point's readings around its alarm are charted here; a truck's or a point's incident links
to its impact view (layers/panels/impact.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from dash import dcc, html

from layers.evidence import evidence_rows
from layers.labels import VALUE_LABELS, actor_label, rule_title, value_label
from layers.panels.common import LINK_TYPE, Links, fields, frame_, local_time, section, table
from layers.panels.impact import open_link, texts_live
from layers.style import Text, text

L: dict[str, Text] = {
    "rule": ("规则", "Rule"), "level": ("级别", "Level"), "status": ("处置状态", "Status"),
    "state": ("告警状态", "Alert state"), "subject": ("对象", "Subject"), "first": ("首次", "First"),
    "last": ("最近", "Latest"), "evidence": ("证据", "Evidence"), "recipients": ("接收单位", "Recipients"),
    "history": ("处置记录", "History"), "actions": ("处置", "Actions"), "note": ("备注", "Note"),
    "outcome": ("处置结果", "Outcome"), "message": ("短信内容", "Message"),
    "deadline": ("督办期限 (小时)", "Supervision deadline (h)"),
    "readings": ("报警前后读数", "Readings around the alarm"), "texts": ("下发司机短信", "Texts to the driver"),
    "recipient": ("接收单位", "Recipient"), "role": ("推送对象", "Role"), "signed_at": ("签收时间", "Signed at"),
    "at": ("时间", "At"), "action": ("动作", "Action"), "by": ("人员", "By"),
}
ACTION_LABELS: dict[str, Text] = {
    "sign": ("签收", "Sign"), "dispose": ("处置", "Dispose"), "close": ("办结", "Close"),
    "supervise": ("督办", "Supervise"), "text": ("下发短信", "Text the driver"),
}
# What the officer reads when the API refuses an action (assets/hazmap_panel.js picks the text by
# the answer's status; the API's own English message stays in the result's tooltip for engineers)
REFUSALS: dict[str, Text] = {
    "400": ("请求无效", "The request was refused"),
    "401": ("登录已失效，请重新登录", "Your session has ended: log in again"),
    "403": ("无权执行此操作", "You may not do this"),
    "404": ("未找到该事件，或无权查看", "Not found, or not yours to see"),
    "409": ("事件状态已变化（可能已由他人处理），请查看最新处置记录",
            "The incident has moved on (perhaps handled by someone else): see its latest history"),
    "413": ("内容过长", "Too long"),
    "422": ("输入不完整或有误", "Something entered is missing or wrong"),
    "429": ("尝试过多，请稍后再试", "Too many attempts: try again later"),
    "other": ("操作未完成，请重试", "It did not go through: try again"),
}
ACTION_TYPE = "hz-incident-action"
SUBJECT_LAYERS = (("VEH-", "vehicles"), ("MP-", "monitoring_points"), ("HS-", "hazard_sources"),
                  ("SITE-", "sensitive_sites"), ("ENT-", "entities"), ("WS-", "wash_stations"))


def subject_layer(subject_id: str) -> str | None:
    return next((layer for prefix, layer in SUBJECT_LAYERS if subject_id.startswith(prefix)), None)


def _focus(row: dict) -> dict:
    """Where the map goes; what the incident shows on it is its evidence (assets/hazmap_evidence.js)."""
    focus = {"layer": "incidents", "id": str(row["id"])}
    if row.get("lon") is not None and np.isfinite(row["lon"]):
        focus["lon"], focus["lat"] = float(row["lon"]), float(row["lat"])
    return focus


EVIDENCE_CLASS = "hz-evidence"  # a hidden Div: data-evidence, read by assets/hazmap_evidence.js
MAP_ONLY = ("readings", "point_row")  # gathered for the panel's chart, not sent to the map


def _evidence_on_map(drawn: dict | None) -> html.Div | None:
    if not drawn:
        return None
    payload = {k: v for k, v in drawn.items() if k not in MAP_ONLY}
    return html.Div(className=EVIDENCE_CLASS, hidden=True,
                    **{"data-evidence": json.dumps(payload, separators=(",", ":"), default=str)})


def _readings_chart(drawn: dict, language: str) -> list:
    """A point's readings around its alarm, with its level 1 and 2 lines and a mark where it began."""
    from layers.panels.charts import graph, local_ms, readings_figure
    from layers.panels.common import nothing
    from layers.panels.monitoring_point import alarm_levels

    readings = drawn.get("readings")
    point = drawn.get("point_row")
    level_1, level_2 = alarm_levels(point) if point is not None else (None, None)
    unit = str(point["unit"]) if point is not None else ""
    if readings is None or not len(readings):
        return section(L["readings"], language, nothing(language), count=0)
    figure = readings_figure(readings["epoch_ms"], readings["value"], unit, level_1, level_2, language)
    if drawn.get("alarm_ms") is not None:  # where the alarm began, on the chart's wall clock
        at = int(local_ms([drawn["alarm_ms"]])[0])
        figure["layout"].setdefault("shapes", []).append(
            {"type": "line", "x0": at, "x1": at, "xref": "x", "y0": 0, "y1": 1, "yref": "paper",
             "line": {"color": "#ff4d6d", "width": 1.5, "dash": "dot"}})
    chart = graph(figure, "incident-readings")
    return section(L["readings"], language, html.Div(chart, className="hz-incident-readings"),
                   count=len(readings))


def _stamp(value) -> str:
    return "—" if value is None or pd.isna(value) else local_time(pd.Timestamp(value))


def _named(names: dict, feature_id, language: str):
    """A recipient or subject by its name (data/drilldown.py gathers them), its id kept as the hover
    text; the id itself where the World names nobody."""
    if feature_id is None or (not isinstance(feature_id, str) and pd.isna(feature_id)):
        return ""
    feature_id = str(feature_id)
    name = names.get(feature_id)
    if not name:
        return feature_id
    return html.Span(name[0] if language == "zh" else name[1], title=feature_id, className="hz-named",
                     **{"data-id": feature_id})


def build(data: dict, language: str, history: list, actions: tuple[str, ...] = ()) -> list:
    from spatial.incidents.levels import BY_SEVERITY

    row, links = data["incident"], Links()
    names = data.get("names") or {}
    level = BY_SEVERITY.get(int(row["severity"]))
    subject = str(row["subject_id"])
    layer = subject_layer(subject)
    subject_name = names.get(subject)
    subject_label = f"{subject_name[0] if language == 'zh' else subject_name[1]} ({subject})" if subject_name \
        else subject
    body = [fields([
        (text(L["rule"], language), html.Span(rule_title(row["rule"], language), **{"data-rule": str(row["rule"])})),
        (text(L["level"], language), (level.name_zh if language == "zh" else level.name_en) if level else "—"),
        (text(L["status"], language), value_label("incident_status", row["status"], language)),
        (text(L["state"], language), value_label("rule_state", row["state"], language)),
        (text(L["subject"], language), links.to(layer, subject, subject_label) if layer else subject_label),
        (text(L["first"], language), _stamp(row["first_time"])), (text(L["last"], language), _stamp(row["last_time"])),
    ])]
    drawn = data.get("evidence")
    if subject.startswith(("VEH-", "MP-")):  # a truck's cargo, or the point's hazard source, in trouble
        body.append(open_link(links, str(row["id"]), language))
    if drawn and drawn.get("kind") == "point_alarm":
        body += _readings_chart(drawn, language)
    evidence = evidence_rows(row.get("evidence") or {}, row.get("rule"), language)
    if evidence:
        # the rule's own record, every key labelled (layers/labels.py EVIDENCE_LABELS)
        body += section(L["evidence"], language, html.Div(fields(evidence), className="hz-incident-evidence"))
    shown = _evidence_on_map(drawn)
    if shown is not None:
        body.append(shown)
    recipients = data["recipients"]
    roles = recipients["role"] if "role" in recipients.columns else [None] * len(recipients)
    body += section(L["recipients"], language, table(
        [text(L["recipient"], language), text(L["role"], language), text(L["status"], language),
         text(L["signed_at"], language)],
        [[_named(names, r, language), value_label("department_kind", role, language) if isinstance(role, str) else "—",
          value_label("incident_status", s, language), _stamp(t)] for r, role, s, t in
         zip(recipients["recipient_id"], roles, recipients["state"], recipients["signed_at"], strict=True)],
        "hz-incident-recipients"), count=len(recipients))
    transitions = data["history"]
    body += section(L["history"], language, table(
        [text(L["at"], language), text(L["action"], language), text(L["recipient"], language),
         text(L["by"], language)],
        [[_stamp(at), value_label("incident_action", a, language), _named(names, r, language),
          actor_label(b, language)]
         for at, a, r, b in zip(transitions["at"], transitions["action"], transitions["recipient_id"],
                                transitions["actor"], strict=True)],
        "hz-incident-history"), count=len(transitions))
    if actions:
        body += section(L["actions"], language, *_action_form(str(row["id"]), actions, language))
    if subject.startswith("VEH-"):  # the texts to its driver and the terminal's answers, refreshed
        body += section(L["texts"], language, *texts_live(str(row["id"]), None, language))
    level_name = text(level and (level.name_zh, level.name_en) or ("", ""), language)
    title = f"{level_name} · {rule_title(row['rule'], language)}"
    return frame_("incidents", str(row["id"]), title, language, history, _focus(row), body)


def _action_form(incident_id: str, actions: tuple[str, ...], language: str) -> list:
    form = [dcc.Textarea(id="hz-incident-note", placeholder=text(L["note"], language), className="hz-incident-note")]
    # each field named beside it: the deadline's placeholder is hidden by its value
    if "dispose" in actions:
        form.append(html.Label([text(L["outcome"], language), html.Select(
            id="hz-incident-outcome", className="hz-incident-outcome", children=[
                html.Option(text(label, language), value=key) for key, label in VALUE_LABELS["outcome"].items()])],
            className="hz-incident-field"))
    if "supervise" in actions:
        form.append(html.Label([text(L["deadline"], language), dcc.Input(
            id="hz-incident-deadline", type="number", value=24, min=1, max=720, className="hz-incident-deadline",
            placeholder=text(L["deadline"], language))], className="hz-incident-field"))
    buttons = [html.Button(text(ACTION_LABELS[a], language), className=f"hz-incident-button hz-action-{a}",
                           **{"data-action": a, "data-incident": incident_id}) for a in actions]
    return [*form, html.Div(buttons, className="hz-incident-buttons"),
            html.Div(id="hz-incident-result", className="hz-incident-result", **{"data-refused": json.dumps(
                {status: text(label, language) for status, label in REFUSALS.items()}, ensure_ascii=False)})]


__all__ = ["ACTION_TYPE", "EVIDENCE_CLASS", "LINK_TYPE", "build", "subject_layer"]
