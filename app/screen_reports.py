"""The area snapshot on the screen: a draw control on the map (rectangle or polygon, dash-leaflet's
EditControl) and a small panel whose button downloads the drawn area's snapshot in every
format (a ZIP of PDF, PNG, XLSX, GeoJSON, HTML), as it stands now — the live feed's clock when
the screen has one — through the same path as `hazmap snapshot` (app/cli_reports.py)."""

from __future__ import annotations

import io
import json
import zipfile

import pandas as pd

DRAW_ID = "hz-draw"
EXPORT_ID = "hz-snapshot-export"
DOWNLOAD_ID = "hz-snapshot-download"
STATUS_ID = "hz-snapshot-status"
BRIEFING_DAY_ID = "hz-briefing-day"
BRIEFING_ID = "hz-briefing-export"
BRIEFING_DOWNLOAD_ID = "hz-briefing-download"
LABELS = {
    "export": ("导出区域快照", "Export area snapshot"),
    "draw_first": ("请先在地图上画出区域 (矩形或多边形)", "Draw an area on the map first (rectangle or polygon)"),
    "briefing": ("下载风险简报", "Download the risk briefing"),
    "day": ("日期 (默认昨日)", "day (default: yesterday)"),
}


# The drawing tools' own texts (Leaflet.draw's L.drawLocal, English only), in the screen's language:
# assets/hazmap_draw.js puts them in place when dash-leaflet's EditControl chunk defines them.
DRAW_TEXTS = {
    "draw.toolbar.actions.title": ("取消绘制", "Cancel drawing"),
    "draw.toolbar.actions.text": ("取消", "Cancel"),
    "draw.toolbar.finish.title": ("完成绘制", "Finish drawing"),
    "draw.toolbar.finish.text": ("完成", "Finish"),
    "draw.toolbar.undo.title": ("删除最后一个点", "Delete last point drawn"),
    "draw.toolbar.undo.text": ("删除最后一点", "Delete last point"),
    "draw.toolbar.buttons.polygon": ("画多边形区域", "Draw a polygon"),
    "draw.toolbar.buttons.rectangle": ("画矩形区域", "Draw a rectangle"),
    "draw.handlers.polygon.tooltip.start": ("单击开始绘制区域", "Click to start drawing shape."),
    "draw.handlers.polygon.tooltip.cont": ("单击继续绘制", "Click to continue drawing shape."),
    "draw.handlers.polygon.tooltip.end": ("单击第一个点闭合区域", "Click first point to close this shape."),
    "draw.handlers.polyline.error": ("<strong>错误：</strong>边线不能交叉！", "<strong>Error:</strong> shape edges cannot cross!"),
    "draw.handlers.rectangle.tooltip.start": ("按住并拖动画矩形", "Click and drag to draw rectangle."),
    "draw.handlers.simpleshape.tooltip.end": ("松开鼠标完成绘制", "Release mouse to finish drawing."),
    "edit.toolbar.actions.save.title": ("保存修改", "Save changes"),
    "edit.toolbar.actions.save.text": ("保存", "Save"),
    "edit.toolbar.actions.cancel.title": ("取消编辑，放弃全部修改", "Cancel editing, discards all changes"),
    "edit.toolbar.actions.cancel.text": ("取消", "Cancel"),
    "edit.toolbar.actions.clearAll.title": ("清除全部区域", "Clear all layers"),
    "edit.toolbar.actions.clearAll.text": ("全部清除", "Clear All"),
    "edit.toolbar.buttons.remove": ("删除区域", "Delete layers"),
    "edit.toolbar.buttons.removeDisabled": ("没有可删除的区域", "No layers to delete"),
    "edit.handlers.remove.tooltip.text": ("单击要删除的区域", "Click on a feature to remove."),
}


def draw_texts(language: str) -> dict[str, str]:
    """The drawing tools' texts in `language`, keyed by their path in L.drawLocal."""
    return {path: pair[0] if language == "zh" else pair[1] for path, pair in DRAW_TEXTS.items()}


def _t(key: str, language: str) -> str:
    zh, en = LABELS[key]
    return zh if language == "zh" else en


def draw_control():
    import dash_leaflet as dl

    return dl.FeatureGroup([dl.EditControl(
        id=DRAW_ID, position="topright",
        draw={"rectangle": True, "polygon": True, "polyline": False, "circle": False, "marker": False,
              "circlemarker": False},
        edit={"edit": False, "remove": True})])


def snapshot_panel(language: str):
    from dash import dcc, html

    return html.Div(className="hz-snapshot", style={"position": "absolute", "right": "12px", "bottom": "4.5rem",
                                                    "zIndex": 1000},
                    **{"data-draw-local": json.dumps(draw_texts(language), ensure_ascii=False)}, children=[
        html.Button(_t("export", language), id=EXPORT_ID, n_clicks=0, className="hz-snapshot-button"),
        html.Div(id=STATUS_ID, className="hz-snapshot-status"),
        dcc.Download(id=DOWNLOAD_ID),
        dcc.Input(id=BRIEFING_DAY_ID, type="text", placeholder=_t("day", language), debounce=True,
                  style={"width": "9em"}),
        html.Button(_t("briefing", language), id=BRIEFING_ID, n_clicks=0, className="hz-snapshot-button"),
        dcc.Download(id=BRIEFING_DOWNLOAD_ID),
    ])


def feed_now(live) -> pd.Timestamp | None:
    """The live picture's clock: the newest truck position (a simulated day runs on its own date)."""
    if live is None:
        return None
    positions = live.snapshot().positions
    if not len(positions):
        return None
    return pd.Timestamp(int(positions["epoch_ms"].max()) + 1, unit="ms", tz="UTC")


def export_drawn(settings, world, drawn: dict, at: pd.Timestamp | None = None) -> tuple[str, bytes]:
    """(file name, ZIP bytes) of the drawn area's snapshot; AreaError for a bad area."""
    from app.cli import _open_store
    from app.cli_reports import build_snapshot
    from reports.snapshot import base_name, render_snapshot
    from spatial.snapshot import AreaError

    features = (drawn or {}).get("features") or []
    if not features:
        raise AreaError("draw an area on the map first")
    area = {"type": "FeatureCollection", "features": features[-1:]}  # the latest drawing
    now = pd.Timestamp.now(tz="UTC")
    store = _open_store(settings)
    try:
        snap = build_snapshot(settings, world, store, "drawn", area, at, now=max(now, at) if at is not None else now)
    finally:
        store.close()
    files = render_snapshot(snap)
    name = base_name(snap)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for fmt, data in files.items():
            archive.writestr(f"{name}.{fmt}", data)
    return f"{name}.zip", buffer.getvalue()


def export_briefing(settings, world, day_text: str | None, now: pd.Timestamp | None = None) -> tuple[str, bytes]:
    """(file name, ZIP of the PDF and XLSX) of a day's briefing; the day before `now` (local) when
    no day is given. ValueError for a day that is not YYYY-MM-DD."""
    import datetime as dt

    from app.cli import _open_store
    from app.cli_reports import build_briefing
    from reports.briefing import briefing_pdf, briefing_xlsx

    now = pd.Timestamp.now(tz="UTC") if now is None else now
    if day_text and day_text.strip():
        try:
            day = dt.date.fromisoformat(day_text.strip())
        except ValueError as exc:
            raise ValueError(f"day must be YYYY-MM-DD, got {day_text!r}") from exc
    else:
        day = (now.tz_convert("Asia/Shanghai") - pd.Timedelta(days=1)).date()
    store = _open_store(settings)
    try:
        brief = build_briefing(settings, world, store, day, now=now)
    finally:
        store.close()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"briefing_{day.isoformat()}.pdf", briefing_pdf(brief))
        archive.writestr(f"briefing_{day.isoformat()}.xlsx", briefing_xlsx(brief))
    return f"briefing_{day.isoformat()}.zip", buffer.getvalue()


def may_export(user) -> bool:
    """Area snapshots and briefings show everything in the area: for unscoped users allowed to
    export (duty officers); a department or enterprise would see others' items (no scoped
    snapshot yet). No user (a screen without logins): allowed."""
    from app.permissions import can, scope

    return user is None or (can(user, "export") and scope(user) is None)


def _audit_export(people, what: str, name: str) -> None:
    """Every export goes to the audit log (who, from where, what)."""
    if people is None:  # a screen without logins keeps no audit log
        return
    from app.auth import client_address, current_user
    from data.people import Actor

    user = current_user()
    actor = Actor.of(user, client_address()) if user is not None else Actor("-", None, client_address())
    people.record(actor, "export", name, details={"what": what, "via": "screen"})


def add_snapshot_callbacks(web, settings, world, live, people=None) -> None:
    from dash import Input, Output, State, dcc, no_update

    from spatial.snapshot import AreaError

    @web.callback(Output(DOWNLOAD_ID, "data"), Output(STATUS_ID, "children"), Input(EXPORT_ID, "n_clicks"),
                  State(DRAW_ID, "geojson"), State("hz-language", "data"), prevent_initial_call=True)
    def export(_clicks, drawn, language):
        from app.auth import current_user

        if not may_export(current_user()):
            return no_update, "not allowed: area snapshots are for duty officers"
        try:
            name, data = export_drawn(settings, world, drawn, at=feed_now(live))
        except AreaError as exc:
            text = _t("draw_first", language) if "draw an area" in str(exc) else str(exc)
            return no_update, text
        _audit_export(people, "snapshot", name)
        return dcc.send_bytes(data, name), name

    @web.callback(Output(BRIEFING_DOWNLOAD_ID, "data"), Output(STATUS_ID, "children", allow_duplicate=True),
                  Input(BRIEFING_ID, "n_clicks"), State(BRIEFING_DAY_ID, "value"), prevent_initial_call=True)
    def briefing(_clicks, day_text):
        from app.auth import current_user
        from app.cli import UserError

        if not may_export(current_user()):
            return no_update, "not allowed: briefings are for duty officers"

        try:  # the feed's clock: a simulated day's briefing is the day before it
            name, data = export_briefing(settings, world, day_text, now=feed_now(live))
        except (ValueError, UserError) as exc:
            return no_update, str(exc)
        _audit_export(people, "briefing", name)
        return dcc.send_bytes(data, name), name
