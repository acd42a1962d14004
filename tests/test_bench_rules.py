"""The rules benchmark's parts on a tiny run, so they cannot rot (not a timing test)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.rules import compare_on_subsample, engine_throughput
from data.demo import build_world
from data.fleet_day import DAY_S, fleet_day, fleet_day_chunks, plan_fleet_day


@pytest.fixture(scope="module")
def small():
    world = build_world(3, 0.05)
    return world, plan_fleet_day(world, seed=3)


def test_fleet_day_is_deterministic_and_complete(small):
    _, plan = small
    a = fleet_day(plan, trucks=np.arange(4), hours=2.0)
    b = fleet_day(plan, trucks=np.arange(4), hours=2.0)
    assert len(a) == 4 * 2 * 3600 // plan.interval_s
    assert np.array_equal(a.lon, b.lon) and np.array_equal(a.epoch_ms, b.epoch_ms)
    # arrival order is by time, every truck each interval
    assert (np.diff(a.epoch_ms) >= 0).all()
    assert plan.pings_per_truck() == DAY_S // 30


def test_copies_are_unregistered_replicas(small):
    _, plan = small
    chunk = next(fleet_day_chunks(plan, chunk_s=600, copies=3, trucks=np.arange(2)))
    ids = set(chunk.vehicle_id)
    assert {f"{plan.vehicle_id[0]}~1", f"{plan.vehicle_id[1]}~2"} <= ids
    assert len(chunk) == 3 * 2 * 20


def test_trucks_drive_their_routes_and_some_break_rules(small):
    world, plan = small
    run = engine_throughput(world, plan, chunk_s=1800, hours=24.0)
    assert run["pings"] == len(plan) * plan.pings_per_truck()
    assert run["released"] == run["pings"]  # clean data: cleaning drops nothing
    assert run["events"] > 0


def test_comparison_pipelines_agree_on_a_few_trucks(small):
    world, plan = small
    result = compare_on_subsample(world, plan, trucks=4, seed=3)
    assert result["stops_identical"], result
    assert result["events_identical"], (result["events_only_engine"], result["events_only_geopandas"])
    assert result["stops"] > 0
