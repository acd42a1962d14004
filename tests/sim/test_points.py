"""The simulator's monitoring points: slicing, determinism, timing, and what the point rules see."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from data.demo import build_world
from data.sim.points import NOISE_FRACTION, RAMP_FRACTION_PER_MIN, plan_points
from data.sim.settings import DEMO_DAY, POINT_STAGES, STAGED_COLUMNS, SimSettings
from spatial.model import ReadingBatch
from spatial.rules.point_base import PointWorld
from spatial.rules.point_interruption import PointInterruptionSettings
from spatial.rules.point_rate import PointRateSettings
from spatial.rules.point_stuck import PointStuckSettings
from spatial.rules.points import PointEngine, PointEngineSettings

SETTINGS = SimSettings(seed=5, start=DEMO_DAY + pd.Timedelta(hours=6), hours=6, stage_margin_s=1200,
                       stuck_after_s=3600)
MINUTE_MS = 60_000


@pytest.fixture(scope="module")
def world():
    return build_world(seed=3, scale=0.05)


@pytest.fixture(scope="module")
def sim(world):
    return plan_points(world, SETTINGS)


@pytest.fixture(scope="module")
def readings(sim):
    return sim.readings_between(sim.start_ms, sim.end_ms).to_frame()


@pytest.fixture(scope="module")
def events(world, sim):
    """The point engine over the whole span in 10-minute slices (as the live monitor would)."""
    engine = PointEngine(world, PointEngineSettings(
        point_stuck=PointStuckSettings(stuck_after_s=SETTINGS.stuck_after_s),
        point_interruption=PointInterruptionSettings(interruption_after_s=SETTINGS.interruption_after_s)))
    out = []
    for t0 in range(sim.start_ms, sim.end_ms, 10 * MINUTE_MS):
        out += engine.step(sim.readings_between(t0, t0 + 10 * MINUTE_MS))
    out += engine.flush()
    assert sum(engine.drop_counts.values()) == 0, engine.drop_counts
    frame = pd.DataFrame([dataclasses.asdict(e) for e in out])
    frame["level"] = [e.evidence.get("max_level", e.evidence.get("level")) for e in out]
    return frame


def _same(a: ReadingBatch, b: ReadingBatch) -> bool:
    return (np.array_equal(a.point_id, b.point_id) and np.array_equal(a.epoch_ms, b.epoch_ms)
            and np.array_equal(a.value, b.value))


def _concat(batches: list[ReadingBatch]) -> ReadingBatch:
    return ReadingBatch.from_arrays(np.concatenate([b.point_id for b in batches]),
                                    np.concatenate([b.epoch_ms for b in batches]),
                                    np.concatenate([b.value for b in batches]))


def test_instrument_constants_sit_between_the_rules_thresholds():
    # noise far above point_stuck's tolerance; ramp plus noise well below point_rate's limit
    assert NOISE_FRACTION >= 5 * PointStuckSettings().stuck_tolerance_fraction
    assert RAMP_FRACTION_PER_MIN + 2 * NOISE_FRACTION < 0.7 * PointRateSettings().max_rate_fraction_per_min


def test_slices_concatenate_to_the_whole(sim):
    staged = sim.staged.set_index("kind")
    inside_ramp = int(staged.loc["point_level_2", "start"].iloc[0].value // 1_000_000) + 7_000
    inside_gap = int(staged.loc["point_silent", "start"].iloc[0].value // 1_000_000) + 5 * MINUTE_MS + 13_000
    a, c = sim.start_ms, sim.end_ms
    whole = sim.readings_between(a, c)
    cuts = sorted({a, a + 37_000, a + 37_001, inside_ramp, inside_gap, c})
    assert _same(_concat([sim.readings_between(x, y) for x, y in zip(cuts, cuts[1:])]), whole)
    tens = [sim.readings_between(t, min(t + 10_000, c)) for t in range(a, c, 10_000)]
    assert _same(_concat(tens), whole)
    assert len(whole) > 0


def test_same_seed_same_readings_other_seed_other_values(world, sim):
    again = plan_points(world, SETTINGS)
    pd.testing.assert_frame_equal(again.staged, sim.staged)
    t0, t1 = sim.start_ms, sim.start_ms + 3_600_000
    assert _same(again.readings_between(t0, t1), sim.readings_between(t0, t1))
    other = plan_points(world, dataclasses.replace(SETTINGS, seed=SETTINGS.seed + 1))
    assert not np.array_equal(other.readings_between(t0, t1).value, sim.readings_between(t0, t1).value)


def test_one_reading_a_minute_on_whole_seconds_with_phases(sim, readings):
    staged_ids = set(sim.staged["subject_id"])
    assert (readings["epoch_ms"] % 1000 == 0).all()
    assert readings["epoch_ms"].between(sim.start_ms, sim.end_ms - 1).all()
    # sorted by time, then point (point ids are in slot order)
    order = readings.sort_values(["epoch_ms", "point_id"], kind="stable").index
    assert (order == readings.index).all()
    normal = readings[~readings["point_id"].isin(staged_ids)]
    per_point = normal.groupby("point_id")["epoch_ms"]
    assert (per_point.size() == SETTINGS.hours * 60).all()
    assert len(per_point.size()) == len(sim) - len(staged_ids)
    assert (per_point.diff().dropna() == SETTINGS.reading_interval_s * 1000).all()
    phases = normal.groupby("point_id")["epoch_ms"].first() % MINUTE_MS
    assert phases.nunique() > 30  # the points do not all report on the same second


def test_normal_readings_stay_in_the_band_and_look_alive(world, sim, readings):
    pw = PointWorld(world)
    slot = pw.point_ids.get_indexer(readings["point_id"])
    normal = ~readings["point_id"].isin(set(sim.staged["subject_id"])).to_numpy()
    by_point = np.lexsort((readings["epoch_ms"].to_numpy()[normal], slot[normal]))
    v, s = readings["value"].to_numpy()[normal][by_point], slot[normal][by_point]
    with np.errstate(invalid="ignore"):
        assert not (v >= pw.upper_1[s]).any() and not (v <= pw.lower_1[s]).any()
    assert (v > pw.range_min[s]).all() and (v < pw.range_max[s]).all()
    # consecutive readings of a point typically differ by several of point_stuck's tolerances
    same_point = np.diff(s) == 0
    steps = np.abs(np.diff(v))[same_point] / pw.span[s][1:][same_point]
    tolerance = PointStuckSettings().stuck_tolerance_fraction
    assert len(steps) > 1000 and np.median(steps) > 2.5 * tolerance and np.mean(steps <= tolerance) < 0.2


def test_every_staged_kind_on_eligible_distinct_points(world, sim):
    staged = sim.staged
    assert tuple(staged.columns) == STAGED_COLUMNS
    want = max(1, round(SETTINGS.point_stage_share * len(sim)))
    assert staged["kind"].value_counts().to_dict() == dict.fromkeys(POINT_STAGES, want)
    assert staged["subject_id"].is_unique and staged["subject_id"].str.startswith("MP-").all()
    assert (staged["rule"] == staged["kind"].map(POINT_STAGES)).all()
    assert staged["drop_reason"].isna().all() and (staged["count"] == 1).all()
    assert (staged["start"] >= SETTINGS.start + pd.Timedelta(seconds=SETTINGS.stage_margin_s)).all()
    assert (staged["end"] <= SETTINGS.start + pd.Timedelta(hours=SETTINGS.hours)).all()
    points = world.monitoring_points.set_index("id")
    for row in staged.itertuples():  # a dozen rows
        point = points.loc[row.subject_id]
        assert (row.lon, row.lat) == (point.geometry.x, point.geometry.y)
        if row.kind == "point_level_1":
            assert np.isfinite(point["high"]) and np.isfinite(point["high_high"])
        if row.kind == "point_level_2":
            assert np.isfinite(point["high_high"]) and point["high_high"] < point["range_max"]


def test_staged_values(world, sim, readings):
    points = world.monitoring_points.set_index("id")
    for row in sim.staged.itertuples():  # a dozen rows
        point = points.loc[row.subject_id]
        mine = readings[readings["point_id"] == row.subject_id]
        t0, t1 = row.start.value // 1_000_000, row.end.value // 1_000_000
        during = mine[(mine["epoch_ms"] > t0) & (mine["epoch_ms"] < t1)]["value"]
        if row.kind == "point_level_1":
            assert point["high"] <= during.max() < point["high_high"]
        elif row.kind == "point_level_2":
            assert point["high_high"] <= during.max() <= point["range_max"]
        elif row.kind == "point_stuck":
            frozen = mine[(mine["epoch_ms"] >= t0) & (mine["epoch_ms"] < t1)]["value"]
            assert frozen.nunique() == 1 and frozen.iloc[0] > point["range_min"]
            assert len(frozen) * 60 >= SETTINGS.stuck_after_s + 900
        else:
            assert during.empty
            assert (t1 - t0) >= (SETTINGS.interruption_after_s + 600) * 1000
            assert {t0, t1} <= set(mine["epoch_ms"])
    status = sim.status_at(int(sim.staged.iloc[-1]["start"].value // 1_000_000) + MINUTE_MS)
    assert status.loc[sim.staged.iloc[-1]["subject_id"]] == "silent"
    assert status.value_counts().get("normal", 0) >= len(sim) - len(sim.staged)


def test_the_point_rules_catch_every_stage_and_nothing_else(sim, events):
    staged = sim.staged.set_index("subject_id")
    # unstaged points: no level, rate, stuck, range or interruption event over the 6 h
    assert events[~events["subject_id"].isin(staged.index)].empty, \
        events[~events["subject_id"].isin(staged.index)][["rule", "subject_id", "start"]]
    # staged points: events of their own rule only (the ramps are too gentle for point_rate)
    assert (events["rule"] == staged.loc[events["subject_id"], "rule"].to_numpy()).all()
    slack_before = {"point_level": 0, "point_stuck": 0, "point_interruption": 0}
    for subject, row in staged.iterrows():  # a dozen rows
        mine = events[events["subject_id"] == subject]
        opens = mine[mine["phase"] == "open"]
        assert len(opens) == 1, (row.kind, subject, mine)
        start = opens["start"].iloc[0]
        assert row.start - pd.Timedelta(seconds=slack_before[row.rule]) <= start <= row.end, (row.kind, start, row)
        assert (mine["phase"] == "close").sum() == 1  # every stage is over before the end
        if row.kind == "point_stuck":  # the run starts at the first frozen reading, exactly
            assert start == row.start
        if row.kind == "point_silent":  # silent since the last reading before the silence
            assert start == row.start
    level = events[events["rule"] == "point_level"].merge(
        sim.staged[["subject_id", "kind"]], on="subject_id")
    assert set(level.loc[level["kind"] == "point_level_1", "level"]) == {1}
    assert 2 in set(level.loc[level["kind"] == "point_level_2", "level"])
    # level 2 is more severe (a lower number) than level 1 (toxic gas: both 1)
    kinds = sim.staged.set_index("subject_id")["kind"]
    severity = level.groupby("subject_id")["severity"].min()
    toxic = set(level.loc[level["evidence"].map(lambda e: e["kind"] == "toxic_gas"), "subject_id"])
    plain = severity[~severity.index.isin(toxic)]
    one, two = plain[kinds[plain.index] == "point_level_1"], plain[kinds[plain.index] == "point_level_2"]
    assert len(one) and len(two), "need a non-toxic point of each level stage to compare severities"
    assert two.max() < one.min()


def test_status_follows_the_stage(sim):
    row = sim.staged[sim.staged["kind"] == "point_level_2"].iloc[0]
    t0, t1 = row.start.value // 1_000_000, row.end.value // 1_000_000
    seen = {sim.status_at(t)[row.subject_id] for t in range(t0, t1 + MINUTE_MS, MINUTE_MS)}
    assert seen == {"normal", "level_1", "level_2"} or seen == {"normal", "level_2"}
    stuck = sim.staged[sim.staged["kind"] == "point_stuck"].iloc[0]
    assert sim.status_at(stuck.start.value // 1_000_000)[stuck.subject_id] == "stuck"
    assert sim.status_at(stuck.end.value // 1_000_000)[stuck.subject_id] == "normal"


def test_bad_requests_are_refused(world, sim):
    with pytest.warns(UserWarning, match="point_stuck needs 75 min"):
        short = plan_points(world, dataclasses.replace(SETTINGS, hours=1.5, point_stage_kinds=("point_stuck",)))
    assert short.staged.empty
    with pytest.raises(ValueError, match="t0_ms <= t1_ms"):
        sim.readings_between(sim.start_ms + 1, sim.start_ms)
    assert len(sim.readings_between(sim.end_ms, sim.end_ms + MINUTE_MS)) == 0
    assert len(sim.readings_between(sim.start_ms - MINUTE_MS, sim.start_ms)) == 0


def test_every_evidence_key_and_code_the_staged_day_raises_has_a_label(events):
    from tests.evidence_labels import raised_rules, unlabelled

    assert raised_rules(events) >= {"point_level", "point_interruption", "point_stuck"}
    assert unlabelled(events) == set()
