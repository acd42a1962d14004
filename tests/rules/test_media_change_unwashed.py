"""media_change_unwashed: boundary cases, a plain-Python oracle, streaming, the demo world.

Pings carry their waybill row as the engine's waybill stage would give it; wash visits are
hand-built stops (confirmed at one of the truck's pings) near or away from the wash station.
The oracle walks each truck's pings in time order, plainly, and does not import spatial.rules.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from data.demo import build_world
from data.reference import load_chemicals
from spatial.crs import from_metric
from spatial.model import PingBatch
from spatial.rules.base import RuleBatch, RuleWorld, settings_rows
from spatial.rules.media_change_unwashed import (
    MediaChangeUnwashedRule,
    MediaChangeUnwashedSettings,
)
from tests.rules.test_illegal_parking import (
    STATION,
    canonical,
    metric,
    point,
    run,
    stops_frame,
    vid,
)
from tests.tracks import (
    ORIGIN_X,
    ORIGIN_Y,
    T0_MS,
    layer,
    metric_geometry,
    rule_batch,
    tiny_world,
    track,
    vehicle,
)

CHEMICALS = load_chemicals()
SEC = 1000
MEDIA = {0: ["1203"], 1: ["1230"], 2: ["1203"], 3: [], 4: ["1230", "1203"], 5: ["1203", "1230"]}


def media_world() -> RuleWorld:
    """Trucks 0, 1 tanks, 2 a van; waybill rows with the goods in MEDIA; one wash station."""
    t = pd.Timestamp(T0_MS, unit="ms", tz="UTC")
    waybills = layer("waybills", [
        {"id": f"WB-{r:06d}", "vehicle_id": vid(0), "status": "done", "loading_site_id": "ENT-L",
         "unloading_site_id": "ENT-U", "consignor": "甲", "consignee": "乙", "carrier": "丙",
         "planned_departure": t, "planned_arrival": t, "emergency_phone": "110",
         "geometry": metric_geometry(shapely.LineString([(0, 0), (1, 1)]))} for r in MEDIA])
    goods = pd.DataFrame([{"waybill_id": f"WB-{r:06d}", "seq": k + 1, "un_number": un, "name": un,
                           "hazard_class": "3", "packing_group": None, "quantity_t": 1.0}
                          for r, uns in MEDIA.items() for k, un in enumerate(uns)])
    world = tiny_world(
        vehicles=layer("vehicles", [vehicle(vid(0)), vehicle(vid(1)), vehicle(vid(2), body="van")]),
        waybills=waybills, waybill_goods=goods,
        wash_stations=layer("wash_stations", [{"id": "WS-1", "district_adcode": "330212", **point("洗消站", STATION)}]))
    world.chemicals = CHEMICALS
    return RuleWorld(world)


WORLD = media_world()


def pings_for(slot: int, rows: list[int], start_ms: int = T0_MS) -> pd.DataFrame:
    """One ping a minute on the given waybill rows (-1: none)."""
    p = track(vid(slot), [(60.0 * k, 0.0) for k in range(len(rows))], start_ms=start_ms, interval_s=60).to_frame()
    p["wb"] = rows
    return p


def wash_stop(slot: int, confirmed_ms: int, dx: float) -> dict:
    x, y = ORIGIN_X + STATION[0] + dx, ORIGIN_Y + STATION[1]
    lon, lat = from_metric(x, y)
    return {"slot": slot, "vehicle_id": vid(slot), "episode_id": f"stop:{vid(slot)}:{confirmed_ms - 300_000}",
            "start_ms": confirmed_ms - 300_000, "confirmed_ms": confirmed_ms, "end_ms": -1, "lon": float(lon),
            "lat": float(lat), "x": x, "y": y, "waybill": -1, "loaded": False}


def batches(frame: pd.DataFrame, stops: list[dict], cuts: list[int]) -> list[RuleBatch]:
    frame = frame.sort_values(["epoch_ms", "vehicle_id"], kind="stable").reset_index(drop=True)
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(frame)]):
        part = frame.iloc[a:b]
        rb = rule_batch(PingBatch.from_frame(part), WORLD, waybill=part["wb"].to_numpy(),
                        loaded=part["wb"].to_numpy() >= 0)
        rb = rb.with_columns(waybill=part.sort_values(["vehicle_id", "epoch_ms"])["wb"].to_numpy("int64"))
        here = set(zip(rb.slot.tolist(), rb.epoch_ms.tolist()))
        mine = [s for s in stops if (s["slot"], s["confirmed_ms"]) in here]
        out.append(rb.with_columns(stops_opened=stops_frame(mine)))
    return out


# --- the oracle ---------------------------------------------------------------------------------

def oracle(frame: pd.DataFrame, stops: list[dict], radius_m: float = 150.0) -> list[tuple]:
    """(vehicle, first ping on the new waybill, last ping on it or None) per incident."""
    station = metric(WORLD.world.wash_stations.geometry.iloc[0])
    tanks = {vid(k) for k, body in enumerate(WORLD.world.vehicles["body"]) if body == "tank"}
    out = []
    for v, pings in frame.groupby("vehicle_id"):
        if v not in tanks:
            continue
        washes = [s["confirmed_ms"] for s in stops if s["vehicle_id"] == v
                  and shapely.distance(shapely.Point(s["x"], s["y"]), station) <= radius_m]
        last_row, last_row_ms, incident = -1, None, None
        for t, row in zip(pings["epoch_ms"], pings["wb"]):
            t, row = int(t), int(row)
            if incident is not None and row != incident[2]:
                out.append((v, incident[0], incident[1]))
                incident = None
            if incident is not None:
                incident = (incident[0], t, incident[2])
            if row >= 0 and last_row >= 0 and row != last_row:
                a, b = set(MEDIA[last_row]), set(MEDIA[row])
                washed = any(last_row_ms <= w < t for w in washes)
                if a and b and a != b and not washed:
                    incident = (t, t, row)
            if row >= 0:
                last_row, last_row_ms = row, t
        if incident is not None:
            out.append((v, incident[0], None))
    return sorted(out)


def incidents(events) -> list[tuple]:
    opens = {e.episode_id: e for e in events if e.phase == "open"}
    closes = {e.episode_id: e for e in events if e.phase == "close"}
    assert closes.keys() <= opens.keys()
    return sorted((e.subject_id, int(e.start.value // 1_000_000),
                   int(closes[k].end.value // 1_000_000) if k in closes else None) for k, e in opens.items())


def minute(k: int) -> int:
    return T0_MS + k * 60 * SEC


# --- boundary cases -----------------------------------------------------------------------------

P, N = [0] * 5, [1] * 5  # 1203 then 1230
CASES = [
    # (case, slot, rows per minute, wash stops (confirm minute, metres off the station), fires)
    ("different medium, no wash", 0, P + [-1] * 5 + N + [-1], [], True),
    ("same medium", 0, P + [-1] * 5 + [2] * 5, [], False),
    ("same set in another order", 0, [4] * 5 + [-1] + [5] * 5, [], False),
    ("next waybill without goods", 0, P + [-1] + [3] * 5, [], False),
    ("a van", 2, P + [-1] * 5 + N, [], False),
    ("washed in between", 0, P + [-1] * 5 + N, [(7, 0.0)], False),
    ("149.9 m from the station", 0, P + [-1] * 5 + N, [(7, 149.9)], False),
    ("150.1 m from the station", 0, P + [-1] * 5 + N, [(7, 150.1)], True),
    ("washed just before departure", 0, P + [-1] * 5 + N, [(9, 0.0)], False),
    ("wash confirmed at the first ping on the next waybill", 0, P + [-1] * 5 + N, [(10, 0.0)], True),
    ("wash at the previous waybill's last ping (unload and wash)", 0, P + [-1] * 5 + N, [(4, 0.0)], False),
    ("wash during the previous waybill", 0, P + [-1] * 5 + N, [(2, 0.0)], True),
    ("direct change with no gap", 0, P + N, [], True),
    ("first seen on the next waybill", 0, [-1] * 3 + N, [], False),
    ("back and forth", 1, P + [-1] + N + [-1] + P, [], True),
]


@pytest.mark.parametrize("case,slot,rows,washes,fires", CASES, ids=[c[0] for c in CASES])
def test_boundary_cases(case, slot, rows, washes, fires):
    frame = pings_for(slot, rows)
    stops = [wash_stop(slot, minute(m), dx) for m, dx in washes]
    _, events = run(MediaChangeUnwashedRule(), WORLD, batches(frame, stops, []))
    want = oracle(frame, stops)
    assert incidents(events) == want
    assert bool(want) == fires


def test_incident_spans_the_trip_and_carries_evidence():
    frame = pings_for(0, P + [-1] * 5 + N + [-1] * 2)
    stops = [wash_stop(0, minute(1), 0.0)]  # a visit during P: shown, but not counted
    state, events = run(MediaChangeUnwashedRule(), WORLD, batches(frame, stops, []))
    opened, closed = events
    assert opened.start == pd.Timestamp(minute(10), unit="ms", tz="UTC")
    assert closed.end == pd.Timestamp(minute(14), unit="ms", tz="UTC")
    ev = opened.evidence
    assert ev["previous_waybill_id"] == "WB-000000" and ev["waybill_id"] == "WB-000001"
    assert ev["previous_un_numbers"] == ["1203"] and ev["un_numbers"] == ["1230"]
    assert pd.Timestamp(ev["previous_last_ping"]) == pd.Timestamp(minute(4), unit="ms", tz="UTC")
    assert ev["last_wash"]["station_id"] == "WS-1"
    assert opened.severity == 2 and json.dumps(closed.evidence)
    assert pd.isna(state.open_event).all()


def test_settings_and_empty_batch():
    rows = settings_rows("media_change_unwashed", MediaChangeUnwashedSettings())
    assert [(r["name"], r["value"]) for r in rows] == [("wash_station_match_m", 150.0)]
    with pytest.raises(ValueError, match="wash_station_match_m"):
        MediaChangeUnwashedSettings(wash_station_match_m=0)
    rule = MediaChangeUnwashedRule()
    assert rule.step(rule.initial_state(), RuleBatch.empty().with_columns(clock_ms=T0_MS), WORLD)[1] == []
    frame = pings_for(0, [0, 99])
    with pytest.raises(ValueError, match="waybill row 99"):
        run(rule, WORLD, batches(frame, [], []))


# --- streaming ----------------------------------------------------------------------------------

@st.composite
def histories(draw):
    frames, stops = [], []
    for slot in draw(st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True)):
        n = draw(st.integers(2, 30))
        rows = draw(st.lists(st.sampled_from([-1, -1, 0, 1, 2, 3, 4, 5]), min_size=n, max_size=n))
        runs = [r for r in rows for _ in range(draw(st.integers(1, 3)))]
        offset = draw(st.integers(0, 20)) * 1000
        frames.append(pings_for(slot, runs, start_ms=T0_MS + offset))
        for k in draw(st.sets(st.integers(0, len(runs) - 1), max_size=3)):
            stops.append(wash_stop(slot, T0_MS + offset + k * 60 * SEC, draw(st.sampled_from([0.0, 149.9, 150.1]))))
    return pd.concat(frames, ignore_index=True), stops


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), data=st.data())
def test_streaming_and_oracle_on_random_histories(history, data):
    frame, stops = history
    n = len(frame)
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=min(n - 1, 10))) if n > 1 else [])
    rule = MediaChangeUnwashedRule()
    _, whole = run(rule, WORLD, batches(frame, stops, []))
    _, chunked = run(rule, WORLD, batches(frame, stops, cuts))
    _, single = run(rule, WORLD, batches(frame, stops, list(range(1, n))))
    assert canonical(whole) == canonical(chunked) == canonical(single)
    assert incidents(whole) == oracle(frame, stops)


# --- the demo world -----------------------------------------------------------------------------

def test_demo_world_tank_trucks_that_change_media():
    """Each demo truck driven on its previous waybill, then off any, then on its active one,
    with no wash visit: exactly the tank trucks whose active medium differs fire."""
    world = build_world(5, scale=0.05, chemicals=CHEMICALS)
    rw = RuleWorld(world)
    wb = world.waybills.reset_index(drop=True)
    rows = np.arange(len(wb))
    done = rows[wb["status"].to_numpy() == "done"]
    active = rows[wb["status"].to_numpy() == "active"]
    by_vehicle = dict(zip(wb["vehicle_id"].iloc[active], active))
    media = world.waybill_goods.groupby("waybill_id")["un_number"].agg(frozenset)
    tanks = set(world.vehicles["id"][world.vehicles["body"] == "tank"])
    frames = []
    for p in done:
        v = wb["vehicle_id"].iloc[p]
        frames.append(pd.DataFrame({"vehicle_id": v, "epoch_ms": T0_MS + np.arange(6) * 60_000,
                                    "wb": [p, p, -1, -1, by_vehicle[v], by_vehicle[v]]}))
    frame = pd.concat(frames, ignore_index=True)
    frame["lon"], frame["lat"] = 121.55, 29.85
    frame = frame.sort_values(["vehicle_id", "epoch_ms"]).reset_index(drop=True)
    batch = rule_batch(PingBatch.from_arrays(frame["vehicle_id"], frame["epoch_ms"], frame["lon"], frame["lat"]),
                       rw, waybill=frame["wb"].to_numpy(), loaded=frame["wb"].to_numpy() >= 0)
    _, events = MediaChangeUnwashedRule().step(MediaChangeUnwashedRule().initial_state(), batch, rw)
    expected = {wb["vehicle_id"].iloc[p] for p in done if wb["vehicle_id"].iloc[p] in tanks
                and media[wb["id"].iloc[p]] != media[wb["id"].iloc[by_vehicle[wb["vehicle_id"].iloc[p]]]]}
    assert {e.subject_id for e in events} == expected
    assert 0.02 < len(expected) / len(tanks) < 0.1  # the demo's ~5 % of tank trucks
