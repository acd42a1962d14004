"""illegal_parking: boundary tables, a brute-force oracle, streaming, and the engine end to end.

The oracle (`oracle_events`) does not import spatial.rules: it measures the exact shapely
distance from each stop to every place in EPSG:32651 and restates the timing rule plainly (the
first ping with t - start >= min, at or after confirmation, while the stop is open). Stops are
hand-built as the engine's stop stage would hand them; `scenario` also makes the pings and
`split` cuts them (by arrival time) into batches, each stop frame travelling with the batch
that holds its confirming / closing ping. The dwell-scenario helpers are shared with
test_suspected_washing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from data.reference import load_chemicals
from spatial.crs import from_metric, geometry_to_metric
from spatial.model import PingBatch
from spatial.rules.base import STOP_COLUMNS, RuleBatch, RuleWorld, settings_rows
from spatial.rules.engine import Engine, EngineSettings, sort_events
from spatial.rules.illegal_parking import IllegalParkingRule, IllegalParkingSettings
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

# --- a world of places (metre offsets from the origin) ----------------------------------------

LOT, AREA, STATION, SHOP = (0.0, 0.0), (0.0, 4000.0), (4000.0, 4000.0), (-4000.0, 4000.0)
LOADING, UNLOADING = (8000.0, 0.0), (-8000.0, 0.0)
WATER = shapely.box(-1000, -9000, 1000, -7000)  # a drinking-water zone, north edge at y = -7000
OPEN_ROAD = (20_000.0, 20_000.0)  # far from everything
CARGO = {0: ("1017", "2.3"), 1: ("1203", "3"), 2: ("1830", "8"), 3: ("1005", "2.3")}
BODIES = {0: "tank", 1: "tank", 2: "van", 3: "tank"}


def vid(k: int) -> str:
    return f"VEH-{k:06d}"


def point(name, xy, **extra) -> dict:
    return {"name": name, "geometry": metric_geometry(shapely.Point(*xy)), **extra}


def dwell_world(extra_entities=()) -> RuleWorld:
    """Four trucks (slots 0–3, bodies in BODIES), one active waybill each (goods in CARGO) from
    LOADING to UNLOADING, a parking lot, service area, wash station and repair shop, and a
    drinking-water zone as a sensitive site and a restricted zone."""
    departure = pd.Timestamp(T0_MS, unit="ms", tz="UTC") - pd.Timedelta(hours=1)
    entities = [{"id": "ENT-L", "licensed": True, "category": "production", "district_adcode": "330212",
                 "park_id": None, **point("装货厂", LOADING)},
                {"id": "ENT-U", "licensed": True, "category": "use", "district_adcode": "330212",
                 "park_id": None, **point("卸货厂", UNLOADING)},
                *[{"id": f"ENT-X{i}", "licensed": True, "category": "use", "district_adcode": "330212",
                   "park_id": None, **point("别厂", xy)} for i, xy in enumerate(extra_entities)]]
    waybills = layer("waybills", [
        {"id": f"WB-{k:06d}", "vehicle_id": vid(k), "status": "active", "loading_site_id": "ENT-L",
         "unloading_site_id": "ENT-U", "consignor": "甲", "consignee": "乙", "carrier": "丙",
         "planned_departure": departure, "planned_arrival": departure + pd.Timedelta(hours=30),
         "emergency_phone": "110", "geometry": metric_geometry(shapely.LineString([LOADING, UNLOADING]))}
        for k in CARGO])
    goods = pd.DataFrame([{"waybill_id": f"WB-{k:06d}", "seq": 1, "un_number": un, "name": un, "hazard_class": cls,
                           "packing_group": None, "quantity_t": 10.0} for k, (un, cls) in CARGO.items()])
    world = tiny_world(
        vehicles=layer("vehicles", [vehicle(vid(k), body=b) for k, b in BODIES.items()]),
        entities=layer("entities", entities), waybills=waybills, waybill_goods=goods,
        parking_lots=layer("parking_lots", [{"id": "PL-1", "capacity": 50, **point("停车场", LOT)}]),
        service_areas=layer("service_areas", [{"id": "SA-1", "road_id": "ROAD-1", **point("服务区", AREA)}]),
        wash_stations=layer("wash_stations", [{"id": "WS-1", "district_adcode": "330212", **point("洗消站", STATION)}]),
        repair_shops=layer("repair_shops", [{"id": "RS-1", **point("修理厂", SHOP)}]),
        sensitive_sites=layer("sensitive_sites", [{"id": "SITE-1", "name": "水源", "kind": "water_protection",
                                                   "geometry": metric_geometry(WATER)}]),
        restricted_zones=layer("restricted_zones", [{"id": "ZONE-1", "name": "水源区", "kind": "water_protection",
                                                     "closed_from": "00:00", "closed_to": "24:00",
                                                     "barred_classes": ["3"], "speed_limit_kmh": None,
                                                     "geometry": metric_geometry(WATER.buffer(-200))}]),
    )
    world.chemicals = CHEMICALS
    return RuleWorld(world)


# --- scenarios: pings and hand-built stops -----------------------------------------------------

@dataclass
class Stop:
    slot: int
    xy: tuple[float, float]
    start_ms: int
    dwell_s: float  # last stopped ping at start + dwell
    closes: bool = True  # a not-stopped ping follows (else the stop is still open at the end)
    loaded: bool = True
    waybill: int | None = None  # default: the slot's own waybill row

    @property
    def confirmed_ms(self) -> int:
        return self.start_ms + 300 * SEC

    @property
    def end_ms(self) -> int:
        return self.start_ms + round(self.dwell_s * SEC)

    @property
    def episode(self) -> str:
        return f"stop:{vid(self.slot)}:{self.start_ms}"

    def row(self, closed: bool) -> dict:
        x, y = ORIGIN_X + self.xy[0], ORIGIN_Y + self.xy[1]
        lon, lat = from_metric(x, y)
        return {"slot": self.slot, "vehicle_id": vid(self.slot), "episode_id": self.episode,
                "start_ms": self.start_ms, "confirmed_ms": self.confirmed_ms, "end_ms": self.end_ms if closed else -1,
                "lon": float(lon), "lat": float(lat), "x": x, "y": y,
                "waybill": self.slot if self.waybill is None else self.waybill, "loaded": self.loaded}

    def ping_times(self) -> list[int]:
        inner = list(range(self.start_ms, self.end_ms, 30 * SEC)) + [self.end_ms]
        return sorted(set(inner) | {self.confirmed_ms}) + ([self.end_ms + 30 * SEC] if self.closes else [])


STOP_DTYPES = {"vehicle_id": object, "episode_id": object, "lon": "float64", "lat": "float64", "x": "float64",
               "y": "float64", "loaded": bool}


def stops_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({c: np.array([r[c] for r in rows], dtype=STOP_DTYPES.get(c, "int64")) for c in STOP_COLUMNS})


@dataclass
class Scenario:
    pings: RuleBatch  # sorted by (slot, time)
    stops: list[Stop]


def scenario(world: RuleWorld, stops: list[Stop]) -> Scenario:
    """Pings for the stops: 3 moving pings before each, the stopped pings, the leaving ping."""
    parts, waybill, loaded = [], [], []
    for stop in stops:
        moving = [stop.start_ms - k * 30 * SEC for k in (3, 2, 1)]
        times = moving + stop.ping_times()
        xy = [(stop.xy[0] - 900 * k, stop.xy[1]) for k in (3, 2, 1)] + [stop.xy] * (len(times) - 3)
        if stop.closes:
            xy[-1] = (stop.xy[0] + 900, stop.xy[1])
        pings = track(vid(stop.slot), xy, start_ms=times[0], interval_s=np.diff(times) / 1000.0)
        parts.append(pings)
        row = stop.slot if stop.waybill is None else stop.waybill
        waybill += [row] * len(times)
        loaded += [stop.loaded] * len(times)
    frame = pd.concat([p.to_frame() for p in parts], ignore_index=True)
    frame["wb"], frame["ld"] = waybill, loaded
    frame = frame.sort_values(["vehicle_id", "epoch_ms"], kind="stable").reset_index(drop=True)
    batch = rule_batch(PingBatch.from_frame(frame), world, waybill=frame["wb"].to_numpy(),
                       loaded=frame["ld"].to_numpy())
    return Scenario(batch, stops)


def split(sc: Scenario, cuts: list[int]) -> list[RuleBatch]:
    """The scenario's pings in arrival (time) order cut at `cuts`, each part sorted by (slot,
    time), with the stops confirmed / closed by its pings."""
    arrival = np.lexsort((sc.pings.slot, sc.pings.epoch_ms))
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(arrival)]):
        part = np.sort(arrival[a:b])  # the batch is (slot, time)-sorted, so positions sort it
        chunk = sc.pings.take(part)
        here = set(zip(chunk.slot.tolist(), chunk.epoch_ms.tolist()))
        opened = [s.row(False) for s in sc.stops if (s.slot, s.confirmed_ms) in here]
        closed = [s.row(True) for s in sc.stops if s.closes and (s.slot, s.end_ms + 30 * SEC) in here]
        out.append(chunk.with_columns(stops_opened=stops_frame(opened), stops_closed=stops_frame(closed),
                                      clock_ms=int(chunk.epoch_ms.max())))
    return out


def run(rule, world: RuleWorld, batches: list[RuleBatch]):
    state, events = rule.initial_state(), []
    for b in batches:
        state, out = rule.step(state, b, world)
        events.extend(out)
    return state, events


def canonical(events) -> list[tuple]:
    return sorted((e.rule, e.subject_id, e.episode_id, e.phase, e.start, e.end, e.lon, e.lat, e.severity,
                   json.dumps(e.evidence, sort_keys=True)) for e in events)


# --- the oracle (no spatial.rules inside) -------------------------------------------------------

def metric(geometry_wgs84):
    return geometry_to_metric(geometry_wgs84)


def oracle_timing(stop: Stop, min_s: float) -> tuple[int | None, int | None]:
    """(opening ping time, close time) of an incident for a qualifying stop, plainly."""
    open_at = None
    for t in stop.ping_times():
        still_open = t <= stop.end_ms or not stop.closes
        if t >= stop.confirmed_ms and still_open and (t - stop.start_ms) >= min_s * 1000:
            open_at = t
            break
    if open_at is None:
        return None, None
    return open_at, stop.end_ms if stop.closes else None


def oracle_parking(world: RuleWorld, stops: list[Stop], min_s=600.0, lot_m=150.0, site_m=300.0) -> dict:
    w = world.world
    places = [(metric(g), lot_m) for table in ("parking_lots", "service_areas", "wash_stations")
              for g in w.table(table).geometry]
    entity = dict(zip(w.entities["id"], w.entities.geometry))
    out = {}
    for stop in stops:
        row = stop.slot if stop.waybill is None else stop.waybill
        if not stop.loaded or row < 0:
            continue
        p = shapely.Point(ORIGIN_X + stop.xy[0], ORIGIN_Y + stop.xy[1])
        wb = w.waybills.iloc[row]
        allowed = [(g, r) for g, r in places] + [(metric(entity[wb[c]]), site_m)
                                                 for c in ("loading_site_id", "unloading_site_id") if wb[c] in entity]
        if any(shapely.distance(p, g) <= r for g, r in allowed):
            continue
        opened, closed = oracle_timing(stop, min_s)
        if opened is None:
            continue
        classes = list(w.waybill_goods.loc[w.waybill_goods["waybill_id"] == wb["id"], "hazard_class"])
        severity = 2 if any(c.startswith("1") or c in ("2.1", "2.3", "6.1") for c in classes) else 3
        out[(vid(stop.slot), stop.start_ms)] = (opened, closed, severity)
    return out


def found(events) -> dict:
    out = {}
    for e in events:
        key = (e.subject_id, int(e.start.value // 1_000_000))
        if e.phase == "open":
            decided = int(pd.Timestamp(e.evidence["decided"]).value // 1_000_000)
            out[key] = (decided, out.get(key, (None, None, None))[1], e.severity)
        else:
            assert key in out, "a close before its open"
            out[key] = (out[key][0], int(e.end.value // 1_000_000), e.severity)
    return out


# --- boundary table -----------------------------------------------------------------------------

WORLD = dwell_world()
T1 = T0_MS + 3600 * SEC

CASES = [
    # (case, slot, stop offset, dwell s, loaded, expect an incident)
    ("599 s on the open road", 1, OPEN_ROAD, 599, True, False),
    ("600 s on the open road", 1, OPEN_ROAD, 600, True, True),
    ("149.9 m from the lot", 1, (149.9, 0.0), 900, True, False),
    ("150.1 m from the lot", 1, (150.1, 0.0), 900, True, True),
    ("149.9 m from the service area", 1, (AREA[0], AREA[1] + 149.9), 900, True, False),
    ("150.1 m from the wash station", 1, (STATION[0] + 150.1, STATION[1]), 900, True, True),
    ("299.9 m from the loading site", 1, (LOADING[0] - 299.9, 0.0), 900, True, False),
    ("300.1 m from the unloading site", 1, (UNLOADING[0] + 300.1, 0.0), 900, True, True),
    ("empty on the open road", 1, OPEN_ROAD, 3600, False, False),
    ("a repair shop does not excuse a loaded truck", 1, SHOP, 900, True, True),
    ("severe cargo", 0, OPEN_ROAD, 900, True, True),
    ("a van is judged alike", 2, OPEN_ROAD, 900, True, True),
]


@pytest.mark.parametrize("case,slot,xy,dwell_s,loaded,expected", CASES, ids=[c[0] for c in CASES])
def test_boundary_table(case, slot, xy, dwell_s, loaded, expected):
    stops = [Stop(slot, xy, T1, dwell_s, loaded=loaded)]
    sc = scenario(WORLD, stops)
    _, events = run(IllegalParkingRule(), WORLD, split(sc, []))
    want = oracle_parking(WORLD, stops)
    assert found(events) == want
    assert bool(want) == expected
    if expected:
        opened, closed = events
        assert (opened.phase, closed.phase) == ("open", "close")
        assert opened.episode_id == f"illegal_parking:{vid(slot)}:{T1}"
        assert opened.severity == (2 if slot == 0 else 3)
        assert opened.evidence["dwell_s"] == (600.0 if dwell_s > 600 else dwell_s)
        assert closed.evidence["duration_s"] == float(dwell_s)


def test_opens_at_the_first_ping_past_the_minimum_and_carries_evidence():
    stop = Stop(0, OPEN_ROAD, T1 + 7 * SEC, 1200)  # pings at start + 0, 30, …: 600 s is a ping
    sc = scenario(WORLD, [stop])
    _, events = run(IllegalParkingRule(), WORLD, split(sc, []))
    opened, closed = events
    assert opened.start == pd.Timestamp(stop.start_ms, unit="ms", tz="UTC") and opened.end is None
    ev = opened.evidence
    assert ev["decided"] == pd.Timestamp(stop.start_ms + 600 * SEC, unit="ms", tz="UTC").isoformat(
        timespec="milliseconds")
    assert ev["waybill_id"] == "WB-000000" and ev["goods_un_numbers"] == ["1017"] and ev["severe_classes"] == ["2.3"]
    assert ev["nearest_place"]["kind"] in ("parking_lots", "service_areas", "wash_stations")
    lot = shapely.distance(shapely.Point(ORIGIN_X + OPEN_ROAD[0], ORIGIN_Y + OPEN_ROAD[1]),
                           metric(WORLD.world.wash_stations.geometry.iloc[0]))
    assert ev["nearest_place"] == {"id": "WS-1", "kind": "wash_stations", "distance_m": pytest.approx(lot),
                                   "radius_m": 150.0}
    assert ev["loading_site_distance_m"] > 300 and ev["unloading_site_id"] == "ENT-U"
    assert closed.end == pd.Timestamp(stop.end_ms, unit="ms", tz="UTC") and closed.evidence["duration_s"] == 1200
    assert json.dumps(ev)  # plain JSON values


def test_still_open_stop_opens_and_stays_open():
    stop = Stop(1, OPEN_ROAD, T1, 700, closes=False)
    state, events = run(IllegalParkingRule(), WORLD, split(scenario(WORLD, [stop]), []))
    assert [e.phase for e in events] == ["open"] and len(state) == 1
    # the close arrives later, in a batch without the stop's pings
    closing = RuleBatch.empty().with_columns(stops_closed=stops_frame([stop.row(True)]))
    state, events = IllegalParkingRule().step(state, closing, WORLD)
    assert [e.phase for e in events] == ["close"] and len(state) == 0


def test_waybill_site_missing_from_entities_excuses_nothing():
    world = dwell_world()
    world.world.entities = world.world.entities[world.world.entities["id"] != "ENT-L"]
    world = RuleWorld(world.world)
    stop = Stop(1, LOADING, T1, 900)
    _, events = run(IllegalParkingRule(), world, split(scenario(world, [stop]), []))
    assert events[0].evidence["loading_site_distance_m"] is None
    assert events[0].evidence["unloading_site_distance_m"] == pytest.approx(16_000)


def test_settings_change_the_thresholds():
    rule = IllegalParkingRule(IllegalParkingSettings(parking_min_s=1200, parking_lot_match_m=200))
    stops = [Stop(1, (180.0, 0.0), T1, 1100), Stop(3, OPEN_ROAD, T1, 1200)]
    _, events = run(rule, WORLD, split(scenario(WORLD, stops), []))
    assert {e.subject_id for e in events} == {vid(3)}
    assert oracle_parking(WORLD, stops, min_s=1200, lot_m=200).keys() == {(vid(3), T1)}


def test_settings_are_listed_and_bad_ones_refused():
    rows = settings_rows("illegal_parking", IllegalParkingSettings())
    assert {r["name"]: r["value"] for r in rows} == {
        "parking_min_s": 600.0, "parking_lot_match_m": 150.0, "service_area_match_m": 150.0,
        "wash_station_match_m": 150.0, "waybill_site_match_m": 300.0}
    assert all(r["unit"] and r["source"] for r in rows)
    for bad in (0, -1, float("nan"), True):
        with pytest.raises(ValueError, match="parking_min_s"):
            IllegalParkingSettings(parking_min_s=bad)


def test_bad_input_is_named():
    rule = IllegalParkingRule()
    row = Stop(1, OPEN_ROAD, T1, 900).row(False)
    with pytest.raises(ValueError, match="lacks columns.*'x'"):
        rule.step(rule.initial_state(), RuleBatch.empty().with_columns(
            stops_opened=stops_frame([row]).drop(columns=["x"])), WORLD)
    with pytest.raises(ValueError, match="waybill row 9"):
        rule.step(rule.initial_state(), RuleBatch.empty().with_columns(
            stops_opened=stops_frame([{**row, "waybill": 9}])), WORLD)
    state, _ = rule.step(rule.initial_state(), RuleBatch.empty().with_columns(stops_opened=stops_frame([row])), WORLD)
    with pytest.raises(ValueError, match="opened twice"):
        rule.step(state, RuleBatch.empty().with_columns(stops_opened=stops_frame([row])), WORLD)


def test_empty_batch_and_state_not_mutated():
    rule = IllegalParkingRule()
    state, events = rule.step(rule.initial_state(), RuleBatch.empty().with_columns(clock_ms=T1), WORLD)
    assert events == [] and len(state) == 0
    stop = Stop(1, OPEN_ROAD, T1, 900)
    batches = split(scenario(WORLD, [stop]), [8])
    state, _ = rule.step(rule.initial_state(), batches[0], WORLD)
    snapshot = (state.episode.copy(), state.raised.copy(), list(state.event))
    rule.step(state, batches[1], WORLD)
    assert (state.episode == snapshot[0]).all() and (state.raised == snapshot[1]).all()
    assert list(state.event) == snapshot[2]


# --- streaming and the oracle on random scenarios ------------------------------------------------

PLACES = [LOT, AREA, STATION, SHOP, LOADING, UNLOADING, OPEN_ROAD]


@st.composite
def random_stops(draw) -> list[Stop]:
    stops = []
    for slot in draw(st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True)):
        t = T1 + draw(st.integers(0, 600)) * SEC
        n = draw(st.integers(1, 2))
        for k in range(n):
            anchor = draw(st.sampled_from(PLACES))
            distance = draw(st.sampled_from([0.0, 149.9, 150.1, 299.9, 300.1, 1000.0]))
            angle = draw(st.floats(0, 2 * math.pi))
            xy = (anchor[0] + distance * math.cos(angle), anchor[1] + distance * math.sin(angle))
            dwell = draw(st.one_of(st.sampled_from([300, 599, 600, 1799, 1800, 1801]), st.integers(300, 2400)))
            stops.append(Stop(slot, xy, t, dwell, closes=k < n - 1 or draw(st.booleans()),
                              loaded=draw(st.booleans()), waybill=draw(st.sampled_from([None, None, -1]))))
            t += (dwell + 300) * SEC
    return stops


def check_streaming(rule, world, stops, cuts_strategy, data, oracle):
    sc = scenario(world, stops)
    n = len(sc.pings)
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=min(n - 1, 12))) if n > 1 else [])
    whole_state, whole = run(rule, world, split(sc, []))
    _, chunked = run(rule, world, split(sc, cuts))
    _, single = run(rule, world, split(sc, list(range(1, n))))
    assert canonical(whole) == canonical(chunked) == canonical(single)
    assert found(whole) == oracle(world, stops)
    # within a step, events come in the order they were decided
    decided = [pd.Timestamp(e.evidence["decided"]) if e.phase == "open" else e.end for e in whole]
    assert decided == sorted(decided)
    return whole_state


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stops=random_stops(), data=st.data())
def test_streaming_and_oracle_on_random_stops(stops, data):
    state = check_streaming(IllegalParkingRule(), WORLD, stops, None, data, oracle_parking)
    assert set(state.episode) <= {s.episode for s in stops if not s.closes}


# --- through the engine --------------------------------------------------------------------------

def EngineWith(world, *rules) -> Engine:
    """The engine with these rules' settings (the rest at their defaults)."""
    return Engine(world, EngineSettings(**{rule.name: rule.settings for rule in rules}))


def test_engine_parks_a_loaded_truck_on_the_open_road_and_at_a_lot():
    drive = [(OPEN_ROAD[0] - 600 * (10 - k), OPEN_ROAD[1]) for k in range(10)]
    park = [(OPEN_ROAD[0] + (-1) ** k * 2.0, OPEN_ROAD[1]) for k in range(30)]  # 14.5 min still
    to_lot = [(OPEN_ROAD[0] - 2000 * k, OPEN_ROAD[1]) for k in range(1, 4)] + [(600, 0)]
    at_lot = [(LOT[0] + (-1) ** k * 2.0, LOT[1]) for k in range(30)]
    leave = [(900 * k, 0) for k in range(1, 4)]
    xy = drive + park + to_lot + at_lot + leave
    pings = track(vid(1), xy, start_ms=T1)
    engine = EngineWith(WORLD.world, IllegalParkingRule())
    events = [e for e in engine.run(pings) if e.rule == "illegal_parking"]
    assert [e.phase for e in events] == ["open", "close"]
    stops = [e for e in EngineWith(WORLD.world).run(pings) if e.rule == "stop"]
    first_stop = next(e for e in stops if e.phase == "open")
    assert events[0].episode_id == f"illegal_parking:{vid(1)}:{int(first_stop.start.value // 1_000_000)}"
    decided = pd.Timestamp(events[0].evidence["decided"])
    assert (decided - first_stop.start).total_seconds() == 600  # pings every 30 s from the stop's start
    assert events == sort_events(events)
