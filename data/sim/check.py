"""Did the rules catch what the simulator staged? Staged rows against stored events.

A staged truck or point behaviour (STAGED_COLUMNS) is *found* when an `open` event of its
rule for its subject starts inside the staged span, widened by `slack_before_s` (a rule may
date its episode from the last good report, e.g. offline from the last ping before the
silence) and `slack_after_s` (a rule confirms after a minimum duration). A cleaned stage
(teleport, duplicate) is never matched against events: the cleaning's drop counts must
account for it instead, and no event of its truck may start while it happens.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SLACK_BEFORE_S = 300.0
SLACK_AFTER_S = 1800.0


def match_staged(staged: pd.DataFrame, events: pd.DataFrame, slack_before_s: float = SLACK_BEFORE_S,
                 slack_after_s: float = SLACK_AFTER_S) -> pd.DataFrame:
    """`staged` with `found` (bool), `event_seq`/`event_start`/`episode_id` of the earliest matching
    open event (None when not found). `events`: Store.read_events' frame (rule, subject_id,
    phase, start, seq, episode_id). Rows of cleaned stages get found = None."""
    out = staged.copy().reset_index(drop=True)
    out["found"] = None
    out["event_seq"] = None
    out["event_start"] = None
    out["episode_id"] = None
    if not len(out):
        return out
    opens = events[events["phase"] == "open"] if len(events) else events
    expected = out["rule"].notna()
    if not expected.any() or not len(opens):
        out.loc[expected, "found"] = False
        return out
    # one merge of staged rows with the open events of the same (rule, subject): few rows each
    pairs = out.loc[expected, ["subject_id", "rule", "start", "end"]].reset_index().merge(
        opens[["rule", "subject_id", "start", "seq", "episode_id"]].rename(columns={"start": "ev_start"}),
        on=["rule", "subject_id"], how="inner")
    lo = pd.to_datetime(pairs["start"], utc=True) - pd.Timedelta(seconds=slack_before_s)
    hi = pd.to_datetime(pairs["end"], utc=True) + pd.Timedelta(seconds=slack_after_s)
    ev_start = pd.to_datetime(pairs["ev_start"], utc=True)
    hits = pairs[(ev_start >= lo) & (ev_start <= hi)].sort_values(["index", "ev_start", "seq"])
    first = hits.drop_duplicates("index")
    out.loc[expected, "found"] = False
    out.loc[first["index"].to_numpy(), "found"] = True
    out.loc[first["index"].to_numpy(), "event_seq"] = first["seq"].to_numpy()
    out.loc[first["index"].to_numpy(), "event_start"] = first["ev_start"].to_numpy()
    out.loc[first["index"].to_numpy(), "episode_id"] = first["episode_id"].to_numpy()
    return out


def cleaned_expected(staged: pd.DataFrame) -> dict[str, int]:
    """Pings the cleaning must drop for the cleaned stages, by drop reason."""
    cleaned = staged[staged["drop_reason"].notna()] if len(staged) else staged
    if not len(cleaned):
        return {}
    return {str(k): int(v) for k, v in cleaned.groupby("drop_reason")["count"].sum().items()}


def events_during_cleaned_stages(staged: pd.DataFrame, events: pd.DataFrame,
                                 slack_s: float = SLACK_BEFORE_S) -> pd.DataFrame:
    """Events of a teleporting / duplicating truck that start while its bad pings were sent
    (they would be the cleaning's failure)."""
    cleaned = staged[staged["drop_reason"].notna()] if len(staged) else staged
    if not len(cleaned) or not len(events):
        return events.iloc[0:0] if len(events) else events
    pairs = cleaned[["subject_id", "start", "end"]].merge(events, on="subject_id", suffixes=("_stage", ""))
    lo = pd.to_datetime(pairs["start_stage"], utc=True) - pd.Timedelta(seconds=slack_s)
    hi = pd.to_datetime(pairs["end_stage"], utc=True) + pd.Timedelta(seconds=slack_s)
    start = pd.to_datetime(pairs["start"], utc=True)
    return pairs[np.asarray((start >= lo) & (start <= hi))].reset_index(drop=True)


def summary(matched: pd.DataFrame) -> pd.DataFrame:
    """Per kind: staged, found (expected-event stages only)."""
    expected = matched[matched["rule"].notna()]
    if not len(expected):
        return pd.DataFrame(columns=["kind", "rule", "staged", "found"])
    return (expected.assign(found=expected["found"].astype(bool))
            .groupby(["kind", "rule"], as_index=False).agg(staged=("subject_id", "size"), found=("found", "sum")))
