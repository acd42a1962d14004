"""The incident lifecycle, pure: events -> incidents and their transitions, the noise window,
the recipient state machine, deadlines and escalation decisions (DESIGN.md §3 step 3).

An incident is one per (rule, subject, episode); an episode of the same rule and subject that
opens within `reopen_window_s` of the previous incident's end joins it (noise: one incident,
not two). Each event is applied once: its key is (rule, episode_id, phase, ordinal) where the
ordinal is 0 for an open and a close and, for an update, the update's place among the
episode's distinct updates (point_level sends several updates with one start). An update is
recognised as already applied by its content digest, so a replayed day, a re-imported file or a
re-run of the rules gives the same keys and doubles nothing (the store enforces the key). Every
event of an episode carries the episode's start: the store's key leads with it (the applied keys
of a batch land together), so an episode is (rule, episode_id) at that start, and a batch whose
events of one episode disagree on the start is refused.

Recipients (departments `DEPT-…`, enterprises `ENT-…`) each move pushed -> signed (签收) ->
disposed (处置) -> closed (办结); the incident's `status` is its least advanced recipient's state.
Red and orange incidents need a disposal note even when the rule has closed them; a yellow or
blue incident whose rule has ended may be closed once signed. Past the level's sign deadline a
recipient is reminded (once per deadline period until it signs) and escalated once to the next
recipient up (enterprise -> district -> city).

`plan_events` loops over events, one at a time: the reference. The store applies batches with
`spatial/incidents/batch.py` (`plan_batch`), which gives the same plan set-based and falls back to
this loop for batches outside the monitor's shape.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from spatial.rules.restart import RESTART_CLOSE_REASON

PHASES = ("open", "update", "close")
STATES = ("pushed", "signed", "disposed", "closed")
STATE_RANK = {s: i for i, s in enumerate(STATES)}
OUTCOMES = ("resolved", "rectified", "penalised", "referred", "false_alarm")  # false_alarm: 误报
RULE_STATES = ("active", "ended")
# Every action an incident_transitions row can carry (IncidentStore._log refuses any other, so a new
# one is named here first and the screen's labels, layers/labels.py, cover it):
INCIDENT_ACTIONS = ("opened", "reopened", "updated", "rule_closed")  # the incident's own, from rule events
RECIPIENT_ACTIONS = ("pushed", "signed", "disposed", "closed", "supervised", "escalated", "reminded", "upgraded")
DRIVER_ACTIONS = ("driver_text_requested", "driver_text_answered", "driver_confirm_answered")  # data/channels
TRANSITION_ACTIONS = INCIDENT_ACTIONS + RECIPIENT_ACTIONS + DRIVER_ACTIONS
OUTBOX_ACTIONS = ("routed",)  # an outbox row's own action beyond the transitions' (data/incidents.ROUTED)
RECIPIENT_KINDS = ("department", "enterprise")
NOTE_LEVELS = (1, 2)  # red and orange: a disposal note is required
SUBJECT_KINDS = {"VEH-": "vehicle", "MP-": "monitoring_point", "HS-": "hazard_source", "ENT-": "entity"}
EVENT_COLUMNS = ["rule", "subject_id", "episode_id", "phase", "start", "end", "lon", "lat", "severity", "evidence"]


class IncidentError(ValueError):
    """A request the incident store refuses (unknown id, illegal transition, bad input); nothing
    was changed."""


@dataclass(frozen=True)
class IncidentSettings:
    """Deadlines and noise thresholds. None is fixed by a regulation: engineering defaults."""

    # seconds to sign for (签收) per level, red, orange, yellow, blue (engineering default)
    sign_deadline_s: tuple[float, float, float, float] = (900.0, 1800.0, 7200.0, 86400.0)
    reopen_window_s: float = 600.0  # an episode reopening this soon after the last joins its incident
    quick_close_s: float = 300.0  # a rule close this soon after the open, nobody signed: counted as noise
    max_tier: int = 2  # escalation steps: enterprise (0) -> district (1) -> city (2)

    def __post_init__(self) -> None:
        if len(self.sign_deadline_s) != 4 or not all(s > 0 for s in self.sign_deadline_s):
            raise ValueError("IncidentSettings.sign_deadline_s: four positive seconds (red, orange, yellow, blue)")
        if self.reopen_window_s < 0 or self.quick_close_s < 0 or self.max_tier < 0:
            raise ValueError("IncidentSettings: reopen_window_s, quick_close_s and max_tier must be >= 0")

    def deadline_s(self, severity) -> np.ndarray:
        return np.asarray(self.sign_deadline_s, dtype="float64")[np.asarray(severity, dtype="int64") - 1]


def subject_kinds(subject_ids) -> np.ndarray:
    """vehicle | monitoring_point | … from the id prefix; 'other' when unknown."""
    ids = pd.Series(subject_ids, dtype=object).astype(str)
    out = np.full(len(ids), "other", dtype=object)
    for prefix, kind in SUBJECT_KINDS.items():
        out[ids.str.startswith(prefix).to_numpy()] = kind
    return out


CHINA_OFFSET_US = 8 * 3600 * 1_000_000  # Asia/Shanghai: UTC+8, no daylight saving since 1991


def incident_ids(rules, episode_ids, start_us) -> np.ndarray:
    """Deterministic from each incident's first episode (a replay names it the same), led by its
    start in local time, INC-YYYYMMDDhhmmss-<hash>: ids grow in time order, so a batch's new
    incidents land at the end of every index keyed by them (incidents, recipients, transitions,
    applied keys), not on a random page each — at a year's record that was most of the commit."""
    if not len(start_us):
        return np.zeros(0, dtype=object)
    local = (np.asarray(start_us, dtype="int64") + CHINA_OFFSET_US).astype("M8[us]").astype("M8[s]")
    stamp = np.char.replace(np.char.replace(np.char.replace(
        np.datetime_as_string(local, unit="s"), "-", ""), ":", ""), "T", "-")
    digests = [hashlib.blake2b(f"{r}\x1f{e}".encode(), digest_size=6).hexdigest() for r, e in zip(rules, episode_ids)]
    return "INC-" + stamp.astype(object) + "-" + np.asarray(digests, dtype=object)


def incident_id(rule: str, episode_id: str, start_us: int) -> str:
    return incident_ids([rule], [episode_id], [start_us])[0]


def restart_closed(evidence) -> np.ndarray:
    """Which closes a monitor's restart made, not the rule (spatial/rules/restart.py): no quick
    close, however young the episode — the noise figures count what the rule decided."""
    return np.fromiter((isinstance(e, dict) and e.get("close_reason") == RESTART_CLOSE_REASON for e in evidence),
                       dtype=bool, count=len(evidence))


def event_digest(severity: int, end, evidence) -> str:
    text = json.dumps([int(severity), None if end is None or pd.isna(end) else pd.Timestamp(end).isoformat(),
                       evidence], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def check_events(events: pd.DataFrame, labels=None) -> pd.DataFrame:
    """Events as a frame (EVENT_COLUMNS, times aware UTC), checked; raises IncidentError naming the
    first bad row: `labels[row]` when given (a file's "line 7"), else "event <0-based position>"."""
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise IncidentError(f"events: missing column(s) {', '.join(missing)}")
    frame = events[EVENT_COLUMNS + [c for c in ("seq", "event_time") if c in events.columns]] \
        .reset_index(drop=True).copy()

    def fail(mask, what):
        row = int(np.flatnonzero(np.asarray(mask))[0])
        where = f"event {row}" if labels is None else str(labels[row])
        raise IncidentError(f"{where}: {what} (rule {frame['rule'].iloc[row]!r}, episode "
                            f"{frame['episode_id'].iloc[row]!r}); {int(np.sum(mask))} event(s) so")

    for name in ("rule", "subject_id", "episode_id", "phase"):
        # plain object arrays of str: the planner and the writers take them as they are (pandas'
        # arrow-backed str dtype would be converted back and forth on every use)
        values = frame[name].to_numpy(dtype=object)
        if pd.api.types.infer_dtype(values, skipna=False) != "string":
            values = np.asarray([None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values],
                                dtype=object)
        if name != "phase":
            bad = pd.isna(values) | (values == "")
            if bad.any():
                fail(bad, f"{name} is missing")
        frame[name] = pd.Series(values, dtype=object)
    bad = ~np.isin(frame["phase"].to_numpy(dtype=object), np.asarray(PHASES, dtype=object))
    if bad.any():
        fail(bad, f"phase must be one of {', '.join(PHASES)}")
    if "event_time" not in frame.columns:  # none given: each event speaks for its start or end (below)
        frame["event_time"] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    for name in ("start", "end", "event_time"):
        if isinstance(frame[name].dtype, pd.DatetimeTZDtype):  # already times (the monitor's, a frame's)
            frame[name] = frame[name].dt.tz_convert("UTC")
            continue
        times = pd.to_datetime(frame[name], utc=True, errors="coerce", format="mixed")
        # `hazmap events --json` writes an open's missing end as "NaT"
        given = frame[name].notna() & ~frame[name].astype(str).str.strip().isin(["", "NaT", "None", "null", "nan"])
        if (given & times.isna()).any():
            fail(given & times.isna(), f"{name} is not a time")
        frame[name] = times
    if frame["start"].isna().any():
        fail(frame["start"].isna(), "start is missing")
    if ((frame["phase"] == "close") & frame["end"].isna()).any():
        fail((frame["phase"] == "close") & frame["end"].isna(), "a close needs its end time")
    if (frame["end"] < frame["start"]).any():
        fail(frame["end"] < frame["start"], "end is before start")
    # every event of an episode carries the episode's start (the store finds an episode's applied
    # keys by it): a batch whose events of one episode disagree on it is malformed
    first_start = frame.groupby(["rule", "episode_id"], sort=False)["start"].transform("first")
    if (first_start != frame["start"]).any():
        fail(first_start != frame["start"], "start differs from the start of the episode's earlier event(s)")
    severity = pd.to_numeric(frame["severity"], errors="coerce")
    bad = ~severity.isin([1, 2, 3, 4])
    if bad.any():
        fail(bad, "severity must be 1 (highest) ... 4")
    frame["severity"] = severity.astype("int64")
    for name in ("lon", "lat"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    bad = ~np.fromiter((isinstance(e, dict) for e in frame["evidence"].tolist()), dtype=bool, count=len(frame))
    if bad.any():
        fail(bad, "evidence must be a JSON object")
    # the instant each event speaks for: a close its end, an open its start, an update its own time
    # (a point's level changing hours into its episode: its re-routing waits from then), else its start
    update = (frame["phase"] == "update").to_numpy()
    own = frame["event_time"].where(update & frame["event_time"].notna().to_numpy())
    outside = own.notna() & ((own < frame["start"]) | (frame["end"].notna() & (own > frame["end"])))
    if outside.any():
        fail(outside, "an update's event_time is outside its episode (before its start or after its end)")
    frame["event_time"] = frame["end"].where(frame["phase"] == "close", own.fillna(frame["start"]))
    return frame


@dataclass
class Plan:
    """What applying a batch of events changes (the store writes it in one transaction)."""

    applied: pd.DataFrame  # rows of incident_applied to insert
    incidents: dict[str, dict]  # full rows of the incidents created or changed
    opened: list[str]  # incidents created (to be routed)
    transitions: list[dict]  # incident-level transitions (opened, reopened, updated, rule_closed)
    duplicates: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    quick_closed: list[str] = field(default_factory=list)  # became quick closes in this batch
    reopened: list[str] = field(default_factory=list)  # one entry per reopening
    # the events that raised an incident's peak level after it opened, in order: incident_id, at,
    # severity (the new peak), lon, lat — the store routes the incident again at that level
    upgrades: list[dict] = field(default_factory=list)


def plan_events(events: pd.DataFrame, applied: pd.DataFrame, incidents: pd.DataFrame,
                settings: IncidentSettings, *, source: str) -> Plan:
    """Apply checked `events` (check_events, in application order) to the known state.

    applied: the incident_applied rows of the batch's episodes (rule, episode_id, phase, ordinal,
        digest, incident_id);
    incidents: the incidents holding those episodes and the latest incident of each of the batch's
        (rule, subject) pairs (full rows).
    """
    # --- keys: ordinal 0 for open/close; updates by content digest --------------------------
    ev = events.reset_index(drop=True)
    is_update = (ev["phase"] == "update").to_numpy()
    digest = np.full(len(ev), None, dtype=object)
    if is_update.any():
        idx = np.flatnonzero(is_update)
        digest[idx] = [event_digest(s, e, d) for s, e, d in zip(
            ev["severity"].to_numpy()[idx], ev["end"].iloc[idx], ev["evidence"].iloc[idx])]
    ev = ev.assign(digest=digest, ordinal=0)
    known_keys = set(zip(applied["rule"], applied["episode_id"], applied["phase"], applied["ordinal"]))
    known_digests = {(r, e, d) for r, e, p, d in zip(applied["rule"], applied["episode_id"], applied["phase"],
                                                      applied["digest"]) if p == "update"}
    next_ordinal: dict[tuple[str, str], int] = {}
    for r, e, p, o in zip(applied["rule"], applied["episode_id"], applied["phase"], applied["ordinal"]):
        if p == "update":
            next_ordinal[(r, e)] = max(next_ordinal.get((r, e), 0), int(o) + 1)
    by_episode = {(r, e): i for r, e, i in zip(applied["rule"], applied["episode_id"], applied["incident_id"])}
    # times as int µs inside the loop (Timestamp arithmetic costs microseconds a go); back at the end
    rows: dict[str, dict] = {}
    for r in incidents.to_dict("records"):
        r = dict(r)
        for name in _TIME_FIELDS:
            r[name] = _us(r.get(name))
        rows[str(r["id"])] = r
    latest: dict[tuple[str, str], str] = {}
    for inc in sorted(rows.values(), key=lambda r: r["first_time"]):
        latest[(inc["rule"], inc["subject_id"])] = inc["id"]

    n = len(ev)
    keep = np.zeros(n, dtype=bool)
    ordinals = np.zeros(n, dtype="int64")
    incident_of = np.full(n, None, dtype=object)
    changed: set[str] = set()
    opened: list[str] = []
    quick_closed: list[str] = []
    reopened: list[str] = []
    transitions: list[dict] = []
    upgrades: list[dict] = []
    counts = {"opened": 0, "updated": 0, "closed": 0, "reopened": 0}
    kinds = subject_kinds(ev["subject_id"])
    window_us = int(settings.reopen_window_s * 1e6)
    quick_us = int(settings.quick_close_s * 1e6)
    start_us = _us_array(ev["start"])
    end_us = _us_array(ev["end"])
    time_us = _us_array(ev["event_time"]) if "event_time" in ev.columns \
        else np.where(ev["phase"].to_numpy() == "close", end_us, start_us)
    columns = zip(ev["rule"].tolist(), ev["subject_id"].tolist(), ev["episode_id"].tolist(), ev["phase"].tolist(),
                  start_us.tolist(), end_us.tolist(), time_us.tolist(), ev["lon"].tolist(), ev["lat"].tolist(),
                  ev["severity"].tolist(), ev["evidence"].tolist(), ev["digest"].tolist())
    for i, (rule, subject, episode, phase, start, end, when, lon, lat, severity, evidence, dig) in enumerate(columns):
        if phase == "update":
            dkey = (rule, episode, dig)
            if dkey in known_digests:
                continue
            ordinal = next_ordinal.get((rule, episode), 0)
            next_ordinal[(rule, episode)] = ordinal + 1
            known_digests.add(dkey)
        else:
            ordinal = 0
            if (rule, episode, phase, 0) in known_keys:
                continue
            known_keys.add((rule, episode, phase, 0))
        keep[i], ordinals[i] = True, ordinal
        actor = "rule:" + rule
        inc_id = by_episode.get((rule, episode))
        if inc_id is None:
            previous = rows.get(latest.get((rule, subject), ""))
            gap = None if previous is None or previous["end_time"] is None else start - previous["end_time"]
            if previous is not None and previous["state"] == "ended" and previous["status"] != "closed" \
                    and gap is not None and 0 <= gap <= window_us:
                inc = previous
                inc_id = inc["id"]
                inc.update(state="active", end_time=None, last_episode_id=episode, episodes=inc["episodes"] + 1)
                counts["reopened"] += 1
                reopened.append(inc_id)
                transitions.append(_transition(inc_id, "reopened", "ended", "active", actor, when,
                                               {"episode_id": episode, "gap_s": gap / 1e6}))
            else:
                inc_id = incident_id(rule, episode, start)
                inc = {
                    "id": inc_id, "rule": rule, "subject_id": subject, "subject_kind": kinds[i],
                    "first_episode_id": episode, "last_episode_id": episode, "episodes": 1,
                    "state": "active", "status": "pushed", "severity": severity, "peak_severity": severity,
                    "first_time": start, "last_time": when, "end_time": None, "lon": lon, "lat": lat,
                    "district_adcode": None, "evidence": evidence, "source": source,
                    "quick_close": False, "false_alarm": False, "escalations": 0,
                }
                rows[inc_id] = inc
                opened.append(inc_id)
                counts["opened"] += 1
                transitions.append(_transition(inc_id, "opened", None, "active", actor, when,
                                               {"episode_id": episode, "severity": severity}))
            by_episode[(rule, episode)] = inc_id
            latest[(rule, subject)] = inc_id
        inc = rows[inc_id]
        incident_of[i] = inc_id
        changed.add(inc_id)
        peak_before = inc["peak_severity"]  # an incident opened by this event: its own level
        if phase != "close" and lon == lon:  # not NaN
            inc["lon"], inc["lat"] = lon, lat
        inc["evidence"] = evidence
        if when > inc["last_time"]:
            inc["last_time"] = when
        if phase == "update" or (phase == "open" and inc["first_episode_id"] != episode
                                 and inc["last_episode_id"] != episode):
            before = inc["severity"]
            inc["severity"] = severity
            inc["peak_severity"] = min(inc["peak_severity"], severity)
            counts["updated"] += 1
            transitions.append(_transition(inc_id, "updated", None, None, actor, when,
                                           {"episode_id": episode, "severity_from": int(before),
                                            "severity": severity}))
        elif phase == "open":
            inc["peak_severity"] = min(inc["peak_severity"], severity)
            inc["severity"] = severity
        else:  # close
            inc["peak_severity"] = min(inc["peak_severity"], severity)
            if inc["state"] == "active" and inc["last_episode_id"] == episode:
                inc["state"], inc["end_time"] = "ended", end
                was = bool(inc["quick_close"])
                inc["quick_close"] = was or (end - start <= quick_us and inc["status"] == "pushed"
                                             and not restart_closed([evidence])[0])
                if inc["quick_close"] and not was:
                    quick_closed.append(inc_id)
                counts["closed"] += 1
                transitions.append(_transition(inc_id, "rule_closed", "active", "ended", actor, when,
                                               {"episode_id": episode, "duration_s": (end - start) / 1e6}))
        if inc["peak_severity"] < peak_before:
            upgrades.append({"incident_id": inc_id, "at": when, "severity": int(inc["peak_severity"]),
                             "lon": lon, "lat": lat})
    kept = ev[keep].assign(ordinal=ordinals[keep], incident_id=incident_of[keep])
    applied_rows = pd.DataFrame({
        "rule": kept["rule"].to_numpy(), "episode_start": kept["start"].array, "episode_id": kept["episode_id"].to_numpy(),
        "phase": kept["phase"].to_numpy(), "ordinal": kept["ordinal"].to_numpy(dtype="int64"),
        "digest": kept["digest"].to_numpy(), "incident_id": kept["incident_id"].to_numpy(),
        "seq": kept["seq"].to_numpy() if "seq" in kept.columns else np.full(len(kept), None, dtype=object),
    })
    counts["applied"] = int(keep.sum())
    out = {i: rows[i] for i in changed}
    for name in _TIME_FIELDS:  # back to aware timestamps, in bulk
        values = [r.get(name) for r in out.values()]
        stamps = _timestamps(values)
        for r, v in zip(out.values(), stamps):
            r[name] = v
    for t, v in zip([*transitions, *upgrades], _timestamps([t["at"] for t in [*transitions, *upgrades]])):
        t["at"] = v
    return Plan(applied=applied_rows, incidents=out, opened=opened, transitions=transitions,
                duplicates=int(n - keep.sum()), counts=counts, quick_closed=quick_closed, reopened=reopened,
                upgrades=upgrades)


_TIME_FIELDS = ("first_time", "last_time", "end_time")


def _us(value) -> int | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    return int(pd.Timestamp(value).value // 1000)


def _us_array(times: pd.Series) -> np.ndarray:
    """Aware times -> int64 µs since the epoch (NaT -> a sentinel never compared: closes carry an end)."""
    values = pd.to_datetime(times, utc=True)
    out = values.dt.as_unit("us").array.asi8.copy() if len(values) else np.zeros(0, "int64")
    return out


def _timestamps(values: list) -> list:
    if not values:
        return []
    present = [v for v in values if v is not None]
    stamps = iter(pd.to_datetime(np.asarray(present, dtype="int64"), unit="us", utc=True)) if present else iter(())
    return [None if v is None else next(stamps) for v in values]


def _transition(incident_id: str, action: str, from_state, to_state, actor: str, at, details=None,
                recipient_id=None, note=None) -> dict:
    return {"incident_id": incident_id, "recipient_id": recipient_id, "action": action, "from_state": from_state,
            "to_state": to_state, "actor": actor, "at": at, "note": note, "details": details}


# --- recipients -------------------------------------------------------------------------------


def check_transition(action: str, state: str, *, severity: int, rule_state: str, note: str | None,
                     outcome: str | None = None, measures: str | None = None) -> str:
    """The state after `action` (sign, dispose, close) from `state`; IncidentError when illegal."""
    if action == "sign":
        allowed = ("pushed",)
    elif action == "dispose":
        allowed = ("signed",)
        if outcome not in OUTCOMES:
            raise IncidentError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        if severity in NOTE_LEVELS and not (note and note.strip()):
            raise IncidentError("a red or orange incident needs a disposal note (--note)")
    elif action == "close":
        allowed = ("disposed",) if severity in NOTE_LEVELS or rule_state != "ended" else ("signed", "disposed")
    else:
        raise IncidentError(f"unknown action {action!r}")
    if state not in allowed:
        why = {"sign": "only a pushed incident can be signed for",
               "dispose": "sign for it first" if state == "pushed" else "only a signed incident can be disposed",
               "close": "dispose of it first (a red or orange incident, or one whose rule is still active, is "
                        "closed after its disposal)" if state in ("pushed", "signed") else "it is closed already"}
        raise IncidentError(f"cannot {action} an incident that is {state}: {why[action]}")
    return {"sign": "signed", "dispose": "disposed", "close": "closed"}[action]


def incident_status(states) -> str:
    """The incident's status: its least advanced recipient's state ('pushed' without any)."""
    ranks = [STATE_RANK[s] for s in states]
    return STATES[min(ranks)] if ranks else "pushed"


def escalation_due(recipients: pd.DataFrame, now: pd.Timestamp, settings: IncidentSettings
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(escalate, remind) masks over recipient rows (columns state, tier, severity, sign_deadline,
    escalated_at, last_reminded_at): past its sign deadline a pushed recipient is escalated once
    (while tier < max_tier) and reminded once per deadline period until it signs."""
    if not len(recipients):
        return np.zeros(0, bool), np.zeros(0, bool)
    pushed = (recipients["state"] == "pushed").to_numpy()
    overdue = pushed & (pd.to_datetime(recipients["sign_deadline"], utc=True) < now).to_numpy()
    escalate = overdue & recipients["escalated_at"].isna().to_numpy() \
        & (recipients["tier"].to_numpy(dtype="int64") < settings.max_tier)
    period = pd.to_timedelta(settings.deadline_s(recipients["severity"].to_numpy()), unit="s")
    last = pd.to_datetime(recipients["last_reminded_at"], utc=True)
    since = pd.to_datetime(recipients["sign_deadline"], utc=True).where(last.isna(), last)
    remind = overdue & ((now - since).to_numpy() >= np.where(last.isna().to_numpy(), pd.Timedelta(0), period))
    return escalate, remind
