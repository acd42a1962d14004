"""The layer files the map loads by URL: one GeoJSON per layer and world version, gzip when
the client takes it, cached for good, and a clear 404 for a stale version or unknown layer."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request

import pytest

from layers.catalog import LAYERS

pytestmark = pytest.mark.browser


def fetch(url: str, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize("layer", [layer.name for layer in LAYERS])
def test_each_layer_is_served_gzipped_with_every_stored_feature(live_server, layer):
    url = f"{live_server.url}layers/{live_server.world_version}/{layer}.geojson"
    status, headers, body = fetch(url, {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"] == "application/geo+json"
    assert headers["Content-Encoding"] == "gzip"
    assert "immutable" in headers["Cache-Control"] and "Accept-Encoding" in headers["Vary"]
    collection = json.loads(gzip.decompress(body))
    features = collection["features"]
    assert len(features) == live_server.stored.counts[layer]
    stored_ids = set(live_server.stored.world.table(layer)["id"])
    assert {f["properties"]["id"] for f in features} == stored_ids
    assert all(f["geometry"] and f["geometry"]["coordinates"] for f in features)


def test_plain_body_without_gzip_and_304_on_a_known_etag(live_server):
    url = f"{live_server.url}layers/{live_server.world_version}/hazard_sources.geojson"
    status, headers, body = fetch(url, {"Accept-Encoding": "identity"})
    assert status == 200 and "Content-Encoding" not in headers
    assert len(json.loads(body)["features"]) == live_server.stored.counts["hazard_sources"]
    status, _, body = fetch(url, {"Accept-Encoding": "identity", "If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""


def test_stale_version_and_unknown_layer_are_404_with_a_reason(live_server):
    status, _, body = fetch(f"{live_server.url}layers/not-{live_server.world_version}/entities.geojson")
    assert status == 404 and live_server.world_version in json.loads(body)["error"]
    status, _, body = fetch(f"{live_server.url}layers/{live_server.world_version}/pings.geojson")
    assert status == 404 and "pings" in json.loads(body)["error"]


def test_base_layers_are_served(live_server):
    for name, expected in (("land", 1), ("district_outlines", None), ("district_labels", None)):
        status, _, body = fetch(f"{live_server.url}layers/{live_server.world_version}/{name}.geojson")
        assert status == 200
        features = json.loads(body)["features"]
        assert len(features) == (expected or live_server.stored.counts["districts"])
