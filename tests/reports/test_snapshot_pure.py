"""spatial/snapshot.py on its own: the area's score is its items' share of the risk grid (the
whole city's is the grid's total; two halves add up to the whole), and areas are checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from tests.reports.conftest import AT


@pytest.fixture(scope="module")
def picture(stored):
    from layers.grid import cargo_by_vehicle
    from spatial.risk import RiskGrid

    world = stored["world"]
    v = world.vehicles
    cargo = cargo_by_vehicle(world, at=AT).reindex(v["id"])
    trucks = pd.DataFrame({"vehicle_id": v["id"].to_numpy(object), "lon": v.geometry.x.to_numpy(),
                           "lat": v.geometry.y.to_numpy(), "cargo_state": cargo["cargo_state"].to_numpy(object),
                           "hazard_class": cargo["hazard_class"].to_numpy(object),
                           "un_number": cargo["un_number"].to_numpy(object)})
    mp = world.monitoring_points.iloc[::7]
    alarms = pd.DataFrame({"subject_id": mp["id"].to_numpy(object), "lon": mp.geometry.x.to_numpy(),
                           "lat": mp.geometry.y.to_numpy(), "severity": (np.arange(len(mp)) % 4) + 1})
    grid = RiskGrid(world)
    grid.apply(trucks=trucks, alarms=alarms, incidents=alarms)
    incidents = pd.DataFrame(columns=["id", "rule", "subject_id", "severity", "status", "first_time", "closed_at",
                                      "lon", "lat"])
    return {"world": world, "trucks": trucks, "alarms": alarms, "rows": grid.rows(), "incidents": incidents}


def snap(picture, kind, value):
    from spatial.snapshot import resolve_area, snapshot

    p = picture
    return snapshot(p["world"], resolve_area(p["world"], kind, value), AT, trucks=p["trucks"], alarms=p["alarms"],
                    open_alerts=p["alarms"], rows=p["rows"], incidents=p["incidents"])


def test_whole_city_is_the_grid_total_and_halves_add_up(picture):
    world = picture["world"]
    w, s, e, n = world.districts.total_bounds
    whole = snap(picture, "bbox", f"{w - 0.01},{s - 0.01},{e + 0.01},{n + 0.01}")
    assert whole.figures["score"] == pytest.approx(picture["rows"]["value"].sum() / 1000, abs=1e-9)
    assert whole.figures["hazard_sources"] == len(world.hazard_sources)
    mid = (w + e) / 2
    west = snap(picture, "bbox", f"{w - 0.01},{s - 0.01},{mid},{n + 0.01}")
    east = snap(picture, "bbox", f"{mid},{s - 0.01},{e + 0.01},{n + 0.01}")
    # an item exactly on the cut would count twice: the demo world has none there
    for key in ("score", "score_hazard", "score_trucks", "score_exposure", "trucks", "entities"):
        assert west.figures[key] + east.figures[key] == pytest.approx(whole.figures[key], abs=1e-6), key
    assert west.figures["score"] > 0 and east.figures["score"] > 0


def test_bad_areas_are_refused(picture):
    from spatial.snapshot import AreaError, resolve_area

    world = picture["world"]
    bowtie = {"type": "Polygon", "coordinates": [[[121.6, 29.8], [121.8, 29.9], [121.8, 29.8], [121.6, 29.9],
                                                  [121.6, 29.8]]]}
    for kind, value, message in [("geojson", bowtie, "self-intersecting"),
                                 ("geojson", {"type": "Point", "coordinates": [121.6, 29.8]}, "Polygon"),
                                 ("district", "Atlantis", "unknown district"), ("park", "nowhere", "unknown park"),
                                 ("bbox", "1,2,3", "four numbers"), ("bbox", "100,10,101,11", "wholly outside")]:
        with pytest.raises(AreaError, match=message):
            resolve_area(world, kind, value)
    area = resolve_area(world, "district", "Beilun")  # English name
    assert area.clipped_share == 0 and shapely.equals(area.geometry,
                                                      world.districts[world.districts["name_en"] == "Beilun"].geometry.iloc[0])


def test_time_checks():
    from spatial.snapshot import AreaError, check_time

    now = pd.Timestamp("2026-11-03T00:00:00Z")
    check_time(now - pd.Timedelta(hours=1), now, now - pd.Timedelta(days=1))
    with pytest.raises(AreaError, match="future"):
        check_time(now + pd.Timedelta(seconds=1), now, now - pd.Timedelta(days=1))
    with pytest.raises(AreaError, match="before the store's data"):
        check_time(now - pd.Timedelta(days=2), now, now - pd.Timedelta(days=1))
    with pytest.raises(AreaError, match="no pings or events"):
        check_time(now, now, None)
