"""The rules benchmark's parts on a tiny run, so they cannot rot (not a timing test)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.rules import COMPARED_RULES, EVENT_KEY, compare_on_subsample, engine_throughput, event_key, same_events
from data.demo import build_world
from data.fleet_day import DAY_S, fleet_day, fleet_day_chunks, plan_fleet_day
from spatial.rules.engine import Engine


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
    assert result["stops"] > 0 and result["engine_events"] > 0
    assert result["compared_rules"] == COMPARED_RULES and set(result["events_by_rule"]) == set(COMPARED_RULES)
    # both ratios, warm and cold, from CPU times measured in this run
    assert result["ratio_vs_geopandas"] > 0 and result["ratio_vs_geopandas_cold"] > 0
    assert result["geopandas_prepare_cpu_s"] > 0 and result["geopandas_cold_cpu_s"] > result["geopandas_cpu_s"]


def test_events_are_compared_on_times_and_severity_and_empty_sets_never_match(small):
    world, plan = small
    events = Engine(world, rules=COMPARED_RULES).run(fleet_day(plan, trucks=np.arange(6)))
    keys = {event_key(e) for e in events if e.rule != "stop"}
    assert keys and all(len(k) == len(EVENT_KEY) for k in keys)
    assert same_events(keys, set(keys))
    k = next(iter(keys))
    for field, other in (("start_ms", k[4] + 1), ("end_ms", 1 if k[5] is None else None), ("severity", k[6] + 1)):
        changed = tuple(other if name == field else v for name, v in zip(EVENT_KEY, k))
        assert not same_events(keys, (keys - {k}) | {changed}), field
    assert not same_events(set(), set())


def test_the_cli_takes_the_bench_options(monkeypatch):
    """`hazmap bench rules` hands its arguments to the bench's own parser (one definition)."""
    import bench.rules
    from typer.testing import CliRunner

    from app.cli import cli

    seen = {}
    monkeypatch.setattr(bench.rules, "run_rules_bench", lambda *args: seen.setdefault("args", args))
    result = CliRunner().invoke(cli, ["bench", "rules", "--scale", "0.05", "--copies", "1", "--subsample-trucks",
                                      "0", "--chunk-s", "1800", "--copies-hours", "2", "--hours", "3", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert seen["args"] == (5, 0.05, 3.0, 1, 2.0, 0, 1800)
    options = {a.option_strings[-1] for a in bench.rules.parser()._actions}
    shown = CliRunner().invoke(cli, ["bench", "rules", "--help"])
    assert shown.exit_code == 0 and all(o in shown.output for o in options), shown.output
    assert CliRunner().invoke(cli, ["bench", "rules", "--bogus"]).exit_code != 0


def test_the_benches_need_only_the_installed_dependencies():
    """Every third-party module bench/ imports comes from a distribution in [project]
    dependencies, so `hazmap bench …` runs after the README's `pip install -e .`."""
    import ast
    import importlib.metadata
    import re
    import sys
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    declared = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower().replace("_", "-")
                for d in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    first_party = {"app", "bench", "data", "layers", "spatial", "reports"}  # not tests/: it is not installed
    missing = set()
    for path in sorted((root / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                top = name.split(".")[0]
                if top in first_party or top in sys.stdlib_module_names:
                    continue
                dists = {d.lower().replace("_", "-") for d in providers.get(top, [top])}
                if not dists & declared:
                    missing.add((path.name, top))
    assert not missing, f"bench imports modules no [project] dependency provides: {sorted(missing)}"
