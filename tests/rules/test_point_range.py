"""point_range: boundary table and a plain-Python oracle (edges are in range; 1 % deadband)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spatial.rules.point_range import PointRangeRule, PointRangeSettings
from tests.rules.test_point_kit import MIN_MS, events_of, point, point_world, readings
from tests.tracks import T0_MS

P, TOX = "MP-000001", "MP-000002"
WORLD = point_world(point(P, "temperature", high=None, high_high=None, range_min=-40.0, range_max=160.0),  # db 2.0
                    point(TOX, "toxic_gas", high=10.0, high_high=20.0, range_max=100.0))


def summary(events):
    return [(e.phase, e.subject_id, (int(e.start.value // 1_000_000) - T0_MS) // MIN_MS,
             (pd.Timestamp(e.evidence["time"]).value // 1_000_000 - T0_MS) // MIN_MS, e.severity) for e in events]


def oracle(pid, values, lo, hi, deadband, severity):
    out, open_at = [], None
    for k, v in enumerate(values):
        outside, staying = v < lo or v > hi, v < lo + deadband or v > hi - deadband
        if open_at is not None and not staying:
            out.append(("close", pid, open_at, k, severity))
            open_at = None
        if open_at is None and outside:
            open_at = k
            out.append(("open", pid, k, k, severity))
    return out


@pytest.mark.parametrize("values, expected", [
    ([20, 160.0, -40.0, 20], []),  # the edges belong to the range
    ([20, 160.000001, 20], [("open", P, 1, 1, 3), ("close", P, 1, 2, 3)]),
    ([20, -40.000001, 20], [("open", P, 1, 1, 3), ("close", P, 1, 2, 3)]),
    # pinned at full scale after an over-range stays one fault; 158.0 (= 160 - deadband) ends it
    ([170, 160, 159, 161, 158.0], [("open", P, 0, 0, 3), ("close", P, 0, 4, 3)]),
])
def test_boundaries(values, expected):
    assert summary(events_of(WORLD, (PointRangeRule(),), [readings(P, values)])) == expected


def test_evidence_and_toxic_severity():
    events = events_of(WORLD, (PointRangeRule(),), [readings(TOX, [5, 130, 140, 5])])
    assert summary(events) == [("open", TOX, 1, 1, 2), ("close", TOX, 1, 3, 2)]
    assert events[0].evidence["side"] == "above" and events[0].evidence["threshold"] == 100.0
    assert events[1].evidence["peak_beyond_range"] == 40.0 and events[1].evidence["duration_s"] == 60.0
    with pytest.raises(ValueError, match="range_min_readings"):
        PointRangeSettings(range_min_readings=0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([-45.0, -40.0, -38.0, -37.9, 0.0, 157.9, 158.0, 160.0, 160.5]), min_size=1, max_size=25))
def test_random_sequences_match_the_oracle(values):
    got = summary(events_of(WORLD, (PointRangeRule(),), [readings(P, values)]))
    assert got == oracle(P, values, -40.0, 160.0, 2.0, 3)


def test_evidence_keys_have_labels():
    from tests.evidence_labels import unlabelled

    events = events_of(WORLD, (PointRangeRule(),), [readings(TOX, [5, 130, 140, 5])])
    assert {e.phase for e in events} == {"open", "close"}
    assert unlabelled(events) == set()
