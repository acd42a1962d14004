"""XLSX with openpyxl: a summary sheet of key figures, then one sheet per table, formatted for
printing (landscape, fit to width, header row repeated and frozen, column widths)."""

from __future__ import annotations

import io
import numbers

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
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
    ws.page_setup.paperSize = "9"  # A4 (ECMA-376 paper size code)
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = f"1:{header_rows}"
    ws.freeze_panes = f"A{header_rows + 1}"
    ws.print_options.gridLines = True


def _header(ws, labels) -> list:
    out = []
    for label in labels:
        cell = WriteOnlyCell(ws, value=label)
        cell.font = Font(bold=True, name=FONT_NAME)
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        out.append(cell)
    return out


def _columns(frame: pd.DataFrame) -> list[list]:
    """Column-wise plain Python values (one conversion per column, not per cell)."""
    out = []
    for c in frame.columns:
        col = frame[c]
        if pd.api.types.is_bool_dtype(col):
            out.append(col.astype(bool).tolist())
        elif pd.api.types.is_integer_dtype(col):
            out.append(col.astype("int64").tolist())
        elif pd.api.types.is_float_dtype(col):
            values = col.astype("float64")
            out.append(values.astype(object).where(values.notna(), None).tolist())
        elif col.dtype == object and not col.map(type).isin([pd.Timestamp]).any():
            out.append(col.astype(object).where(col.notna(), None).map(lambda v: v if v is None else str(v)).tolist())
        else:
            out.append([_value(v) for v in col.tolist()])
    return out


def add_frame_sheet(wb: Workbook, name: str, frame: pd.DataFrame, title: str | None = None) -> None:
    """One table on its own sheet (write-only: rows streamed), set up for printing."""
    ws = wb.create_sheet(name[:31])
    labels = [COLUMN_LABELS.get(c, c) for c in frame.columns]
    for i, c in enumerate(frame.columns, start=1):
        sample = frame[c].head(200).astype(str)
        longest = max([len(str(labels[i - 1]))] + sample.str.len().tolist())
        ws.column_dimensions[get_column_letter(i)].width = min(60, max(8, longest * 1.3))
    if len(frame.columns):
        ws.auto_filter.ref = f"A1:{get_column_letter(len(frame.columns))}{max(1, len(frame) + 1)}"
    if title:
        ws.oddHeader.center.text = title
    _print_setup(ws)
    ws.append(_header(ws, labels))
    for row in zip(*_columns(frame)):
        ws.append(row)


def add_figures_sheet(wb: Workbook, name: str, heading: list[tuple[str, str]], figures: dict,
                      labels: dict[str, tuple[str, str]]) -> None:
    """Key figures: heading lines (label, value), then a header and one row per figure with its key."""
    ws = wb.create_sheet(name[:31])
    for col, width in zip("ABCD", (28, 34, 16, 26)):
        ws.column_dimensions[col].width = width
    _print_setup(ws, header_rows=len(heading) + 2)
    for label, value in heading:
        ws.append([label, value])
    ws.append([])
    ws.append(_header(ws, ["指标", "indicator", "数值 value", "key"]))
    for key, value in figures.items():
        ws.append([labels[key][0], labels[key][1], _value(value), key])


def snapshot_xlsx(snapshot, tables: dict[str, pd.DataFrame]) -> bytes:
    from reports.common import local_time
    from spatial.snapshot import FIGURE_LABELS

    wb = Workbook(write_only=True)
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
