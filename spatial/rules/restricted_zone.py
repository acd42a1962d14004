"""Restricted zone: a loaded truck carrying a barred class inside a restricted zone while it is closed.

DOMAIN.md §4 (危险货物道路运输安全管理办法 2019, art. 49): drinking-water protection zones, long
and underwater tunnels, city cores and other areas may be closed to dangerous goods, all day or
at given hours. A zone (world.restricted_zones) names the classes it bars (`barred_classes`) and
its closed hours (`closed_from`–`closed_to`, "HH:MM" Asia/Shanghai; "00:00"–"24:00" all day; a
window whose end is not after its start wraps midnight, e.g. "22:00"–"06:00"). A barred class
covers the good's class when they are equal or the good's class starts with it and a dot: a
barred "1" covers "1.1D" and "1.4S", a barred "2" covers "2.3", a barred "2.1" does not cover
"2.2". A good's class is its waybill_goods `hazard_class`, else the catalogue's (world.chemicals).

What is tested is the truck's path, not its pings: the *segment* between a vehicle's two
consecutive pings, travelled in a straight line at constant speed, so a truck cannot jump over
a zone between two pings. A vehicle's first ping, and the later ping of a gap longer than
`max_segment_gap_s` (the offline threshold: such a straight line is no evidence of the path),
count as a point at that ping; two pings at the same spot are the truck standing there for the
whole interval. Each vehicle's previous ping (x, y, time, loaded, waybill) is carried in the
state, so the segment that straddles two batches is tested like any other.

A segment *violates* a zone when all of these hold:
  * cargo: a ping at either end of the segment is loaded (loaded flag and a waybill) with a
    waybill whose goods include a class the zone bars (loading and unloading happen at rest,
    so either end's cargo was on board while the truck moved between them), and the truck has
    set off on that waybill (issue 11: a segment is loaded only while the truck moves loaded, not
    while it stands at its loading site before departure): the waybill gives an actual departure
    (the waybill stage starts it then), or some ping on it, this one or an earlier one, lay more
    than `loading_site_match_m` (300 m, as the waybill stage's site match) from its loading site
    (exact EPSG:32651 distance; a loading site missing from world.entities cannot hold the truck
    back). Each vehicle's waybill it has set off on is carried in the state;
  * place: the segment intersects the zone's exact geometry (shapely `intersects` in
    EPSG:32651, boundary included);
  * time: the truck is inside the zone at a closed instant. The times it is inside are those of
    the parts of the segment within the zone (shapely `intersection`), interpolated along the
    segment at constant speed and widened to whole milliseconds (the first rounded down, the
    last up); closed instants are [closed_from, closed_to) in Asia/Shanghai, i.e. 07:00:00
    is closed in a 07:00–09:00 window and 09:00:00 is open again. (Should GEOS' overlay find no
    part where its predicate found an intersection, a robustness corner, the whole segment's
    time span counts.)
The first closed in-zone instant is the *entry*: its time starts the episode and its
interpolated position is the entry point.

One episode per (vehicle, zone), through `spatial.rules.episodes.scan_episodes`: it opens at the
first violating segment (a single one suffices: entering a drinking-water zone at a closed hour
is already the violation) and stays open while each next segment still *stays*: it passes within
`exit_margin_m` of the zone (hysteresis, so a truck on a road along the zone's edge raises one
episode, not one per GNSS wobble), the truck still carries a barred class, and the segment's time
span overlaps a closed window. It closes at the first segment that does not; its end is that
segment's first ping (the last ping of the last staying segment). The close names why:
`left_zone`, `no_barred_cargo` or `outside_closed_hours`. Episode ids are
`restricted_zone:<vehicle>:<zone>:<entry ms>` (the zone is part of the id: a truck can enter two
overlapping zones at the same instant).

Severity (DOMAIN.md §4: a spill into drinking water is the gravest): water_protection 1; tunnel 2
(a fire or leak in a bore); city_core 2 (crowds); any other zone kind 2.

Evidence: `zone_id`, `zone_name`, `zone_kind`, `closed_from`, `closed_to`, `zone_barred_classes`,
`barred_classes_hit` and `un_numbers_hit` (the goods the zone bars), `waybill_id`, `entry_time`
(UTC) and `entry_time_local`, `entry_lon`/`entry_lat`, `segment_from`/`segment_to` (the pings
that bound the entering segment; `segment_from` None for a point), `pings_outside` (both pings
lie outside the zone: it was crossed between them), `exit_margin_m`; a close adds `last_time`,
`closed_by` (the ping of the first non-staying segment), `close_reason`, `duration_s` and
`segments`.

Exactness: zones are projected once per world (RuleWorld.cached) into an STRtree. A grid over
the zones' extent marks the cells whose box lies within exit_margin_m + a cell of some zone; a
segment no longer than a cell whose first point is in an unmarked cell cannot come within
exit_margin_m of any zone, so it is skipped, and every other segment goes to the tree's exact
`dwithin` query. Only candidates are narrowed; each decision is the exact predicate.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from spatial.crs import from_metric, geometry_to_metric
from spatial.model import Event, World
from spatial.rules.base import (
    SEVERITY_HIGH,
    SEVERITY_HIGHEST,
    RuleBatch,
    RuleWorld,
    grow,
    iso_times,
    make_event,
    previous_in_run,
    setting,
)
from spatial.rules.dwell import SITE_MATCH_M, SITE_MATCH_SOURCE, waybill_sites
from spatial.rules.episodes import MARK_OPEN, EpisodeState, scan_episodes

RULE_NAME = "restricted_zone"
LOCAL_TZ = "Asia/Shanghai"
# China Standard Time is UTC+8 all year (no daylight saving since 1991), so a fixed offset
# turns UTC milliseconds into local clock time exactly and vectorised.
LOCAL_OFFSET_MS = 8 * 3_600_000
DAY_MS = 86_400_000
SEVERITY_BY_ZONE_KIND = {"water_protection": SEVERITY_HIGHEST, "tunnel": SEVERITY_HIGH, "city_core": SEVERITY_HIGH}
SEVERITY_OTHER_ZONE = SEVERITY_HIGH
CLOSE_REASONS = ("left_zone", "no_barred_cargo", "outside_closed_hours")
# The narrowing grid: cells of this size, at most this many (larger extents get larger cells).
_GRID_CELL_M = 500.0
_GRID_MAX_CELLS = 1_000_000
_GRID_SLACK_M = 1.0  # float rounding of cell boxes and offsets; narrowing only
_CLOCK = re.compile(r"(\d\d):(\d\d)")


@dataclass(frozen=True)
class RestrictedZoneSettings:
    exit_margin_m: float = setting(
        30.0, "m", "(engineering default) hysteresis: an episode stays open while segments pass this close to the zone")
    # DOMAIN.md §4: a truck is offline after ≥ 20 min without data; a straight line across a
    # longer silence says nothing about where it drove.
    max_segment_gap_s: float = setting(
        1200.0, "s", "DOMAIN.md §4 offline threshold (engineering default): a longer gap counts as its end point")
    loading_site_match_m: float = setting(SITE_MATCH_M, "m", f"{SITE_MATCH_SOURCE}: until this far from its "
                                          "loading site the truck has not set off")

    def __post_init__(self):
        for name in ("exit_margin_m", "max_segment_gap_s", "loading_site_match_m"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"RestrictedZoneSettings.{name} must be a finite number >= 0, got {value!r}")


# --- the world, prepared once ----------------------------------------------------------------

def _clock_minutes(value, zone_id: str, column: str) -> int:
    match = _CLOCK.fullmatch(str(value)) if isinstance(value, str) else None
    if not match or int(match[2]) >= 60 or (int(match[1]), int(match[2])) > (24, 0):
        raise ValueError(f"{RULE_NAME}: zone {zone_id!r} has {column} {value!r}, expected a local time HH:MM "
                         "(00:00-24:00)")
    return int(match[1]) * 60 + int(match[2])


def closed_window(closed_from: str, closed_to: str, zone_id: str = "?") -> tuple[int, int]:
    """A zone's closed hours as (start in ms after local midnight, length in ms): [from, to)
    local, wrapping midnight when `to` is not after `from`; "00:00"–"24:00" is the whole day."""
    start = _clock_minutes(closed_from, zone_id, "closed_from")
    end = _clock_minutes(closed_to, zone_id, "closed_to")
    if start == 24 * 60:
        raise ValueError(f"{RULE_NAME}: zone {zone_id!r} has closed_from 24:00; a window starts before midnight")
    if start == end:
        raise ValueError(f"{RULE_NAME}: zone {zone_id!r} has closed_from = closed_to = {closed_from!r}, which is "
                         "ambiguous; write 00:00-24:00 for a zone closed all day")
    length = end - start if end > start else end - start + 24 * 60
    return start * 60_000, length * 60_000


def first_closed_ms(a_ms: np.ndarray, start_ms: np.ndarray, length_ms: np.ndarray) -> np.ndarray:
    """The first closed instant at or after each UTC time `a_ms` of a daily window (start after
    local midnight, length), elementwise; `a_ms` itself when it is closed."""
    a_ms = np.asarray(a_ms, "int64")
    position = np.mod(a_ms + LOCAL_OFFSET_MS - start_ms, DAY_MS)  # ms since the window last opened
    inside = (length_ms >= DAY_MS) | (position < length_ms)
    return np.where(inside, a_ms, a_ms + DAY_MS - position)


def covered_by(good_class: str, barred: str) -> bool:
    """Whether a barred class covers a good's class: equal, or the class starts with barred + '.'."""
    return good_class == barred or good_class.startswith(barred + ".")


@dataclass(frozen=True)
class _Zones:
    ids: np.ndarray  # object
    names: np.ndarray
    kinds: np.ndarray
    closed_from: np.ndarray
    closed_to: np.ndarray
    barred: np.ndarray  # object: tuple of barred classes per zone
    window_start_ms: np.ndarray  # int64
    window_length_ms: np.ndarray  # int64
    severity: np.ndarray  # int64
    geoms: np.ndarray  # metric shapely geometries
    tree: shapely.STRtree
    # the narrowing grid (see the module docstring)
    grid_x0: float
    grid_y0: float
    grid_cell_m: float
    grid_marked: np.ndarray  # bool (nx, ny)

    def __len__(self) -> int:
        return len(self.ids)


def _prepare_zones(world: World, margin_m: float) -> _Zones:
    zones = world.restricted_zones
    n = len(zones)
    ids = zones["id"].astype(object).to_numpy() if n else np.empty(0, object)
    geoms = np.asarray(zones.geometry.to_numpy(), dtype=object) if n else np.empty(0, object)
    bad = shapely.is_missing(geoms) | shapely.is_empty(geoms) | ~shapely.is_valid(geoms)
    if bad.any():
        raise ValueError(f"{RULE_NAME}: restricted zones without a valid geometry: "
                         + ", ".join(map(str, ids[bad][:10])))
    windows = [closed_window(f, t, z) for f, t, z in
               zip(zones["closed_from"].tolist() if n else [], zones["closed_to"].tolist() if n else [], ids)]
    barred = np.empty(n, dtype=object)
    for k, (zone_id, classes) in enumerate(zip(ids, zones["barred_classes"].tolist() if n else [])):  # per zone
        if classes is None or (isinstance(classes, float) and math.isnan(classes)):
            classes = ()
        if isinstance(classes, str) or not all(isinstance(c, str) and c for c in classes):
            raise ValueError(f"{RULE_NAME}: zone {zone_id!r} has barred_classes {classes!r}, expected a list of "
                             "class strings")
        barred[k] = tuple(classes)
    kinds = zones["kind"].astype(object).to_numpy() if n else np.empty(0, object)
    metric = np.asarray(geometry_to_metric(geoms), dtype=object) if n else np.empty(0, object)
    tree = shapely.STRtree(metric)

    reach = margin_m + _GRID_SLACK_M
    if n:
        x_lo, y_lo, x_hi, y_hi = shapely.total_bounds(metric)
        cell = _GRID_CELL_M
        span_x, span_y = x_hi - x_lo + 2 * (reach + cell), y_hi - y_lo + 2 * (reach + cell)
        while (span_x / cell + 1) * (span_y / cell + 1) > _GRID_MAX_CELLS:
            cell *= 2
            span_x, span_y = x_hi - x_lo + 2 * (reach + cell), y_hi - y_lo + 2 * (reach + cell)
        x0, y0 = x_lo - (reach + cell), y_lo - (reach + cell)
        nx, ny = math.ceil(span_x / cell), math.ceil(span_y / cell)
        gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        boxes = shapely.box(x0 + gx.ravel() * cell, y0 + gy.ravel() * cell,
                            x0 + (gx.ravel() + 1) * cell, y0 + (gy.ravel() + 1) * cell)
        hit, _ = tree.query(boxes, predicate="dwithin", distance=reach + cell)
        marked = np.zeros(nx * ny, bool)
        marked[hit] = True
        marked = marked.reshape(nx, ny)
    else:
        x0 = y0 = 0.0
        cell = _GRID_CELL_M
        marked = np.zeros((0, 0), bool)
    return _Zones(
        ids=ids, names=zones["name"].astype(object).to_numpy() if n else np.empty(0, object), kinds=kinds,
        closed_from=zones["closed_from"].astype(object).to_numpy() if n else np.empty(0, object),
        closed_to=zones["closed_to"].astype(object).to_numpy() if n else np.empty(0, object),
        barred=barred,
        window_start_ms=np.array([w[0] for w in windows], "int64"),
        window_length_ms=np.array([w[1] for w in windows], "int64"),
        severity=np.array([SEVERITY_BY_ZONE_KIND.get(str(k), SEVERITY_OTHER_ZONE) for k in kinds], "int64"),
        geoms=metric, tree=tree, grid_x0=float(x0), grid_y0=float(y0), grid_cell_m=float(cell), grid_marked=marked,
    )


@dataclass(frozen=True)
class _Cargo:
    """Per waybill row (plus one all-False row at the end, for row -1): which zones bar it."""

    waybill_ids: np.ndarray
    hit: np.ndarray  # bool (n_waybills + 1, n_zones)
    any_hit: np.ndarray  # bool (n_waybills + 1,)
    goods_row: np.ndarray  # int64, per good (waybill row)
    goods_class: np.ndarray  # object
    goods_un: np.ndarray  # object

    def goods_hit(self, row: int, barred: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """The barred classes and the UN numbers of the goods of waybill `row` a zone bars
        (for an event's evidence: few)."""
        mine = np.flatnonzero(self.goods_row == row)
        classes, uns = [], []
        for cls, un in zip(self.goods_class[mine], self.goods_un[mine]):
            if any(covered_by(cls, b) for b in barred):
                classes.append(cls)
                uns.append(un)
        return sorted(set(classes)), list(dict.fromkeys(uns))


def _prepare_cargo(world: World, zones: _Zones) -> _Cargo:
    waybill_ids = world.waybills["id"].astype(object).to_numpy() if len(world.waybills) else np.empty(0, object)
    goods = world.waybill_goods
    row = pd.Index(waybill_ids).get_indexer(goods["waybill_id"].astype(object).to_numpy()) if len(goods) else \
        np.empty(0, "int64")
    order = np.lexsort((goods["seq"].to_numpy("int64"), row)) if len(goods) else np.empty(0, "int64")
    known = row[order] >= 0
    order = order[known]
    row = row[order].astype("int64")
    un = goods["un_number"].astype(object).to_numpy()[order] if len(goods) else np.empty(0, object)
    cls = goods["hazard_class"].astype(object).to_numpy()[order] if len(goods) else np.empty(0, object)
    cls = np.array(["" if c is None or (isinstance(c, float) and math.isnan(c)) else str(c).strip() for c in cls],
                   dtype=object)
    catalogue = world.chemicals
    if len(cls) and "hazard_class" in getattr(catalogue, "columns", ()):
        fallback = catalogue["hazard_class"].reindex(un).astype(object).to_numpy()
        blank = cls == ""
        cls[blank] = [("" if c is None or (isinstance(c, float) and math.isnan(c)) else str(c)) for c in fallback[blank]]
    cls_str = cls.astype(str)
    hit = np.zeros((len(waybill_ids) + 1, len(zones)), bool)
    for z, barred in enumerate(zones.barred):  # per zone and barred class: a handful
        covered = np.zeros(len(cls_str), bool)
        for b in barred:
            covered |= (cls_str == b) | np.char.startswith(cls_str, b + ".")
        np.logical_or.at(hit[:, z], row[covered], True)
    return _Cargo(waybill_ids, hit, hit.any(axis=1), row, cls, un)


# --- state ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RestrictedZoneState:
    """Per slot: the previous ping (time -1: none yet). Per (vehicle, zone) key that ever came
    near its zone at a closed hour with barred cargo: a compact id (`keys`, slot × zones + zone)
    and the episode scan's state; the open episodes' opening events by compact id."""

    prev_t: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    prev_x: np.ndarray = field(default_factory=lambda: np.zeros(0, "float64"))
    prev_y: np.ndarray = field(default_factory=lambda: np.zeros(0, "float64"))
    prev_loaded: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    prev_waybill: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    prev_set_off: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # the previous ping's waybill
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    episodes: EpisodeState = field(default_factory=EpisodeState)
    open: dict = field(default_factory=dict)


_ZONES_KEY = f"{RULE_NAME}:zones"
_CARGO_KEY = f"{RULE_NAME}:cargo"
_LOADING_KEY = f"{RULE_NAME}:loading"


@dataclass(frozen=True)
class _Loading:
    """Per waybill row (plus one row at the end, for row -1): its loading site in EPSG:32651 (NaN
    when unknown) and whether it gives an actual departure."""

    x: np.ndarray
    y: np.ndarray
    departed: np.ndarray  # bool


def _prepare_loading(world: World) -> _Loading:
    sites = waybill_sites(world, RULE_NAME)
    n = len(sites.loading)
    x, y = np.full(n + 1, np.nan), np.full(n + 1, np.nan)
    known = ~shapely.is_missing(sites.loading) if n else np.zeros(0, bool)
    if known.any():
        x[:n][known], y[:n][known] = shapely.get_x(sites.loading[known]), shapely.get_y(sites.loading[known])
    departed = np.zeros(n + 1, bool)
    if n and "actual_departure" in world.waybills.columns:
        departed[:n] = pd.to_datetime(world.waybills["actual_departure"], utc=True).notna().to_numpy()
    return _Loading(x, y, departed)


def set_off(loading: _Loading, slot: np.ndarray, waybill: np.ndarray, x: np.ndarray, y: np.ndarray,
            carried: np.ndarray, match_m: float) -> np.ndarray:
    """Per ping of a (slot, time)-sorted batch on waybill row `waybill` (-1 none): whether the
    truck has set off on it by then (see the module docstring). `carried[slot]`: the slot's
    previous ping was on the same waybill and had set off."""
    n = len(slot)
    if not n:
        return np.zeros(0, bool)
    wb = np.where(waybill >= 0, waybill, len(loading.x) - 1)
    away = (waybill >= 0) & (loading.departed[wb] | ~(np.hypot(x - loading.x[wb], y - loading.y[wb]) <= match_m))
    # runs of one vehicle on one waybill; a run set off from its first ping that set off onwards
    start = np.r_[True, (slot[1:] != slot[:-1]) | (waybill[1:] != waybill[:-1])]
    run_first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    last_away = np.maximum.accumulate(np.where(away, np.arange(n), -1))
    out = last_away >= run_first
    # a vehicle's first run continues the previous batch's when its waybill is the same
    first_of_slot = np.r_[True, slot[1:] != slot[:-1]]
    continues = np.zeros(n, bool)
    continues[first_of_slot] = carried[slot[first_of_slot]]
    continues = continues[run_first] & (run_first == np.maximum.accumulate(np.where(first_of_slot, np.arange(n), 0)))
    return (out | continues) & (waybill >= 0)


class RestrictedZoneRule:
    """A loaded truck of a barred class inside a closed restricted zone (see the module docstring)."""

    name = RULE_NAME

    def __init__(self, settings: RestrictedZoneSettings | None = None):
        self.settings = settings if settings is not None else RestrictedZoneSettings()

    def initial_state(self) -> RestrictedZoneState:
        return RestrictedZoneState()

    def zones(self, world: RuleWorld) -> _Zones:
        return world.cached(f"{_ZONES_KEY}:{self.settings.exit_margin_m!r}",
                            lambda: _prepare_zones(world.world, float(self.settings.exit_margin_m)))

    def step(self, state: RestrictedZoneState, batch: RuleBatch, world: RuleWorld
             ) -> tuple[RestrictedZoneState, list[Event]]:
        n = len(batch)
        if not n:
            return state, []
        s = self.settings
        zones = self.zones(world)
        cargo = world.cached(_CARGO_KEY, lambda: _prepare_cargo(world.world, zones))
        slot = np.asarray(batch.slot, "int64")
        t1 = np.asarray(batch.epoch_ms, "int64")
        x1, y1 = np.asarray(batch.x, "float64"), np.asarray(batch.y, "float64")
        waybill = np.asarray(batch.waybill, "int64")
        if ((waybill < -1) | (waybill >= len(cargo.waybill_ids))).any():
            i = int(np.flatnonzero((waybill < -1) | (waybill >= len(cargo.waybill_ids)))[0])
            raise ValueError(f"{RULE_NAME}: ping of {batch.vehicle_id[i]!r} has waybill row {waybill[i]}, "
                             f"world.waybills has {len(cargo.waybill_ids)} rows")
        if not (np.isfinite(x1) & np.isfinite(y1)).all():
            i = int(np.flatnonzero(~(np.isfinite(x1) & np.isfinite(y1)))[0])
            raise ValueError(f"{RULE_NAME}: ping of {batch.vehicle_id[i]!r} has no finite metric x/y")
        n_slots = int(slot.max()) + 1
        prev_t, prev_x, prev_y = (grow(state.prev_t, n_slots, -1), grow(state.prev_x, n_slots, np.nan),
                                  grow(state.prev_y, n_slots, np.nan))
        prev_loaded, prev_waybill = grow(state.prev_loaded, n_slots, False), grow(state.prev_waybill, n_slots, -1)
        prev_set_off = grow(state.prev_set_off, n_slots, False)
        loading = world.cached(_LOADING_KEY, lambda: _prepare_loading(world.world))
        # a loaded ping counts only once the truck has set off on its waybill
        loaded_now = np.asarray(batch.loaded, bool) & (waybill >= 0)
        carried = prev_set_off & (prev_waybill >= 0)
        same_waybill = np.zeros(len(carried), bool)
        firsts = np.r_[True, slot[1:] != slot[:-1]]
        same_waybill[slot[firsts]] = prev_waybill[slot[firsts]] == waybill[firsts]
        moving = set_off(loading, slot, np.where(loaded_now, waybill, -1), x1, y1, carried & same_waybill,
                         float(s.loading_site_match_m))
        p_t = previous_in_run(t1, slot, prev_t)
        p_x, p_y = previous_in_run(x1, slot, prev_x), previous_in_run(y1, slot, prev_y)
        p_loaded = previous_in_run(moving, slot, prev_set_off)
        p_waybill = previous_in_run(waybill, slot, prev_waybill)
        if ((p_t >= 0) & (p_t >= t1)).any():
            i = int(np.flatnonzero((p_t >= 0) & (p_t >= t1))[0])
            raise ValueError(f"{RULE_NAME}: pings of {batch.vehicle_id[i]!r} are not strictly increasing in time "
                             f"(epoch_ms {int(t1[i])} after {int(p_t[i])})")

        # The segment of each ping: from the previous ping, or the ping itself (first, long gap).
        line = (p_t >= 0) & (t1 - p_t <= round(s.max_segment_gap_s * 1000))
        t0 = np.where(line, p_t, t1)
        x0, y0 = np.where(line, p_x, x1), np.where(line, p_y, y1)
        wb_end = np.where(moving, waybill, -1)
        wb_start = np.where(line & p_loaded & (p_waybill >= 0), p_waybill, -1)

        events: list[Event] = []
        new_state = dataclasses.replace(
            state, prev_t=prev_t.copy(), prev_x=prev_x.copy(), prev_y=prev_y.copy(),
            prev_loaded=prev_loaded.copy(), prev_waybill=prev_waybill.copy(), prev_set_off=prev_set_off.copy())
        last = np.r_[slot[1:] != slot[:-1], True]
        new_state.prev_t[slot[last]] = t1[last]
        new_state.prev_x[slot[last]], new_state.prev_y[slot[last]] = x1[last], y1[last]
        new_state.prev_loaded[slot[last]] = np.asarray(batch.loaded, bool)[last]
        new_state.prev_waybill[slot[last]] = waybill[last]
        new_state.prev_set_off[slot[last]] = moving[last]
        if not len(zones):
            return new_state, events

        # Narrow (exactly): barred cargo for some zone, and near some zone (grid, then tree).
        length = np.hypot(x1 - x0, y1 - y0)
        candidate = cargo.any_hit[wb_end] | cargo.any_hit[wb_start]
        gi = np.floor((x0 - zones.grid_x0) / zones.grid_cell_m)
        gj = np.floor((y0 - zones.grid_y0) / zones.grid_cell_m)
        nx, ny = zones.grid_marked.shape
        in_grid = (gi >= 0) & (gi < nx) & (gj >= 0) & (gj < ny)
        marked = np.zeros(n, bool)
        marked[in_grid] = zones.grid_marked[gi[in_grid].astype("int64"), gj[in_grid].astype("int64")]
        candidate &= marked | (length > zones.grid_cell_m)
        cand = np.flatnonzero(candidate)
        geoms = np.empty(len(cand), dtype=object)
        if len(cand):
            point = length[cand] == 0
            geoms[point] = shapely.points(x1[cand[point]], y1[cand[point]])
            seg = cand[~point]
            geoms[~point] = shapely.linestrings(
                np.stack([np.column_stack([x0[seg], y0[seg]]), np.column_stack([x1[seg], y1[seg]])], axis=1))
        if s.exit_margin_m > 0:
            c_idx, zone_of = zones.tree.query(geoms, predicate="dwithin", distance=float(s.exit_margin_m))
        else:
            c_idx, zone_of = zones.tree.query(geoms, predicate="intersects")
        ping_of = cand[c_idx]
        hit_end = cargo.hit[wb_end[ping_of], zone_of]
        hit_start = cargo.hit[wb_start[ping_of], zone_of]
        barred_pair = hit_end | hit_start
        w_start, w_len = zones.window_start_ms[zone_of], zones.window_length_ms[zone_of]
        hours_pair = first_closed_ms(t0[ping_of], w_start, w_len) <= t1[ping_of]
        stay_pair = barred_pair & hours_pair

        # Enter: exact intersects, then the closed instants inside the zone.
        entry_ms = np.full(len(ping_of), -1, "int64")
        entry_x, entry_y = np.full(len(ping_of), np.nan), np.full(len(ping_of), np.nan)
        check = np.flatnonzero(stay_pair)
        if len(check):
            inside = shapely.intersects(geoms[c_idx[check]], zones.geoms[zone_of[check]])
            check = check[inside]
        if len(check):
            entry_ms[check], entry_x[check], entry_y[check] = _entries(
                geoms[c_idx[check]], zones.geoms[zone_of[check]], x0[ping_of[check]], y0[ping_of[check]],
                x1[ping_of[check]], y1[ping_of[check]], t0[ping_of[check]], t1[ping_of[check]],
                w_start[check], w_len[check])
        enter_pair = entry_ms >= 0

        # Rows for the episode scan: staying segments, the segment after each, and the first
        # segment of every vehicle with an episode in progress from earlier batches.
        n_zones = len(zones)
        stay_rows = ping_of[stay_pair] * n_zones + zone_of[stay_pair]
        following = ping_of[stay_pair] + 1
        ok = following < n
        ok[ok] = slot[following[ok]] == slot[ping_of[stay_pair][ok]]
        next_rows = following[ok] * n_zones + zone_of[stay_pair][ok]
        busy = np.flatnonzero(state.episodes.phase[: len(state.keys)] != 0)
        carried_rows = np.empty(0, "int64")
        if len(busy):
            busy_slot, busy_zone = state.keys[busy] // n_zones, state.keys[busy] % n_zones
            starts = np.flatnonzero(np.r_[True, slot[1:] != slot[:-1]])
            first_of = pd.Series(starts, index=slot[starts])
            present = np.isin(busy_slot, slot[starts])
            carried_rows = first_of.loc[busy_slot[present]].to_numpy("int64") * n_zones + busy_zone[present]
        rows = np.unique(np.concatenate([stay_rows, next_rows, carried_rows]))
        if not len(rows):
            return new_state, events
        row_ping, row_zone = rows // n_zones, rows % n_zones
        pair_code = ping_of * n_zones + zone_of
        at = pd.Index(pair_code).get_indexer(rows)  # each pair once: the tree returns unique pairs
        found = at >= 0
        enter = np.zeros(len(rows), bool)
        stay = np.zeros(len(rows), bool)
        enter[found] = enter_pair[at[found]]
        stay[found] = stay_pair[at[found]]
        key = slot[row_ping] * n_zones + row_zone
        order = np.lexsort((row_ping, key))
        rows, row_ping, row_zone, key, enter, stay, at = (a[order] for a in (rows, row_ping, row_zone, key, enter,
                                                                             stay, at))
        keys = state.keys
        compact = pd.Index(keys).get_indexer(key)
        fresh = np.unique(key[compact < 0])
        if len(fresh):
            keys = np.concatenate([keys, fresh])
            compact = pd.Index(keys).get_indexer(key)
        t_row = t1[row_ping].copy()
        t_row[enter] = entry_ms[at[enter]]  # enter implies a pair
        episodes, marks = scan_episodes(state.episodes.sized(len(keys)), compact, t_row, enter, stay,
                                        np.zeros(len(rows)), batch.lon[row_ping], batch.lat[row_ping], 0, 1)
        open_now = dict(state.open)
        events = self._events(marks, rows, row_ping, row_zone, at, compact, open_now, batch, zones, cargo,
                              {"p_t": p_t, "p_x": p_x, "p_y": p_y, "t0": t0, "x0": x0, "y0": y0, "line": line, "hit_end": hit_end,
                                   "wb_end": wb_end, "wb_start": wb_start, "entry_ms": entry_ms, "entry_x": entry_x,
                                   "entry_y": entry_y, "barred_pair": barred_pair, "c_idx": c_idx, "geoms": geoms})
        return dataclasses.replace(new_state, keys=keys, episodes=episodes, open=open_now), events

    def _events(self, marks, rows, row_ping, row_zone, at, compact, open_now, batch, zones, cargo, seg) -> list[Event]:
        if not len(marks):
            return []
        s = self.settings
        r = np.asarray(marks.index, "int64")
        ping, zone, pair = row_ping[r], row_zone[r], at[r]
        opening = marks.kind == MARK_OPEN
        entry_ms = np.full(len(r), -1, "int64")
        entry_x, entry_y = np.full(len(r), np.nan), np.full(len(r), np.nan)
        entry_ms[opening] = seg["entry_ms"][pair[opening]]  # an opening row always has its pair
        entry_x[opening], entry_y[opening] = seg["entry_x"][pair[opening]], seg["entry_y"][pair[opening]]
        entry_lon, entry_lat = from_metric(entry_x, entry_y)
        close_lon, close_lat = from_metric(seg["p_x"][ping], seg["p_y"][ping])
        texts = iso_times(np.concatenate([entry_ms[opening], seg["t0"][ping][opening], batch.epoch_ms[ping],
                                          seg["p_t"][ping][~opening]]))
        k_open = int(opening.sum())
        entry_text, from_text, ping_text = texts[:k_open], texts[k_open:2 * k_open], texts[2 * k_open:2 * k_open + len(r)]
        last_text = texts[2 * k_open + len(r):]
        entry_local = iso_times(entry_ms[opening], LOCAL_TZ)
        # pings outside: is either end of the entering segment inside the zone? (few: per event)
        ends_inside = np.zeros(len(r), bool)
        if k_open:
            o = np.flatnonzero(opening)
            g = zones.geoms[zone[o]]
            ends_inside[o] = (shapely.intersects(shapely.points(seg["x0"][ping[o]], seg["y0"][ping[o]]), g)
                              | shapely.intersects(shapely.points(batch.x[ping[o]], batch.y[ping[o]]), g))
        # why each close: the first failing stay test, decided exactly (few: per event)
        reasons = np.zeros(len(r), "int8")
        c = np.flatnonzero(~opening)
        if len(c):
            i_c, z_c = ping[c], zone[c]
            x0, y0, x1, y1 = seg["x0"][i_c], seg["y0"][i_c], batch.x[i_c], batch.y[i_c]
            point = (x0 == x1) & (y0 == y1)
            geoms = np.where(point, shapely.points(x1, y1),
                             shapely.linestrings(np.stack([np.column_stack([x0, y0]), np.column_stack([x1, y1])], 1)))
            near = shapely.dwithin(geoms, zones.geoms[z_c], float(s.exit_margin_m))
            barred = cargo.hit[seg["wb_end"][i_c], z_c] | cargo.hit[seg["wb_start"][i_c], z_c]
            reasons[c] = np.where(~near, 0, np.where(~barred, 1, 2))
        events = []
        oi = ci = 0
        for k in range(len(r)):  # one turn per event, not per ping
            i, z, cid = int(ping[k]), int(zone[k]), int(compact[r[k]])
            vehicle = str(batch.vehicle_id[i])
            zone_id = str(zones.ids[z])
            if opening[k]:
                p = int(pair[k])
                wb = int(seg["wb_end"][i]) if seg["hit_end"][p] else int(seg["wb_start"][i])
                classes, uns = cargo.goods_hit(wb, zones.barred[z])
                evidence = {
                    "zone_id": zone_id, "zone_name": None if zones.names[z] is None else str(zones.names[z]),
                    "zone_kind": str(zones.kinds[z]), "closed_from": str(zones.closed_from[z]),
                    "closed_to": str(zones.closed_to[z]), "zone_barred_classes": list(zones.barred[z]),
                    "barred_classes_hit": classes, "un_numbers_hit": uns,
                    "waybill_id": str(cargo.waybill_ids[wb]),
                    "entry_time": entry_text[oi], "entry_time_local": entry_local[oi],
                    "entry_lon": float(entry_lon[k]), "entry_lat": float(entry_lat[k]),
                    "segment_from": from_text[oi] if seg["line"][i] else None, "segment_to": ping_text[k],
                    "pings_outside": not bool(ends_inside[k]),
                    "exit_margin_m": float(s.exit_margin_m),
                }
                event = make_event(RULE_NAME, vehicle, "open", int(marks.start_ms[k]), None, entry_lon[k],
                                   entry_lat[k], int(zones.severity[z]), evidence)
                event = dataclasses.replace(event, episode_id=f"{RULE_NAME}:{vehicle}:{zone_id}:{int(marks.start_ms[k])}")
                open_now[cid] = event
                events.append(event)
                oi += 1
            else:
                opened = open_now.pop(cid, None)
                if opened is None:  # cannot happen: an episode closes only after it opened in this state
                    raise RuntimeError(f"{RULE_NAME}: episode of {vehicle} in {zone_id} closed but never opened")
                reason = CLOSE_REASONS[int(reasons[k])]
                end_ms = int(seg["p_t"][i])
                start_ms = int(opened.start.value // 1_000_000)
                evidence = {**opened.evidence, "last_time": last_text[ci], "closed_by": ping_text[k],
                            "close_reason": reason, "duration_s": (end_ms - start_ms) / 1000.0,
                            "segments": int(marks.pings[k])}
                events.append(dataclasses.replace(
                    opened, phase="close", end=pd.Timestamp(end_ms, unit="ms", tz="UTC"),
                    lon=float(close_lon[k]), lat=float(close_lat[k]), evidence=evidence))
                ci += 1
        return events


def _entries(geoms, zone_geoms, x0, y0, x1, y1, t0, t1, w_start, w_len):
    """Per (segment, zone) pair that intersects: the first closed instant the segment spends
    inside the zone (-1 none) and the interpolated position then."""
    m = len(geoms)
    dx, dy, dt = x1 - x0, y1 - y0, (t1 - t0).astype("float64")
    length2 = dx * dx + dy * dy
    inter = shapely.intersection(geoms, zone_geoms)
    parts, part_of = shapely.get_parts(inter, return_index=True)
    coords, coord_of = shapely.get_coordinates(parts, return_index=True)
    pair = part_of[coord_of]
    with np.errstate(invalid="ignore", divide="ignore"):
        u = ((coords[:, 0] - x0[pair]) * dx[pair] + (coords[:, 1] - y0[pair]) * dy[pair]) / length2[pair]
    u = np.clip(np.where(length2[pair] > 0, u, 0.0), 0.0, 1.0)
    n_parts = len(parts)
    u_lo, u_hi = np.full(n_parts, np.inf), np.full(n_parts, -np.inf)
    np.minimum.at(u_lo, coord_of, u)
    np.maximum.at(u_hi, coord_of, u)
    # a point segment (zero length) is the truck standing there the whole interval
    standing = length2[part_of] == 0
    u_lo[standing], u_hi[standing] = 0.0, 1.0
    # robustness: an intersecting pair whose overlay came out empty counts its whole span
    empty = np.ones(m, bool)
    empty[part_of] = False
    owner = np.concatenate([part_of, np.flatnonzero(empty)])
    u_lo = np.concatenate([u_lo, np.zeros(int(empty.sum()))])
    u_hi = np.concatenate([u_hi, np.ones(int(empty.sum()))])
    a = t0[owner] + np.floor(u_lo * dt[owner]).astype("int64")
    b = t0[owner] + np.ceil(u_hi * dt[owner]).astype("int64")
    first = first_closed_ms(a, w_start[owner], w_len[owner])
    closed = first <= b
    entry = np.full(m, np.iinfo(np.int64).max)
    np.minimum.at(entry, owner[closed], first[closed])
    # where along the segment: the part holding the entry instant (the earliest part wins)
    hit_part = np.flatnonzero(closed & (first == entry[owner]))
    hit_part = hit_part[np.unique(owner[hit_part], return_index=True)[1]]
    pairs = owner[hit_part]
    with np.errstate(invalid="ignore", divide="ignore"):
        u_at = np.where(dt[pairs] > 0, (entry[pairs] - t0[pairs]) / dt[pairs], 0.0)
    u_at = np.clip(u_at, u_lo[hit_part], u_hi[hit_part])
    u_at = np.where(length2[pairs] > 0, u_at, 1.0)  # a standing truck is at its ping
    ex, ey = np.full(m, np.nan), np.full(m, np.nan)
    ex[pairs], ey[pairs] = x0[pairs] + u_at * dx[pairs], y0[pairs] + u_at * dy[pairs]
    entry = np.where(entry == np.iinfo(np.int64).max, -1, entry)
    return entry, ex, ey
