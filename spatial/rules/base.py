"""The shape every rule shares, and what the engine hands it.

A rule module holds a frozen settings dataclass (thresholds with units in their names, the
regulation that sets each in its comment) and a rule class with

    name: str
    settings: <the frozen dataclass>
    initial_state() -> state
    step(state, batch: RuleBatch, world: RuleWorld) -> (state, list[Event])

`step` must be streaming-correct: feeding the same pings in one batch or one at a time gives
the same events. The engine guarantees each vehicle's pings reach the rules once, in strictly
increasing time, after cleaning; a rule keeps whatever it needs from earlier batches in its
state (per-vehicle arrays indexed by `RuleBatch.slot`, grown with `grow`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, Protocol

import numpy as np
import pandas as pd

from spatial.model import Event, World

SEVERITY_HIGHEST, SEVERITY_HIGH, SEVERITY_MEDIUM, SEVERITY_LOW = 1, 2, 3, 4

# Columns of RuleBatch.stops_opened / stops_closed (one row per stop): the vehicle's slot and id,
# the stop's episode id, its first ping's time, the time of the ping that confirmed it (opened),
# its last stopped ping's time (closed; -1 while open), its median location (lon/lat and
# EPSG:32651 x/y), and the waybill row / loaded flag at the confirming ping.
STOP_COLUMNS = ("slot", "vehicle_id", "episode_id", "start_ms", "confirmed_ms", "end_ms",
                "lon", "lat", "x", "y", "waybill", "loaded")


def setting(default, unit: str, source: str):
    """A threshold of a rule's frozen settings dataclass, with its unit and what sets it
    (a regulation, DOMAIN.md, or '(engineering default)'); `hazmap rules settings` lists them."""
    return field(default=default, metadata={"unit": unit, "source": source})


def settings_rows(rule_name: str, settings) -> list[dict]:
    """Every threshold of a settings dataclass as rows: rule, name, value, unit, source."""
    return [
        {"rule": rule_name, "name": f.name, "value": getattr(settings, f.name),
         "unit": f.metadata.get("unit", ""), "source": f.metadata.get("source", "")}
        for f in fields(settings)
    ]


def empty_stops() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if c in ("vehicle_id", "episode_id") else
                                      ("bool" if c == "loaded" else ("float64" if c in ("lon", "lat", "x", "y")
                                                                     else "int64")))
                         for c in STOP_COLUMNS})


@dataclass(frozen=True)
class RuleBatch:
    """Cleaned pings released to the rules in one engine step, sorted by (slot, epoch_ms).

    `slot` is the engine's stable integer for a vehicle: its row in `world.vehicles` for a
    registered truck, a number past those for an unregistered one. `x`, `y` are EPSG:32651
    metres. `speed_kmh` is the terminal's speed when it reported one, else derived from the
    previous released ping of the same vehicle (`speed_derived` marks those; NaN for a
    vehicle's very first ping). `waybill` is the row in `world.waybills` of the waybill active
    at that ping (-1 none) and `loaded` whether the truck carries its goods then.
    """

    slot: np.ndarray  # int64
    vehicle_id: np.ndarray  # object
    epoch_ms: np.ndarray  # int64, UTC
    lon: np.ndarray
    lat: np.ndarray
    x: np.ndarray
    y: np.ndarray
    speed_kmh: np.ndarray
    speed_derived: np.ndarray  # bool
    heading: np.ndarray
    alarm: np.ndarray  # uint32, JT/T 808 alarm bits
    status: np.ndarray  # uint32, JT/T 808 status bits
    waybill: np.ndarray  # int64
    loaded: np.ndarray  # bool
    # Stops the stop stage opened / closed in this step (see spatial/rules/stop.py for columns);
    # rules about stops (near a sensitive site, parking, washing) read these, not the pings.
    stops_opened: pd.DataFrame | None = None
    stops_closed: pd.DataFrame | None = None
    # The engine clock after this step (latest valid ping time seen, or the live wall clock when
    # the monitor advances it), -1 before any; rules about silence (offline) read it. The engine
    # also steps the rules with an empty batch when only the clock moved.
    clock_ms: int = -1

    def __len__(self) -> int:
        return len(self.slot)

    def take(self, index) -> "RuleBatch":
        """The pings at `index` (a boolean mask or integer positions), order kept; no stops."""
        return RuleBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self) if f.name in PING_COLUMNS})

    def with_columns(self, **columns) -> "RuleBatch":
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(columns)
        return RuleBatch(**values)

    @classmethod
    def empty(cls) -> "RuleBatch":
        f64 = np.empty(0, "float64")
        return cls(
            slot=np.empty(0, "int64"), vehicle_id=np.empty(0, object), epoch_ms=np.empty(0, "int64"),
            lon=f64, lat=f64, x=f64, y=f64, speed_kmh=f64, speed_derived=np.empty(0, bool), heading=f64,
            alarm=np.empty(0, "uint32"), status=np.empty(0, "uint32"), waybill=np.empty(0, "int64"),
            loaded=np.empty(0, bool),
        )


PING_COLUMNS = tuple(f.name for f in fields(RuleBatch) if f.name not in ("stops_opened", "stops_closed", "clock_ms"))


class RuleWorld:
    """The World as rules need it: metric geometry and lookup arrays, built once and cached.

    Rules build their own indexes with `cached(key, builder)` (e.g. route corridors as cell
    sets, site buffers in an STRtree) so nothing is built twice and nothing a rule does not use
    is built at all.
    """

    def __init__(self, world: World):
        self.world = world
        self._cache: dict[str, Any] = {}
        self.vehicle_ids = pd.Index(world.vehicles["id"].astype(object).to_numpy())
        if not self.vehicle_ids.is_unique:
            raise ValueError("world.vehicles has duplicate ids")

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]


class Rule(Protocol):
    name: str
    settings: Any

    def initial_state(self) -> Any: ...

    def step(self, state: Any, batch: RuleBatch, world: RuleWorld) -> tuple[Any, list[Event]]: ...


def grow(array: np.ndarray, size: int, fill) -> np.ndarray:
    """`array` extended with `fill` to at least `size` entries (state arrays indexed by slot)."""
    if len(array) >= size:
        return array
    out = np.full(max(size, 2 * len(array)), fill, dtype=array.dtype)
    out[: len(array)] = array
    return out


def timestamp(epoch_ms: int | np.integer) -> pd.Timestamp:
    return pd.Timestamp(int(epoch_ms), unit="ms", tz="UTC")


def iso_times(epoch_ms: np.ndarray, tz: str = "UTC") -> np.ndarray:
    """ISO-8601 strings with the zone's UTC offset ('2026-11-02T21:30:00.000+08:00'), vectorised:
    the one time format of every event's evidence."""
    utc = np.asarray(epoch_ms, "int64").astype("datetime64[ms]")
    if not len(utc):
        return np.empty(0, dtype=object)
    local = pd.DatetimeIndex(utc).tz_localize("UTC").tz_convert(tz).tz_localize(None).to_numpy("datetime64[ms]")
    offsets, which = np.unique((local - utc).astype("int64") // 60_000, return_inverse=True)  # minutes; a few
    suffix = np.array([f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in offsets.tolist()])
    return np.char.add(np.datetime_as_string(local, unit="ms").astype(str), suffix[which]).astype(object)


def iso_time(epoch_ms: int | np.integer, tz: str = "UTC") -> str:
    return str(iso_times(np.array([epoch_ms]), tz)[0])


def finite_or_none(value) -> float | None:
    """A number for an event's evidence: None, never NaN, so events compare equal."""
    value = float(value)
    return value if np.isfinite(value) else None


def previous_in_run(values: np.ndarray, slot: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """Each row's previous value for the same vehicle in a (slot, time)-sorted batch; a vehicle's
    first row takes `carried[slot]` (what the state kept from earlier batches)."""
    prev = np.empty_like(values)
    prev[1:] = values[:-1]
    starts = run_starts(slot)
    prev[starts] = carried[slot[starts]]
    return prev


_PHASE_ORDER = {"open": 0, "update": 1, "close": 2}


def _epoch_ms(value: pd.Timestamp | None) -> int:
    return -1 if value is None else int(pd.Timestamp(value).as_unit("ns").value // 1_000_000)


def event_order(event: Event) -> tuple:
    """The engine's order of events: by time (a close at its end, anything else at its start),
    then rule, subject, episode and phase."""
    time_ms = _epoch_ms(event.end) if event.phase == "close" and event.end is not None else _epoch_ms(event.start)
    return time_ms, event.rule, event.subject_id, event.episode_id, _PHASE_ORDER.get(event.phase, 3)


def sort_events(events: list[Event]) -> list[Event]:
    return sorted(events, key=event_order)


def episode_id(rule: str, subject_id: str, start_ms: int | np.integer) -> str:
    """Deterministic from what defines the episode, so batching cannot change it."""
    return f"{rule}:{subject_id}:{int(start_ms)}"


def make_event(
    rule: str, subject_id: str, phase: str, start_ms, end_ms, lon: float, lat: float, severity: int, evidence: dict,
    at_ms=None,
) -> Event:
    return Event(
        rule=rule,
        subject_id=str(subject_id),
        episode_id=episode_id(rule, subject_id, start_ms),
        phase=phase,  # type: ignore[arg-type]
        start=timestamp(start_ms),
        end=None if end_ms is None else timestamp(end_ms),
        lon=float(lon),
        lat=float(lat),
        severity=int(severity),
        evidence=evidence,
        at=None if at_ms is None else timestamp(at_ms),
    )


def run_starts(slot: np.ndarray) -> np.ndarray:
    """Positions where a new vehicle's run begins in a (slot, time)-sorted batch."""
    if not len(slot):
        return np.empty(0, "int64")
    return np.flatnonzero(np.r_[True, slot[1:] != slot[:-1]])
