"""Handling KPIs over incidents and their recipients, pure (frames in, a frame out).

Per department | district | enterprise | rule | level | day (the incident's first day in
Asia/Shanghai): incidents, pushed (recipient rows), signed, disposed (closed counts as disposed),
handling rate (disposed / pushed), median and p90 seconds from push to sign and to disposal,
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
    """incidents: id, rule, severity, district_adcode, first_time, quick_close, false_alarm, episodes;
    recipients: incident_id, recipient_id, recipient_kind, district_adcode, state, pushed_at,
    sign_deadline, signed_at, disposed_at, outcome, escalated_at. One row per group, key column `by`."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    inc = incidents.rename(columns={"id": "incident_id"})
    inc_key = _incident_key(inc, by) if by not in ("department", "enterprise") else None
    rec = recipients.merge(inc[["incident_id", "rule", "severity", "district_adcode", "first_time", "quick_close",
                                "episodes"]].rename(columns={"district_adcode": "incident_district"}),
                           on="incident_id", how="inner")
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
    quantiles = groups[["sign_s", "dispose_s"]].quantile([0.5, 0.9]).unstack()
    out["sign_median_s"] = quantiles[("sign_s", 0.5)]
    out["sign_p90_s"] = quantiles[("sign_s", 0.9)]
    out["dispose_median_s"] = quantiles[("dispose_s", 0.5)]
    out["dispose_p90_s"] = quantiles[("dispose_s", 0.9)]
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
