"""point_stuck: boundary table (3 h 59 vs 4 h, tolerance, bottom of range) and an oracle."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spatial.rules.point_stuck import PointStuckRule, PointStuckSettings
from tests.rules.test_point_kit import MIN_MS, at_times, events_of, point, point_world
from tests.tracks import T0_MS

P = "MP-000001"
WORLD = point_world(point(P, "pressure", low=0.25, high=1.875, high_high=2.125, range_max=2.5))  # tol 0.0025
HOUR = 60 * MIN_MS


def run(times_min, values, rule=None):
    batch = at_times(P, [T0_MS + m * MIN_MS for m in times_min], values)
    return [(e.phase, (int(e.start.value // 1_000_000) - T0_MS) // MIN_MS,
             None if e.end is None else (int(e.end.value // 1_000_000) - T0_MS) // MIN_MS, e.severity)
            for e in events_of(WORLD, (rule or PointStuckRule(),), [batch])]


@pytest.mark.parametrize("times_min, values, expected", [
    ([0, 120, 239, 250], [1.2, 1.2, 1.2, 1.3], []),                       # 3 h 59 unchanged: no
    ([0, 120, 240, 250], [1.2, 1.2, 1.2, 1.3], [("open", 0, None, 3), ("close", 0, 240, 3)]),  # 4 h: yes
    ([0, 120, 240], [1.2, 1.2025, 1.1975], [("open", 0, None, 3)]),        # within the tolerance (0.0025)
    ([0, 120, 240], [1.2, 1.2026, 1.2026], []),                            # beyond it: a new run at 120
    ([0, 300, 600], [0.0, 0.001, 0.0], []),                                # resting at range_min: quiet
    ([0, 10, 250, 500, 510], [1.0, 1.5, 1.5, 1.5, 1.0], [("open", 10, None, 3), ("close", 10, 500, 3)]),
])
def test_boundaries(times_min, values, expected):
    assert run(times_min, values) == expected


def test_bottom_of_range_counts_when_asked_and_evidence():
    rule = PointStuckRule(PointStuckSettings(stuck_ignore_at_range_min=False))
    assert run([0, 300, 600], [0.0, 0.001, 0.0], rule) == [("open", 0, None, 3)]
    batch = at_times(P, [T0_MS, T0_MS + 4 * HOUR], [1.2, 1.2])
    opened = events_of(WORLD, (PointStuckRule(),), [batch])[0]
    assert opened.evidence["stuck_value"] == 1.2 and opened.evidence["unchanged_s"] == 14400.0
    with pytest.raises(ValueError, match="stuck_after_s"):
        PointStuckSettings(stuck_after_s=0)


def oracle(times_min, values, tol=0.001 * 2.5, hold_min=240):
    out, ref = [], None
    for t, v in zip(times_min, values):
        if ref is not None and abs(v - ref[1]) <= tol:
            if not ref[2] and t - ref[0] >= hold_min and not abs(ref[1] - 0.0) <= tol:
                ref[2] = True
                out.append(("open", ref[0], None, 3))
            ref[3] = t
            continue
        if ref is not None and ref[2]:
            out.append(("close", ref[0], ref[3], 3))
        ref = [t, v, False, t]
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 130), st.sampled_from([0.0, 0.002, 1.0, 1.002, 1.0025, 1.003, 1.5])),
                min_size=1, max_size=25))
def test_random_sequences_match_the_oracle(steps):
    times = list(__import__("itertools").accumulate(s for s, _ in steps))
    values = [v for _, v in steps]
    assert run(times, values) == oracle(times, values)
