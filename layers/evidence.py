"""An incident's evidence (the rule's own record) as an officer reads it: every key by its label
(layers/labels.py EVIDENCE_LABELS), codes by theirs, times in Beijing time to the second, durations
in their two largest units, numbers as read; the incident panel (layers/panels/incident.py) and the
printed record (reports/record.py) show the same rows."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from layers.details import MISSING, SCREEN_TIMEZONE
from layers.labels import EVIDENCE_CODED, EVIDENCE_DURATIONS, EVIDENCE_VALUES, evidence_label, value_label
from layers.style import text

EVIDENCE_MAX_CHARS = 600
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def _evidence_time(value) -> str:
    return pd.Timestamp(value).tz_convert(SCREEN_TIMEZONE).strftime("%Y-%m-%d %H:%M:%S")


_DURATION_UNITS = ((86_400, "天", "d"), (3_600, "小时", "h"), (60, "分", "min"), (1, "秒", "s"))


def duration_text(seconds: float, language: str) -> str:
    """A duration as an officer reads it: its two largest units (9小时, 1小时2分, 10分15秒; 9 h,
    1 h 2 min, 10 min 15 s), under ten seconds to a tenth."""
    seconds = float(seconds)
    if abs(seconds) < 10:
        figure = f"{seconds:.1f}".rstrip("0").rstrip(".")
        return f"{figure}秒" if language == "zh" else f"{figure} s"
    left, parts = round(abs(seconds)), []
    for size, zh, en in _DURATION_UNITS:
        count, left = divmod(left, size)
        if count or parts:
            parts.append(f"{count}{zh}" if language == "zh" else f"{count} {en}")
        if len(parts) == 2:
            break
    parts = [p for p in parts if not p.startswith("0")] or parts[:1]
    return ("-" if seconds < 0 else "") + ("" if language == "zh" else " ").join(parts)


def _evidence_value(key: str, value, language: str) -> str:
    """One evidence value as an officer reads it: codes by their label, times in the screen's
    timezone to the second, numbers rounded to what a reading carries, lists and nested records
    spelled out with their keys labelled."""
    if value is None or (isinstance(value, float) and value != value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return value_label("bool", str(bool(value)), language)
    if isinstance(value, dict):
        parts = [f"{evidence_label(k, language)}: {_evidence_value(k, v, language)}" for k, v in value.items()]
        return ("，" if language == "zh" else ", ").join(parts) or MISSING
    if isinstance(value, list):
        items = [_evidence_value(key, v, language) for v in value]
        if not items:
            return MISSING
        return (" / " if any(isinstance(v, dict) for v in value) else "、" if language == "zh" else ", ").join(items)
    if isinstance(value, str):
        if not value:
            return MISSING
        if key in EVIDENCE_CODED and value in EVIDENCE_VALUES:
            return text(EVIDENCE_VALUES[value], language)
        if _ISO_TIME.match(value):
            try:
                return _evidence_time(value)
            except ValueError:  # time-like text that is no time: as written
                return value
        return value
    if key in EVIDENCE_DURATIONS and isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
        return duration_text(value, language)
    if isinstance(value, (int, np.integer)):
        return _evidence_time(pd.Timestamp(int(value), unit="ms", tz="UTC")) \
            if key.endswith("_ms") and abs(int(value)) > 10 ** 11 else str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if key.endswith(("lon", "lat")):
            return f"{value:.6f}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


def evidence_rows(evidence: dict, rule: str | None, language: str) -> list[tuple[str, str]]:
    """The rule's record, each key by its label (layers/labels.py EVIDENCE_LABELS) and each value
    readable; a `<key>_local` copy of a time already shown goes (the screen shows local time anyway)."""
    evidence = evidence or {}
    rows = []
    for key, value in evidence.items():
        key = str(key)
        if key.endswith("_local") and key[:-len("_local")] in evidence:
            continue
        shown = _evidence_value(key, value, language)
        rows.append((evidence_label(key, language, rule),
                     shown if len(shown) <= EVIDENCE_MAX_CHARS else shown[:EVIDENCE_MAX_CHARS] + "…"))
    return rows
