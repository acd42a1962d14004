"""terminal_alarm: a plain per-ping oracle, boundary cases, the bit table, streaming."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from data.feeds.jt808 import ALARM_BITS
from spatial.model import PingBatch
from spatial.rules.base import RuleWorld, settings_rows
from spatial.rules.terminal_alarm import (
    ALARM_BIT_NAMES,
    TerminalAlarmRule,
    TerminalAlarmSettings,
)
from tests.tracks import T0_MS, layer, lonlat, rule_batch, tiny_world, vehicle

S = 1000
IDS = [f"VEH-{i:06d}" for i in range(4)]
WORLD = RuleWorld(tiny_world(vehicles=layer("vehicles", [vehicle(v) for v in IDS])))

# The bits and severities as documented: SOS highest; violations and dangers high; the rest medium.
EXPECTED_SEVERITY = {0: 1, **{b: 2 for b in (1, 2, 3, 18, 19, 20, 21, 22, 23, 26, 27, 28, 29, 30, 31)},
                     **{b: 3 for b in (4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 24, 25)}}


def pings_of(rows) -> PingBatch:
    """rows: (vehicle index, seconds after T0, alarm word)."""
    rows = list(rows)
    lon, lat = lonlat(np.array([[r[1] * 10.0, r[0] * 100.0] for r in rows]).reshape(-1, 2))
    return PingBatch.from_arrays([IDS[r[0]] for r in rows], [T0_MS + r[1] * S for r in rows], lon, lat,
                                 speed_kmh=np.full(len(rows), 50.0), alarm=[r[2] for r in rows])


DEFAULTS = TerminalAlarmSettings()


def run(rows, chunks: list[list[int]] | None = None, settings=DEFAULTS):
    rule = TerminalAlarmRule(settings)
    rows = sorted(rows, key=lambda r: (r[1], r[0]))
    chunks = chunks or [list(range(len(rows)))]
    state, events = rule.initial_state(), []
    for chunk in chunks:
        if not chunk:
            continue
        state, ev = rule.step(state, rule_batch(pings_of([rows[i] for i in chunk]), WORLD), WORLD)
        events += ev
    return events


def brief(events):
    return sorted((e.subject_id, e.evidence["bit"], e.phase, int(e.start.value // 10**6),
                   None if e.end is None else int(e.end.value // 10**6), e.severity) for e in events)


def oracle(rows, bits=tuple(ALARM_BITS)):
    """Per vehicle, per bit, ping by ping: open on the first ping with the bit, close on the
    first without (end = the last ping with it)."""
    out = []
    for v in sorted({r[0] for r in rows}):
        seq = sorted((r[1], r[2]) for r in rows if r[0] == v)
        for bit in bits:
            start = last = None
            for sec, word in seq:
                t = T0_MS + sec * S
                on = bool(word >> bit & 1)
                if on and start is None:
                    start = t
                    out.append((IDS[v], bit, "open", t, None, EXPECTED_SEVERITY[bit]))
                elif not on and start is not None:
                    out.append((IDS[v], bit, "close", start, last, EXPECTED_SEVERITY[bit]))
                    start = None
                last = t
    return sorted(out)


def test_the_bit_table_matches_the_jt808_decoder():
    assert ALARM_BIT_NAMES == ALARM_BITS
    assert set(EXPECTED_SEVERITY) == set(ALARM_BITS)


@pytest.mark.parametrize("words, expected", [
    # a bit set on one ping opens there and closes at the next ping
    ([0, 1, 0, 0], [("open", 30, None), ("close", 30, 30)]),
    # held over three pings
    ([0, 1, 1, 1, 0], [("open", 30, None), ("close", 30, 90)]),
    # set on the last ping: stays open
    ([0, 0, 1], [("open", 60, None)]),
    # set from the first ping
    ([1, 0], [("open", 0, None), ("close", 0, 0)]),
    # set twice: two episodes
    ([1, 0, 1, 0], [("open", 0, None), ("close", 0, 0), ("open", 60, None), ("close", 60, 60)]),
    # never
    ([0, 0, 0], []),
])
def test_sos_episodes(words, expected):
    rows = [(0, 30 * k, w) for k, w in enumerate(words)]
    got = [(p, (s - T0_MS) // S, None if e is None else (e - T0_MS) // S) for _, bit, p, s, e, _ in brief(run(rows))]
    assert sorted(got) == sorted(expected)


def test_bits_are_independent_and_evidence_is_marked_terminal_reported():
    sos, overspeed, deviation = 1 << 0, 1 << 1, 1 << 23
    rows = [(0, 0, 0), (0, 30, overspeed), (0, 60, overspeed | deviation), (0, 90, deviation | sos), (0, 120, 0)]
    events = run(rows)
    assert brief(events) == oracle(rows)
    assert {(e.evidence["bit"], e.evidence["alarm"]) for e in events} == {(0, "sos"), (1, "overspeed"),
                                                                        (23, "route_deviation")}
    assert all(e.rule == "terminal_alarm" and e.evidence["terminal_reported"] is True for e in events)
    sos_open = next(e for e in events if e.evidence["bit"] == 0 and e.phase == "open")
    assert sos_open.severity == 1 and sos_open.evidence["alarm_word"] == deviation | sos
    closed = next(e for e in events if e.evidence["bit"] == 1 and e.phase == "close")
    assert closed.evidence["duration_s"] == 30.0 and closed.end == pd.Timestamp(T0_MS + 60 * S, unit="ms", tz="UTC")


def test_reserved_bits_and_unselected_bits_are_ignored():
    reserved = (1 << 15) | (1 << 16) | (1 << 17)
    assert run([(0, 0, reserved), (0, 30, 0)]) == []
    only_sos = TerminalAlarmSettings(alarm_bits=(0,))
    rows = [(0, 0, 0b11), (0, 30, 0)]
    assert {e.evidence["bit"] for e in run(rows, settings=only_sos)} == {0}


def test_an_empty_batch_raises_nothing():
    from spatial.rules.base import RuleBatch
    rule = TerminalAlarmRule()
    assert rule.step(rule.initial_state(), RuleBatch.empty().with_columns(clock_ms=T0_MS), WORLD)[1] == []


def test_settings():
    rows = settings_rows("terminal_alarm", TerminalAlarmSettings())
    assert [r["name"] for r in rows] == ["alarm_bits"] and rows[0]["source"]
    with pytest.raises(ValueError, match="alarm_bits"):
        TerminalAlarmSettings(alarm_bits=(16,))


@st.composite
def alarm_streams(draw):
    n_vehicles = draw(st.integers(1, 4))
    word = st.sampled_from([0, 0, 0, 1, 2, 3, 1 << 19, (1 << 19) | 1, 1 << 23, (1 << 31) | (1 << 13), 1 << 16])
    rows = []
    for v in range(n_vehicles):
        sec = draw(st.integers(0, 20))
        for _ in range(draw(st.integers(1, 12))):
            rows.append((v, sec, draw(word)))
            sec += draw(st.integers(1, 60))
    rows.sort(key=lambda r: (r[1], r[0]))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(len(rows) - 1, 1)), max_size=5))))
    bounds = [0, *cuts, len(rows)]
    chunks = [list(range(a, b)) for a, b in itertools.pairwise(bounds)]
    return rows, chunks


def canonical(events):
    return sorted((e.rule, e.subject_id, e.episode_id, e.phase, e.start, e.end, e.lon, e.lat, e.severity,
                   json.dumps(e.evidence, sort_keys=True)) for e in events)


@hsettings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alarm_streams())
def test_matches_the_oracle_in_one_batch_single_pings_and_chunks(case):
    rows, chunks = case
    one = run(rows)
    assert brief(one) == oracle(rows)
    assert canonical(one) == canonical(run(rows, chunks)) == canonical(run(rows, [[i] for i in range(len(rows))]))


def test_through_the_engine_alarms_survive_cleaning_and_batching():
    from spatial.rules.engine import Engine, sort_events

    WithAlarms = Engine  # the rule is registered in the engine

    rows = [(v, 30 * k, (1 << 19) if 3 <= k < 6 else (1 if (v, k) == (1, 8) else 0)) for v in (0, 1) for k in range(12)]
    rows.sort(key=lambda r: (r[1], r[0]))
    pings = pings_of(rows)
    ours = lambda events: [e for e in sort_events(events) if e.rule == "terminal_alarm"]
    one = ours(WithAlarms(WORLD.world).run(pings))
    engine = WithAlarms(WORLD.world)
    frame = pings.to_frame()
    single = []
    for i in range(len(frame)):
        single += engine.step(PingBatch.from_frame(frame.iloc[[i]]))
    single = ours(single + engine.flush())
    assert canonical(one) == canonical(single)
    assert brief(one) == oracle(rows) and len(one) == 6


def test_evidence_keys_and_alarm_names_have_labels():
    from layers.labels import EVIDENCE_VALUES
    from spatial.rules.terminal_alarm import ALARM_BIT_NAMES
    from tests.evidence_labels import unlabelled

    sos, overspeed, deviation = 1 << 0, 1 << 1, 1 << 23
    events = run([(0, 0, 0), (0, 30, overspeed), (0, 60, overspeed | deviation), (0, 90, deviation | sos), (0, 120, 0)])
    assert {e.phase for e in events} == {"open", "close"}
    assert unlabelled(events) == set()
    # every bit the rule can name, not only those raised here
    assert sorted(set(ALARM_BIT_NAMES.values()) - EVIDENCE_VALUES.keys()) == []
