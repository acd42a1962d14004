"""point_interruption: 9:59 vs 10:00, clock-driven opening, never-heard points, an oracle.

Oracle: readings in arrival order; the clock is the running maximum of their times. For each
reading, the point's silence since its previous reading (or the first clock value) was an
episode when the clock right after it stood >= 600 s past that; at the end, every point whose
silence the final clock stands >= 600 s past has an episode still open.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spatial.model import ReadingBatch
from spatial.rules.point_interruption import (
    PointInterruptionRule,
    PointInterruptionSettings,
)
from tests.rules.test_point_kit import (
    event_key,
    events_of,
    one_at_a_time,
    point,
    point_world,
    split,
)
from tests.tracks import T0_MS

A, B, TOX = "MP-000001", "MP-000002", "MP-000003"
WORLD = point_world(point(A), point(B, "level", high=8.0, high_high=9.0, range_max=10.0),
                    point(TOX, "toxic_gas", high=10.0, high_high=20.0))
RULE = (PointInterruptionRule(),)


def batch_of(rows):
    """rows: (point, seconds after T0) in arrival order."""
    return ReadingBatch.from_arrays([p for p, _ in rows], [T0_MS + s * 1000 for _, s in rows], [1.0] * len(rows))


def summary(events):
    return sorted((e.phase, e.subject_id, (int(e.start.value // 1_000_000) - T0_MS) // 1000,
                   None if e.end is None else (int(e.end.value // 1_000_000) - T0_MS) // 1000, e.severity)
                  for e in events)


@pytest.mark.parametrize("rows, expected", [
    ([(A, 0), (B, 0), (A, 599), (B, 599)], []),                                           # 9:59: no
    ([(A, 0), (B, 0), (A, 600), (B, 600)], [("close", A, 0, 600, 3), ("close", B, 0, 600, 3),
                                             ("open", A, 0, None, 3), ("open", B, 0, None, 3)]),  # 10:00: yes
    # B's readings move the clock: A goes silent without a reading of its own, then resumes
    ([(A, 0), (B, 0), (B, 300), (B, 600), (A, 650), (B, 650)],
     [("close", A, 0, 650, 3), ("open", A, 0, None, 3)]),
    # a reading stamped before the clock still closes a silence the clock had already opened
    ([(A, 0), (B, 0), (B, 300), (B, 700), (A, 500), (B, 710)], [("close", A, 0, 500, 3), ("open", A, 0, None, 3)]),
])
def test_boundaries(rows, expected):
    world = point_world(point(A), point(B, "level", high=8.0, high_high=9.0, range_max=10.0))
    assert summary(events_of(world, RULE, [batch_of(rows)])) == expected


def test_never_heard_point_and_toxic_severity():
    # TOX never reports: silent since watching began (A's first reading)
    events = events_of(WORLD, RULE, [batch_of([(A, 0), (B, 0), (A, 300), (B, 300), (A, 600), (B, 600)])])
    assert summary(events) == [("open", TOX, 0, None, 2)]
    assert events[0].evidence["last_reading"] is None and events[0].evidence["threshold_s"] == 600.0


def test_wall_clock_advance_opens_and_next_reading_closes():
    world = point_world(point(A))
    first = batch_of([(A, 0)])
    empty = ReadingBatch.from_arrays([], [], [])
    assert summary(events_of(world, RULE, [first, empty], now_ms=[None, T0_MS + 599_000])) == []
    assert summary(events_of(world, RULE, [first, empty], now_ms=[None, T0_MS + 600_000])) == [("open", A, 0, None, 3)]
    events = events_of(world, RULE, [first, empty, batch_of([(A, 900)])], now_ms=[None, T0_MS + 600_000, None])
    assert summary(events) == [("close", A, 0, 900, 3), ("open", A, 0, None, 3)]
    assert events[-1].evidence["silent_s"] == 900.0
    with pytest.raises(ValueError, match="interruption_after_s"):
        PointInterruptionSettings(interruption_after_s=0)


def oracle(rows, points):
    clock, start, last, out = None, None, {}, []
    for p, t in rows:
        if p in last and t <= last[p]:
            continue  # cleaning drops it
        clock = t if clock is None else max(clock, t)
        start = clock if start is None else start
        since = last.get(p, start)
        if clock - since >= 600:
            out += [("open", p, since, None, 3), ("close", p, since, t, 3)]
        last[p] = t
    for p in points:
        if clock is not None and clock - last.get(p, start) >= 600:
            out.append(("open", p, last.get(p, start), None, 3))
    return sorted(out)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([A, B]), st.integers(0, 3000)), min_size=1, max_size=20),
       st.lists(st.integers(1, 19), max_size=4))
def test_random_arrivals_match_the_oracle_in_any_chunking(rows, cuts):
    world = point_world(point(A), point(B, "level", high=8.0, high_high=9.0, range_max=10.0))
    batch = batch_of(rows)
    whole = events_of(world, RULE, [batch])
    assert summary(whole) == oracle(rows, [A, B])
    assert [event_key(e) for e in events_of(world, RULE, split(batch, cuts))] == [event_key(e) for e in whole]
    assert [event_key(e) for e in events_of(world, RULE, one_at_a_time(batch))] == [event_key(e) for e in whole]


def test_a_resumed_engine_goes_on_as_the_uninterrupted_one():
    """A monitor restarted at 750 s resumes the rule from the store (each point's newest reading,
    the silences still open): its events after the restart are the uninterrupted engine's, the
    open silences closed under their stored episode ids. A fresh engine would call every point
    silent since the restart and never close the stored episodes."""
    import pandas as pd

    from spatial.rules.points import PointEngine

    empty = ReadingBatch.from_arrays([], [], [])
    whole = PointEngine(WORLD, rules=RULE)
    before = whole.step(batch_of([(A, 0), (B, 0)])) + whole.advance(T0_MS + 700_000)
    assert summary(before) == [("open", A, 0, None, 3), ("open", B, 0, None, 3), ("open", TOX, 0, None, 2)]

    def after_restart(engine):
        return engine.step(batch_of([(A, 800)]), T0_MS + 800_000) + engine.advance(T0_MS + 1_500_000) \
            + engine.step(empty, T0_MS + 1_600_000)

    expected = after_restart(whole)
    assert summary(expected) == [("close", A, 0, 800, 3), ("open", A, 800, None, 3)]
    resumed = PointEngine(WORLD, rules=RULE)
    resumed.resume(pd.Series({A: T0_MS, B: T0_MS}), pd.Series({e.subject_id: T0_MS for e in before}))
    got = after_restart(resumed)
    assert [event_key(e) for e in got] == [event_key(e) for e in expected]
    assert [e.episode_id for e in got][:1] == [before[0].episode_id]  # A's stored episode, closed
    fresh = PointEngine(WORLD, rules=RULE)
    assert summary(after_restart(fresh)) != summary(expected)
    with pytest.raises(ValueError, match="start time"):
        PointInterruptionRule().resumed_state(1, [-1], [True])
