"""The waybill stage: which waybill each cleaned ping runs on, and whether the truck is loaded.

A waybill is active from its planned departure until the truck's first stop within
`site_match_m` of its unloading site is confirmed (that stop's confirming ping is the last one
on the waybill), or, when no such stop is seen, until `after_arrival_s` after its planned
arrival. When a vehicle's waybills overlap, the one that departed last (at or before the
ping) is the one in force. The waybills table carries no loading time and the truck is loaded
before it departs, so a truck counts as loaded exactly while a waybill is active.

Vectorised: each vehicle's waybills are sorted by departure once (cached on the RuleWorld)
and every ping finds its candidate by a bisection over its vehicle's range. The unloading
ends seen so far are carried in the state, so streaming gives the same answer as one batch:
a stop confirmed at time c only changes pings after c, and those arrive with or after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from spatial.crs import to_metric
from spatial.rules.base import RuleBatch, RuleWorld, grow, setting

NEVER_MS = np.iinfo(np.int64).max
_INDEX_KEY = "waybills.index"


@dataclass(frozen=True)
class WaybillSettings:
    site_match_m: float = setting(
        300.0, "m", "(engineering default) a stop whose median lies this close to the unloading site unloads there")
    after_arrival_s: float = setting(
        7200.0, "s", "(engineering default) a waybill with no unloading stop seen ends this long after planned arrival")

    def __post_init__(self) -> None:
        if not self.site_match_m >= 0 or not self.after_arrival_s >= 0:
            raise ValueError("site_match_m and after_arrival_s must be >= 0")


@dataclass(frozen=True)
class WaybillState:
    # per waybill row: the confirming time of the stop that unloaded it (NEVER_MS: none yet)
    unload_end_ms: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))


def initial_state() -> WaybillState:
    return WaybillState()


@dataclass(frozen=True)
class WaybillIndex:
    """World waybills of registered vehicles, sorted by (vehicle slot, planned departure)."""

    row: np.ndarray  # position in world.waybills
    departure_ms: np.ndarray
    arrival_ms: np.ndarray
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
        arrival = _epoch_ms(waybills["planned_arrival"])
    else:
        slot = departure = arrival = np.empty(0, "int64")
    # waybills of vehicles not in world.vehicles, or with no departure, can never be in force
    usable = np.flatnonzero((slot >= 0) & (departure != NEVER_MS))
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
        site_x=site_x, site_y=site_y,
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


def annotate(
    state: WaybillState,
    batch: RuleBatch,
    world: RuleWorld,
    stops_opened: pd.DataFrame | None,
    settings: WaybillSettings = WaybillSettings(),
) -> tuple[WaybillState, RuleBatch]:
    """Record the unloading stops among `stops_opened` (columns slot, confirmed_ms, x, y),
    then give every ping its waybill row (-1 none) and loaded flag."""
    index: WaybillIndex = world.cached(_INDEX_KEY, lambda: build_index(world))
    unload_end = grow(state.unload_end_ms, len(world.world.waybills), NEVER_MS)
    after_ms = round(settings.after_arrival_s * 1000)
    limit_ms = np.where(index.arrival_ms == NEVER_MS, NEVER_MS, index.arrival_ms + after_ms)

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
    state = WaybillState(unload_end_ms=unload_end)

    if not len(batch):
        return state, batch
    j = latest_departed(index, batch.slot, batch.epoch_ms)
    on = j >= 0
    j_safe = np.where(on, j, 0)
    row = index.row[j_safe] if len(index.row) else np.zeros(len(j), "int64")
    end_ms = np.minimum(limit_ms[j_safe], unload_end[row]) if len(index.row) else np.zeros(len(j), "int64")
    active = on & (batch.epoch_ms <= end_ms)
    return state, batch.with_columns(waybill=np.where(active, row, -1).astype("int64"), loaded=active.copy())
