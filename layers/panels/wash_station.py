"""The wash station's panel: the trucks washed at it today (a stop there, as the wash-visit rules
count one) and the trucks that reported at it since local midnight (its visits)."""

from __future__ import annotations

from layers.panels.common import Links, fields, frame_, incidents, local_time, nothing, section, table
from layers.style import Text, text

L: dict[str, Text] = {
    "district": ("区县", "District"), "visits": ("今日到站车辆", "Trucks at the station today"),
    "first": ("到达", "First report"), "last": ("最后", "Last report"), "reports": ("定位数", "Reports"),
    "washed": ("今日洗消车辆", "Trucks washed today"), "start": ("停车开始", "Stop start"),
    "end": ("停车结束", "Stop end"), "minutes": ("时长 (min)", "Minutes"),
}


def build(data: dict, language: str, history: list) -> list:
    row, links = data["row"], Links()
    visits = data["visits"]
    washed = data.get("washed")
    district = data.get("district")  # its name in the screen's language, the code beside it
    named = f"{district['name_en' if language == 'en' else 'name']} ({row['district_adcode']})" if district \
        else str(row["district_adcode"])
    body = [fields([(text(L["district"], language), named)])]
    if washed is not None:
        body += section(L["washed"], language, table(
            [text(("车辆", "Truck"), language), *(text(L[k], language) for k in ("start", "end", "minutes"))],
            [[links.to("vehicles", v), local_time(a), local_time(b), f"{(int(b) - int(a)) / 60_000:,.0f}"]
             for v, a, b in zip(washed["vehicle_id"], washed["start_ms"], washed["end_ms"], strict=True)],
            "hz-panel-washed") if len(washed) else nothing(language), count=int(washed["vehicle_id"].nunique()))
    body += section(L["visits"], language, table(
        [text(("车辆", "Truck"), language), *(text(L[k], language) for k in ("first", "last", "reports"))],
        [[links.to("vehicles", v), local_time(f), local_time(t), f"{int(n):,}"] for v, f, t, n in
         zip(visits["vehicle_id"], visits["first_ms"], visits["last_ms"], visits["reports"], strict=True)],
        "hz-panel-visits")
        if len(visits) else nothing(language), count=len(visits))
    body += incidents(data["incidents"], language, links)
    focus = {"layer": "wash_stations", "id": str(row["id"]), "lon": float(row.geometry.x), "lat": float(row.geometry.y)}
    return frame_("wash_stations", str(row["id"]), str(row["name"]), language, history, focus, body)
