"""The daily risk briefing's figures, pure (frames in, frames out).

Two steps, so the figures can be computed one day (one partition) at a time:

1. `day_aggregates(incidents, recipients, world)`: per local day (Asia/Shanghai, the day an
   incident was first seen) and key — rule, district, department, level, enterprise — the
   counts: incidents, pushed (recipient rows), signed, disposed, per level, gravity points.
   Only counts, never rates, so the rows of any set of days add up; each day's rows depend on
   that day's incidents alone (run it per partition and concatenate).
2. `briefing(aggregates, day, world, thresholds)`: the day's tables with handling rates
   (disposed / pushed, as spatial/incidents/kpis.py), the enterprises with the most and gravest
   incidents, trends against the mean day of the previous 7 and 30 days, and the attention
   lists — key attention (重点关注) and suggested attention (建议关注) — from `AttentionSettings`
   over the last `window_days`, each name with the reasons that put it there.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from spatial.incidents.levels import LEVEL_KEYS, level_keys

LOCAL_TZ = "Asia/Shanghai"
HISTORY_DAYS = 30  # the briefing reads the day and the 30 before it
KEYS = ("rule", "district", "department", "level", "enterprise")
COUNTS = ("incidents", "pushed", "signed", "disposed", *LEVEL_KEYS, "gravity")


@dataclass(frozen=True)
class AttentionSettings:
    """Thresholds of the attention lists (engineering defaults: no regulation fixes them; the
    duty team tunes them in settings, `HAZMAP_BRIEFING_ATTENTION`). Counted over the last
    `window_days` up to and including the briefing's day, per enterprise (an enterprise is an
    incident's enterprise recipient: the plant or the carrier it was routed to)."""

    window_days: int = 30
    # gravity points of one incident by level (red 重大 … blue 低)
    gravity_pts: tuple[float, float, float, float] = (8.0, 4.0, 2.0, 1.0)
    # key attention (重点关注): any one of these
    key_red_min: int = 1  # at least this many red incidents
    key_gravity_min: float = 24.0  # or this many gravity points
    key_incidents_min: int = 10  # or this many incidents
    # suggested attention (建议关注), when not key: any one of these
    suggested_orange_min: int = 1  # at least this many orange incidents
    suggested_gravity_min: float = 8.0
    suggested_incidents_min: int = 4
    suggested_handling_below: float = 0.9  # handling rate below this …
    suggested_handling_min_pushed: int = 3  # … over at least this many pushed rows
    top_enterprises: int = 10  # rows of the day's most-and-gravest table

    def __post_init__(self) -> None:
        if self.window_days < 1:
            raise ValueError(f"window_days must be ≥ 1, got {self.window_days}")
        if len(self.gravity_pts) != 4 or any(p < 0 for p in self.gravity_pts):
            raise ValueError(f"gravity_pts must be four numbers ≥ 0 (red … blue), got {self.gravity_pts}")
        if not 0 <= self.suggested_handling_below <= 1:
            raise ValueError(f"suggested_handling_below must be in [0, 1], got {self.suggested_handling_below}")

    @classmethod
    def from_settings(cls, overrides: dict | None) -> "AttentionSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides or {}) - known)
        if unknown:
            raise ValueError(f"unknown attention threshold(s) {', '.join(unknown)}: one of {', '.join(sorted(known))}")
        values = dict(overrides or {})
        if "gravity_pts" in values:
            values["gravity_pts"] = tuple(values["gravity_pts"])
        return cls(**values)


@dataclass
class Briefing:
    day: dt.date
    figures: dict[str, float | int]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    thresholds: AttentionSettings = field(default_factory=AttentionSettings)

    @property
    def key_attention(self) -> pd.DataFrame:
        return self.tables["key_attention"]

    @property
    def suggested_attention(self) -> pd.DataFrame:
        return self.tables["suggested_attention"]


FIGURE_LABELS: dict[str, tuple[str, str]] = {
    "incidents": ("当日告警", "incidents"),
    **{k: (f"{zh}告警", f"{k} incidents") for k, zh in zip(LEVEL_KEYS, ("重大", "较大", "一般", "低"))},
    "pushed": ("推送", "pushed"),
    "disposed": ("已处置", "disposed"),
    "handling_rate": ("处置率", "handling rate"),
    "mean_7d": ("前7日日均", "mean day, previous 7"),
    "mean_30d": ("前30日日均", "mean day, previous 30"),
    "key_attention": ("重点关注企业", "key attention"),
    "suggested_attention": ("建议关注企业", "suggested attention"),
}


def day_bounds(day: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of a local day in UTC."""
    start = pd.Timestamp(day).tz_localize(LOCAL_TZ)
    return start.tz_convert("UTC"), (start + pd.Timedelta(days=1)).tz_convert("UTC")


def day_aggregates(incidents: pd.DataFrame, recipients: pd.DataFrame, world=None, now: pd.Timestamp | None = None
                   ) -> pd.DataFrame:
    """One row per (day, key kind, key): COUNTS. incidents: id, rule, severity, district_adcode,
    first_time; recipients: incident_id, recipient_id, recipient_kind, signed_at, disposed_at."""
    inc = incidents
    if not len(inc):
        return pd.DataFrame(columns=["day", "by", "key", *COUNTS])
    day = pd.to_datetime(inc["first_time"], utc=True).dt.tz_convert(LOCAL_TZ).dt.strftime("%Y-%m-%d")
    severity = inc["severity"].astype("int64").to_numpy()
    level = level_keys(severity)
    base = pd.DataFrame({"incident_id": inc["id"].astype(str).to_numpy(), "day": day.to_numpy(),
                         "rule": inc["rule"].astype(str).to_numpy(),
                         "district": inc["district_adcode"].fillna("unknown").astype(str).to_numpy(),
                         "level": level, "severity": severity})
    rec = recipients.assign(incident_id=recipients["incident_id"].astype(str))
    rec = pd.DataFrame({"incident_id": rec["incident_id"].to_numpy(object),
                        "recipient_id": rec["recipient_id"].astype(str).to_numpy(object),
                        "recipient_kind": rec["recipient_kind"].astype(str).to_numpy(object),
                        "signed": rec["signed_at"].notna().to_numpy("int64"),
                        "disposed": rec["disposed_at"].notna().to_numpy("int64")})
    per_incident = rec.groupby("incident_id")[["signed", "disposed"]].agg(["size", "sum"])
    handled = pd.DataFrame({"pushed": per_incident[("signed", "size")], "signed": per_incident[("signed", "sum")],
                            "disposed": per_incident[("disposed", "sum")]})
    base = base.join(handled, on="incident_id")
    base[["pushed", "signed", "disposed"]] = base[["pushed", "signed", "disposed"]].fillna(0).astype("int64")
    onehot = pd.DataFrame((level[:, None] == np.array(LEVEL_KEYS)[None, :]).astype("int64"), columns=list(LEVEL_KEYS))
    base = pd.concat([base.reset_index(drop=True), onehot], axis=1)
    base["incidents"] = 1
    out = []
    for by in ("rule", "district", "level"):
        g = base.groupby(["day", by], sort=True)[["incidents", "pushed", "signed", "disposed", *LEVEL_KEYS]].sum()
        out.append(g.reset_index().rename(columns={by: "key"}).assign(by=by))
    # recipient-keyed: each row is one incident reaching one department or enterprise
    joined = rec.merge(base[["incident_id", "day", *LEVEL_KEYS]], on="incident_id", how="inner")
    for by in ("department", "enterprise"):
        part = joined[joined["recipient_kind"] == by].assign(incidents=1, pushed=1)
        g = part.groupby(["day", "recipient_id"], sort=True)[["incidents", "pushed", "signed", "disposed",
                                                                *LEVEL_KEYS]].sum()
        out.append(g.reset_index().rename(columns={"recipient_id": "key"}).assign(by=by))
    frame = pd.concat(out, ignore_index=True)
    frame["gravity"] = 0.0  # filled by briefing() from its thresholds (the counts stay plain)
    return frame[["day", "by", "key", *COUNTS]]


def _names(world, by: str) -> dict:
    if world is None:
        return {}
    if by == "district":
        return dict(zip(world.districts["adcode"].astype(str), world.districts["name"]))
    if by == "department" and len(world.departments):
        return dict(zip(world.departments["id"].astype(str), world.departments["name"]))
    if by == "enterprise":
        return dict(zip(world.entities["id"].astype(str), world.entities["name"]))
    return {}


def _with_rates(frame: pd.DataFrame, by: str, world, gravity: np.ndarray) -> pd.DataFrame:
    out = frame.copy()
    out["gravity"] = out[list(LEVEL_KEYS)].to_numpy("float64") @ gravity
    pushed = out["pushed"].to_numpy("float64")
    out["handling_rate"] = np.where(pushed > 0, out["disposed"].to_numpy("float64") / np.maximum(pushed, 1), np.nan)
    names = _names(world, by)
    out.insert(1, "name", out["key"].map(names).fillna(out["key"]) if names else out["key"])
    return out


def briefing(aggregates: pd.DataFrame, day: dt.date, world=None,
             thresholds: AttentionSettings = AttentionSettings()) -> Briefing:
    """The briefing of `day` from per-day aggregates covering at least the `HISTORY_DAYS` before it."""
    gravity = np.asarray(thresholds.gravity_pts, "float64")
    today = day.isoformat()
    agg = aggregates
    count_cols = ["incidents", "pushed", "signed", "disposed", *LEVEL_KEYS]

    def sums(rows: pd.DataFrame, by: str) -> pd.DataFrame:
        part = rows[rows["by"] == by]
        if not len(part):
            return _with_rates(pd.DataFrame(columns=["key", *count_cols]).astype({c: "int64" for c in count_cols}),
                               by, world, gravity)
        g = part.groupby("key", sort=True)[count_cols].sum().reset_index()
        return _with_rates(g, by, world, gravity)

    on_day = agg[agg["day"] == today]
    tables = {}
    for by in ("level", "rule", "district", "department"):
        t = sums(on_day, by).sort_values(["incidents", "key"], ascending=[False, True], kind="stable")
        tables[f"by_{by}"] = t.reset_index(drop=True)
    if len(tables["by_level"]):
        order = {k: i for i, k in enumerate(LEVEL_KEYS)}
        tables["by_level"] = tables["by_level"].sort_values("key", key=lambda s: s.map(order)).reset_index(drop=True)
    ent_day = sums(on_day, "enterprise")
    tables["top_enterprises"] = ent_day.sort_values(["gravity", "incidents", "key"], ascending=[False, False, True],
                                                    kind="stable").head(thresholds.top_enterprises).reset_index(drop=True)

    # trends: the day against the mean day of the previous 7 and 30 days (a day without incidents counts as 0)
    days = pd.to_datetime(agg["day"]).dt.date if len(agg) else pd.Series([], dtype=object)
    levels = agg[agg["by"] == "level"]
    level_days = days[levels.index] if len(levels) else pd.Series([], dtype=object)
    trend_rows = []
    for key in ("all", *sorted(set(agg.loc[agg["by"] == "rule", "key"]))):
        rows = levels if key == "all" else agg[(agg["by"] == "rule") & (agg["key"] == key)]
        rdays = level_days if key == "all" else days[rows.index]
        per_day = rows["incidents"].groupby(rdays.to_numpy()).sum() if len(rows) else pd.Series(dtype="int64")
        now_n = int(per_day.get(day, 0))
        means = {}
        for n in (7, 30):
            window = [day - dt.timedelta(days=i) for i in range(1, n + 1)]
            means[n] = float(per_day.reindex(window).fillna(0).sum()) / n
        trend_rows.append({"key": key, "incidents": now_n, "mean_7d": round(means[7], 3), "mean_30d": round(means[30], 3),
                           "vs_7d": round(now_n / means[7] - 1, 3) if means[7] else np.nan,
                           "vs_30d": round(now_n / means[30] - 1, 3) if means[30] else np.nan})
    tables["trends"] = pd.DataFrame(trend_rows, columns=["key", "incidents", "mean_7d", "mean_30d", "vs_7d", "vs_30d"])

    # attention lists over the window
    first = day - dt.timedelta(days=thresholds.window_days - 1)
    ent_rows = agg[(agg["by"] == "enterprise")]
    in_window = ent_rows[(days[ent_rows.index] >= first) & (days[ent_rows.index] <= day)] if len(ent_rows) else ent_rows
    window = sums(in_window, "enterprise")
    th = thresholds
    key_reasons, sug_reasons = [], []
    for row in window.itertuples(index=False):  # per enterprise (hundreds), not per incident
        k = []
        if row.red >= th.key_red_min:
            k.append(f"重大告警 {row.red} 起 (red incidents ≥ {th.key_red_min})")
        if row.gravity >= th.key_gravity_min:
            k.append(f"风险积分 {row.gravity:g} (gravity ≥ {th.key_gravity_min:g})")
        if row.incidents >= th.key_incidents_min:
            k.append(f"告警 {row.incidents} 起 (incidents ≥ {th.key_incidents_min})")
        s = []
        if not k:
            if row.orange >= th.suggested_orange_min:
                s.append(f"较大告警 {row.orange} 起 (orange incidents ≥ {th.suggested_orange_min})")
            if row.gravity >= th.suggested_gravity_min:
                s.append(f"风险积分 {row.gravity:g} (gravity ≥ {th.suggested_gravity_min:g})")
            if row.incidents >= th.suggested_incidents_min:
                s.append(f"告警 {row.incidents} 起 (incidents ≥ {th.suggested_incidents_min})")
            if row.pushed >= th.suggested_handling_min_pushed and row.handling_rate < th.suggested_handling_below:
                s.append(f"处置率 {row.handling_rate:.0%} (handling rate < {th.suggested_handling_below:.0%})")
        key_reasons.append("; ".join(k))
        sug_reasons.append("; ".join(s))
    window["reason"] = ""
    columns = ["key", "name", "incidents", *LEVEL_KEYS, "gravity", "handling_rate", "reason"]
    key_mask = np.array([bool(r) for r in key_reasons], bool)
    sug_mask = np.array([bool(r) for r in sug_reasons], bool)
    key_table = window.assign(reason=key_reasons)[key_mask] if len(window) else window
    sug_table = window.assign(reason=sug_reasons)[sug_mask] if len(window) else window
    order = dict(by=["gravity", "incidents", "key"], ascending=[False, False, True], kind="stable")
    tables["key_attention"] = key_table.sort_values(**order)[columns].reset_index(drop=True)
    tables["suggested_attention"] = sug_table.sort_values(**order)[columns].reset_index(drop=True)

    lv = tables["by_level"].set_index("key")["incidents"] if len(tables["by_level"]) else pd.Series(dtype="int64")
    totals = tables["by_level"][["incidents", "pushed", "disposed"]].sum()
    trend_all = tables["trends"].iloc[0]
    figures: dict[str, float | int] = {
        "incidents": int(totals["incidents"]),
        **{k: int(lv.get(k, 0)) for k in LEVEL_KEYS},
        "pushed": int(totals["pushed"]),
        "disposed": int(totals["disposed"]),
        "handling_rate": round(float(totals["disposed"]) / totals["pushed"], 4) if totals["pushed"] else 0.0,
        "mean_7d": float(trend_all["mean_7d"]),
        "mean_30d": float(trend_all["mean_30d"]),
        "key_attention": int(len(tables["key_attention"])),
        "suggested_attention": int(len(tables["suggested_attention"])),
    }
    return Briefing(day=day, figures=figures, tables=tables, thresholds=thresholds)
