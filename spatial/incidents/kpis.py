"""Handling KPIs over incidents and their recipients, pure (frames in, a frame out).

Per department | district | enterprise | rule | level | day (the incident's first day in
Asia/Shanghai): incidents, pushed (recipient rows), signed, disposed (closed counts as disposed),
handling rate (disposed / pushed), median and p90 (nearest rank: an observed wait) seconds from
push to sign and to disposal,
overdue (signed after the deadline, or unsigned past it at `now`), escalated, false alarms (误报,
a disposal outcome), and the noise figures: rule closes within minutes nobody signed
(quick_closes) and episodes that reopened an incident (reopens).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from spatial.incidents.levels import level_keys

GROUPINGS = ("department", "district", "enterprise", "rule", "level", "day")
KPI_COLUMNS = ["incidents", "pushed", "signed", "disposed", "handling_rate", "sign_median_s", "sign_p90_s",
               "dispose_median_s", "dispose_p90_s", "overdue", "escalated", "false_alarms", "quick_closes",
               "reopens"]
LOCAL_TZ = "Asia/Shanghai"


def kpis(incidents: pd.DataFrame, recipients: pd.DataFrame, *, by: str, now: pd.Timestamp) -> pd.DataFrame:
    """incidents: id, rule, severity, district_adcode, first_time, quick_close, false_alarm, episodes
    (and opened_severity: the level it counts at); recipients: incident_id, recipient_id,
    recipient_kind, district_adcode, state, pushed_at, sign_deadline, signed_at, disposed_at,
    outcome, escalated_at (and pushed_severity: the level the row counts at). One row per group,
    key column `by`."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    inc = incidents.rename(columns={"id": "incident_id"})
    if "opened_severity" in inc.columns:  # an incident's level: the one it opened at (as the rollup counts it)
        inc = inc.assign(severity=level_or(inc["opened_severity"], inc["severity"]))
    inc_key = _incident_key(inc, by) if by not in ("department", "enterprise") else None
    rec = recipients.merge(inc[["incident_id", "rule", "severity", "district_adcode", "first_time", "quick_close",
                                "episodes"]].rename(columns={"district_adcode": "incident_district"}),
                           on="incident_id", how="inner")
    if "pushed_severity" in rec.columns:  # a recipient row's level: the one it was pushed at
        rec["severity"] = level_or(rec["pushed_severity"], rec["severity"])
    if by in ("department", "enterprise"):
        rec = rec[rec["recipient_kind"] == by].copy()
        rec["key"] = rec["recipient_id"].astype(str)
    else:
        rec["key"] = _incident_key(rec.rename(columns={"district_adcode": "recipient_district",
                                                        "incident_district": "district_adcode"}), by)
    sign_s = (rec["signed_at"] - rec["pushed_at"]).dt.total_seconds()
    dispose_s = (rec["disposed_at"] - rec["pushed_at"]).dt.total_seconds()
    signed = rec["signed_at"].notna()
    late = (signed & (rec["signed_at"] > rec["sign_deadline"])) | (~signed & (rec["sign_deadline"] < now))
    work = pd.DataFrame({
        "key": rec["key"].to_numpy(),
        "pushed": 1,
        "signed": signed.to_numpy(dtype="int64"),
        "disposed": rec["disposed_at"].notna().to_numpy(dtype="int64"),
        "overdue": late.to_numpy(dtype="int64"),
        "escalated": rec["escalated_at"].notna().to_numpy(dtype="int64"),
        "false_alarms": (rec["outcome"] == "false_alarm").to_numpy(dtype="int64"),
        "sign_s": sign_s.to_numpy(dtype="float64"),
        "dispose_s": dispose_s.to_numpy(dtype="float64"),
    })
    groups = work.groupby("key", sort=True)
    out = groups[["pushed", "signed", "disposed", "overdue", "escalated", "false_alarms"]].sum()
    for column, name in (("sign_s", "sign"), ("dispose_s", "dispose")):
        for q, label in ((0.5, "median"), (0.9, "p90")):
            out[f"{name}_{label}_s"] = _nearest_rank(work[["key", column]], column, q).reindex(out.index)
    out["handling_rate"] = out["disposed"] / out["pushed"]
    # incident-level figures: each incident once per group
    if inc_key is not None:
        per_incident = pd.DataFrame({"key": inc_key, "incident_id": inc["incident_id"].to_numpy(),
                                     "quick_close": inc["quick_close"].to_numpy(dtype="int64"),
                                     "reopens": inc["episodes"].to_numpy(dtype="int64") - 1})
    else:
        per_incident = rec[["key", "incident_id", "quick_close", "episodes"]].drop_duplicates(["key", "incident_id"])
        per_incident = pd.DataFrame({"key": per_incident["key"].to_numpy(),
                                     "incident_id": per_incident["incident_id"].to_numpy(),
                                     "quick_close": per_incident["quick_close"].to_numpy(dtype="int64"),
                                     "reopens": per_incident["episodes"].to_numpy(dtype="int64") - 1})
    noise = per_incident.groupby("key", sort=True).agg(incidents=("incident_id", "size"),
                                                       quick_closes=("quick_close", "sum"), reopens=("reopens", "sum"))
    out = noise.join(out, how="outer")
    counts = ["incidents", "pushed", "signed", "disposed", "overdue", "escalated", "false_alarms", "quick_closes",
              "reopens"]
    out[counts] = out[counts].fillna(0).astype("int64")
    out.index.name = by
    return out.reset_index()[[by, *KPI_COLUMNS]]


def level_or(level, fallback) -> np.ndarray:
    """Levels as int64: `level` where known, else `fallback` (positionally; a row without its
    pushed or opened level, which migration 0012 fills for the rows before it)."""
    known = pd.to_numeric(pd.Series(np.asarray(level, dtype=object)), errors="coerce")
    return known.fillna(pd.Series(np.asarray(fallback, dtype="float64"))).to_numpy(dtype="int64")


def _nearest_rank(frame: pd.DataFrame, column: str, q: float) -> pd.Series:
    """Per key: the ceil(q·n)-th smallest observed value (the nearest-rank percentile)."""
    present = frame[frame[column].notna()].sort_values(["key", column], kind="stable")
    n = present.groupby("key")[column].transform("size").to_numpy()
    rank = present.groupby("key").cumcount().to_numpy() + 1
    hit = present[rank == np.ceil(q * n)]
    return pd.Series(hit[column].to_numpy(), index=hit["key"].to_numpy())


def _incident_key(frame: pd.DataFrame, by: str) -> np.ndarray:
    if by == "rule":
        return frame["rule"].astype(str).to_numpy()
    if by == "level":
        return level_keys(frame["severity"].to_numpy(dtype="int64"))
    if by == "district":
        return frame["district_adcode"].fillna("unknown").astype(str).to_numpy()
    if by == "day":
        times = pd.to_datetime(frame["first_time"], utc=True)
        return times.dt.tz_convert(LOCAL_TZ).dt.strftime("%Y-%m-%d").to_numpy()
    raise ValueError(by)


# --- the rollup: counters per (grouping, key, day, metric[, duration bin]) ----------------------
# Kept in the same transaction as each change (data/incidents.py), so a KPI table over a year
# reads a few thousand rows instead of every recipient. Durations go into log bins 5 % wide:
# the median and p90 read from them are within ±2.5 % of the exact figure.
BIN_BASE = 1.05
NO_BIN = -1
INCIDENT_GROUPINGS = ("district", "rule", "level", "day")
RECIPIENT_GROUPINGS = ("department", "enterprise")


def duration_bins(seconds) -> np.ndarray:
    s = np.maximum(np.asarray(seconds, dtype="float64"), 0.0)
    return np.floor(np.log1p(s) / np.log(BIN_BASE)).astype("int64")


def bin_seconds(bins) -> np.ndarray:
    """The middle of each bin (geometric), in seconds."""
    return np.power(BIN_BASE, np.asarray(bins, dtype="float64") + 0.5) - 1.0


QUARTER_HOUR_US = 900 * 1_000_000


def local_days(times) -> np.ndarray:
    """The local day (YYYY-MM-DD) of each time. Formatted once per distinct quarter hour, not per
    row (zone offsets are whole quarter hours, so a quarter hour lies within one local day)."""
    us = pd.to_datetime(pd.Series(times), utc=True).dt.as_unit("us").array.asi8
    quarters, at = np.unique(us // QUARTER_HOUR_US, return_inverse=True)
    days = pd.DatetimeIndex((quarters * QUARTER_HOUR_US).view("M8[us]"), tz="UTC").tz_convert(LOCAL_TZ) \
        .strftime("%Y-%m-%d").to_numpy(dtype=object)
    return days[at.reshape(-1)]


def count_distinct(columns: dict[str, np.ndarray], weights=None) -> dict[str, np.ndarray]:
    """The distinct rows of `columns` (equal-length arrays) with how many times each occurs (or the
    sum of its `weights`) as column "n". Each column factorised, the codes combined into one integer
    per row and counted: pandas' groupby over several text columns cost more than the rollup's data."""
    names = list(columns)
    combined = np.zeros(len(columns[names[0]]), dtype="int64")
    for name in names:
        codes, uniques = pd.factorize(np.asarray(columns[name]))
        # renumbered after each column: the combined code stays below the row count, never overflows
        combined = pd.factorize(combined * max(len(uniques), 1) + codes)[0]
    distinct, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    n = np.bincount(inverse.reshape(-1), weights=weights, minlength=len(distinct)).astype("int64")
    return {**{name: np.asarray(columns[name])[first] for name in names}, "n": n}


def rollup_increments(rows: pd.DataFrame, metric: str, *, per_recipient: bool, seconds=None,
                      incident_groupings: bool = True) -> pd.DataFrame:
    """Counter increments for `rows` (columns: rule, severity, district_adcode, first_time and, when
    per_recipient, recipient_kind, recipient_id): one per row and grouping it counts in (the
    incident's district, rule, level as it stands, first day; and its recipient's department or
    enterprise). With `seconds`, the metric's duration bins instead of a plain count."""
    columns = ["grouping", "key", "day", "metric", "bin", "n"]
    if not len(rows):
        return pd.DataFrame(columns=columns)
    n = len(rows)
    day = local_days(rows["first_time"])
    keys = {
        "district": _text(rows["district_adcode"], missing="unknown"),
        "rule": _text(rows["rule"]),
        "level": level_keys(rows["severity"].to_numpy(dtype="int64")),
        "day": day,
    } if incident_groupings else {}
    bins = np.full(n, NO_BIN, dtype="int64") if seconds is None else duration_bins(seconds)
    grouping = [np.full(n, g, dtype=object) for g in keys]
    key, days, bin_ = list(keys.values()), [day] * len(keys), [bins] * len(keys)
    if per_recipient:
        kind = _text(rows["recipient_kind"])
        mine = np.isin(kind, RECIPIENT_GROUPINGS)
        grouping.append(kind[mine])
        key.append(_text(rows["recipient_id"])[mine])
        days.append(day[mine])
        bin_.append(bins[mine])
    if not sum(len(g) for g in grouping):
        return pd.DataFrame(columns=columns)
    counted = count_distinct({"grouping": np.concatenate(grouping), "key": np.concatenate(key),
                              "day": np.concatenate(days), "bin": np.concatenate(bin_)})
    return pd.DataFrame({**{c: counted[c] for c in ("grouping", "key", "day")}, "metric": metric,
                         "bin": counted["bin"], "n": counted["n"]}, columns=columns)


def rollup_of_records(incidents: pd.DataFrame, recipients: pd.DataFrame) -> list[pd.DataFrame]:
    """The counters the apply, the handling calls and the escalation pass add up (data/incidents.py),
    recomputed from the records they leave — for a rebuild of the rollup (IncidentStore.rebuild_kpis),
    and the same figures of rows a retention removes. incidents: id, rule, severity, opened_severity,
    district_adcode, first_time, quick_close, episodes; recipients: incident_id, recipient_id,
    recipient_kind, state, pushed_at, pushed_severity, sign_deadline, signed_at, disposed_at, outcome,
    escalated_at, overdue_counted_severity. Each count keyed as it was when made: an incident at
    the level it opened at, a recipient row at the level it was pushed at (the unsigned-overdue count
    at the level the pass counted it under), every one by its incident's district, rule and first
    day, a recipient row by its department or enterprise too."""
    inc = incidents.set_index(incidents["id"].to_numpy(dtype=object))
    quick = inc["quick_close"].to_numpy(dtype=bool)
    reopens = np.maximum(inc["episodes"].to_numpy(dtype="int64") - 1, 0)
    info = pd.DataFrame({"rule": inc["rule"].to_numpy(dtype=object),
                         "district_adcode": inc["district_adcode"].to_numpy(dtype=object),
                         "first_time": inc["first_time"].to_numpy(), "quick_close": quick, "episodes": reopens + 1,
                         "severity": level_or(inc["opened_severity"], inc["severity"])}, index=inc.index)
    parts = [rollup_increments(info, "incidents", per_recipient=False),
             rollup_increments(info[quick], "quick_closes", per_recipient=False),
             rollup_increments(info.loc[info.index.repeat(reopens)], "reopens", per_recipient=False)]
    rec = recipients.reset_index(drop=True).join(info.drop(columns="severity"), on="incident_id", how="inner")
    rec["severity"] = level_or(rec["pushed_severity"], inc["severity"].reindex(rec["incident_id"]).to_numpy())
    pushed = rollup_increments(rec, "pushed", per_recipient=True)
    # per recipient its incidents and their noise, counted with its push (and as the noise happened)
    parts += [pushed, pushed[np.isin(pushed["grouping"].to_numpy(dtype=object), RECIPIENT_GROUPINGS)]
              .assign(metric="incidents")]
    rec_quick = rec["quick_close"].to_numpy(dtype=bool)
    rec_reopens = np.maximum(rec["episodes"].to_numpy(dtype="int64") - 1, 0)
    parts += [rollup_increments(rec[rec_quick], "quick_closes", per_recipient=True, incident_groupings=False),
              rollup_increments(rec.loc[rec.index.repeat(rec_reopens)], "reopens", per_recipient=True,
                                incident_groupings=False)]
    for done, stamp, waited in (("signed", "signed_at", "sign_s"), ("disposed", "disposed_at", "dispose_s")):
        acted = rec[rec[stamp].notna().to_numpy()]
        seconds = (acted[stamp] - acted["pushed_at"]).dt.total_seconds().to_numpy()
        parts += [rollup_increments(acted, done, per_recipient=True),
                  rollup_increments(acted, waited, per_recipient=True, seconds=seconds)]
    signed = rec["signed_at"].notna().to_numpy()
    late = signed & (rec["signed_at"] > rec["sign_deadline"]).to_numpy()
    false_alarm = rec["disposed_at"].notna().to_numpy() & (rec["outcome"] == "false_alarm").to_numpy()
    counted = ~signed & rec["overdue_counted_severity"].notna().to_numpy()
    parts += [rollup_increments(rec[late], "signed_late", per_recipient=True),
              rollup_increments(rec[false_alarm], "false_alarms", per_recipient=True),
              rollup_increments(rec[rec["escalated_at"].notna().to_numpy()], "escalated", per_recipient=True),
              rollup_increments(rec[counted].assign(severity=rec["overdue_counted_severity"][counted]
                                                    .to_numpy(dtype="int64")), "unsigned_overdue", per_recipient=True)]
    return parts


def _text(values, missing: str | None = None) -> np.ndarray:
    """Text as an object array of str (kept out of pandas' arrow strings: converting costs more here)."""
    out = np.asarray(values.to_numpy(dtype=object) if hasattr(values, "to_numpy") else values, dtype=object)
    if missing is not None:
        out = np.where(pd.isna(out), missing, out)
    return out.astype(str).astype(object)


# unsigned_overdue: recipients the escalation pass counted as unsigned past their deadline (moved
# back when one signs; signed_late then counts it if it signed after the deadline)
COUNTER_METRICS = ("incidents", "pushed", "signed", "disposed", "signed_late", "unsigned_overdue", "escalated",
                   "false_alarms", "quick_closes", "reopens")


def kpis_from_rollup(rollup: pd.DataFrame, unsigned_overdue: pd.DataFrame, *, by: str) -> pd.DataFrame:
    """The KPI table from rollup rows of one grouping (key, metric, bin, n) and the live correction
    of the `unsigned_overdue` counter at the query's `now` (key, n, n may be negative: see
    data/incident_kpis.py). Numpy on the few thousand rows the query returns (pandas' pivot and
    groupby cost more than the data here)."""
    keys = np.unique(np.concatenate([rollup["key"].to_numpy(dtype=object).astype(str),
                                     unsigned_overdue["key"].to_numpy(dtype=object).astype(str)]))
    k = np.searchsorted(keys, rollup["key"].to_numpy(dtype=object).astype(str))
    metric = rollup["metric"].to_numpy(dtype=object)
    bins = rollup["bin"].to_numpy(dtype="int64")
    n = rollup["n"].to_numpy(dtype="int64")
    plain = bins == NO_BIN
    data: dict[str, np.ndarray] = {}
    for name in COUNTER_METRICS:
        mask = plain & (metric == name)
        data[name] = np.bincount(k[mask], weights=n[mask], minlength=len(keys)).astype("int64")
    late_k = np.searchsorted(keys, unsigned_overdue["key"].to_numpy(dtype=object).astype(str))
    late_now = np.bincount(late_k, weights=unsigned_overdue["n"].to_numpy(dtype="int64"),
                           minlength=len(keys)).astype("int64")
    data["overdue"] = data.pop("signed_late") + data.pop("unsigned_overdue") + late_now
    with np.errstate(invalid="ignore", divide="ignore"):
        data["handling_rate"] = np.where(data["pushed"] > 0, data["disposed"] / np.maximum(data["pushed"], 1), np.nan)
    for name, label in (("sign_s", "sign"), ("dispose_s", "dispose")):
        mask = ~plain & (metric == name)
        for q, which in ((0.5, "median"), (0.9, "p90")):
            data[f"{label}_{which}_s"] = _quantile_from_bins(k[mask], bins[mask], n[mask], q, len(keys))
    return pd.DataFrame({by: keys, **data})[[by, *KPI_COLUMNS]]


def _quantile_from_bins(k: np.ndarray, bins: np.ndarray, n: np.ndarray, q: float, keys: int) -> np.ndarray:
    """Per key: the middle of the bin holding the nearest-rank q-th wait (NaN without any)."""
    out = np.full(keys, np.nan)
    if not len(k):
        return out
    order = np.lexsort((bins, k))
    k, bins, n = k[order], bins[order], n[order]
    total = np.bincount(k, weights=n, minlength=keys)
    starts = np.r_[0, np.flatnonzero(np.diff(k)) + 1]
    cum = np.cumsum(n)
    cum_within = cum - np.repeat(np.r_[0, cum[starts[1:] - 1]], np.diff(np.r_[starts, len(k)]))
    rank = np.ceil(q * total[k])  # nearest rank, as the exact figures
    reached = cum_within >= rank
    first = np.full(keys, -1)
    hit = np.flatnonzero(reached)
    # the first row of each key that reaches the rank (rows are sorted by key, then bin)
    keys_hit, index = np.unique(k[hit], return_index=True)
    first[keys_hit] = hit[index]
    found = first >= 0
    out[found] = bin_seconds(bins[first[found]])
    return out
