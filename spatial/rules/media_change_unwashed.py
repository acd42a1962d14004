"""Media change without washing: a tank truck's next waybill carries a different medium and the
truck visited no wash station since its previous waybill ended (DOMAIN.md §5).

When it fires: at the first ping of a registered tank truck (world.vehicles `body == "tank"`)
on a waybill row N different from the row P it last ran on (the `waybill` of its pings; pings on
no waybill in between are fine), when
* both waybills list goods and the *sets* of their UN numbers differ (a waybill without goods
  lines says nothing about the medium and is not judged), and
* no wash visit lies in between: a wash visit is a stop of that truck whose median at
  confirmation lies within `wash_station_match_m` of an approved wash station (exact EPSG:32651
  distance), and it counts when it was confirmed at or after the truck's last ping on P and
  before its first ping on N. "At or after" keeps a stop that both unloads P and washes (a
  plant with its own station: the unloading stop's confirming ping is P's last); "before" means
  a truck must be washed by the time its next waybill departs.
The incident spans the trip on N: it opens at that first ping on N (start, location) and closes
at the first later ping not on N (end = the last ping on N). The rule judges only changes it
watched: the state keeps, per vehicle slot, the last waybill row seen and the time of its last
ping on it, the latest wash visit, and the open incident; a truck first seen already on its next
waybill has no observed previous waybill, so nothing is said about it.

Severity: SEVERITY_HIGH (2): the residue of one medium may react with, or contaminate, the next.

Evidence: `previous_waybill_id`, `previous_un_numbers`, `previous_last_ping`, `waybill_id`,
`un_numbers`, `first_ping`, `last_wash` ({station_id, confirmed} of the latest wash visit seen
before, which then predates P's last ping; None if none), `wash_station_match_m`; a close adds
`last_ping_on_waybill`.

Vectorised per batch: previous waybill rows via `previous_in_run` over the pings on a waybill,
wash visits looked up by bisection; the only loops run once per waybill change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from spatial.model import Event
from spatial.rules.base import (
    SEVERITY_HIGH,
    RuleBatch,
    RuleWorld,
    grow,
    iso_time,
    make_event,
    previous_in_run,
    run_starts,
    setting,
)
from spatial.rules.dwell import (
    PLACE_MATCH_SOURCE,
    WASH_STATION_MATCH_M,
    WaybillCargo,
    check_positive,
    first_at_or_after,
    is_tank,
    stop_frame,
    tank_slots,
    wash_visits,
    waybill_cargo,
)

RULE_NAME = "media_change_unwashed"
_NEVER_SEEN = -2  # last_wb of a slot with no ping yet (-1 is "on no waybill")


@dataclass(frozen=True)
class MediaChangeUnwashedSettings:
    wash_station_match_m: float = setting(WASH_STATION_MATCH_M, "m", PLACE_MATCH_SOURCE)

    def __post_init__(self):
        check_positive("MediaChangeUnwashedSettings", self, ("wash_station_match_m",))


@dataclass(frozen=True)
class MediaChangeState:
    """Per vehicle slot (arrays grown with `grow`, never modified in place)."""

    last_wb: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, "int64"))  # last ping's row, -1, -2
    last_ms: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, "int64"))
    last_row: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, "int64"))  # last row >= 0 ran on
    last_row_ms: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, "int64"))  # last ping on it
    washed_ms: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, "int64"))  # latest wash visit
    washed_station: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, object))
    open_event: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, object))  # Event or None

    def sized(self, size: int) -> MediaChangeState:
        """A copy with room for `size` slots."""
        fills = {"last_wb": _NEVER_SEEN, "last_ms": -1, "last_row": -1, "last_row_ms": -1, "washed_ms": -1,
                 "washed_station": None, "open_event": None}
        return MediaChangeState(**{name: grow(getattr(self, name), size, fill).copy() for name, fill in fills.items()})


class MediaChangeUnwashedRule:
    """A tank truck starting a waybill of another medium with no wash visit since the last one."""

    name = RULE_NAME

    def __init__(self, settings: MediaChangeUnwashedSettings | None = None):
        self.settings = settings if settings is not None else MediaChangeUnwashedSettings()

    def initial_state(self) -> MediaChangeState:
        return MediaChangeState()

    def step(self, state: MediaChangeState, batch: RuleBatch, world: RuleWorld
             ) -> tuple[MediaChangeState, list[Event]]:
        tanks = world.cached(f"{RULE_NAME}:tanks", lambda: tank_slots(world.world))
        opened = stop_frame(batch.stops_opened, "stops_opened", RULE_NAME)
        ws_slot, ws_ms, ws_station = self._wash_visits(opened, world, tanks)
        tank_ping = is_tank(tanks, batch.slot) if len(batch) else np.zeros(0, bool)
        if not tank_ping.any() and not len(ws_slot):
            return state, []
        cargo: WaybillCargo = world.cached(f"{RULE_NAME}:cargo", lambda: waybill_cargo(world.world))

        s = np.ascontiguousarray(batch.slot[tank_ping], "int64")
        t = np.ascontiguousarray(batch.epoch_ms[tank_ping], "int64")
        wb = np.ascontiguousarray(batch.waybill[tank_ping], "int64")
        bad = (wb >= len(cargo.ids)) | (wb < -1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{RULE_NAME}: a ping of {batch.vehicle_id[tank_ping][i]!r} has waybill row {wb[i]}, "
                             f"world.waybills has {len(cargo.ids)} rows")
        size = int(max(s.max() if len(s) else -1, ws_slot.max() if len(ws_slot) else -1)) + 1
        old = state.sized(size)
        new = old.sized(size)
        keyed: list[tuple[int, str, int, Event]] = []

        if len(s):
            vehicle = batch.vehicle_id[tank_ping]
            lon, lat = batch.lon[tank_ping], batch.lat[tank_ping]
            # each on-waybill ping's previous waybill row and the time of the last ping on it
            on = np.flatnonzero(wb >= 0)
            prev_row = previous_in_run(wb[on], s[on], old.last_row)
            prev_row_ms = previous_in_run(t[on], s[on], old.last_row_ms)
            change = (prev_row >= 0) & (wb[on] != prev_row)
            at, prev, prev_ms = on[change], prev_row[change], prev_row_ms[change]
            differs = np.array([bool(cargo.un_numbers[p]) and bool(cargo.un_numbers[n])
                                and set(cargo.un_numbers[p]) != set(cargo.un_numbers[n])
                                for p, n in zip(prev, wb[at])], bool)  # once per waybill change
            at, prev, prev_ms = at[differs], prev[differs], prev_ms[differs]
            # the latest wash visit before the first ping on the new waybill
            visit = first_at_or_after(ws_slot, ws_ms, s[at], t[at], strictly_before=True)
            in_batch = visit >= 0
            wash_ms = np.where(in_batch, ws_ms[np.maximum(visit, 0)] if len(ws_ms) else -1, old.washed_ms[s[at]])
            wash_station = np.where(in_batch, ws_station[np.maximum(visit, 0)] if len(ws_ms) else None,
                                    old.washed_station[s[at]])
            unwashed = wash_ms < prev_ms
            at, prev, prev_ms, wash_ms, wash_station = (a[unwashed] for a in (at, prev, prev_ms, wash_ms, wash_station))

            # an incident ends at the first later ping off its waybill: where the row changes
            previous_wb = previous_in_run(wb, s, old.last_wb)
            changes = np.flatnonzero(wb != previous_wb)
            starts = run_starts(s)
            ends = np.r_[starts[1:], len(s)] - 1

            def first_change(from_pos: np.ndarray, side: str) -> np.ndarray:
                k = np.searchsorted(changes, from_pos, side=side)
                q = changes[np.minimum(k, len(changes) - 1)] if len(changes) else np.zeros(len(k), "int64")
                ok = (k < len(changes)) & (s[q] == s[from_pos]) if len(changes) else np.zeros(len(k), bool)
                return np.where(ok, q, -1)

            # incidents carried open from earlier batches
            carried = starts[~pd.isna(old.open_event[s[starts]])]
            q = first_change(carried, "left")
            for r, c in zip(carried[q >= 0], q[q >= 0]):  # one turn per incident closing
                slot_r = int(s[r])
                end = int(t[c - 1]) if c > r else int(old.last_ms[slot_r])
                keyed.append(self._close(old.open_event[slot_r], end))
                new.open_event[slot_r] = None
            # incidents opened now
            q = first_change(at, "right")
            for k, p in enumerate(at):  # one turn per incident
                slot_p, t_p = int(s[p]), int(t[p])
                n_row, p_row = int(wb[p]), int(prev[k])
                evidence = {
                    "previous_waybill_id": str(cargo.ids[p_row]),
                    "previous_un_numbers": list(cargo.un_numbers[p_row]),
                    "previous_last_ping": iso_time(prev_ms[k]),
                    "waybill_id": str(cargo.ids[n_row]), "un_numbers": list(cargo.un_numbers[n_row]),
                    "first_ping": iso_time(t_p),
                    "last_wash": None if wash_ms[k] < 0 else {"station_id": str(wash_station[k]),
                                                              "confirmed": iso_time(wash_ms[k])},
                    "wash_station_match_m": float(self.settings.wash_station_match_m),
                }
                opening = make_event(RULE_NAME, vehicle[p], "open", t_p, None, float(lon[p]), float(lat[p]),
                                     SEVERITY_HIGH, evidence)
                keyed.append((t_p, opening.subject_id, 0, opening))
                if q[k] >= 0:
                    keyed.append(self._close(opening, int(t[q[k] - 1])))
                else:
                    new.open_event[slot_p] = opening

            run_slot = s[starts]
            new.last_wb[run_slot], new.last_ms[run_slot] = wb[ends], t[ends]
            if len(on):
                on_last = on[np.r_[s[on][1:] != s[on][:-1], True]]
                new.last_row[s[on_last]], new.last_row_ms[s[on_last]] = wb[on_last], t[on_last]

        if len(ws_slot):  # sorted by (slot, time): each slot's last visit is its latest
            last = np.r_[ws_slot[1:] != ws_slot[:-1], True]
            new.washed_ms[ws_slot[last]], new.washed_station[ws_slot[last]] = ws_ms[last], ws_station[last]
        keyed.sort(key=lambda k: k[:3])
        return new, [k[3] for k in keyed]

    def _wash_visits(self, opened: pd.DataFrame | None, rw: RuleWorld, tanks: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tank trucks' stops confirmed at a wash station (dwell.wash_visits: the one definition
        of a washing, shared with the waybill stage's cargo state)."""
        return wash_visits(opened, rw, tanks, self.settings.wash_station_match_m, RULE_NAME)

    @staticmethod
    def _close(opening: Event, end_ms: int) -> tuple[int, str, int, Event]:
        evidence = {**opening.evidence, "last_ping_on_waybill": iso_time(end_ms)}
        closing = dataclasses.replace(opening, phase="close", end=pd.Timestamp(end_ms, unit="ms", tz="UTC"),
                                      evidence=evidence)
        return end_ms, closing.subject_id, 1, closing
