"""point_rate: boundary table (a rate exactly at the limit, the window edge) and an oracle.

Oracle: for each reading, the earliest earlier reading of the point at most 300 s older;
rate = (v - v_ref) * 60000 / dt per minute; |rate| > 0.10 x span opens, > 0.08 x span stays.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spatial.rules.point_rate import PointRateRule, PointRateSettings
from tests.rules.test_point_kit import at_times, events_of, point, point_world, split
from tests.tracks import T0_MS

P = "MP-000001"
WORLD = point_world(point(P, "level", low=1.0, high=85.0, high_high=95.0, range_max=100.0))  # limit 10 /min


def run(times_s, values, cuts=()):
    batch = at_times(P, [T0_MS + s * 1000 for s in times_s], values)
    return [(e.phase, (int(e.start.value // 1_000_000) - T0_MS) // 1000,
             None if e.end is None else (int(e.end.value // 1_000_000) - T0_MS) // 1000)
            for e in events_of(WORLD, (PointRateRule(),), split(batch, cuts))]


@pytest.mark.parametrize("times_s, values, expected", [
    ([0, 60, 120], [50, 60, 70], []),                                    # exactly 10 /min: not above
    ([0, 60, 120, 180], [50, 60, 70.5, 70.5], [("open", 120, None), ("close", 120, 120)]),
    # the window reaches back 300 s inclusive: at 300 the reference is the reading at 0
    ([0, 300], [50, 100.0], []),                                           # 10 /min over 300 s
    ([0, 300], [50, 100.5], [("open", 300, None)]),
    ([0, 301], [50, 100.5], []),                                           # no reading in the window
    # falling counts too; hysteresis keeps 9 /min open (> 8), 8 /min closes
    ([0, 60, 120, 180, 240], [50, 39, 30, 22, 22], [("open", 60, None), ("close", 60, 180)]),
])
def test_boundaries(times_s, values, expected):
    assert run(times_s, values) == expected


def test_evidence():
    events = events_of(WORLD, (PointRateRule(),), [at_times(P, [T0_MS, T0_MS + 60_000], [10.0, 40.0])])
    ev = events[0].evidence
    assert ev["rate_per_min"] == 30.0 and ev["threshold"] == 10.0 and ev["reference_value"] == 10.0
    assert ev["rate_fraction_per_min"] == 0.3 and ev["unit"] == "m"
    with pytest.raises(ValueError, match="rate_hysteresis"):
        PointRateSettings(max_rate_fraction_per_min=0.01, rate_hysteresis_fraction_per_min=0.02)


def oracle(times_s, values):
    out, open_since, last_fast = [], None, None
    for i, (t, v) in enumerate(zip(times_s, values)):
        ref = next((j for j in range(i) if times_s[j] >= t - 300), None)
        rate = math.nan if ref is None else (v - values[ref]) * 60000 / ((t - times_s[ref]) * 1000)
        speed = abs(rate)
        if open_since is not None:
            if speed > 10.0 - 2.0:
                last_fast = t
                continue
            out.append(("close", open_since, last_fast))
            open_since = None
        if speed > 10.0:
            open_since = last_fast = t
            out.append(("open", t, None))
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 200), st.integers(-3, 3)), min_size=1, max_size=25), st.integers(0, 25))
def test_random_sequences_match_the_oracle_in_any_chunking(steps, cut):
    times = list(__import__("itertools").accumulate(s for s, _ in steps))
    values, level = [], 50.0
    for _, d in steps:
        level += 4.5 * d
        values.append(level)
    assert run(times, values, [cut]) == oracle(times, values)


def test_evidence_keys_have_labels():
    from tests.evidence_labels import unlabelled

    times = [T0_MS + s * 1000 for s in (0, 60, 120, 180, 240)]
    events = events_of(WORLD, (PointRateRule(),), [at_times(P, times, [50, 39, 30, 22, 22])])
    assert {e.phase for e in events} == {"open", "close"}
    assert unlabelled(events) == set()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 200), st.integers(-3, 3)), min_size=2, max_size=25), st.integers(1, 24),
       st.booleans())
def test_a_replay_warmed_with_the_window_before_it_judges_as_the_running_engine(steps, cut, whole_past):
    """A replay that starts at a reading, the readings of the window before it given as context
    (`PointEngine.warm`; a restart's replay, data/fleet_start.py), raises from there the events the
    engine that judged every reading raised, when no episode was open before that reading; the
    context itself raises nothing and changes no other rule's state nor the cleaning stage."""
    from hypothesis import assume

    from spatial.rules.episodes import IDLE
    from spatial.rules.points import PointEngine, point_rules
    from tests.rules.test_point_kit import event_key

    times = [T0_MS + 1000 * t for t in __import__("itertools").accumulate(s for s, _ in steps)]
    values = list(__import__("itertools").accumulate((4.5 * d for _, d in steps), initial=50.0))[1:]
    cut = min(cut, len(times) - 1)
    running = PointEngine(WORLD, rules=(PointRateRule(),))
    running.step(at_times(P, times[:cut], values[:cut]))
    assume(not len(running._rule_states[0].episodes.phase) or running._rule_states[0].episodes.phase[0] == IDLE)
    expected = [event_key(e) for e in running.step(at_times(P, times[cut:], values[cut:]))]

    replay = PointEngine(WORLD, rules=point_rules(clock_driven=False))
    states = list(replay._rule_states)
    first = 0 if whole_past else next(i for i, t in enumerate(times) if t >= times[cut] - 300_000)
    rate = [rule.name for rule in replay.rules].index("point_rate")
    replay.warm(at_times("MP-unknown", [T0_MS], [1.0]))  # what the cleaning stage drops: left out
    replay.warm(at_times(P, [T0_MS - 1000], [math.nan]))
    assert not len(replay._rule_states[rate].tail_slot)
    replay.warm(at_times(P, times[first:cut], values[first:cut]))
    assert all(after is before for k, (after, before) in enumerate(zip(replay._rule_states, states)) if k != rate)
    assert replay.clock_ms is None and replay.released_count == 0
    assert [event_key(e) for e in replay.step(at_times(P, times[cut:], values[cut:]))
            if e.rule == "point_rate"] == expected


Q = "MP-000002"
TWO = point_world(point(P, "level", low=1.0, high=85.0, high_high=95.0, range_max=100.0),
                  point(Q, "level", low=1.0, high=85.0, high_high=95.0, range_max=100.0, at=(50.0, 0.0)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 200), st.integers(-3, 3)), min_size=1, max_size=20),
       st.lists(st.tuples(st.integers(1, 200), st.integers(-3, 3)), min_size=1, max_size=20),
       st.integers(0, 40), st.integers(-999, 999))
def test_a_resumed_engine_warmed_with_every_points_window_judges_as_the_running_engine(p_steps, q_steps, cut, phase):
    """A restart at some reading: point P had an alarm open and was replayed from its first reading
    (`PointEngine.resume(replayed=)`), Q had none and was not. The resumed engine is then warmed with
    every point's readings of the window before its newest (data/fleet_start.py `point_context`):
    the rate rule then holds exactly the window the running engine held — P's not twice, Q's whole —
    and judges the readings after the restart as the running engine judged them."""
    from hypothesis import assume

    from spatial.model import ReadingBatch
    from spatial.rules.episodes import IDLE
    from spatial.rules.points import PointEngine, point_rules
    from tests.rules.test_point_kit import event_key, merge

    def sequence(point_id, steps, offset_ms):
        times = [T0_MS + offset_ms + 1000 * t for t in __import__("itertools").accumulate(s for s, _ in steps)]
        values = list(__import__("itertools").accumulate((4.5 * d for _, d in steps), initial=50.0))[1:]
        return at_times(point_id, times, values)

    def rows(frame):
        return ReadingBatch.from_arrays(frame["point_id"].to_numpy(object), frame["epoch_ms"].to_numpy("int64"),
                                        frame["value"].to_numpy("float64"))

    frame = merge(sequence(P, p_steps, 0), sequence(Q, q_steps, phase)).to_frame()
    before, after = frame.iloc[:cut], frame.iloc[cut:]
    running = PointEngine(TWO, rules=(PointRateRule(),))
    running.step(rows(before))
    episodes = running._rule_states[0].episodes
    assume(len(episodes.phase) < 2 or episodes.phase[1] == IDLE)  # Q, not replayed, had no alarm open at the stop

    replay = PointEngine(TWO, rules=point_rules(clock_driven=False))
    replay.step(rows(before[before["point_id"] == P]))  # P replayed from its first reading
    resumed = PointEngine(TWO)
    newest = before.groupby("point_id")["epoch_ms"].max().astype("int64")
    resumed.resume(newest, newest.iloc[:0], replayed=replay)
    own = newest.reindex(before["point_id"]).to_numpy("float64")
    resumed.warm(rows(before[before["epoch_ms"].to_numpy("int64") >= own - 300_000]))
    rate = [rule.name for rule in resumed.rules].index("point_rate")
    held, wanted = resumed._rule_states[rate], running._rule_states[0]
    for name in ("tail_slot", "tail_ms", "tail_value"):  # P's window once, Q's whole, as the running engine's
        assert getattr(held, name).tolist() == getattr(wanted, name).tolist()
    assert resumed.released_count == 0
    expected = [event_key(e) for e in running.step(rows(after))]
    assert [event_key(e) for e in resumed.step(rows(after)) if e.rule == "point_rate"] == expected
