"""The waybill stage: which waybill each cleaned ping runs on, whether the truck is loaded, and
what an empty truck still carries.

A waybill is in force from its actual departure when the waybill gives one, else its planned
departure, until the first of: its actual unloading (when given); the confirmation of the truck's
first stop within `site_match_m` of its unloading site (that stop's confirming ping is the last
one on the waybill); `after_arrival_s` after its planned arrival. A `cancelled` waybill is never in
force; the other statuses (planned, active, done) leave the timing to the times and the track.
When a vehicle's waybills overlap, the one that departed last (at or before the ping) is the one in
force. The truck is loaded before it departs, so a truck counts as loaded exactly while a waybill
is in force.

Cargo state (ADR 1.1.3.6 and 4.3.2.4, DOMAIN.md §3: an empty tank not cleaned since it unloaded is
still dangerous goods): *loaded* while a waybill is in force; a registered tank truck whose last
waybill has ended is *empty-uncleaned*, carrying that waybill's cargo as residue, until a washing
(dwell.wash_visits, the one definition the washing rules use too: a stop at an approved wash
station) confirmed at or after that end makes it *empty-clean*. `stop_residue` gives each newly
confirmed stop the waybill row of its residue (-1: loaded, clean, or not a tank).

An engine started mid-day is given a `FleetStart` (data/fleet_start.py builds it from the store):
the waybills already over before the start, with their end, and each truck's latest washing, so it
does not treat a waybill unloaded before it started as in force until planned arrival + 2 h, nor an
empty washed tank as uncleaned.

Vectorised: each vehicle's waybills are sorted by departure once (cached on the RuleWorld)
and every ping finds its candidate by a bisection over its vehicle's range. The unloading
ends and washings seen so far are carried in the state, so streaming gives the same answer as
one batch: a stop confirmed at time c only changes pings and stops after c, and those arrive
with or after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from spatial.crs import to_metric
from spatial.rules.base import RuleBatch, RuleWorld, grow, setting
from spatial.rules.dwell import (
    PLACE_MATCH_SOURCE,
    WASH_STATION_MATCH_M,
    first_at_or_after,
    is_tank,
    tank_slots,
    wash_visits,
)

NEVER_MS = np.iinfo(np.int64).max
_INDEX_KEY = "waybills.index"
_TANKS_KEY = "waybills.tanks"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class WaybillSettings:
    site_match_m: float = setting(
        300.0, "m", "(engineering default) a stop whose median lies this close to the unloading site unloads there")
    after_arrival_s: float = setting(
        7200.0, "s", "(engineering default) a waybill with no unloading stop seen ends this long after planned arrival")
    wash_station_match_m: float = setting(WASH_STATION_MATCH_M, "m", PLACE_MATCH_SOURCE)

    def __post_init__(self) -> None:
        if not self.site_match_m >= 0 or not self.after_arrival_s >= 0 or not self.wash_station_match_m > 0:
            raise ValueError("WaybillSettings: site_match_m and after_arrival_s must be >= 0, "
                             "wash_station_match_m > 0")


@dataclass(frozen=True)
class FleetStart:
    """What an engine started at `at_ms` is told of the fleet (data/fleet_start.py builds it from
    the store; ids the world does not know are ignored)."""

    at_ms: int
    ended_waybill_id: np.ndarray  # object: waybills over before at_ms …
    ended_ms: np.ndarray  # int64: … and when they ended (<= at_ms)
    washed_vehicle_id: np.ndarray  # object: trucks washed before at_ms …
    washed_ms: np.ndarray  # int64: … and their latest washing (<= at_ms)

    def __post_init__(self) -> None:
        for ids, ms, what in ((self.ended_waybill_id, self.ended_ms, "ended"),
                              (self.washed_vehicle_id, self.washed_ms, "washed")):
            if len(ids) != len(ms):
                raise ValueError(f"FleetStart: {len(ids)} {what} ids but {len(ms)} times")
            if len(ms) and int(np.max(ms)) > self.at_ms:
                raise ValueError(f"FleetStart: a {what} time lies after the start at_ms {self.at_ms}")

    @classmethod
    def empty(cls, at_ms: int) -> "FleetStart":
        none = np.empty(0, object)
        return cls(int(at_ms), none, np.empty(0, "int64"), none, np.empty(0, "int64"))


@dataclass(frozen=True)
class WaybillState:
    # per waybill row: the confirming time of the stop that unloaded it (NEVER_MS: none yet)
    unload_end_ms: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))
    # per slot: the latest washing confirmed in earlier batches (-1: none seen)
    washed_ms: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))
    # the washings of the latest batch, sorted by (slot, time): a stop of that batch sees only
    # those confirmed at or before it
    visit_slot: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))
    visit_ms: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))


def initial_state(world: RuleWorld | None = None, start: FleetStart | None = None) -> WaybillState:
    """A fresh state; with `start`, what the store knew when the engine started."""
    if start is None:
        return WaybillState()
    if world is None:
        raise ValueError("waybills.initial_state: a FleetStart needs the world")
    waybill_ids = pd.Index(world.world.waybills["id"].astype(object).to_numpy())
    unload_end = np.full(len(waybill_ids), NEVER_MS, "int64")
    at = waybill_ids.get_indexer(np.asarray(start.ended_waybill_id, object)) if len(waybill_ids) else \
        np.full(len(start.ended_waybill_id), -1)
    np.minimum.at(unload_end, at[at >= 0], np.asarray(start.ended_ms, "int64")[at >= 0])
    washed = np.full(len(world.vehicle_ids), -1, "int64")
    slot = world.vehicle_ids.get_indexer(np.asarray(start.washed_vehicle_id, object))
    np.maximum.at(washed, slot[slot >= 0], np.asarray(start.washed_ms, "int64")[slot >= 0])
    return WaybillState(unload_end_ms=unload_end, washed_ms=washed)


@dataclass(frozen=True)
class WaybillIndex:
    """World waybills of registered vehicles (cancelled ones left out), sorted by (vehicle slot,
    departure)."""

    row: np.ndarray  # position in world.waybills
    departure_ms: np.ndarray  # actual departure when known, else planned
    arrival_ms: np.ndarray  # planned
    unloaded_ms: np.ndarray  # actual unloading, NEVER_MS when unknown
    site_x: np.ndarray  # unloading site, EPSG:32651 (NaN when the site is not in world.entities)
    site_y: np.ndarray
    # the waybills of slot s are at positions offsets[s]:offsets[s + 1]
    offsets: np.ndarray


def _epoch_ms(values) -> np.ndarray:
    """tz-aware (or naive UTC) datetimes -> int64 epoch ms; NaT -> NEVER_MS."""
    times = pd.to_datetime(pd.Series(values), utc=True)
    ms = times.dt.as_unit("ms").astype("int64").to_numpy()
    return np.where(times.isna().to_numpy(), NEVER_MS, ms)


def build_index(world: RuleWorld) -> WaybillIndex:
    waybills = world.world.waybills
    n_slots = len(world.vehicle_ids)
    if len(waybills):
        slot = world.vehicle_ids.get_indexer(waybills["vehicle_id"].astype(object).to_numpy()).astype("int64")
        departure = _epoch_ms(waybills["planned_departure"])
        if "actual_departure" in waybills.columns:  # in force from the actual departure when known
            actual = _epoch_ms(waybills["actual_departure"])
            departure = np.where(actual != NEVER_MS, actual, departure)
        arrival = _epoch_ms(waybills["planned_arrival"])
        unloaded = _epoch_ms(waybills["actual_unloading"]) if "actual_unloading" in waybills.columns else \
            np.full(len(waybills), NEVER_MS, "int64")
        cancelled = waybills["status"].astype(object).to_numpy() == CANCELLED if "status" in waybills.columns else \
            np.zeros(len(waybills), bool)
    else:
        slot = departure = arrival = unloaded = np.empty(0, "int64")
        cancelled = np.empty(0, bool)
    # waybills of vehicles not in world.vehicles, with no departure, or cancelled are never in force
    usable = np.flatnonzero((slot >= 0) & (departure != NEVER_MS) & ~cancelled)
    order = usable[np.lexsort((departure[usable], slot[usable]))]
    entities = world.world.entities
    site_x = np.full(len(order), np.nan)
    site_y = np.full(len(order), np.nan)
    if len(order) and len(entities):
        at = pd.Index(entities["id"].astype(object).to_numpy()).get_indexer(
            waybills["unloading_site_id"].astype(object).to_numpy()[order])
        found = at >= 0
        points = entities.geometry.to_numpy()[at[found]]
        px, py = to_metric(shapely.get_x(points), shapely.get_y(points))
        site_x[found], site_y[found] = px, py
    return WaybillIndex(
        row=order.astype("int64"), departure_ms=departure[order], arrival_ms=arrival[order],
        unloaded_ms=unloaded[order], site_x=site_x, site_y=site_y,
        offsets=np.searchsorted(slot[order], np.arange(n_slots + 1), side="left").astype("int64"),
    )


def latest_departed(index: WaybillIndex, slot: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
    """Position in `index` of each (slot, time)'s waybill with the latest departure <= time;
    -1 when there is none (or the slot is an unregistered vehicle)."""
    slot = np.asarray(slot, "int64")
    t_ms = np.asarray(t_ms, "int64")
    registered = slot < len(index.offsets) - 1
    safe = np.where(registered, slot, 0)
    first = np.where(registered, index.offsets[safe], 0)
    lo = first.copy()
    hi = np.where(registered, index.offsets[np.minimum(safe + 1, len(index.offsets) - 1)], 0)
    # bisection on every ping at once: a handful of rounds (log2 of waybills per vehicle)
    departure = index.departure_ms
    while True:
        searching = lo < hi
        if not searching.any():
            break
        mid = (lo + hi) // 2
        after = np.zeros(len(mid), bool)
        after[searching] = departure[mid[searching]] > t_ms[searching]
        hi = np.where(searching & after, mid, hi)
        lo = np.where(searching & ~after, mid + 1, lo)
    return np.where(lo > first, lo - 1, -1)


def waybill_index(world: RuleWorld) -> WaybillIndex:
    """The world's waybill index, built once per world."""
    return world.cached(_INDEX_KEY, lambda: build_index(world))


def _limit_ms(index: WaybillIndex, settings: WaybillSettings) -> np.ndarray:
    """Per index position: the latest a waybill can stay in force (actual unloading, or planned
    arrival + after_arrival_s)."""
    after_ms = round(settings.after_arrival_s * 1000)
    timed_out = np.where(index.arrival_ms == NEVER_MS, NEVER_MS, index.arrival_ms + after_ms)
    return np.minimum(timed_out, index.unloaded_ms)


def annotate(
    state: WaybillState,
    batch: RuleBatch,
    world: RuleWorld,
    stops_opened: pd.DataFrame | None,
    settings: WaybillSettings = WaybillSettings(),
) -> tuple[WaybillState, RuleBatch]:
    """Record the unloading stops and washings among `stops_opened` (columns slot, confirmed_ms,
    x, y), then give every ping its waybill row (-1 none) and loaded flag."""
    index = waybill_index(world)
    unload_end = grow(state.unload_end_ms, len(world.world.waybills), NEVER_MS)
    limit_ms = _limit_ms(index, settings)

    # the previous batch's washings are now history
    washed = state.washed_ms
    if len(state.visit_slot):
        washed = grow(washed, int(state.visit_slot.max()) + 1, -1).copy()
        np.maximum.at(washed, state.visit_slot, state.visit_ms)
    visit_slot, visit_ms = np.empty(0, "int64"), np.empty(0, "int64")
    if stops_opened is not None and len(stops_opened):
        confirmed = stops_opened["confirmed_ms"].to_numpy("int64")
        j = latest_departed(index, stops_opened["slot"].to_numpy("int64"), confirmed)
        on = j >= 0
        j_on = j[on]
        near = np.hypot(stops_opened["x"].to_numpy("float64")[on] - index.site_x[j_on],
                        stops_opened["y"].to_numpy("float64")[on] - index.site_y[j_on]) <= settings.site_match_m
        # a stop after the waybill already timed out does not end it again
        ends = near & (confirmed[on] <= limit_ms[j_on])
        if ends.any():
            unload_end = unload_end.copy()
            np.minimum.at(unload_end, index.row[j_on[ends]], confirmed[on][ends])
        tanks = world.cached(_TANKS_KEY, lambda: tank_slots(world.world))
        visit_slot, visit_ms, _ = wash_visits(stops_opened, world, tanks, settings.wash_station_match_m, "waybills")
    state = WaybillState(unload_end_ms=unload_end, washed_ms=washed, visit_slot=visit_slot, visit_ms=visit_ms)

    if not len(batch):
        return state, batch
    j = latest_departed(index, batch.slot, batch.epoch_ms)
    on = j >= 0
    j_safe = np.where(on, j, 0)
    row = index.row[j_safe] if len(index.row) else np.zeros(len(j), "int64")
    end_ms = np.minimum(limit_ms[j_safe], unload_end[row]) if len(index.row) else np.zeros(len(j), "int64")
    active = on & (batch.epoch_ms <= end_ms)
    return state, batch.with_columns(waybill=np.where(active, row, -1).astype("int64"), loaded=active.copy())


def stop_residue(state: WaybillState, world: RuleWorld, stops: pd.DataFrame,
                 settings: WaybillSettings = WaybillSettings()) -> np.ndarray:
    """Per stop of the batch just annotated (columns slot, confirmed_ms): the waybill row whose
    cargo the truck still carries as residue at the stop's confirmation (empty-uncleaned), or -1
    (loaded, washed since, no waybill ended yet, or not a registered tank truck)."""
    n = len(stops)
    residue = np.full(n, -1, "int64")
    if not n:
        return residue
    index = waybill_index(world)
    slot = stops["slot"].to_numpy("int64")
    t = stops["confirmed_ms"].to_numpy("int64")
    tanks = world.cached(_TANKS_KEY, lambda: tank_slots(world.world))
    j = latest_departed(index, slot, t)
    ask = np.flatnonzero((j >= 0) & is_tank(tanks, slot))
    if not len(ask):
        return residue
    j = j[ask]
    row = index.row[j]
    end = np.minimum(_limit_ms(index, settings)[j], grow(state.unload_end_ms, len(world.world.waybills), NEVER_MS)[row])
    ended = t[ask] > end  # at the confirming ping the waybill is no longer in force
    # the latest washing at or before the stop: earlier batches, or this batch up to the stop
    washed = grow(state.washed_ms, int(slot.max()) + 1, -1)[slot[ask]]
    k = first_at_or_after(state.visit_slot, state.visit_ms, slot[ask], t[ask] + 1, strictly_before=True)
    washed = np.where(k >= 0, np.maximum(washed, state.visit_ms[np.maximum(k, 0)] if len(state.visit_ms) else -1),
                      washed)
    uncleaned = ended & (washed < end)
    residue[ask[uncleaned]] = row[uncleaned]
    return residue


def adjacent_waybills(world: RuleWorld, slot: np.ndarray, t_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (slot, time): the row in world.waybills of the vehicle's latest waybill departed at or
    before the time, and of its first departing after it (-1 none; cancelled ones never count)."""
    index = waybill_index(world)
    slot = np.asarray(slot, "int64")
    j = latest_departed(index, slot, t_ms)
    registered = (slot >= 0) & (slot < len(index.offsets) - 1)
    safe = np.where(registered, slot, 0)
    first = index.offsets[safe] if len(index.offsets) > 1 else np.zeros(len(slot), "int64")
    stop = index.offsets[np.minimum(safe + 1, len(index.offsets) - 1)] if len(index.offsets) > 1 else first
    following = np.where(j >= 0, j + 1, first)
    has_next = registered & (following < stop)
    previous = np.where(j >= 0, index.row[np.maximum(j, 0)] if len(index.row) else -1, -1)
    nxt = np.where(has_next, index.row[np.minimum(following, max(len(index.row) - 1, 0))] if len(index.row) else -1, -1)
    return previous.astype("int64"), nxt.astype("int64")


def fleet_start(state: WaybillState, world: RuleWorld, at_ms: int) -> FleetStart:
    """What a waybill state knows at `at_ms` as a FleetStart (the waybills its unloading stops
    ended, each truck's latest washing), for an engine started later (data/fleet_start.py
    replays the store's recent pings into a rules-less engine and hands this on)."""
    waybill_ids = world.world.waybills["id"].astype(object).to_numpy()
    ends = state.unload_end_ms[: len(waybill_ids)]
    ended = np.flatnonzero((ends != NEVER_MS) & (ends <= at_ms))
    washed = state.washed_ms
    if len(state.visit_slot):
        washed = grow(washed, int(state.visit_slot.max()) + 1, -1).copy()
        np.maximum.at(washed, state.visit_slot, np.where(state.visit_ms <= at_ms, state.visit_ms, -1))
    registered = np.flatnonzero((washed[: len(world.vehicle_ids)] >= 0) & (washed[: len(world.vehicle_ids)] <= at_ms))
    return FleetStart(int(at_ms), waybill_ids[ended], ends[ended].astype("int64"),
                      world.vehicle_ids.to_numpy()[registered].astype(object), washed[registered].astype("int64"))


def cargo_states(state: WaybillState, world: RuleWorld, slot: np.ndarray, t_ms: np.ndarray,
                 settings: WaybillSettings = WaybillSettings()) -> tuple[np.ndarray, np.ndarray]:
    """Per (vehicle slot, time), the truck's cargo state (module docstring) as `state` knows it,
    and the waybill row it comes from (-1: none): `loaded` while a waybill is in force;
    `empty_uncleaned` for a tank truck whose last waybill ended and that was not washed since (its
    residue is that waybill's cargo); `empty_clean` once washed, or a truck that is not a tank (packaged
    goods leave no residue); `unknown` before its first waybill (or an unregistered vehicle)."""
    slot = np.asarray(slot, "int64")
    t_ms = np.asarray(t_ms, "int64")
    states = np.full(len(slot), "unknown", dtype=object)
    rows = np.full(len(slot), -1, "int64")
    index = waybill_index(world)
    registered = np.flatnonzero((slot >= 0) & (slot < len(world.vehicle_ids)))
    if not len(registered) or not len(index.row):
        return states, rows
    j = latest_departed(index, slot[registered], t_ms[registered])
    on = registered[j >= 0]
    j = j[j >= 0]
    row = index.row[j]
    end = np.minimum(_limit_ms(index, settings)[j], grow(state.unload_end_ms, len(world.world.waybills), NEVER_MS)[row])
    loaded = t_ms[on] <= end
    residue = stop_residue(state, world, pd.DataFrame({"slot": slot[on], "confirmed_ms": t_ms[on]}), settings) >= 0
    states[on] = np.where(loaded, "loaded", np.where(residue, "empty_uncleaned", "empty_clean"))
    rows[on] = row
    return states, rows
