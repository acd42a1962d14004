"""The wall's risk grid: `spatial/risk.py`'s scores as small, versioned payloads for the
canvas layer in assets/hazmap_grid.js, and the live inputs the score takes, built from what the
app holds (World + LiveState).

Payload (`GridFeed.frame(res, since)`): the grid's version and, per cell that changed after
`since` at resolution `res` (all cells for since 0, a version this grid never had, or a
resolution asked for the first time: `full: true`), its H3 id (hex), score, band code and the
five parts (points, one decimal). The browser draws each hexagon from its id with h3-js (its
boundary never travels) and drops a cell whose score fell to 0. Only cells with a changed
child travel, as the trucks do.

The live inputs, built here because the app is what has them:
- trucks: `LiveState.positions` with each truck's cargo state from `LiveState.cargo` (the rules'
  waybill stage: loaded, empty_uncleaned, empty_clean, unknown, and the waybill it comes from,
  whose most acute goods (class factor) give the class and UN number: an uncleaned tank weighs by
  its residue). A truck the engine has not judged yet falls back to the World: a vehicle with an
  active waybill is `loaded` with its goods, any other `unknown`.
- alarms: monitoring points whose live status is a level alarm (layers.live.point_statuses),
  severity 1 for high-high, else the open episode's severity;
- incidents: every subject's open alert episodes at their worst severity and where that
  episode is (`LiveState.alerts`), the stop rule's own episodes left out as on the live layer.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from layers.live import (
    P_ALARM,
    P_ALARM_HIGH,
    LiveEncodingSettings,
    _alert_columns,
    point_statuses,
)
from layers.style import RISK_BAND_STYLES, LegendEntry, LegendGroup, Text, text
from spatial.h3cells import (
    H3_RES_GRID_CITY,
    H3_RES_GRID_FINEST,
    H3_RES_GRID_DISTRICT,
    H3_RES_GRID_STREET,
    H3_RES_RISK_GRID,
    RISK_GRID_RESOLUTIONS,
    cell_hex,
    cell_ints,
    parent_cells,
)
from spatial.model import NO_ALERT_SEVERITY, LiveState, World
from spatial.risk import BANDS, PARTS, TRUCK_COLUMNS, RiskGrid, RiskWeights, class_factors, explain

GRID_TITLE: Text = ("风险网格", "Risk grid")
PART_LABELS: dict[str, Text] = {
    "hazard": ("重大危险源", "Hazard sources"),
    "alarms": ("监测报警", "Point alarms"),
    "trucks": ("在途危化车辆", "Trucks present"),
    "exposure": ("敏感目标暴露", "Sites exposed"),
    "incidents": ("未关闭告警", "Open alerts"),
}
SCORE_LABEL: Text = ("风险分值", "Risk score")
CELL_LABEL: Text = ("网格", "Cell")
CONTENTS_LABEL: Text = ("网格内", "In this cell")
VIA_LABEL: Text = ("来自", "from")
POLL_INTERVAL_MS = 2000
# The map's zoom from which each resolution draws (the lowest first): ~3 km hexagons over the
# city, ~0.17 km at street level. A zoom below the first still draws the first.
ZOOM_RESOLUTIONS: tuple[tuple[float, int], ...] = (
    (0.0, H3_RES_GRID_CITY), (10.5, H3_RES_GRID_DISTRICT), (12.0, H3_RES_RISK_GRID), (13.5, H3_RES_GRID_STREET))
_ROUND = 1  # decimals of the points on the wire
_MEMO_VERSIONS = 4096


def resolution_for_zoom(zoom: float) -> int:
    """The grid resolution drawn at a map zoom (ZOOM_RESOLUTIONS)."""
    res = ZOOM_RESOLUTIONS[0][1]
    for lowest, r in ZOOM_RESOLUTIONS:
        if zoom >= lowest:
            res = r
    return res


def cargo_by_vehicle(world: World, weights: RiskWeights | None = None, at: pd.Timestamp | None = None
                     ) -> pd.DataFrame:
    """Per vehicle of the World: cargo_state, hazard_class, un_number (see the module docstring).
    With `at`, the waybills on the road at that time (planned departure at or before it, not
    yet unloaded or arrived) instead of those whose status is active."""
    weights = weights or RiskWeights()
    ids = world.vehicles["id"].astype(str).to_numpy(object)
    out = pd.DataFrame({"cargo_state": "unknown", "hazard_class": None, "un_number": None},
                       index=pd.Index(ids, name="vehicle_id"))
    wb, goods = world.waybills, world.waybill_goods
    if not len(wb) or not len(goods):
        return out
    if at is None:
        on_road = (wb["status"].astype(str) == "active").to_numpy()
    else:
        end = wb["actual_unloading"] if "actual_unloading" in wb.columns else pd.Series(pd.NaT, index=wb.index)
        end = pd.to_datetime(end, utc=True).fillna(pd.to_datetime(wb["planned_arrival"], utc=True))
        on_road = ((pd.to_datetime(wb["planned_departure"], utc=True) <= at) & (end > at)).to_numpy()
    active = wb[on_road][["id", "vehicle_id"]].rename(columns={"id": "waybill_id"})
    g = goods.merge(active, on="waybill_id")
    if not len(g):
        return out
    g = g.assign(factor=class_factors(g["hazard_class"].to_numpy(object), weights))
    worst = g.sort_values(["vehicle_id", "factor"], ascending=[True, False], kind="stable") \
        .drop_duplicates("vehicle_id").set_index("vehicle_id")
    worst = worst[worst.index.isin(out.index)]
    out.loc[worst.index, "cargo_state"] = "loaded"
    out.loc[worst.index, "hazard_class"] = worst["hazard_class"].astype(str)
    out.loc[worst.index, "un_number"] = worst["un_number"].astype(str)
    return out


def goods_by_waybill(world: World, weights: RiskWeights | None = None) -> pd.DataFrame:
    """Per waybill id: hazard_class and un_number of its most acute goods (class factor)."""
    goods = world.waybill_goods
    if not len(goods):
        return pd.DataFrame({"hazard_class": [], "un_number": []}, index=pd.Index([], dtype=object, name="waybill_id"))
    g = goods.assign(factor=class_factors(goods["hazard_class"].to_numpy(object), weights or RiskWeights()))
    worst = g.sort_values(["waybill_id", "factor"], ascending=[True, False], kind="stable") \
        .drop_duplicates("waybill_id").set_index("waybill_id")
    return pd.DataFrame({c: worst[c].astype(str).to_numpy(object) for c in ("hazard_class", "un_number")},
                        index=pd.Index(worst.index.to_numpy(object), dtype=object, name="waybill_id"))


def trucks_frame(positions: pd.DataFrame, cargo: pd.DataFrame, live_cargo: pd.DataFrame | None = None,
                 goods: pd.DataFrame | None = None) -> pd.DataFrame:
    """TRUCK_COLUMNS for positions (indexed by vehicle id): the cargo state the engine gave
    (`live_cargo`: LiveState.cargo) with its waybill's `goods` (goods_by_waybill), else the
    World's `cargo` (cargo_by_vehicle); neither: unknown."""
    c = cargo.reindex(positions.index)
    state = c["cargo_state"].fillna("unknown").to_numpy(object, copy=True)
    hazard_class, un_number = c["hazard_class"].to_numpy(object, copy=True), c["un_number"].to_numpy(object, copy=True)
    if live_cargo is not None and len(live_cargo) and goods is not None:
        judged = live_cargo.reindex(positions.index)
        known = judged["cargo_state"].notna().to_numpy()
        of_waybill = goods.reindex(pd.Index(judged["waybill_id"].to_numpy(object), dtype=object))
        state[known] = judged["cargo_state"].to_numpy(object)[known]
        hazard_class[known] = of_waybill["hazard_class"].to_numpy(object)[known]
        un_number[known] = of_waybill["un_number"].to_numpy(object)[known]
    return _frame({
        "vehicle_id": positions.index.astype(str).to_numpy(object),
        "lon": pd.to_numeric(positions["lon"], errors="coerce").to_numpy("float64"),
        "lat": pd.to_numeric(positions["lat"], errors="coerce").to_numpy("float64"),
        "cargo_state": state,
        "hazard_class": hazard_class,
        "un_number": un_number,
    })


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Object columns kept as such (pandas would make them Arrow strings, which the score then
    converts back, at a cost per row)."""
    return pd.DataFrame({k: pd.Series(v, dtype=v.dtype) for k, v in columns.items()})


def alarms_frame(point_ids: pd.Index, lonlat: pd.DataFrame, state: LiveState) -> pd.DataFrame:
    """Subject rows of points (`lonlat` indexed by point id): severity 1 for a high-high
    alarm, the episode's for another level alarm, NaN (no alarm) otherwise."""
    status = point_statuses(point_ids, state.readings, state.alerts)
    _, severity, _ = _alert_columns(state.alerts, point_ids)
    sev = np.where(status == P_ALARM_HIGH, 1, np.where(status == P_ALARM, severity, np.nan)).astype("float64")
    sev[sev >= NO_ALERT_SEVERITY] = np.nan
    where = lonlat.reindex(point_ids)
    return _frame({"subject_id": point_ids.to_numpy(object), "lon": where["lon"].to_numpy("float64"),
                   "lat": where["lat"].to_numpy("float64"), "severity": sev})


def incidents_frame(alerts: pd.DataFrame, not_alert_rules: frozenset[str]) -> pd.DataFrame:
    """Subject rows of `LiveState.alerts` rows: worst severity while open, NaN once closed."""
    ids = alerts.index
    open_count, severity, _ = _alert_columns(alerts, ids, not_alert_rules)
    sev = np.where(open_count > 0, severity, np.nan).astype("float64")
    sev[sev >= NO_ALERT_SEVERITY] = np.nan
    return _frame({"subject_id": ids.astype(str).to_numpy(object),
                   "lon": pd.to_numeric(alerts["lon"], errors="coerce").to_numpy("float64"),
                   "lat": pd.to_numeric(alerts["lat"], errors="coerce").to_numpy("float64"),
                   "severity": sev})


def cells_payload(table: pd.DataFrame) -> dict:
    """Cells of a scores table (spatial.risk) as the screen takes them."""
    band_code = pd.Series(table["band"].to_numpy(object)).map({b: i for i, b in enumerate(BANDS)}) \
        .fillna(-1).astype("int64").to_numpy()
    return {
        "n": int(len(table)),
        "ids": cell_hex(table.index.to_numpy("uint64")),
        "score": np.round(table["score"].to_numpy("float64"), _ROUND).tolist(),
        "band": band_code.tolist(),
        "parts": np.round(table[list(PARTS)].to_numpy("float64"), _ROUND).tolist(),
    }


class GridFeed:
    """The grid of one World kept in step with a live source (anything with `snapshot()`),
    lazily: each request first applies what changed in the LiveState since the last one.
    Thread-safe."""

    def __init__(self, world: World, live=None, weights: RiskWeights | None = None,
                 live_settings: LiveEncodingSettings | None = None):
        self.weights = weights or RiskWeights()
        self.live = live
        self.live_settings = live_settings or LiveEncodingSettings()
        self.grid = RiskGrid(world, self.weights)
        self.cargo = cargo_by_vehicle(world, self.weights)
        self.goods = goods_by_waybill(world, self.weights)
        points = world.monitoring_points
        self.point_ids = pd.Index(points["id"].astype(str).to_numpy(object))
        self.point_lonlat = pd.DataFrame({"lon": points.geometry.x.to_numpy(), "lat": points.geometry.y.to_numpy()},
                                         index=self.point_ids)
        self._live_version = 0
        self._versions: set[int] = {self.grid.version}
        self._lock = threading.Lock()

    def sync(self, state: LiveState | None = None) -> int:
        """Apply the live changes since the last sync; returns the grid's version."""
        with self._lock:
            return self._sync(state)

    def _sync(self, state: LiveState | None) -> int:
        if state is None:
            if self.live is None:
                return self.grid.version
            state = self.live.snapshot()
        if state.version == self._live_version:
            return self.grid.version
        since = self._live_version if state.version > self._live_version else 0  # a restarted feed: all again
        changes = state.changes_since(since)
        moved = changes.positions
        if len(changes.cargo):  # a truck whose cargo state changed is scored again where it is
            moved = state.positions[state.positions.index.isin(changes.positions.index.union(changes.cargo.index))]
        trucks = trucks_frame(moved, self.cargo, state.cargo, self.goods) if len(moved) else None
        touched_points = self.point_ids.intersection(changes.readings.index.union(changes.alerts.index))
        alarms = alarms_frame(touched_points, self.point_lonlat, state) if len(touched_points) else None
        incidents = incidents_frame(changes.alerts, self.live_settings.not_alert_rules) if len(changes.alerts) \
            else None
        self.grid.apply(trucks=trucks, alarms=alarms, incidents=incidents)
        self._live_version = state.version
        self._versions.add(self.grid.version)
        if len(self._versions) > _MEMO_VERSIONS:
            self._versions = set(sorted(self._versions)[-_MEMO_VERSIONS:])
        return self.grid.version

    def frame(self, resolution: int, since: int = 0) -> dict:
        """The cells at `resolution` changed after `since` (see the module docstring)."""
        if resolution not in RISK_GRID_RESOLUTIONS:
            raise ValueError(f"res must be one of {RISK_GRID_RESOLUTIONS}, got {resolution!r}")
        if isinstance(since, bool) or not isinstance(since, (int, np.integer)) or since < 0:
            raise ValueError(f"since must be a whole number >= 0 (a version this screen received), got {since!r}")
        with self._lock:
            version = self._sync(None)
            full = since == 0 or since > version or since not in self._versions
            table = self.grid.scores(resolution, 0 if full else since)
        return {"version": int(version), "since": int(since), "full": bool(full), "res": int(resolution),
                "cells": cells_payload(table)}

    def cell(self, cell_hex_id: str, resolution: int) -> tuple[pd.Series | None, pd.DataFrame]:
        """One cell's parts (None when it scores 0) and its contributions (spatial.risk.explain)."""
        cell = np.uint64(int(cell_hex_id, 16))
        with self._lock:
            self._sync(None)
            table = self.grid.scores(resolution)
            items = explain(self.grid.rows(), cell, resolution)
        return (table.loc[cell] if cell in table.index else None), items


# -- points per cell: what the point layers show below the zoom where symbols can be told apart ---

# The layers counted and the overlays that show each (a monitoring point: its static layer or its
# live status); the live trucks come from the LiveState, the others from the World once.
COUNT_LAYERS: tuple[str, ...] = ("entities", "monitoring_points", "sensitive_sites", "vehicles")
COUNT_LABELS: dict[str, Text] = {"entities": ("涉危主体", "Entities"), "monitoring_points": ("监测点", "Points"),
                                 "sensitive_sites": ("敏感目标", "Sites"), "vehicles": ("车辆", "Trucks")}
# Cells a count is drawn in, by zoom (lowest first): ~9 km hexagons over the whole region, ~3 km
# (H3_RES_GRID_CITY) over the city: a label fits in each.
H3_RES_COUNTS_REGION = 5
COUNT_ZOOM_RESOLUTIONS: tuple[tuple[float, int], ...] = ((0.0, H3_RES_COUNTS_REGION), (9.5, H3_RES_GRID_CITY))
COUNT_RESOLUTIONS = tuple(r for _, r in COUNT_ZOOM_RESOLUTIONS)


class PointCounts:
    """Points per H3 cell of each COUNT_LAYERS layer: the World's (a polygon at its point on
    surface, where the static canvas draws it) indexed once, the trucks' from the live source's
    newest positions. Thread-safe (nothing shared is changed after __init__)."""

    def __init__(self, world: World, live=None):
        import shapely

        self.live = live
        self._static: dict[str, tuple[pd.Index, np.ndarray]] = {}
        for name in COUNT_LAYERS[:-1]:
            frame = world.table(name)
            geoms = frame.geometry.to_numpy()
            anchor = np.where(shapely.get_type_id(geoms) == 0, geoms, shapely.point_on_surface(geoms)) \
                if len(geoms) else geoms
            cells = cell_ints(shapely.get_x(anchor), shapely.get_y(anchor), H3_RES_GRID_FINEST) if len(geoms) \
                else np.zeros(0, "uint64")
            self._static[name] = (pd.Index(frame["id"].astype(str).to_numpy(object), dtype=object), cells)

    def frame(self, resolution: int, keep=None) -> dict:
        """{"res", "version" (the live state's), "layers": {name: {"ids": hex cells, "n": counts}}};
        `keep(name, ids)` -> a boolean mask of what the user may see (None: everything)."""
        if resolution not in COUNT_RESOLUTIONS:
            raise ValueError(f"res must be one of {COUNT_RESOLUTIONS}, got {resolution!r}")
        layers, version = {}, 0
        for name, (ids, cells) in self._static.items():
            layers[name] = _counted(cells, resolution, keep(name, ids) if keep else None)
        if self.live is not None:
            state = self.live.snapshot()
            version = int(state.version)
            where = state.positions
            ids = pd.Index(where.index.astype(str).to_numpy(object), dtype=object)
            cells = cell_ints(pd.to_numeric(where["lon"], errors="coerce").to_numpy("float64"),
                              pd.to_numeric(where["lat"], errors="coerce").to_numpy("float64"), H3_RES_GRID_FINEST)
            layers["vehicles"] = _counted(cells, resolution, keep("vehicles", ids) if keep else None)
        return {"res": int(resolution), "version": version, "layers": layers}


def _counted(cells: np.ndarray, resolution: int, mask) -> dict:
    if mask is not None:
        cells = cells[np.asarray(mask, bool)]
    cells = parent_cells(cells[cells != 0], resolution)
    uniq, n = np.unique(cells, return_counts=True)
    return {"ids": cell_hex(uniq), "n": n.tolist()}


# -- the screen's texts and colours of the grid ---------------------------------------------------

if set(RISK_BAND_STYLES) != set(BANDS):
    raise RuntimeError("layers.style RISK_BAND_STYLES must style exactly spatial.risk BANDS")


def screen_config(language: str, state_url: str, symbol_min_zoom: float = 12.0,
                  counts_url: str | None = None, count_titles: dict[str, list[str]] | None = None) -> dict:
    """What assets/hazmap_grid.js needs: where to poll, how often, which resolution at which
    zoom, the band colours (layers/style.py) and the hover's texts; and what
    assets/hazmap_counts.js needs: below `symbol_min_zoom` the point layers hide their symbols
    and it draws their counts per cell from `counts_url`, each layer counted while one of its
    overlays (`count_titles`) is shown."""
    return {
        "counts": {
            "url": counts_url or state_url.rsplit("/", 1)[0] + "/counts", "pollMs": POLL_INTERVAL_MS,
            "symbolMinZoom": float(symbol_min_zoom),
            "zoomResolutions": [[z, r] for z, r in COUNT_ZOOM_RESOLUTIONS],
            "layers": [{"name": name, "label": text(COUNT_LABELS[name], language),
                        "titles": list((count_titles or {}).get(name, []))} for name in COUNT_LAYERS],
        },
        "stateUrl": state_url,
        "pollMs": POLL_INTERVAL_MS,
        "title": text(GRID_TITLE, language),
        "zoomResolutions": [[z, r] for z, r in ZOOM_RESOLUTIONS],
        "bands": [{"name": b, "color": RISK_BAND_STYLES[b].color, "opacity": RISK_BAND_STYLES[b].fill_opacity,
                   "label": text(RISK_BAND_STYLES[b].label, language)} for b in BANDS],
        "parts": list(PARTS),
        "partLabels": [text(PART_LABELS[p], language) for p in PARTS],
        "scoreLabel": text(SCORE_LABEL, language),
    }


def grid_legend(language: str) -> LegendGroup:
    return LegendGroup("risk_grid", text(GRID_TITLE, language), tuple(
        LegendEntry(text(RISK_BAND_STYLES[b].label, language), RISK_BAND_STYLES[b].color, "area")
        for b in reversed(BANDS)))  # red first


# -- the side panel of a clicked cell ---------------------------------------------------------------

GRID_ITEM_TYPE = "hz-grid-item"  # pattern-matching id type of an entity link in the cell's panel
ITEM_LAYERS = {"hazard_sources": "hazard_sources", "monitoring_points": "monitoring_points",
               "vehicles": "vehicles", "sensitive_sites": "sensitive_sites"}
KIND_LABELS: dict[str, Text] = {
    "hazard_sources": ("重大危险源", "Hazard source"), "monitoring_points": ("监测点", "Monitoring point"),
    "vehicles": ("车辆", "Truck"), "sensitive_sites": ("敏感目标", "Sensitive site"),
    "incidents": ("告警对象", "Alerted subject"),
}
_SUBJECT_LAYERS = (("VEH-", "vehicles"), ("MP-", "monitoring_points"), ("HS-", "hazard_sources"),
                   ("SITE-", "sensitive_sites"))
PANEL_ITEMS_MAX = 40


def _layer_of(kind: str, item_id: str) -> str | None:
    if kind in ITEM_LAYERS:
        return ITEM_LAYERS[kind]
    return next((layer for prefix, layer in _SUBJECT_LAYERS if item_id.startswith(prefix)), None)


def panel_children(feed: GridFeed, cell_hex_id: str, resolution: int, language: str,
                   visible: frozenset[str] | None = None) -> list:
    """The side panel of one cell: its band and score, each part, and what lies in it (largest
    contribution first), each a link that opens the entity. With `visible` (the regulated
    features one user may see, app/permissions.py) the others are not listed, nor named as a
    via; the sensitive sites (the city's) stay."""
    from dash import html

    row, items = feed.cell(cell_hex_id, resolution)
    if visible is not None and len(items):
        wanted = list(visible)
        items = items[(items["kind"] == "sensitive_sites").to_numpy() | items["item_id"].astype(str).isin(wanted).to_numpy()]
        via = items["via"].fillna("").astype(str)
        items = items.assign(via=via.where(via.isin(wanted) | (via == ""), ""))
    score = 0.0 if row is None else float(row["score"])
    band = "" if row is None else str(row["band"])
    title = f"{text(CELL_LABEL, language)} {cell_hex_id} · res {resolution}"
    head = [html.Div(text(GRID_TITLE, language), className="hz-panel-layer"), html.H2(title, className="hz-panel-title")]
    band_text = text(RISK_BAND_STYLES[band].label, language) if band else "—"
    fields = [(text(SCORE_LABEL, language), f"{score:.1f} · {band_text}")] + [
        (text(PART_LABELS[p], language), f"{0.0 if row is None else float(row[p]):.1f}") for p in PARTS]
    children = head + [html.Table(className="hz-panel-fields hz-grid-parts", children=html.Tbody([
        html.Tr([html.Th(label), html.Td(value)]) for label, value in fields]))]
    if len(items):
        rows = []
        for n, item in enumerate(items.head(PANEL_ITEMS_MAX).to_dict("records")):
            layer = _layer_of(str(item["kind"]), str(item["item_id"]))
            name = str(item["item_id"])
            link = html.A(name, href="#", className="hz-grid-link",
                          id={"type": GRID_ITEM_TYPE, "layer": layer, "id": name, "n": 2 * n}) if layer else name
            via = str(item["via"])
            via_layer = _layer_of("", via) if via else None
            via_cell = [] if not via else [f" {text(VIA_LABEL, language)} ", html.A(
                via, href="#", className="hz-grid-link",
                id={"type": GRID_ITEM_TYPE, "layer": via_layer, "id": via, "n": 2 * n + 1})
                if via_layer else via]
            rows.append(html.Tr([html.Td(text(PART_LABELS[item["part"]], language)),
                                 html.Td([link, *via_cell]), html.Td(f"{item['points']:.1f}")]))
        children += [html.H3(f"{text(CONTENTS_LABEL, language)} ({len(items)})"),
                     html.Table(className="hz-panel-children hz-grid-items", children=html.Tbody(rows))]
    return children
