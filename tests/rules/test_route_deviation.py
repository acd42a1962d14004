"""route_deviation against a brute-force oracle that does not use spatial/rules.

The oracle measures every ping on a waybill against its own waybill's route with plain
`shapely.distance` in EPSG:32651 (no narrowing) and replays the episode semantics with a
simple sequential reference in plain Python; the rule must agree event for event, on tracks
that graze every boundary, on random tracks, and however the pings are batched.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.reference import load_chemicals
from spatial.crs import from_metric, geometry_to_metric
from spatial.model import PingBatch
from spatial.rules.base import SEVERITY_HIGH, SEVERITY_MEDIUM, RuleWorld
from spatial.rules.route_deviation import RouteDeviationRule, RouteDeviationSettings
from tests.tracks import (
    T0_MS,
    concat,
    layer,
    metric_geometry,
    rule_batch,
    tiny_world,
    track,
    vehicle,
)

VEH_A, VEH_B = "VEH-000000000001", "VEH-000000000002"
EAST = shapely.LineString([(-2000, 0), (30000, 0)])  # metre offsets; distance = |y| for -2000 <= x <= 30000
NORTH = shapely.LineString([(0, -2000), (0, 30000)])

# Reference semantics (issue 4): >= corridor_m + 0 strictly outside opens after >= min
# duration and pings; > corridor_m - hysteresis_m keeps it open; a ping without an active
# waybill, or on another waybill than the previous ping, ends any episode or candidate.
CORRIDOR_M, HYSTERESIS_M, MIN_DURATION_MS, MIN_PINGS = 500.0, 100.0, 120_000, 2


CHEMICALS = load_chemicals()


def goods(waybill_id: str, hazard_class: str, un_number: str = "1017") -> dict:
    return {"waybill_id": waybill_id, "seq": 1, "un_number": un_number, "name": "货物", "hazard_class": hazard_class,
            "packing_group": None, "quantity_t": 10.0}


def make_world(routes: list[shapely.LineString], classes: list[str] | None = None, vehicles=(VEH_A, VEH_B),
               un_numbers: list[str] | None = None, chemicals: pd.DataFrame = CHEMICALS):
    """Waybill row k is WB-k with route routes[k] (metre offsets), carrying goods of classes[k]
    (UN number un_numbers[k], chlorine by default); the shipped catalogue unless told."""
    classes = classes or ["3"] * len(routes)
    un_numbers = un_numbers or ["1017"] * len(routes)
    wb = layer("waybills", [
        {"id": f"WB-{k}", "vehicle_id": vehicles[0], "status": "active", "geometry": metric_geometry(r)}
        for k, r in enumerate(routes)])
    world = tiny_world(vehicles=layer("vehicles", [vehicle(v) for v in vehicles]), waybills=wb,
                       waybill_goods=pd.DataFrame([goods(f"WB-{k}", c, u)
                                                   for k, (c, u) in enumerate(zip(classes, un_numbers))]))
    world.chemicals = chemicals
    return RuleWorld(world)


# --- the oracle --------------------------------------------------------------------------

def oracle(batch, world: RuleWorld) -> list[tuple]:
    routes = np.asarray(geometry_to_metric(world.world.waybills.geometry.to_numpy()), dtype=object)
    ids = world.world.waybills["id"].to_numpy(dtype=object)
    # art. 48: class 1 (explosives, fireworks), class 7, and the goods the catalogue flags 剧毒
    cls = world.world.waybill_goods
    chemicals = world.world.chemicals
    toxic = set(chemicals.index[chemicals["highly_toxic"]]) if "highly_toxic" in chemicals.columns else set()
    severe = set(cls.loc[cls["hazard_class"].map(lambda c: c[0] in "17") | cls["un_number"].isin(toxic),
                         "waybill_id"])
    points = shapely.points(batch.x, batch.y)
    distance = np.full(len(batch), np.nan)
    on = batch.waybill >= 0
    distance[on] = shapely.distance(routes[batch.waybill[on]], points[on])
    out = []
    for v in pd.unique(batch.vehicle_id):
        rows = np.flatnonzero(batch.vehicle_id == v)
        phase, start, count, peak, prev_wb, last = "idle", None, 0, -np.inf, -1, None
        for i in rows:
            t, wb, d = int(batch.epoch_ms[i]), int(batch.waybill[i]), distance[i]
            switched = wb >= 0 and prev_wb >= 0 and wb != prev_wb
            enter = wb >= 0 and d > CORRIDOR_M
            stay = wb >= 0 and d > CORRIDOR_M - HYSTERESIS_M
            if phase == "open" and stay and not switched:
                count, peak, last = count + 1, max(peak, d), i
                prev_wb = wb
                continue
            if phase == "open":
                by = "waybill_changed" if switched else ("waybill_ended" if wb < 0 else "back_in_corridor")
                ep_wb = int(batch.waybill[last])
                out.append(("close", v, start, int(batch.epoch_ms[last]), round(peak, 6), count, ids[ep_wb], by, t,
                            SEVERITY_HIGH if ids[ep_wb] in severe else SEVERITY_MEDIUM))
                phase = "idle"
            if switched:
                phase = "idle"
            if enter:
                if phase == "idle":
                    phase, start, count, peak = "candidate", t, 0, -np.inf
                count, peak, last = count + 1, max(peak, d), i
                if phase == "candidate" and t - start >= MIN_DURATION_MS and count >= MIN_PINGS:
                    phase = "open"
                    out.append(("open", v, start, t, round(peak, 6), count, ids[wb], round(d, 6),
                                SEVERITY_HIGH if ids[wb] in severe else SEVERITY_MEDIUM))
            else:
                phase = "idle"
            prev_wb = wb
    return sorted(out, key=repr)


def summary(events) -> list[tuple]:
    out = []
    for e in events:
        ev = e.evidence
        start = int(e.start.value // 1_000_000)
        assert e.episode_id == f"route_deviation:{e.subject_id}:{start}"
        assert pd.Timestamp(ev["first_outside"]) == e.start
        if e.phase == "open":
            confirmed = int(pd.Timestamp(ev["confirmed"]).value // 1_000_000)
            assert e.end is None and ev["duration_s"] == (confirmed - start) / 1000
            out.append(("open", e.subject_id, start, confirmed, round(ev["peak_distance_m"], 6), ev["pings"],
                        ev["waybill_id"], round(ev["distance_m"], 6), e.severity))
        else:
            assert pd.Timestamp(ev["last_outside"]) == e.end
            out.append(("close", e.subject_id, start, int(e.end.value // 1_000_000),
                        round(ev["peak_distance_m"], 6), ev["pings"], ev["waybill_id"], ev["closed_by"],
                        int(pd.Timestamp(ev["closed"]).value // 1_000_000), e.severity))
    return sorted(out, key=repr)


def run(rule, batches, world):
    state, events = rule.initial_state(), []
    for b in batches:
        state, new = rule.step(state, b, world)
        events += new
    return events


def by_episode(events):
    return sorted(events, key=lambda e: (e.episode_id, e.phase))


def check_streaming(rule, batch, world, cuts=None):
    """One batch ≡ single-ping batches (in time order) ≡ the given chunking; returns the events."""
    whole = run(rule, [batch], world)
    order = np.argsort(batch.epoch_ms, kind="stable")
    singles = [batch.take(np.array([i])) for i in order]
    assert by_episode(run(rule, singles, world)) == by_episode(whole)
    if cuts is not None:
        rank = np.empty(len(batch), "int64")
        rank[order] = np.arange(len(batch))
        chunk = np.searchsorted(np.sort(cuts), rank, side="right")
        chunks = [batch.take(chunk == c) for c in np.unique(chunk)]
        assert by_episode(run(rule, chunks, world)) == by_episode(whole)
    return whole


# --- tracks that graze every boundary ------------------------------------------------------

def offsets(ys, x_step=100.0):
    return [(x_step * i, y) for i, y in enumerate(ys)]


CASES = {
    # name: (lateral offsets from EAST, gaps in s, expected (opens, closes))
    "inside at 499.9": ([0, 499.9, 499.9, 499.9, 499.9, 0], 60, (0, 0)),
    "outside at 500.1 for 120 s": ([0, 500.1, 500.1, 500.1, 0], 60, (1, 1)),
    "outside on the other side": ([0, -500.1, -700, -500.1, 0], 60, (1, 1)),
    "outside for 119 s": ([0, 600, 600, 0], [60, 59.5, 59.5], (0, 0)),
    "outside for exactly 120 s in 2 pings": ([0, 600, 600, 0], [60, 120, 60], (1, 1)),
    "one ping outside, however long": ([0, 900, 0, 0], [60, 600, 600], (0, 0)),
    "re-entry to 400.1 keeps it open": ([0, 600, 600, 600, 400.1, 400.1, 650, 399.9, 0], 60, (1, 1)),
    "re-entry to 399.9 closes it": ([0, 600, 600, 600, 399.9, 600, 600, 600, 0], 60, (2, 2)),
    "499.9 does not start a candidate": ([0, 500.1, 499.9, 500.1, 500.1, 0], [60, 60, 60, 119, 60], (0, 0)),
    "still outside at the end": ([0, 510, 520, 530], 60, (1, 0)),
}


@pytest.mark.parametrize("name", CASES)
def test_boundaries_agree_with_the_oracle(name):
    ys, gaps, (opens, closes) = CASES[name]
    world = make_world([EAST])
    batch = rule_batch(track(VEH_A, offsets(ys), interval_s=gaps), world, waybill=0)
    events = check_streaming(RouteDeviationRule(), batch, world, cuts=[2, 3])
    assert [e.phase for e in events].count("open") == opens
    assert [e.phase for e in events].count("close") == closes
    assert summary(events) == oracle(batch, world)


def test_open_and_close_carry_the_evidence():
    world = make_world([EAST], ["2.3"], un_numbers=["1076"])  # phosgene
    ys = [0, 600, 700, 650, 450, 399.9]
    batch = rule_batch(track(VEH_A, offsets(ys), interval_s=60), world, waybill=0)
    opened, closed = run(RouteDeviationRule(), [batch], world)
    t = [T0_MS + 60_000 * i for i in range(len(ys))]
    assert opened.phase == "open" and closed.phase == "close"
    assert opened.episode_id == closed.episode_id == f"route_deviation:{VEH_A}:{t[1]}"
    assert opened.start == closed.start == pd.Timestamp(t[1], unit="ms", tz="UTC")
    assert closed.end == pd.Timestamp(t[4], unit="ms", tz="UTC")  # the last ping beyond 400 m
    assert opened.severity == closed.severity == SEVERITY_HIGH  # phosgene, 剧毒: an approved route (art. 48)
    assert opened.evidence["approved_route"] == closed.evidence["approved_route"] == "highly toxic UN1076"
    assert opened.evidence["distance_m"] == pytest.approx(650, abs=1e-6)  # the confirming ping (t3)
    assert opened.evidence["peak_distance_m"] == pytest.approx(700, abs=1e-6)
    assert opened.evidence["pings"] == 3 and opened.evidence["duration_s"] == 120
    assert opened.evidence["waybill_id"] == "WB-0"
    assert closed.evidence["peak_distance_m"] == pytest.approx(700, abs=1e-6)
    assert closed.evidence["pings"] == 4 and closed.evidence["closed_by"] == "back_in_corridor"
    assert closed.evidence["closing_distance_m"] == pytest.approx(399.9, abs=1e-6)
    assert closed.evidence["corridor_m"] == 500 and closed.evidence["hysteresis_m"] == 100
    x, y = (float(v) for v in geometry_to_metric(shapely.points(closed.lon, closed.lat)).coords[0])
    assert shapely.distance(geometry_to_metric(metric_geometry(EAST)), shapely.Point(x, y)) == pytest.approx(450)


@pytest.mark.parametrize("hazard_class, un_number, severity, approval", [
    ("3", "1203", SEVERITY_MEDIUM, None), ("8", "1830", SEVERITY_MEDIUM, None), ("2.1", "1075", SEVERITY_MEDIUM, None),
    # toxic but not 剧毒: a 2.3 gas or a 6.1 good is not an approved-route good by its class
    ("2.3", "1017", SEVERITY_MEDIUM, None), ("2.3", "1005", SEVERITY_MEDIUM, None), ("8", "1052", SEVERITY_MEDIUM, None),
    # 剧毒化学品, flagged in the catalogue
    ("2.3", "1076", SEVERITY_HIGH, "highly toxic UN1076"), ("6.1", "1051", SEVERITY_HIGH, "highly toxic UN1051"),
    ("6.1", "1689", SEVERITY_HIGH, "highly toxic UN1689"),
    # civil explosives and fireworks (class 1), radioactive goods (class 7)
    ("1.1D", "0081", SEVERITY_HIGH, "class 1"), ("1.4S", "0012", SEVERITY_HIGH, "class 1"),
    ("1.4G", "0336", SEVERITY_HIGH, "class 1"), ("7", "2915", SEVERITY_HIGH, "class 7"),
])
def test_severity_follows_the_art_48_goods(hazard_class, un_number, severity, approval):
    world = make_world([EAST], [hazard_class], un_numbers=[un_number])
    batch = rule_batch(track(VEH_A, offsets([0, 600, 600, 600]), interval_s=60), world, waybill=0)
    (event,) = run(RouteDeviationRule(), [batch], world)
    assert (event.severity, event.evidence["approved_route"]) == (severity, approval)


def test_highly_toxic_needs_the_catalogue_and_can_be_switched_off():
    batch_of = lambda world: rule_batch(track(VEH_A, offsets([0, 600, 600, 600]), interval_s=60), world, waybill=0)
    bare = make_world([EAST], ["6.1"], un_numbers=["1051"], chemicals=pd.DataFrame())
    (event,) = run(RouteDeviationRule(), [batch_of(bare)], bare)
    assert event.severity == SEVERITY_MEDIUM  # nothing says HCN is 剧毒 without a catalogue
    world = make_world([EAST], ["6.1"], un_numbers=["1051"])
    (event,) = run(RouteDeviationRule(RouteDeviationSettings(approved_route_highly_toxic=False)), [batch_of(world)],
                   world)
    assert event.severity == SEVERITY_MEDIUM


def test_each_ping_is_measured_against_its_own_route():
    world = make_world([EAST, NORTH])
    # A drives along NORTH while its waybill is EAST's; B drives along NORTH on NORTH's waybill
    path = [(0, 1000 * i) for i in range(1, 6)]
    batch = rule_batch(concat([track(VEH_A, path, interval_s=60), track(VEH_B, path, interval_s=60)]), world,
                       waybill=np.r_[[0] * 5, [1] * 5])
    events = run(RouteDeviationRule(), [batch], world)
    assert {(e.subject_id, e.phase) for e in events} == {(VEH_A, "open")}
    assert summary(events) == oracle(batch, world)


def test_the_end_or_switch_of_a_waybill_ends_the_episode():
    world = make_world([EAST, NORTH])
    far = offsets([0] + [800] * 11)
    # pings 1-3 outside WB-0's corridor, 4 without a waybill, 5-7 outside WB-0's again, 8-11 on
    # WB-1, whose route (NORTH, x = 0) is 800-1100 m away too
    wb = np.array([0, 0, 0, 0, -1, 0, 0, 0, 1, 1, 1, 1])
    batch = rule_batch(track(VEH_A, far, interval_s=60), world, waybill=wb)
    events = check_streaming(RouteDeviationRule(), batch, world, cuts=[4, 7, 8])
    assert [e.phase for e in events] == ["open", "close", "open", "close", "open"]
    closes = [e.evidence["closed_by"] for e in events if e.phase == "close"]
    assert closes == ["waybill_ended", "waybill_changed"]
    assert [e.evidence["waybill_id"] for e in events] == ["WB-0", "WB-0", "WB-0", "WB-0", "WB-1"]
    assert summary(events) == oracle(batch, world)


def test_pings_without_a_waybill_never_deviate():
    world = make_world([EAST])
    batch = rule_batch(track(VEH_A, offsets([5000] * 10), interval_s=60), world, waybill=-1)
    assert run(RouteDeviationRule(), [batch], world) == []
    empty = RuleWorld(tiny_world(vehicles=layer("vehicles", [vehicle(VEH_A)])))
    assert run(RouteDeviationRule(), [rule_batch(track(VEH_A, offsets([0, 0])), empty)], empty) == []


def test_settings_are_checked_and_listed():
    from spatial.rules.base import settings_rows

    with pytest.raises(ValueError, match="hysteresis_m < corridor_m"):
        RouteDeviationSettings(corridor_m=100, hysteresis_m=100)
    with pytest.raises(ValueError, match="deviation_min_pings"):
        RouteDeviationSettings(deviation_min_pings=0)
    rows = {r["name"]: r for r in settings_rows("route_deviation", RouteDeviationSettings())}
    assert rows["corridor_m"]["value"] == 500 and rows["corridor_m"]["unit"] == "m"
    assert rows["deviation_min_duration_s"]["value"] == 120 and "art. 48" in rows["approved_route_classes"]["source"]
    assert rows["approved_route_classes"]["value"] == ("1", "7") and "剧毒" in rows["approved_route_highly_toxic"]["source"]


def test_bad_world_and_batch_get_clear_errors():
    world = make_world([EAST])
    batch = rule_batch(track(VEH_A, offsets([0, 0]), interval_s=60), world, waybill=3)
    with pytest.raises(ValueError, match="world.waybills has 1 rows"):
        RouteDeviationRule().step(RouteDeviationRule().initial_state(), batch, world)
    broken = RuleWorld(tiny_world(waybills=layer("waybills", [{"id": "WB-X", "geometry": None}])))
    with pytest.raises(ValueError, match="WB-X"):
        RouteDeviationRule().step(RouteDeviationRule().initial_state(), batch, broken)


# --- random tracks ---------------------------------------------------------------------------

GRAZE_M = [0.0, 399.9, 400.0, 400.1, 499.9, 500.0, 500.1, 650.0]
GAPS_S = [1.0, 30.0, 59.5, 60.0, 119.0, 120.0, 121.0, 600.0]
coord = st.integers(-3000, 3000).map(float)


@st.composite
def scenario(draw):
    routes = []
    for _ in range(2):
        pts = draw(st.lists(st.tuples(coord, coord), min_size=2, max_size=4, unique=True))
        routes.append(shapely.LineString(pts))
    tracks, waybills = [], []
    for v in (VEH_A, VEH_B)[: draw(st.integers(1, 2))]:
        n = draw(st.integers(1, 18))
        wb, xy = [], []
        current = draw(st.sampled_from([-1, 0, 1]))
        for _ in range(n):
            if draw(st.integers(0, 5)) == 0:
                current = draw(st.sampled_from([-1, 0, 1]))
            route = routes[max(current, 0)]
            base = shapely.line_interpolate_point(route, draw(st.floats(0, 1)), normalized=True)
            lateral = draw(st.one_of(st.sampled_from(GRAZE_M), st.floats(0, 900)))
            angle = draw(st.floats(0, 2 * np.pi))
            xy.append((base.x + lateral * np.cos(angle), base.y + lateral * np.sin(angle)))
            wb.append(current)
        gaps = [draw(st.one_of(st.sampled_from(GAPS_S), st.floats(1, 300))) for _ in range(n - 1)]
        tracks.append(track(v, xy, interval_s=gaps or 30.0))
        waybills += wb
    cuts = draw(st.lists(st.integers(0, 40), max_size=5))
    return routes, concat(tracks), np.array(waybills), cuts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_random_tracks_agree_with_the_oracle_however_batched(case):
    routes, pings, waybills, cuts = case
    world = make_world(routes, ["3", "6.1"])
    batch = rule_batch(pings, world, waybill=waybills)
    events = check_streaming(RouteDeviationRule(), batch, world, cuts=cuts)
    assert summary(events) == oracle(batch, world)


# --- a realistic world ---------------------------------------------------------------------

def test_demo_world_trucks_agree_with_the_oracle():
    from data.demo import build_world

    world = RuleWorld(build_world(7, 0.01))
    wbs = world.world.waybills
    active = np.flatnonzero((wbs["status"] == "active").to_numpy())
    assert wbs["vehicle_id"].iloc[active].is_unique
    rng = np.random.default_rng(3)
    routes = np.asarray(geometry_to_metric(wbs.geometry.to_numpy()), dtype=object)
    frames, rows = [], []
    for k, row in enumerate(active[:30]):
        n = 40
        along = shapely.line_interpolate_point(routes[row], np.linspace(0, 1, n), normalized=True)
        x, y = shapely.get_x(along), shapely.get_y(along)
        # half the trucks leave the route by up to 2 km, one way, for a stretch
        detour = (np.arange(n) > 10) & (np.arange(n) < 10 + rng.integers(6, 15)) & (k % 2 == 0)
        lateral = np.where(detour, rng.uniform(300, 2000, n), rng.uniform(0, 50, n))
        angle = np.where(detour, rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi, n))
        lon, lat = from_metric(x + lateral * np.cos(angle), y + lateral * np.sin(angle))
        frames.append(pd.DataFrame({"vehicle_id": wbs["vehicle_id"].iloc[row],
                                    "epoch_ms": T0_MS + 30_000 * np.arange(n), "lon": lon, "lat": lat}))
        rows.append(np.full(n, row))
    frame = pd.concat(frames, ignore_index=True)
    slot = world.vehicle_ids.get_indexer(frame["vehicle_id"].to_numpy(dtype=object))
    order = np.lexsort((frame["epoch_ms"].to_numpy(), slot))
    batch = rule_batch(PingBatch.from_frame(frame.iloc[order]), world, waybill=np.concatenate(rows)[order])
    events = run(RouteDeviationRule(), [batch], world)
    assert summary(events) == oracle(batch, world)
    assert sum(e.phase == "open" for e in events) >= 3
