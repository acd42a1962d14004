"""mixed_loading and unapproved_medium: the ADR pair table against a plain re-statement (every
pair of a catalogue of representative goods), the brief's boundary cases, the waybill
episodes along the pings, streaming, and the demo world's ~2 % of mixed loads.

The re-statement (`plain_allowed`) does not import spatial.rules: it is DOMAIN.md §3 and
ADR 7.5.2.1/7.5.2.2 written as nested conditions, one pair of labels at a time.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from data.demo import build_world
from spatial.rules.adr import (
    SegregationOptions,
    conflicts_between,
    pair_conflicts,
    parse_hazard_class,
)
from spatial.rules.base import RuleBatch, RuleWorld, settings_rows
from spatial.rules.mixed_loading import (
    MixedLoadingRule,
    MixedLoadingSettings,
    UnapprovedMediumRule,
    UnapprovedMediumSettings,
)
from tests.tracks import T0_MS, layer, lonlat, metric_geometry, tiny_world, vehicle

S = 1000

# (hazard class, UN number): every label, the notes' UN numbers, every compatibility group
GOODS = [
    ("1.1A", "0129"), ("1.1B", "0029"), ("1.1C", "0160"), ("1.1D", "0081"), ("1.1D", "0082"), ("1.1E", "0006"),
    ("1.1F", "0030"), ("1.1G", "0333"), ("1.2H", "0243"), ("1.1J", "0397"), ("1.1L", "0357"), ("1.2L", "0358"),
    ("1.3C", "0161"), ("1.4S", "0012"), ("1.4G", "0503"), ("1.4G", "0336"), ("1.4B", "0255"), ("1.4C", "0276"),
    ("1.4", "0349"), ("1.1", "0065"), ("1.5D", "0331"), ("1.6N", "0486"), ("1.6N", "0487"),
    ("2.1", "1075"), ("2.2", "1066"), ("2.3", "1017"), ("2.3", "1076"), ("3", "1203"), ("4.1", "1350"),
    ("4.1+1", "3221"), ("4.2", "1381"), ("4.3", "1402"), ("5.1", "1942"), ("5.1", "2067"), ("5.1", "3375"),
    ("5.1", "1479"), ("5.2", "3105"), ("5.2+1", "3101"), ("6.1", "1689"), ("6.1", "1051"), ("6.2", "2814"),
    ("7", "2915"), ("8", "1830"), ("8", "1824"), ("9", "2990"), ("9", "3072"), ("9", "3268"), ("9", "3082"),
    ("3+8", "2924"), ("6.1+3", "1092"), ("8+3", "2920"),
    # note d's explosive side (blasting types A-E, C excluded) and its nitrates; label 9A
    ("1.1D", "0083"), ("1.1D", "0084"), ("1.1D", "0241"), ("5.1", "1486"), ("5.1", "1446"), ("5.1+6.1", "2464"),
    ("9A", "3480"),
]

EXPLOSIVE = {"1", "1.4", "1.5", "1.6"}
LIFE_SAVING = {"2990", "3072", "3268"}
# ADR 2025 7.5.2.1 note d: ammonium nitrate, alkali-metal and alkaline-earth nitrates
NITRATES = {"1942", "2067", "3375", "1451", "2722", "1486", "1477", "1498", "1446", "2464", "1454", "1474", "1507"}
BLASTING = {"0081", "0082", "0084", "0241", "0331", "0332"}  # explosive, blasting, types A-E but C (0083)
AN_EXPLOSIVES = {"0082", "0241", "0331", "0332"}  # the stricter option, not ADR's


def plain_labels(cls: str) -> list[str]:
    parts = cls.split("+")
    main = parts[0]
    if main.startswith("1"):
        div = main[:3]
        return ["1.4" if div == "1.4" else "1.5" if div == "1.5" else "1.6" if div == "1.6" else "1"]
    if parts[1:] == ["1"]:
        return [main + "+1"]
    return [main[0] if main[0] in "279" else main] + [p[0] if p[0] in "27" else p for p in parts[1:]]


def plain_group(cls: str) -> str:
    main = cls.split("+")[0]
    return main[3:] if main.startswith("1") and len(main) > 3 else ""


def groups_allowed(ga: str, ua: str, gb: str, ub: str) -> bool:
    """ADR 7.5.2.2, re-stated; conditional cells (B+D, N+N of another UN, L+L of another UN)
    and unstated groups are not allowed."""
    if not ga or not gb:
        return False
    if ga == gb:
        return ga not in ("L", "N") or ua == ub
    pair = {ga, gb}
    if "S" in pair:
        return not pair & {"A", "L"}
    if pair <= {"C", "D", "E"}:
        return True
    if "G" in pair and pair - {"G"} <= {"C", "D", "E"}:
        return True
    return bool("N" in pair and pair - {"N"} <= {"C", "D", "E"})


def plain_allowed(a, b, nitrate_explosives_only=False) -> bool:
    (ca, ua), (cb, ub) = a, b
    if ua == ub:
        return True
    # note d permits the two goods, whatever other label the nitrate bears (5.1+6.1)
    explosives = AN_EXPLOSIVES if nitrate_explosives_only else BLASTING
    for (cx, ux), (cy, uy) in ((a, b), (b, a)):
        if plain_labels(cx) == ["1"] and ux in explosives and "5.1" in plain_labels(cy) and uy in NITRATES:
            return True
    for la in plain_labels(ca):
        for lb in plain_labels(cb):
            if la in EXPLOSIVE and lb in EXPLOSIVE:
                ok = groups_allowed(plain_group(ca), ua, plain_group(cb), ub)
            elif la in EXPLOSIVE or lb in EXPLOSIVE:
                (e, ce, ue), (o, uo) = ((la, ca, ua), (lb, ub)) if la in EXPLOSIVE else ((lb, cb, ub), (la, ua))
                if o in ("4.1+1", "5.2+1"):
                    ok = False
                elif e == "1.4":
                    ok = plain_group(ce) == "S" or (o == "9" and uo in LIFE_SAVING)
                else:
                    ok = o == "9" and uo in LIFE_SAVING
            elif "4.1+1" in (la, lb):
                ok = la == lb
            elif "5.2+1" in (la, lb):
                ok = {la, lb} <= {"5.2", "5.2+1"}
            else:
                ok = True
            if not ok:
                return False
    return True


def plain_cfr_forbidden(a, b) -> bool:
    zone_a = {"1051", "1067", "1076", "1589", "2188", "2199"}
    cyanides = {"1051", "1565", "1575", "1588", "1613", "1614", "1680", "1689", "1935", "3413", "3414"}
    acids = {"1050", "1052", "1779", "1789", "1790", "1805", "1830", "1831", "1832", "2031", "2032", "2789", "2796",
             "3264", "3265"}
    partners = {"3", "4.1", "4.1+1", "4.2", "4.3", "5.1", "5.2", "5.2+1", "8"}
    for (cx, ux), (cy, uy) in ((a, b), (b, a)):
        if ux in zone_a and cx.split("+")[0] in ("2.3", "6.1") and set(plain_labels(cy)) & partners:
            return True
        if ux in cyanides and uy in acids:
            return True
    return False


def goods_frame(pairs) -> pd.DataFrame:
    rows = []
    for k, (a, b) in enumerate(pairs):
        for seq, (cls, un) in enumerate((a, b), start=1):
            rows.append({"waybill_id": f"WB-{k:06d}", "seq": seq, "un_number": un, "hazard_class": cls})
    return pd.DataFrame(rows)


ALL_PAIRS = [(a, b) for a, b in itertools.product(GOODS, GOODS) if a != b]


@pytest.mark.parametrize("nitrate_explosives_only", [False, True])
def test_every_pair_matches_the_plain_restatement(nitrate_explosives_only):
    options = SegregationOptions(nitrate_explosives_only=nitrate_explosives_only)
    conflicts = pair_conflicts(goods_frame(ALL_PAIRS), options)
    flagged = set(conflicts["waybill_id"])
    wrong = [(a, b) for k, (a, b) in enumerate(ALL_PAIRS)
             if (f"WB-{k:06d}" in flagged) == plain_allowed(a, b, nitrate_explosives_only)]
    assert wrong == []
    assert 0 < len(flagged) < len(ALL_PAIRS)


def test_every_pair_with_the_49_cfr_pairs():
    options = SegregationOptions(cfr_177_848=True)
    conflicts = pair_conflicts(goods_frame(ALL_PAIRS), options)
    flagged = set(conflicts["waybill_id"])
    wrong = [(a, b) for k, (a, b) in enumerate(ALL_PAIRS)
             if (f"WB-{k:06d}" in flagged) != (not plain_allowed(a, b) or plain_cfr_forbidden(a, b))]
    assert wrong == []
    cfr_only = conflicts[conflicts["clause"].str.startswith("49 CFR")]
    assert len(cfr_only) and set(cfr_only["note"]) == {""}


@pytest.mark.parametrize("a, b, forbidden, clause", [
    (("1.4S", "0012"), ("3", "1203"), False, None),
    (("1.4G", "0336"), ("3", "1203"), True, "ADR 7.5.2.1"),
    (("1.1D", "0081"), ("5.1", "1942"), False, None),          # ammonium nitrate, note d (DOMAIN.md)
    (("1.1D", "0084"), ("5.1", "1486"), False, None),          # an alkali-metal nitrate, note d
    (("1.1D", "0241"), ("5.1", "1446"), False, None),          # an alkaline-earth nitrate, note d
    (("1.1D", "0081"), ("5.1+6.1", "2464"), False, None),      # beryllium nitrate keeps its 6.1 label
    (("1.1D", "0083"), ("5.1", "1942"), True, "ADR 7.5.2.1"),  # type C is excluded by name
    (("1.1B", "0029"), ("5.1", "1942"), True, "ADR 7.5.2.1"),  # detonators are no blasting explosive
    (("9A", "3480"), ("3", "1203"), False, None),              # label 9A is ADR's row "9, 9A"
    (("9A", "3480"), ("1.1D", "0081"), True, "ADR 7.5.2.1"),
    (("1.1D", "0081"), ("5.1", "1479"), True, "ADR 7.5.2.1"),  # another oxidiser
    (("1.1D", "0081"), ("9", "2990"), False, None),            # life-saving appliance, note b
    (("1.1D", "0081"), ("9", "3082"), True, "ADR 7.5.2.1"),
    (("1.5D", "0331"), ("5.1", "1942"), True, "ADR 7.5.2.1"),  # note d is for label 1 only
    (("4.1", "1350"), ("4.1+1", "3221"), True, "ADR 7.5.2.1"),
    (("4.1+1", "3221"), ("4.1+1", "3222"), False, None),
    (("5.2", "3105"), ("5.2+1", "3101"), False, None),
    (("5.2+1", "3101"), ("3", "1203"), True, "ADR 7.5.2.1"),
    (("1.1D", "0081"), ("1.1B", "0029"), True, "ADR 7.5.2.2"),
    (("1.1D", "0081"), ("1.4S", "0012"), False, None),
    (("1.1D", "0081"), ("3", "1203"), True, "ADR 7.5.2.1"),
    (("3", "1203"), ("8", "1830"), False, None),
    (("6.1", "1689"), ("8", "1830"), False, None),             # only under 49 CFR
])
def test_boundary_pairs(a, b, forbidden, clause):
    conflicts = conflicts_between(a[0], a[1], b[0], b[1])
    assert bool(len(conflicts)) == forbidden
    if forbidden:
        assert clause in set(conflicts["clause"])


def test_the_strict_nitrate_reading_and_the_cfr_setting():
    strict = SegregationOptions(nitrate_explosives_only=True)
    assert len(conflicts_between("1.1D", "0081", "5.1", "1942", strict)) == 1
    assert len(conflicts_between("1.1D", "0082", "5.1", "1942", strict)) == 0
    # the stricter list is an engineering option: its setting must not pass it off as ADR's
    source = {r["name"]: r["source"] for r in settings_rows("mixed_loading", MixedLoadingSettings())}
    assert "not ADR's" in source["nitrate_explosives_only"]
    cfr = SegregationOptions(cfr_177_848=True)
    assert list(conflicts_between("6.1", "1689", "8", "1830", cfr)["clause"]) == ["49 CFR 177.848 (cyanides with acids)"]
    assert list(conflicts_between("2.3", "1076", "3", "1203", cfr)["clause"]) == ["49 CFR 177.848 (zone A)"]
    assert len(conflicts_between("2.3", "1017", "3", "1203", cfr)) == 0  # chlorine is not zone A


@pytest.mark.parametrize("text, labels, group", [
    ("1.1D", ("1",), "D"), ("1.4S", ("1.4",), "S"), ("1.4", ("1.4",), ""), ("4.1+1", ("4.1+1",), ""),
    ("5.2+1", ("5.2+1",), ""), ("3+8", ("3", "8"), ""), ("2.3+8", ("2", "8"), ""), ("7A", ("7",), ""),
    ("9A", ("9",), ""),
    (" 6.1 ", ("6.1",), ""),
])
def test_parse_hazard_class(text, labels, group):
    parsed = parse_hazard_class(text)
    assert parsed.labels == labels and parsed.group == group


@pytest.mark.parametrize("text", ["", "10", "4", "1.7D", "1.1I", "3+1", "1.1D+3", "acid"])
def test_bad_classes_are_named(text):
    with pytest.raises(ValueError, match="hazard class"):
        parse_hazard_class(text)


def test_a_bad_class_on_a_waybill_names_it():
    goods = pd.DataFrame([{"waybill_id": "WB-000009", "seq": 1, "un_number": "1203", "hazard_class": "3"},
                          {"waybill_id": "WB-000009", "seq": 2, "un_number": "9999", "hazard_class": "11"}])
    with pytest.raises(ValueError, match="WB-000009"):
        pair_conflicts(goods)


# --- the rules along the pings ------------------------------------------------------------------

IDS = ["VEH-000000", "VEH-000001", "VEH-000002"]


def world_with_waybills():
    """VEH-0 (van) has WB-0 mixed (1.1D + 3), then WB-1 clean (3 + 8); VEH-1 (tank, approved
    1203) has WB-2 of methanol (unapproved), VEH-2 (tank) WB-3 of gasoline (approved)."""
    stamp = pd.Timestamp(T0_MS, unit="ms", tz="UTC")
    wb = lambda i, v: {"id": f"WB-{i:06d}", "vehicle_id": v, "status": "active", "loading_site_id": "ENT-L",
                       "unloading_site_id": "ENT-U", "consignor": "甲", "consignee": "乙", "carrier": "丙",
                       "planned_departure": stamp, "planned_arrival": stamp + pd.Timedelta(hours=3),
                       "emergency_phone": "110",
                       "geometry": metric_geometry(shapely.LineString([(0, 0), (1000, 0)]))}
    goods = pd.DataFrame([
        {"waybill_id": "WB-000000", "seq": 1, "un_number": "0081", "name": "炸药", "hazard_class": "1.1D",
         "packing_group": None, "quantity_t": 1.0},
        {"waybill_id": "WB-000000", "seq": 2, "un_number": "1203", "name": "汽油", "hazard_class": "3",
         "packing_group": "II", "quantity_t": 2.0},
        {"waybill_id": "WB-000001", "seq": 1, "un_number": "1203", "name": "汽油", "hazard_class": "3",
         "packing_group": "II", "quantity_t": 2.0},
        {"waybill_id": "WB-000001", "seq": 2, "un_number": "1830", "name": "硫酸", "hazard_class": "8",
         "packing_group": "II", "quantity_t": 2.0},
        {"waybill_id": "WB-000002", "seq": 1, "un_number": "1230", "name": "甲醇", "hazard_class": "3",
         "packing_group": "II", "quantity_t": 20.0},
        {"waybill_id": "WB-000003", "seq": 1, "un_number": "1203", "name": "汽油", "hazard_class": "3",
         "packing_group": "II", "quantity_t": 20.0},
    ])
    vehicles = layer("vehicles", [vehicle(IDS[0], body="van", media=()), vehicle(IDS[1], media=("1203",)),
                                  vehicle(IDS[2], media=("1203",))])
    waybills = layer("waybills", [wb(0, IDS[0]), wb(1, IDS[0]), wb(2, IDS[1]), wb(3, IDS[2])])
    return RuleWorld(tiny_world(vehicles=vehicles, waybills=waybills, waybill_goods=goods))


WORLD = world_with_waybills()


def batch_of(rows) -> RuleBatch:
    """rows (slot, seconds after T0, waybill row), released as the engine would (sorted)."""
    rows = sorted(rows)
    slot = np.array([r[0] for r in rows], "int64")
    lon, lat = lonlat(np.array([[r[1] * 10.0, r[0] * 100.0] for r in rows]).reshape(-1, 2))
    n = len(rows)
    wb = np.array([r[2] for r in rows], "int64")
    return RuleBatch(
        slot=slot, vehicle_id=np.array([IDS[s] for s in slot], dtype=object),
        epoch_ms=np.array([T0_MS + r[1] * S for r in rows], "int64"), lon=lon, lat=lat, x=np.zeros(n),
        y=np.zeros(n), speed_kmh=np.zeros(n), speed_derived=np.zeros(n, bool), heading=np.zeros(n),
        alarm=np.zeros(n, "uint32"), status=np.zeros(n, "uint32"), waybill=wb, loaded=wb >= 0,
        clock_ms=T0_MS + max(r[1] for r in rows) * S if rows else -1)


def run(rule, rows, chunks=None):
    rows = sorted(rows, key=lambda r: (r[1], r[0]))
    chunks = chunks or [list(range(len(rows)))]
    state, events = rule.initial_state(), []
    for chunk in chunks:
        if chunk:
            state, ev = rule.step(state, batch_of([rows[i] for i in chunk]), WORLD)
            events += ev
    return events


def brief(events):
    return sorted((e.rule, e.subject_id, e.phase, (int(e.start.value // 10**6) - T0_MS) // S,
                   None if e.end is None else (int(e.end.value // 10**6) - T0_MS) // S,
                   e.evidence["waybill_id"]) for e in events)


def oracle(rows, flagged: set[int], rule: str):
    """Per vehicle, ping by ping: an episode per run of consecutive pings on a flagged waybill."""
    out = []
    for v in sorted({r[0] for r in rows}):
        seq = sorted((r[1], r[2]) for r in rows if r[0] == v)
        current, start, last = -1, None, None
        for sec, wb in seq:
            if wb != current:
                if current in flagged:
                    out.append((rule, IDS[v], "close", start, last, f"WB-{current:06d}"))
                if wb in flagged:
                    out.append((rule, IDS[v], "open", sec, None, f"WB-{wb:06d}"))
                current, start = wb, sec
            last = sec
    return sorted(out)


TRIP = ([(0, 30 * k, -1) for k in range(3)] + [(0, 90 + 30 * k, 0) for k in range(5)]
        + [(0, 240 + 30 * k, 1) for k in range(4)] + [(0, 360 + 30 * k, -1) for k in range(2)]
        + [(1, 30 * k, 2) for k in range(6)] + [(2, 30 * k, 3) for k in range(6)])


def test_mixed_load_opens_with_its_waybill_and_closes_when_it_ends():
    events = run(MixedLoadingRule(), TRIP)
    assert brief(events) == [("mixed_loading", IDS[0], "close", 90, 210, "WB-000000"),
                             ("mixed_loading", IDS[0], "open", 90, None, "WB-000000")]
    opened = next(e for e in events if e.phase == "open")
    assert opened.severity == 1 and opened.evidence["explosive_involved"]
    assert opened.evidence["conflicts"] == [{"un_a": "0081", "class_a": "1.1D", "un_b": "1203", "class_b": "3",
                                              "labels": "1 / 3", "clause": "ADR 7.5.2.1", "note": ""}]
    closed = next(e for e in events if e.phase == "close")
    assert closed.evidence["next_waybill_id"] == "WB-000001"


def test_unapproved_medium_on_a_tank_only():
    events = run(UnapprovedMediumRule(), TRIP)
    assert brief(events) == [("unapproved_medium", IDS[1], "open", 0, None, "WB-000002")]
    assert events[0].evidence["unapproved"] == [{"seq": 1, "un_number": "1230", "hazard_class": "3", "name": "甲醇"}]
    assert events[0].evidence["approved_media"] == ["1203"]
    from tests.evidence_labels import unlabelled
    assert unlabelled(events) == set()


def test_empty_batches_raise_nothing():
    for rule in (MixedLoadingRule(), UnapprovedMediumRule()):
        assert rule.step(rule.initial_state(), RuleBatch.empty().with_columns(clock_ms=T0_MS), WORLD)[1] == []


def canonical(events):
    return sorted((e.rule, e.subject_id, e.episode_id, e.phase, e.start, e.end, e.lon, e.lat, e.severity,
                   json.dumps(e.evidence, sort_keys=True)) for e in events)


@st.composite
def waybill_streams(draw):
    rows = []
    for v, choices in ((0, [-1, 0, 1]), (1, [-1, 2]), (2, [-1, 3])):
        sec = draw(st.integers(0, 10))
        for _ in range(draw(st.integers(0, 10))):
            rows.append((v, sec, draw(st.sampled_from(choices))))
            sec += draw(st.integers(1, 60))
    rows.sort(key=lambda r: (r[1], r[0]))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(len(rows) - 1, 1)), max_size=5))))
    bounds = [0, *cuts, len(rows)]
    return rows, [list(range(a, b)) for a, b in itertools.pairwise(bounds)]


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(waybill_streams())
def test_episodes_match_the_oracle_in_any_chunking(case):
    rows, chunks = case
    for rule, flagged in ((MixedLoadingRule(), {0}), (UnapprovedMediumRule(), {2})):
        one = run(rule, rows)
        assert brief(one) == oracle(rows, flagged, rule.name)
        assert canonical(one) == canonical(run(rule, rows, chunks)) == \
            canonical(run(rule, rows, [[i] for i in range(len(rows))]))


def test_demo_world_has_its_two_percent_of_mixed_loads():
    world = build_world(7, 0.1)
    rw = RuleWorld(world)
    flagged = MixedLoadingRule().findings(rw).flagged
    goods = world.waybill_goods
    by_wb = goods.groupby("waybill_id")["hazard_class"].agg(set)
    plain = {w for w, classes in by_wb.items()
             if any(c.startswith("1.1") for c in classes) and len(classes) > 1}  # 1.1 with anything but itself
    ids = world.waybills["id"].to_numpy()
    assert set(ids[flagged]) == plain
    assert 0.01 <= flagged.mean() <= 0.03
    # the demo's tanks carry what they are approved for
    assert not UnapprovedMediumRule().findings(rw).flagged.any()


def test_settings_rows_and_checks():
    rows = settings_rows("mixed_loading", MixedLoadingSettings())
    assert {r["name"] for r in rows} == {"nitrate_explosives_only", "cfr_177_848", "zone_a_un", "cyanides_un",
                                         "acids_un"}
    assert all(r["source"] for r in rows)
    assert settings_rows("unapproved_medium", UnapprovedMediumSettings())[0]["name"] == "tank_bodies"
    with pytest.raises(ValueError, match="zone_a_un"):
        MixedLoadingSettings(zone_a_un=("12",))
    with pytest.raises(ValueError, match="tank_bodies"):
        UnapprovedMediumSettings(tank_bodies="tank")


# --- through the engine ---------------------------------------------------------------------------

def test_through_the_engine_the_waybill_stage_drives_the_episode():
    from spatial.model import PingBatch
    from spatial.rules.engine import Engine, sort_events
    from tests.tracks import track

    base = world_with_waybills().world
    stamp = lambda minutes: pd.Timestamp(T0_MS + minutes * 60 * S, unit="ms", tz="UTC")
    waybills = base.waybills.copy()
    waybills["planned_departure"] = [stamp(0), stamp(60), stamp(0), stamp(0)]
    waybills["planned_arrival"] = [stamp(30), stamp(120), stamp(120), stamp(120)]
    world = tiny_world(vehicles=base.vehicles, waybills=waybills, waybill_goods=base.waybill_goods)

    WithDocumentRules = Engine  # both rules are registered in the engine

    xy = np.column_stack([np.arange(200) * 150.0, np.zeros(200)])  # 18 km/h, no stop
    pings = track(IDS[0], xy, start_ms=T0_MS - 10 * 60 * S, interval_s=30.0)
    ours = lambda events: [e for e in sort_events(events) if e.rule in ("mixed_loading", "unapproved_medium")]
    one = ours(WithDocumentRules(world).run(pings))
    engine = WithDocumentRules(world)
    frame = pings.to_frame()
    single = []
    for i in range(len(frame)):
        single += engine.step(PingBatch.from_frame(frame.iloc[[i]]))
    single = ours(single + engine.flush())
    assert canonical(one) == canonical(single)
    assert brief(one) == [("mixed_loading", IDS[0], "close", 0, 3570, "WB-000000"),
                          ("mixed_loading", IDS[0], "open", 0, None, "WB-000000")]
