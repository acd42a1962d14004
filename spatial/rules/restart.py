"""Episodes a stopped monitor left open, at the next start.

The engines keep their state in memory. A wall-clock monitor (app/live.py) starts its truck engine
by replaying the store's recent pings through it (data/fleet_start.py `warm_engine`), and its point
engine's alarm rules by replaying the stored readings of the points with an alarm open
(`replay_points`), so the episodes those replays leave open (`open_after`) go on; once it has caught up with the stored
events it hands the episodes the store holds open and the replay does not here:

* most are closed at once (`restart_closes`), at the subject's newest stored observation (the
  last the monitor could judge), with `close_reason: monitor_restarted`; a rule still seeing the
  condition opens a new episode, which the incident joins within its reopen window;
* an episode of a *silence* rule (`SILENCE_RULES`: the subject has not been heard from) whose
  subject has not been heard from since it began is still true: a truck gone dark on a waybill
  is still dark, a sensor still silent. Closing it would take it off the officers' list while an
  engine that never saw the truck would not raise it again. It is carried instead
  (`carried_silences`): a sensor's by the point interruption rule, resumed from the store
  (spatial/rules/points.py `PointEngine.resume`), which closes it at the next reading under the
  stored episode's id; a truck's here (`carried_closes`), closed at its next ping as the offline
  rule closes it, with `carried_over_restart` in the evidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from spatial.model import Event
from spatial.rules.base import iso_time, iso_times, timestamp

# The close_reason of an episode closed because the monitor restarted (its label:
# layers/labels.py EVIDENCE_VALUES).
RESTART_CLOSE_REASON = "monitor_restarted"

# rule -> the evidence key its close names the subject's next observation by (offline.py `_close`,
# point_interruption.py): the rules whose episode is the subject's silence
SILENCE_RULES = {"offline": "next_ping", "point_interruption": "resumed"}

CARRIED_COLUMNS = ("rule", "subject_id", "episode_id", "start", "start_ms", "lon", "lat", "severity", "evidence")


def open_after(events: list[Event]) -> dict[str, list[Event]]:
    """Each episode the events leave open (no close among them) -> its events in order."""
    episodes: dict[str, list[Event]] = {}
    closed: set[str] = set()
    for e in events:  # a replay's events: one per episode phase, not per ping
        if e.phase == "close":
            closed.add(e.episode_id)
        else:
            episodes.setdefault(e.episode_id, []).append(e)
    return {episode: found for episode, found in episodes.items() if episode not in closed}


def _open_episodes(episode_events: pd.DataFrame):
    """(episode id, opening row, newest row) of each episode without a stored close."""
    if not len(episode_events):
        return
    ordered = episode_events.sort_values(["episode_id", "event_time", "seq"], kind="stable")
    for episode, rows in ordered.groupby("episode_id", sort=True):  # one per open episode: few
        if (rows["phase"] == "close").any():
            continue  # closed after all (by the rule, or by an earlier restart)
        yield str(episode), rows.iloc[0], rows.iloc[-1]


def _ms(value) -> int:
    return int(pd.Timestamp(value).value // 1_000_000)


def _still_silent(opening, newest_ms: dict[str, int]) -> bool:
    """A silence rule's episode whose subject has no observation after the silence began."""
    if opening["rule"] not in SILENCE_RULES:
        return False
    newest = newest_ms.get(str(opening["subject_id"]))
    return newest is None or int(newest) <= _ms(opening["start"])


def _place(opening, last) -> tuple[float, float]:
    return (float(last["lon"]), float(last["lat"])) if pd.notna(last["lon"]) else \
        (float(opening["lon"]), float(opening["lat"]))


def restart_closes(episode_events: pd.DataFrame, newest_ms: dict[str, int]) -> list[Event]:
    """A close for each episode left open (`episode_events`: the stored events of the open
    episodes, the store's read_events columns; `newest_ms`: each subject's newest stored
    observation, ping or reading), except the silences still going (`carried_silences`). It ends
    the episode at the subject's newest observation, never before the episode's own newest event,
    at that event's level and place."""
    closes = []
    for episode, opening, last in _open_episodes(episode_events):
        if _still_silent(opening, newest_ms):
            continue
        last_ms = _ms(last["event_time"])
        end_ms = max(last_ms, int(newest_ms.get(str(opening["subject_id"]), last_ms)))
        lon, lat = _place(opening, last)
        closes.append(Event(
            rule=str(opening["rule"]), subject_id=str(opening["subject_id"]), episode_id=episode, phase="close",
            start=opening["start"], end=timestamp(end_ms), lon=lon, lat=lat, severity=int(last["severity"]),
            evidence={**(last["evidence"] or {}), "close_reason": RESTART_CLOSE_REASON, "closed": iso_time(end_ms)}))
    return closes


def carried_silences(episode_events: pd.DataFrame, newest_ms: dict[str, int]) -> pd.DataFrame:
    """The open silence episodes whose subject has not been heard from since they began, one row
    each (CARRIED_COLUMNS; the newest event's level, place and evidence): what `restart_closes`
    leaves open, for `carried_closes`."""
    rows = []
    for episode, opening, last in _open_episodes(episode_events):
        if _still_silent(opening, newest_ms):
            lon, lat = _place(opening, last)
            rows.append((str(opening["rule"]), str(opening["subject_id"]), episode, opening["start"],
                         _ms(opening["start"]), lon, lat, int(last["severity"]), dict(last["evidence"] or {})))
    return pd.DataFrame(rows, columns=list(CARRIED_COLUMNS)).astype(
        {"rule": object, "subject_id": object, "episode_id": object, "start_ms": "int64", "lon": "float64",
         "lat": "float64", "severity": "int64", "evidence": object})


def carried_closes(carried: pd.DataFrame, subject_ids, epoch_ms) -> tuple[list[Event], pd.DataFrame]:
    """Close the carried silences (`carried_silences`) whose subject appears among the
    observations (`subject_ids`, `epoch_ms`), at its first one, never before the episode began.
    Returns the closes and the silences still carried."""
    subject_ids = np.asarray(subject_ids, dtype=object)
    if not len(subject_ids) or not len(carried):
        return [], carried
    heard = np.isin(subject_ids, carried["subject_id"].to_numpy(dtype=object))
    if not heard.any():
        return [], carried
    first = pd.Series(np.asarray(epoch_ms, "int64")[heard]).groupby(subject_ids[heard]).min()
    closing = carried["subject_id"].isin(first.index).to_numpy()
    done = carried[closing]
    at = np.maximum(first.reindex(done["subject_id"]).to_numpy("int64"), done["start_ms"].to_numpy("int64"))
    shown = iso_times(at)
    closes = []
    for i, row in enumerate(done.itertuples(index=False)):  # one per carried silence that ends: few
        evidence = {**row.evidence, SILENCE_RULES[row.rule]: str(shown[i]),
                    "silent_s": (int(at[i]) - int(row.start_ms)) / 1000.0, "carried_over_restart": True}
        closes.append(Event(rule=row.rule, subject_id=row.subject_id, episode_id=row.episode_id, phase="close",
                            start=row.start, end=timestamp(int(at[i])), lon=row.lon, lat=row.lat,
                            severity=int(row.severity), evidence=evidence))
    return closes, carried[~closing]
