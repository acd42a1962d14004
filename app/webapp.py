"""The Dash app factory: the wall-screen map of one World.

`create_app(settings, world, world_version, live)` builds every layer's GeoJSON once (layers/),
serves each by URL from `/layers/<world_version>/<layer>.geojson` (gzip when the browser
takes it, cached for good since the URL changes with the world), and lays out the map, the
layers control, the legend and the details panel. Callbacks stay thin: formatting is in
layers/details.py, colours in layers/style.py, drawing in assets/hazmap_map.js.

With a live source (anything with `snapshot() -> LiveState`), two more routes feed the
canvas layer of assets/hazmap_live.js (payloads: layers/live.py):
`/live/<world_version>/static.json` (vehicle and point lists, once; cached for good) and
`/live/<world_version>/state?since=<version>` (what changed since the screen's last
version, or everything; never cached). The trucks and point statuses are two overlays,
shown by default, and the header shows the feed's clock next to the wall clock. A truck
opened in the details panel (from the live canvas or the vehicles layer) gets its trail of
the last 2 h drawn from `/live/<world_version>/trail/<vehicle_id>` (never cached, re-fetched
with every poll while it stays selected) until the panel shows something else or closes.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

import dash
import dash_leaflet as dl
import flask
import pandas as pd
from dash import ALL, MATCH, ClientsideFunction, Input, Output, State, ctx, dcc, html
from dash_extensions.javascript import Namespace

from app.i18n import COUNTED_LAYERS, other_language, ui
from app.api import may_see
from app.auth import request_visible
from app.permissions import PUBLIC_LAYERS, Scopes
from app.ops import IncidentFigures, add_ops_routes
from app.screen_reports import add_snapshot_callbacks, draw_control, snapshot_panel
from app.settings import Settings
from assets import ASSETS_DIR  # package data: found in a checkout and in an installed wheel alike
from layers.catalog import (
    LAYERS,
    Payload,
    build_payloads,
    class_keys_present,
    map_layer,
    world_bounds,
)
from layers.details import FeatureDetails, FeatureDirectory
from layers.display_crs import leaflet_crs
from layers.panels import BACK_N as PANEL_BACK_N, HISTORY_TYPE as PANEL_HISTORY_TYPE
from layers.panels import KINDS as PANEL_KINDS, build_panel, next_history
from layers.panels import CHART_TYPE as PANEL_CHART_TYPE, WINDOW_TYPE as PANEL_WINDOW_TYPE, \
    window_figure as panel_window_figure
from layers.panels.impact import LAYER as IMPACT_LAYER, TEXTS_TYPE as IMPACT_TEXTS_TYPE, TICK_TYPE as IMPACT_TICK_TYPE
from layers.panels.impact import build as build_impact, texts_table as impact_texts_table
from layers.grid import GRID_ITEM_TYPE, GRID_TITLE, GridFeed, PointCounts, grid_legend, panel_children as grid_panel_children
from layers.grid import screen_config as grid_screen_config
from layers.live import (
    FEED_TIME_LABEL,
    LIVE_POINTS_TITLE,
    LIVE_SECTION_TITLE,
    LIVE_TRUCKS_TITLE,
    LiveEncoder,
    live_legend,
    live_rows,
    screen_config,
)
from layers.header import TICKER_LABELS, header_children, header_figures, incident_items
from layers.search import NO_HITS, SEARCH_PLACEHOLDER, SearchIndex
from layers.static_canvas import CANVAS_LAYERS, build_canvas_payloads, canvas_config, canvas_payload
from layers.vector_canvas import VECTOR_LAYERS, ZOOM_BANDS, build_vector_payloads, vector_config, vector_payloads
from layers.geojson import feature_collection
from layers.style import BASE_HIDEOUT, LANGUAGES, LegendGroup, layer_style, legend, text
from spatial.model import LAYER_NAMES, LiveState, World
from spatial.risk import weights_from

log = logging.getLogger(__name__)

LANGUAGE_COOKIE = "hazmap_language"
_VERSION_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Versioned URLs never change content: let browsers keep them for a year.
_LAYER_CACHE_CONTROL = "public, max-age=31536000, immutable"
_SINCE_PATTERN = re.compile(r"[0-9]{1,18}")
_VEHICLE_ID_PATTERN = re.compile(r"[\w.:-]{1,128}")  # letters of any script, digits, '.', '_', ':', '-'
_LIVE_GZIP_LEVEL = 5  # a poll's payload is small: fast beats the last few per cent

_js = Namespace("hazmap", "map")
_PRELOAD_SCRIPT = "hazmap_preload.js"
_LEAFLET_CHUNKS = ("async-GeoJSON.js", "async-EditControl.ts.js")
_REGENERATOR_SCRIPT = "regenerator-runtime.min.js"
_STATIC_WORKER = "hazmap_static_worker.js"  # started by assets/hazmap_static.js as a worker
_POLYFILL_TAG = re.compile(r'<script src="[^"]*/polyfill@[^"]*"></script>')
# Dash serves dash_table's bundle to every page; no page of the app has a table of it (tests/browser/test_preload.py)
_DASH_TABLE_TAG = re.compile(r'<script src="[^"]*/dash/dash_table/bundle[^"]*"></script>')
_HEADER_SHARE = 0.124  # of the window's height above the map at 1920x1080 (and about so at 3840x2160)
LAYER_ID_TYPE = "hz-layer"


def create_app(settings: Settings, world: World, world_version: str, live=None, people=None,
               store=None) -> dash.Dash:
    """The wall-screen app for `world`. `world_version` (a short hash or counter, letters,
    digits, `.`, `_`, `-`) goes into every layer URL, so a new world is never shown from a
    browser's cache of the old one. `live`: the live source (`snapshot()` returns a copy of
    the LiveState, safe to read), or None for a screen without live trucks."""
    if not _VERSION_PATTERN.fullmatch(world_version):
        raise ValueError(f"world_version must be 1-64 letters, digits, '.', '_' or '-', got {world_version!r}")
    if settings.language not in LANGUAGES:
        raise ValueError(f"settings.language must be one of {LANGUAGES}, got {settings.language!r}")
    if live is not None and not callable(getattr(live, "snapshot", None)):
        raise TypeError(f"live must have a snapshot() method returning a LiveState, got {type(live).__name__}")

    started = time.perf_counter()
    payloads = build_payloads(world)
    log.info(
        "built %d layer payloads (%.1f MB, %.1f MB gzipped) in %.2f s",
        len(payloads),
        sum(len(p.body) for p in payloads.values()) / 1e6,
        sum(len(p.gzipped) for p in payloads.values()) / 1e6,
        time.perf_counter() - started,
    )
    web = dash.Dash(
        __name__,
        assets_folder=str(ASSETS_DIR),
        title=ui("title", settings.language),
        update_title=None,
        serve_locally=True,
        # inlined in the page instead (_preloading_index, _regenerator_for_polyfill)
        # (the static canvas's worker is started by assets/hazmap_static.js, not run as a page script)
        assets_ignore="|".join(re.escape(name) for name in (_PRELOAD_SCRIPT, _REGENERATOR_SCRIPT, _STATIC_WORKER)),
    )
    web.server.after_request(_cross_origin_isolated)
    _regenerator_for_polyfill(web)
    encoder = LiveEncoder(world) if live is not None else None
    screen = _Screen(settings, world, world_version, web.config.requests_pathname_prefix, live)
    # the risk grid (layers/grid.py); live parts only with a live source
    screen.grid = GridFeed(world, live, weights=weights_from(settings.risk_weights))
    # the drill-down panels' pings, readings, incidents (`store`: a screen without people, as the bench's)
    screen.store = people.store if people is not None else store
    screen.world = world
    web.index_string = _preloading_index(web.index_string, screen)  # the payloads' fetches start with the page
    # who sees what (app/permissions.py Scopes): the routes below narrow to it, the API reads it
    web.server.extensions["hazmap_scopes"] = Scopes(world, people.store) if people is not None else None
    _add_layer_route(web, world_version, payloads, world)
    _add_canvas_route(web, world_version, build_canvas_payloads(world), world)  # layers/static_canvas.py
    _add_vector_route(web, world_version, build_vector_payloads(world), world)  # layers/vector_canvas.py
    _add_search_route(web, world_version, SearchIndex(world))  # layers/search.py
    _add_live_routes(web, world_version, live, encoder)
    _add_grid_route(web, world_version, screen.grid)
    _add_counts_route(web, world_version, PointCounts(world, live))  # counts per cell below the symbols' zoom
    _add_language_route(web)
    ops = add_ops_routes(web, settings, world, live)  # /api/health, /api/ready, /metrics, request ids
    web.server.extensions["hazmap_ops"] = ops  # Flask's place for an app's own objects
    # the live header's incident figures (layers/header.py), when the monitor runs the incident processor
    screen.today_incidents = (_TodayIncidentFigures(settings.resolved_database_url, world)
                              if getattr(ops, "incidents", None) is not None else None)
    # the ticker of new incidents and the queue of those not yet signed for (assets/hazmap_wall.js)
    screen.wall_incidents = (_WallIncidents(settings.resolved_database_url, world)
                             if screen.today_incidents is not None else None)
    _add_incidents_route(web, world_version, screen)
    if people is not None:  # logins, roles, CSRF, security headers and the REST API (app/auth.py, app/api/)
        from app.api import install_api
        from app.auth import install_auth

        install_auth(web, people, settings)
        install_api(web, people, world, settings)
    web.layout = screen.layout
    _add_callbacks(web, screen)
    add_snapshot_callbacks(web, settings, world, live, people)
    return web


class _Screen:
    """Everything the layout and callbacks need from one World, computed once."""

    def __init__(self, settings: Settings, world: World, world_version: str, url_prefix: str, live=None):
        self.settings = settings
        self.live = live
        self.url_prefix = url_prefix
        self.world_version = world_version
        self.directory = FeatureDirectory(world)
        self.present_classes = class_keys_present(world)
        self.bounds = world_bounds(world)
        self.counts = world.counts()

    def language(self) -> str:
        """The officer's choice (a cookie set by the switch), else the settings' language."""
        if flask.has_request_context():
            chosen = flask.request.cookies.get(LANGUAGE_COOKIE)
            if chosen in LANGUAGES:
                return chosen
        return self.settings.language

    def layer_url(self, name: str) -> str:
        return f"{self.url_prefix}layers/{self.world_version}/{name}.geojson"

    def canvas_url(self, name: str) -> str:
        return f"{self.url_prefix}canvas/{self.world_version}/{name}.json"

    def vector_url(self, name: str) -> str:
        return f"{self.url_prefix}vector/{self.world_version}/{name}.json"

    def live_url(self, name: str) -> str:
        return f"{self.url_prefix}live/{self.world_version}/{name}"

    def live_titles(self, language: str) -> list[str]:
        """Titles of the live overlays (none without a live source)."""
        if self.live is None:
            return []
        return [text(LIVE_TRUCKS_TITLE, language), text(LIVE_POINTS_TITLE, language)]

    def layout(self) -> html.Div:
        language = self.language()
        live_stores = [] if self.live is None else [dcc.Store(id="hz-live-config", data=screen_config(
            language, self.live_url("static.json"), self.live_url("state"), self.live_url("trail/")))]
        return html.Div(
            className="hz-root",
            lang="zh-CN" if language == "zh" else "en",
            **{"data-bounds": json.dumps(self.bounds)},  # fitted again once the layout settles (hazmap_wall.js)
            children=[
                dcc.Store(id="hz-language", data=language),
                # Overlay title -> layer file: what the clientside loader fetches when an
                # overlay that starts off is first switched on.
                dcc.Store(id="hz-layer-files", data={
                    "names": {text(layer.title, language): layer.name for layer in LAYERS},
                    "urls": {layer.name: self.layer_url(layer.name) for layer in LAYERS},
                }),
                # A click on the live canvas ({layer, id}), set by assets/hazmap_live.js.
                dcc.Store(id="hz-live-click"),
                # The risk grid (assets/hazmap_grid.js) and a click on one of its cells ({cell, res}).
                dcc.Store(id="hz-grid-config", data=grid_screen_config(
                    language, f"{self.url_prefix}grid/{self.world_version}/state",
                    self.settings.point_symbols_min_zoom, count_titles=_count_titles(language))),
                dcc.Store(id="hz-grid-click"),
                # The large static point layers' canvas (assets/hazmap_static.js).
                dcc.Store(id="hz-static-config", data=canvas_config(
                    language, {name: self.canvas_url(name) for name in CANVAS_LAYERS})),
                # The line and area layers' canvas (assets/hazmap_vector.js), the district outlines over them.
                dcc.Store(id="hz-vector-config", data=vector_config(
                    language, {name: self.vector_url(name) for name in VECTOR_LAYERS},
                    self.layer_url("district_outlines"))),
                *live_stores,
                self._header(language),
                html.Main(
                    className="hz-main",
                    children=[
                        self._map(language),
                        *self._incidents_aside(language),
                        # drawn by assets/hazmap_wall.js from this attribute (see _legend_data)
                        html.Aside(
                            id="hz-legend",
                            className="hz-legend",
                            **{"data-legend": _legend_data(
                                self.legend_for_titles(self._default_titles(language), language), language)},
                        ),
                        html.Aside(
                            id="hz-panel",
                            className="hz-panel",
                            children=[
                                html.Button("×", id="hz-panel-close", className="hz-panel-close",
                                            title=ui("close", language), n_clicks=0),
                                # Plotly's bundle (~1 s of main thread here) loads with the first
                                # chart a panel shows (dcc.Graph's own lazy chunk), never while the
                                # wall only runs: at any other time it is a long task in the wall's
                                # first render, its zooms or its feed's ticks (docs/performance.md)
                                html.Div(id="hz-panel-body"),
                            ],
                        ),
                        snapshot_panel(language),  # the drawn area's snapshot, downloaded (app/screen_reports.py)
                    ],
                ),
            ],
        )

    def _header(self, language: str) -> html.Header:
        stats = [
            html.Span(
                className="hz-stat",
                children=[html.Span(text(map_layer(n).title, language), className="hz-stat-label"),
                          html.Span(f"{self.counts[n]:,}", className="hz-stat-value")],
            )
            for n in COUNTED_LAYERS
        ]
        return html.Header(
            className="hz-header",
            children=[
                html.Div(className="hz-titles", children=[
                    html.H1(ui("title", language)),
                    html.Span(ui("subtitle", language), className="hz-subtitle"),
                ]),
                html.Div(className="hz-stats", children=stats),
                *self._wall_header(language),
                html.Div(className="hz-header-right", **{"data-link-texts": json.dumps(
                    {"down": ui("link_down", language), "back": ui("link_back", language)}, ensure_ascii=False)},
                    children=[
                    *self._deliveries_line(language),
                    *self._feed_clock(language),
                    html.Span(ui("time_zone", language), className="hz-clock-label"),
                    html.Span(id="hz-clock", className="hz-clock"),
                    html.Div(id="hz-search", className="hz-search", **{
                        "data-url": f"{self.url_prefix}search/{self.world_version}", "data-lang": language,
                        "data-none": text(NO_HITS, language)}, children=[
                        dcc.Input(id="hz-search-input", type="search", autoComplete="off",
                                  placeholder=text(SEARCH_PLACEHOLDER, language)),
                        html.Ul(id="hz-search-results", className="hz-search-results")]),
                    html.A(ui("switch_to", language), id="hz-language-switch", className="hz-language-switch",
                           href=f"{self.url_prefix}language/{other_language(language)}"),
                ]),
            ],
        )

    def _incidents_aside(self, language: str) -> list:
        """The ticker and the queue (layers/header.py incident_items), drawn and refreshed by
        assets/hazmap_wall.js from `/incidents/<world_version>/wall`; a new red incident flashes and
        sounds (settings.wall_alarm_sound; the officer may mute it)."""
        if getattr(self, "wall_incidents", None) is None:
            return []
        return [html.Aside(id="hz-incidents", className="hz-incidents", **{
            "data-url": f"{self.url_prefix}incidents/{self.world_version}/wall?lang={language}",
            "data-sound": "on" if self.settings.wall_alarm_sound else "off",
            "data-texts": json.dumps({k: text(v, language) for k, v in TICKER_LABELS.items()}, ensure_ascii=False)})]

    # The live header and the delivery line come with the layout (built per page load, for the
    # request's user) and their callbacks refresh them from the first tick on: filled by callbacks
    # at start-up instead, the loading wall paid two server round trips and the store updates and
    # renders they bring (~20-40 ms of the renderer's CPU at 15,000 trucks, issue 16).
    def _wall_header(self, language: str) -> list:
        """The live header (layers/header.py): incidents by level, points in alarm, trucks, today's
        handling rate, feed health; refreshed every 5 s by a callback."""
        if self.live is None:
            return []
        return [html.Div(self.header_now(language) if flask.has_request_context() else [],
                         id="hz-wall-header", className="hz-stats hz-wall-header"),
                dcc.Interval(id="hz-header-tick", interval=5000)]

    def header_now(self, language: str) -> list:
        """The live header's figures now, for the request's user: a department's or enterprise's
        own trucks, points and open incidents (app/permissions.py)."""
        if getattr(self, "_point_ids", None) is None:
            self._point_ids = pd.Index(self.world.monitoring_points["id"].astype(str).to_numpy(object))
        stats = getattr(self.live, "stats", None)
        today = getattr(self, "today_incidents", None)
        incidents = today() if today is not None else None
        visible, points, trucks = request_visible(), self._point_ids, None
        if visible is not None:
            points, trucks = points[visible.mask("header:points", points)], visible.features
            incidents = None if incidents is None else {"open_by_level": visible.open_by_level}
        figures = header_figures(
            _snapshot(self.live), points, incidents,
            stats() if callable(stats) else None, self.settings.ready_feed_max_silence_s, trucks)
        return header_children(figures, language)

    def _deliveries_line(self, language: str) -> list:
        """The delivery log's figures (sent, pending, failed), refreshed by a callback, when the
        sender runs in this process (data/channels/, app/cli_deliveries.Channels)."""
        if self.live is None:
            return []
        return [html.Span(deliveries_text(getattr(self.live, "channels", None), language),
                          id="hz-deliveries", className="hz-clock-label hz-deliveries"),
                dcc.Interval(id="hz-deliveries-tick", interval=5000)]

    def _feed_clock(self, language: str) -> list:
        """The newest report's time (Asia/Shanghai), set by assets/hazmap_live.js: a simulated
        or replayed feed runs on its own day, and a stopped feed shows as a clock standing still."""
        if self.live is None:
            return []
        return [html.Span(text(FEED_TIME_LABEL, language), className="hz-clock-label"),
                html.Span("—", id="hz-feed-clock", className="hz-clock hz-feed-clock")]

    def _map(self, language: str) -> dl.Map:
        # The live overlays hold nothing: hazmap_live.js draws on its own canvas and follows
        # their check boxes (through the control's `overlays`).
        live_overlays = [
            dl.Overlay(name=title, checked=True, children=dl.LayerGroup(id=f"hz-live-toggle-{i}"))
            for i, title in enumerate(self.live_titles(language))
        ]
        grid_overlay = [dl.Overlay(name=text(GRID_TITLE, language), checked=True,
                                   children=dl.LayerGroup(id="hz-grid-toggle"))]
        overlays = grid_overlay + live_overlays + [
            dl.Overlay(
                name=text(layer.title, language),
                checked=layer.shown_by_default,
                # The large point layers hold nothing: hazmap_static.js draws them on its canvas.
                children=dl.LayerGroup(id=f"hz-static-toggle-{layer.name}") if layer.name in CANVAS_LAYERS
                else dl.LayerGroup(id=f"hz-vector-toggle-{layer.name}") if layer.name in VECTOR_LAYERS  # hazmap_vector.js
                else dl.GeoJSON(
                    id={"type": LAYER_ID_TYPE, "name": layer.name},
                    # Layers that start off are fetched when first switched on: the wall
                    # does not parse and build 20,000 hidden features at start-up.
                    url=self.layer_url(layer.name) if layer.shown_by_default else None,
                    pointToLayer=_js("pointToLayer"),
                    style=_js("featureStyle"),
                    onEachFeature=_js("onEachFeature"),
                    hideout=layer_style(layer.name).hideout(layer.name),
                    bubblingMouseEvents=False,
                ),
            )
            for layer in LAYERS
        ]
        return dl.Map(
            id="hz-map",
            className="hz-map",
            bounds=self.bounds,
            boundsOptions={"padding": [12, 12]},
            preferCanvas=True,
            trackViewport=False,  # nothing reads the viewport; with `bounds` and no `center` it throws
            zoomSnap=0.1,
            zoomControl=False,
            minZoom=7,
            maxZoom=18,
            crs=leaflet_crs(self.settings.tile_crs),  # GCJ-02 tiles: everything drawn shifted (layers/display_crs.py)
            children=[
                *[dl.TileLayer(className="hz-tiles", maxZoom=18, **tiles)
                  for tiles in self.settings.basemap_layers(language)],  # none offline: no tile request
                # Below the tiles: the land, a shade lighter than the sea (the map's background).
                dl.Pane(name="hzland", children=dl.GeoJSON(
                    url=self.layer_url("land"), style=_js("landStyle"), interactive=False,
                    hideout=BASE_HIDEOUT["land"])),
                # Above the tiles, always on: the district names (their outlines: on the vector
                # canvas, assets/hazmap_vector.js, over its layers whatever overlays are shown).
                dl.Pane(name="hzlabels", children=dl.GeoJSON(
                    url=self.layer_url("district_labels"), pointToLayer=_js("districtLabel"), interactive=False,
                    hideout={**BASE_HIDEOUT["label"], "language": language})),
                dl.LayersControl(overlays, id="hz-layers", collapsed=False, position="topleft",
                                 overlays=self._default_titles(language)),
                dl.ZoomControl(position="topright"),  # under the drawing tools: the area export sits bottom right
                dl.ScaleControl(position="bottomright", imperial=False, maxWidth=240),
                draw_control(),  # an area to export (app/screen_reports.py)
            ],
        )

    def _default_titles(self, language: str) -> list[str]:
        return [text(GRID_TITLE, language)] + self.live_titles(language) + [text(layer.title, language) for layer in LAYERS if layer.shown_by_default]

    def legend_for_titles(self, titles: list[str], language: str) -> list[LegendGroup]:
        shown = set(titles)
        live = [title in shown for title in self.live_titles(language)]
        layers = [layer for layer in LAYERS if text(layer.title, language) in shown]
        grid = [grid_legend(language)] if text(GRID_TITLE, language) in shown else []
        return grid + (live_legend(language, *live) if live else []) + legend(
            [(layer.name, layer.title) for layer in layers], language, self.present_classes)


def _cross_origin_isolated(response: flask.Response) -> flask.Response:
    """Every response isolates the wall's page (COOP same-origin, COEP credentialless), so that it
    may share memory with the static canvas's worker (SharedArrayBuffer: assets/hazmap_static.js,
    issue 16). `credentialless`, not `require-corp`: a basemap's tiles from another origin still
    load (as no-cors images, without cookies). Browsers isolate only a secure context (https, or
    the machine itself); elsewhere the page stamps on its main thread, as before."""
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    response.headers.setdefault("Cross-Origin-Embedder-Policy", "credentialless")
    return response


def _regenerator_for_polyfill(web: dash.Dash) -> None:
    """Dash's @babel/polyfill (core-js 2 and regenerator-runtime, 99 KB) replaced by its
    regenerator-runtime alone (7 KB, assets/regenerator-runtime.min.js), inlined where the polyfill's
    tag was. Dash's and its component bundles' lazy loaders call the global `regeneratorRuntime`;
    everything core-js adds is native in the browsers a wall runs (Chromium), and evaluating it
    was 40-95 ms of the main thread before the map existed (issue 16: the first render).
    dash_table's bundle, unused, is left out too (10-13 ms of evaluation)."""
    runtime = (ASSETS_DIR / _REGENERATOR_SCRIPT).read_text(encoding="utf-8")
    generate = getattr(web, "_generate_scripts_html", None)  # Dash's, private: pyproject bounds Dash's version
    if generate is None:  # a Dash that assembles its page otherwise: the polyfill stays (slower, not broken)
        log.warning("Dash has no _generate_scripts_html: its @babel/polyfill is served as it is")
        return

    def scripts_html() -> str:
        html_ = _DASH_TABLE_TAG.sub("", generate(), count=1)
        if not _POLYFILL_TAG.search(html_):  # a Dash without it: nothing to replace
            return html_
        return _POLYFILL_TAG.sub(lambda _: "<script>" + runtime.replace("</", "<\\/") + "</script>", html_, count=1)

    web._generate_scripts_html = scripts_html


def _preloading_index(index_string: str, screen: _Screen) -> str:
    """Dash's page with the wall's payloads fetched from the top of its <head>
    (assets/hazmap_preload.js, inlined before the stylesheets so that nothing holds it): the
    layers shown at start on the canvases (their typed arrays, the vector layers' meta and first
    band, the district outlines, the live lists and first full frame), taken once by the layer
    scripts, and the GeoJSON layers dash-leaflet fetches itself (`<link rel=preload as=fetch>`,
    which its fetch() reuses).
    Without this, each waits for Dash's bundles, layout and first callbacks (~1.5 s)."""
    shown = [layer.name for layer in LAYERS if layer.shown_by_default]
    vector = [name for name in shown if name in VECTOR_LAYERS]
    urls = [screen.canvas_url(name) for name in shown if name in CANVAS_LAYERS]
    urls += [screen.vector_url(name) for name in vector]
    no_store = []
    if screen.live is not None:  # as assets/hazmap_live.js asks: the lists, then the first full frame
        urls.append(screen.live_url("static.json"))
        no_store.append(screen.live_url("state") + "?since=0")
    urls.append(screen.layer_url("district_outlines"))  # drawn on the vector canvas (assets/hazmap_vector.js)
    geojson = [screen.layer_url(name) for name in ("land", "district_labels")]
    geojson += [screen.layer_url(name) for name in shown if name not in CANVAS_LAYERS and name not in VECTOR_LAYERS]
    config = {"urls": urls, "noStore": no_store, "vector": {
        "bases": [screen.vector_url(name).removesuffix(".json") for name in vector],
        "bands": [first for first, _ in ZOOM_BANDS],
        "fit": {"bounds": screen.bounds, "padding": 12, "zoomSnap": 0.1, "minZoom": 7, "maxZoom": 18,
                "headerShare": _HEADER_SHARE}}}  # as _Screen._map sets the map
    # dash-leaflet's GeoJSON and drawing tools are chunks it loads once the layout is in
    chunks = [f"{screen.url_prefix}_dash-component-suites/dash_leaflet/{name}" for name in _LEAFLET_CHUNKS
              if (Path(dl.__file__).parent / name).exists()]
    script = (ASSETS_DIR / _PRELOAD_SCRIPT).read_text(encoding="utf-8")
    config["preload"] = [{"as": "fetch", "href": url} for url in geojson] + [{"as": "script", "href": url}
                                                                             for url in chunks]
    head = ("<script>window.hazmapPreloadConfig = " + json.dumps(config).replace("</", "<\\/") + ";\n"
             + script + "</script>")
    if "<head>" not in index_string:
        raise ValueError("the page template has no <head> for the payloads' preload")
    return index_string.replace("<head>", "<head>\n" + head, 1)


def _legend_data(groups: list[LegendGroup], language: str) -> str:
    """The legend as one attribute of its aside, which assets/hazmap_wall.js draws as DOM:
    {"title", "groups": [[group title, [[shape, dashed, colour, label], ...]], ...]}. As Dash
    components (a div and a swatch per entry) it was some 130 of the layout's 230 with every layer
    on, rendered by React and run through by every store update while the wall loads (issue 16)."""
    return json.dumps({
        "title": ui("legend", language),
        "groups": [[group.title, [[entry.shape, bool(entry.dash), entry.color, entry.label] for entry in group.entries]]
                   for group in groups if group.entries],
    }, ensure_ascii=False, separators=(",", ":"))


def _panel_children(details: FeatureDetails, live: list[tuple[str, str]], language: str) -> list:
    children = [
        html.Div(details.layer_title, className="hz-panel-layer"),
        html.H2(details.title, className="hz-panel-title"),
        html.Table(className="hz-panel-fields", children=html.Tbody([
            html.Tr([html.Th(label), html.Td(value)]) for label, value in details.rows
        ])),
    ]
    if live:
        children += [
            html.H3(text(LIVE_SECTION_TITLE, language)),
            html.Table(className="hz-panel-fields hz-panel-live", children=html.Tbody([
                html.Tr([html.Th(label), html.Td(value)]) for label, value in live
            ])),
        ]
    for table in details.tables:
        children += [
            html.H3(table.title),
            html.Table(className="hz-panel-children", children=[
                html.Thead(html.Tr([html.Th(c) for c in table.columns])),
                html.Tbody([html.Tr([html.Td(v) for v in row]) for row in table.rows]),
            ]),
        ]
    return children


def _drill_panel(screen: "_Screen", layer: str, feature_id: str, language: str, history: list, back: bool,
                 actions: tuple[str, ...] = ()) -> list:
    """A drill-down panel: its data gathered (data/drilldown.py), laid out (layers/panels/)."""
    from data.drilldown import gather

    live = _snapshot(screen.live) if screen.live is not None else None
    data = gather(screen.world, layer, feature_id, live=live, store=getattr(screen, "store", None),
                  visible=request_visible())  # a department's or enterprise's related rows only
    head = None if layer == "incidents" else _panel_children(
        screen.directory.describe(layer, feature_id, language),
        live_rows(live, layer, feature_id, language) if live is not None else [], language)
    return build_panel(layer, data, language, next_history(history, layer, feature_id, back), head, actions)


def _impact_panel(screen: "_Screen", feature_id: str, language: str, history: list, back: bool,
                  actions: tuple[str, ...] = ()) -> list:
    """The impact view of a truck, a hazard source or an incident about one (data/incident_view.py)."""
    from data.incident_view import impact_view

    live = _snapshot(screen.live) if screen.live is not None else None
    data = impact_view(screen.world, feature_id, live=live, store=getattr(screen, "store", None),
                       visible=request_visible())
    return build_impact(data, language, next_history(history, IMPACT_LAYER, feature_id, back), actions)


def _incident_actions(incident_id: str) -> tuple[str, ...]:
    """What the request's user may do on the incident (app/permissions.py, as the REST API asks);
    LookupError when it may not see it. A screen without people shows incidents read-only."""
    api = flask.current_app.extensions.get("hazmap_api") if flask.has_app_context() else None
    if api is None:
        return ()
    from app.api import ApiError, current_user
    from app.permissions import Target, can

    user = current_user()
    try:
        recipients = api.visible_incident(user, incident_id)
    except ApiError:
        raise LookupError(incident_id) from None
    target = Target(recipients=frozenset(recipients), recipient_id=user.recipient_id)
    actions = []
    if can(user, "incident.act_for_any") or can(user, "incident.act", target):
        actions += ["sign", "dispose", "close"]
    actions += [a for a in ("supervise", "text") if can(user, f"incident.{a}", target)]
    return tuple(actions)


def deliveries_text(channels, language: str) -> str:
    """The header's delivery figures: sent · pending · failed (dead letters); empty without a sender."""
    if channels is None:
        return ""
    try:
        f = channels.figures()
    except Exception:  # noqa: BLE001 - a store hiccup must not break the header
        return "推送 ?" if language == "zh" else "deliveries ?"
    if language == "zh":
        return f"推送 已送{f['sent']} 待送{f['pending']} 失败{f['dead']}"
    return f"deliveries sent {f['sent']} pending {f['pending']} failed {f['dead']}"


def _add_callbacks(web: dash.Dash, screen: _Screen) -> None:
    web.clientside_callback(
        ClientsideFunction(namespace="hazmap", function_name="loadShownLayers"),
        Output({"type": LAYER_ID_TYPE, "name": ALL}, "url"),
        Input("hz-layers", "overlays"),
        State({"type": LAYER_ID_TYPE, "name": ALL}, "url"),
        State("hz-layer-files", "data"),
        State({"type": LAYER_ID_TYPE, "name": ALL}, "id"),
        prevent_initial_call=True,
    )

    # Show and hide the static canvas layers with their overlays' check boxes (also at start-up).
    web.clientside_callback(
        ClientsideFunction(namespace="hazmap_static", function_name="staticSync"),
        Input("hz-layers", "overlays"),
        State("hz-static-config", "data"),
    )

    # Show and hide the vector canvas layers (lines, areas) with their overlays' check boxes.
    web.clientside_callback(
        ClientsideFunction(namespace="hazmap_vector", function_name="vectorSync"),
        Input("hz-layers", "overlays"),
        State("hz-vector-config", "data"),
    )

    # Show and hide the risk grid's canvas with its overlay's check box (also at start-up).
    web.clientside_callback(
        ClientsideFunction(namespace="hazmap_grid", function_name="gridSync"),
        Input("hz-layers", "overlays"),
        State("hz-grid-config", "data"),
    )

    if screen.live is not None:
        # Show and hide the live canvas with its overlays' check boxes (also at start-up).
        web.clientside_callback(
            ClientsideFunction(namespace="hazmap_live", function_name="liveSync"),
            Input("hz-layers", "overlays"),
            State("hz-live-config", "data"),
        )
        # The selected truck's trail follows the details panel: a truck opened (live canvas or
        # vehicles layer) draws its trail, anything else opened or the panel closed clears it.
        web.clientside_callback(
            ClientsideFunction(namespace="hazmap_live", function_name="trailSync"),
            Input("hz-live-click", "data"),
            Input({"type": LAYER_ID_TYPE, "name": ALL}, "clickData"),
            Input("hz-panel-close", "n_clicks"),
            Input("hz-grid-click", "data"),  # a grid cell opened in the panel: no truck selected
            prevent_initial_call=True,
        )

    @web.callback(
        Output("hz-panel-body", "children"),
        Output("hz-panel", "className"),
        Input({"type": LAYER_ID_TYPE, "name": ALL}, "clickData"),
        Input("hz-live-click", "data"),
        Input("hz-panel-close", "n_clicks"),
        Input("hz-grid-click", "data"),
        Input({"type": GRID_ITEM_TYPE, "layer": ALL, "id": ALL, "n": ALL}, "n_clicks"),
        State("hz-language", "data"),
        State({"type": PANEL_HISTORY_TYPE, "n": ALL}, "data"),  # the drill-down panel's back stack
        prevent_initial_call=True,
    )
    def show_details(_clicks, _live_click, _close, _grid_click, _grid_items, language, history):
        trigger = ctx.triggered_id
        value = ctx.triggered[0]["value"] if ctx.triggered else None
        if trigger == "hz-grid-click" and value:  # a risk-grid cell: its parts and contents
            return grid_panel_children(screen.grid, str(value["cell"]), int(value["res"]), language,
                                       visible=_visible_ids()), "hz-panel hz-open"
        if isinstance(trigger, dict) and trigger.get("type") == GRID_ITEM_TYPE:
            if not value:  # the links were just drawn, not clicked
                raise dash.exceptions.PreventUpdate
            value = {"layer": trigger["layer"], "id": trigger["id"], "back": trigger.get("n") == PANEL_BACK_N}
            trigger = "hz-live-click"
        if trigger == "hz-live-click" and value:
            layer, feature_id = value["layer"], str(value["id"])
        elif isinstance(trigger, dict) and value:
            layer, feature_id = trigger["name"], str(value["properties"]["id"])
        else:
            return [], "hz-panel"
        try:
            about_incident = layer == "incidents" or feature_id.startswith("INC-")  # an impact view may name one
            incident_actions = _incident_actions(feature_id) if about_incident else ()  # LookupError: not yours
            if not about_incident and not may_see(feature_id):  # the roles (app/permissions.py): not found
                raise LookupError(feature_id)
            if layer == IMPACT_LAYER:  # a truck's or hazard source's impact view (layers/panels/impact.py)
                back = bool(isinstance(value, dict) and value.get("back"))
                return _impact_panel(screen, feature_id, language, history[0] if history else [], back,
                                     incident_actions), "hz-panel hz-open"
            if layer in PANEL_KINDS:  # a drill-down panel (layers/panels/, data/drilldown.py)
                back = bool(isinstance(value, dict) and value.get("back"))
                return _drill_panel(screen, layer, feature_id, language, history[0] if history else [], back,
                                    incident_actions), "hz-panel hz-open"
            details = screen.directory.describe(layer, feature_id, language)
        except LookupError:
            return [html.P(ui("not_found", language))], "hz-panel hz-open"
        live = live_rows(_snapshot(screen.live), layer, feature_id, language) if screen.live is not None else []
        return _panel_children(details, live, language), "hz-panel hz-open"

    # A drill-down chart's time window switch (truck speed 2 h / 24 h, point readings 1 h / 24 h / 7 d)
    # redraws that chart only, for the entity the panel shows (the last entry of its back stack).
    @web.callback(Output({"type": PANEL_CHART_TYPE, "name": dash.MATCH}, "figure"),
                  Input({"type": PANEL_WINDOW_TYPE, "name": dash.MATCH}, "value"),
                  State({"type": PANEL_HISTORY_TYPE, "n": ALL}, "data"), State("hz-language", "data"),
                  prevent_initial_call=True)
    def switch_chart_window(window, history, language):
        from data.drilldown import chart_window

        shown = history[0][-1] if history and history[0] else None
        if window is None or not shown or not may_see(str(shown[1])):
            raise dash.exceptions.PreventUpdate
        live = _snapshot(screen.live) if screen.live is not None else None
        try:
            data = chart_window(screen.world, shown[0], str(shown[1]), window, live=live,
                                store=getattr(screen, "store", None))
        except (LookupError, ValueError):
            raise dash.exceptions.PreventUpdate from None
        return panel_window_figure(shown[0], data, language)

    @web.callback(Output({"type": IMPACT_TEXTS_TYPE, "id": MATCH}, "children"),
                  Input({"type": IMPACT_TICK_TYPE, "id": MATCH}, "n_intervals"), State("hz-language", "data"))
    def impact_texts(_n, language):  # also when drawn: the incident panel's table arrives empty
        """The impact view's texts to the driver, refreshed: the terminal's answer shows when it comes."""
        from data.incident_view import driver_texts

        # drawn (no trigger yet): the output's own id says which incident
        incident_id = str((ctx.triggered_id or ctx.outputs_list["id"])["id"])
        try:
            _incident_actions(incident_id)  # LookupError: not the user's to see
        except LookupError:
            raise dash.exceptions.PreventUpdate from None
        return impact_texts_table(driver_texts(getattr(screen, "store", None), incident_id), language)

    if screen.live is not None:  # drawn with the layout; refreshed from the first tick on
        @web.callback(Output("hz-deliveries", "children"), Input("hz-deliveries-tick", "n_intervals"),
                      State("hz-language", "data"), prevent_initial_call=True)
        def deliveries_line(_n, language):
            return deliveries_text(getattr(screen.live, "channels", None), language)

        @web.callback(Output("hz-wall-header", "children"), Input("hz-header-tick", "n_intervals"),
                      State("hz-language", "data"), prevent_initial_call=True)
        def wall_header(_n, language):
            return screen.header_now(language)

    @web.callback(
        Output("hz-legend", "data-legend"),
        Input("hz-layers", "overlays"),
        State("hz-language", "data"),
        prevent_initial_call=True,
    )
    def follow_layers(shown_titles, language):
        return _legend_data(screen.legend_for_titles(shown_titles or [], language), language)


def _visible_ids() -> frozenset[str] | None:
    """The feature ids the request's user may see besides the public layers (None: all)."""
    visible = request_visible()
    return None if visible is None else visible.features


class _ScopedBodies:
    """Bodies built for one user's visible set (app/permissions.Visible.key), kept for the
    few keys in use: a department's wall asks for the same narrowed layer at every load."""

    def __init__(self, size: int = 64):
        self.size, self._bodies, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: tuple, build) -> bytes:
        with self._lock:
            found = self._bodies.get(key)
        if found is None:
            found = build()
            with self._lock:
                self._bodies[key] = found
                while len(self._bodies) > self.size:
                    self._bodies.popitem(last=False)
        return found


def _scoped_response(body: bytes, mimetype: str) -> flask.Response:
    """A narrowed layer: one user's, so never kept by a shared cache (nor by the browser: a
    department's set grows with the incidents routed to it)."""
    gzipped = flask.request.accept_encodings["gzip"] > 0
    response = flask.Response(gzip.compress(body, 6, mtime=0) if gzipped else body, mimetype=mimetype)
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _add_layer_route(web: dash.Dash, world_version: str, payloads: dict[str, Payload], world: World) -> None:
    served = set(payloads)
    scoped_layers = set(LAYER_NAMES) - PUBLIC_LAYERS  # the base layers (land, outlines) are public too
    narrowed = _ScopedBodies()

    def narrowed_geojson(name: str, visible) -> bytes:
        frame = world.table(name)
        frame = frame[visible.mask(f"layer:{name}", pd.Index(frame["id"].astype(str)))]
        properties = pd.DataFrame({"id": frame["id"].astype(str).to_numpy(), "k": map_layer(name).class_keys(frame)})
        return feature_collection(frame.geometry.to_numpy(), properties, layer=name)

    def layer_geojson(version: str, name: str):
        if version != world_version:
            message = f"world version {version!r} is not served; this server has {world_version!r}"
            return flask.jsonify(error=message), 404
        if name not in served:
            return flask.jsonify(error=f"no layer {name!r}; layers: {sorted(served)}"), 404
        if name in scoped_layers and (visible := request_visible()) is not None:
            return _scoped_response(narrowed.get((visible.key, name), lambda: narrowed_geojson(name, visible)),
                                    "application/geo+json")
        payload = payloads[name]
        gzipped = flask.request.accept_encodings["gzip"] > 0
        response = flask.Response(payload.gzipped if gzipped else payload.body, mimetype="application/geo+json")
        if gzipped:
            response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept-Encoding"
        response.headers["Cache-Control"] = _LAYER_CACHE_CONTROL
        response.set_etag(f"{world_version}-{name}{'-gz' if gzipped else ''}")
        return response.make_conditional(flask.request)

    web.server.add_url_rule(
        f"{web.config.routes_pathname_prefix}layers/<version>/<name>.geojson",
        endpoint="hazmap_layer_geojson",
        view_func=layer_geojson,
    )


def _add_search_route(web: dash.Dash, world_version: str, index: SearchIndex) -> None:
    """`/search/<world_version>?q=TEXT&lang=zh|en`: up to 10 features by plate, name or id
    (layers/search.py) among those the user may see; never cached."""
    public = index.frame["layer"].isin(PUBLIC_LAYERS).to_numpy(bool)
    index_ids = pd.Index(index.frame["id"].astype(str))

    def search(version: str):
        if version != world_version:
            return flask.jsonify(error=f"world version {version!r} is not served; this server has "
                                       f"{world_version!r}"), 404
        language = flask.request.args.get("lang", "zh")
        if language not in LANGUAGES:
            return flask.jsonify(error=f"lang must be one of {LANGUAGES}, got {language!r}"), 400
        visible = request_visible()
        keep = None if visible is None else public | visible.mask("search", index_ids)
        try:
            hits = index.find(flask.request.args.get("q", ""), language, keep=keep)
        except ValueError as bad:
            return flask.jsonify(error=str(bad)), 400
        response = flask.jsonify(hits=hits)
        response.headers["Cache-Control"] = "no-store"
        return response

    web.server.add_url_rule(f"{web.config.routes_pathname_prefix}search/<version>", endpoint="hazmap_search",
                            view_func=search)


class _WallIncidents:
    """The newest incidents and those not yet signed for, read from the incident store on a store
    of its own (opened at the first request) and kept for `cache_s`: every wall polls, the
    database is asked once a poll period whatever the number of walls."""

    def __init__(self, store_url: str, world: World, cache_s: float = 2.0, recent: int = 8, queue: int = 30):
        self.store_url, self.world, self.cache_s, self.recent, self.queue = store_url, world, cache_s, recent, queue
        self._lock = threading.Lock()
        self._incidents = None
        self._cached: tuple[float, tuple] | None = None

    # the newest incidents kept for the scoped walls: a department's ticker shows its own among them
    RECENT_POOL = 500

    def frames(self, only: frozenset[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, int]:
        """(the newest incidents, the unsigned ones newest first, how many are unsigned); with
        `only` (the incident ids a user may see), of those alone."""
        recent, unsigned = self._frames()
        if only is not None:
            wanted = list(only)
            recent, unsigned = recent[recent["id"].isin(wanted)], unsigned[unsigned["id"].isin(wanted)]
        return recent.head(self.recent), unsigned.head(self.queue), len(unsigned)

    def _frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.cache_s:
                if self._incidents is None:
                    from data.incidents import IncidentStore
                    from data.store import Store

                    self._incidents = IncidentStore(Store.open(self.store_url), self.world)
                self._cached = (now, (self._incidents.list(limit=max(self.recent, self.RECENT_POOL)),
                                      self._incidents.list(status="pushed")))
            return self._cached[1]


def _add_incidents_route(web: dash.Dash, world_version: str, screen: "_Screen") -> None:
    """`/incidents/<world_version>/wall?lang=zh|en`: the ticker's and the queue's rows (never cached)."""

    def wall_incidents(version: str):
        if screen.wall_incidents is None:
            return flask.jsonify(error="this server runs no incident processor"), 404
        if version != world_version:
            return flask.jsonify(error=f"world version {version!r} is not served; this server has "
                                       f"{world_version!r}"), 404
        language = flask.request.args.get("lang", "zh")
        if language not in LANGUAGES:
            return flask.jsonify(error=f"lang must be one of {LANGUAGES}, got {language!r}"), 400
        visible = request_visible()  # a department or enterprise: the incidents routed to it
        try:
            recent, queue, unsigned = screen.wall_incidents.frames(None if visible is None else visible.incidents)
        except Exception as failure:  # noqa: BLE001 - the wall says the store is away, it does not break
            log.warning("wall incidents: the incident store cannot be read: %s", failure)
            return flask.jsonify(error="the incident store cannot be read"), 503
        title_of = screen.directory.title_of  # a truck by its plate, a plant by its name
        response = flask.jsonify(recent=incident_items(recent, language, title_of),
                                 queue=incident_items(queue, language, title_of), unsigned=unsigned)
        response.headers["Cache-Control"] = "no-store"
        return response

    web.server.add_url_rule(f"{web.config.routes_pathname_prefix}incidents/<version>/wall",
                            endpoint="hazmap_wall_incidents", view_func=wall_incidents)


class _TodayIncidentFigures(IncidentFigures):
    """app/ops.py's incident figures with handling counted over today only: the incidents first
    seen since midnight (Asia/Shanghai) of the feed's clock (the newest stored event: a simulated
    day runs on its own date)."""

    @property
    def KPI_WINDOW(self) -> pd.Timedelta:  # noqa: N802 - the name IncidentFigures reads
        newest = self._incidents.store.newest_event_time()
        if newest is None:
            return pd.Timedelta(0)
        local = pd.Timestamp(newest).tz_convert("Asia/Shanghai")
        return local - local.normalize()


def _add_canvas_route(web: dash.Dash, world_version: str, payloads: dict[str, bytes], world: World) -> None:
    """`/canvas/<world_version>/<layer>.json`: a static canvas layer's typed arrays
    (layers/static_canvas.py), gzip when the browser takes it, cached for good; a department's
    or an enterprise's narrowed to what it may see (never cached)."""
    gzipped_payloads = {name: gzip.compress(body, 6, mtime=0) for name, body in payloads.items()}
    narrowed = _ScopedBodies()

    def narrowed_canvas(name: str, visible) -> bytes:
        keep = visible.mask(f"layer:{name}", pd.Index(world.table(name)["id"].astype(str)))
        return json.dumps(canvas_payload(world, name, keep=keep), separators=(",", ":")).encode()

    def canvas_json(version: str, name: str):
        if version != world_version:
            message = f"world version {version!r} is not served; this server has {world_version!r}"
            return flask.jsonify(error=message), 404
        if name not in payloads:
            return flask.jsonify(error=f"no canvas layer {name!r}; canvas layers: {sorted(payloads)}"), 404
        if name not in PUBLIC_LAYERS and (visible := request_visible()) is not None:
            return _scoped_response(narrowed.get((visible.key, name), lambda: narrowed_canvas(name, visible)),
                                    "application/json")
        gzipped = flask.request.accept_encodings["gzip"] > 0
        response = flask.Response(gzipped_payloads[name] if gzipped else payloads[name], mimetype="application/json")
        if gzipped:
            response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept-Encoding"
        response.headers["Cache-Control"] = _LAYER_CACHE_CONTROL
        response.set_etag(f"{world_version}-canvas-{name}{'-gz' if gzipped else ''}")
        return response.make_conditional(flask.request)

    web.server.add_url_rule(f"{web.config.routes_pathname_prefix}canvas/<version>/<name>.json",
                            endpoint="hazmap_canvas_json", view_func=canvas_json)


def _add_vector_route(web: dash.Dash, world_version: str, payloads: dict, world: World) -> None:
    """`/vector/<world_version>/<layer>.json` (meta), `.../<layer>/<band>.bin` (a zoom band),
    `.../<layer>/hit.bin` (click geometry): a vector canvas layer (layers/vector_canvas.py), gzip
    when the browser takes it, cached for good; a scoped user's narrowed to what it may see."""
    def gz(body: bytes) -> bytes:
        return gzip.compress(body, 6, mtime=0)

    parts = {(name, "meta"): p.meta for name, p in payloads.items()}
    parts.update({(name, "hit"): p.hit for name, p in payloads.items()})
    parts.update({(name, str(i)): band for name, p in payloads.items() for i, band in enumerate(p.bands)})
    gzipped = {key: gz(body) for key, body in parts.items()}
    narrowed = _ScopedBodies()

    def part_of(p, part: str) -> bytes:
        return p.meta if part == "meta" else p.hit if part == "hit" else p.bands[int(part)]

    def respond(version: str, name: str, part: str):
        if version != world_version:
            message = f"world version {version!r} is not served; this server has {world_version!r}"
            return flask.jsonify(error=message), 404
        if (name, part) not in parts:
            return flask.jsonify(error=f"no vector layer part {name}/{part}; layers: {sorted(payloads)}"), 404
        mimetype = "application/json" if part == "meta" else "application/octet-stream"
        if name not in PUBLIC_LAYERS and (visible := request_visible()) is not None:
            keep = lambda: visible.mask(f"layer:{name}", pd.Index(world.table(name)["id"].astype(str)))  # noqa: E731
            scoped = narrowed.get((visible.key, name), lambda: vector_payloads(world, name, keep=keep()))
            return _scoped_response(part_of(scoped, part), mimetype)
        zipped = flask.request.accept_encodings["gzip"] > 0
        response = flask.Response(gzipped[(name, part)] if zipped else parts[(name, part)], mimetype=mimetype)
        if zipped:
            response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept-Encoding"
        response.headers["Cache-Control"] = _LAYER_CACHE_CONTROL
        response.set_etag(f"{world_version}-vector-{name}-{part}{'-gz' if zipped else ''}")
        return response.make_conditional(flask.request)

    prefix = f"{web.config.routes_pathname_prefix}vector/<version>/<name>"
    web.server.add_url_rule(f"{prefix}.json", endpoint="hazmap_vector_meta",
                            view_func=lambda version, name: respond(version, name, "meta"))
    web.server.add_url_rule(f"{prefix}/<part>.bin", endpoint="hazmap_vector_bin", view_func=respond)


def _snapshot(live) -> LiveState:
    state = live.snapshot()
    if not isinstance(state, LiveState):
        raise TypeError(f"live.snapshot() must return a LiveState, got {type(state).__name__}")
    return state


def _add_live_routes(web: dash.Dash, world_version: str, live, encoder: LiveEncoder | None) -> None:
    """`static.json` (cached for good: it only depends on the world), `state?since=N` and
    `trail/<vehicle_id>` (never cached)."""
    static_body = json.dumps(encoder.static(), ensure_ascii=False, separators=(",", ":")).encode() if encoder else b""
    static_gzipped = gzip.compress(static_body, _LIVE_GZIP_LEVEL, mtime=0)

    def check(version: str):
        if live is None:
            return flask.jsonify(error="this server runs without a live feed"), 404
        if version != world_version:
            message = f"world version {version!r} is not served; this server has {world_version!r}"
            return flask.jsonify(error=message), 404
        return None

    def respond(body: bytes, cache_control: str, gzipped_body: bytes | None = None):
        gzipped = flask.request.accept_encodings["gzip"] > 0
        if gzipped and gzipped_body is None:
            gzipped_body = gzip.compress(body, _LIVE_GZIP_LEVEL, mtime=0)
        response = flask.Response(gzipped_body if gzipped else body, mimetype="application/json")
        if gzipped:
            response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept-Encoding"
        response.headers["Cache-Control"] = cache_control
        return response

    def scope_now():
        """The request's user's LiveScope (layers/live.py), None when it sees every truck."""
        visible = request_visible()
        return None if visible is None else encoder.scope(visible.key, visible.features)

    def live_static(version: str):
        if (error := check(version)) is not None:
            return error
        if (scope := scope_now()) is not None:  # its own trucks and points: never kept by a cache
            return respond(json.dumps(encoder.static(scope), ensure_ascii=False, separators=(",", ":")).encode(),
                           "private, no-store")
        return respond(static_body, _LAYER_CACHE_CONTROL, static_gzipped)

    def live_state(version: str):
        if (error := check(version)) is not None:
            return error
        since_text = flask.request.args.get("since", "0")
        if not _SINCE_PATTERN.fullmatch(since_text):
            return flask.jsonify(error=f"since must be a whole number >= 0 (the version of the last frame), "
                                       f"got {since_text!r}"), 400
        since, scope = int(since_text), scope_now()
        if scope is not None and flask.request.args.get("scope") != scope.key:
            since = 0  # the screen holds other lists: a full frame, whose `scope` tells it to reload them
        frame = encoder.frame(_snapshot(live), since, scope)
        return respond(json.dumps(frame, separators=(",", ":")).encode(), "no-store")

    def live_trail(version: str, vehicle_id: str):
        if (error := check(version)) is not None:
            return error
        if not _VEHICLE_ID_PATTERN.fullmatch(vehicle_id):
            return flask.jsonify(error=f"vehicle id must be 1-128 letters, digits, '.', '_', ':' or '-', "
                                       f"got {vehicle_id[:140]!r}"), 400
        if not may_see(vehicle_id):
            return flask.jsonify(error=f"no vehicle {vehicle_id!r}"), 404
        try:
            trail = encoder.trail(_snapshot(live), vehicle_id)
        except LookupError as missing:
            return flask.jsonify(error=str(missing.args[0])), 404
        return respond(json.dumps(trail, separators=(",", ":")).encode(), "no-store")

    prefix = f"{web.config.routes_pathname_prefix}live/<version>/"
    web.server.add_url_rule(prefix + "static.json", endpoint="hazmap_live_static", view_func=live_static)
    web.server.add_url_rule(prefix + "state", endpoint="hazmap_live_state", view_func=live_state)
    web.server.add_url_rule(prefix + "trail/<vehicle_id>", endpoint="hazmap_live_trail", view_func=live_trail)


def _add_grid_route(web: dash.Dash, world_version: str, grid: GridFeed) -> None:
    """`/grid/<world_version>/state?res=R&since=N`: the risk grid's cells at resolution R
    changed since version N (layers/grid.py), never cached."""

    def grid_state(version: str):
        if version != world_version:
            message = f"world version {version!r} is not served; this server has {world_version!r}"
            return flask.jsonify(error=message), 404
        res_text, since_text = flask.request.args.get("res", ""), flask.request.args.get("since", "0")
        if not _SINCE_PATTERN.fullmatch(since_text) or not res_text.isdigit():
            return flask.jsonify(error=f"res and since must be whole numbers, got res={res_text!r} "
                                       f"since={since_text!r}"), 400
        try:
            frame = grid.frame(int(res_text), int(since_text))
        except ValueError as bad:
            return flask.jsonify(error=str(bad)), 400
        body = json.dumps(frame, separators=(",", ":")).encode()
        gzipped = flask.request.accept_encodings["gzip"] > 0
        response = flask.Response(gzip.compress(body, _LIVE_GZIP_LEVEL, mtime=0) if gzipped else body,
                                  mimetype="application/json")
        if gzipped:
            response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept-Encoding"
        response.headers["Cache-Control"] = "no-store"
        return response

    web.server.add_url_rule(f"{web.config.routes_pathname_prefix}grid/<version>/state", endpoint="hazmap_grid_state",
                            view_func=grid_state)


def _count_titles(language: str) -> dict[str, list[str]]:
    """The overlays that show each counted point layer (layers/grid.COUNT_LAYERS)."""
    from layers.live import LIVE_POINTS_TITLE, LIVE_TRUCKS_TITLE

    titles = {name: [text(map_layer(name).title, language)] for name in ("entities", "monitoring_points",
                                                                          "sensitive_sites")}
    titles["monitoring_points"].append(text(LIVE_POINTS_TITLE, language))
    titles["vehicles"] = [text(LIVE_TRUCKS_TITLE, language)]
    return titles


def _add_counts_route(web: dash.Dash, world_version: str, counts: PointCounts) -> None:
    """`/grid/<world_version>/counts?res=R`: points per cell of each point layer (layers/grid.py),
    a scoped user's narrowed to what it may see, never cached."""

    def counts_json(version: str):
        if version != world_version:
            message = f"world version {version!r} is not served; this server has {world_version!r}"
            return flask.jsonify(error=message), 404
        res_text = flask.request.args.get("res", "")
        if not res_text.isdigit():
            return flask.jsonify(error=f"res must be a whole number, got res={res_text!r}"), 400
        visible = request_visible()
        keep = None if visible is None else (
            lambda name, ids: visible.mask(f"counts:{name}", ids) if name != "vehicles"
            else ids.isin(list(visible.features)))
        try:
            frame = counts.frame(int(res_text), keep)
        except ValueError as bad:
            return flask.jsonify(error=str(bad)), 400
        response = flask.jsonify(frame)
        response.headers["Cache-Control"] = "no-store"
        return response

    web.server.add_url_rule(f"{web.config.routes_pathname_prefix}grid/<version>/counts",
                            endpoint="hazmap_grid_counts", view_func=counts_json)


def _add_language_route(web: dash.Dash) -> None:
    def choose_language(language: str):
        if language not in LANGUAGES:
            return flask.jsonify(error=f"language must be one of {LANGUAGES}, got {language!r}"), 404
        response = flask.redirect(web.config.requests_pathname_prefix)
        response.set_cookie(LANGUAGE_COOKIE, language, max_age=10 * 365 * 24 * 3600, samesite="Lax")
        return response

    web.server.add_url_rule(
        f"{web.config.routes_pathname_prefix}language/<language>", endpoint="hazmap_language", view_func=choose_language
    )

