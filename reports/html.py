"""A self-contained HTML map of a snapshot (folium): Leaflet's script and styles inlined from
reports/vendor/leaflet (folium links a CDN by default), folium's other CDN assets (jQuery,
Bootstrap, awesome-markers) left out, no tile layer: it opens with the network blocked."""

from __future__ import annotations

import html
import re
from importlib.resources import files

import folium

from layers.style import HAZARD_GRADE_COLORS, RISK_BAND_STYLES
from reports.common import fmt, local_time
from reports.geo import snapshot_features
from reports.maps import ALARM, AREA, LAND, OUTLINE, SITE, TRUCK_COLORS
from spatial.incidents.levels import LEVELS

_REMOTE = re.compile(r'<(?:script|link)[^>]+(?:src|href)\s*=\s*"(?:https?:)?//[^"]*"[^>]*>(?:\s*</script>)?', re.I)
_LEVEL_COLOURS = {lv.key: lv.colour for lv in LEVELS}


def _vendor(name: str) -> str:
    return files("reports").joinpath("vendor", "leaflet", name).read_text(encoding="utf-8")


def _style(layer: str):
    def style(feature):
        p = feature["properties"]
        if layer == "cells":
            colour = RISK_BAND_STYLES[p["band"]].color if p.get("band") in RISK_BAND_STYLES else "#cccccc"
            return {"color": "#ffffff", "weight": 0.5, "fillColor": colour, "fillOpacity": 0.5}
        if layer == "area":
            return {"color": AREA, "weight": 2.5, "fill": False}
        return {"color": OUTLINE, "weight": 0.8, "fillColor": LAND, "fillOpacity": 1.0}
    return style


def _point_colour(layer: str, p: dict) -> str:
    if layer == "hazard_sources":
        return HAZARD_GRADE_COLORS.get(str(p.get("grade")), "#888888")
    if layer == "trucks":
        return TRUCK_COLORS.get(p.get("cargo_state"), "#adb5bd")
    if layer == "monitoring_points":
        return ALARM if p.get("state") != "normal" else "#4cc9f0"
    if layer == "sensitive_sites":
        return SITE
    return _LEVEL_COLOURS.get(p.get("level"), "#000000")


def snapshot_html(snapshot) -> bytes:
    from spatial.snapshot import FIGURE_LABELS

    doc = snapshot_features(snapshot)
    w, s, e, n = snapshot.area.geometry.bounds
    fmap = folium.Map(location=[(s + n) / 2, (w + e) / 2], tiles=None, zoom_start=10, control_scale=True,
                      prefer_canvas=True)
    fmap.default_js = []  # inlined below; jQuery, Bootstrap and awesome-markers are not needed
    fmap.default_css = []
    root = fmap.get_root()
    root.header.add_child(folium.Element(f"<style>{_vendor('leaflet.css')}</style>"), name="leaflet_css_inline")
    root.header.add_child(folium.Element(f"<script>{_vendor('leaflet.js')}</script>"), name="leaflet_js_inline")
    root.header.add_child(folium.Element("<style>html,body{margin:0;height:100%;background:#ffffff}"
                                         ".leaflet-container{background:#ffffff}"
                                         "#hazmap-figures{position:absolute;top:10px;right:10px;z-index:1000;"
                                         "background:rgba(255,255,255,.92);padding:6px 10px;font:12px sans-serif;"
                                         "max-height:90%;overflow:auto;border:1px solid #999}"
                                         "#hazmap-figures td{padding:0 6px}</style>"), name="hazmap_css")
    if snapshot.context is not None and len(snapshot.context):
        folium.GeoJson(snapshot.context.to_json(), name="行政区 districts", style_function=_style("district"),
                       tooltip=folium.GeoJsonTooltip(["name"], labels=False)).add_to(fmap)
    by_layer: dict[str, list] = {}
    for feature in doc["features"]:
        by_layer.setdefault(feature["properties"]["layer"], []).append(feature)
    for layer in ("cells", "area"):
        if by_layer.get(layer):
            fields = [k for k in by_layer[layer][0]["properties"] if k != "layer"]
            folium.GeoJson({"type": "FeatureCollection", "features": by_layer[layer]}, name=layer,
                           style_function=_style(layer),
                           tooltip=folium.GeoJsonTooltip(fields)).add_to(fmap)
    for layer in ("sensitive_sites", "trucks", "monitoring_points", "hazard_sources", "incidents"):
        features = by_layer.get(layer, [])
        if not features:
            continue
        group = folium.FeatureGroup(name=layer).add_to(fmap)
        for feature in features:
            p = feature["properties"]
            lon, lat = feature["geometry"]["coordinates"]
            text = "<br>".join(f"{html.escape(str(k))}: {html.escape(fmt(v))}" for k, v in p.items())
            folium.CircleMarker([lat, lon], radius=7 if layer in ("hazard_sources", "incidents") else 4,
                                color="#222222", weight=0.8, fill=True, fill_color=_point_colour(layer, p),
                                fill_opacity=0.9, tooltip=text, class_name=f"hazmap-{layer}").add_to(group)
    folium.LayerControl(collapsed=True).add_to(fmap)
    fmap.fit_bounds([[s, w], [n, e]])
    rows = "".join(f'<tr data-key="{k}"><td>{html.escape(FIGURE_LABELS[k][0])}</td>'
                   f"<td>{html.escape(FIGURE_LABELS[k][1])}</td><td class=\"value\">{fmt(v)}</td></tr>"
                   for k, v in snapshot.figures.items())
    note = f"<div>{html.escape(snapshot.area.note)}</div>" if snapshot.area.note else ""
    root.html.add_child(folium.Element(
        f'<div id="hazmap-figures"><b>区域风险快照 {html.escape(snapshot.area.name)}</b>'
        f"<div>{local_time(snapshot.at)} (Asia/Shanghai)</div>{note}<table>{rows}</table></div>"))
    text = root.render()
    text = _REMOTE.sub("", text)  # a CDN link any folium element still adds: nothing may leave the file
    return text.encode("utf-8")
