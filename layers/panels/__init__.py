"""Drill-down panels, one module per kind: pure builders from the data data/drilldown.py gathers to
Dash components (fields, Plotly charts, related entities as links that move the panel and the map,
a back button). `build_panel(layer, data, language, history)` picks the kind's builder."""

from __future__ import annotations

from layers.panels import enterprise, hazard_source, incident, monitoring_point, sensitive_site, truck, wash_station
from layers.panels.charts import CHART_TYPE
from layers.panels.common import BACK_N, FOCUS_TYPE, HISTORY_MAX, HISTORY_TYPE, LINK_TYPE, WINDOW_TYPE

BUILDERS = {
    "vehicles": truck.build, "hazard_sources": hazard_source.build, "monitoring_points": monitoring_point.build,
    "entities": enterprise.build, "sensitive_sites": sensitive_site.build, "wash_stations": wash_station.build,
    "incidents": incident.build,
}
KINDS = tuple(BUILDERS)


def build_panel(layer: str, data: dict, language: str, history: list | None = None, head: list | None = None,
                actions: tuple[str, ...] = ()) -> list:
    """The panel's children for one entity; `history`: the (layer, id) pairs opened before it;
    `head`: the entity's attribute panel (kind, title, every field the World holds, its live rows,
    child tables), which then replaces the panel's own kind and title, so fields later data brings
    take their place in the same panel. `actions`: what the user may do on an incident (its panel only)."""
    if layer not in BUILDERS:
        raise LookupError(f"no drill-down panel for layer {layer!r}")
    history = [list(h) for h in (history or [])]
    panel = incident.build(data, language, history, tuple(actions)) if layer == "incidents" else \
        BUILDERS[layer](data, language, history)
    if not head:
        return panel
    own = ("hz-panel-layer", "hz-panel-title")
    back = [n for n in panel if getattr(n, "className", None) == "hz-panel-back"]
    rest = [n for n in panel if getattr(n, "className", None) not in (*own, "hz-panel-back")]
    return [*back, *head, *rest]


def window_figure(layer: str, data: dict, language: str):
    """A chart redrawn for another time window (its switch in the panel): the truck's speed
    (data/drilldown.speed_series), the point's readings (data/drilldown.chart_window's row and readings)."""
    if layer == "vehicles":
        return truck.speed_chart(data, language)
    if layer == "monitoring_points":
        return monitoring_point.readings_chart(data["row"], data["readings"], language)
    raise LookupError(f"no chart window for layer {layer!r}")


def next_history(history: list | None, layer: str, feature_id: str, back: bool) -> list:
    """The history the next panel gets, from the one the shown panel stores (which ends with the
    shown entity): the back button drops the shown entity and the one it goes back to (the builder
    appends the entity it shows again); the shown entity opened again (a refresh after an action)
    drops itself; anything else keeps it, so back returns to the shown one."""
    history = [list(h) for h in (history or [])]
    if back:
        history = history[:-1]
    if history and history[-1] == [layer, str(feature_id)]:  # back to it, or the shown one opened again
        history = history[:-1]
    return history[-HISTORY_MAX:]


__all__ = ["BACK_N", "BUILDERS", "CHART_TYPE", "FOCUS_TYPE", "HISTORY_TYPE", "KINDS", "LINK_TYPE", "WINDOW_TYPE",
           "build_panel", "next_history", "window_figure"]
