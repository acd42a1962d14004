"""Track cleaning, the engine's first stage (in the spirit of Traccar's FilterHandler).

Pings arrive in row order. Each is dropped, and counted by reason, when it is

- ``invalid_fix``: the terminal says its fix is not valid (JT/T 808 status bit 1 clear);
- ``zero_position``: exactly (0, 0), what terminals send without a fix;
- ``out_of_range``: not a lon/lat at all (NaN, |lat| > 90, |lon| > 180) or outside the service area;
- ``future``: later than the live wall clock (`now_ms`, when given) by more than `max_future_s`;
- ``duplicate``: the same vehicle and time as a ping already seen (within `duplicate_memory_s`
  of the clock);
- ``out_of_order``: not later than its own vehicle's frontier: the latest time among that
  vehicle's earlier arrivals that were at least `reorder_window_s` behind the clock when it came;
- ``teleport``: implying a speed above `max_plausible_kmh` from the vehicle's previous kept ping.

The clock is the running maximum of the times of the pings that passed the first four tests,
taken in arrival order (`advance` also moves it to the live wall clock). A ping is *held* until
its time is at least `reorder_window_s` behind the clock, then released to the rules with the
other due pings, sorted by (vehicle, time); `flush` releases everything (the end of a file).

Lateness is judged per vehicle, so a terminal whose clock lags the fleet, or a JT/T 808 0x0704
blind-area upload arriving minutes late, is kept: it is in order for its own vehicle. Formally
p is late when t_p <= F_v(p), the largest t_q over the pings q of p's vehicle that arrived
before p with t_q <= C(p) - W (C(p): the clock at p's arrival, W: the window). Why this holds:

- every ping released before p's step had t_q <= C(step end) - W <= C(p) - W, so F_v(p) is at
  least every released time of v and an accepted p is strictly later than all of them; pings
  released in one step are sorted together. The rules see each vehicle's kept pings once, in
  strictly increasing time (a repeat of a time beyond the duplicate memory is out of order);
- F depends only on the arrival order, not on where batches are cut: pings released in earlier
  steps count through the carried per-slot `frontier_ms`, held ones as arrivals before the
  batch whose eligibility is computed like the batch's own, and a ping dropped as late or
  duplicate never raises the max (its time is at most a counted one). So one batch, single
  pings and any chunking release the same pings with the same derived speeds and count the
  same drops.

Each release also gives, per released ping, the instant the offline rule judges silence by
(`silence_ms`, spatial/rules/offline.py):

- where the gateway stamped the report's arrival (`PingBatch.arrival_ms`), its arrival: the
  running maximum of the stamps in arrival order (so arrival never goes backwards), then per
  vehicle the running maximum along its released pings (so each vehicle's instants increase).
  A lagging terminal or a blind-area upload arrives now and shows the truck is talking; its old
  ping times do not matter to silence;
- without a stamp (track files, the simulator's direct path), the ping's own time, except for a
  ping already more than the window behind the clock when it arrived (`HIDDEN`: it is released at
  once into instants the rest of the fleet has settled, and the offline rule, judging silence
  against the clock, treats those as final).

`silence_horizon` is the latest instant at which every ping still to reach the rules is later:
the clock minus the window for unstamped pings, and for stamped ones the arrival clock (a ping
arriving later is stamped at least there) and the earliest arrival still held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numba import njit

from spatial.crs import to_metric
from spatial.model import PingBatch
from spatial.rules.base import RuleBatch, RuleWorld, grow, setting

HIDDEN = -1  # silence_ms of a ping the offline rule is not given
DROP_REASONS = ("invalid_fix", "zero_position", "out_of_range", "future", "duplicate", "out_of_order", "teleport")
NO_CLOCK = np.iinfo(np.int64).min
_MS_PER_S = 1000


@dataclass(frozen=True)
class CleaningSettings:
    # Traccar's filter.* options play the same roles; the values are hazmap's own.
    reorder_window_s: float = setting(
        30.0, "s", "(engineering default) one reporting interval while moving (JT/T 794: ≤ 30 s)")
    max_future_s: float = setting(
        300.0, "s", "(engineering default) terminal clock skew tolerated against the live wall clock")
    max_plausible_kmh: float = setting(
        250.0, "km/h", "(engineering default) far above any truck; a faster implied jump is a bad fix")
    duplicate_memory_s: float = setting(
        600.0, "s", "(engineering default) how far behind the clock a repeated (vehicle, time) is still "
                    "recognised as a duplicate rather than counted out of order; at least the reorder window")
    service_min_lon: float = setting(70.0, "deg", "(engineering default) China with a margin, as the exchange format")
    service_max_lon: float = setting(140.0, "deg", "(engineering default) China with a margin, as the exchange format")
    service_min_lat: float = setting(0.0, "deg", "(engineering default) China with a margin, as the exchange format")
    service_max_lat: float = setting(56.0, "deg", "(engineering default) China with a margin, as the exchange format")

    def __post_init__(self) -> None:
        if not self.reorder_window_s >= 0:
            raise ValueError(f"reorder_window_s must be >= 0, got {self.reorder_window_s}")
        if not self.duplicate_memory_s >= self.reorder_window_s:
            raise ValueError("duplicate_memory_s must be at least reorder_window_s "
                             f"({self.duplicate_memory_s} < {self.reorder_window_s})")
        if not self.max_plausible_kmh > 0 or not self.max_future_s >= 0:
            raise ValueError("max_plausible_kmh must be > 0 and max_future_s >= 0")
        if not (self.service_min_lon < self.service_max_lon and self.service_min_lat < self.service_max_lat):
            raise ValueError("the service area box is empty")

    @property
    def reorder_window_ms(self) -> int:
        return round(self.reorder_window_s * _MS_PER_S)

    @property
    def duplicate_memory_ms(self) -> int:
        return round(self.duplicate_memory_s * _MS_PER_S)


# The columns a held ping keeps until release (everything the released batch needs but x/y).
# `behind_clock`: the ping was more than the window behind the clock when it arrived (so it is
# due at once: a held ping never is). `arrival_ms`: its effective arrival, -1 unstamped.
_HELD_COLUMNS = ("slot", "vehicle_id", "epoch_ms", "lon", "lat", "speed_kmh", "heading", "alarm", "status",
                 "behind_clock", "arrival_ms")
_HELD_DTYPES = {"slot": "int64", "vehicle_id": object, "epoch_ms": "int64", "lon": "float64", "lat": "float64",
                "speed_kmh": "float64", "heading": "float64", "alarm": "uint32", "status": "uint32",
                "behind_clock": bool, "arrival_ms": "int64"}


def _empty_held() -> dict[str, np.ndarray]:
    return {c: np.empty(0, _HELD_DTYPES[c]) for c in _HELD_COLUMNS}


@dataclass(frozen=True)
class CleaningState:
    """Everything cleaning carries between batches; never mutated (each call returns a new one)."""

    clock_ms: int = NO_CLOCK
    # unregistered vehicles, in order of first arrival: slot = len(world.vehicles) + position
    extra_ids: pd.Index = field(default_factory=lambda: pd.Index([], dtype=object))
    # (slot, time) of the pings seen no more than duplicate_memory_s behind the clock
    seen_slot: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))
    seen_ms: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))
    held: dict = field(default_factory=_empty_held)
    # per slot: the vehicle's last kept (released) ping, for teleports and derived speed
    last_ms: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))
    last_x: np.ndarray = field(default_factory=lambda: np.empty(0, "float64"))
    last_y: np.ndarray = field(default_factory=lambda: np.empty(0, "float64"))
    # per slot: the latest time released (teleports included), the floor of the vehicle's frontier
    frontier_ms: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))
    # arrivals: the running max of the stamps (and of `advance`'s wall clock), whether stamped and
    # unstamped pings came so far, and per slot the latest silence instant released
    arrival_clock_ms: int = NO_CLOCK
    stamped_seen: bool = False
    unstamped_seen: bool = False
    arrival_floor_ms: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))

    @property
    def held_count(self) -> int:
        return len(self.held["slot"])


def silence_horizon(state: CleaningState, settings: CleaningSettings = CleaningSettings()) -> int | None:
    """The latest instant before every silence instant still to be released (None: no clock
    yet); see the module docstring. Before any stamped ping it is the clock minus the window."""
    bounds = []
    if state.clock_ms != NO_CLOCK and (state.unstamped_seen or not state.stamped_seen):
        bounds.append(state.clock_ms - settings.reorder_window_ms)
    if state.stamped_seen:
        bounds.append(state.arrival_clock_ms - 1)
        held = state.held["arrival_ms"]
        held = held[held >= 0]
        if len(held):
            bounds.append(int(held.min()) - 1)
    return int(min(bounds)) if bounds else None


def initial_state() -> CleaningState:
    return CleaningState()


def zero_counts() -> dict[str, int]:
    return dict.fromkeys(DROP_REASONS, 0)


def slots_for(state: CleaningState, vehicle_ids: np.ndarray, world: RuleWorld) -> tuple[CleaningState, np.ndarray]:
    """Each vehicle's stable slot: its row in world.vehicles, else one past them given in order
    of first arrival (new unregistered vehicles are added to the state)."""
    # an explicit object Index: pandas would otherwise infer a string dtype for the lookup and
    # take its slow mixed-dtype path (≈ 6× slower)
    ids = pd.Index(np.asarray(vehicle_ids, dtype=object), dtype=object)
    slot = world.vehicle_ids.get_indexer(ids).astype("int64")
    unknown = slot < 0
    if not unknown.any():
        return state, slot
    extra = state.extra_ids
    unknown_ids = ids[unknown]
    new_ids = pd.unique(unknown_ids[extra.get_indexer(unknown_ids) < 0].to_numpy())  # keeps order of first arrival
    if len(new_ids):
        extra = extra.append(pd.Index(new_ids, dtype=object))
        state = _replace(state, extra_ids=extra)
    slot[unknown] = len(world.vehicle_ids) + extra.get_indexer(unknown_ids)
    return state, slot


def clean(
    state: CleaningState,
    batch: PingBatch,
    world: RuleWorld,
    now_ms: int | None = None,
    settings: CleaningSettings = CleaningSettings(),
) -> tuple[CleaningState, RuleBatch, dict[str, int], np.ndarray]:
    """Take a batch in arrival order; return the new state, the pings released to the rules
    (sorted by slot and time), how many pings were dropped for each reason, and each released
    ping's silence instant for the offline rule (`silence_ms`, HIDDEN: not given to it; see the
    module docstring)."""
    counts = zero_counts()
    state, slot = slots_for(state, batch.vehicle_id, world)
    t = np.asarray(batch.epoch_ms, "int64")
    lon = np.asarray(batch.lon, "float64")
    lat = np.asarray(batch.lat, "float64")

    # 1. validity of the fix itself: each ping on its own, earliest reason wins
    reason = np.full(len(batch), -1, "int8")
    _mark(reason, (np.asarray(batch.status, "uint32") & PingBatch.STATUS_FIX_VALID) == 0, "invalid_fix")
    _mark(reason, (lon == 0.0) & (lat == 0.0), "zero_position")
    with np.errstate(invalid="ignore"):
        off_earth = ~((np.abs(lat) <= 90.0) & (np.abs(lon) <= 180.0))  # NaN lands here too
        outside = ~((lon >= settings.service_min_lon) & (lon <= settings.service_max_lon)
                    & (lat >= settings.service_min_lat) & (lat <= settings.service_max_lat))
    _mark(reason, off_earth | outside, "out_of_range")
    if now_ms is not None:
        _mark(reason, t > int(now_ms) + round(settings.max_future_s * _MS_PER_S), "future")
    valid = reason < 0

    # 2. the clock at each arrival: running max over valid pings, carried from earlier batches
    clock_at = np.maximum.accumulate(np.where(valid, t, NO_CLOCK))
    clock_at = np.maximum(clock_at, state.clock_ms)
    clock_end = int(clock_at[-1]) if len(clock_at) else state.clock_ms
    # arrivals: a running max, so a stamp never goes back (a gateway's clock step, two gateways)
    stamp = np.asarray(batch.arrival_ms, "int64")
    stamped = stamp >= 0
    arrival_clock = state.arrival_clock_ms
    if stamped.any():
        eff = np.maximum(np.maximum.accumulate(np.where(stamped, stamp, NO_CLOCK)), arrival_clock)
        arrival = np.where(stamped, eff, -1)
        arrival_clock = int(eff[-1])
    else:
        arrival = np.full(len(batch), -1, "int64")
    seen = {"arrival_clock_ms": arrival_clock, "stamped_seen": state.stamped_seen or bool(stamped.any()),
            "unstamped_seen": state.unstamped_seen or bool(len(batch) and not stamped.all())}

    # 3. duplicates: a (slot, time) seen before, in memory or earlier in this batch. Only pings
    #    within duplicate_memory_s of the clock are checked (and remembered), so the answer
    #    does not depend on what an earlier batch boundary let the memory forget.
    memory_from = _minus(clock_at, settings.duplicate_memory_ms)
    recent = valid & (t >= memory_from)
    n_seen = len(state.seen_slot)
    key_slot = np.concatenate([state.seen_slot, slot[recent]])
    key_ms = np.concatenate([state.seen_ms, t[recent]])
    # sorted by (slot, time, position): a key equal to its predecessor repeats an earlier one
    by_key = np.lexsort((np.arange(len(key_slot)), key_ms, key_slot))
    sorted_slot, sorted_ms = key_slot[by_key], key_ms[by_key]
    repeat_sorted = np.r_[False, (sorted_slot[1:] == sorted_slot[:-1]) & (sorted_ms[1:] == sorted_ms[:-1])]
    repeat = np.empty(len(key_slot), bool)
    repeat[by_key] = repeat_sorted
    repeated = np.zeros(len(batch), bool)
    repeated[recent] = repeat[n_seen:]
    _mark(reason, repeated, "duplicate")

    # 4. late: not later than the vehicle's frontier (see the module docstring)
    threshold = _minus(clock_at, settings.reorder_window_ms)  # nondecreasing, as the clock
    frontier = _frontier_at_arrival(state, slot, t, valid, threshold)
    late = valid & (frontier != NO_CLOCK) & (t <= frontier)
    _mark(reason, late, "out_of_order")
    for code, name in enumerate(DROP_REASONS):
        counts[name] = int(np.count_nonzero(reason == code))

    remembered = ~repeat_sorted & (sorted_ms >= _minus(clock_end, settings.duplicate_memory_ms))
    accepted = reason < 0
    incoming = {
        "slot": slot[accepted], "vehicle_id": np.asarray(batch.vehicle_id, object)[accepted], "epoch_ms": t[accepted],
        "lon": lon[accepted], "lat": lat[accepted], "speed_kmh": np.asarray(batch.speed_kmh, "float64")[accepted],
        "heading": np.asarray(batch.heading, "float64")[accepted], "alarm": np.asarray(batch.alarm, "uint32")[accepted],
        "status": np.asarray(batch.status, "uint32")[accepted], "behind_clock": (t < threshold)[accepted],
        "arrival_ms": arrival[accepted],
    }
    held = {c: np.concatenate([state.held[c], incoming[c]]) for c in _HELD_COLUMNS}
    due = held["epoch_ms"] <= _minus(clock_end, settings.reorder_window_ms)
    state = _replace(state, clock_ms=clock_end, seen_slot=sorted_slot[remembered],
                     seen_ms=sorted_ms[remembered], held={c: v[~due] for c, v in held.items()}, **seen)
    state, released, teleports, silence_ms = _release(state, {c: v[due] for c, v in held.items()}, settings)
    counts["teleport"] = teleports
    return state, released, counts, silence_ms


def advance(
    state: CleaningState, world: RuleWorld, now_ms: int, settings: CleaningSettings = CleaningSettings()
) -> tuple[CleaningState, RuleBatch, dict[str, int], np.ndarray]:
    """The live wall clock moved without pings: the clock becomes max(clock, now_ms) and the
    held pings this makes due are released (returns like `flush`). Only a live caller, whose
    clock is the wall clock, calls it; in a simulation or replay the clock is the data's own
    time, and a wall clock would run ahead of it and release pings before their window passed."""
    if isinstance(now_ms, (bool, np.bool_)) or not isinstance(now_ms, (int, np.integer)):
        raise TypeError(f"advance: now_ms must be integer epoch milliseconds, got {now_ms!r}")
    clock = max(state.clock_ms, int(now_ms))
    held = state.held
    due = held["epoch_ms"] <= _minus(clock, settings.reorder_window_ms)
    # the duplicate memory forgets what no later ping can repeat any more (as at a step's end)
    remembered = state.seen_ms >= _minus(clock, settings.duplicate_memory_ms)
    # the wall clock is the arrival clock's own axis: a report stepped after this arrived now
    state = _replace(state, clock_ms=clock, seen_slot=state.seen_slot[remembered], seen_ms=state.seen_ms[remembered],
                     held={c: v[~due] for c, v in held.items()},
                     arrival_clock_ms=max(state.arrival_clock_ms, int(now_ms)))
    state, released, teleports, silence_ms = _release(state, {c: v[due] for c, v in held.items()}, settings)
    counts = zero_counts()
    counts["teleport"] = teleports
    return state, released, counts, silence_ms


def flush(
    state: CleaningState, world: RuleWorld, settings: CleaningSettings = CleaningSettings()
) -> tuple[CleaningState, RuleBatch, dict[str, int], np.ndarray]:
    """Release every held ping (the end of a file, or a shutdown); returns like `clean`."""
    held = state.held
    state = _replace(state, held=_empty_held())
    state, released, teleports, silence_ms = _release(state, held, settings)
    counts = zero_counts()
    counts["teleport"] = teleports
    return state, released, counts, silence_ms


def _frontier_at_arrival(state: CleaningState, slot: np.ndarray, t: np.ndarray, valid: np.ndarray,
                         threshold: np.ndarray) -> np.ndarray:
    """F_v(p) for every ping of the batch (NO_CLOCK: none): the carried frontier of its slot and
    the latest time of its vehicle's earlier arrivals (held ones, then this batch's valid ones)
    that were at least the window behind the clock at p's arrival."""
    n = len(t)
    if not n:
        return np.empty(0, "int64")
    # threshold = clock at arrival - window grows along arrivals: a ping q counts for every
    # arrival from the first whose threshold reaches t_q (and after q itself) on
    held_slot, held_ms = state.held["slot"], state.held["epoch_ms"]
    candidate = np.flatnonzero(valid)
    eligible_from = np.concatenate([
        np.searchsorted(threshold, held_ms, "left"),  # held: arrivals before this batch
        np.maximum(candidate + 1, np.searchsorted(threshold, t[candidate], "left")),
    ])
    act_slot = np.concatenate([held_slot, slot[candidate]])
    act_ms = np.concatenate([held_ms, t[candidate]])
    soon = np.flatnonzero(eligible_from < n)  # the others count only from a later step on
    soon = soon[np.argsort(eligible_from[soon], kind="stable")]
    n_slots = max(len(state.frontier_ms), int(slot.max()) + 1, int(held_slot.max()) + 1 if len(held_slot) else 0)
    frontier = grow(state.frontier_ms, n_slots, NO_CLOCK).copy()
    return _frontier_scan(slot, eligible_from[soon], act_slot[soon], act_ms[soon], frontier)


@njit(cache=True, nogil=True)
def _frontier_scan(slot, act_from, act_slot, act_ms, frontier):  # pragma: no cover - numba
    """Along the arrivals: raise each slot's frontier by the activations due at or before the
    arrival (sorted by `act_from`), then read the arriving ping's slot. One pass, O(n + m)."""
    n = slot.shape[0]
    out = np.empty(n, np.int64)
    k = 0
    m = act_from.shape[0]
    for i in range(n):
        while k < m and act_from[k] <= i:
            s = act_slot[k]
            if act_ms[k] > frontier[s]:
                frontier[s] = act_ms[k]
            k += 1
        out[i] = frontier[slot[i]]
    return out


def _mark(reason: np.ndarray, mask: np.ndarray, name: str) -> None:
    """Give `name` to the pings in `mask` that have no reason yet (the first test failed wins)."""
    reason[mask & (reason < 0)] = DROP_REASONS.index(name)


def _minus(clock, window_ms: int):
    """clock - window without wrapping below the NO_CLOCK sentinel."""
    clock = np.asarray(clock, "int64")
    out = np.where(clock == NO_CLOCK, NO_CLOCK, clock - window_ms)
    return out if out.ndim else int(out)


def _replace(state: CleaningState, **changes) -> CleaningState:
    values = {f: getattr(state, f) for f in state.__dataclass_fields__}
    values.update(changes)
    return CleaningState(**values)


def _release(
    state: CleaningState, due: dict[str, np.ndarray], settings: CleaningSettings
) -> tuple[CleaningState, RuleBatch, int, np.ndarray]:
    """Sort the due pings by (slot, time), drop teleports, derive speeds, project to metres;
    also return the kept pings' silence instants (module docstring)."""
    if not len(due["slot"]):
        return state, RuleBatch.empty(), 0, np.empty(0, "int64")
    order = np.lexsort((due["epoch_ms"], due["slot"]))
    due = {c: v[order] for c, v in due.items()}
    x, y = (np.asarray(a, "float64") for a in to_metric(due["lon"], due["lat"]))
    n_slots = int(due["slot"].max()) + 1
    # each slot's last due ping is its latest: the frontier floor (teleports too, as in the step)
    frontier = grow(state.frontier_ms, n_slots, NO_CLOCK).copy()
    run_end = np.flatnonzero(np.r_[due["slot"][1:] != due["slot"][:-1], True])
    end_slot = due["slot"][run_end]
    frontier[end_slot] = np.maximum(frontier[end_slot], due["epoch_ms"][run_end])
    last_ms = grow(state.last_ms, n_slots, NO_CLOCK).copy()
    last_x = grow(state.last_x, n_slots, np.nan).copy()
    last_y = grow(state.last_y, n_slots, np.nan).copy()
    keep, derived = _teleport_scan(due["slot"], due["epoch_ms"], x, y, float(settings.max_plausible_kmh),
                                   last_ms, last_x, last_y)
    arrival = due["arrival_ms"][keep]
    t_kept = due["epoch_ms"][keep]
    silence = np.where(due["behind_clock"][keep], HIDDEN, t_kept)
    floor = state.arrival_floor_ms
    if (arrival >= 0).any():
        floor = grow(floor, n_slots, NO_CLOCK).copy()
        silence = np.where(arrival >= 0, _slot_running_max(due["slot"][keep], arrival, floor), silence)
    state = _replace(state, last_ms=last_ms, last_x=last_x, last_y=last_y, frontier_ms=frontier,
                     arrival_floor_ms=floor)
    reported = due["speed_kmh"][keep]
    n = int(keep.sum())
    batch = RuleBatch(
        slot=due["slot"][keep], vehicle_id=due["vehicle_id"][keep], epoch_ms=due["epoch_ms"][keep],
        lon=due["lon"][keep], lat=due["lat"][keep], x=x[keep], y=y[keep],
        speed_kmh=np.where(np.isnan(reported), derived[keep], reported), speed_derived=np.isnan(reported),
        heading=due["heading"][keep], alarm=due["alarm"][keep], status=due["status"][keep],
        waybill=np.full(n, -1, "int64"), loaded=np.zeros(n, bool),
    )
    return state, batch, len(keep) - n, silence


@njit(cache=True, nogil=True)
def _slot_running_max(slot, arrival, floor):  # pragma: no cover - numba
    """Along pings sorted by (slot, time): each stamped ping's arrival raised to the latest of its
    slot so far (carried in `floor`, updated in place); unstamped pings (-1) are left as they are."""
    n = slot.shape[0]
    out = np.empty(n, np.int64)
    for i in range(n):
        a = arrival[i]
        if a < 0:
            out[i] = a
            continue
        s = slot[i]
        if a < floor[s]:
            a = floor[s]
        floor[s] = a
        out[i] = a
    return out


@njit(cache=True, nogil=True)
def _teleport_scan(slot, t, x, y, max_kmh, last_ms, last_x, last_y):  # pragma: no cover - numba
    """Per vehicle, in time order: drop a ping whose implied speed from the previous kept ping
    exceeds max_kmh; derive the speed (km/h) of every kept ping from its predecessor."""
    n = slot.shape[0]
    keep = np.ones(n, np.bool_)
    derived = np.full(n, np.nan)
    no_clock = np.iinfo(np.int64).min
    for i in range(n):
        s = slot[i]
        if last_ms[s] != no_clock:
            dt_ms = t[i] - last_ms[s]
            dist_m = np.hypot(x[i] - last_x[s], y[i] - last_y[s])
            if dt_ms > 0:
                kmh = dist_m / dt_ms * 3600.0  # m/ms -> km/h
            else:
                kmh = np.inf
            if kmh > max_kmh:
                keep[i] = False
                continue
            derived[i] = kmh
        last_ms[s] = t[i]
        last_x[s] = x[i]
        last_y[s] = y[i]
    return keep, derived
