"""point_level against a plain-Python oracle and boundary tables.

The oracle is a level state machine per point and side (0 none, 1, 2), written from the
rule's statement, not from its two nested scans: reaching the outer threshold (value >= it;
<= on the low side) opens at level 1, or 2 when high-high is reached too; at level 1 reaching
high-high escalates; at level 2 falling to high-high - deadband or below de-escalates; falling
to outer - deadband or below closes. Deadband = 1 % of the range.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spatial.rules.point_level import PointLevelRule, PointLevelSettings
from tests.rules.test_point_kit import (
    MIN_MS,
    event_key,
    events_of,
    merge,
    point,
    point_world,
    readings,
    split,
)
from tests.tracks import T0_MS

GAS, TOX, TANK = "MP-000001", "MP-000002", "MP-000003"
GAS_POINT = point(GAS)  # 25 / 50 %LEL, range 0-100: deadband 1.0
TOX_POINT = point(TOX, "toxic_gas", high=10.0, high_high=20.0, range_max=100.0, substance_un="1053")
TANK_POINT = point(TANK, "level", low_low=0.5, low=1.0, high=8.5, high_high=9.5, range_max=10.0)  # deadband 0.1
WORLD = point_world(GAS_POINT, TOX_POINT, TANK_POINT)


def run(batch, rule_settings=None, world=WORLD):
    return events_of(world, (PointLevelRule(rule_settings or PointLevelSettings()),), [batch])


def summary(events) -> list[tuple]:
    """(phase, point, start minute, level or max level, reading minute, severity) per event."""
    out = []
    for e in events:
        level = e.evidence.get("level", e.evidence.get("max_level"))
        minute = (int(e.start.value // 1_000_000) - T0_MS) // MIN_MS
        at = (pd.Timestamp(e.evidence["time"]).value // 1_000_000 - T0_MS) // MIN_MS
        out.append((e.phase, e.subject_id, minute, level, int(at), e.severity))
    return out


# --- the oracle ----------------------------------------------------------------------------

def oracle(points: dict[str, dict], series: dict[str, list[tuple[int, float]]]) -> list[tuple]:
    """Same tuples as `summary`, sorted like the engine (time, point, phase)."""
    out = []
    for pid, rows in series.items():
        p = points[pid]
        span = p["range_max"] - p["range_min"]
        deadband = 0.01 * span
        sides = [("high", 1.0, p["high"], p["high_high"]), ("low", -1.0, p["low"], p["low_low"])]
        toxic = p["kind"] == "toxic_gas"
        for _, sign, t1, t2 in sides:
            t1 = None if t1 is None or math.isnan(t1) else sign * t1
            t2 = None if t2 is None or math.isnan(t2) else sign * t2
            outer = t1 if t1 is not None else t2
            if outer is None:
                continue
            level, start, top = 0, None, 0

            def sev(lvl, toxic=toxic):
                return 1 if toxic or lvl == 2 else 2

            for t, v in rows:
                q = sign * v
                minute = (t - T0_MS) // MIN_MS
                if level == 0:
                    if q >= outer:
                        level = 2 if (t2 is not None and q >= t2) else 1
                        start, top = minute, level
                        out.append(("open", pid, start, level, minute, sev(level)))
                    continue
                if not q > outer - deadband:
                    out.append(("close", pid, start, top, minute, sev(top)))
                    level = 0
                    if q >= outer:  # cannot happen: outer - deadband < outer
                        raise AssertionError
                elif level == 1 and t2 is not None and q >= t2:
                    level, top = 2, 2
                    out.append(("update", pid, start, 2, minute, sev(2)))
                elif level == 2 and t1 is not None and not q > t2 - deadband:
                    level = 1
                    out.append(("update", pid, start, 1, minute, sev(1)))
    phase = {"open": 0, "update": 1, "close": 2}
    # engine order: a close at its end (the last alarming reading), others at their start
    return sorted(out, key=lambda r: (r[2], r[1], r[0] != "open", phase[r[0]], r[4]))


def compare(points, series):
    batch = merge(*(readings(pid, [v for _, v in rows], start_ms=rows[0][0]) for pid, rows in series.items()))
    got = summary(run(batch, world=point_world(*points.values())))
    want = oracle(points, series)
    assert sorted(got, key=lambda r: (r[1], r[4], r[0])) == sorted(want, key=lambda r: (r[1], r[4], r[0]))


def series_of(values, start_ms=T0_MS):
    return [(start_ms + k * MIN_MS, float(v)) for k, v in enumerate(values)]


# --- boundary tables -----------------------------------------------------------------------

@pytest.mark.parametrize("values, expected", [
    # exactly at 25 %LEL alarms (reaching the setting), just below does not
    ([20, 25.0, 20], [("open", GAS, 1, 1, 1, 2), ("close", GAS, 1, 1, 2, 2)]),
    ([20, 24.999999, 20], []),
    # just above 50 opens straight at level 2
    ([20, 50.000001, 20], [("open", GAS, 1, 2, 1, 1), ("close", GAS, 1, 2, 2, 1)]),
    ([20, 49.999999, 20], [("open", GAS, 1, 1, 1, 2), ("close", GAS, 1, 1, 2, 2)]),
    # hovering on 25 within the 1.0 deadband: one episode; exactly 24.0 (= 25 - deadband) closes
    ([25.0, 24.5, 25.2, 24.1, 25.0, 24.0001, 24.0],
     [("open", GAS, 0, 1, 0, 2), ("close", GAS, 0, 1, 6, 2)]),
    # escalation and de-escalation inside one episode (49.0 = 50 - deadband de-escalates)
    ([20, 26, 51, 49.5, 49.0, 51, 23, 24.5],
     [("open", GAS, 1, 1, 1, 2), ("update", GAS, 1, 2, 2, 1), ("update", GAS, 1, 1, 4, 2),
      ("update", GAS, 1, 2, 5, 1), ("close", GAS, 1, 2, 6, 1)]),
    # level 2 straight to closed: no de-escalation update
    ([60, 10], [("open", GAS, 0, 2, 0, 1), ("close", GAS, 0, 2, 1, 1)]),
    # two episodes when the value leaves the deadband in between
    ([30, 23.9, 30], [("open", GAS, 0, 1, 0, 2), ("close", GAS, 0, 1, 1, 2), ("open", GAS, 2, 1, 2, 2)]),
])
def test_gas_boundaries(values, expected):
    got = summary(run(readings(GAS, values)))
    assert got == expected


def test_close_evidence_and_times():
    events = run(readings(GAS, [20, 26, 55, 30, 10]))
    close = events[-1]
    assert close.phase == "close" and close.evidence["max_level"] == 2 and close.evidence["peak_value"] == 55.0
    assert close.end.value // 1_000_000 == T0_MS + 3 * MIN_MS  # the last alarming reading
    assert close.evidence["duration_s"] == 120.0 and close.evidence["readings"] == 3
    opened = events[0]
    assert opened.evidence | {"time": None} == opened.evidence | {
        "time": None, "value": 26.0, "threshold": 25.0, "level": 1, "unit": "%LEL", "kind": "combustible_gas",
        "hazard_source_id": "HS-000001", "side": "high", "deadband": 1.0, "level_1_threshold": 25.0,
        "level_2_threshold": 50.0}
    assert opened.episode_id == close.episode_id == f"point_level:{GAS}:{T0_MS + MIN_MS}"


def test_toxic_gas_is_one_step_more_severe():
    got = summary(run(readings(TOX, [1, 10.0, 21, 5])))
    assert got == [("open", TOX, 1, 1, 1, 1), ("update", TOX, 1, 2, 2, 1), ("close", TOX, 1, 2, 3, 1)]
    assert run(readings(TOX, [1, 10.0]))[0].evidence["substance_un"] == "1053"


def test_low_side_of_a_tank_level():
    # low 1.0, low_low 0.5, deadband 0.1: 0.6 de-escalates (= 0.5 + deadband), 1.1 closes
    got = summary(run(readings(TANK, [2.0, 1.0, 0.5, 0.55, 0.6, 1.05, 1.1, 9.5])))
    assert got == [("open", TANK, 1, 1, 1, 2), ("update", TANK, 1, 2, 2, 1), ("update", TANK, 1, 1, 4, 2),
                   ("close", TANK, 1, 2, 6, 1), ("open", TANK, 7, 2, 7, 1)]
    assert run(readings(TANK, [2.0, 0.9]))[0].evidence["side"] == "low"


def test_unset_thresholds():
    only_hh = point("MP-000009", "pressure", high=None, high_high=2.0, range_max=4.0)  # deadband 0.04
    no_alarm = point("MP-000010", "temperature", high=None, high_high=None, range_min=-40.0, range_max=200.0)
    world = point_world(only_hh, no_alarm)
    got = summary(run(merge(readings("MP-000009", [1.0, 2.0, 1.97, 1.96]),
                            readings("MP-000010", [-40, 500, 20])), world=world))
    assert got == [("open", "MP-000009", 1, 2, 1, 1), ("close", "MP-000009", 1, 2, 3, 1)]


def test_min_readings_delays_the_open_to_the_second_reading():
    rule_settings = PointLevelSettings(level_min_readings=2)
    got = summary(run(readings(GAS, [20, 26, 20, 27, 28, 10]), rule_settings))
    assert got == [("open", GAS, 3, 1, 4, 2), ("close", GAS, 3, 1, 5, 2)]


def test_bad_settings_and_bad_points_are_named():
    with pytest.raises(ValueError, match="level_deadband_fraction"):
        PointLevelSettings(level_deadband_fraction=-0.1)
    with pytest.raises(ValueError, match="MP-000007"):
        events_of(point_world(point("MP-000007", high=60.0, high_high=50.0)), (PointLevelRule(),), [])
    with pytest.raises(ValueError, match="MP-000008"):
        events_of(point_world(point("MP-000008", range_min=10.0, range_max=10.0)), (PointLevelRule(),), [])


# --- random sequences against the oracle ---------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gas=st.lists(st.sampled_from([20.0, 23.9, 24.0, 24.5, 25.0, 26.0, 48.9, 49.0, 49.5, 50.0, 51.0]),
                    min_size=1, max_size=30),
       tank=st.lists(st.sampled_from([0.4, 0.5, 0.55, 0.6, 0.95, 1.0, 1.05, 1.1, 5.0, 8.4, 8.5, 9.4, 9.5, 10.0]),
                     min_size=1, max_size=30),
       cut=st.integers(0, 60))
def test_random_sequences_match_the_oracle(gas, tank, cut):
    points = {GAS: GAS_POINT, TANK: TANK_POINT}
    series = {GAS: series_of(gas), TANK: series_of(tank, T0_MS + 30_000)}
    compare(points, series)
    # and the same readings in two steps give the same events
    batch = merge(readings(GAS, gas), readings(TANK, tank, start_ms=T0_MS + 30_000))
    rule = (PointLevelRule(),)
    assert [event_key(e) for e in events_of(WORLD, rule, split(batch, [cut]))] == \
        [event_key(e) for e in events_of(WORLD, rule, [batch])]
