import numpy as np
import pytest
import shapely

from spatial import crs

# Ningbo's extent, with a margin (WGS-84).
NINGBO_BBOX = (120.8, 28.8, 122.35, 30.5)


def _metres(dlon, dlat, lat):
    return np.hypot(np.asarray(dlon) * 111_320 * np.cos(np.radians(lat)), np.asarray(dlat) * 110_574)


def test_forward_matches_published_value():
    # The value every GCJ-02 implementation (eviltransform, coordtransform) reproduces.
    lon, lat = crs.wgs84_to_gcj02(116.404, 39.915)
    assert lon == pytest.approx(116.41024449916938, abs=1e-9)
    assert lat == pytest.approx(39.91640428150164, abs=1e-9)


def test_offset_around_ningbo_is_a_few_hundred_metres():
    lon, lat = crs.wgs84_to_gcj02(121.55, 29.87)
    assert 300 < _metres(lon - 121.55, lat - 29.87, 29.87) < 700


def test_inverse_round_trips_within_5_cm_over_ningbo():
    rng = np.random.default_rng(1)
    lon = rng.uniform(NINGBO_BBOX[0], NINGBO_BBOX[2], 200_000)
    lat = rng.uniform(NINGBO_BBOX[1], NINGBO_BBOX[3], 200_000)
    back_lon, back_lat = crs.gcj02_to_wgs84(*crs.wgs84_to_gcj02(lon, lat))
    assert _metres(back_lon - lon, back_lat - lat, lat).max() <= 0.05
    # and the other way: GCJ-02 -> WGS-84 -> GCJ-02
    fwd_lon, fwd_lat = crs.wgs84_to_gcj02(*crs.gcj02_to_wgs84(lon, lat))
    assert _metres(fwd_lon - lon, fwd_lat - lat, lat).max() <= 0.05


def test_geometries_shift_every_vertex():
    poly = shapely.box(121.5, 29.8, 121.6, 29.9)
    shifted = crs.geometry_wgs84_to_gcj02(np.array([poly]))[0]
    back = crs.geometry_gcj02_to_wgs84(np.array([shifted]))[0]
    assert shifted.distance(poly) > 0.001 or not shifted.equals(poly)
    assert shapely.hausdorff_distance(back, poly) < 1e-8


def test_metric_projection_is_utm_51n():
    x, y = crs.to_metric(123.0, 0.0)  # UTM 51N central meridian at the equator
    assert x == pytest.approx(500_000, abs=1e-6) and y == pytest.approx(0, abs=1e-6)
    lon, lat = crs.from_metric(*crs.to_metric([121.55, 121.9], [29.87, 29.93]))
    np.testing.assert_allclose(lon, [121.55, 121.9], atol=1e-9)
    np.testing.assert_allclose(lat, [29.87, 29.93], atol=1e-9)
    # one kilometre east is one kilometre in the metric CRS (scale factor near 1 at Ningbo)
    line = crs.geometry_to_metric(np.array([shapely.LineString([(121.55, 29.87), (121.5603, 29.87)])]))[0]
    assert line.length == pytest.approx(996, rel=0.01)
