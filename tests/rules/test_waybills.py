"""The waybill stage: when a waybill is in force and the truck loaded, when an unloading stop or
the after-arrival allowance ends it, and that carrying state across batches changes nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from spatial.rules import waybills
from spatial.rules.base import STOP_COLUMNS, RuleWorld
from spatial.rules.waybills import WaybillSettings
from tests.tracks import (
    ORIGIN_X,
    ORIGIN_Y,
    T0_MS,
    concat,
    layer,
    metric_geometry,
    rule_batch,
    tiny_world,
    track,
    vehicle,
)

A, B = "VEH-000001", "VEH-000002"
HOUR_MS = 3_600_000
UNLOAD_XY = (5000.0, 0.0)


def entity(entity_id: str, xy) -> dict:
    return {"id": entity_id, "name": entity_id, "licensed": True, "category": "use", "district_adcode": "330212",
            "park_id": None, "geometry": metric_geometry(shapely.Point(*xy))}


def waybill(wb_id: str, vehicle_id: str, dep_h: float | None, arr_h: float, unloading: str = "ENT-U") -> dict:
    ts = lambda h: None if h is None else pd.Timestamp(T0_MS + int(h * HOUR_MS), unit="ms", tz="UTC")
    return {"id": wb_id, "vehicle_id": vehicle_id, "status": "active", "loading_site_id": "ENT-L",
            "unloading_site_id": unloading, "consignor": "c", "consignee": "d", "carrier": "e",
            "planned_departure": ts(dep_h), "planned_arrival": ts(arr_h), "emergency_phone": "0574",
            "geometry": metric_geometry(shapely.LineString([(0, 0), UNLOAD_XY]))}


def world(*rows: dict) -> RuleWorld:
    return RuleWorld(tiny_world(
        vehicles=layer("vehicles", [vehicle(A), vehicle(B)]),
        entities=layer("entities", [entity("ENT-L", (0, 0)), entity("ENT-U", UNLOAD_XY)]),
        waybills=layer("waybills", list(rows)),
    ))


def pings_at(vehicle_id: str, hours: list[float]):
    """One ping per given hour after T0, all at the origin (position is irrelevant here)."""
    return concat([track(vehicle_id, [(0, 0)], start_ms=T0_MS + int(h * HOUR_MS)) for h in hours])


def stops(rows: list[tuple[int, float, tuple[float, float]]]) -> pd.DataFrame:
    """stops_opened rows: (slot, confirmed hour, median offset in metres)."""
    data = {c: [] for c in STOP_COLUMNS}
    for slot, hour, (dx, dy) in rows:
        confirmed = T0_MS + int(hour * HOUR_MS)
        values = {"slot": slot, "vehicle_id": [A, B][slot], "episode_id": f"stop:{slot}:{confirmed}",
                  "start_ms": confirmed - 300_000, "confirmed_ms": confirmed, "end_ms": -1, "lon": np.nan,
                  "lat": np.nan, "x": ORIGIN_X + dx, "y": ORIGIN_Y + dy, "waybill": -1, "loaded": False}
        for c in STOP_COLUMNS:
            data[c].append(values[c])
    return pd.DataFrame(data)


def annotate(rw: RuleWorld, hours: list[float], stop_rows=(), vehicle_id=A, settings=None, state=None):
    batch = rule_batch(pings_at(vehicle_id, hours), rw)
    state = state or waybills.initial_state()
    state, out = waybills.annotate(state, batch, rw, stops(list(stop_rows)), settings or WaybillSettings())
    return state, list(out.waybill), list(out.loaded)


def test_active_from_departure_until_after_arrival_allowance():
    rw = world(waybill("WB-1", A, 1, 2))
    hours = [0.5, 0.999, 1, 1.5, 2, 3, 4, 4.001, 5]
    _, wb, loaded = annotate(rw, hours)
    # 2 h after planned arrival (default after_arrival_s) is the last moment in force
    assert wb == [-1, -1, 0, 0, 0, 0, 0, -1, -1]
    assert loaded == [w == 0 for w in wb]


def test_after_arrival_allowance_is_a_setting():
    rw = world(waybill("WB-1", A, 1, 2))
    _, wb, _ = annotate(rw, [2, 2.5, 2.6], settings=WaybillSettings(after_arrival_s=1800))
    assert wb == [0, 0, -1]


def test_unloading_stop_ends_the_waybill_at_its_confirming_ping():
    rw = world(waybill("WB-1", A, 1, 2))
    near = (UNLOAD_XY[0] + 299.0, 0.0)
    _, wb, loaded = annotate(rw, [1, 1.8, 1.9, 1.95, 2.5], [(0, 1.9, near)])
    assert wb == [0, 0, 0, -1, -1] and loaded == [True, True, True, False, False]


@pytest.mark.parametrize("offset_m, ends", [(299.9, True), (300.0, True), (300.1, False), (2000.0, False)])
def test_unloading_stop_must_be_within_site_match(offset_m, ends):
    rw = world(waybill("WB-1", A, 1, 2))
    _, wb, _ = annotate(rw, [1.95], [(0, 1.9, (UNLOAD_XY[0], offset_m))])
    assert wb == ([-1] if ends else [0])


def test_stop_at_the_loading_site_does_not_end_it():
    rw = world(waybill("WB-1", A, 1, 2))
    _, wb, _ = annotate(rw, [1.2, 1.5], [(0, 1.1, (0.0, 0.0))])
    assert wb == [0, 0]


def test_stop_of_another_vehicle_or_before_departure_does_not_end_it():
    rw = world(waybill("WB-1", A, 1, 2), waybill("WB-2", B, 5, 6))
    near = (UNLOAD_XY[0], 0.0)
    _, wb, _ = annotate(rw, [1.5, 2.5], [(1, 1.2, near), (0, 0.9, near)])
    assert wb == [0, 0]


def test_unloading_end_is_carried_between_batches():
    rw = world(waybill("WB-1", A, 1, 2))
    near = (UNLOAD_XY[0], 10.0)
    state, wb, _ = annotate(rw, [1.0, 1.5], [(0, 1.5, near)])
    assert wb == [0, 0]
    state, wb, _ = annotate(rw, [1.6, 3.0], state=state)
    assert wb == [-1, -1]
    assert waybills.initial_state().unload_end_ms.size == 0  # the state is not shared


def test_a_stop_after_the_allowance_changes_nothing():
    rw = world(waybill("WB-1", A, 1, 2))
    state, wb, _ = annotate(rw, [4.5], [(0, 4.5, (UNLOAD_XY[0], 0.0))])
    assert wb == [-1] and (state.unload_end_ms == waybills.NEVER_MS).all()


def test_overlapping_waybills_the_latest_departed_is_in_force():
    rw = world(waybill("WB-1", A, 1, 2), waybill("WB-2", A, 1.5, 3), waybill("WB-3", A, 10, 11))
    _, wb, _ = annotate(rw, [1.2, 1.5, 2.9, 5.0, 5.01, 10.5])
    assert wb == [0, 1, 1, 1, -1, 2]


def test_the_next_waybill_starts_after_an_unloading():
    rw = world(waybill("WB-1", A, 1, 2), waybill("WB-2", A, 3, 4))
    _, wb, loaded = annotate(rw, [1.5, 2.1, 2.5, 3.0, 3.5], [(0, 2.0, (UNLOAD_XY[0], 0.0))])
    assert wb == [0, -1, -1, 1, 1] and loaded == [True, False, False, True, True]


def test_rows_are_positions_in_world_waybills_whatever_their_order():
    rw = world(waybill("WB-9", B, 0, 9), waybill("WB-2", A, 5, 6), waybill("WB-1", A, 1, 2))
    _, wb, _ = annotate(rw, [1.5, 5.5])
    assert wb == [2, 1]
    _, wb, _ = annotate(rw, [1.5], vehicle_id=B)
    assert wb == [0]


def test_unregistered_vehicles_and_unusable_waybills_are_never_on_a_waybill():
    rw = world(waybill("WB-1", "VEH-999999", 1, 2), waybill("WB-2", A, None, 2))
    _, wb, _ = annotate(rw, [1.5], vehicle_id="VEH-999999")
    assert wb == [-1]
    _, wb, _ = annotate(rw, [1.5])
    assert wb == [-1]


def test_an_unknown_unloading_site_never_matches_a_stop():
    rw = world(waybill("WB-1", A, 1, 2, unloading="ENT-NOWHERE"))
    _, wb, _ = annotate(rw, [1.5, 1.6], [(0, 1.5, (0.0, 0.0))])
    assert wb == [0, 0]


def test_no_waybills_at_all():
    rw = world()
    _, wb, loaded = annotate(rw, [1.0, 2.0], [(0, 1.0, (0.0, 0.0))])
    assert wb == [-1, -1] and loaded == [False, False]


def test_latest_departed_matches_a_brute_force_search():
    rng = np.random.default_rng(7)
    rows = [waybill(f"WB-{i}", [A, B][i % 2], float(h), float(h) + 1) for i, h in enumerate(rng.uniform(0, 48, 40))]
    rw = world(*rows)
    index = waybills.build_index(rw)
    slot = rng.integers(0, 3, 500)
    t = T0_MS + rng.integers(-HOUR_MS, 50 * HOUR_MS, 500)
    got = waybills.latest_departed(index, slot, t)
    dep = np.array([T0_MS + int(r["planned_departure"].value // 1_000_000) - T0_MS for r in rows])
    veh = np.array([0 if r["vehicle_id"] == A else 1 for r in rows])
    for k in range(500):
        mine = np.flatnonzero((veh == slot[k]) & (dep <= t[k]))
        expected = -1 if not len(mine) else int(mine[np.argmax(dep[mine])])
        assert (index.row[got[k]] if got[k] >= 0 else -1) == expected


# --- status and actual times (issue 11) ---------------------------------------------------------

def test_a_cancelled_waybill_is_never_in_force():
    cancelled = {**waybill("WB-1", A, 1, 2), "status": "cancelled"}
    _, wb, loaded = annotate(world(cancelled), [0.5, 1.0, 1.5, 3.0])
    assert wb == [-1, -1, -1, -1] and not any(loaded)


def test_a_cancelled_waybill_leaves_the_earlier_one_in_force():
    rw = world(waybill("WB-1", A, 1, 2), {**waybill("WB-2", A, 1.5, 2.5), "status": "cancelled"})
    _, wb, _ = annotate(rw, [1.2, 1.6, 3.9])
    assert wb == [0, 0, 0]


def _at(h: float) -> pd.Timestamp:
    return pd.Timestamp(T0_MS + int(h * HOUR_MS), unit="ms", tz="UTC")


def test_actual_departure_starts_the_waybill_instead_of_the_planned_one():
    late = {**waybill("WB-1", A, 1, 2), "actual_departure": _at(1.5)}
    _, wb, _ = annotate(world(late), [1.0, 1.4, 1.5, 2.0])
    assert wb == [-1, -1, 0, 0]
    early = {**waybill("WB-1", A, 1, 2), "actual_departure": _at(0.5)}
    _, wb, _ = annotate(world(early), [0.4, 0.5, 0.9])
    assert wb == [-1, 0, 0]


def test_actual_unloading_ends_the_waybill():
    done = {**waybill("WB-1", A, 1, 2), "status": "done", "actual_unloading": _at(1.75)}
    _, wb, _ = annotate(world(done), [1.5, 1.75, 1.76, 3.0])
    assert wb == [0, 0, -1, -1]
    # an unloading stop seen earlier still ends it earlier
    _, wb, _ = annotate(world(done), [1.5, 1.6, 1.7], [(0, 1.55, UNLOAD_XY)])
    assert wb == [0, -1, -1]


def test_a_fleet_start_ends_the_waybills_the_store_knows_are_over():
    rw = world(waybill("WB-1", A, 1, 2), waybill("WB-2", B, 1, 2))
    start = waybills.FleetStart(
        at_ms=T0_MS + int(1.5 * HOUR_MS), ended_waybill_id=np.array(["WB-1", "WB-404"], object),
        ended_ms=np.array([T0_MS + int(1.2 * HOUR_MS)] * 2, "int64"),
        washed_vehicle_id=np.empty(0, object), washed_ms=np.empty(0, "int64"))
    state = waybills.initial_state(rw, start)
    _, wb, _ = annotate(rw, [1.5, 2.0], state=state)
    assert wb == [-1, -1]  # without the start: in force until planned arrival + 2 h
    _, wb, _ = annotate(rw, [1.5, 2.0], vehicle_id=B, state=state)
    assert wb == [1, 1]
    with pytest.raises(ValueError, match="after the start"):
        waybills.FleetStart(at_ms=0, ended_waybill_id=np.array(["WB-1"], object), ended_ms=np.array([5]),
                            washed_vehicle_id=np.empty(0, object), washed_ms=np.empty(0, "int64"))


# --- cargo state: an empty tank carries its last cargo until washed ---------------------------

WASH_XY = (2500.0, 3000.0)


def wash_world(*rows: dict, body: str = "tank") -> RuleWorld:
    return RuleWorld(tiny_world(
        vehicles=layer("vehicles", [vehicle(A, body=body), vehicle(B, body=body)]),
        entities=layer("entities", [entity("ENT-L", (0, 0)), entity("ENT-U", UNLOAD_XY)]),
        waybills=layer("waybills", list(rows)),
        wash_stations=layer("wash_stations", [{"id": "WS-1", "name": "w", "district_adcode": "330212",
                                               "geometry": metric_geometry(shapely.Point(*WASH_XY))}]),
    ))


def residue(rw, batches, state=None):
    """Feed (ping hours, stop rows) batches; the residue rows of each batch's stops."""
    state = state or waybills.initial_state()
    out = []
    for hours, stop_rows in batches:
        frame = stops(list(stop_rows))
        batch = rule_batch(pings_at(A, hours), rw)
        state, _ = waybills.annotate(state, batch, rw, frame)
        out.append(list(waybills.stop_residue(state, rw, frame)))
    return out


def test_an_empty_tank_carries_its_last_cargo_until_washed():
    rw = wash_world(waybill("WB-1", A, 1, 2))
    far = (9000.0, 9000.0)
    got = residue(rw, [
        ([1.0, 1.5], [(0, 1.5, far)]),  # loaded: no residue
        ([3.0, 4.5], [(0, 4.5, far)]),  # after arrival + 2 h: empty, uncleaned, WB-1's cargo
        ([5.0], [(0, 5.0, WASH_XY)]),  # at the wash station: washed there
        ([6.0], [(0, 6.0, far)]),  # clean from then on
    ])
    assert got == [[-1], [0], [-1], [-1]]


def test_a_washing_counts_only_up_to_the_stop_and_after_the_unloading():
    rw = wash_world(waybill("WB-1", A, 1, 2))
    far = (9000.0, 9000.0)
    # in one batch: a stop before the washing still carries residue, one after does not
    assert residue(rw, [([4.1, 4.6, 5.0], [(0, 4.6, far), (0, 4.1, far), (0, 5.0, WASH_XY)])]) == [[0, 0, -1]]
    # a washing before the waybill ended cleans nothing
    assert residue(rw, [([0.5], [(0, 0.5, WASH_XY)]), ([4.5], [(0, 4.5, far)])]) == [[-1], [0]]


def test_a_van_or_a_washed_start_carries_no_residue():
    far = (9000.0, 9000.0)
    assert residue(wash_world(waybill("WB-1", A, 1, 2), body="van"), [([4.5], [(0, 4.5, far)])]) == [[-1]]
    rw = wash_world(waybill("WB-1", A, 1, 2))
    start = waybills.FleetStart(at_ms=T0_MS + 5 * HOUR_MS, ended_waybill_id=np.empty(0, object),
                                ended_ms=np.empty(0, "int64"), washed_vehicle_id=np.array([A], object),
                                washed_ms=np.array([T0_MS + int(4.2 * HOUR_MS)], "int64"))
    assert residue(rw, [([5.5], [(0, 5.5, far)])], state=waybills.initial_state(rw, start)) == [[-1]]
    assert residue(rw, [([5.5], [(0, 5.5, far)])]) == [[0]]
