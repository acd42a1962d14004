"""spatial/impact.py against a direct shapely computation (a buffer in metres, one geometry at a time)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from spatial.crs import geometry_to_metric, to_metric
from spatial.impact import erg_distances, impact, is_night


@pytest.fixture(scope="module")
def world():
    from data.demo import build_world

    return build_world(seed=7, scale=0.05)


def _oracle(geometries, lon, lat, radius_m):
    x, y = to_metric([lon], [lat])
    zone = shapely.Point(x[0], y[0]).buffer(radius_m, quad_segs=256)
    subject = shapely.Point(x[0], y[0])
    out = []
    for i, geometry in enumerate(geometries):  # the slow, obvious way on purpose
        metric = geometry_to_metric(np.array([geometry], dtype=object))[0]
        distance = metric.distance(subject)
        if distance <= radius_m:
            out.append((distance, i))
        else:  # the buffer is a polygon: only near its edge may it disagree
            assert not zone.buffer(-0.5).intersects(metric)
    return [i for _, i in sorted(out)]


def test_erg_figures_day_and_night_from_the_catalogue(world):
    chlorine_day = erg_distances(["1017"], world.chemicals, night=False)
    chlorine_night = erg_distances(["1017", "1005"], world.chemicals, night=True)
    # DOMAIN.md §7: chlorine 60/300/1100, ammonia 30/100/200
    assert (chlorine_day.isolation_m, chlorine_day.protective_m, chlorine_day.un_number) == (60, 300, "1017")
    assert (chlorine_night.protective_m, chlorine_night.un_number) == (1100, "1017")
    assert np.isnan(erg_distances([], world.chemicals, night=False).protective_m)


def test_day_and_night_at_ningbo():
    assert not is_night(pd.Timestamp("2026-03-02T02:00Z"))  # 10:00 local
    assert is_night(pd.Timestamp("2026-03-02T13:00Z"))  # 21:00 local
    assert not is_night(pd.Timestamp("2026-03-02T22:00Z"))  # 06:00 local: day starts
    assert is_night(pd.Timestamp("2026-03-02T21:59Z"))


@pytest.mark.parametrize("at", ["2026-03-02T02:00Z", "2026-03-02T14:00Z"])
def test_the_impact_lists_what_a_direct_shapely_computation_lists(world, at):
    source = world.hazard_sources.iloc[0]
    site = world.sensitive_sites.geometry.iloc[0].centroid  # beside a site, so there is one to find
    lon, lat = site.x + 0.001, site.y + 0.0005
    rng = np.random.default_rng(1)
    trucks = pd.DataFrame({"id": [f"VEH-{i:06d}" for i in range(400)],
                           "lon": lon + rng.uniform(-0.02, 0.02, 400), "lat": lat + rng.uniform(-0.02, 0.02, 400)})
    found = impact(world, lon, lat, ["1017"], pd.Timestamp(at), trucks=trucks, exclude_ids=[source["id"]])
    radius = 1100 if is_night(pd.Timestamp(at)) else 300
    assert found.distances.protective_m == radius

    sites = world.sensitive_sites
    expected_sites = sites["id"].to_numpy()[_oracle(sites.geometry, lon, lat, radius)]
    assert len(expected_sites) > 0
    assert found.sites["id"].tolist() == list(expected_sites)
    points = shapely.points(trucks["lon"], trucks["lat"])
    expected_trucks = trucks["id"].to_numpy()[_oracle(points, lon, lat, radius)]
    assert len(expected_trucks) > 0
    assert found.trucks["id"].tolist() == list(expected_trucks)
    assert (np.diff(found.trucks["distance_m"]) >= 0).all()  # nearest first
    iso = found.trucks["distance_m"] <= 60
    assert (found.trucks.loc[iso, "zone"] == "isolation").all()
    assert (found.trucks.loc[~iso, "zone"] == "protective").all()
    assert source["id"] not in found.hazard_sources["id"].tolist()


def test_a_non_finite_position_is_refused(world):
    with pytest.raises(ValueError, match="position"):
        impact(world, float("nan"), 29.9, ["1017"], pd.Timestamp("2026-03-02T02:00Z"))


@pytest.mark.parametrize("night", [False, True])
def test_protective_distance_per_group_is_erg_distances_of_each_group(world, night):
    from spatial.impact import protective_by_group

    goods = world.waybill_goods
    grouped = protective_by_group(goods["waybill_id"], goods["un_number"], world.chemicals, night)
    for waybill_id, group in list(goods.groupby("waybill_id"))[:60]:  # the one-at-a-time oracle
        expected = erg_distances(group["un_number"], world.chemicals, night).protective_m
        assert grouped[waybill_id] == pytest.approx(expected, nan_ok=True), waybill_id
    assert grouped.notna().any()
