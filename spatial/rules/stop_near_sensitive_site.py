"""Stop near a sensitive site: a truck's stop whose location lies within a protected target's radius.

One incident per stop, whatever the number of sites around it: it opens when the stop stage
confirms the stop (start = the stop's first ping) and closes when the stop closes. The event
names the site that makes it most serious (lowest severity number, then nearest, then the
world's site order) and lists every other site within its radius in the evidence. Only
stops that raised an incident are remembered (by stop episode id); the close of any other stop,
or of one opened before this rule's state began, passes silently.

A stop the waybill plans raises nothing (`exempt_own_sites`, on by default): a stop on a
waybill (waybill row >= 0 at its confirmation, loaded flag or not) whose median location lies
within `own_site_match_m` (300 m, as illegal_parking's `waybill_site_match_m` and the waybill
stage's unloading match) of that waybill's loading or unloading site (world.entities, exact
EPSG:32651 distance, distance <= radius is "at"). Loading and unloading at a plant that lies
near a school is the plant's siting, handled elsewhere (major-hazard grading), not the truck's
doing. Only the waybill in force at confirmation counts: the waybill stage keeps the stop that
unloads on the waybill it ends, so that stop is exempt. A site missing from world.entities
exempts nothing.

An empty truck is excused only where it has business (issue 11: an exemption as narrow as its
reason). Schools, hospitals and research institutes are registered chemical users, so "near some
enterprise" excused an empty truck at every school and hospital of the demo world; now:
* `exempt_adjacent_sites` (on): a stop of an empty truck (not loaded: no waybill in force, or the
  loaded flag false) within `own_site_match_m` of the unloading site of its previous waybill (the
  latest that departed at or before the confirmation: it stands where it unloaded) or the loading
  site of its next one (the first departing after: it waits for its next load), by the truck's
  own waybills (spatial/rules/waybills.py's index: cancelled ones do not count);
* `exempt_empty_at_places` (on): a stop of an empty truck within `*_match_m` (150 m) of a
  designated parking lot, service area, wash station or repair shop (spatial/rules/dwell.py
  `cached_places` / `match_places`: an STRtree narrows, the exact EPSG:32651 distance decides,
  distance <= radius is "at"). Any other enterprise site, however near, excuses nothing.
A loaded truck is excused only at its own waybill's sites.

Measured on the demo world (seed 7, scale 0.05, the simulated fleet from 06:00 for 12 h, the
engine's stop stage; tests/rules/test_cargo_state.py prints it): see docs/architecture.md,
"stop near a sensitive site: what each exemption silences".

Cargo state (ADR 1.1.3.6, 4.3.2.4; the waybill stage's `residue` column of the stops): an empty
tank truck not washed since its last waybill ended still carries that cargo's residue; its stop
near a site is judged as "other cargo" (severity of that column, `cargo` "residue" in the
evidence, with `residue_waybill_id` and `residue_un_numbers`), never widened by the ERG distances
(they are for a spill of a full load). A stop frame without the column carries no residue.

Either exemption drops the whole stop; a raised stop's evidence is unchanged.

Radius of a site: its kind's setting (schools, kindergartens, hospitals, elderly homes 300 m;
residential and government 200 m; drinking-water protection zones inside or within 100 m),
measured from the site's geometry, so a stop inside a polygon is at distance 0. For a *loaded*
truck (loaded flag and a waybill) near a site that protects people (`erg_widened_kinds`), the
radius widens to the cargo's ERG 2016 small-spill protective-action distance when that is
larger: the largest over the waybill's goods, each good's day or night figure, falling back to
its initial isolation distance when the catalogue gives no day/night figure for it. A good
whose UN number is not in the catalogue (`world.chemicals`) cannot widen anything: the kind's
radius stands and the evidence lists it under `goods_not_in_catalogue`.

Day or night is read at the stop's *confirmation* (the confirming ping's time, Asia/Shanghai):
that is when the rule decides and the duty officer acts, and the ERG's day/night split stands
for the atmospheric conditions when protective action is taken. Day is
[day_starts_local_hour, night_starts_local_hour), i.e. 06:00 inclusive to 20:00 exclusive.
The decision is not revisited during the stop (the rule sees stops, not pings): a stop confirmed
at 19:59 keeps its day radius after 20:00.

Severity (1 highest … 4), by site kind and cargo; the incident takes the most serious site:

    site kind                                      acute cargo   other cargo   empty / no waybill
    school, kindergarten, hospital, elderly_home        1             2               3
    government (important target)                       2             3               4
    residential                                         2             3               4
    water_protection (drinking-water zone)              2             2               4

"acute cargo": the loaded truck carries a good of class 1 (explosives), 2.1 (flammable gas) or
2.3 (toxic gas), or a toxic-by-inhalation substance (one the catalogue gives ERG Table 1
day/night distances for). "other cargo": loaded with anything else, or an empty tank's uncleaned residue. A drinking-water zone fears
a spill of any cargo alike, hence no acute/other split there.

Evidence (plain JSON values): the leading site's `site_id`, `site_kind`, `site_name`,
`distance_m`, `radius_m`, `radius_source` ("kind" or "erg") and `kind_radius_m`; `other_sites`
(each with site_id, kind, name, distance_m, radius_m, radius_source, severity) and `site_count`;
`loaded`, `waybill_id`, `goods_un_numbers`, `goods_not_in_catalogue`, `goods_without_erg`,
`cargo` (acute | other | residue | empty), `residue_waybill_id`, `residue_un_numbers`; for a loaded truck `erg_period` (day | night), `erg_radius_m`,
`erg_un_number` (the good that sets it) and `erg_figure` (protective_action | isolation);
`stop_episode_id`, `stop_start`, `stop_confirmed`, `stop_confirmed_local`; a close adds
`stop_end` and `duration_s`.

Exactness: site geometries are projected to EPSG:32651 once per world (`RuleWorld.cached`) into
an STRtree; the tree, queried with each stop's largest possible radius (plus a millimetre of
slack), only narrows the candidates, and each candidate is decided by the exact
`shapely.distance` against that site's own radius for that stop (distance <= radius is inside).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from types import MappingProxyType

import numpy as np
import pandas as pd
import shapely

from spatial.crs import geometry_to_metric
from spatial.model import SENSITIVE_SITE_KINDS, Event, World
from spatial.rules.base import (
    STOP_COLUMNS,
    RuleBatch,
    RuleWorld,
    iso_times,
    make_event,
    setting,
)
from spatial.rules.dwell import (
    PLACE_MATCH_M,
    PLACE_MATCH_SOURCE,
    SITE_MATCH_M,
    WASH_STATION_MATCH_M,
    SITE_MATCH_SOURCE,
    WaybillSites,
    cached_places,
    check_positive,
    empty_stops,
    match_places,
    stop_waybills,
    stop_xy,
    waybill_site_distances,
    waybill_sites,
)
from spatial.rules.waybills import adjacent_waybills

RULE_NAME = "stop_near_sensitive_site"
# Shown on screen and in reports in local time; China has had no DST since 1991.
LOCAL_TZ = "Asia/Shanghai"

HIGH_SENSITIVITY_KINDS = ("school", "kindergarten", "hospital", "elderly_home")
_PEOPLE_KINDS = (*HIGH_SENSITIVITY_KINDS, "residential", "government")

# Cargo tiers (columns of SEVERITY_BY_KIND).
CARGO_ACUTE, CARGO_OTHER, CARGO_EMPTY = 0, 1, 2
CARGO_NAMES = ("acute", "other", "empty")
# GB 6944 / UN: explosives (1.x), flammable gases (2.1), toxic gases (2.3).
ACUTE_HAZARD_CLASSES = ("2.1", "2.3")
ACUTE_HAZARD_CLASS_PREFIX = "1."

SEVERITY_BY_KIND: Mapping[str, tuple[int, int, int]] = MappingProxyType({
    "school": (1, 2, 3),
    "kindergarten": (1, 2, 3),
    "hospital": (1, 2, 3),
    "elderly_home": (1, 2, 3),
    "government": (2, 3, 4),
    "residential": (2, 3, 4),
    "water_protection": (2, 2, 4),
})

_HIGH_SENSITIVITY_SOURCE = (
    "GB/T 37243-2019 high-sensitivity protected target (DOMAIN.md §7); 300 m: issue 4 (engineering default)"
)
_PEOPLE_SOURCE = "GB/T 37243-2019 protected target (DOMAIN.md §7); 200 m: issue 4 (engineering default)"
# The STRtree query radius is widened by this much (relative and absolute) so the narrowing can
# never drop a candidate the exact distance test would keep (GEOS' prepared dwithin and
# distance need not agree to the last ulp).
_QUERY_SLACK_REL, _QUERY_SLACK_M = 1e-9, 1e-3


@dataclass(frozen=True)
class StopNearSensitiveSiteSettings:
    school_radius_m: float = setting(300.0, "m", _HIGH_SENSITIVITY_SOURCE)
    kindergarten_radius_m: float = setting(300.0, "m", _HIGH_SENSITIVITY_SOURCE)
    hospital_radius_m: float = setting(300.0, "m", _HIGH_SENSITIVITY_SOURCE)
    elderly_home_radius_m: float = setting(300.0, "m", _HIGH_SENSITIVITY_SOURCE)
    residential_radius_m: float = setting(200.0, "m", _PEOPLE_SOURCE)
    government_radius_m: float = setting(200.0, "m", _PEOPLE_SOURCE)
    water_protection_radius_m: float = setting(
        100.0, "m", "drinking-water source protection zone: inside or within 100 m, issue 4 (engineering default)")
    # ERG protective-action distances protect people downwind of a toxic release; a drinking-water
    # zone is threatened by a spill, not by vapour, so it keeps its own radius.
    erg_widened_kinds: tuple[str, ...] = setting(
        _PEOPLE_KINDS, "", "ERG 2016 Table 1 small-spill protective action distances (DOMAIN.md §7) "
        "apply to sites where people are (engineering default)")
    day_starts_local_hour: int = setting(
        6, "h", "ERG 2016 'day' (sunrise to sunset) taken as 06:00 Asia/Shanghai, issue 4 (engineering default)")
    night_starts_local_hour: int = setting(
        20, "h", "ERG 2016 'night' (sunset to sunrise) taken from 20:00 Asia/Shanghai, issue 4 (engineering default)")
    own_site_match_m: float = setting(SITE_MATCH_M, "m", SITE_MATCH_SOURCE)
    exempt_own_sites: bool = setting(
        True, "flag", "(engineering default) a stop the waybill plans (loading / unloading at its own sites) "
        "is not a violation of the truck")
    exempt_adjacent_sites: bool = setting(
        True, "flag", "(engineering default) an empty truck at its previous waybill's unloading site or its next "
        "waybill's loading site has business there")
    exempt_empty_at_places: bool = setting(
        True, "flag", "(engineering default) an empty truck standing at a designated lot, a service area, a wash "
        "station or a repair shop is where it may stand")
    parking_lot_match_m: float = setting(PLACE_MATCH_M, "m", PLACE_MATCH_SOURCE)
    service_area_match_m: float = setting(PLACE_MATCH_M, "m", PLACE_MATCH_SOURCE)
    wash_station_match_m: float = setting(WASH_STATION_MATCH_M, "m", PLACE_MATCH_SOURCE)
    repair_shop_match_m: float = setting(PLACE_MATCH_M, "m", PLACE_MATCH_SOURCE)

    def __post_init__(self):
        check_positive("StopNearSensitiveSiteSettings", self, (
            "own_site_match_m", "parking_lot_match_m", "service_area_match_m",
            "wash_station_match_m", "repair_shop_match_m"))
        for flag in ("exempt_own_sites", "exempt_adjacent_sites", "exempt_empty_at_places"):
            value = getattr(self, flag)
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{RULE_NAME}: {flag} must be True or False, got {value!r}")
        for kind in SENSITIVE_SITE_KINDS:
            value = getattr(self, f"{kind}_radius_m")
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"{RULE_NAME}: {kind}_radius_m must be a finite number >= 0, got {value!r}")
        if isinstance(self.erg_widened_kinds, str):
            raise TypeError(f"{RULE_NAME}: erg_widened_kinds must be a sequence of kinds, not a string")
        unknown = [k for k in self.erg_widened_kinds if k not in SENSITIVE_SITE_KINDS]
        if unknown:
            raise ValueError(f"{RULE_NAME}: erg_widened_kinds {unknown} are not sensitive-site kinds "
                             f"{list(SENSITIVE_SITE_KINDS)}")
        object.__setattr__(self, "erg_widened_kinds", tuple(self.erg_widened_kinds))
        day, night = self.day_starts_local_hour, self.night_starts_local_hour
        if not (isinstance(day, int) and isinstance(night, int) and 0 <= day < night <= 24):
            raise ValueError(f"{RULE_NAME}: need whole hours 0 <= day_starts_local_hour < night_starts_local_hour "
                             f"<= 24, got {day!r} and {night!r}")

    def empty_place_radius_by_table(self) -> dict[str, float]:
        """Where an empty truck may stand: World table -> match radius (m)."""
        return {"parking_lots": self.parking_lot_match_m, "service_areas": self.service_area_match_m,
                "wash_stations": self.wash_station_match_m, "repair_shops": self.repair_shop_match_m}

    def kind_radius_m(self, kind: str) -> float:
        if kind not in SENSITIVE_SITE_KINDS:
            raise ValueError(f"{RULE_NAME}: {kind!r} is not a sensitive-site kind {list(SENSITIVE_SITE_KINDS)}")
        return float(getattr(self, f"{kind}_radius_m"))


@dataclass(frozen=True)
class StopNearSensitiveSiteState:
    """The open incidents: stop episode id -> the open event of its incident (closed with it)."""

    open: Mapping[str, Event] = dataclasses.field(default_factory=dict)


# --- what is prepared once per world --------------------------------------------------------

@dataclass(frozen=True)
class _Sites:
    ids: np.ndarray  # object
    names: np.ndarray  # object
    kind_code: np.ndarray  # int64, position in SENSITIVE_SITE_KINDS
    geoms: np.ndarray  # shapely, EPSG:32651
    tree: shapely.STRtree


def _prepare_sites(world: World) -> _Sites:
    sites = world.sensitive_sites
    if sites.crs is not None and sites.crs.to_epsg() != 4326:
        raise ValueError(f"{RULE_NAME}: world.sensitive_sites must be WGS-84 (EPSG:4326), found {sites.crs}")
    ids = sites["id"].astype(object).to_numpy()
    kinds = sites["kind"].astype(object).to_numpy()
    code = pd.Index(SENSITIVE_SITE_KINDS).get_indexer(kinds)
    if (code < 0).any():
        i = int(np.flatnonzero(code < 0)[0])
        raise ValueError(f"{RULE_NAME}: sensitive site {ids[i]!r} has kind {kinds[i]!r}, not one of "
                         f"{list(SENSITIVE_SITE_KINDS)}")
    geoms = np.asarray(sites.geometry.to_numpy(), dtype=object)
    bad = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    bad[~bad] = ~shapely.is_valid(geoms[~bad])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{RULE_NAME}: sensitive site {ids[i]!r} has a missing, empty or invalid geometry "
                         f"({shapely.is_valid_reason(geoms[i]) if geoms[i] is not None else 'None'})")
    metric = geometry_to_metric(geoms) if len(geoms) else geoms
    names = sites["name"].astype(object).to_numpy()
    return _Sites(ids, names, code.astype("int64"), np.asarray(metric, dtype=object), shapely.STRtree(metric))


@dataclass(frozen=True)
class _Cargo:
    """Per row of world.waybills: the cargo's ERG distances and what the evidence says of it."""

    waybill_ids: np.ndarray  # object
    day_m: np.ndarray  # float, NaN when no good has a figure
    day_un: np.ndarray  # object, the good that sets day_m
    day_figure: np.ndarray  # object: "protective_action" | "isolation" | None
    night_m: np.ndarray
    night_un: np.ndarray
    night_figure: np.ndarray
    acute: np.ndarray  # bool
    goods_un: np.ndarray  # object: list of UN numbers in seq order
    not_in_catalogue: np.ndarray  # object: list
    without_erg: np.ndarray  # object: list (in the catalogue, no ERG distance at all)


_ERG_COLUMNS = ("hazard_class", "erg_isolation_m", "erg_day_m", "erg_night_m")


def _prepare_cargo(world: World) -> _Cargo:
    waybill_ids = world.waybills["id"].astype(object).to_numpy()
    n = len(waybill_ids)
    goods = world.waybill_goods
    row = pd.Index(waybill_ids).get_indexer(goods["waybill_id"].astype(object).to_numpy())
    un = goods["un_number"].astype(object).to_numpy()
    g = pd.DataFrame({
        "row": row, "seq": goods["seq"].to_numpy("int64"), "un": un,
        "cls": goods["hazard_class"].astype(object).fillna("").to_numpy(),
    })[row >= 0]

    catalogue = world.chemicals
    if all(c in catalogue.columns for c in _ERG_COLUMNS):
        in_catalogue = g["un"].isin(catalogue.index).to_numpy()
        figures = catalogue.loc[:, list(_ERG_COLUMNS)].reindex(g["un"].to_numpy())
        iso = figures["erg_isolation_m"].to_numpy("float64")
        day = figures["erg_day_m"].to_numpy("float64")
        night = figures["erg_night_m"].to_numpy("float64")
        catalogue_cls = figures["hazard_class"].astype(object).fillna("").to_numpy()
    else:  # no catalogue loaded: every good is unknown to it
        in_catalogue = np.zeros(len(g), bool)
        iso = day = night = np.full(len(g), np.nan)
        catalogue_cls = np.full(len(g), "", dtype=object)
    cls = np.where(g["cls"].to_numpy() != "", g["cls"].to_numpy(), catalogue_cls).astype(str)
    tih = ~np.isnan(day) | ~np.isnan(night)
    g["acute"] = np.char.startswith(cls, ACUTE_HAZARD_CLASS_PREFIX) | np.isin(cls, ACUTE_HAZARD_CLASSES) | tih
    g["not_in_catalogue"] = ~in_catalogue
    g["without_erg"] = in_catalogue & np.isnan(iso) & np.isnan(day) & np.isnan(night)
    # Each good's distance for the period: its Table 1 figure, else its initial isolation distance.
    g["day_m"], g["day_pa"] = np.where(np.isnan(day), iso, day), ~np.isnan(day)
    g["night_m"], g["night_pa"] = np.where(np.isnan(night), iso, night), ~np.isnan(night)

    out = {}
    for period in ("day", "night"):
        # The good with the largest distance per waybill; a protective-action figure before an
        # equal isolation one, then the first in seq order.
        best = g.sort_values(["row", f"{period}_m", f"{period}_pa", "seq"], ascending=[True, False, False, True],
                             na_position="last").drop_duplicates("row")
        best = best[best[f"{period}_m"].notna()]
        metres = np.full(n, np.nan)
        metres[best["row"].to_numpy()] = best[f"{period}_m"].to_numpy()
        un_of = np.full(n, None, dtype=object)
        un_of[best["row"].to_numpy()] = best["un"].to_numpy()
        figure = np.full(n, None, dtype=object)
        figure[best["row"].to_numpy()] = np.where(best[f"{period}_pa"].to_numpy(), "protective_action", "isolation")
        out[period] = (metres, un_of, figure)

    ordered = g.sort_values(["row", "seq"])
    ordered_row = ordered["row"].to_numpy("int64")
    ordered_un = ordered["un"].to_numpy(dtype=object)

    def per_row(mask: np.ndarray | None = None) -> np.ndarray:
        """The UN numbers of each waybill row's goods (those under `mask`), in seq order."""
        rows, uns = (ordered_row, ordered_un) if mask is None else (ordered_row[mask], ordered_un[mask])
        lists = np.empty(n, dtype=object)
        lists.fill(())
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else np.empty(0, "int64")
        for r, un_numbers in zip(rows[starts], np.split(uns, starts[1:])):  # once per world, per waybill
            lists[r] = tuple(un_numbers)
        return lists

    acute = np.zeros(n, bool)
    np.logical_or.at(acute, ordered_row, ordered["acute"].to_numpy(bool))
    return _Cargo(
        waybill_ids=waybill_ids,
        day_m=out["day"][0], day_un=out["day"][1], day_figure=out["day"][2],
        night_m=out["night"][0], night_un=out["night"][1], night_figure=out["night"][2],
        acute=acute,
        goods_un=per_row(),
        not_in_catalogue=per_row(ordered["not_in_catalogue"].to_numpy(bool)),
        without_erg=per_row(ordered["without_erg"].to_numpy(bool)),
    )


_SITES_KEY = f"{RULE_NAME}:sites"
_CARGO_KEY = f"{RULE_NAME}:cargo"
_OWN_SITES_KEY = f"{RULE_NAME}:own_sites"


# --- the rule -------------------------------------------------------------------------------

def _stop_frame(stops: pd.DataFrame | None, what: str) -> pd.DataFrame | None:
    if stops is None or not len(stops):
        return None
    missing = [c for c in STOP_COLUMNS if c not in stops.columns]
    if missing:
        raise ValueError(f"{RULE_NAME}: batch.{what} lacks columns {missing}")
    return stops.reset_index(drop=True)



class StopNearSensitiveSiteRule:
    """A truck's stop within the radius of a sensitive site (see the module docstring)."""

    name = RULE_NAME

    def __init__(self, settings: StopNearSensitiveSiteSettings | None = None):
        self.settings = settings if settings is not None else StopNearSensitiveSiteSettings()

    def initial_state(self) -> StopNearSensitiveSiteState:
        return StopNearSensitiveSiteState({})

    def step(
        self, state: StopNearSensitiveSiteState, batch: RuleBatch, world: RuleWorld
    ) -> tuple[StopNearSensitiveSiteState, list[Event]]:
        opened = _stop_frame(batch.stops_opened, "stops_opened")
        closed = _stop_frame(batch.stops_closed, "stops_closed")
        if opened is None and (closed is None or not state.open):
            return state, []
        open_now = dict(state.open)
        keyed: list[tuple[int, str, int, Event]] = []  # (time, subject, phase order, event)

        if opened is not None:
            for stop_episode, confirmed_ms, event in self._decide(opened, world):
                if stop_episode in open_now:
                    raise ValueError(f"{RULE_NAME}: stop {stop_episode!r} was opened twice")
                open_now[stop_episode] = event
                keyed.append((confirmed_ms, event.subject_id, 0, event))

        if closed is not None and open_now:
            mine = closed[closed["episode_id"].isin(list(open_now))]  # stops that raised an incident
            episodes, end_ms = mine["episode_id"].to_numpy(dtype=object), mine["end_ms"].to_numpy("int64")
            end_text, end_stamp = iso_times(end_ms), pd.to_datetime(end_ms, unit="ms", utc=True)
            for k, stop_episode in enumerate(episodes):  # one turn per closing incident
                opening = open_now.pop(stop_episode)
                start_ms = int(opening.start.value // 1_000_000)
                if end_ms[k] < start_ms:
                    raise ValueError(f"{RULE_NAME}: stop {stop_episode!r} closes at end_ms {int(end_ms[k])}, "
                                     f"before its start {start_ms}")
                evidence = {**opening.evidence, "stop_end": end_text[k],
                            "duration_s": float(end_ms[k] - start_ms) / 1000.0}
                closing = dataclasses.replace(opening, phase="close", end=end_stamp[k], evidence=evidence)
                keyed.append((int(end_ms[k]), closing.subject_id, 1, closing))

        keyed.sort(key=lambda k: k[:3])
        return StopNearSensitiveSiteState(open_now), [k[3] for k in keyed]

    def _exempt(self, stops: pd.DataFrame, x: np.ndarray, y: np.ndarray, waybill: np.ndarray,
                rw: RuleWorld) -> np.ndarray:
        """Per stop: exempt, i.e. a stop the waybill plans (at its own loading / unloading site) or
        an empty truck where it has business (see the module docstring)."""
        s = self.settings
        exempt = np.zeros(len(stops), bool)
        has_waybill = waybill >= 0
        own_sites: WaybillSites | None = None
        if s.exempt_own_sites and has_waybill.any():
            # A stop the waybill plans (loading / unloading at its own sites) is not the truck's doing.
            own_sites = rw.cached(_OWN_SITES_KEY, lambda: waybill_sites(rw.world, RULE_NAME))
            on = np.flatnonzero(has_waybill)
            loading_m, unloading_m = waybill_site_distances(own_sites, waybill[on], shapely.points(x[on], y[on]))
            exempt[on] = (loading_m <= s.own_site_match_m) | (unloading_m <= s.own_site_match_m)  # NaN: False
        empty = empty_stops(stops, waybill)
        if s.exempt_adjacent_sites and (empty & ~exempt).any():
            # An empty truck where it unloaded last or waits for its next load.
            own_sites = own_sites or rw.cached(_OWN_SITES_KEY, lambda: waybill_sites(rw.world, RULE_NAME))
            ask = np.flatnonzero(empty & ~exempt)
            previous, following = adjacent_waybills(rw, stops["slot"].to_numpy("int64")[ask],
                                                    stops["confirmed_ms"].to_numpy("int64")[ask])
            points = shapely.points(x[ask], y[ask])
            near = np.zeros(len(ask), bool)
            for rows, which in ((previous, 1), (following, 0)):  # unloading site of the previous, loading of the next
                has = rows >= 0
                if has.any():
                    distances = waybill_site_distances(own_sites, rows[has], points[has])
                    near[has] |= distances[which] <= s.own_site_match_m  # NaN: False
            exempt[ask] = near
        if s.exempt_empty_at_places:
            # A designated lot, service area, wash station or repair shop: decided as
            # suspected_washing decides "outside every place it may".
            ask = np.flatnonzero(empty & ~exempt)
            if len(ask):
                places = cached_places(rw, s.empty_place_radius_by_table(), RULE_NAME)
                exempt[ask] = match_places(places, x[ask], y[ask]).at
        return exempt

    def _decide(self, stops: pd.DataFrame, rw: RuleWorld) -> list[tuple[str, int, Event]]:
        """The incidents the given newly confirmed stops open: (stop episode id, confirmed_ms, event)."""
        sites = rw.cached(_SITES_KEY, lambda: _prepare_sites(rw.world))
        cargo = rw.cached(_CARGO_KEY, lambda: _prepare_cargo(rw.world))
        s = self.settings
        x, y = stop_xy(stops, RULE_NAME)
        waybill = stop_waybills(stops, len(cargo.waybill_ids), RULE_NAME)
        if not len(sites.ids):
            return []
        exempt = self._exempt(stops, x, y, waybill, rw)
        if exempt.any():
            keep = ~exempt
            stops, x, y, waybill = stops[keep].reset_index(drop=True), x[keep], y[keep], waybill[keep]
            if not len(stops):
                return []
        has_waybill = waybill >= 0
        confirmed_ms = stops["confirmed_ms"].to_numpy("int64")
        loaded_flag = stops["loaded"].to_numpy(bool)
        loaded = loaded_flag & has_waybill
        row = np.where(has_waybill, waybill, 0)
        # an empty tank not washed since its last waybill still carries that cargo (ADR 1.1.3.6)
        residue = (stops["residue"].to_numpy("int64") if "residue" in stops.columns
                   else np.full(len(stops), -1, "int64"))
        residue = np.where(loaded | (residue >= len(cargo.waybill_ids)), -1, residue)

        hour = pd.DatetimeIndex(pd.to_datetime(confirmed_ms, unit="ms", utc=True)).tz_convert(LOCAL_TZ).hour
        day = (np.asarray(hour) >= s.day_starts_local_hour) & (np.asarray(hour) < s.night_starts_local_hour)
        if len(cargo.waybill_ids):
            erg_m = np.where(loaded, np.where(day, cargo.day_m[row], cargo.night_m[row]), np.nan)
            acute = cargo.acute[row]
        else:
            erg_m, acute = np.full(len(stops), np.nan), np.zeros(len(stops), bool)
        # residue: "other cargo" whatever it was, and no ERG widening (the distances are for a full load)
        tier = np.where(loaded, np.where(acute, CARGO_ACUTE, CARGO_OTHER),
                        np.where(residue >= 0, CARGO_OTHER, CARGO_EMPTY))
        cargo_name = np.where(loaded | (residue < 0), np.array(CARGO_NAMES, dtype=object)[tier], "residue")

        kind_radius = np.array([s.kind_radius_m(k) for k in SENSITIVE_SITE_KINDS])
        kind_widened = np.isin(np.array(SENSITIVE_SITE_KINDS), s.erg_widened_kinds)
        site_radius = kind_radius[sites.kind_code]
        site_widened = kind_widened[sites.kind_code]
        severity_table = np.array([SEVERITY_BY_KIND[k] for k in SENSITIVE_SITE_KINDS], dtype="int64")

        # Narrow: each stop's largest possible radius over all sites (NaN ERG ignored by fmax).
        r_max = np.fmax(site_radius.max(), erg_m if site_widened.any() else np.nan)
        points = shapely.points(x, y)
        stop_i, site_j = sites.tree.query(points, predicate="dwithin",
                                          distance=r_max * (1 + _QUERY_SLACK_REL) + _QUERY_SLACK_M)
        # Decide: exact distance against this site's radius for this stop.
        distance = shapely.distance(points[stop_i], sites.geoms[site_j])
        own = site_radius[site_j]
        erg_wins = site_widened[site_j] & (erg_m[stop_i] > own)  # NaN compares False
        radius = np.where(erg_wins, erg_m[stop_i], own)
        hit = distance <= radius
        stop_i, site_j, distance, radius, erg_wins = (a[hit] for a in (stop_i, site_j, distance, radius, erg_wins))
        severity = severity_table[sites.kind_code[site_j], tier[stop_i]]
        order = np.lexsort((site_j, distance, severity, stop_i))
        stop_i, site_j, distance, radius, erg_wins, severity = (
            a[order] for a in (stop_i, site_j, distance, radius, erg_wins, severity))

        episode = stops["episode_id"].astype(object).to_numpy()
        vehicle = stops["vehicle_id"].astype(object).to_numpy()
        start_ms = stops["start_ms"].to_numpy("int64")
        lon, lat = stops["lon"].to_numpy("float64"), stops["lat"].to_numpy("float64")
        incident = stop_i[np.r_[True, stop_i[1:] != stop_i[:-1]]] if len(stop_i) else np.empty(0, "int64")
        start_text = np.empty(len(stops), dtype=object)
        confirmed_text, confirmed_local = start_text.copy(), start_text.copy()
        start_text[incident] = iso_times(start_ms[incident])
        confirmed_text[incident] = iso_times(confirmed_ms[incident])
        confirmed_local[incident] = iso_times(confirmed_ms[incident], LOCAL_TZ)
        out = []
        bounds = np.flatnonzero(np.r_[True, stop_i[1:] != stop_i[:-1], True]) if len(stop_i) else []
        for a, b in pairwise(bounds):  # one loop turn per incident
            i = int(stop_i[a])
            found = [
                {
                    "site_id": str(sites.ids[j]), "kind": SENSITIVE_SITE_KINDS[sites.kind_code[j]],
                    "name": None if sites.names[j] is None else str(sites.names[j]),
                    "distance_m": float(distance[k]), "radius_m": float(radius[k]),
                    "radius_source": "erg" if erg_wins[k] else "kind", "severity": int(severity[k]),
                }
                for k, j in zip(range(a, b), site_j[a:b])
            ]
            r = int(row[i])
            with_waybill = bool(has_waybill[i])
            period = "day" if day[i] else "night"
            erg_known = bool(loaded[i]) and not np.isnan(erg_m[i])
            primary = found[0]
            evidence = {
                "stop_episode_id": str(episode[i]),
                "site_id": primary["site_id"], "site_kind": primary["kind"], "site_name": primary["name"],
                "distance_m": primary["distance_m"], "radius_m": primary["radius_m"],
                "radius_source": primary["radius_source"],
                "kind_radius_m": s.kind_radius_m(primary["kind"]),
                "other_sites": found[1:], "site_count": len(found),
                "loaded": bool(loaded_flag[i]),
                "waybill_id": str(cargo.waybill_ids[r]) if with_waybill else None,
                "goods_un_numbers": list(cargo.goods_un[r]) if with_waybill else [],
                "goods_not_in_catalogue": list(cargo.not_in_catalogue[r]) if with_waybill else [],
                "goods_without_erg": list(cargo.without_erg[r]) if with_waybill else [],
                "cargo": str(cargo_name[i]),
                "residue_waybill_id": str(cargo.waybill_ids[residue[i]]) if residue[i] >= 0 else None,
                "residue_un_numbers": list(cargo.goods_un[residue[i]]) if residue[i] >= 0 else [],
                "erg_period": period if loaded[i] else None,
                "erg_radius_m": float(erg_m[i]) if erg_known else None,
                "erg_un_number": (cargo.day_un if day[i] else cargo.night_un)[r] if erg_known else None,
                "erg_figure": (cargo.day_figure if day[i] else cargo.night_figure)[r] if erg_known else None,
                "stop_start": start_text[i],
                "stop_confirmed": confirmed_text[i],
                "stop_confirmed_local": confirmed_local[i],
            }
            event = make_event(RULE_NAME, vehicle[i], "open", int(start_ms[i]), None, lon[i], lat[i],
                               primary["severity"], evidence)
            out.append((str(episode[i]), int(confirmed_ms[i]), event))
        return out
