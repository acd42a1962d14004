"""The rule engine: cleaning, stops, waybills, then the rules, with state kept between batches.

One `Engine.step(pings)` runs, in order:

1. cleaning (spatial/rules/cleaning.py): drops bad pings by reason (lateness is judged per
   vehicle, so a lagging terminal or a blind-area upload is kept), holds the rest for the
   reorder window and releases them sorted by (vehicle slot, time);
2. the stop rule on the released pings; the stops it opened and closed become the
   `stops_opened` / `stops_closed` frames (STOP_COLUMNS) the stop-based rules read;
3. the waybill stage (spatial/rules/waybills.py): the stops just opened may end a waybill at
   its unloading site, then every ping gets its waybill row and loaded flag, and so does every
   stop (taken at its confirming ping);
4. the other rules on the annotated batch. The offline rule judges silence by arrival where the
   gateway stamped it (`PingBatch.arrival_ms`): it is given each ping at cleaning's silence
   instant and told the instant up to which every arrival is in (`cleaning.silence_horizon`),
   so a lagging terminal or a blind-area upload counts as talking. Without stamps it judges
   against the clock, treats every instant up to clock - reorder window as final, and is not
   given the pings that were already that far behind the clock when they arrived: for it, a
   truck was silent while its blind-area backlog was on the way.

Events come out sorted by `event_order` (time, rule, subject, phase). Every stage is
streaming-correct, so `run(pings)` equals any split of the same pings into `step`s followed
by `flush` (with any `advance` at the same places in the arrival order), event for event once
both are sorted by `event_order`.

A live caller (wall clock) also calls `advance(now_ms)` every few seconds: the clock moves to
the wall clock without pings, the held pings this makes due are released and the rules run,
so the offline rule sees time pass even when the whole feed is silent. A simulation or replay,
whose clock is the data's own time, never calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from spatial.model import Event, PingBatch, World
from spatial.rules import cleaning, waybills
from spatial.rules.base import STOP_COLUMNS, RuleBatch, RuleWorld, empty_stops, sort_events
from spatial.rules.base import event_order  # noqa: F401  (re-exported: callers sort events the engine way)
from spatial.rules.base import settings_rows as _rows
from spatial.rules.cleaning import CleaningSettings
from spatial.rules.fatigue import FatigueRule, FatigueSettings
from spatial.rules.illegal_parking import IllegalParkingRule, IllegalParkingSettings
from spatial.rules.media_change_unwashed import MediaChangeUnwashedRule, MediaChangeUnwashedSettings
from spatial.rules.mixed_loading import (
    MixedLoadingRule,
    MixedLoadingSettings,
    UnapprovedMediumRule,
    UnapprovedMediumSettings,
)
from spatial.rules.offline import OfflineRule, OfflineSettings
from spatial.rules.restricted_zone import RestrictedZoneRule, RestrictedZoneSettings
from spatial.rules.route_deviation import RouteDeviationRule, RouteDeviationSettings
from spatial.rules.speeding import SpeedingRule, SpeedingSettings
from spatial.rules.stop import StopRule, StopSettings
from spatial.rules.stop_near_sensitive_site import (
    StopNearSensitiveSiteRule,
    StopNearSensitiveSiteSettings,
)
from spatial.rules.suspected_washing import SuspectedWashingRule, SuspectedWashingSettings
from spatial.rules.terminal_alarm import TerminalAlarmRule, TerminalAlarmSettings
from spatial.rules.waybills import FleetStart, WaybillSettings



@dataclass(frozen=True)
class EngineSettings:
    """Every threshold of every stage and rule (the rule modules say what sets each)."""

    cleaning: CleaningSettings = field(default_factory=CleaningSettings)
    waybills: WaybillSettings = field(default_factory=WaybillSettings)
    stop: StopSettings = field(default_factory=StopSettings)
    route_deviation: RouteDeviationSettings = field(default_factory=RouteDeviationSettings)
    stop_near_sensitive_site: StopNearSensitiveSiteSettings = field(default_factory=StopNearSensitiveSiteSettings)
    speeding: SpeedingSettings = field(default_factory=SpeedingSettings)
    illegal_parking: IllegalParkingSettings = field(default_factory=IllegalParkingSettings)
    suspected_washing: SuspectedWashingSettings = field(default_factory=SuspectedWashingSettings)
    media_change_unwashed: MediaChangeUnwashedSettings = field(default_factory=MediaChangeUnwashedSettings)
    restricted_zone: RestrictedZoneSettings = field(default_factory=RestrictedZoneSettings)
    fatigue: FatigueSettings = field(default_factory=FatigueSettings)
    offline: OfflineSettings = field(default_factory=OfflineSettings)
    terminal_alarm: TerminalAlarmSettings = field(default_factory=TerminalAlarmSettings)
    mixed_loading: MixedLoadingSettings = field(default_factory=MixedLoadingSettings)
    unapproved_medium: UnapprovedMediumSettings = field(default_factory=UnapprovedMediumSettings)


def engine_settings_rows(settings: EngineSettings = EngineSettings()) -> list[dict]:
    """Every threshold as rows {rule, name, value, unit, source} (`hazmap rules settings`);
    `rule` is the stage or rule name (cleaning, waybills, stop, route_deviation, …)."""
    rows: list[dict] = []
    for f in fields(settings):
        rows.extend(_rows(f.name, getattr(settings, f.name)))
    return rows


def _ms(value: pd.Timestamp | None) -> int:
    return -1 if value is None else int(pd.Timestamp(value).as_unit("ns").value // 1_000_000)


class Engine:
    """Stateful: feed it batches of pings in arrival order; it returns the events they cause."""

    def __init__(self, world: World, settings: EngineSettings = EngineSettings(),
                 rules: tuple[str, ...] | None = None, start: FleetStart | None = None):
        """`rules` names the rules to run (None: all); cleaning, stops and waybills always run.
        `start`: what the store knew of the fleet when an engine starts mid-day (waybills already
        over, trucks washed; data/fleet_start.py); None: nothing before the first ping."""
        self.settings = settings
        self.world = RuleWorld(world)
        self.stop_rule = StopRule(settings.stop)
        # the rules that read the annotated batch (pings with waybills, and the stop frames)
        all_rules = (
            RouteDeviationRule(settings.route_deviation),
            SpeedingRule(settings.speeding),
            StopNearSensitiveSiteRule(settings.stop_near_sensitive_site),
            IllegalParkingRule(settings.illegal_parking),
            SuspectedWashingRule(settings.suspected_washing),
            MediaChangeUnwashedRule(settings.media_change_unwashed),
            RestrictedZoneRule(settings.restricted_zone),
            FatigueRule(settings.fatigue),
            OfflineRule(settings.offline, reorder_window_s=settings.cleaning.reorder_window_s),
            TerminalAlarmRule(settings.terminal_alarm),
            MixedLoadingRule(settings.mixed_loading),
            UnapprovedMediumRule(settings.unapproved_medium),
        )
        if rules is not None:
            unknown = set(rules) - {rule.name for rule in all_rules}
            if unknown:
                raise ValueError(f"unknown rules {sorted(unknown)}; the engine has {[r.name for r in all_rules]}")
        self.rules = tuple(rule for rule in all_rules if rules is None or rule.name in rules)
        self._cleaning = cleaning.initial_state()
        self._waybills = waybills.initial_state(self.world, start)
        self._stop_state = self.stop_rule.initial_state()
        self._rule_states: list[Any] = [rule.initial_state() for rule in self.rules]
        self._drop_counts = cleaning.zero_counts()
        # stops open now, by stop episode id: their STOP_COLUMNS row as it was at confirmation
        self._open_stops: dict[str, dict] = {}
        self._released = 0
        self._rules_clock_ms: int | None = None  # the clock the rules last saw
        self._rules_settled_ms: int | None = None  # and the offline rule's settled instant
        # one empty stop frame for every step without stops (building one costs more than a step)
        self._no_stops = empty_stops()

    # -- public ---------------------------------------------------------------------------

    @property
    def clock_ms(self) -> int | None:
        """The latest valid ping time seen (None before the first)."""
        clock = self._cleaning.clock_ms
        return None if clock == cleaning.NO_CLOCK else int(clock)

    @property
    def drop_counts(self) -> dict[str, int]:
        return dict(self._drop_counts)

    @property
    def held_count(self) -> int:
        """Pings waiting out the reorder window."""
        return self._cleaning.held_count

    @property
    def released_count(self) -> int:
        """Pings that passed cleaning and reached the rules so far."""
        return self._released

    def settings_rows(self) -> list[dict]:
        return engine_settings_rows(self.settings)

    def fleet_start(self, at_ms: int) -> FleetStart:
        """The waybills this engine saw unloaded and the trucks it saw washed, up to `at_ms`: the
        start state of an engine started later (data/fleet_start.py)."""
        return waybills.fleet_start(self._waybills, self.world, at_ms)

    def cargo_states(self, vehicle_ids, at_ms) -> tuple[np.ndarray, np.ndarray]:
        """Each truck's cargo state at its time (loaded | empty_uncleaned | empty_clean | unknown)
        and the waybill row it comes from, as this engine's waybill stage knows them
        (waybills.cargo_states)."""
        slot = self.world.vehicle_ids.get_indexer(pd.Index(np.asarray(vehicle_ids, object), dtype=object))
        return waybills.cargo_states(self._waybills, self.world, slot, at_ms, self.settings.waybills)

    def step(self, pings: PingBatch, now_ms: int | None = None) -> list[Event]:
        """Pings in arrival order; `now_ms` (live only) is the wall clock for the future test."""
        self._cleaning, released, counts, silence_ms = cleaning.clean(
            self._cleaning, pings, self.world, now_ms, self.settings.cleaning)
        return self._after_cleaning(released, counts, silence_ms)

    def advance(self, now_ms: int) -> list[Event]:
        """The wall clock moved without pings (a live monitor calls this every few seconds): the
        clock becomes max(clock, now_ms), the held pings this makes due are released and the
        rules run, so silence is judged even when no terminal reports. A simulation or replay (the
        clock is the data's time) does not call it."""
        self._cleaning, released, counts, silence_ms = cleaning.advance(
            self._cleaning, self.world, now_ms, self.settings.cleaning)
        return self._after_cleaning(released, counts, silence_ms)

    def flush(self) -> list[Event]:
        """Release every held ping (end of input) and return the events that causes."""
        self._cleaning, released, counts, silence_ms = cleaning.flush(
            self._cleaning, self.world, self.settings.cleaning)
        return self._after_cleaning(released, counts, silence_ms)

    def run(self, pings: PingBatch) -> list[Event]:
        """One batch, then flush: the events of a whole track file."""
        return sort_events(self.step(pings) + self.flush())

    # -- stages ---------------------------------------------------------------------------

    def _after_cleaning(self, batch: RuleBatch, counts: dict[str, int], silence_ms: np.ndarray) -> list[Event]:
        for reason, n in counts.items():
            self._drop_counts[reason] += n
        if not len(batch):
            # Nothing released, but the clock (or the arrivals) may have moved: offline cares.
            clock = self.clock_ms
            if clock is None or (clock == self._rules_clock_ms
                                 and self._settled_ms() == self._rules_settled_ms):
                return []
            empty = RuleBatch.empty().with_columns(stops_opened=self._no_stops, stops_closed=self._no_stops)
            return self._run_rules(empty, [], silence_ms)
        self._released += len(batch)
        self._stop_state, stop_events = self.stop_rule.step(self._stop_state, batch, self.world)
        opened, closed_events = self._stops_opened(stop_events)
        self._waybills, batch = waybills.annotate(self._waybills, batch, self.world, opened, self.settings.waybills)
        if len(opened):
            at = _ping_at_or_before(batch, opened["slot"].to_numpy("int64"), opened["confirmed_ms"].to_numpy("int64"))
            found = at >= 0
            opened["waybill"] = np.where(found, batch.waybill[np.maximum(at, 0)], -1).astype("int64")
            opened["loaded"] = found & batch.loaded[np.maximum(at, 0)]
            # an empty tank's last cargo until washed (cargo state; the stop-near-site rule reads it)
            opened["residue"] = waybills.stop_residue(self._waybills, self.world, opened, self.settings.waybills)
            for row in opened.to_dict("records"):
                self._open_stops[row["episode_id"]] = row
        closed = self._stops_closed(closed_events)
        batch = batch.with_columns(stops_opened=opened, stops_closed=closed)
        return self._run_rules(batch, list(stop_events), silence_ms)

    def _settled_ms(self) -> int | None:
        return cleaning.silence_horizon(self._cleaning, self.settings.cleaning)

    def _run_rules(self, batch: RuleBatch, events: list[Event], silence_ms: np.ndarray) -> list[Event]:
        self._rules_clock_ms = self.clock_ms
        self._rules_settled_ms = settled = self._settled_ms()
        batch = batch.with_columns(clock_ms=self._rules_clock_ms or -1)
        offline_batch = self._offline_batch(batch, silence_ms)
        for i, rule in enumerate(self.rules):
            if isinstance(rule, OfflineRule):
                self._rule_states[i], rule_events = rule.step(self._rule_states[i], offline_batch, self.world,
                                                              settled_ms=settled)
            else:
                self._rule_states[i], rule_events = rule.step(self._rule_states[i], batch, self.world)
            events.extend(rule_events)
        return sort_events(events)

    def _offline_batch(self, batch: RuleBatch, silence_ms: np.ndarray) -> RuleBatch:
        """The pings as the offline rule judges them: at their silence instants (arrivals where
        stamped), without the hidden ones, sorted by (slot, instant) (module docstring)."""
        given = silence_ms != cleaning.HIDDEN
        if not self._cleaning.stamped_seen:  # today's track files and simulations: the ping times
            return batch.take(given).with_columns(clock_ms=batch.clock_ms) if not given.all() else batch
        offline = next((s for r, s in zip(self.rules, self._rule_states) if isinstance(r, OfflineRule)), None)
        if offline is not None:  # an unstamped ping among stamped ones may fall before what is judged
            given &= silence_ms >= offline.horizon_ms
        at = np.flatnonzero(given)
        at = at[np.lexsort((silence_ms[at], batch.slot[at]))]
        return batch.take(at).with_columns(epoch_ms=silence_ms[at], clock_ms=batch.clock_ms)

    def _slots(self, vehicle_ids: np.ndarray) -> np.ndarray:
        self._cleaning, slot = cleaning.slots_for(self._cleaning, vehicle_ids, self.world)
        return slot

    def _stops_opened(self, stop_events: list[Event]) -> tuple[pd.DataFrame, list[Event]]:
        """The stop rule's open events as STOP_COLUMNS rows (waybill/loaded filled later), and
        its close events."""
        opens = [e for e in stop_events if e.phase == "open"]
        closes = [e for e in stop_events if e.phase == "close"]
        if not opens:
            return self._no_stops, closes
        ids = np.array([e.subject_id for e in opens], dtype=object)
        frame = pd.DataFrame({
            "slot": self._slots(ids),
            "vehicle_id": ids,
            "episode_id": np.array([e.episode_id for e in opens], dtype=object),
            "start_ms": np.array([_ms(e.start) for e in opens], "int64"),
            "confirmed_ms": np.array([int(e.evidence["confirmed_ms"]) for e in opens], "int64"),
            "end_ms": np.full(len(opens), -1, "int64"),
            **_medians(opens),
            "waybill": np.full(len(opens), -1, "int64"),
            "loaded": np.zeros(len(opens), bool),
        })
        return frame[list(STOP_COLUMNS)], closes

    def _stops_closed(self, closes: list[Event]) -> pd.DataFrame:
        if not closes:
            return self._no_stops
        opened_rows = []
        for e in closes:  # one per stop that ended in this step: few, not per ping
            opened = self._open_stops.pop(e.episode_id, None)
            if opened is None:
                raise RuntimeError(f"stop rule closed {e.episode_id!r}, which it never opened")
            opened_rows.append(opened)
        # the closed stop's median is over all its pings; waybill/loaded stay as confirmed.
        # Built column by column: a frame from row dicts plus astype costs more than the step.
        columns = {c: np.array([row[c] for row in opened_rows], dtype=_STOP_DTYPES[c]) for c in STOP_COLUMNS}
        columns["end_ms"] = np.array([_ms(e.end) for e in closes], "int64")
        columns.update(_medians(closes))
        return pd.DataFrame(columns)


_STOP_DTYPES = {"slot": "int64", "vehicle_id": object, "episode_id": object, "start_ms": "int64",
                "confirmed_ms": "int64", "end_ms": "int64", "lon": "float64", "lat": "float64", "x": "float64",
                "y": "float64", "waybill": "int64", "loaded": bool}


def _medians(stop_events: list[Event]) -> dict[str, np.ndarray]:
    """The stop rule's median location (evidence median_lon/lat/x/y) as STOP_COLUMNS arrays."""
    return {column: np.array([float(e.evidence[f"median_{column}"]) for e in stop_events], "float64")
            for column in ("lon", "lat", "x", "y")}


def _ping_at_or_before(batch: RuleBatch, slot: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
    """Position in the (slot, time)-sorted batch of each (slot, time)'s last ping at or before
    that time; -1 when the vehicle has none in the batch. Bisection over all queries at once."""
    lo = np.zeros(len(slot), "int64")
    hi = np.full(len(slot), len(batch), "int64")
    while True:
        searching = lo < hi
        if not searching.any():
            break
        mid = np.minimum((lo + hi) // 2, max(len(batch) - 1, 0))
        s_mid, t_mid = batch.slot[mid], batch.epoch_ms[mid]
        after = (s_mid > slot) | ((s_mid == slot) & (t_mid > t_ms))
        hi = np.where(searching & after, mid, hi)
        lo = np.where(searching & ~after, mid + 1, lo)
    at = lo - 1
    ok = at >= 0
    ok[ok] = batch.slot[at[ok]] == slot[ok]
    return np.where(ok, at, -1)
