"""The snapshot's map, drawn offline with GeoPandas/matplotlib: the districts for orientation,
the grid cells by band, the area's outline and its features; no tile server."""

from __future__ import annotations

import io
import threading

import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from layers.style import HAZARD_GRADE_COLORS, RISK_BAND_STYLES
from reports.common import cjk_font_path, local_time
from spatial.incidents.levels import BY_SEVERITY

PAPER = "#ffffff"
LAND = "#eef0ec"  # light for print: the wall's dark palette wastes toner
OUTLINE = "#7a8ea6"
AREA = "#1b2a41"
TRUCK_COLORS = {"loaded": "#d9480f", "empty_uncleaned": "#f08c00", "empty_clean": "#868e96", "unknown": "#adb5bd"}
ALARM = "#e02020"
SITE = "#ae3ec9"
_font_lock = threading.Lock()
_font_name: list[str] = []


def _font() -> str:
    with _font_lock:
        if not _font_name:
            path = str(cjk_font_path())
            font_manager.fontManager.addfont(path)
            _font_name.append(font_manager.FontProperties(fname=path).get_name())
    return _font_name[0]


def render_map(snapshot, *, width_in: float = 9.0, height_in: float = 6.5, dpi: int = 150) -> bytes:
    """The map as PNG bytes (no pyplot: a Figure of its own, safe in a server thread)."""
    font = _font()
    fig = Figure(figsize=(width_in, height_in), dpi=dpi, facecolor=PAPER)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.92))
    ax.set_facecolor(PAPER)
    geom = snapshot.area.geometry
    w, s, e, n = geom.bounds
    pad = max(e - w, n - s) * 0.06 + 1e-4
    context = snapshot.context
    if context is not None and len(context):
        context.plot(ax=ax, color=LAND, edgecolor=OUTLINE, linewidth=0.6, zorder=1)
        for name, point in zip(context["name"], context.geometry.representative_point()):
            if w - pad <= point.x <= e + pad and s - pad <= point.y <= n + pad:
                ax.annotate(str(name), (point.x, point.y), fontsize=8, color=OUTLINE, family=font,
                            ha="center", zorder=2)
    cells = snapshot.tables["cells"]
    if len(cells):
        colors = [RISK_BAND_STYLES[b].color if b in RISK_BAND_STYLES else "#cccccc" for b in cells["band"]]
        cells.plot(ax=ax, color=colors, alpha=0.55, edgecolor="#ffffff", linewidth=0.3, zorder=3)
    import geopandas as gpd

    gpd.GeoSeries([geom], crs=4326).boundary.plot(ax=ax, color=AREA, linewidth=1.8, zorder=4)
    t = snapshot.tables
    if len(t["trucks"]):
        tr = t["trucks"]
        ax.scatter(tr["lon"], tr["lat"], s=10, marker="s", zorder=6,
                   c=[TRUCK_COLORS.get(c, "#adb5bd") for c in tr["cargo_state"]], linewidths=0)
    if len(t["sensitive_sites"]):
        ss = t["sensitive_sites"]
        ax.scatter(ss["lon"], ss["lat"], s=22, marker="D", c=SITE, zorder=6, linewidths=0)
    mp = t["monitoring_points"]
    bad = mp[mp["state"] != "normal"]
    if len(bad):
        ax.scatter(bad["lon"], bad["lat"], s=26, marker="^", c=ALARM, zorder=7, linewidths=0)
    if len(t["hazard_sources"]):
        hs = t["hazard_sources"]
        ax.scatter(hs["lon"], hs["lat"], s=70, marker="o", edgecolors="#222222", linewidths=0.8, zorder=8,
                   c=[HAZARD_GRADE_COLORS.get(str(g), "#888888") for g in hs["grade"]])
    if len(t["incidents"]):
        inc = t["incidents"]
        sev = {lv.key: lv.colour for lv in BY_SEVERITY.values()}
        ax.scatter(inc["lon"], inc["lat"], s=60, marker="X", c=[sev.get(k, "#000000") for k in inc["level"]],
                   edgecolors="#000000", linewidths=0.5, zorder=9)
    ax.set_xlim(w - pad, e + pad)
    ax.set_ylim(s - pad, n + pad)
    ax.set_aspect(1 / np.cos(np.radians((s + n) / 2)))
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_color("#999999")
    handles = [
        Line2D([], [], marker="o", ls="", color=HAZARD_GRADE_COLORS["2"], markeredgecolor="#222", label="重大危险源"),
        Line2D([], [], marker="^", ls="", color=ALARM, label="报警监测点"),
        Line2D([], [], marker="s", ls="", color=TRUCK_COLORS["loaded"], label="重载车辆"),
        Line2D([], [], marker="D", ls="", color=SITE, label="暴露敏感目标"),
        Line2D([], [], marker="X", ls="", color=BY_SEVERITY[1].colour, label="告警事件"),
        *[Line2D([], [], marker="h", ls="", markersize=10, color=RISK_BAND_STYLES[b].color, alpha=0.6,
                 label=RISK_BAND_STYLES[b].label[0]) for b in ("red", "orange", "yellow", "blue")],
    ]
    ax.legend(handles=handles, loc="lower left", fontsize=7, prop={"family": font, "size": 7}, framealpha=0.85)
    fig.suptitle(f"{snapshot.area.name} · {local_time(snapshot.at)}", fontsize=11, family=font, y=0.975)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor=PAPER)
    return buffer.getvalue()
