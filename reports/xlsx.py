"""XLSX with openpyxl: a summary sheet of key figures, then one sheet per table, formatted for
printing (landscape, fit to width, header row repeated and frozen, column widths)."""

from __future__ import annotations

import io
import numbers

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from reports.common import COLUMN_LABELS, TABLE_TITLES

HEADER_FILL = PatternFill("solid", fgColor="DDE3EA")
FONT_NAME = "WenQuanYi Zen Hei"


def _value(v):
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return None if v != v else float(v)
    if isinstance(v, pd.Timestamp):
        return v.tz_convert("Asia/Shanghai").strftime("%Y-%m-%d %H:%M:%S") if v.tzinfo else str(v)
    return str(v)


def _print_setup(ws, header_rows: int = 1) -> None:
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = f"1:{header_rows}"
    ws.freeze_panes = ws.cell(row=header_rows + 1, column=1)
    ws.print_options.gridLines = True


def add_frame_sheet(wb: Workbook, name: str, frame: pd.DataFrame, title: str | None = None) -> None:
    ws = wb.create_sheet(name[:31])
    ws.append([COLUMN_LABELS.get(c, c) for c in frame.columns])
    for cell in ws[1]:
        cell.font = Font(bold=True, name=FONT_NAME)
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for row in frame.itertuples(index=False):
        ws.append([_value(v) for v in row])
    for i, c in enumerate(frame.columns, start=1):
        longest = max([len(str(COLUMN_LABELS.get(c, c)))] + [len(str(v)) for v in frame[c].head(200)])
        ws.column_dimensions[get_column_letter(i)].width = min(60, max(8, longest * 1.3))
    if len(frame.columns):
        ws.auto_filter.ref = f"A1:{get_column_letter(len(frame.columns))}{max(1, len(frame) + 1)}"
    if title:
        ws.oddHeader.center.text = title
    _print_setup(ws)


def add_figures_sheet(wb: Workbook, name: str, heading: list[tuple[str, str]], figures: dict,
                      labels: dict[str, tuple[str, str]]) -> None:
    """Key figures: heading lines (label, value), then a header and one row per figure with its key."""
    ws = wb.create_sheet(name[:31])
    for label, value in heading:
        ws.append([label, value])
    ws.append([])
    start = ws.max_row + 1
    ws.append(["指标", "indicator", "数值 value", "key"])
    for cell in ws[start]:
        cell.font = Font(bold=True, name=FONT_NAME)
        cell.fill = HEADER_FILL
    for key, value in figures.items():
        ws.append([labels[key][0], labels[key][1], _value(value), key])
    for col, width in zip("ABCD", (28, 34, 16, 26)):
        ws.column_dimensions[col].width = width
    _print_setup(ws, header_rows=start)


def snapshot_xlsx(snapshot, tables: dict[str, pd.DataFrame]) -> bytes:
    from reports.common import local_time
    from spatial.snapshot import FIGURE_LABELS

    wb = Workbook()
    wb.remove(wb.active)
    heading = [("区域风险快照 Area risk snapshot", snapshot.area.name), ("时间 time (Asia/Shanghai)", local_time(snapshot.at)),
               ("网格分辨率 H3 resolution", snapshot.resolution)]
    if snapshot.area.note:
        heading.append(("注意 note", snapshot.area.note))
    add_figures_sheet(wb, "summary", heading, snapshot.figures, FIGURE_LABELS)
    for name, frame in tables.items():
        add_frame_sheet(wb, name, frame, f"{TABLE_TITLES[name][0]} {TABLE_TITLES[name][1]} — {snapshot.area.name}")
    if len(snapshot.entities_by_category):
        add_frame_sheet(wb, "entities_by_category", snapshot.entities_by_category)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
