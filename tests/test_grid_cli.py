"""`hazmap grid --at TIME`: the grid rebuilt from the store's pings and events as they stood
at TIME, equal to spatial/risk.py's score of the picture a test sets up by hand."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from spatial.model import Event, PingBatch

AT = pd.Timestamp("2026-11-02T10:00:00+08:00").tz_convert("UTC")
MIN = pd.Timedelta(minutes=1)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    from data.demo import build_world
    from data.reference import load_chemicals
    from data.store import Store

    url = f"sqlite:///{(tmp_path_factory.mktemp('grid') / 'hazmap.sqlite').as_posix()}"
    world = build_world(seed=3, scale=0.02, chemicals=load_chemicals())
    v = world.vehicles
    ids = v["id"].to_numpy(object)
    x, y = v.geometry.x.to_numpy(), v.geometry.y.to_numpy()
    points = world.monitoring_points
    mp = points["id"].to_numpy(object)

    def ms(ts):
        return int(ts.value // 1_000_000)

    pings = PingBatch.from_arrays(
        [ids[0], ids[0], ids[1], ids[2]],
        [ms(AT - 10 * MIN), ms(AT + 5 * MIN), ms(AT - 45 * MIN), ms(AT - MIN)],
        [x[0], x[0] + 0.2, x[1], x[2]], [y[0], y[0], y[1], y[2]])

    def event(rule, subject, episode, phase, start, end=None, severity=1, lon=float("nan"), lat=float("nan")):
        return Event(rule, subject, episode, phase, start, end, lon, lat, severity, {})

    events = [
        event("point_level", mp[0], "E1", "open", AT - 20 * MIN, severity=1),  # open at T: an alarm
        event("point_level", mp[1], "E2", "open", AT - 30 * MIN, severity=2),
        event("point_level", mp[1], "E2", "close", AT - 30 * MIN, AT - 5 * MIN, severity=2),  # closed by T
        event("speeding", ids[2], "E3", "open", AT - 15 * MIN, severity=2, lon=x[2], lat=y[2]),
        event("speeding", ids[2], "E3", "update", AT - 15 * MIN, severity=3, lon=x[2], lat=y[2]),  # newest: 3
        event("stop", ids[0], "E4", "open", AT - 12 * MIN, severity=4, lon=x[0], lat=y[0]),  # not an alert
        event("offline", ids[3], "E5", "open", AT + 2 * MIN, severity=3, lon=x[3], lat=y[3]),  # after T
    ]
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
        store.write_pings(pings)
        store.write_events(events)
    with Store.open(url) as store:
        world = store.load_world(chemicals=load_chemicals())
    return {"url": url, "world": world, "ids": ids, "mp": mp, "x": x, "y": y,
            "point_xy": (points.geometry.x.to_numpy(), points.geometry.y.to_numpy())}


def run(stored, *args, env=None):
    from app.cli import cli

    result = CliRunner().invoke(cli, list(args), env={"HAZMAP_DATABASE_URL": stored["url"], **(env or {})},
                                catch_exceptions=True)
    return result


def expected(stored, resolution):
    from layers.grid import cargo_by_vehicle
    from spatial.risk import RiskGrid

    world, ids, x, y = stored["world"], stored["ids"], stored["x"], stored["y"]
    cargo = cargo_by_vehicle(world, at=AT).reindex([ids[0], ids[2]])
    trucks = pd.DataFrame({"vehicle_id": [ids[0], ids[2]], "lon": [x[0], x[2]], "lat": [y[0], y[2]],
                           "cargo_state": cargo["cargo_state"].to_numpy(object),
                           "hazard_class": cargo["hazard_class"].to_numpy(object),
                           "un_number": cargo["un_number"].to_numpy(object)})
    px, py = stored["point_xy"]
    alarm = pd.DataFrame({"subject_id": [stored["mp"][0]], "lon": [px[0]], "lat": [py[0]], "severity": [1]})
    incidents = pd.concat([alarm, pd.DataFrame({"subject_id": [ids[2]], "lon": [x[2]], "lat": [y[2]],
                                                "severity": [3]})], ignore_index=True)
    grid = RiskGrid(world)
    grid.apply(trucks=trucks, alarms=alarm, incidents=incidents)
    return grid.scores(resolution)


def test_grid_at_a_past_time_is_the_score_of_the_picture_then(stored):
    result = run(stored, "grid", "--at", AT.isoformat(), "--res", "9", "--json")
    assert result.exit_code == 0, result.output
    cells = pd.DataFrame(json.loads(result.stdout)["cells"]).set_index("cell")
    want = expected(stored, 9)
    assert sorted(cells.index) == sorted(format(int(c), "x") for c in want.index)
    for cell, row in want.iterrows():
        got = cells.loc[format(int(cell), "x")]
        assert got["score"] == pytest.approx(row["score"], abs=1e-3)
        assert got["band"] == row["band"]
        for part in ("hazard", "alarms", "trucks", "exposure", "incidents"):
            assert got[part] == pytest.approx(row[part], abs=1e-3)
    # the picture at T: one alarm, two subjects alerted (the point, the speeding truck)
    assert cells["alarms"].sum() > 0 and cells["incidents"].gt(0).sum() == 2


def test_grid_writes_geojson_hexagons(stored, tmp_path):
    out = tmp_path / "grid.geojson"
    result = run(stored, "grid", "--at", AT.isoformat(), "--out", str(out))
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["properties"]["resolution"] == 8 and len(doc["features"]) == len(expected(stored, 8))
    ring = doc["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 7  # a hexagon, closed
    assert "risk grid at 2026-11-02 10:00:00" in result.stdout


@pytest.mark.parametrize("args, message", [
    (("--res", "5"), "--res must be one of 6, 7, 8, 9"),
    (("--out", "grid.csv"), "--out must end in .geojson"),
    (("--window", "0"), "--window"),
])
def test_bad_options_are_one_clear_error(stored, args, message):
    from app.cli import UserError

    result = run(stored, "grid", "--at", AT.isoformat(), *args)
    assert isinstance(result.exception, UserError) and message in str(result.exception)


def test_a_bad_time_is_refused(stored):
    from app.cli import UserError

    result = run(stored, "grid", "--at", "yesterday-ish")
    assert isinstance(result.exception, UserError) and "--at must be an ISO 8601 time" in str(result.exception)


def test_the_weights_come_from_the_settings(stored):
    from app.cli import UserError

    env = {"HAZMAP_RISK_WEIGHTS": '{"incident_pts": [0, 0, 0, 0], "alarm_pts": [50, 0, 0, 0]}'}
    result = run(stored, "grid", "--at", AT.isoformat(), "--json", env=env)
    assert result.exit_code == 0, result.output
    cells = pd.DataFrame(json.loads(result.stdout)["cells"])
    assert cells["incidents"].sum() == 0 and cells["alarms"].sum() == 50
    result = run(stored, "grid", "--at", AT.isoformat(), env={"HAZMAP_RISK_WEIGHTS": '{"exposure": 1}'})
    assert isinstance(result.exception, UserError) and "unknown risk weights ['exposure']" in str(result.exception)
