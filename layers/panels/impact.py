"""The impact view of a truck or a hazard source in trouble (data/incident_view.py gathers it): the
cargo's ERG initial isolation and protective-action distances (day or night by the incident's local
time, else now), drawn as circles on the map; the sensitive sites (with occupancy), hazard sources
and other loaded trucks inside them, nearest first; the waybill's emergency phone, the carrier's
and the plant's contacts; "text the driver" with each text's state and the terminal's answer,
refreshed while the view is open. Pure: data in, Dash components out."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from dash import dcc, html

from layers.panels.common import (BACK_N, BACK_TEXT, FOCUS_TYPE, HISTORY_MAX, HISTORY_TYPE, LINK_TYPE, Links, fields,
                                  local_time, nothing, outside_scope, section)
from layers.style import Text, text
from spatial.model import ENTITY_CONTACT_COLUMNS

LAYER = "impact"  # the panel's pseudo-layer: links {layer: "impact", id: VEH-… | HS-… | INC-…}
TEXTS_TYPE = "hz-impact-texts"  # pattern-matching ids: the texts' table and its refresh tick
TICK_TYPE = "hz-impact-tick"
TEXTS_REFRESH_MS = 3000
EVIDENCE_CLASS = "hz-evidence"  # as layers/panels/incident.py: read by assets/hazmap_evidence.js
L: dict[str, Text] = {
    "kind": ("影响范围", "Impact view"), "subject": ("对象", "Subject"), "incident": ("告警事件", "Incident"),
    "at": ("时间", "At"), "period": ("昼夜", "Day / night"), "cargo": ("货物 (UN)", "Cargo (UN)"),
    "isolation": ("初始隔离距离", "Initial isolation"), "protective": ("防护行动距离", "Protective action"),
    "call": ("联系", "Who to call"), "emergency": ("运单应急电话", "Waybill emergency phone"),
    "driver": ("驾驶员", "Driver"), "escort": ("押运员", "Escort"), "terminal": ("终端号码", "Terminal phone"),
    "sites": ("范围内敏感目标", "Sensitive sites inside"), "sources": ("范围内重大危险源", "Hazard sources inside"),
    "trucks": ("范围内其他重载车辆", "Other loaded trucks inside"), "name": ("名称", "Name"),
    "occupancy": ("人数", "Occupancy"), "distance": ("距离 (m)", "Distance (m)"), "zone": ("区域", "Zone"),
    "texts": ("下发司机短信", "Texts to the driver"), "message": ("短信内容", "Message"),
    "send": ("下发短信", "Text the driver"), "state": ("状态", "State"), "answer": ("终端应答", "Answer"),
    "by": ("人员", "By"), "none": ("无联系方式", "no contact on record"),
}
ROLES: dict[str, Text] = {"carrier": ("承运企业", "Carrier"), "plant": ("装货企业", "Plant"),
                          "consignee": ("卸货企业", "Consignee")}
ZONES: dict[str, Text] = {"isolation": ("隔离区", "isolation"), "protective": ("防护区", "protective")}
TEXT_STATES: dict[str, Text] = {"pending": ("发送中", "sending"), "sent": ("已应答", "answered"),
                                "dead": ("失败", "failed")}
SUBJECT_LAYERS = (("VEH-", "vehicles"), ("HS-", "hazard_sources"))


OPEN_TEXT: Text = ("影响范围 →", "Impact view →")


def open_link(links: Links, feature_id: str, language: str) -> html.Div:
    """The button other panels carry to open the impact view of their truck, hazard source or incident."""
    return html.Div(links.to(LAYER, str(feature_id), text(OPEN_TEXT, language)), className="hz-impact-open")


def _metres(value) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:,.0f} m"


def _int(value) -> str:
    return "—" if value is None or pd.isna(value) else f"{int(value):,}"


def _rows(frame: pd.DataFrame, class_name: str, columns: list[str], cells) -> html.Table:
    """A table whose rows carry their entity's id (data-id), for the map and the tests."""
    return html.Table(className=f"hz-panel-children {class_name}", children=[
        html.Thead(html.Tr([html.Th(c) for c in columns])),
        html.Tbody([html.Tr([html.Td(v) for v in cells(item)], **{"data-id": str(item.id)})
                    for item in frame.itertuples(index=False)]),  # a view lists what lies within a few km
    ])


def texts_table(frame: pd.DataFrame | None, language: str) -> html.Table | html.P:
    """The texts sent to the driver, newest first, with their state and the terminal's answer."""
    if frame is None or not len(frame):
        return nothing(language)
    rows = []
    for item in frame.itertuples(index=False):
        state = text(TEXT_STATES.get(item.status, (item.status, item.status)), language)
        answer = item.answer if isinstance(item.answer, str) and item.answer else (
            item.last_error if isinstance(item.last_error, str) else "")
        if item.code is not None and not pd.isna(item.code):
            answer = f"0x0001 {int(item.code)} {answer}".strip()
        rows.append(html.Tr([html.Td(local_time(pd.Timestamp(item.created_at))), html.Td(str(item.requested_by or "")),
                             html.Td(str(item.text or "")), html.Td(state, className=f"hz-text-{item.status}"),
                             html.Td(answer)], **{"data-id": str(item.delivery_id), "data-status": str(item.status)}))
    return html.Table(className="hz-panel-children hz-impact-text-rows", children=[
        html.Thead(html.Tr([html.Th(text(L[k], language)) for k in ("at", "by", "message", "state", "answer")])),
        html.Tbody(rows)])


def _circles(distances) -> list[dict]:
    return [{"radius_m": float(r), "kind": k} for r, k in
            ((distances.isolation_m, "isolation"), (distances.protective_m, "protective")) if np.isfinite(r)]


def _who(data: dict, links: Links, language: str) -> list:
    rows = []
    waybill, vehicle = data.get("waybill"), data.get("vehicle")
    if waybill is not None:
        rows.append((text(L["emergency"], language), html.Span(str(waybill.get("emergency_phone") or "—"),
                                                               className="hz-impact-emergency")))
    if vehicle is not None:
        rows += [(text(L["driver"], language), str(vehicle.get("driver") or "—")),
                 (text(L["escort"], language), str(vehicle.get("escort") or "—")),
                 (text(L["terminal"], language), str(vehicle.get("terminal_phone") or "—"))]
    for contact in data.get("contacts") or []:
        reach = " · ".join(str(contact[k]) for k in ENTITY_CONTACT_COLUMNS if contact.get(k))
        rows.append((text(ROLES[contact["role"]], language), html.Span([
            links.to("entities", contact["id"], contact["name"]),
            html.Span(f" {reach}" if reach else f" ({text(L['none'], language)})", className="hz-impact-contact")])))
    return section(L["call"], language, fields(rows))


def _texting(data: dict, actions: tuple[str, ...], language: str) -> list:
    incident = data.get("incident")
    if incident is None or data.get("vehicle") is None:
        return []
    incident_id = str(incident["id"])
    children = []
    if "text" in actions:
        children += [dcc.Textarea(id="hz-impact-message", className="hz-incident-note",
                                  placeholder=text(L["message"], language)),
                     html.Button(text(L["send"], language), className="hz-incident-button hz-impact-text",
                                 **{"data-incident": incident_id}),
                     html.Div(id="hz-impact-result", className="hz-incident-result")]
    children += texts_live(incident_id, data.get("texts"), language)
    return section(L["texts"], language, *children)


def texts_live(incident_id: str, texts: pd.DataFrame | None, language: str) -> list:
    """The texts' table and its tick: app/webapp.py refreshes it (at once, then every few seconds)."""
    return [html.Div(texts_table(texts, language), id={"type": TEXTS_TYPE, "id": incident_id},
                     className="hz-impact-texts"),
            dcc.Interval(id={"type": TICK_TYPE, "id": incident_id}, interval=TEXTS_REFRESH_MS)]


def build(data: dict, language: str, history: list, actions: tuple[str, ...] = ()) -> list:
    """The impact view's panel; `actions`: what the user may do on its incident (text: the driver)."""
    links, view = Links(), data["impact"]
    distances = view.distances
    subject = str(data["subject_id"])
    subject_layer = next((layer for prefix, layer in SUBJECT_LAYERS if subject.startswith(prefix)), None)
    period = text(("夜间", "night") if distances.period == "night" else ("白天", "day"), language)
    goods = data["goods"]
    rows = [(text(L["subject"], language), links.to(subject_layer, subject, data.get("subject_name") or subject)
             if subject_layer else subject)]
    if data.get("incident") is not None:
        rows.append((text(L["incident"], language), links.to("incidents", str(data["incident"]["id"]))))
    rows += [
        (text(L["at"], language), local_time(pd.Timestamp(data["at"]))), (text(L["period"], language), period),
        (text(L["cargo"], language), ", ".join(sorted({str(u) for u in goods["un_number"]})) or "—"),
        (text(L["isolation"], language), _metres(distances.isolation_m)),
        (text(L["protective"], language), _metres(distances.protective_m)
         + (f" (UN{distances.un_number})" if distances.un_number else "")),
    ]
    body = [fields(rows), *_who(data, links, language)]
    zone = lambda z: text(ZONES.get(z, (z, z)), language)  # noqa: E731 - a label lookup
    body += section(L["sites"], language, _rows(
        view.sites, "hz-impact-sites",
        [text(L["name"], language), text(L["occupancy"], language), text(L["distance"], language),
         text(L["zone"], language)],
        lambda s: [links.to("sensitive_sites", s.id, str(s.name)), _int(s.occupancy), f"{s.distance_m:,.0f}",
                   zone(s.zone)]) if len(view.sites) else nothing(language), count=len(view.sites))
    body += section(L["sources"], language, _rows(
        view.hazard_sources, "hz-impact-sources",
        [text(L["name"], language), text(L["distance"], language), text(L["zone"], language)],
        lambda h: [links.to("hazard_sources", h.id, str(h.name)), f"{h.distance_m:,.0f}", zone(h.zone)])
        if len(view.hazard_sources) else nothing(language), *outside_scope(data, "hazard_sources", language),
        count=len(view.hazard_sources))
    body += section(L["trucks"], language, _rows(
        view.trucks, "hz-impact-trucks",
        [text(L["subject"], language), text(L["distance"], language), text(L["zone"], language)],
        lambda t: [links.to("vehicles", t.id), f"{t.distance_m:,.0f}", zone(t.zone)])
        if len(view.trucks) else nothing(language), *outside_scope(data, "trucks", language), count=len(view.trucks))
    body += _texting(data, actions, language)
    focus = {"layer": LAYER, "id": str(data["id"]), "lon": float(data["lon"]), "lat": float(data["lat"]),
             "circles": _circles(distances)}
    if np.isfinite(distances.protective_m):  # assets/hazmap_evidence.js: the sites inside marked, the circle fitted
        body.append(html.Div(className=EVIDENCE_CLASS, hidden=True, **{"data-evidence": json.dumps({
            "id": str(data["id"]), "kind": LAYER, "at": [float(data["lon"]), float(data["lat"])],
            "reach_m": float(distances.protective_m), "sites": data.get("site_points", [])}, separators=(",", ":"))}))
    return _frame(str(data["id"]), f"{text(L['kind'], language)} · {data.get('subject_name') or subject}",
                  language, history, focus, body)


def _frame(feature_id: str, title: str, language: str, history: list, focus: dict, body: list) -> list:
    """As layers/panels/common.frame_, under the impact view's own kind."""
    back = []
    if history:
        back_layer, back_id = history[-1]
        back.append(html.A(text(BACK_TEXT, language), href="#", className="hz-panel-back",
                           id={"type": LINK_TYPE, "layer": back_layer, "id": str(back_id), "n": BACK_N}))
    return [
        *back,
        html.Div(text(L["kind"], language), className="hz-panel-layer"),
        html.H2(title, className="hz-panel-title", **{"data-id": feature_id, "data-layer": LAYER}),
        dcc.Store(id={"type": HISTORY_TYPE, "n": 0}, data=[*history, [LAYER, feature_id]][-HISTORY_MAX:]),
        html.Div(id={"type": FOCUS_TYPE, "n": 0}, className="hz-panel-focus", hidden=True,
                 **{"data-focus": json.dumps(focus, separators=(",", ":"))}),
        html.Div(className="hz-drill hz-impact", children=body),
    ]


__all__ = ["LAYER", "TEXTS_TYPE", "TICK_TYPE", "build", "open_link", "texts_live", "texts_table"]
