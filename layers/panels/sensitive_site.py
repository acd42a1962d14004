"""The sensitive site's panel: occupancy and who is near it now: loaded trucks within their cargo's
ERG protective distance of it, hazard sources whose protective distance reaches it."""

from __future__ import annotations

import pandas as pd
import shapely

from layers.labels import value_label
from layers.panels.common import Links, fields, frame_, incidents, nothing, outside_scope, section, table
from layers.style import Text, text

L: dict[str, Text] = {
    "kind": ("类型", "Kind"), "occupancy": ("人数", "Occupancy"), "period": ("ERG 时段", "ERG period"),
    "trucks": ("防护距离内的重载车辆", "Loaded trucks within their cargo's distance"),
    "sources": ("防护距离覆盖本目标的危险源", "Hazard sources whose distance reaches it"),
    "dist": ("距离 (m)", "Distance (m)"), "radius": ("防护距离 (m)", "Protective distance (m)"),
}


def build(data: dict, language: str, history: list) -> list:
    row, links = data["row"], Links()
    occupancy = row.get("occupancy")
    rows = [(text(L["kind"], language), value_label("site_kind", row["kind"], language)),
            (text(L["occupancy"], language), "—" if occupancy is None or pd.isna(occupancy) else f"{int(occupancy):,}"),
            (text(L["period"], language), text(("夜间", "night") if data["night"] else ("白天", "day"), language))]
    body = [fields(rows)]
    head = [text(("对象", "Subject"), language), text(L["dist"], language), text(L["radius"], language)]
    trucks, sources = data["trucks"], data["hazard_sources"]
    body += section(L["trucks"], language, table(head, [
        [links.to("vehicles", i), f"{d:,.0f}", f"{r:,.0f}"]
        for i, d, r in zip(trucks["id"], trucks["distance_m"], trucks["radius_m"], strict=True)])
        if len(trucks) else nothing(language), *outside_scope(data, "trucks", language), count=len(trucks))
    body += section(L["sources"], language, table(head, [
        [links.to("hazard_sources", i, str(n)), f"{d:,.0f}", f"{r:,.0f}"]
        for i, n, d, r in zip(sources["id"], sources["name"], sources["distance_m"], sources["radius_m"],
                              strict=True)]) if len(sources) else nothing(language),
        *outside_scope(data, "hazard_sources", language), count=len(sources))
    body += incidents(data["incidents"], language, links)
    centre = shapely.centroid(row.geometry)
    focus = {"layer": "sensitive_sites", "id": str(row["id"]), "lon": float(centre.x), "lat": float(centre.y)}
    return frame_("sensitive_sites", str(row["id"]), str(row["name"]), language, history, focus, body)
