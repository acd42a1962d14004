"""What the dwell rules share: places a stop may be "at", a truck's cargo, and stop-dwell timing.

`illegal_parking` and `suspected_washing` both raise an incident for a stop that has lasted at
least a minimum time outside every place where such a stop is allowed; `media_change_unwashed`
asks whether a stop was at a wash station. The pieces:

* `Places` / `build_places` / `match_places` / `nearest_places`: point places (parking lots,
  service areas, wash stations, repair shops, entities) projected once per world to EPSG:32651
  with a per-place match radius; an STRtree queried with the largest radius (plus slack) only
  narrows the candidates, the exact `shapely.distance` decides (distance <= radius is "at").
  `cached_places` builds a place set once per world and radii (RuleWorld.cached) and
  `empty_stops` says which stops are of an empty truck; together they decide where an empty
  truck "may stand" for suspected_washing and stop_near_sensitive_site alike.
* `WaybillCargo` / `waybill_cargo`: per row of world.waybills its goods' UN numbers and hazard
  classes (the catalogue's class when the waybill line gives none).
* `WaybillSites` / `waybill_sites` / `waybill_site_distances`: per row of world.waybills its
  loading and unloading site (world.entities, EPSG:32651; None when missing) and the exact
  distance of a stop to each (NaN for a missing site). Also used by stop_near_sensitive_site.
* `DwellState` / `step_dwells`: the timing. A qualifying stop (decided by the rule when the stop
  stage confirms it, on the stop's median at confirmation) is kept in the state; the incident
  opens at the first ping of that vehicle whose time t satisfies t - stop start >= min and
  t >= the stop's confirmation, while the stop is still open (t <= its last stopped ping once it
  has closed), and closes when the stop closes (end = the stop's last stopped ping). A stop that
  closes before lasting the minimum leaves silently. The open event's `start` is the stop's
  start (episode id rule:vehicle:stop start); its evidence says when it was decided.

Streaming: the confirming ping of a stop is in the batch whose `stops_opened` carries it, every
later ping of that vehicle comes in that batch or later ones, and the close comes with the
first not-stopped ping; so whichever batch holds the first ping past the minimum, the same ping
opens the incident.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from spatial.crs import geometry_to_metric
from spatial.model import Event, World
from spatial.rules.base import STOP_COLUMNS, RuleBatch, RuleWorld, iso_time

# Engineering defaults (issue 5): a stop's median this close to a designated parking lot,
# service area, wash station or repair shop is at it; 300 m for enterprise sites (loading and
# unloading), as the waybill stage matches unloading stops (waybills.site_match_m).
PLACE_MATCH_M = 150.0
SITE_MATCH_M = 300.0
PLACE_MATCH_SOURCE = "issue 5 (engineering default): a stop's median this close to the place is at it"
SITE_MATCH_SOURCE = "issue 5 (engineering default), as the waybill stage's site_match_m"

# The STRtree query radius is widened by this much so the narrowing can never drop a candidate
# the exact distance test keeps (GEOS' dwithin and distance need not agree to the last ulp).
QUERY_SLACK_REL, QUERY_SLACK_M = 1e-9, 1e-3
NEVER_MS = np.iinfo(np.int64).max


def check_positive(owner: str, settings, names: Sequence[str]) -> None:
    """Every named setting a finite number > 0, else a ValueError naming it."""
    for name in names:
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{owner}.{name} must be a positive finite number, got {value!r}")


def stop_frame(stops: pd.DataFrame | None, what: str, rule: str) -> pd.DataFrame | None:
    """The batch's stop frame with its index reset, None when empty; a frame lacking a stop
    column is refused by name."""
    if stops is None or not len(stops):
        return None
    missing = [c for c in STOP_COLUMNS if c not in stops.columns]
    if missing:
        raise ValueError(f"{rule}: batch.{what} lacks columns {missing}")
    return stops.reset_index(drop=True)


def stop_xy(stops: pd.DataFrame, rule: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = stops["x"].to_numpy("float64"), stops["y"].to_numpy("float64")
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise ValueError(f"{rule}: stop {stops['episode_id'].iloc[int(np.flatnonzero(bad)[0])]!r} "
                         "has no finite metric location x/y")
    return x, y


def empty_stops(stops: pd.DataFrame, waybill: np.ndarray) -> np.ndarray:
    """Per stop: the truck is empty at confirmation, i.e. not (on a waybill, row >= 0, with the
    loaded flag). The waybill stage counts a truck loaded exactly while a waybill is active."""
    return ~(stops["loaded"].to_numpy(bool) & (np.asarray(waybill) >= 0))


def stop_waybills(stops: pd.DataFrame, n_waybills: int, rule: str) -> np.ndarray:
    waybill = stops["waybill"].to_numpy("int64")
    bad = (waybill >= n_waybills) | (waybill < -1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{rule}: stop {stops['episode_id'].iloc[i]!r} has waybill row {waybill[i]}, "
                         f"world.waybills has {n_waybills} rows")
    return waybill


# --- places -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Places:
    """Places a stop can be at: ids, the table each comes from, match radius, metric geometry."""

    ids: np.ndarray  # object
    kinds: np.ndarray  # object: the World table's name ("parking_lots", "entities", …)
    radius_m: np.ndarray  # float64
    geoms: np.ndarray  # shapely, EPSG:32651
    tree: shapely.STRtree

    def __len__(self) -> int:
        return len(self.ids)


def metric_geometries(world: World, table: str, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, EPSG:32651 geometries) of a World table; a missing or empty geometry is refused."""
    frame = world.table(table)
    ids = frame["id"].astype(object).to_numpy() if len(frame) else np.empty(0, object)
    geoms = np.asarray(frame.geometry.to_numpy(), dtype=object) if len(frame) else np.empty(0, object)
    bad = shapely.is_missing(geoms) | shapely.is_empty(geoms) if len(geoms) else np.empty(0, bool)
    if bad.any():
        raise ValueError(f"{rule}: {table} {ids[int(np.flatnonzero(bad)[0])]!r} has no geometry")
    return ids, (np.asarray(geometry_to_metric(geoms), dtype=object) if len(geoms) else geoms)


def build_places(world: World, radius_by_table: Mapping[str, float], rule: str) -> Places:
    ids, kinds, radius, geoms = [], [], [], []
    for table, r in radius_by_table.items():
        table_ids, table_geoms = metric_geometries(world, table, rule)
        ids.append(table_ids)
        geoms.append(table_geoms)
        kinds.append(np.full(len(table_ids), table, dtype=object))
        radius.append(np.full(len(table_ids), float(r)))
    geoms_all = np.concatenate(geoms) if geoms else np.empty(0, object)
    return Places(np.concatenate(ids) if ids else np.empty(0, object),
                  np.concatenate(kinds) if kinds else np.empty(0, object),
                  np.concatenate(radius) if radius else np.empty(0), geoms_all, shapely.STRtree(geoms_all))


def places_key(rule: str, radius_by_table: Mapping[str, float]) -> str:
    """The RuleWorld cache key of a place set (the radii are part of it: settings may differ)."""
    return f"{rule}:places:" + ",".join(f"{t}={float(r)!r}" for t, r in radius_by_table.items())


def cached_places(rw: RuleWorld, radius_by_table: Mapping[str, float], rule: str) -> Places:
    """The place set of these tables and radii, built once per world (`rule` keys the cache and
    names the caller in errors about a bad geometry)."""
    return rw.cached(places_key(rule, radius_by_table), lambda: build_places(rw.world, radius_by_table, rule))


@dataclass(frozen=True)
class PlaceMatch:
    at: np.ndarray  # bool per point: within some place's radius
    place: np.ndarray  # int per point: the nearest such place (row in Places), -1 none
    distance_m: np.ndarray  # its exact distance, NaN none


def match_places(places: Places, x: np.ndarray, y: np.ndarray) -> PlaceMatch:
    """Which points lie within their radius of some place (exact distance; the nearest such
    place, ties to the lower place row)."""
    n = len(x)
    at, place, distance_m = np.zeros(n, bool), np.full(n, -1, "int64"), np.full(n, np.nan)
    if not n or not len(places):
        return PlaceMatch(at, place, distance_m)
    points = shapely.points(x, y)
    reach = float(places.radius_m.max()) * (1 + QUERY_SLACK_REL) + QUERY_SLACK_M
    i, j = places.tree.query(points, predicate="dwithin", distance=reach)
    d = shapely.distance(points[i], places.geoms[j])
    hit = d <= places.radius_m[j]
    i, j, d = i[hit], j[hit], d[hit]
    order = np.lexsort((j, d, i))
    i, j, d = i[order], j[order], d[order]
    first = np.r_[True, i[1:] != i[:-1]] if len(i) else np.empty(0, bool)
    at[i[first]] = True
    place[i[first]] = j[first]
    distance_m[i[first]] = d[first]
    return PlaceMatch(at, place, distance_m)


def nearest_places(places: Places, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point's nearest place (row, -1 when there are none) and its distance (evidence)."""
    n = len(x)
    place, distance_m = np.full(n, -1, "int64"), np.full(n, np.nan)
    if not n or not len(places):
        return place, distance_m
    points = shapely.points(x, y)
    (i, j), d = places.tree.query_nearest(points, return_distance=True, all_matches=True)
    order = np.lexsort((j, d, i))
    i, j, d = i[order], j[order], d[order]
    first = np.r_[True, i[1:] != i[:-1]]
    place[i[first]], distance_m[i[first]] = j[first], d[first]
    return place, distance_m


def place_evidence(places: Places, row: int, distance: float) -> dict | None:
    if row < 0:
        return None
    return {"id": str(places.ids[row]), "kind": str(places.kinds[row]), "distance_m": float(distance),
            "radius_m": float(places.radius_m[row])}


# --- cargo ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WaybillCargo:
    """Per row of world.waybills: its id and its goods' UN numbers and classes, in seq order."""

    ids: np.ndarray  # object
    un_numbers: np.ndarray  # object: tuple of str
    classes: np.ndarray  # object: tuple of str ("" when neither the line nor the catalogue says)


def waybill_cargo(world: World) -> WaybillCargo:
    ids = world.waybills["id"].astype(object).to_numpy() if len(world.waybills) else np.empty(0, object)
    goods = world.waybill_goods
    n = len(ids)
    un_numbers, classes = np.empty(n, dtype=object), np.empty(n, dtype=object)
    un_numbers.fill(())
    classes.fill(())
    if not len(goods) or not n:
        return WaybillCargo(ids, un_numbers, classes)
    row = pd.Index(ids).get_indexer(goods["waybill_id"].astype(object).to_numpy())
    un = goods["un_number"].astype(str).to_numpy(dtype=object)
    cls = goods["hazard_class"].astype(object).fillna("").astype(str).to_numpy(dtype=object)
    catalogue = world.chemicals
    if "hazard_class" in catalogue.columns:
        from_catalogue = catalogue["hazard_class"].reindex(un).astype(object).fillna("").astype(str).to_numpy()
        cls = np.where(cls == "", from_catalogue, cls)
    g = pd.DataFrame({"row": row, "seq": goods["seq"].to_numpy("int64"), "un": un, "cls": cls})
    g = g[g["row"] >= 0].sort_values(["row", "seq"], kind="stable")
    rows = g["row"].to_numpy("int64")
    if len(rows):
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        for r, u, c in zip(rows[starts], np.split(g["un"].to_numpy(), starts[1:]),
                           np.split(g["cls"].to_numpy(), starts[1:])):  # once per world, per waybill
            un_numbers[r], classes[r] = tuple(u), tuple(c)
    return WaybillCargo(ids, un_numbers, classes)


# --- a waybill's own sites ---------------------------------------------------------------------

@dataclass(frozen=True)
class WaybillSites:
    """Per row of world.waybills: its loading / unloading site ids and EPSG:32651 geometries
    (None when the site is not in world.entities, so it can excuse nothing)."""

    loading_id: np.ndarray  # object
    loading: np.ndarray  # shapely geometries or None
    unloading_id: np.ndarray
    unloading: np.ndarray


def waybill_sites(world: World, rule: str) -> WaybillSites:
    """The sites of every waybill row, looked up in world.entities (build once per world with
    RuleWorld.cached; `rule` names the caller in errors about a bad entity geometry)."""
    waybills = world.waybills
    entity_ids, entity_geoms = metric_geometries(world, "entities", rule)
    index = pd.Index(entity_ids)
    out = []
    for column in ("loading_site_id", "unloading_site_id"):
        ids = waybills[column].astype(object).to_numpy() if len(waybills) else np.empty(0, object)
        at = index.get_indexer(ids) if len(index) else np.full(len(ids), -1)
        geoms = np.full(len(ids), None, dtype=object)
        geoms[at >= 0] = entity_geoms[at[at >= 0]]
        out += [ids, geoms]
    return WaybillSites(*out)


def waybill_site_distances(sites: WaybillSites, row: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each metric point's exact distance to its waybill row's loading and unloading site
    (NaN where that site is not in world.entities). `row` must be valid rows (>= 0)."""
    out = []
    for site_geoms in (sites.loading, sites.unloading):
        geoms = site_geoms[row]
        known = ~shapely.is_missing(geoms)
        d = np.full(len(row), np.nan)
        d[known] = shapely.distance(points[known], geoms[known])
        out.append(d)
    return out[0], out[1]


def tank_slots(world: World) -> np.ndarray:
    """Per row of world.vehicles (= slot of a registered truck): whether its body is a tank."""
    vehicles = world.vehicles
    if not len(vehicles):
        return np.zeros(0, bool)
    return (vehicles["body"].astype(object).to_numpy() == "tank").astype(bool)


def is_tank(tanks: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Per slot: a registered tank truck (slots past world.vehicles are unregistered)."""
    slot = np.asarray(slot, "int64")
    inside = (slot >= 0) & (slot < len(tanks))
    out = np.zeros(len(slot), bool)
    out[inside] = tanks[slot[inside]]
    return out


# --- washing ------------------------------------------------------------------------------------

# The one definition of a washing, for the cargo state (spatial/rules/waybills.py) and the washing
# rules alike: a tank truck's stop whose median at confirmation lies within the match radius of an
# approved wash station (DOMAIN.md §5: tanks are cleaned at approved stations), dated by its
# confirming ping. suspected_washing's "at a wash station" is the same place test.
WASH_STATION_MATCH_M = PLACE_MATCH_M


def wash_visits(opened: pd.DataFrame | None, rw: RuleWorld, tanks: np.ndarray, match_m: float, rule: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tank trucks' stops confirmed at a wash station: (slot, confirmed_ms, station id), sorted
    by (slot, confirmed_ms)."""
    none = (np.empty(0, "int64"), np.empty(0, "int64"), np.empty(0, object))
    if opened is None or not len(opened):
        return none
    tank = is_tank(tanks, opened["slot"].to_numpy("int64"))
    if not tank.any():
        return none
    stops = opened[tank]
    stations = cached_places(rw, {"wash_stations": float(match_m)}, f"{rule}:wash")
    x, y = stop_xy(stops, rule)
    match = match_places(stations, x, y)
    slot = stops["slot"].to_numpy("int64")[match.at]
    confirmed = stops["confirmed_ms"].to_numpy("int64")[match.at]
    station = stations.ids[match.place[match.at]] if match.at.any() else np.empty(0, object)
    order = np.lexsort((confirmed, slot))
    return slot[order], confirmed[order], np.asarray(station, dtype=object)[order]


# --- finding pings ------------------------------------------------------------------------------

def first_at_or_after(batch_slot: np.ndarray, batch_ms: np.ndarray, slot: np.ndarray, t_ms: np.ndarray,
                      strictly_before: bool = False) -> np.ndarray:
    """In a (slot, time)-sorted batch: the position of each (slot, t)'s first ping at or after t
    (or, with strictly_before, its last ping before t); -1 when that vehicle has none there.
    Vectorised bisection over all queries."""
    slot = np.asarray(slot, "int64")
    t_ms = np.asarray(t_ms, "int64")
    lo = np.searchsorted(batch_slot, slot, side="left").astype("int64")
    hi = np.searchsorted(batch_slot, slot, side="right").astype("int64")
    first, last = lo.copy(), hi.copy()
    while True:
        searching = lo < hi
        if not searching.any():
            break
        mid = np.where(searching, (lo + hi) // 2, 0)
        before = np.zeros(len(mid), bool)
        before[searching] = batch_ms[mid[searching]] < t_ms[searching]
        lo = np.where(searching & before, mid + 1, lo)
        hi = np.where(searching & ~before, mid, hi)
    if strictly_before:
        return np.where(lo > first, lo - 1, -1)
    return np.where(lo < last, lo, -1)


# --- dwell timing -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DwellState:
    """The qualifying stops still open, one entry per stop (arrays never modified in place)."""

    episode: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, object))
    slot: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, "int64"))
    start_ms: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, "int64"))
    due_ms: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, "int64"))
    # the incident's open Event once raised, else its draft (evidence without the decision)
    event: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, object))
    raised: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, bool))

    def __len__(self) -> int:
        return len(self.episode)

    def take(self, keep: np.ndarray) -> DwellState:
        return DwellState(*(getattr(self, f.name)[keep] for f in dataclasses.fields(self)))


def step_dwells(
    rule: str, min_s: float, min_name: str, state: DwellState, batch: RuleBatch,
    new_stops: pd.DataFrame | None, drafts: Sequence[Event], closed: pd.DataFrame | None,
) -> tuple[DwellState, list[Event]]:
    """Advance the dwell timing by one batch (see the module docstring).

    `new_stops`: the rows of `stops_opened` the rule found qualifying, `drafts` their open Events
    (start = stop start); `closed`: the batch's `stops_closed`. Returns the new state and the
    events, in the order they were decided."""
    min_ms = round(min_s * 1000)
    if new_stops is not None and len(new_stops):
        episode = new_stops["episode_id"].astype(object).to_numpy()
        again = np.isin(episode, state.episode) | pd.Index(episode).duplicated()
        if again.any():
            raise ValueError(f"{rule}: stop {episode[int(np.flatnonzero(again)[0])]!r} was opened twice")
        start = new_stops["start_ms"].to_numpy("int64")
        confirmed = new_stops["confirmed_ms"].to_numpy("int64")
        draft_array = np.empty(len(drafts), dtype=object)
        draft_array[:] = list(drafts)
        state = DwellState(
            np.concatenate([state.episode, episode]),
            np.concatenate([state.slot, new_stops["slot"].to_numpy("int64")]),
            np.concatenate([state.start_ms, start]),
            np.concatenate([state.due_ms, np.maximum(start + min_ms, confirmed)]),
            np.concatenate([state.event, draft_array]),
            np.concatenate([state.raised, np.zeros(len(episode), bool)]),
        )
    if not len(state):
        return state, []

    end_ms = np.full(len(state), NEVER_MS, "int64")
    if closed is not None:
        at = pd.Index(closed["episode_id"].astype(object).to_numpy()).get_indexer(state.episode)
        end_ms[at >= 0] = closed["end_ms"].to_numpy("int64")[at[at >= 0]]
    keyed: list[tuple[int, str, int, Event]] = []
    event, raised = state.event.copy(), state.raised.copy()

    waiting = np.flatnonzero(~raised)
    if len(waiting) and len(batch):
        at = first_at_or_after(batch.slot, batch.epoch_ms, state.slot[waiting], state.due_ms[waiting])
        found = at >= 0
        found[found] = batch.epoch_ms[at[found]] <= end_ms[waiting[found]]
        for k, p in zip(waiting[found], at[found]):  # one turn per incident raised
            t = int(batch.epoch_ms[p])
            draft = event[k]
            evidence = {**draft.evidence, "decided": iso_time(t),
                        "dwell_s": (t - int(state.start_ms[k])) / 1000.0, min_name: float(min_s)}
            event[k] = dataclasses.replace(draft, evidence=evidence)
            raised[k] = True
            keyed.append((t, draft.subject_id, 0, event[k]))

    ending = np.flatnonzero(end_ms != NEVER_MS)
    for k in ending[raised[ending]]:  # one turn per incident closing
        opening, end = event[k], int(end_ms[k])
        start = int(state.start_ms[k])
        if end < start:
            raise ValueError(f"{rule}: stop {state.episode[k]!r} closes at end_ms {end}, before its start {start}")
        evidence = {**opening.evidence, "stop_end": iso_time(end), "duration_s": (end - start) / 1000.0}
        closing = dataclasses.replace(opening, phase="close", end=pd.Timestamp(end, unit="ms", tz="UTC"),
                                      evidence=evidence)
        keyed.append((end, closing.subject_id, 1, closing))

    keep = end_ms == NEVER_MS
    new_state = DwellState(state.episode, state.slot, state.start_ms, state.due_ms, event, raised).take(keep)
    keyed.sort(key=lambda k: k[:3])
    return new_state, [k[3] for k in keyed]


class DwellRule:
    """The shape of the rules about a stop that lasts too long where it should not (illegal
    parking, suspected washing): subclasses set `name`, `settings` and `min_setting` (the
    settings field with the minimum dwell in s) and pick the qualifying stops in `_qualifying`."""

    name: str
    min_setting: str
    settings: object

    def initial_state(self) -> DwellState:
        return DwellState()

    def step(self, state: DwellState, batch, world) -> tuple[DwellState, list]:
        opened = stop_frame(batch.stops_opened, "stops_opened", self.name)
        closed = stop_frame(batch.stops_closed, "stops_closed", self.name)
        if opened is None and not len(state):
            return state, []
        new_stops, drafts = self._qualifying(opened, world) if opened is not None else (None, [])
        return step_dwells(self.name, getattr(self.settings, self.min_setting), self.min_setting, state, batch,
                           new_stops, drafts, closed)

    def _qualifying(self, stops, world):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

