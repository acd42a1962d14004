"""A closed incident as a printable record (PDF): what happened and where (the evidence map:
the subject's track around the incident, its position, the sensitive sites and hazard sources
near it), who it reached and what each did (recipients), every transition (history)."""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

import geopandas as gpd
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from layers.evidence import evidence_rows
from layers.labels import rule_title
from reports.common import fmt, local_time
from reports.maps import LAND, OUTLINE, PAPER, SITE, _font
from spatial.incidents.levels import BY_SEVERITY

RECIPIENT_COLUMNS = ["recipient_id", "recipient_kind", "role", "tier", "state", "pushed_at", "signed_at", "signed_by",
                     "disposed_at", "disposed_by", "measures", "outcome", "closed_at", "closed_by", "escalated_at"]
HISTORY_COLUMNS = ["at", "action", "recipient_id", "from_state", "to_state", "actor", "note"]
MARGIN_DEG = 0.02  # ≈ 2 km around the incident and its track


def _local(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.tz_convert("Asia/Shanghai").dt.strftime("%Y-%m-%d %H:%M:%S").fillna("")
    return out


def evidence_map(incident: dict, track: pd.DataFrame, context: gpd.GeoDataFrame | None,
                 sites: gpd.GeoDataFrame | None, hazard_sources: gpd.GeoDataFrame | None, dpi: int = 150) -> bytes:
    font = _font()
    fig = Figure(figsize=(8, 5.5), dpi=dpi, facecolor=PAPER)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.92))
    lon, lat = float(incident.get("lon") or np.nan), float(incident.get("lat") or np.nan)
    xs = np.concatenate([[lon], track["lon"].to_numpy("float64")]) if len(track) else np.array([lon])
    ys = np.concatenate([[lat], track["lat"].to_numpy("float64")]) if len(track) else np.array([lat])
    ok = np.isfinite(xs) & np.isfinite(ys)
    if not ok.any():
        xs, ys = np.array([121.55]), np.array([29.87])  # no position at all: the city centre
        ok = np.array([True])
    w, e = xs[ok].min() - MARGIN_DEG, xs[ok].max() + MARGIN_DEG
    s, n = ys[ok].min() - MARGIN_DEG, ys[ok].max() + MARGIN_DEG
    if context is not None and len(context):
        context.cx[w:e, s:n].plot(ax=ax, color=LAND, edgecolor=OUTLINE, linewidth=0.6, zorder=1)
    if sites is not None and len(sites):
        near = sites.cx[w:e, s:n]
        if len(near):
            rp = near.geometry.representative_point()
            ax.scatter(rp.x, rp.y, s=24, marker="D", c=SITE, zorder=3, label="敏感目标")
    if hazard_sources is not None and len(hazard_sources):
        near = hazard_sources.cx[w:e, s:n]
        if len(near):
            ax.scatter(near.geometry.x, near.geometry.y, s=60, c="#ff8a1c", edgecolors="#222", zorder=3,
                       label="重大危险源")
    if len(track):
        ax.plot(track["lon"], track["lat"], "-", color="#1c7ed6", linewidth=1.5, zorder=4, label="轨迹")
        ax.scatter(track["lon"], track["lat"], s=6, c="#1c7ed6", zorder=4)
    if np.isfinite(lon) and np.isfinite(lat):
        colour = BY_SEVERITY[int(incident["severity"])].colour
        ax.scatter([lon], [lat], s=160, marker="X", c=colour, edgecolors="#000", zorder=5, label="告警位置")
    ax.set_xlim(w, e)
    ax.set_ylim(s, n)
    ax.set_aspect(1 / np.cos(np.radians((s + n) / 2)))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.legend(loc="lower left", prop={"family": font, "size": 7})
    fig.suptitle(f"{incident['id']} · {incident['rule']} · {incident['subject_id']}", fontsize=10, family=font)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor=PAPER)
    return buffer.getvalue()


def incident_record_pdf(shown: dict, track: pd.DataFrame, context=None, sites=None, hazard_sources=None) -> bytes:
    """shown: IncidentStore.show()'s dict; track: the subject's pings (lon, lat, epoch_ms) around it."""
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, Spacer, Table, TableStyle

    from reports.pdf import _GRID, build, frame_table, styles

    incident = shown["incident"]
    if incident.get("status") != "closed":
        raise ValueError(f"{incident['id']} is not closed (status {incident.get('status')}): "
                         "only a closed incident is exported as a record")
    st = styles()
    width = landscape(A4)[0] - 24 * mm
    level = BY_SEVERITY[int(incident["severity"])]
    title = f"告警事件处置记录 Incident record — {incident['id']}"
    facts = [
        ("规则 rule", f"{rule_title(incident['rule'], 'zh')} {incident['rule']}"), ("对象 subject", f"{incident['subject_id']} ({incident['subject_kind']})"),
        ("等级 level", f"{level.name_zh} {level.key}"), ("首次 first", local_time(incident["first_time"])),
        ("最近 last", local_time(incident["last_time"])),
        ("结束 ended", local_time(incident["end_time"]) if pd.notna(incident.get("end_time")) else ""),
        ("办结 closed", local_time(incident["closed_at"]) if pd.notna(incident.get("closed_at")) else ""),
        ("位置 position", f"{fmt(incident.get('lon'))}, {fmt(incident.get('lat'))}"),
        ("区县 district", incident.get("district_adcode") or ""), ("升级 escalations", fmt(incident.get("escalations"))),
        ("误报 false alarm", fmt(bool(incident.get("false_alarm")))),
    ]
    # the rule's own record, every key by its label as the panel shows it (layers/evidence.py)
    zh, en = (evidence_rows(incident.get("evidence") or {}, incident.get("rule"), language)
              for language in ("zh", "en"))
    evidence = [[f"{a} {b}" if a != b else a, Paragraph(escape(v), st["cell"])] for (a, v), (b, _) in zip(zh, en)]
    fact_table = Table([[k, Paragraph(str(v), st["cell"])] for k, v in facts], colWidths=[30 * mm, 70 * mm])
    fact_table.setStyle(TableStyle(_GRID[:3] + [("VALIGN", (0, 0), (-1, -1), "TOP")]))
    img = Image(io.BytesIO(evidence_map(incident, track, context, sites, hazard_sources)),
                width=150 * mm, height=150 * mm * 5.5 / 8)
    top = Table([[img, fact_table]], colWidths=[155 * mm, width - 155 * mm])
    top.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    recipients = _local(shown["recipients"])[[c for c in RECIPIENT_COLUMNS if c in shown["recipients"].columns]]
    history = _local(shown["history"])[[c for c in HISTORY_COLUMNS if c in shown["history"].columns]]
    evidence_table = []
    if evidence:
        table = Table(evidence, colWidths=[70 * mm, width - 70 * mm], repeatRows=0)
        table.setStyle(TableStyle(_GRID[:3] + [("VALIGN", (0, 0), (-1, -1), "TOP")]))
        evidence_table = [Paragraph(f"证据 Evidence ({len(evidence)})", st["h2"]), table]
    story = [Paragraph(title, st["title"]), top, Spacer(1, 4 * mm), *evidence_table,
             Paragraph(f"接收方 Recipients ({len(recipients)})", st["h2"]), *frame_table(recipients, width, 200, wrap=True),
             Paragraph(f"处置过程 History ({len(history)})", st["h2"]), *frame_table(history, width, 500, wrap=True)]
    return build(story, title)
