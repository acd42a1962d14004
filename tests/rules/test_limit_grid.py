"""The speed-limit grid only narrows: where it answers, it answers what the exact lookup does."""

from __future__ import annotations

import numpy as np
import shapely

from data.demo import build_world
from spatial.crs import geometry_to_metric
from spatial.rules.speeding import (
    LIMIT_GRID_CELL_M,
    LimitGrid,
    LimitIndex,
    SpeedingSettings,
)


def test_grid_answers_agree_with_the_exact_lookup_near_roads_and_zones():
    world = build_world(5, 0.05)
    settings = SpeedingSettings()
    index = LimitIndex.build(world)
    grid = LimitGrid.build(index, settings.road_match_m)
    rng = np.random.default_rng(0)
    roads = np.asarray(geometry_to_metric(world.roads.geometry.to_numpy()), dtype=object)
    which = rng.integers(0, len(roads), 60_000)
    on_road = shapely.line_interpolate_point(roads[which], rng.random(len(which)), normalized=True)
    # offsets across the match distance and the cell size, where narrowing is hardest
    angle = rng.uniform(0, 2 * np.pi, len(which))
    radius = rng.uniform(0, 3 * settings.road_match_m, len(which))
    x = shapely.get_x(on_road) + radius * np.cos(angle)
    y = shapely.get_y(on_road) + radius * np.sin(angle)
    zones = np.asarray(geometry_to_metric(world.restricted_zones.geometry.to_numpy()), dtype=object)
    bounds = shapely.bounds(zones)[rng.integers(0, len(zones), 5_000)]  # in and around the zones
    zx = rng.uniform(bounds[:, 0] - 50, bounds[:, 2] + 50)
    zy = rng.uniform(bounds[:, 1] - 50, bounds[:, 3] + 50)
    x = np.r_[x, zx, 0.0]
    y = np.r_[y, zy, 0.0]  # the last: far outside the grid

    answer = grid.lookup(x, y, settings.default_limit_kmh)
    exact = index.limits(x, y, settings.road_match_m, settings.default_limit_kmh)[0]
    sure = ~np.isnan(answer)
    assert np.array_equal(answer[sure], exact[sure])
    assert sure.mean() > 0.5  # and it does narrow
    assert answer[-1] == settings.default_limit_kmh
    assert LIMIT_GRID_CELL_M > 0
