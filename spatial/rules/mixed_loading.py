"""Findings about a waybill as a document: mixed loading, and a tank's unapproved medium.

- **mixed_loading** (DOMAIN.md §3; ADR 7.5.2.1 / 7.5.2.2, followed by JT/T 617.6-2018): the
  waybill lists goods that may not share a vehicle; the pair table and its notes are in
  `spatial.rules.adr`. The stricter 49 CFR 177.848 pairs join with `cfr_177_848`.
- **unapproved_medium** (DOMAIN.md §3, the Chinese rule): a tank truck (`vehicles.body`
  in `tank_bodies`) whose waybill lists a UN number outside its `approved_media`. A rule of
  its own, so the two findings keep separate names, episodes and counts.

Both are judged once per waybill (cached on the RuleWorld) and become episodes along the
truck's pings: an episode opens at the first ping on the waybill (the ping where
`batch.waybill` changes to it, located there) and closes at the first ping on anything else
(another waybill or none); its end is the last ping on the waybill. A waybill that stops
being active without a later ping stays open until the truck reports again. Per-vehicle
state (the waybill of the last ping, when its run began, the last ping's time and place) is
carried in arrays by slot, so batching cannot change the events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from spatial.model import Event
from spatial.rules.adr import (
    ACIDS_UN,
    CYANIDES_UN,
    ZONE_A_UN,
    SegregationOptions,
    pair_conflicts,
)
from spatial.rules.base import (
    SEVERITY_HIGH,
    SEVERITY_HIGHEST,
    SEVERITY_MEDIUM,
    RuleBatch,
    RuleWorld,
    grow,
    iso_time,
    make_event,
    previous_in_run,
    run_starts,
    setting,
)


@dataclass(frozen=True)
class MixedLoadingSettings:
    nitrate_explosives_only: bool = setting(
        False, "flag", "engineering option, not ADR's: only blasting explosives of types B and E "
                       "(UN0082/0241/0331/0332) may travel with the note-d nitrates; off follows ADR 2025 "
                       "7.5.2.1 note d (DOMAIN.md §3: any blasting explosive but UN0083)")
    cfr_177_848: bool = setting(False, "flag", "49 CFR 177.848: the stricter optional pairs (DOMAIN.md §3), off by default")
    zone_a_un: tuple = setting(ZONE_A_UN, "UN numbers", "49 CFR 172.101 special provision 1 (inhalation hazard zone A)")
    cyanides_un: tuple = setting(CYANIDES_UN, "UN numbers", "49 CFR 177.848 (engineering list of inorganic cyanides)")
    acids_un: tuple = setting(ACIDS_UN, "UN numbers", "49 CFR 177.848 (engineering list of common acids)")

    def __post_init__(self):
        for name in ("zone_a_un", "cyanides_un", "acids_un"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(u, str) and len(u) == 4 and u.isdigit() for u in value):
                raise ValueError(f"mixed_loading setting {name} must be a tuple of 4-digit UN strings, got {value!r}")

    def options(self) -> SegregationOptions:
        return SegregationOptions(self.nitrate_explosives_only, self.cfr_177_848, self.zone_a_un, self.cyanides_un,
                                  self.acids_un)


@dataclass(frozen=True)
class UnapprovedMediumSettings:
    tank_bodies: tuple = setting(("tank",), "vehicles.body values",
                                 "DOMAIN.md §3: tank trucks carry only the media their tank is approved for")

    def __post_init__(self):
        if not isinstance(self.tank_bodies, tuple) or not all(isinstance(b, str) for b in self.tank_bodies):
            raise ValueError(f"tank_bodies must be a tuple of strings, got {self.tank_bodies!r}")


@dataclass(frozen=True)
class Findings:
    """Per waybill row: whether it is flagged, the severity, and the evidence."""

    flagged: np.ndarray  # bool, by world.waybills row
    severity: np.ndarray  # int64
    evidence: dict  # row -> dict


@dataclass(frozen=True)
class DocumentState:
    last_waybill: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))  # -1 none
    last_ms: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))
    last_lon: np.ndarray = field(default_factory=lambda: np.empty(0, "float64"))
    last_lat: np.ndarray = field(default_factory=lambda: np.empty(0, "float64"))
    run_start_ms: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))  # first ping on last_waybill


def _goods_by_row(world: RuleWorld) -> tuple[pd.DataFrame, np.ndarray]:
    """waybill_goods with the waybill's row in world.waybills; waybill ids by row."""
    ids = world.world.waybills["id"].astype(str).to_numpy(dtype=object)
    goods = world.world.waybill_goods
    rows = pd.Index(ids).get_indexer(goods["waybill_id"].astype(str).to_numpy(dtype=object)) if len(goods) else \
        np.empty(0, "int64")
    return goods.assign(row=rows)[rows >= 0] if len(goods) else goods.assign(row=rows), ids


def _goods_list(goods: pd.DataFrame) -> list[dict]:
    return [{"seq": int(r.seq), "un_number": str(r.un_number), "hazard_class": str(r.hazard_class),
             "name": None if pd.isna(r.name) else str(r.name)}
            for r in goods.sort_values("seq").itertuples(index=False)]


def mixed_loading_findings(world: RuleWorld, settings: MixedLoadingSettings) -> Findings:
    goods, ids = _goods_by_row(world)
    n = len(ids)
    flagged, severity, evidence = np.zeros(n, bool), np.zeros(n, "int64"), {}
    conflicts = pair_conflicts(goods, settings.options())
    if len(conflicts):
        row_of = pd.Index(ids).get_indexer(conflicts["waybill_id"].to_numpy(dtype=object))
        goods_of = {r: g for r, g in goods[goods["row"].isin(row_of)].groupby("row")}
        for row, group in conflicts.assign(row=row_of).groupby("row", sort=True):  # one per flagged waybill
            explosive = bool(group["explosive"].any())
            adr = bool(group["clause"].str.startswith("ADR").any())
            flagged[row] = True
            severity[row] = SEVERITY_HIGHEST if explosive else (SEVERITY_HIGH if adr else SEVERITY_MEDIUM)
            evidence[row] = {
                "waybill_id": str(ids[row]),
                "conflicts": [
                    {"un_a": c.un_a, "class_a": c.class_a, "un_b": c.un_b, "class_b": c.class_b,
                     "labels": f"{c.label_a} / {c.label_b}", "clause": c.clause, "note": c.note}
                    for c in group.itertuples(index=False)],
                "goods": _goods_list(goods_of[row]),
                "explosive_involved": explosive,
                "cfr_177_848": bool(settings.cfr_177_848),
                "nitrate_explosives_only": bool(settings.nitrate_explosives_only),
            }
    return Findings(flagged, severity, evidence)


def unapproved_medium_findings(world: RuleWorld, settings: UnapprovedMediumSettings) -> Findings:
    goods, ids = _goods_by_row(world)
    n = len(ids)
    flagged, severity, evidence = np.zeros(n, bool), np.full(n, SEVERITY_HIGH, "int64"), {}
    vehicles = world.world.vehicles
    if not (n and len(goods) and len(vehicles)):
        return Findings(flagged, severity, evidence)
    vehicle_row = world.vehicle_ids.get_indexer(world.world.waybills["vehicle_id"].astype(object).to_numpy())
    body = vehicles["body"].astype(str).to_numpy(dtype=object)
    approved = vehicles["approved_media"].to_numpy(dtype=object)
    vrow = vehicle_row[goods["row"].to_numpy("int64")]
    tank = (vrow >= 0) & np.isin(np.where(vrow >= 0, body[np.maximum(vrow, 0)], ""), list(settings.tank_bodies))
    pairs = pd.DataFrame({"vrow": vrow[tank], "un": goods["un_number"].astype(str).to_numpy(dtype=object)[tank]})
    media = pd.DataFrame({"vrow": np.arange(len(vehicles))[np.isin(body, list(settings.tank_bodies))]})
    media["un"] = [_media(approved[v]) for v in media["vrow"]]
    media = media.explode("un").dropna()
    media["ok"] = True
    ok = pairs.merge(media.astype({"un": str}), on=["vrow", "un"], how="left")["ok"].fillna(False).to_numpy(bool)
    bad = goods[tank].assign(ok=ok)
    bad_rows = np.unique(bad.loc[~bad["ok"], "row"].to_numpy("int64"))
    flagged[bad_rows] = True
    for row, group in bad[bad["row"].isin(bad_rows)].groupby("row", sort=True):  # one per flagged waybill
        v = vehicle_row[row]
        allowed = _media(approved[v])
        evidence[row] = {
            "waybill_id": str(ids[row]),
            "unapproved": [g for g, ok_ in zip(_goods_list(group), group.sort_values("seq")["ok"]) if not ok_],
            "approved_media": allowed,
            "body": str(body[v]),
        }
    return Findings(flagged, severity, evidence)


def _media(value) -> list[str]:
    """A vehicle's approved_media as UN strings (None / NaN: none approved)."""
    if value is None or (np.isscalar(value) and pd.isna(value)):
        return []
    if isinstance(value, str):
        raise TypeError(f"vehicles.approved_media must be a list of UN numbers, got the string {value!r}")
    return [str(u) for u in value]


class _WaybillDocumentRule:
    """Episodes along the pings for waybill rows flagged by `findings(world)`."""

    name: ClassVar[str]

    def findings(self, world: RuleWorld) -> Findings:
        raise NotImplementedError

    def initial_state(self) -> DocumentState:
        return DocumentState()

    def step(self, state: DocumentState, batch: RuleBatch, world: RuleWorld) -> tuple[DocumentState, list[Event]]:
        if not len(batch):
            return state, []
        found = self.findings(world)
        size = int(batch.slot.max()) + 1
        last_wb = grow(state.last_waybill, size, -1)
        last_ms, run_start = grow(state.last_ms, size, -1), grow(state.run_start_ms, size, -1)
        last_lon, last_lat = grow(state.last_lon, size, np.nan), grow(state.last_lat, size, np.nan)
        slot, t, wb = batch.slot, batch.epoch_ms, batch.waybill
        if len(wb) and (wb.max() >= len(found.flagged)):
            raise ValueError(f"{self.name}: batch waybill row {int(wb.max())} is not in world.waybills")
        prev_wb = previous_in_run(wb, slot, last_wb)
        prev_t = previous_in_run(t, slot, last_ms)
        prev_lon, prev_lat = previous_in_run(batch.lon, slot, last_lon), previous_in_run(batch.lat, slot, last_lat)
        change = wb != prev_wb
        index = np.arange(len(batch))
        starts = run_starts(slot)
        first_of_slot = np.repeat(starts, np.diff(np.r_[starts, len(batch)]))
        # the run each ping belongs to began at the latest change at or before it in its slot,
        # else where the state says the slot's current run began
        latest_change = np.maximum.accumulate(np.where(change, index, -1))
        own = latest_change >= first_of_slot
        run_start_at = np.where(own, t[np.maximum(latest_change, 0)], run_start[slot])
        prev_run_start = previous_in_run(run_start_at, slot, run_start)

        events: list[Event] = []
        closing = np.flatnonzero(change & (prev_wb >= 0))
        closing = closing[found.flagged[prev_wb[closing]]]
        for i in closing:  # one per episode that ends here, not per ping
            row = int(prev_wb[i])
            evidence = {**found.evidence[row], "first_ping": iso_time(prev_run_start[i]),
                        "last_ping": iso_time(prev_t[i]), "closed": iso_time(t[i]),
                        "next_waybill_id": None if wb[i] < 0 else str(world.world.waybills["id"].iat[int(wb[i])])}
            events.append(make_event(self.name, batch.vehicle_id[i], "close", prev_run_start[i], prev_t[i],
                                     prev_lon[i], prev_lat[i], int(found.severity[row]), evidence))
        opening = np.flatnonzero(change & (wb >= 0))
        opening = opening[found.flagged[wb[opening]]]
        for i in opening:  # one per episode that starts here
            row = int(wb[i])
            evidence = {**found.evidence[row], "first_ping": iso_time(t[i])}
            events.append(make_event(self.name, batch.vehicle_id[i], "open", t[i], None, batch.lon[i], batch.lat[i],
                                     int(found.severity[row]), evidence))

        ends = np.r_[starts[1:], len(batch)] - 1
        s_end = slot[ends]
        last_wb, last_ms, run_start = last_wb.copy(), last_ms.copy(), run_start.copy()
        last_lon, last_lat = last_lon.copy(), last_lat.copy()
        last_wb[s_end], last_ms[s_end], run_start[s_end] = wb[ends], t[ends], run_start_at[ends]
        last_lon[s_end], last_lat[s_end] = batch.lon[ends], batch.lat[ends]
        return DocumentState(last_wb, last_ms, last_lon, last_lat, run_start), events


@dataclass(frozen=True)
class MixedLoadingRule(_WaybillDocumentRule):
    settings: MixedLoadingSettings = field(default_factory=MixedLoadingSettings)
    name: ClassVar[str] = "mixed_loading"

    def findings(self, world: RuleWorld) -> Findings:
        return world.cached(f"{self.name}:{self.settings!r}", lambda: mixed_loading_findings(world, self.settings))


@dataclass(frozen=True)
class UnapprovedMediumRule(_WaybillDocumentRule):
    settings: UnapprovedMediumSettings = field(default_factory=UnapprovedMediumSettings)
    name: ClassVar[str] = "unapproved_medium"

    def findings(self, world: RuleWorld) -> Findings:
        return world.cached(f"{self.name}:{self.settings!r}",
                            lambda: unapproved_medium_findings(world, self.settings))
