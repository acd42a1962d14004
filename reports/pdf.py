"""PDFs with reportlab and a TrueType CJK font (text stays selectable): the snapshot (title,
time, area, the offline map, key figures, tables) and the shared table/figure helpers the
briefing and the incident record use."""

from __future__ import annotations

import io
import threading

import numpy as np
import pandas as pd
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Image, LongTable, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from reports.common import COLUMN_LABELS, TABLE_TITLES, cjk_font_path, fmt, local_time

FONT = "WenQuanYiZenHei"
PDF_TABLE_ROWS = 40  # rows of each table in the PDF; the XLSX has them all
_lock = threading.Lock()


def _register() -> None:
    with _lock:
        if FONT not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(FONT, str(cjk_font_path()), subfontIndex=0))


def styles() -> dict[str, ParagraphStyle]:
    _register()
    return {
        "title": ParagraphStyle("title", fontName=FONT, fontSize=18, leading=24, spaceAfter=4),
        "h2": ParagraphStyle("h2", fontName=FONT, fontSize=12, leading=16, spaceBefore=8, spaceAfter=4),
        "body": ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12),
        "cell": ParagraphStyle("cell", fontName=FONT, fontSize=7, leading=9),
    }


_GRID = [
    ("FONTNAME", (0, 0), (-1, -1), FONT), ("FONTSIZE", (0, 0), (-1, -1), 7),
    ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#9aa5b1")),
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde3ea")), ("VALIGN", (0, 0), (-1, -1), "TOP"),
]


def figures_table(figures: dict, labels: dict[str, tuple[str, str]]) -> Table:
    """Key figures, one row each: Chinese label, English label, value (read back by the tests)."""
    rows = [["指标", "indicator", "数值 value"]] + [[labels[k][0], labels[k][1], fmt(v)] for k, v in figures.items()]
    table = Table(rows, colWidths=[36 * mm, 40 * mm, 20 * mm], repeatRows=1)
    table.setStyle(TableStyle([*_GRID, ("FONTSIZE", (0, 0), (-1, -1), 8), ("ALIGN", (2, 1), (2, -1), "RIGHT")]))
    return table


def _fit(text: str, width_pt: float, size: float = 7.0) -> str:
    """Cut a cell's text to its column (CJK glyphs are full width, others about half)."""
    room = width_pt / size - 0.6
    used = 0.0
    for i, ch in enumerate(text):
        used += 1.0 if ord(ch) > 0x2E80 else 0.55
        if used > room:
            return text[: max(0, i - 1)] + "…"
    return text


def frame_table(frame: pd.DataFrame, width: float, max_rows: int = PDF_TABLE_ROWS, wrap: bool = False) -> list:
    """A frame as a table (header repeated; cells plain text cut to their column: a Paragraph per
    cell costs a second per few thousand cells; `wrap`: wrapped instead, for short tables), with a
    line on the rows left out."""
    st = styles()
    shown = frame.head(max_rows)
    if not len(shown):
        return [Paragraph("无 (none)", st["body"])]
    # column widths by content, within bounds
    lengths = np.array([max([len(COLUMN_LABELS.get(c, c)) * 0.7] + [len(fmt(v)) for v in shown[c].head(50)])
                        for c in frame.columns], dtype=float)
    share = np.clip(lengths, 4, 40)
    widths = (share / share.sum() * width).tolist()
    header = [Paragraph(COLUMN_LABELS.get(c, c), st["cell"]) for c in frame.columns]
    if wrap:
        columns = [[Paragraph(_escape(fmt(v)), st["cell"]) for v in shown[c].tolist()] for c in frame.columns]
    else:
        columns = [[_fit(fmt(v), w) for v in shown[c].tolist()] for c, w in zip(frame.columns, widths)]
    body = [list(row) for row in zip(*columns)]
    table = LongTable([header, *body], colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle(_GRID))
    out = [table]
    if len(frame) > max_rows:
        out.append(Paragraph(f"另有 {len(frame) - max_rows} 行见 XLSX ({len(frame) - max_rows} more rows in the XLSX)",
                             st["body"]))
    return out


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build(story: list, title: str, *, pagesize=landscape(A4)) -> bytes:
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=pagesize, leftMargin=12 * mm, rightMargin=12 * mm,
                            topMargin=12 * mm, bottomMargin=12 * mm, title=title, author="hazmap")

    def footer(canvas, document):
        canvas.saveState()
        canvas.setFont(FONT, 7)
        canvas.drawRightString(pagesize[0] - 12 * mm, 6 * mm, f"{title} · {document.page}")
        canvas.restoreState()

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def snapshot_pdf(snapshot, map_png: bytes, tables: dict[str, pd.DataFrame]) -> bytes:
    from spatial.snapshot import FIGURE_LABELS

    st = styles()
    page = landscape(A4)
    width = page[0] - 24 * mm
    title = f"区域风险快照 Area risk snapshot — {snapshot.area.name}"
    story = [Paragraph(_escape(title), st["title"]),
             Paragraph(f"时间 time: {local_time(snapshot.at)} (Asia/Shanghai) · 区域 area: {_escape(snapshot.area.name)}"
                       f" · 网格分辨率 H3 res {snapshot.resolution}", st["body"])]
    if snapshot.area.note:
        story.append(Paragraph(f"注意 note: {_escape(snapshot.area.note)}", st["body"]))
    story.append(Spacer(1, 3 * mm))
    img = Image(io.BytesIO(map_png), width=168 * mm, height=168 * mm * 6.5 / 9.0)
    side = Table([[img, figures_table(snapshot.figures, FIGURE_LABELS)]], colWidths=[172 * mm, width - 172 * mm])
    side.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [side, PageBreak()]
    for name in ("hazard_sources", "points_in_alarm", "trucks", "sensitive_sites", "incidents", "cells"):
        zh, en = TABLE_TITLES[name]
        frame = tables[name]
        story.append(Paragraph(f"{zh} {en} ({len(frame)})", st["h2"]))
        story += frame_table(frame, width)
    return build(story, title)
