"""The set-based batch plan (spatial/incidents/batch.py) against the event-by-event reference loop
(lifecycle.plan_events): random streams of episodes of a few subjects — reopenings within and past
the noise window, overlapping episodes, quick closes (and young episodes a restart closed), repeated and changed updates, replayed
events, incidents closed by hand between batches — cut into random batches; every batch's plan
must be the same both ways (incidents, applied keys, transitions in log order, counts)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from spatial.incidents.batch import INCIDENT_COLUMNS, plan_batch
from spatial.incidents.kpis import count_distinct
from spatial.incidents.lifecycle import IncidentSettings, check_events

SETTINGS = IncidentSettings(reopen_window_s=600.0, quick_close_s=300.0)
T0 = pd.Timestamp("2026-03-01T00:00:00Z")


def _stream(rng: np.random.Generator, shuffled: bool) -> pd.DataFrame:
    rows = []
    for subject in ("VEH-0001", "VEH-0002", "MP-0001"):
        for rule in ("speeding", "point_level"):
            t = float(rng.integers(0, 600))
            for _ in range(int(rng.integers(1, 7))):
                start = T0 + pd.Timedelta(seconds=t)
                duration = float(rng.choice([60, 200, 400, 1500]))
                end = start + pd.Timedelta(seconds=duration)
                episode = f"{rule}:{subject}:{int(t)}"
                severity = int(rng.integers(1, 5))
                lon = np.nan if rng.random() < 0.2 else 121.5 + rng.random() / 10
                base = {"rule": rule, "subject_id": subject, "episode_id": episode, "lon": lon, "lat": 29.8}
                rows.append({**base, "phase": "open", "start": start, "end": None, "severity": severity,
                             "evidence": {"n": 0}, "_t": t})
                for k in range(int(rng.integers(0, 3))):
                    sev = int(rng.integers(1, 5))
                    update = {**base, "phase": "update", "start": start, "end": None, "severity": sev,
                              "evidence": {"n": int(rng.integers(0, 2))}, "_t": t + duration * (k + 1) / 4}
                    if rng.random() < 0.5:  # its own time (point_level's), else its episode's start
                        update["event_time"] = start + pd.Timedelta(seconds=duration * (k + 1) / 4)
                    rows.append(update)
                    if rng.random() < 0.3:  # the same update again (point_level resends)
                        rows.append(dict(update, _t=update["_t"] + 1))
                if rng.random() < 0.9:  # some episodes stay open; some are closed by a monitor's restart
                    reason = {"close_reason": "monitor_restarted"} if rng.random() < 0.2 else {}
                    rows.append({**base, "phase": "close", "start": start, "end": end, "severity": severity,
                                 "evidence": {"n": 9, **reason}, "_t": t + duration})
                # the next episode: overlapping, within the window, or well after it
                t += duration * float(rng.choice([0.5, 1.0])) + float(rng.choice([30, 300, 590, 700, 2000]))
    frame = pd.DataFrame(rows).sort_values("_t", kind="stable").reset_index(drop=True)
    if shuffled:  # a partial or disordered file: the reference loop's case
        frame = frame.sample(frac=1.0, random_state=int(rng.integers(0, 1000))).reset_index(drop=True)
    if rng.random() < 0.5:  # a replayed stretch
        a = int(rng.integers(0, len(frame)))
        frame = pd.concat([frame, frame.iloc[a:a + 5]], ignore_index=True)
    return frame.drop(columns="_t")


def _candidates(known: pd.DataFrame, applied: pd.DataFrame, batch: pd.DataFrame) -> pd.DataFrame:
    """The store's selection (data/incidents.py _apply): incidents holding the batch's episodes,
    and the subjects' incidents active or ended within the window before the batch."""
    if not len(known):
        return known
    holding = set(applied.loc[applied["episode_id"].isin(set(batch["episode_id"])), "incident_id"])
    since = batch["start"].min() - pd.Timedelta(seconds=SETTINGS.reopen_window_s)
    recent = known["subject_id"].isin(set(batch["subject_id"])) & (
        (known["state"] == "active") | (pd.to_datetime(known["end_time"], utc=True) >= since))
    return known[known["id"].isin(holding) | recent].reset_index(drop=True)


def _same(fast, slow) -> None:
    assert fast.vectorised and not slow.vectorised
    assert (fast.counts, fast.duplicates) == (slow.counts, slow.duplicates)
    assert fast.opened == slow.opened
    assert fast.reopened == slow.reopened
    assert fast.quick_closed == slow.quick_closed
    def plain(frame):  # missing values as the store writes them (NULL), whichever way they were spelt
        frame = frame.astype(object)
        return frame.where(frame.notna(), None)

    pd.testing.assert_frame_equal(plain(fast.applied), plain(slow.applied))
    a = fast.incidents.sort_values("id").reset_index(drop=True)
    b = slow.incidents.sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a[INCIDENT_COLUMNS], b[INCIDENT_COLUMNS], check_dtype=False)
    ta, tb = fast.transitions.copy(), slow.transitions.copy()
    for t in (ta, tb):
        t["details"] = [None if d is None else json.loads(d) for d in t["details"]]
    pd.testing.assert_frame_equal(plain(ta), plain(tb))
    pd.testing.assert_frame_equal(plain(fast.upgrades), plain(slow.upgrades))
    return len(fast.upgrades)


@pytest.mark.parametrize("seed", range(60))
def test_the_set_based_plan_is_the_reference_loop(seed):
    rng = np.random.default_rng(seed)
    events = check_events(_stream(rng, shuffled=seed % 10 == 9))
    applied = pd.DataFrame(columns=["rule", "episode_id", "phase", "ordinal", "digest", "incident_id", "seq"])
    known = pd.DataFrame(columns=INCIDENT_COLUMNS)
    cuts = np.sort(rng.choice(np.arange(1, len(events)), size=min(3, len(events) - 1), replace=False))
    fast_batches = upgrades = 0
    for first, stop in zip([0, *cuts], [*cuts, len(events)]):
        batch = events.iloc[first:stop].reset_index(drop=True)
        candidates = _candidates(known, applied, batch)
        slow = plan_batch(batch, applied, candidates, SETTINGS, source="test", vectorised=False)
        fast = plan_batch(batch, applied, candidates, SETTINGS, source="test")
        if fast.vectorised:
            fast_batches += 1
            upgrades += _same(fast, slow)
        # the store's state moves on as the reference says; now and then an officer closes one by hand
        applied = pd.concat([applied, slow.applied], ignore_index=True)
        known = pd.concat([known[~known["id"].isin(set(slow.incidents["id"]))], slow.incidents], ignore_index=True)
        if len(known) and rng.random() < 0.3:
            known.loc[int(rng.integers(0, len(known))), "status"] = "closed"
    if seed % 10 != 9:
        assert fast_batches > 0  # ordered streams take the set-based path
        assert upgrades > 0  # levels rise after opening in every ordered stream (random severities)


def test_the_rollup_counts_distinct_rows_as_a_groupby_would():
    """kpis.count_distinct (the rollup's counting, on factorised codes) against pandas' groupby, with
    weights, text and integer columns."""
    rng = np.random.default_rng(3)
    n = 20_000
    columns = {"grouping": rng.choice(np.array(["district", "rule", "day"], dtype=object), n),
               "key": np.char.add("K-", rng.integers(0, 5_000, n).astype(str)).astype(object),
               "bin": rng.integers(-1, 700, n), "tail": rng.integers(0, 2**40, n)}
    weights = rng.integers(1, 9, n)
    counted = pd.DataFrame(count_distinct(columns, weights=weights))
    expected = pd.DataFrame({**columns, "n": weights}).groupby(list(columns), as_index=False)["n"].sum()
    keys = list(columns)
    assert len(counted) == len(expected) > 0
    got = counted.sort_values(keys, ignore_index=True)
    want = expected.sort_values(keys, ignore_index=True)
    assert got[keys].astype(str).equals(want[keys].astype(str))
    differ = int((got["n"].to_numpy() != want["n"].to_numpy()).sum())
    assert differ == 0, f"{differ} of {len(got)} counts differ"  # a count, not a 20,000-item diff
    assert count_distinct({"k": np.array(["a", "a", "b"], dtype=object)})["n"].tolist() == [2, 1]
