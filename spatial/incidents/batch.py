"""A batch of events -> what it changes, set-based (pure): the incidents it creates or moves, the
applied keys, the incident-level transitions, as frames the store writes once per table.

`plan_batch` gives what `lifecycle.plan_events` (the event-by-event reference) gives, with numpy
and pandas over the whole batch. The only sequential part of the lifecycle is the noise window:
an episode joins the latest incident of its rule and subject when that incident has ended, was
not closed by hand and ended at most `reopen_window_s` before the episode starts. Within a batch
the latest incident a new episode can join is the one its group's previous new episode went to
(or, for the first, the store's latest), and whether that one had ended depends only on where
its last episode's close stands in the batch, so every join decision is one vector comparison
and the incidents follow from a cumulative sum of "not joined" per (rule, subject).

Batches outside that shape — a new episode whose first event is not its open, an open of an
episode applied before — go through the reference loop (they come from partial files, not the
monitor); tests/incidents/test_batch_plan.py holds both paths to the same tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from spatial.incidents.lifecycle import (
    IncidentSettings,
    event_digest,
    incident_ids,
    plan_events,
    restart_closed,
    subject_kinds,
)

INCIDENT_COLUMNS = ["id", "rule", "subject_id", "subject_kind", "first_episode_id", "last_episode_id", "episodes",
                    "state", "status", "severity", "peak_severity", "first_time", "last_time", "end_time", "lon",
                    "lat", "district_adcode", "evidence", "source", "quick_close", "false_alarm", "escalations"]
TRANSITION_COLUMNS = ["incident_id", "recipient_id", "action", "from_state", "to_state", "actor", "at", "note",
                      "details"]
APPLIED_COLUMNS = ["rule", "episode_start", "episode_id", "phase", "ordinal", "digest", "incident_id", "seq"]
UPGRADE_COLUMNS = ["incident_id", "at", "severity", "lon", "lat"]
_TIMES = ("first_time", "last_time", "end_time")
NAT = np.iinfo("int64").min  # NaT as int64 µs


@dataclass
class BatchPlan:
    """What applying a batch changes; frames, written by the store in one transaction.

    incidents: the created or changed incidents, full rows (INCIDENT_COLUMNS; times aware UTC);
    transitions: incident-level transitions in log order (TRANSITION_COLUMNS; details as JSON text).
    """

    applied: pd.DataFrame
    incidents: pd.DataFrame
    opened: list[str]  # incidents created, in the order they opened (to be routed)
    transitions: pd.DataFrame
    duplicates: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    quick_closed: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    vectorised: bool = True
    # the severity each `opened` incident opened with: it is routed and given its deadline at that
    # level, whichever later event of the same batch changed it (a batch's bounds change nothing);
    # a later rise routes it again (`upgrades`)
    opened_severity: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    # the events that raised an incident's peak level after it opened, in batch order (UPGRADE_COLUMNS;
    # `at` aware UTC, `severity` the new peak): the store routes each incident again at that level
    upgrades: pd.DataFrame = field(default_factory=lambda: _upgrades_frame([], [], [], [], []))


def plan_batch(events: pd.DataFrame, applied: pd.DataFrame, incidents: pd.DataFrame, settings: IncidentSettings,
               *, source: str, vectorised: bool = True) -> BatchPlan:
    """As lifecycle.plan_events (same arguments), as frames; set-based where the batch allows."""
    if vectorised:
        plan = _plan_vectorised(events, applied, incidents, settings, source)
        if plan is not None:
            return plan
    return _from_loop(plan_events(events, applied, incidents, settings, source=source))


# --- the reference loop's plan as frames -----------------------------------------------------


def _from_loop(plan) -> BatchPlan:
    rows = list(plan.incidents.values())
    frame = pd.DataFrame({c: pd.Series([r.get(c) for r in rows], dtype=object) for c in INCIDENT_COLUMNS})
    for name in _TIMES:
        frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[us, UTC]")
    transitions = pd.DataFrame({c: pd.Series([t[c] for t in plan.transitions], dtype=object)
                                for c in TRANSITION_COLUMNS})
    transitions["at"] = pd.to_datetime(transitions["at"], utc=True).astype("datetime64[us, UTC]")
    transitions["details"] = [None if d is None else json.dumps(d, ensure_ascii=False, default=str)
                              for d in transitions["details"]]
    opened_with = {t["incident_id"]: int(t["details"]["severity"]) for t in plan.transitions if t["action"] == "opened"}
    u = plan.upgrades
    upgrades = _upgrades_frame([x["incident_id"] for x in u], _us([x["at"] for x in u]), [x["severity"] for x in u],
                               [x["lon"] for x in u], [x["lat"] for x in u])
    return BatchPlan(applied=plan.applied, incidents=_typed(frame), opened=list(plan.opened),
                     transitions=transitions, duplicates=plan.duplicates, counts=dict(plan.counts),
                     quick_closed=list(plan.quick_closed), reopened=list(plan.reopened), vectorised=False,
                     opened_severity=np.array([opened_with[i] for i in plan.opened], dtype="int64"),
                     upgrades=upgrades)


def _upgrades_frame(incident_ids, at_us, severity, lon, lat) -> pd.DataFrame:
    return pd.DataFrame({
        "incident_id": pd.Series(list(incident_ids), dtype=object),
        "at": _times(np.asarray(at_us, dtype="int64")).astype("datetime64[us, UTC]"),
        "severity": np.asarray(severity, dtype="int64"), "lon": np.asarray(lon, dtype="float64"),
        "lat": np.asarray(lat, dtype="float64")})


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for name in ("episodes", "severity", "peak_severity", "escalations"):
        frame[name] = frame[name].astype("int64")
    for name in ("lon", "lat"):
        frame[name] = pd.to_numeric(frame[name]).astype("float64")
    for name in ("quick_close", "false_alarm"):
        frame[name] = frame[name].astype(bool)
    return frame


# --- set-based -----------------------------------------------------------------------------------


def _us(times) -> np.ndarray:
    """Aware times -> int64 µs since the epoch, NaT -> NAT."""
    values = pd.to_datetime(pd.Series(times), utc=True)
    return values.dt.as_unit("us").array.asi8.copy() if len(values) else np.zeros(0, "int64")


def _times(us: np.ndarray) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(np.asarray(us, dtype="int64").view("M8[us]"), tz="UTC"))


def _keys(*columns) -> np.ndarray:
    """Row keys joining text columns with a separator no id holds."""
    def text(c) -> np.ndarray:  # object arrays of str (no pandas str dtype: its conversions cost more)
        c = np.asarray(c)
        return c.astype(str).astype(object) if c.dtype != object else c

    out = text(columns[0])
    for c in columns[1:]:
        out = out + "\x1f" + text(c)
    return out


def _filled(values) -> np.ndarray:
    """An object array with None (and NaN) as ""."""
    values = np.asarray(values, dtype=object).copy()
    values[pd.isna(values)] = ""
    return values


def _objects_of_str(values) -> np.ndarray:
    """Text values as an object array of str (pandas 3's .astype(str) makes its arrow-backed str
    dtype, which every later isin, reindex and concat with object columns converts back)."""
    values = np.asarray(values, dtype=object)
    if len(values) and pd.api.types.infer_dtype(values, skipna=False) != "string":  # C, not a loop per id
        values = values.astype(str).astype(object)
    return values


def json_text(values) -> np.ndarray:
    """JSON string literals of text values, in bulk (json.dumps for those needing escapes)."""
    s = pd.Series(values, dtype=object).astype(str)
    plain = ~s.str.contains(r'["\\\x00-\x1f]', regex=True).to_numpy()
    out = np.empty(len(s), dtype=object)
    out[plain] = ('"' + s[plain] + '"').to_numpy(dtype=object)
    out[~plain] = [json.dumps(v, ensure_ascii=False) for v in s[~plain]]
    return out


def _floats(values) -> np.ndarray:
    return np.asarray([repr(float(v)) for v in np.asarray(values, dtype="float64").tolist()], dtype=object)


def _plan_vectorised(events, applied, incidents, settings, source) -> BatchPlan | None:
    ev = events.reset_index(drop=True)
    n = len(ev)
    rule = ev["rule"].to_numpy(dtype=object)
    episode = ev["episode_id"].to_numpy(dtype=object)
    phase = ev["phase"].to_numpy(dtype=object)
    is_update = phase == "update"
    digest = np.full(n, None, dtype=object)
    if is_update.any():
        idx = np.flatnonzero(is_update)
        digest[idx] = [event_digest(s, e, d) for s, e, d in zip(
            ev["severity"].to_numpy()[idx], ev["end"].iloc[idx], ev["evidence"].iloc[idx])]

    # --- keys: which events are new, updates' ordinals -----------------------------------------
    ek = _keys(rule, episode)
    key = _keys(ek, np.where(is_update, "u" + _filled(digest), phase))
    a_phase = applied["phase"].to_numpy(dtype=object)
    a_ek = _keys(applied["rule"].to_numpy(dtype=object), applied["episode_id"].to_numpy(dtype=object))
    a_update = a_phase == "update"
    a_key = _keys(a_ek, np.where(a_update, "u" + _filled(applied["digest"].to_numpy(dtype=object)), a_phase)) \
        if len(applied) else np.zeros(0, object)
    # object dtype throughout: a Series of str would be converted to pandas 3's arrow strings first
    keys = pd.Series(key, dtype=object)
    keep = ~(keys.isin(a_key).to_numpy() | keys.duplicated().to_numpy())
    ordinal = np.zeros(n, dtype="int64")
    kept_update = keep & is_update
    if kept_update.any():
        base = pd.Series(applied["ordinal"].to_numpy(dtype="int64")[a_update] + 1, dtype="int64") \
            .groupby(a_ek[a_update]).max() if a_update.any() else pd.Series(dtype="int64")
        upd_ek = pd.Series(ek[kept_update])
        ordinal[kept_update] = base.reindex(upd_ek).fillna(0).to_numpy(dtype="int64") \
            + upd_ek.groupby(upd_ek).cumcount().to_numpy()

    K = np.flatnonzero(keep)
    if not len(K):
        return BatchPlan(applied=pd.DataFrame(columns=APPLIED_COLUMNS), incidents=pd.DataFrame(columns=INCIDENT_COLUMNS),
                         opened=[], transitions=pd.DataFrame(columns=TRANSITION_COLUMNS), duplicates=n,
                         counts={"opened": 0, "updated": 0, "closed": 0, "reopened": 0, "applied": 0})
    known_of = pd.Series(applied["incident_id"].to_numpy(dtype=object), index=a_ek)
    known_of = known_of[~known_of.index.duplicated()]
    k_ek = ek[K]
    k_phase = phase[K]
    k_known = known_of.reindex(k_ek).to_numpy(dtype=object)
    is_known = pd.notna(k_known)
    cand = incidents.reset_index(drop=True)
    cand_ids = set(_objects_of_str(cand["id"])) if len(cand) else set()
    if (is_known & (k_phase == "open")).any() or not set(k_known[is_known]).issubset(cand_ids):
        return None  # an episode's open after its other events: the reference loop decides
    new_first = ~is_known & ~pd.Series(k_ek).duplicated().to_numpy()
    new_first &= ~is_known
    if (k_phase[new_first] != "open").any():
        return None

    start_us = _us(ev["start"])
    end_us = _us(ev["end"])
    # the instant each event speaks for (check_events: an update's own time)
    when_us = _us(ev["event_time"]) if "event_time" in ev.columns else np.where(phase == "close", end_us, start_us)
    severity = ev["severity"].to_numpy(dtype="int64")
    lon = ev["lon"].to_numpy(dtype="float64")
    lat = ev["lat"].to_numpy(dtype="float64")
    subject = ev["subject_id"].to_numpy(dtype=object)
    window_us = int(settings.reopen_window_s * 1e6)
    quick_us = int(settings.quick_close_s * 1e6)

    # --- the store's incidents, as plain columns --------------------------------------------------
    base = pd.DataFrame({c: cand[c] if c in cand.columns else pd.Series(dtype=object) for c in INCIDENT_COLUMNS})
    base["id"] = _objects_of_str(base["id"])
    for name in _TIMES:
        base[name] = _us(base[name]) if len(base) else np.zeros(0, "int64")
    base = base.set_index("id", drop=False)

    # kept closes by episode key (one each: keys are unique)
    k_close = K[k_phase == "close"]
    close_pos = pd.Series(k_close, index=ek[k_close])
    close_end = pd.Series(end_us[k_close], index=ek[k_close])

    # --- new episodes: join the group's latest incident or open their own ----------------------------
    P = K[new_first]  # positions of the new episodes' opens, in batch order
    group = _keys(rule[P], subject[P])
    ne = pd.DataFrame({"p": P, "ek": ek[P], "group": group})
    prev = ne.groupby("group", sort=False)["ek"].shift(1).to_numpy(dtype=object)
    has_prev = pd.notna(prev)
    prev_close = close_pos.reindex(prev).to_numpy(dtype="float64")
    ended = np.zeros(len(P), bool)
    end_at = np.full(len(P), NAT, dtype="int64")
    open_ = np.ones(len(P), bool)  # the latest incident was not closed by hand
    w = has_prev & ~np.isnan(prev_close) & (prev_close < P)
    ended[w] = True
    end_at[w] = close_end.reindex(prev[w]).to_numpy(dtype="int64")
    latest_id = np.full(len(P), None, dtype=object)
    if len(base):
        latest = base.sort_values("first_time", kind="stable")
        latest = latest.assign(group=_keys(latest["rule"].to_numpy(dtype=object),
                                           latest["subject_id"].to_numpy(dtype=object)))
        latest = latest.drop_duplicates("group", keep="last").set_index("group")
        first = ~has_prev
        L = latest.reindex(group[first])
        found = L["id"].notna().to_numpy()
        rows = np.flatnonzero(first)[found]
        L = L[found]
        latest_id[rows] = L["id"].to_numpy(dtype=object)
        open_[rows] = (L["status"] != "closed").to_numpy()
        was_ended = (L["state"] == "ended").to_numpy()
        last_close = close_pos.reindex(_keys(L["rule"].to_numpy(dtype=object),
                                             L["last_episode_id"].to_numpy(dtype=object))).to_numpy(dtype="float64")
        closes_now = ~was_ended & (L["state"] == "active").to_numpy() & ~np.isnan(last_close) \
            & (last_close < P[rows])
        ended[rows] = was_ended | closes_now
        end_at[rows] = np.where(was_ended, L["end_time"].to_numpy(dtype="int64"),
                                np.where(closes_now, close_end.reindex(_keys(
                                    L["rule"].to_numpy(dtype=object), L["last_episode_id"].to_numpy(dtype=object)))
                                    .fillna(NAT).to_numpy(dtype="int64"), NAT))
    gap = start_us[P] - end_at
    join = ended & open_ & (end_at != NAT) & (gap >= 0) & (gap <= window_us)
    join[~has_prev & pd.isna(latest_id)] = False
    run = pd.Series(~join).groupby(group, sort=False).cumsum().to_numpy()
    own = np.full(len(P), None, dtype=object)
    new_rows = np.flatnonzero(~join)
    own[new_rows] = incident_ids(rule[P[new_rows]], episode[P[new_rows]], start_us[P[new_rows]])
    # the incident of each new episode: its run's opener's, or the store's latest for run 0
    run_key = _keys(group, run)
    owner = pd.Series(own[new_rows], index=run_key[new_rows])
    inc_new = np.array(owner.reindex(run_key).to_numpy(dtype=object), dtype=object)  # writable
    group_latest = pd.Series(latest_id[~has_prev], index=group[~has_prev])  # a group's first row has none before
    inc_new[run == 0] = group_latest.reindex(group[run == 0]).to_numpy(dtype=object)
    episode_incident = pd.Series(inc_new, index=ek[P])
    k_inc = np.where(is_known, k_known, episode_incident.reindex(k_ek).to_numpy(dtype=object))

    # --- new incidents' base rows ---------------------------------------------------------------
    O = P[new_rows]
    k = len(O)

    def const(value, dtype=object) -> np.ndarray:
        return np.full(k, value, dtype=dtype)

    created = {
        "id": own[new_rows], "rule": rule[O], "subject_id": subject[O], "subject_kind": subject_kinds(subject[O]),
        "first_episode_id": episode[O], "last_episode_id": episode[O], "episodes": const(1, "int64"),
        "state": const("active"), "status": const("pushed"), "severity": severity[O], "peak_severity": severity[O],
        "first_time": start_us[O], "last_time": start_us[O], "end_time": const(NAT, "int64"), "lon": lon[O],
        "lat": lat[O], "district_adcode": const(None), "evidence": ev["evidence"].to_numpy(dtype=object)[O],
        "source": const(source), "quick_close": const(False, bool), "false_alarm": const(False, bool),
        "escalations": const(0, "int64"),
    }
    # the changed incidents, numbered 0..m-1 in order of first appearance, and each kept event's
    # incident by that number: the per-incident steps below are numpy on the numbers (groupby and
    # reindex on text ids made pandas 3's arrow strings at every step: ~a third of the plan)
    kc, changed_ids = pd.factorize(k_inc)
    changed_ids = np.asarray(changed_ids, dtype=object)
    changed = pd.Index(changed_ids, dtype=object)  # their hash table, built once
    m = len(changed_ids)
    # the changed incidents' rows, the store's then the new ones, column by column in numpy with a
    # hash lookup on objects (pandas' isin on the arrow-string id column and a frame concat over 22
    # mixed columns were ~12 % of the plan, the isin alone ~15 ms a batch)
    base_ids = base["id"].to_numpy(dtype=object)
    from_base = changed.get_indexer(base_ids) >= 0
    at = pd.Index(np.concatenate([base_ids[from_base], created["id"]]), dtype=object).get_indexer(changed_ids)

    def column(name: str) -> np.ndarray:
        mine = np.asarray(created[name])
        stored = base[name].to_numpy()[from_base]
        if mine.dtype != object:
            stored = stored.astype(mine.dtype)
        return np.concatenate([stored.astype(object) if mine.dtype == object else stored, mine])[at]

    rows = {name: column(name) for name in INCIDENT_COLUMNS}
    for name in ("episodes", "severity", "peak_severity", "escalations", *_TIMES):
        rows[name] = rows[name].astype("int64")

    def last_of(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per incident, the largest of `values` (increasing in batch order: the last) over the kept
        events in `mask`; -1 where it has none."""
        out_ = np.full(m, -1, dtype="int64")
        np.maximum.at(out_, kc[mask], values[mask])
        return out_

    # --- events' effects per incident (kept events, batch order) -------------------------------------
    k_sev, k_when, k_lon, k_lat = severity[K], when_us[K], lon[K], lat[K]
    k_at = np.arange(len(K))
    every = np.ones(len(K), dtype=bool)
    # upgrades: an event below its incident's running peak (the stored peak, or for an incident this
    # batch opened its opening level: its opening event is never one)
    running = pd.Series(k_sev).groupby(kc, sort=False).cummin()
    before = np.minimum(rows["peak_severity"][kc], running.groupby(kc, sort=False).shift(1)
                        .fillna(99).to_numpy(dtype="int64"))  # 99: above every level
    up = np.flatnonzero(k_sev < before)
    upgrades = _upgrades_frame(k_inc[up], k_when[up], k_sev[up], k_lon[up], k_lat[up])
    last_time = rows["last_time"].copy()
    np.maximum.at(last_time, kc, k_when)
    peak = rows["peak_severity"].copy()
    np.minimum.at(peak, kc, k_sev)
    evidence = ev["evidence"].to_numpy(dtype=object)[K[last_of(every, k_at)]]
    not_close = k_phase != "close"
    last_said = last_of(not_close, k_at)  # the level an incident is at: its last event but a close's
    last_placed = last_of(not_close & ~np.isnan(k_lon), k_at)

    # closes that end their incident: a new episode's always (its incident's last episode until it
    # ends); a stored episode's when it is its active incident's last (a stored episode's incident
    # row here is the store's)
    c_at = np.flatnonzero(k_phase == "close")
    c_code = kc[c_at]
    ends = ~is_known[c_at] | ((rows["state"][c_code] == "active")
                              & (rows["last_episode_id"][c_code] == episode[K[c_at]]))
    c_at, c_code = c_at[ends], c_code[ends]
    c_pos = K[c_at]
    c_inc = k_inc[c_at]
    quick = ((end_us[c_pos] - start_us[c_pos]) <= quick_us) & (rows["status"][c_code] == "pushed") \
        & ~restart_closed(ev["evidence"].to_numpy(dtype=object)[c_pos])

    # final rule state: the last join (active) or ending close (ended) of each incident (a join is
    # an open, an ending close a close: their positions are distinct)
    j_rows = np.flatnonzero(join)
    j_code = changed.get_indexer(inc_new[j_rows])
    change_pos = np.concatenate([P[j_rows], c_pos])
    change_end = np.concatenate([np.full(len(j_rows), NAT, "int64"), end_us[c_pos]])
    last_change = np.full(m, -1, dtype="int64")
    np.maximum.at(last_change, np.concatenate([j_code, c_code]), change_pos)
    moved = last_change >= 0
    by_pos = np.argsort(change_pos, kind="stable")
    final_end = change_end[by_pos][np.searchsorted(change_pos[by_pos], last_change[moved])]
    state = rows["state"].copy()
    end_time = rows["end_time"].copy()
    state[moved] = np.where(final_end == NAT, "active", "ended")
    end_time[moved] = final_end
    last_join = np.full(m, -1, dtype="int64")
    np.maximum.at(last_join, j_code, P[j_rows])
    last_episode = rows["last_episode_id"].copy()
    has_join = last_join >= 0
    last_episode[has_join] = episode[last_join[has_join]]
    was_quick = rows["quick_close"].astype(bool)
    now_quick = was_quick.copy()
    now_quick[c_code[quick]] = True

    out = dict(rows)
    out["last_time"] = last_time
    out["peak_severity"] = peak
    out["evidence"] = evidence
    said = last_said >= 0
    out["severity"] = np.where(said, k_sev[np.maximum(last_said, 0)], rows["severity"]).astype("int64")
    placed = last_placed >= 0
    for name, values in (("lon", k_lon), ("lat", k_lat)):
        out[name] = np.where(placed, values[np.maximum(last_placed, 0)], rows[name].astype("float64"))
    out["state"] = state
    out["end_time"] = end_time
    out["last_episode_id"] = last_episode
    out["episodes"] = rows["episodes"] + np.bincount(j_code, minlength=m)
    out["quick_close"] = now_quick
    for name in _TIMES:
        # a DatetimeArray: .to_numpy() of aware times is an object array of Timestamps (8 ms a
        # column of 5,000), which the store's writer would parse back
        out[name] = pd.DatetimeIndex(out[name].view("M8[us]"), tz="UTC").array
    out = _typed(pd.DataFrame({name: out[name] for name in INCIDENT_COLUMNS}))

    # --- transitions, in the order the loop writes them --------------------------------------------
    actor = ("rule:" + pd.Series(rule, dtype=object)).to_numpy(dtype=object)
    ep_json = json_text(episode)
    parts = []
    o = P[new_rows]
    parts.append(_transitions(own[new_rows], "opened", None, "active", actor[o], start_us[o], o, 0,
                              '{"episode_id": ' + ep_json[o] + ', "severity": ' + severity[o].astype(str).astype(object)
                              + "}"))
    jp = P[j_rows]
    parts.append(_transitions(inc_new[j_rows], "reopened", "ended", "active", actor[jp], start_us[jp], jp, 0,
                              '{"episode_id": ' + ep_json[jp] + ', "gap_s": ' + _floats(gap[j_rows] / 1e6) + "}"))
    u_at = np.flatnonzero(k_phase == "update")
    if len(u_at):
        # the level each update moved from: the incident's previous event but a close, else the store's
        said_at = np.flatnonzero(not_close)
        prior = pd.Series(k_sev[said_at]).groupby(kc[said_at], sort=False).shift(1).to_numpy(dtype="float64")
        prior = np.where(np.isnan(prior), rows["severity"][kc[said_at]], prior).astype("int64")
        severity_from = prior[np.searchsorted(said_at, u_at)]
        up = K[u_at]
        parts.append(_transitions(k_inc[u_at], "updated", None, None, actor[up], when_us[up], up,
                                  1, '{"episode_id": ' + ep_json[up] + ', "severity_from": '
                                  + severity_from.astype(str).astype(object)
                                  + ', "severity": ' + severity[up].astype(str).astype(object) + "}"))
    parts.append(_transitions(c_inc, "rule_closed", "active", "ended", actor[c_pos],
                              end_us[c_pos], c_pos, 1, '{"episode_id": ' + ep_json[c_pos] + ', "duration_s": '
                              + _floats((end_us[c_pos] - start_us[c_pos]) / 1e6) + "}"))
    transitions = pd.concat(parts, ignore_index=True).sort_values(["_pos", "_sub"], kind="stable")
    transitions = transitions.drop(columns=["_pos", "_sub"]).reset_index(drop=True)
    transitions["at"] = _times(transitions["at"].to_numpy(dtype="int64")).astype("datetime64[us, UTC]")

    applied_rows = pd.DataFrame({
        "rule": rule[K], "episode_start": pd.DatetimeIndex(start_us[K].view("M8[us]"), tz="UTC").array,
        "episode_id": episode[K], "phase": k_phase, "ordinal": ordinal[K], "digest": digest[K],
        "incident_id": k_inc,
        "seq": ev["seq"].to_numpy()[K] if "seq" in ev.columns else np.full(len(K), None, dtype=object),
    })
    counts = {"opened": len(new_rows), "updated": int(len(u_at)), "closed": int(len(c_at)),
              "reopened": int(len(j_rows)), "applied": int(len(K))}
    quick_order = c_inc[quick & ~was_quick[c_code]]
    return BatchPlan(applied=applied_rows, incidents=out, opened=list(own[new_rows]), transitions=transitions,
                     duplicates=int(n - len(K)), counts=counts, quick_closed=list(pd.unique(quick_order)),
                     reopened=list(inc_new[j_rows]), opened_severity=severity[P[new_rows]].astype("int64"),
                     upgrades=upgrades)


def _transitions(incident_ids, action, from_state, to_state, actors, at_us, pos, sub, details) -> pd.DataFrame:
    k = len(incident_ids)
    return pd.DataFrame({
        "incident_id": pd.Series(incident_ids, dtype=object), "recipient_id": pd.Series([None] * k, dtype=object),
        "action": action, "from_state": pd.Series([from_state] * k, dtype=object),
        "to_state": pd.Series([to_state] * k, dtype=object), "actor": pd.Series(actors, dtype=object),
        "at": np.asarray(at_us, dtype="int64"), "note": pd.Series([None] * k, dtype=object),
        "details": pd.Series(details, dtype=object), "_pos": np.asarray(pos, dtype="int64"), "_sub": sub,
    })
