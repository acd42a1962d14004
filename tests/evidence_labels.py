"""What an incident panel would show raw: evidence keys (nested ones included) without a label in
layers/labels.py EVIDENCE_LABELS, and coded values (EVIDENCE_CODED keys) without one in
EVIDENCE_VALUES. Called on the events each rule's tests raise, so a rule that writes a new key or
code fails there, not on the wall."""

from __future__ import annotations

import re

from layers.labels import EVIDENCE_CODED, EVIDENCE_LABELS, EVIDENCE_LABELS_BY_RULE, EVIDENCE_VALUES

_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def unlabelled(events) -> set[tuple[str, str]]:
    """{(rule, what)} for every key or code the events' evidence holds without a label; `events`
    are Event objects or a frame with `rule` and `evidence` columns."""
    if hasattr(events, "columns"):
        pairs = zip(events["rule"], events["evidence"])
    else:
        pairs = ((e.rule, e.evidence) for e in events)
    missing = set()

    def walk(rule, value, key=None):
        if isinstance(value, dict):
            for k, v in value.items():
                if k not in EVIDENCE_LABELS and (rule, k) not in EVIDENCE_LABELS_BY_RULE:
                    missing.add((rule, f"key {k}"))
                walk(rule, v, k)
        elif isinstance(value, list):
            for v in value:
                walk(rule, v, key)
        elif key in EVIDENCE_CODED and isinstance(value, str) and value not in EVIDENCE_VALUES \
                and not _TIME.match(value):
            missing.add((rule, f"{key} = {value}"))

    for rule, evidence in pairs:
        walk(rule, evidence or {})
    return missing


def raised_rules(events) -> set[str]:
    return set(events["rule"]) if hasattr(events, "columns") else {e.rule for e in events}
