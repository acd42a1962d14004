"""The daily risk briefing as PDF and XLSX (the same figures and tables in both)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

BRIEFING_FORMATS = ("pdf", "xlsx")
TITLES = {
    "by_level": ("按级别", "By level"), "by_rule": ("按规则", "By rule"), "by_district": ("按区县", "By district"),
    "by_department": ("按部门", "By department"),
    "top_enterprises": ("当日告警最多、最重的企业", "Enterprises with the most and gravest incidents"),
    "trends": ("趋势 (对比前7日、前30日日均)", "Trends against the mean day of the previous 7 and 30 days"),
    "key_attention": ("重点关注企业", "Key attention"), "suggested_attention": ("建议关注企业", "Suggested attention"),
}
COLUMNS = {"key": "代码 key", "name": "名称 name", "incidents": "告警 incidents", "pushed": "推送 pushed",
           "signed": "签收 signed", "disposed": "处置 disposed", "red": "重大 red", "orange": "较大 orange",
           "yellow": "一般 yellow", "blue": "低 blue", "gravity": "风险积分 gravity", "handling_rate": "处置率 rate",
           "mean_7d": "前7日日均 7 d", "mean_30d": "前30日日均 30 d", "vs_7d": "较7日 vs 7 d",
           "vs_30d": "较30日 vs 30 d", "reason": "原因 reason"}
ORDER = ("by_level", "by_rule", "by_district", "by_department", "top_enterprises", "trends", "key_attention",
         "suggested_attention")


def _print_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns=COLUMNS)


def briefing_pdf(brief) -> bytes:
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph

    from reports.pdf import build, figures_table, frame_table, styles
    from spatial.briefing import FIGURE_LABELS

    st = styles()
    width = landscape(A4)[0] - 24 * mm
    title = f"每日风险简报 Daily risk briefing {brief.day.isoformat()}"
    story = [Paragraph(title, st["title"]),
             Paragraph(f"日期 day: {brief.day.isoformat()} (Asia/Shanghai) · 关注名单统计窗口 attention window: "
                       f"{brief.thresholds.window_days} 天 days", st["body"]),
             figures_table(brief.figures, FIGURE_LABELS)]
    for name in ORDER:
        zh, en = TITLES[name]
        frame = brief.tables[name]
        story.append(Paragraph(f"{zh} {en} ({len(frame)})", st["h2"]))
        story += frame_table(_print_frame(frame), width, max_rows=60)
    return build(story, title)


def briefing_xlsx(brief) -> bytes:
    import io

    from openpyxl import Workbook

    from reports.xlsx import add_figures_sheet, add_frame_sheet
    from spatial.briefing import FIGURE_LABELS

    wb = Workbook(write_only=True)
    add_figures_sheet(wb, "summary", [("每日风险简报 Daily risk briefing", brief.day.isoformat()),
                                      ("关注名单统计窗口 attention window (days)", brief.thresholds.window_days)],
                      brief.figures, FIGURE_LABELS)
    for name in ORDER:
        add_frame_sheet(wb, name, _print_frame(brief.tables[name]), f"{TITLES[name][0]} {brief.day.isoformat()}")
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def write_briefing(brief, out_dir: Path, formats=BRIEFING_FORMATS) -> dict[str, Path]:
    rendered = {}
    for name in formats:
        rendered[name] = briefing_pdf(brief) if name == "pdf" else briefing_xlsx(brief)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in rendered.items():
        path = out_dir / f"briefing_{brief.day.isoformat()}.{name}"
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        paths[name] = path
    return paths
