"""Warning levels as the Ministry of Emergency Management grades them (DOMAIN.md §10):
severity 1..4 = red 重大, orange 较大, yellow 一般, blue 低. The one place for their keys, names
and colours (the CLI, the KPIs and later the map's layers read them from here)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Level:
    severity: int  # spatial.model.Event.severity: 1 highest ... 4 lowest
    key: str
    name_zh: str
    name_en: str
    colour: str  # CSS hex, as the red/orange/yellow/blue warning signs are drawn


LEVELS: tuple[Level, ...] = (
    Level(1, "red", "重大", "major", "#e02020"),
    Level(2, "orange", "较大", "serious", "#ff8c1a"),
    Level(3, "yellow", "一般", "general", "#f5c400"),
    Level(4, "blue", "低", "low", "#1e78ff"),
)
BY_SEVERITY = {level.severity: level for level in LEVELS}
LEVEL_KEYS = tuple(level.key for level in LEVELS)
_KEYS = np.array(["", *LEVEL_KEYS], dtype=object)


def level_keys(severity) -> np.ndarray:
    """Level key per severity (vectorised); raises on a severity outside 1..4."""
    values = np.asarray(severity, dtype="int64")
    if values.size and (values.min() < 1 or values.max() > 4):
        raise ValueError(f"severity must be 1 (highest) ... 4, got {sorted(set(values[(values < 1) | (values > 4)].tolist()))}")
    return _KEYS[values]


def parse_level(text: str | int) -> int:
    """A level as an operator writes it (red, 1, 重大, major) -> severity 1..4."""
    wanted = str(text).strip().lower()
    for level in LEVELS:
        if wanted in (str(level.severity), level.key, level.name_zh, level.name_en):
            return level.severity
    raise ValueError(f"unknown level {text!r}: one of {', '.join(f'{l.key} ({l.severity}, {l.name_zh})' for l in LEVELS)}")
