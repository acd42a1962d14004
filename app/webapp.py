"""The Dash app factory: the wall-screen map of one World.

`create_app(settings, world, world_version)` builds every layer's GeoJSON once (layers/),
serves each by URL from `/layers/<world_version>/<layer>.geojson` (gzip when the browser
takes it, cached for good since the URL changes with the world), and lays out the map, the
layers control, the legend and the details panel. Callbacks stay thin: formatting is in
layers/details.py, colours in layers/style.py, drawing in assets/hazmap_map.js.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import dash
import dash_leaflet as dl
import flask
from dash import ALL, ClientsideFunction, Input, Output, State, ctx, dcc, html
from dash_extensions.javascript import Namespace

from app.i18n import COUNTED_LAYERS, other_language, ui
from app.settings import Settings
from layers.catalog import (
    LAYERS,
    Payload,
    build_payloads,
    class_keys_present,
    map_layer,
    world_bounds,
)
from layers.details import FeatureDetails, FeatureDirectory
from layers.style import BASE_HIDEOUT, LANGUAGES, LegendGroup, layer_style, legend, text
from spatial.model import World

log = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
LANGUAGE_COOKIE = "hazmap_language"
_VERSION_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Versioned URLs never change content: let browsers keep them for a year.
_LAYER_CACHE_CONTROL = "public, max-age=31536000, immutable"

_js = Namespace("hazmap", "map")
LAYER_ID_TYPE = "hz-layer"


def create_app(settings: Settings, world: World, world_version: str) -> dash.Dash:
    """The wall-screen app for `world`. `world_version` (a short hash or counter, letters,
    digits, `.`, `_`, `-`) goes into every layer URL, so a new world is never shown from a
    browser's cache of the old one."""
    if not _VERSION_PATTERN.fullmatch(world_version):
        raise ValueError(f"world_version must be 1-64 letters, digits, '.', '_' or '-', got {world_version!r}")
    if settings.language not in LANGUAGES:
        raise ValueError(f"settings.language must be one of {LANGUAGES}, got {settings.language!r}")

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
    )
    screen = _Screen(settings, world, world_version, web.config.requests_pathname_prefix)
    _add_layer_route(web, world_version, payloads)
    _add_language_route(web)
    web.layout = screen.layout
    _add_callbacks(web, screen)
    return web


class _Screen:
    """Everything the layout and callbacks need from one World, computed once."""

    def __init__(self, settings: Settings, world: World, world_version: str, url_prefix: str):
        self.settings = settings
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

    def layout(self) -> html.Div:
        language = self.language()
        return html.Div(
            className="hz-root",
            lang="zh-CN" if language == "zh" else "en",
            children=[
                dcc.Store(id="hz-language", data=language),
                # Overlay title -> layer file: what the clientside loader fetches when an
                # overlay that starts off is first switched on.
                dcc.Store(id="hz-layer-files", data={
                    "names": {text(layer.title, language): layer.name for layer in LAYERS},
                    "urls": {layer.name: self.layer_url(layer.name) for layer in LAYERS},
                }),
                self._header(language),
                html.Main(
                    className="hz-main",
                    children=[
                        self._map(language),
                        html.Aside(
                            id="hz-legend",
                            className="hz-legend",
                            children=_legend_children(self._legend(self._default_layers(), language), language),
                        ),
                        html.Aside(
                            id="hz-panel",
                            className="hz-panel",
                            children=[
                                html.Button("×", id="hz-panel-close", className="hz-panel-close",
                                            title=ui("close", language), n_clicks=0),
                                html.Div(id="hz-panel-body"),
                            ],
                        ),
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
                html.Div(className="hz-header-right", children=[
                    html.Span(ui("time_zone", language), className="hz-clock-label"),
                    html.Span(id="hz-clock", className="hz-clock"),
                    html.A(ui("switch_to", language), id="hz-language-switch", className="hz-language-switch",
                           href=f"{self.url_prefix}language/{other_language(language)}"),
                ]),
            ],
        )

    def _map(self, language: str) -> dl.Map:
        overlays = [
            dl.Overlay(
                name=text(layer.title, language),
                checked=layer.shown_by_default,
                children=dl.GeoJSON(
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
            children=[
                dl.TileLayer(url=self.settings.tile_url, attribution=self.settings.tile_attribution,
                             className="hz-tiles", maxZoom=18),
                # Below the tiles: the land, a shade lighter than the sea (the map's background).
                dl.Pane(name="hzland", children=dl.GeoJSON(
                    url=self.layer_url("land"), style=_js("landStyle"), interactive=False,
                    hideout=BASE_HIDEOUT["land"])),
                # Above the tiles, always on: district outlines and names.
                dl.GeoJSON(url=self.layer_url("district_outlines"), style=_js("outlineStyle"),
                           onEachFeature=_js("baseOnEachFeature"), interactive=False,
                           hideout=BASE_HIDEOUT["outline"]),
                dl.Pane(name="hzlabels", children=dl.GeoJSON(
                    url=self.layer_url("district_labels"), pointToLayer=_js("districtLabel"), interactive=False,
                    hideout={**BASE_HIDEOUT["label"], "language": language})),
                dl.LayersControl(overlays, id="hz-layers", collapsed=False, position="topleft",
                                 overlays=[text(layer.title, language) for layer in self._default_layers()]),
                dl.ZoomControl(position="bottomright"),
                dl.ScaleControl(position="bottomright", imperial=False, maxWidth=240),
            ],
        )

    def _default_layers(self):
        return [layer for layer in LAYERS if layer.shown_by_default]

    def _legend(self, layers, language: str) -> list[LegendGroup]:
        return legend([(layer.name, layer.title) for layer in layers], language, self.present_classes)

    def legend_for_titles(self, titles: list[str], language: str) -> list[LegendGroup]:
        shown = set(titles)
        return self._legend([layer for layer in LAYERS if text(layer.title, language) in shown], language)


def _legend_children(groups: list[LegendGroup], language: str) -> list:
    children = [html.H2(ui("legend", language))]
    for group in groups:
        if not group.entries:
            continue
        children.append(html.Div(className="hz-legend-group", children=[
            html.Div(group.title, className="hz-legend-title"),
            *[
                html.Div(className="hz-legend-entry", children=[
                    html.Span(className=f"hz-swatch hz-swatch-{entry.shape}"
                              + (" hz-swatch-dashed" if entry.dash else ""),
                              style={"--swatch": entry.color}),
                    html.Span(entry.label),
                ])
                for entry in group.entries
            ],
        ]))
    return children


def _panel_children(details: FeatureDetails) -> list:
    children = [
        html.Div(details.layer_title, className="hz-panel-layer"),
        html.H2(details.title, className="hz-panel-title"),
        html.Table(className="hz-panel-fields", children=html.Tbody([
            html.Tr([html.Th(label), html.Td(value)]) for label, value in details.rows
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

    @web.callback(
        Output("hz-panel-body", "children"),
        Output("hz-panel", "className"),
        Input({"type": LAYER_ID_TYPE, "name": ALL}, "clickData"),
        Input("hz-panel-close", "n_clicks"),
        State("hz-language", "data"),
        prevent_initial_call=True,
    )
    def show_details(_clicks, _close, language):
        trigger = ctx.triggered_id
        feature = ctx.triggered[0]["value"] if ctx.triggered else None
        if not isinstance(trigger, dict) or not feature:
            return [], "hz-panel"
        try:
            details = screen.directory.describe(trigger["name"], str(feature["properties"]["id"]), language)
        except LookupError:
            return [html.P(ui("not_found", language))], "hz-panel hz-open"
        return _panel_children(details), "hz-panel hz-open"

    @web.callback(
        Output("hz-legend", "children"),
        Input("hz-layers", "overlays"),
        State("hz-language", "data"),
        prevent_initial_call=True,
    )
    def follow_layers(shown_titles, language):
        return _legend_children(screen.legend_for_titles(shown_titles or [], language), language)


def _add_layer_route(web: dash.Dash, world_version: str, payloads: dict[str, Payload]) -> None:
    served = set(payloads)

    def layer_geojson(version: str, name: str):
        if version != world_version:
            message = f"world version {version!r} is not served; this server has {world_version!r}"
            return flask.jsonify(error=message), 404
        if name not in served:
            return flask.jsonify(error=f"no layer {name!r}; layers: {sorted(served)}"), 404
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

