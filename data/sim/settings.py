"""What the traffic simulator is asked to do: when, how fast, and which violations to stage.

One frozen settings object for the whole simulator (fleet, points, sender), built by the CLI
from the app's Settings and passed down; nothing here reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

# The demo world's waybills run on this day (data/demo/_world.py BASE_DAY, Asia/Shanghai).
DEMO_DAY = pd.Timestamp("2026-11-02 00:00", tz="Asia/Shanghai")

# The staged behaviours. Each staged row names the kind, the rule whose event it must raise
# (spatial/rules/<rule>.py `name`), or the cleaning drop reason it must be counted under instead
# (spatial/rules/cleaning.py DROP_REASONS) when it must be cleaned, not alerted.
TRUCK_STAGES = {
    "route_deviation": "route_deviation",
    "stop_near_school": "stop_near_sensitive_site",
    "speeding": "speeding",
    "residential_parking": "illegal_parking",
    "washing_by_water": "suspected_washing",
    "media_change_unwashed": "media_change_unwashed",
    "restricted_zone_closed_hour": "restricted_zone",
    "fatigue": "fatigue",
    "silent_terminal": "offline",
}
CLEANED_STAGES = {"teleport": "teleport", "duplicate": "duplicate"}
POINT_STAGES = {
    "point_level_1": "point_level",
    "point_level_2": "point_level",
    "point_stuck": "point_stuck",
    "point_silent": "point_interruption",
}

# Columns of a simulator's `staged` frame (one row per staged behaviour):
#   subject_id (VEH-/MP- id), kind (a key above), rule (the Event.rule expected, None for a
#   cleaned stage), drop_reason (the cleaning reason expected, None otherwise), count (how many
#   pings a cleaned stage injects, 1 otherwise), start / end (UTC Timestamps: when the staged
#   behaviour begins and ends in simulated time), lon / lat (where it begins; NaN for points'
#   own location not needed), note (free text for the duty officer reading a test failure).
STAGED_COLUMNS = ("subject_id", "kind", "rule", "drop_reason", "count", "start", "end", "lon", "lat", "note")


@dataclass(frozen=True)
class SimSettings:
    seed: int = 1
    start: pd.Timestamp = DEMO_DAY + pd.Timedelta(hours=6)  # simulated start (tz-aware)
    hours: float = 24.0  # simulated span the plan covers
    moving_interval_s: int = 30  # JT/T 794: at most 30 s between reports while moving
    parked_interval_s: int = 300  # DOMAIN.md §4: at least every 5 min when parked
    # staging: how many trucks get each kind (at least 1 each when enabled, scaled with the fleet)
    stage_share: float = 0.01  # of the fleet, per truck kind
    stage_kinds: tuple[str, ...] = tuple(TRUCK_STAGES) + tuple(CLEANED_STAGES)
    stage_margin_s: float = 1800.0  # staged behaviours start this long after `start`
    # points
    reading_interval_s: int = 60  # one reading a minute per point (DOMAIN.md §6)
    point_stage_share: float = 0.01  # of the points, per point kind
    point_stage_kinds: tuple[str, ...] = tuple(POINT_STAGES)
    stuck_after_s: float = 4 * 3600.0  # what the point_stuck rule waits (PointEngineSettings)
    interruption_after_s: float = 600.0  # what point_interruption waits
    offline_after_s: float = 1200.0  # what the offline rule waits (OfflineSettings)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError(f"SimSettings.start must be timezone-aware, got {self.start}")
        if not self.hours > 0:
            raise ValueError(f"SimSettings.hours must be > 0, got {self.hours}")
        unknown = set(self.stage_kinds) - set(TRUCK_STAGES) - set(CLEANED_STAGES)
        if unknown:
            raise ValueError(f"unknown truck stage kinds {sorted(unknown)}; known: "
                             f"{sorted(TRUCK_STAGES) + sorted(CLEANED_STAGES)}")
        unknown = set(self.point_stage_kinds) - set(POINT_STAGES)
        if unknown:
            raise ValueError(f"unknown point stage kinds {sorted(unknown)}; known: {sorted(POINT_STAGES)}")
        if self.moving_interval_s <= 0 or self.parked_interval_s < self.moving_interval_s:
            raise ValueError("moving_interval_s must be > 0 and parked_interval_s >= moving_interval_s")

    @property
    def start_ms(self) -> int:
        return int(self.start.value // 1_000_000)

    @property
    def end_ms(self) -> int:
        return self.start_ms + round(self.hours * 3_600_000)
