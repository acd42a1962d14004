"""Small builders for incident tests: events of one subject, in minutes after T0."""

from __future__ import annotations

import pandas as pd

from spatial.model import Event

T0 = pd.Timestamp("2026-11-02T01:00:00Z")


def at(minutes: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


def ev(phase: str, start_min: float, end_min: float | None = None, *, rule="speeding", subject="VEH-0001",
       severity=2, evidence=None, lon=121.55, lat=29.87) -> Event:
    start = at(start_min)
    return Event(rule=rule, subject_id=subject, episode_id=f"{rule}:{subject}:{int(start.value // 1_000_000)}",
                 phase=phase, start=start, end=None if end_min is None else at(end_min), lon=lon, lat=lat,
                 severity=severity, evidence={} if evidence is None else evidence)


def episode(start_min: float, end_min: float | None, **kw) -> list[Event]:
    """An open and, when end_min is given, its close."""
    out = [ev("open", start_min, **kw)]
    if end_min is not None:
        out.append(ev("close", start_min, end_min, **kw))
    return out
