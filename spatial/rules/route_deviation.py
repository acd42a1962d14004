"""Route deviation: a truck on an active waybill that leaves the corridor around its planned route.

Every ping on an active waybill is measured against *its own* waybill's planned route in
EPSG:32651. A deviation opens once the truck has been farther than `corridor_m` from the
route for at least `deviation_min_duration_s` and `deviation_min_pings` consecutive pings
(its start is the first ping outside) and closes at the first ping back within
`corridor_m - hysteresis_m` (`spatial.rules.episodes.scan_episodes`).

An episode belongs to one waybill: a ping without an active waybill breaks a candidate and
closes an open deviation (`closed_by="waybill_ended"`), and so does the switch from one
waybill straight to another (`closed_by="waybill_changed"`; a new candidate may start on
the new waybill's route at that very ping). Events are `open` (when confirmed) and `close`.

Severity: leaving the route is SEVERITY_HIGH for a waybill that must keep to a route approved by
public security (危险货物道路运输安全管理办法 2019 art. 48: civil explosives, fireworks, highly
toxic chemicals and radioactive goods), SEVERITY_MEDIUM otherwise. Explosives and fireworks are
class 1 and radioactive goods class 7 (`approved_route_classes`, by the goods' declared class);
剧毒化学品 are a flag of the chemical, not a class: a good whose UN number the catalogue
(world.chemicals) flags `highly_toxic` (HCN, phosgene, sodium cyanide), while chlorine, a 2.3
gas, is not one. Without a catalogue no good is known to be highly toxic. The evidence names
why (`approved_route`: "class 1", "class 7" or "highly toxic UN1051"; None when not).

Exactness: `shapely.dwithin` on the prepared metric route only *narrows* — pings surely
inside the staying bound need no distance — and every remaining ping gets its exact
`shapely.distance`; the narrowing bound sits a micrometre inside the staying bound, so no
difference between GEOS's two distance paths can flip a ping on the boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import shapely

from spatial.crs import geometry_to_metric
from spatial.model import Event, World
from spatial.rules.base import (
    SEVERITY_HIGH,
    SEVERITY_MEDIUM,
    RuleBatch,
    RuleWorld,
    finite_or_none,
    grow,
    iso_times,
    make_event,
    previous_in_run,
    run_starts,
    setting,
)
from spatial.rules.episodes import MARK_OPEN, EpisodeState, scan_episodes

# The narrowing test stops this far inside the staying bound (see the module docstring).
NARROWING_MARGIN_M = 1e-6


@dataclass(frozen=True)
class RouteDeviationSettings:
    # The track must match the waybill's planned route (DOMAIN.md §4, electronic waybill;
    # art. 48 of the 2019 measures for the classes below).
    corridor_m: float = setting(500.0, "m", "issue 4 (engineering default): half-width of the route corridor")
    hysteresis_m: float = setting(
        100.0, "m", "issue 4 (engineering default): back within corridor_m - hysteresis_m ends a deviation")
    deviation_min_duration_s: float = setting(120.0, "s", "issue 4 (engineering default)")
    deviation_min_pings: int = setting(2, "pings", "issue 4 (engineering default)")
    # Civil explosives, fireworks (class 1), radioactive goods (class 7) and highly toxic
    # chemicals must keep to the route approved by public security: leaving it is more serious.
    approved_route_classes: tuple[str, ...] = setting(
        ("1", "7"), "hazard class",
        "危险货物道路运输安全管理办法 (2019) art. 48: civil explosives and fireworks (1), radioactive goods (7)")
    approved_route_highly_toxic: bool = setting(
        True, "flag", "危险货物道路运输安全管理办法 (2019) art. 48: highly toxic chemicals (剧毒化学品), "
                      "by the catalogue's highly_toxic flag, not by class")

    def __post_init__(self):
        if not (np.isfinite(self.corridor_m) and np.isfinite(self.hysteresis_m)
                and 0 <= self.hysteresis_m < self.corridor_m):
            raise ValueError(f"route_deviation needs 0 <= hysteresis_m < corridor_m, got hysteresis_m="
                             f"{self.hysteresis_m!r}, corridor_m={self.corridor_m!r}")
        if not (np.isfinite(self.deviation_min_duration_s) and self.deviation_min_duration_s >= 0):
            raise ValueError(f"deviation_min_duration_s must be >= 0, got {self.deviation_min_duration_s!r}")
        if int(self.deviation_min_pings) != self.deviation_min_pings or self.deviation_min_pings < 1:
            raise ValueError(f"deviation_min_pings must be a whole number >= 1, got {self.deviation_min_pings!r}")

    @property
    def stay_m(self) -> float:
        return self.corridor_m - self.hysteresis_m


@dataclass(frozen=True)
class RouteIndex:
    """Per row of world.waybills: the planned route in EPSG:32651 (prepared), its id, the
    severity of leaving it and why (art. 48)."""

    route: np.ndarray  # shapely LineStrings, metric, prepared
    waybill_id: np.ndarray  # object
    severity: np.ndarray  # int64
    approval: np.ndarray  # object: "class 1" | "class 7" | "highly toxic UN…" | None

    @classmethod
    def build(cls, world: World, approved_route_classes: tuple[str, ...],
              highly_toxic: bool = True) -> RouteIndex:
        waybills = world.waybills
        geoms = np.asarray(waybills.geometry.to_numpy(), dtype=object) if len(waybills) else np.empty(0, object)
        missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        wrong = ~missing & (shapely.get_type_id(geoms) != shapely.GeometryType.LINESTRING)
        if missing.any() or wrong.any():
            bad = waybills["id"].to_numpy(dtype=object)[missing | wrong]
            raise ValueError(f"waybills without a planned route LineString: {', '.join(map(str, bad[:10]))}"
                             + (" …" if len(bad) > 10 else ""))
        route = np.asarray(geometry_to_metric(geoms), dtype=object)
        shapely.prepare(route)
        ids = waybills["id"].to_numpy(dtype=object)
        return cls(route, ids, *_route_approval(world, ids, approved_route_classes, highly_toxic))


def _route_approval(world: World, waybill_ids: np.ndarray, classes: tuple[str, ...],
                    highly_toxic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per waybill: SEVERITY_HIGH when a good is of an approved-route class (a class "1" covers
    its divisions 1.1D, 1.4S…) or, with `highly_toxic`, flagged 剧毒 by the catalogue, else
    SEVERITY_MEDIUM; and the first such reason in goods order (None when there is none)."""
    goods = world.waybill_goods
    severity = np.full(len(waybill_ids), SEVERITY_MEDIUM, "int64")
    approval = np.full(len(waybill_ids), None, dtype=object)
    if not len(goods):
        return severity, approval
    cls = goods["hazard_class"].astype(str).str.strip()
    reason = pd.Series(None, index=goods.index, dtype=object)
    if classes:
        pattern = re.compile("|".join(rf"{re.escape(c)}(?![0-9])" for c in classes))
        by_class = cls.str.match(pattern).to_numpy(bool)
        reason[by_class] = "class " + cls[by_class].str.extract(rf"^({pattern.pattern})", expand=False)
    catalogue = world.chemicals
    if highly_toxic and "highly_toxic" in catalogue.columns:
        flags = catalogue.set_index("un_number")["highly_toxic"] if "un_number" in catalogue.columns \
            else catalogue["highly_toxic"]
        un = goods["un_number"].astype(str).str.strip()
        toxic = flags.reindex(un.to_numpy()).eq(True).to_numpy() & reason.isna().to_numpy()
        reason[toxic] = "highly toxic UN" + un[toxic]
    flagged = goods.assign(reason=reason.to_numpy())
    flagged = flagged[flagged["reason"].notna()].sort_values(["waybill_id", "seq"]).drop_duplicates("waybill_id")
    row = pd.Index(waybill_ids).get_indexer(flagged["waybill_id"].to_numpy(dtype=object))
    keep = row >= 0
    severity[row[keep]] = SEVERITY_HIGH
    approval[row[keep]] = flagged["reason"].to_numpy(dtype=object)[keep]
    return severity, approval


@dataclass(frozen=True)
class RouteDeviationState:
    episodes: EpisodeState = field(default_factory=EpisodeState)
    last_waybill: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))  # per slot, -1 none





@dataclass(frozen=True)
class RouteDeviationRule:
    settings: RouteDeviationSettings = field(default_factory=RouteDeviationSettings)
    name: ClassVar[str] = "route_deviation"

    def initial_state(self) -> RouteDeviationState:
        return RouteDeviationState()

    def routes(self, world: RuleWorld) -> RouteIndex:
        s = self.settings
        return world.cached(
            f"{self.name}:routes:{s.approved_route_classes}:{s.approved_route_highly_toxic}",
            lambda: RouteIndex.build(world.world, s.approved_route_classes, s.approved_route_highly_toxic))

    def distances(self, batch: RuleBatch, routes: RouteIndex) -> np.ndarray:
        """Each ping's exact distance (m) to its own waybill's route where it exceeds the staying
        bound; NaN for pings surely within it and for pings without an active waybill."""
        distance = np.full(len(batch), np.nan)
        on_waybill = np.flatnonzero(batch.waybill >= 0)
        if not len(on_waybill):
            return distance
        route = routes.route[batch.waybill[on_waybill]]
        points = shapely.points(batch.x[on_waybill], batch.y[on_waybill])
        surely_inside = shapely.dwithin(route, points, self.settings.stay_m - NARROWING_MARGIN_M)
        far = ~surely_inside
        distance[on_waybill[far]] = shapely.distance(route[far], points[far])
        return distance

    def step(self, state: RouteDeviationState, batch: RuleBatch, world: RuleWorld
             ) -> tuple[RouteDeviationState, list[Event]]:
        if not len(batch):
            return state, []
        s = self.settings
        routes = self.routes(world)
        waybill = np.asarray(batch.waybill, "int64")
        if (waybill >= len(routes.route)).any():
            raise ValueError(f"RuleBatch.waybill holds row {int(waybill.max())}, world.waybills has "
                             f"{len(routes.route)} rows")
        slot = np.asarray(batch.slot, "int64")
        n_slots = int(slot.max()) + 1
        last_waybill = grow(state.last_waybill, n_slots, -1)
        distance = self.distances(batch, routes)

        # A switch from one waybill straight to another ends the episode: a break row (no
        # waybill) goes in before the first ping of the new waybill.
        prev = previous_in_run(waybill, slot, last_waybill)
        switch = np.flatnonzero((waybill >= 0) & (prev >= 0) & (waybill != prev))
        origin = np.insert(np.arange(len(batch)), switch, switch)  # each row's ping
        is_break = np.zeros(len(origin), bool)
        is_break[switch + np.arange(len(switch))] = True
        row_waybill = np.where(is_break, -1, waybill[origin])
        row_prev = previous_in_run(row_waybill, slot[origin], last_waybill)
        row_distance = np.where(is_break, np.nan, distance[origin])

        episodes, marks = scan_episodes(
            state.episodes, slot[origin], batch.epoch_ms[origin],
            enter=row_distance > s.corridor_m, stay=row_distance > s.stay_m, value=row_distance,
            lon=batch.lon[origin], lat=batch.lat[origin],
            min_duration_ms=round(s.deviation_min_duration_s * 1000), min_pings=int(s.deviation_min_pings),
        )

        runs_end = np.r_[run_starts(slot)[1:], len(slot)] - 1
        new_last = last_waybill.copy()
        new_last[slot[runs_end]] = waybill[runs_end]

        events = []
        ping = origin[marks.index]
        # the episode's waybill: the opening ping's, or the last episode ping's for a close
        episode_waybill = np.where(marks.kind == MARK_OPEN, row_waybill[marks.index], row_prev[marks.index])
        closing_far = (marks.kind != MARK_OPEN) & (waybill[ping] >= 0) & ~is_break[marks.index]
        closing_distance = distance[ping].copy()
        if closing_far.any():  # the closing ping's exact distance, also where narrowing skipped it
            closing_distance[closing_far] = shapely.distance(
                routes.route[waybill[ping[closing_far]]],
                shapely.points(batch.x[ping[closing_far]], batch.y[ping[closing_far]]))
        # evidence times formatted for all events at once (one call per event costs more than the step)
        start_text, ping_text, end_text = (iso_times(ms) for ms in (marks.start_ms, batch.epoch_ms[ping], marks.end_ms))
        for k in range(len(marks)):  # one iteration per event, not per ping
            wb = int(episode_waybill[k])
            i = int(ping[k])
            common = {
                "waybill_id": str(routes.waybill_id[wb]),
                "peak_distance_m": float(marks.peak[k]),
                "corridor_m": float(s.corridor_m),
                "hysteresis_m": float(s.hysteresis_m),
                "first_outside": start_text[k],
                "pings": int(marks.pings[k]),
                "approved_route": routes.approval[wb],
            }
            severity = int(routes.severity[wb])
            if marks.kind[k] == MARK_OPEN:
                evidence = {
                    **common,
                    "distance_m": float(distance[i]),
                    "confirmed": ping_text[k],
                    "duration_s": (int(batch.epoch_ms[i]) - int(marks.start_ms[k])) / 1000.0,
                    "min_duration_s": float(s.deviation_min_duration_s),
                    "min_pings": int(s.deviation_min_pings),
                }
                events.append(make_event(self.name, batch.vehicle_id[i], "open", marks.start_ms[k], None,
                                         batch.lon[i], batch.lat[i], severity, evidence))
            else:
                closed_by = ("waybill_changed" if is_break[marks.index[k]]
                             else "waybill_ended" if waybill[i] < 0 else "back_in_corridor")
                evidence = {
                    **common,
                    "last_outside": end_text[k],
                    "duration_s": (int(marks.end_ms[k]) - int(marks.start_ms[k])) / 1000.0,
                    "closed_by": closed_by,
                    "closed": ping_text[k],
                    "closing_distance_m": finite_or_none(closing_distance[k]),
                }
                events.append(make_event(self.name, batch.vehicle_id[i], "close", marks.start_ms[k],
                                         marks.end_ms[k], marks.last_lon[k], marks.last_lat[k], severity, evidence))
        return RouteDeviationState(episodes, new_last), events


