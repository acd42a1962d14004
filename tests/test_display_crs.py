"""Basemap presets (app/settings.py, layers/display_crs.py): what each asks for, and bad combinations refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings
from layers.display_crs import leaflet_crs, tile_layers


def test_offline_by_default_and_no_tile_layer():
    settings = Settings(_env_file=None)
    assert settings.basemap == "none" and settings.basemap_layers() == []


@pytest.mark.parametrize(("options", "host", "n"), [
    ({"basemap": "osm"}, "tile.openstreetmap.org", 1),
    ({"basemap": "tianditu", "tianditu_key": "k123"}, "tianditu.gov.cn", 2),  # the map and its place names
    ({"tile_url": "http://tiles.local/{z}/{x}/{y}.png"}, "tiles.local", 1),  # a URL alone: custom
])
def test_presets(options, host, n):
    layers = Settings(**options).basemap_layers()
    assert len(layers) == n and all(host in layer["url"] for layer in layers)


def test_tianditu_names_follow_the_language_and_carry_the_key():
    zh = tile_layers("tianditu", tianditu_key="k123", language="zh")
    en = tile_layers("tianditu", tianditu_key="k123", language="en")
    assert "LAYER=cva" in zh[1]["url"] and "LAYER=eva" in en[1]["url"]
    assert all("tk=k123" in layer["url"] and layer["subdomains"] for layer in zh)


@pytest.mark.parametrize(("options", "says"), [
    ({"basemap": "custom"}, "needs tile_url"),
    ({"basemap": "tianditu"}, "tianditu_key"),
    ({"basemap": "osm", "tile_url": "http://x/{z}/{x}/{y}.png"}, "only for basemap = custom"),
    ({"tile_url": "http://x/tiles.png"}, "{z}"),
    ({"basemap": "osm", "tile_crs": "gcj02"}, "are WGS-84"),
    ({"basemap": "bing"}, "basemap"),
])
def test_bad_basemaps_are_refused_by_name(options, says):
    with pytest.raises(ValidationError, match=says.replace("{", r"\{").replace("}", r"\}")):
        Settings(**options)


def test_gcj02_tiles_draw_in_the_shifted_crs():
    assert leaflet_crs("wgs84") == "EPSG3857" and leaflet_crs("gcj02") == "HazmapGCJ02"
    with pytest.raises(ValueError, match="bd09"):
        leaflet_crs("bd09")
