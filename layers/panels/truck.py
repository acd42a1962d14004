"""The truck's panel: plate, carrier (a link, with its contacts), driver and escort, the active
waybill (goods by name, UN number, class, quantity; loading and unloading sites; the route drawn on
the map), cargo state, state and speed, the speed chart with the road's limit, its incidents."""

from __future__ import annotations

import numpy as np
import shapely
from dash import html

from layers.details import format_value
from layers.labels import VALUE_LABELS, value_label
from layers.panels.charts import graph, speed_figure
from layers.panels.common import Links, fields, frame_, incidents, local_time, number, section, table, window_switch
from layers.panels.impact import open_link
from layers.style import Text, text
from spatial.model import ENTITY_CONTACT_COLUMNS

L: dict[str, Text] = {
    "plate": ("车牌", "Plate"), "carrier": ("承运企业", "Carrier"), "driver": ("驾驶员", "Driver"),
    "escort": ("押运员", "Escort"), "body": ("罐体/车厢", "Body"), "phone": ("终端号", "Terminal"),
    "cargo": ("装载状态", "Cargo"), "speed": ("车速", "Speed"), "last": ("最后定位", "Last report"),
    "limit": ("道路限速", "Road limit"), "waybill": ("电子运单", "Waybill"),
    "loading": ("装货地", "Loading site"), "unloading": ("卸货地", "Unloading site"),
    "planned": ("计划时间", "Planned"), "emergency": ("应急电话", "Emergency phone"),
    "goods": ("货物", "Goods"), "un": ("UN号", "UN"), "name": ("品名", "Name"), "class": ("类别", "Class"),
    "qty": ("数量 (t)", "Quantity (t)"), "replay": ("轨迹回放 (24 h)", "Track replay (24 h)"),
    "play": ("播放", "Play"), "pause": ("暂停", "Pause"), "window": ("时段", "Window"),
    "speed_chart": ("车速", "Speed"), "contacts": ("承运企业联系方式", "Carrier contacts"), "marks": ("停车 {stops} 次 · 告警 {incidents} 起", "{stops} stops · {incidents} incidents"),
}
SPEED_WINDOWS: tuple[tuple[int, str], ...] = ((2, "2 h"), (24, "24 h"))  # data/drilldown.SPEED_WINDOWS_H
CARGO: dict[str, Text] = {"loaded": ("重载", "Loaded"), "empty": ("空载 (洗消状态未知)", "Empty (wash state not known)")}


def build(data: dict, language: str, history: list) -> list:
    row, links = data["row"], Links()
    carrier = data["carrier"]
    carrier_cell = row["carrier"]
    if carrier is not None:
        carrier_cell = links.to("entities", carrier["id"], str(carrier["name"]))
    position = data["position"]
    # plate, driver, escort, body and terminal are in the attribute table above (layers/details.py)
    rows = [
        (text(L["carrier"], language), carrier_cell),
        (text(L["contacts"], language), carrier_contacts(carrier)),
        (text(L["cargo"], language), cargo_state(data, language)),
    ]
    if position is not None:
        rows += [(text(L["speed"], language), number(position["speed_kmh"], "km/h")),
                 (text(L["last"], language), local_time(position["epoch_ms"]))]
    rows.append((text(L["limit"], language), number(data["speed_limit_kmh"], "km/h")))
    body = [fields(rows)]
    body.append(open_link(links, str(row["id"]), language))  # its impact view (layers/panels/impact.py)

    focus: dict = {"layer": "vehicles", "id": str(row["id"])}
    if position is not None:
        focus["lon"], focus["lat"] = float(position["lon"]), float(position["lat"])
    waybill = data["waybill"]
    if waybill is not None:
        body += section(L["waybill"], language, fields([
            (text(L["waybill"], language), f"{waybill['id']} ({value_label('status', waybill['status'], language)})"),
            (text(L["loading"], language), _site(links, waybill["loading_site_id"], data)),
            (text(L["unloading"], language), _site(links, waybill["unloading_site_id"], data)),
            (text(L["planned"], language), f"{format_value(waybill['planned_departure'], 'datetime', language)} → "
                                           f"{format_value(waybill['planned_arrival'], 'datetime', language)}"),
            (text(L["emergency"], language), str(waybill["emergency_phone"])),
        ]))
        goods = data["goods"]
        if len(goods):
            body += section(L["goods"], language, table(
                [text(L[k], language) for k in ("un", "name", "class", "qty")],
                [[str(u), str(n), str(c), number(q)] for u, n, c, q in
                 zip(goods["un_number"], _goods_names(goods, language), goods["hazard_class"], goods["quantity_t"],
                     strict=True)]))
        route = waybill.geometry
        if route is not None and not shapely.is_empty(route):
            focus["route"] = shapely.get_coordinates(route).round(6).tolist()  # drawn by assets/hazmap_panel.js

    body += section(L["speed_chart"], language, window_switch("speed", list(SPEED_WINDOWS), data["hours"]),
                    graph(speed_chart(data, language), "speed"))
    replay = data["replay"]
    if len(replay) > 1:  # assets/hazmap_panel.js fills the replay's controls and moves its marker
        focus["track"] = np.column_stack([replay["epoch_ms"].to_numpy("float64"),
                                          replay["lon"].to_numpy("float64").round(6),
                                          replay["lat"].to_numpy("float64").round(6)]).tolist()
        stops, marked = data["replay_stops"], data["replay_incidents"]
        focus["stops"] = [[int(a), int(b), round(float(x), 6), round(float(y), 6)] for a, b, x, y in
                          zip(stops["start_ms"], stops["end_ms"], stops["lon"], stops["lat"], strict=True)]
        focus["incidents"] = [[int(t), round(float(x), 6), round(float(y), 6), str(i), str(r)] for t, x, y, i, r in
                              zip(marked["epoch_ms"], marked["lon"], marked["lat"], marked["id"], marked["rule"],
                                  strict=True)]
        counts = text(L["marks"], language).format(stops=len(stops), incidents=len(marked))
        body += section(L["replay"], language, html.Div(counts, className="hz-replay-counts"),
                        html.Div(className="hz-replay", **{
                            "data-play": text(L["play"], language), "data-pause": text(L["pause"], language)}))
    body += incidents(data["incidents"], language, links)
    return frame_("vehicles", str(row["id"]), str(row["plate"]), language, history, focus, body)


def speed_chart(data: dict, language: str):
    """The speed figure of data/drilldown.truck or .speed_series (its window's track, the road's limit)."""
    track = data["track"]
    return speed_figure(track["epoch_ms"], track["speed_kmh"], data["speed_limit_kmh"], language)


def cargo_state(data: dict, language: str) -> str:
    """The engine's cargo state (LiveState.cargo: loaded / empty, not cleaned / empty, clean), else
    loaded or empty from the waybills."""
    state = data.get("cargo_state")
    if state in VALUE_LABELS["cargo_state"]:
        return text(VALUE_LABELS["cargo_state"][state], language)
    return text(CARGO[data["cargo"]], language)


def _goods_names(goods, language: str) -> list[str]:
    """The shipping names in the screen's language: the catalogue's English name where it has one."""
    names = goods["name"].astype(str).tolist()
    if language == "zh" or "name_en" not in goods:
        return names
    return [str(en) if isinstance(en, str) and en else zh for zh, en in zip(names, goods["name_en"], strict=True)]


def carrier_contacts(carrier) -> str:
    """The carrier's contact fields the World holds ("—" without any)."""
    if carrier is None:
        return "—"
    found = [str(carrier[c]) for c in ENTITY_CONTACT_COLUMNS if c in carrier.index and isinstance(carrier[c], str) and carrier[c]]
    return " · ".join(found) or "—"


def _site(links: Links, site_id, data: dict):
    """A loading or unloading site: a link named by the enterprise (its id when the World lacks it)."""
    if not isinstance(site_id, str):
        return "—"
    return links.to("entities", site_id, data.get("site_names", {}).get(site_id, site_id))
