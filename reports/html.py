"""A self-contained HTML map of a snapshot (folium): Leaflet's script and styles inlined from
reports/vendor/leaflet (folium links a CDN by default), folium's other CDN assets (jQuery,
Bootstrap, awesome-markers) left out, no tile layer: it opens with the network blocked."""

from __future__ import annotations

import html
import json
import re
from importlib.resources import files

import folium

from layers.style import HAZARD_GRADE_COLORS, RISK_BAND_STYLES
from reports.common import fmt, local_time
from reports.geo import snapshot_features
from reports.maps import ALARM, AREA, LAND, OUTLINE, SITE, TRUCK_COLORS
from spatial.incidents.levels import LEVELS

_REMOTE = re.compile(r'<(?:script|link)[^>]+(?:src|href)\s*=\s*"(?:https?:)?//[^"]*"[^>]*>(?:\s*</script>)?', re.I)
_LEAFLET_MARK = "<!-- hazmap: leaflet inlined here -->"
_LAYERS_MARK = "/* hazmap: layers here */"
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


_SCRIPT = """
window.addEventListener("load", function () {
  var map = %(map)s;
  var layers = %(layers)s;
  var order = %(order)s;
  function esc(v) {
    return String(v).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; });
  }
  function text(p) {
    var out = [];
    for (var k in p) { if (p[k] !== null && p[k] !== "") out.push(esc(k) + ": " + esc(p[k])); }
    return out.join("<br>");
  }
  var overlays = {};
  order.forEach(function (name) {
    var doc = layers[name];
    if (!doc || !doc.features.length) return;
    var layer = L.geoJSON(doc, {
      pointToLayer: function (f, latlng) {
        return L.circleMarker(latlng, {radius: f.hazmap.radius, color: "#222222", weight: 0.8,
                                       fillColor: f.hazmap.colour, fillOpacity: 0.9});
      },
      style: function (f) { return f.hazmap.style; },
      onEachFeature: function (f, l) { if (name !== "districts") l.bindTooltip(text(f.properties)); }
    }).addTo(map);
    overlays[name] = layer;
  });
  L.control.layers(null, overlays, {collapsed: true}).addTo(map);
});
"""


def snapshot_html(snapshot) -> bytes:
    """The map: one Leaflet GeoJSON layer per table drawn by a few lines of script (a folium
    element per feature costs seconds at a district's thousands of points)."""
    from spatial.snapshot import FIGURE_LABELS

    doc = snapshot_features(snapshot)
    w, s, e, n = snapshot.area.geometry.bounds
    fmap = folium.Map(location=[(s + n) / 2, (w + e) / 2], tiles=None, zoom_start=10, control_scale=True,
                      prefer_canvas=True)
    fmap.default_js = []  # inlined below; jQuery, Bootstrap and awesome-markers are not needed
    fmap.default_css = []
    root = fmap.get_root()
    # big texts go in after rendering: an Element's text is compiled as a Jinja template
    root.header.add_child(folium.Element(_LEAFLET_MARK), name="leaflet_inline")
    root.header.add_child(folium.Element("<style>html,body{margin:0;height:100%;background:#ffffff}"
                                         ".leaflet-container{background:#ffffff}"
                                         "#hazmap-figures{position:absolute;top:10px;right:10px;z-index:1000;"
                                         "background:rgba(255,255,255,.92);padding:6px 10px;font:12px sans-serif;"
                                         "max-height:90%;overflow:auto;border:1px solid #999}"
                                         "#hazmap-figures td{padding:0 6px}</style>"), name="hazmap_css")
    layers: dict[str, dict] = {}
    if snapshot.context is not None and len(snapshot.context):
        context = snapshot.context.assign(geometry=snapshot.context.geometry.simplify(0.0005))
        districts = json.loads(context.to_json(drop_id=True))
        for f in districts["features"]:
            f["hazmap"] = {"style": _style("district")(f)}
        layers["districts"] = districts
    for feature in doc["features"]:
        p = feature["properties"]
        layer = p["layer"]
        if feature["geometry"]["type"] == "Point":
            feature["hazmap"] = {"colour": _point_colour(layer, p),
                                 "radius": 7 if layer in ("hazard_sources", "incidents") else 4}
        else:
            feature["hazmap"] = {"style": _style(layer)(feature)}
        layers.setdefault(layer, {"type": "FeatureCollection", "features": []})["features"].append(feature)
    order = ["districts", "cells", "area", "sensitive_sites", "trucks", "monitoring_points", "hazard_sources",
             "incidents"]
    fmap.fit_bounds([[s, w], [n, e]])
    rows = "".join(f'<tr data-key="{k}"><td>{html.escape(FIGURE_LABELS[k][0])}</td>'
                   f"<td>{html.escape(FIGURE_LABELS[k][1])}</td><td class=\"value\">{fmt(v)}</td></tr>"
                   for k, v in snapshot.figures.items())
    note = f"<div>{html.escape(snapshot.area.note)}</div>" if snapshot.area.note else ""
    root.html.add_child(folium.Element(
        f'<div id="hazmap-figures"><b>区域风险快照 {html.escape(snapshot.area.name)}</b>'
        f"<div>{local_time(snapshot.at)} (Asia/Shanghai)</div>{note}<table>{rows}</table></div>"))
    data = json.dumps(layers, ensure_ascii=False, allow_nan=False).replace("</", "<\\/")  # no early </script>
    root.script.add_child(folium.Element(_LAYERS_MARK), name="hazmap_layers")
    text = root.render()
    text = _REMOTE.sub("", text)  # a CDN link any folium element still adds: nothing may leave the file
    text = text.replace(_LEAFLET_MARK, f"<style>{_vendor('leaflet.css')}</style>\n<script>{_vendor('leaflet.js')}</script>", 1)
    text = text.replace(_LAYERS_MARK, _SCRIPT % {"map": fmap.get_name(), "layers": data, "order": json.dumps(order)}, 1)
    return text.encode("utf-8")
