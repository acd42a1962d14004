"""The plain containers every part of hazmap shares.

`data/` fills them, `spatial/` computes on them, `layers/` and `app/` read them. The layer
specs below are the one definition of what a World holds: the store's tables, the
exchange format's validation and the demo generator all follow them.

Coordinates are WGS-84 lon/lat; times are UTC (epoch milliseconds in batches,
timezone-aware pandas timestamps in frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields as dataclass_fields
from typing import Literal

import hashlib

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

FieldKind = Literal["str", "int", "float", "bool", "datetime", "strlist"]


@dataclass(frozen=True)
class Field:
    name: str
    kind: FieldKind
    required: bool = True


@dataclass(frozen=True)
class TableSpec:
    """A World table: a layer (with geometry and a prefixed string id), a child table (rows of a
    layer's feature), or a plain table (no geometry, no parent, a prefixed string id)."""

    name: str
    fields: tuple[Field, ...]
    geometry: str | None = None  # Point | LineString | MultiPolygon | Geometry (any)
    id_prefix: str | None = None
    parent: str | None = None  # child tables: the layer whose id they reference
    parent_key: str | None = None
    nested_as: str | None = None  # child tables: the property holding them in exchange files

    @property
    def is_layer(self) -> bool:
        return self.geometry is not None

    @property
    def is_child(self) -> bool:
        return self.parent is not None

    @property
    def is_plain(self) -> bool:
        return self.geometry is None and self.parent is None

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]


def _f(spec: str) -> tuple[Field, ...]:
    """'name:kind, other:kind?' -> Fields; a trailing '?' marks an optional field."""
    out = []
    for part in spec.split(","):
        name, kind = (s.strip() for s in part.split(":"))
        out.append(Field(name, kind.rstrip("?"), required=not kind.endswith("?")))  # type: ignore[arg-type]
    return tuple(out)


# An enterprise's contact columns (optional: a world without them shows none): the panels' "who to call".
ENTITY_CONTACT_COLUMNS = ("contact", "phone")

LAYER_SPECS: dict[str, TableSpec] = {
    s.name: s
    for s in [
        TableSpec("districts", _f("id:str, adcode:str, name:str, name_en:str"), "MultiPolygon", "DIST-"),
        TableSpec("parks", _f("id:str, name:str, name_en:str, district_adcode:str"), "MultiPolygon", "CP-"),
        TableSpec(
            "entities",
            _f("id:str, name:str, licensed:bool, category:str, district_adcode:str, park_id:str?, contact:str?, "
               "phone:str?"),
            "Point",
            "ENT-",
        ),
        TableSpec(
            "hazard_sources",
            _f("id:str, entity_id:str, name:str, people_500m:int, alpha:float, s_value:float, r_value:float, grade:int"),
            "Point",
            "HS-",
        ),
        TableSpec(
            "monitoring_points",
            _f(
                "id:str, hazard_source_id:str, kind:str, unit:str, substance_un:str?, "
                "low_low:float?, low:float?, high:float?, high_high:float?, range_min:float, range_max:float"
            ),
            "Point",
            "MP-",
        ),
        TableSpec(
            "vehicles",
            _f(
                "id:str, plate:str, carrier:str, body:str, approved_media:strlist, terminal_phone:str, "
                "driver:str, escort:str, carrier_id:str?"
            ),
            "Point",
            "VEH-",
        ),
        TableSpec(
            "waybills",
            _f(
                "id:str, vehicle_id:str, status:str, loading_site_id:str, unloading_site_id:str, consignor:str, "
                "consignee:str, carrier:str, planned_departure:datetime, planned_arrival:datetime, "
                "emergency_phone:str, actual_departure:datetime?, actual_unloading:datetime?"
            ),
            "LineString",
            "WB-",
        ),
        TableSpec("roads", _f("id:str, name:str, road_class:str, speed_limit_kmh:float"), "LineString", "ROAD-"),
        TableSpec("wash_stations", _f("id:str, name:str, district_adcode:str"), "Point", "WS-"),
        TableSpec("parking_lots", _f("id:str, name:str, capacity:int"), "Point", "PL-"),
        TableSpec("service_areas", _f("id:str, name:str, road_id:str"), "Point", "SA-"),
        TableSpec("repair_shops", _f("id:str, name:str"), "Point", "RS-"),
        TableSpec("sensitive_sites", _f("id:str, name:str, kind:str, occupancy:int?"), "Geometry", "SITE-"),
        TableSpec(
            "restricted_zones",
            _f(
                "id:str, name:str, kind:str, closed_from:str, closed_to:str, barred_classes:strlist, "
                "speed_limit_kmh:float?"
            ),
            "Geometry",
            "ZONE-",
        ),
    ]
}

CHILD_SPECS: dict[str, TableSpec] = {
    s.name: s
    for s in [
        TableSpec(
            "hazard_source_chemicals",
            _f("hazard_source_id:str, un_number:str, quantity_t:float"),
            parent="hazard_sources",
            parent_key="hazard_source_id",
            nested_as="chemicals",
        ),
        TableSpec(
            "waybill_goods",
            _f("waybill_id:str, seq:int, un_number:str, name:str, hazard_class:str, packing_group:str?, quantity_t:float"),
            parent="waybills",
            parent_key="waybill_id",
            nested_as="goods",
        ),
    ]
}

# Plain tables: no geometry, no parent; rows keyed by a prefixed string id like a layer's.
PLAIN_SPECS: dict[str, TableSpec] = {
    s.name: s
    for s in [
        # Who acts on incidents: the city's departments, and one district office per district
        # (kind "district_office", district_adcode set; city departments leave it empty).
        TableSpec(
            "departments",
            _f("id:str, name:str, name_en:str, kind:str, district_adcode:str?, contact:str, phone:str, email:str?"),
            id_prefix="DEPT-",
        ),
        # Incident routing (spatial/incidents/routing.py): a rule ('*': every rule) about a subject
        # kind reaches `role` (a department kind, or district_office / carrier / plant) when the
        # incident's severity is at most `max_severity` (1 red ... 4 blue; empty: every level).
        TableSpec("routing", _f("id:str, rule:str, subject_kind:str, role:str, max_severity:int?"), id_prefix="RT-"),
    ]
}
# Every World table by name, parents before children (the order stores write them in).
WORLD_SPECS: dict[str, TableSpec] = {**LAYER_SPECS, **CHILD_SPECS, **PLAIN_SPECS}

LAYER_NAMES: tuple[str, ...] = tuple(LAYER_SPECS)

# Kinds of sensitive site (GB/T 37243-2019 protected targets, as the rules group them).
SENSITIVE_SITE_KINDS = (
    "school", "kindergarten", "hospital", "elderly_home", "residential", "water_protection", "government",
)
# A waybill's status: not yet under way, under way, unloaded, called off (never in force).
WAYBILL_STATUSES = ("planned", "active", "done", "cancelled")
ENTITY_CATEGORIES_LICENSED = ("production", "use", "trade", "transport", "disposal")
ENTITY_CATEGORIES_UNLICENSED = ("school", "hospital", "research")
MONITORING_POINT_KINDS = ("level", "temperature", "pressure", "combustible_gas", "toxic_gas")
# Department kinds (the city's safety committee members; DOMAIN.md §1 names 15 departments, not
# which: this list is the demo's, not checked against a published roster). A routing role is one
# of these, or a role resolved per incident.
DEPARTMENT_KINDS = (
    "emergency_management", "traffic_police", "transport", "ecology_environment", "market_supervision",
    "fire_rescue", "public_security", "housing_construction", "economy_information", "commerce",
    "health", "maritime", "port", "natural_resources", "urban_management", "district_office",
)
SUBJECT_KINDS = ("vehicle", "monitoring_point")
ROUTING_ROLES_RESOLVED = ("district_office", "carrier", "plant")  # district of the place; the truck's; the point's


def empty_table(spec: TableSpec) -> pd.DataFrame | gpd.GeoDataFrame:
    """A table with the spec's columns and no rows."""
    df = pd.DataFrame({c: pd.Series(dtype="object") for c in spec.columns})
    if spec.is_layer:
        return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([], crs="EPSG:4326"), crs="EPSG:4326")
    return df


@dataclass
class World:
    """Every slow-changing layer, as GeoDataFrames in WGS-84, plus their child tables and
    the chemical catalogue (indexed by UN number)."""

    districts: gpd.GeoDataFrame
    parks: gpd.GeoDataFrame
    entities: gpd.GeoDataFrame
    hazard_sources: gpd.GeoDataFrame
    monitoring_points: gpd.GeoDataFrame
    vehicles: gpd.GeoDataFrame
    waybills: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    wash_stations: gpd.GeoDataFrame
    parking_lots: gpd.GeoDataFrame
    service_areas: gpd.GeoDataFrame
    repair_shops: gpd.GeoDataFrame
    sensitive_sites: gpd.GeoDataFrame
    restricted_zones: gpd.GeoDataFrame
    hazard_source_chemicals: pd.DataFrame
    waybill_goods: pd.DataFrame
    departments: pd.DataFrame = field(default_factory=lambda: empty_table(PLAIN_SPECS["departments"]))
    routing: pd.DataFrame = field(default_factory=lambda: empty_table(PLAIN_SPECS["routing"]))
    chemicals: pd.DataFrame = field(default_factory=pd.DataFrame)

    def table(self, name: str) -> pd.DataFrame:
        return getattr(self, name)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every layer, child and plain table by name (the catalogue excluded)."""
        return {n: getattr(self, n) for n in WORLD_SPECS}

    def counts(self) -> dict[str, int]:
        out = {n: len(t) for n, t in self.tables().items()}
        out["active_waybills"] = int((self.waybills["status"] == "active").sum()) if len(self.waybills) else 0
        return out

    def fingerprint(self) -> str:
        """A short content hash: changes whenever any table changes (used to version layer URLs)."""
        digest = hashlib.sha1()
        for name, table in self.tables().items():
            digest.update(name.encode())
            attrs = pd.DataFrame(table).drop(columns="geometry", errors="ignore").astype(str)
            digest.update(pd.util.hash_pandas_object(attrs, index=False).to_numpy().tobytes())
            if isinstance(table, gpd.GeoDataFrame):
                digest.update(b"".join(shapely.to_wkb(table.geometry.to_numpy())))
        return digest.hexdigest()[:12]

    @classmethod
    def empty(cls, chemicals: pd.DataFrame | None = None) -> "World":
        kwargs = {f.name: empty_table(WORLD_SPECS[f.name]) for f in dataclass_fields(cls) if f.name in WORLD_SPECS}
        return cls(**kwargs, chemicals=chemicals if chemicals is not None else pd.DataFrame())


def _as_array(values, dtype) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=dtype))


@dataclass(frozen=True)
class PingBatch:
    """Truck positions, columnar. `epoch_ms` is UTC; `speed_kmh`/`heading` NaN when not
    reported; `alarm`/`status` carry the JT/T 808 bit fields (status bit 1 = fix valid).
    `arrival_ms` is when the gateway received the report (UTC ms on the gateway's clock), -1
    when unknown (track files, the simulator's direct path): the offline rule judges silence
    by it where it is known (spatial/rules/offline.py)."""

    vehicle_id: np.ndarray
    epoch_ms: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    speed_kmh: np.ndarray
    heading: np.ndarray
    alarm: np.ndarray
    status: np.ndarray
    arrival_ms: np.ndarray | None = None  # None: filled with -1 (unknown)

    STATUS_FIX_VALID = 0b10
    NO_ARRIVAL = -1

    def __post_init__(self):
        if self.arrival_ms is None:  # optional: every constructor without it keeps working
            object.__setattr__(self, "arrival_ms", np.full(len(self.vehicle_id), self.NO_ARRIVAL, "int64"))

    @classmethod
    def from_arrays(cls, vehicle_id, epoch_ms, lon, lat, speed_kmh=None, heading=None, alarm=None, status=None,
                    arrival_ms=None):
        n = len(vehicle_id)
        nan = np.full(n, np.nan)
        batch = cls(
            vehicle_id=_as_array(vehicle_id, object),
            epoch_ms=_as_array(epoch_ms, "int64"),
            lon=_as_array(lon, "float64"),
            lat=_as_array(lat, "float64"),
            speed_kmh=nan if speed_kmh is None else _as_array(speed_kmh, "float64"),
            heading=nan.copy() if heading is None else _as_array(heading, "float64"),
            alarm=np.zeros(n, "uint32") if alarm is None else _as_array(alarm, "uint32"),
            status=np.full(n, cls.STATUS_FIX_VALID, "uint32") if status is None else _as_array(status, "uint32"),
            arrival_ms=None if arrival_ms is None else _as_array(arrival_ms, "int64"),
        )
        batch.check()
        return batch

    @property
    def has_arrival(self) -> bool:
        """Whether any ping carries its arrival time."""
        return bool(len(self.arrival_ms)) and bool((self.arrival_ms >= 0).any())

    def without_arrival(self) -> "PingBatch":
        """The same pings with their arrival times forgotten (a simulation's clock is the data's)."""
        return PingBatch(self.vehicle_id, self.epoch_ms, self.lon, self.lat, self.speed_kmh, self.heading,
                         self.alarm, self.status)

    def check(self) -> None:
        n = len(self.vehicle_id)
        for f in dataclass_fields(self):
            col = getattr(self, f.name)
            if len(col) != n:
                raise ValueError(f"PingBatch column {f.name!r} has {len(col)} values, vehicle_id has {n}")

    def __len__(self) -> int:
        return len(self.vehicle_id)

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame({f.name: getattr(self, f.name) for f in dataclass_fields(self)})
        df["time"] = pd.to_datetime(df["epoch_ms"], unit="ms", utc=True)
        return df

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> "PingBatch":
        return cls.from_arrays(**{f.name: df[f.name].to_numpy() for f in dataclass_fields(cls) if f.name in df})


@dataclass(frozen=True)
class ReadingBatch:
    """Monitoring-point readings, columnar; `epoch_ms` is UTC."""

    point_id: np.ndarray
    epoch_ms: np.ndarray
    value: np.ndarray

    @classmethod
    def from_arrays(cls, point_id, epoch_ms, value) -> "ReadingBatch":
        batch = cls(_as_array(point_id, object), _as_array(epoch_ms, "int64"), _as_array(value, "float64"))
        if not (len(batch.point_id) == len(batch.epoch_ms) == len(batch.value)):
            raise ValueError("ReadingBatch columns point_id, epoch_ms and value differ in length")
        return batch

    def __len__(self) -> int:
        return len(self.point_id)

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame({"point_id": self.point_id, "epoch_ms": self.epoch_ms, "value": self.value})
        df["time"] = pd.to_datetime(df["epoch_ms"], unit="ms", utc=True)
        return df


EventPhase = Literal["open", "update", "close"]


@dataclass(frozen=True)
class Event:
    """What a rule says about one subject (a truck, a point) in one episode."""

    rule: str
    subject_id: str
    episode_id: str
    phase: EventPhase
    start: pd.Timestamp
    end: pd.Timestamp | None
    lon: float
    lat: float
    severity: int  # 1 highest ... 4 lowest
    evidence: dict
    # an update's own instant (a point's level changing hours into its episode); None: its start.
    # An open speaks for its start, a close for its end.
    at: pd.Timestamp | None = None


_POSITION_COLUMNS = ["epoch_ms", "lon", "lat", "speed_kmh", "heading", "alarm", "status"]
_TRAIL_COLUMNS = ["vehicle_id", "epoch_ms", "lon", "lat", "speed_kmh"]
_ALERT_COLUMNS = ["open_count", "severity", "rules", "lon", "lat"]
# A truck's cargo state (ADR 1.1.3.6: an empty tank not yet cleaned is still dangerous goods); unknown:
# before its first waybill. Set by the rules' waybill stage (spatial/rules/waybills.cargo_states).
CARGO_STATES = ("loaded", "empty_uncleaned", "empty_clean", "unknown")
_CARGO_COLUMNS = ["cargo_state", "waybill_id"]  # the rules' waybill stage (spatial/rules/waybills.cargo_states)
_TRAIL_COMPACT_EVERY = 64  # batches between foldings of the trail (a fold sorts the whole trail)
NO_ALERT_SEVERITY = 9  # `alerts.severity` of a subject with no open episode (1 highest ... 4 lowest)


@dataclass(frozen=True)
class LiveChanges:
    """What changed in a LiveState after some version: the rows whose `version` is newer.
    A subject whose last episode closed is in `alerts` with open_count 0."""

    version: int
    positions: pd.DataFrame
    readings: pd.DataFrame
    alerts: pd.DataFrame
    cargo: pd.DataFrame = field(default_factory=lambda: _empty_indexed("vehicle_id", _CARGO_COLUMNS))


@dataclass
class LiveState:
    """The live picture: the newest position of every truck and its trail over the last
    `trail_s`, the newest reading of every point, and the open alert episodes of every
    subject (truck or point). `version` grows with every change and each row of
    `positions`, `readings` and `alerts` carries the version that last changed it, so the
    screen can ask `changes_since(n)`.

    The trail is one compacted frame sorted by (vehicle, time) with each vehicle's row range,
    plus the per-batch frames that came since: appending is O(batch); every
    `_TRAIL_COMPACT_EVERY` batches the recent frames are folded into the compacted one and what
    is older than `trail_s` behind the newest ping is cut, so memory is bounded by the fleet's
    report rate over `trail_s`, and one truck's trail is a slice plus a few small filters."""

    positions: pd.DataFrame = field(default_factory=lambda: _empty_indexed("vehicle_id", _POSITION_COLUMNS))
    readings: pd.DataFrame = field(default_factory=lambda: _empty_indexed("point_id", ["epoch_ms", "value"]))
    alerts: pd.DataFrame = field(default_factory=lambda: _empty_indexed("subject_id", _ALERT_COLUMNS))
    version: int = 0
    trail_s: float = 7200.0
    _trail: list[pd.DataFrame] = field(default_factory=list, repr=False)  # recent batches
    _trail_sorted: pd.DataFrame | None = field(default=None, repr=False)  # compacted, by (vehicle, time)
    _trail_ranges: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    _open: dict[str, tuple[str, str, int, float, float]] = field(default_factory=dict, repr=False)
    # per truck: cargo_state (loaded | empty_uncleaned | empty_clean | unknown) and the waybill it
    # comes from (the one in force, or whose residue an uncleaned tank carries), from the engine
    cargo: pd.DataFrame = field(default_factory=lambda: _empty_indexed("vehicle_id", _CARGO_COLUMNS))

    def apply_pings(self, batch: PingBatch) -> None:
        if not len(batch):
            return
        frame = batch.to_frame()
        newest = _newest_per_key(frame[["vehicle_id", *_POSITION_COLUMNS]], "vehicle_id")
        self.version += 1
        self.positions = _merge_newest(self.positions, newest, self.version)
        self._trail.append(frame[_TRAIL_COLUMNS])
        if len(self._trail) >= _TRAIL_COMPACT_EVERY:
            self._compact_trail()

    def apply_readings(self, batch: ReadingBatch) -> None:
        if not len(batch):
            return
        newest = _newest_per_key(batch.to_frame()[["point_id", "epoch_ms", "value"]], "point_id")
        self.version += 1
        self.readings = _merge_newest(self.readings, newest, self.version)

    def apply_cargo(self, vehicle_ids, cargo_state, waybill_id) -> None:
        """Trucks' cargo states (and waybill ids, None for none); only a truck whose state or
        waybill changed gets a new version."""
        new = pd.DataFrame({"cargo_state": np.asarray(cargo_state, object), "waybill_id": np.asarray(waybill_id, object)},
                           index=pd.Index(np.asarray(vehicle_ids, object), dtype=object, name="vehicle_id"))
        new = new[~new.index.duplicated(keep="last")]
        old = self.cargo.reindex(new.index)
        same = np.ones(len(new), bool)
        for column in _CARGO_COLUMNS:
            was, now = old[column].to_numpy(object), new[column].to_numpy(object)
            same &= (was == now) | (pd.isna(was) & pd.isna(now))
        changed = new[~same]
        if not len(changed):
            return
        self.version += 1
        changed = changed.assign(version=self.version)
        kept = self.cargo[~self.cargo.index.isin(changed.index)] if len(self.cargo) else None
        self.cargo = changed if kept is None or kept.empty else pd.concat([kept, changed])

    def apply_events(self, events: list[Event]) -> None:
        """Track open episodes per subject: an `open` adds one, an `update` may change its
        severity, a `close` ends it. Few events per batch: a loop over events, not pings."""
        touched: set[str] = set()
        for e in events:
            if e.phase == "close":
                if self._open.pop(e.episode_id, None) is not None:
                    touched.add(e.subject_id)
            else:
                self._open[e.episode_id] = (e.subject_id, e.rule, int(e.severity), float(e.lon), float(e.lat))
                touched.add(e.subject_id)
        if not touched:
            return
        self.version += 1
        per_subject: dict[str, list] = {s: [0, NO_ALERT_SEVERITY, [], np.nan, np.nan] for s in touched}
        for subject, rule, severity, lon, lat in self._open.values():
            row = per_subject.get(subject)
            if row is None:
                continue
            row[0] += 1
            if severity < row[1]:
                row[1], row[3], row[4] = severity, lon, lat
            if rule not in row[2]:
                row[2].append(rule)
        changed = pd.DataFrame.from_dict(per_subject, orient="index", columns=_ALERT_COLUMNS)
        changed["rules"] = changed["rules"].map(lambda rules: ",".join(sorted(rules)))
        changed["version"] = self.version
        changed.index.name = "subject_id"
        kept = self.alerts[~self.alerts.index.isin(changed.index)] if len(self.alerts) else None
        self.alerts = changed if kept is None or kept.empty else pd.concat([kept, changed])

    def changes_since(self, version: int) -> LiveChanges:
        """Rows changed after `version` (all of them for version < 1)."""
        def newer(df: pd.DataFrame) -> pd.DataFrame:
            return df[df["version"].to_numpy() > version] if len(df) else df
        return LiveChanges(self.version, newer(self.positions), newer(self.readings), newer(self.alerts),
                           newer(self.cargo))

    def trail(self, vehicle_id: str | None = None) -> pd.DataFrame:
        """Pings of the last `trail_s` (behind the newest ping), of one truck or all, by
        vehicle and time."""
        parts = list(self._trail)
        if self._trail_sorted is not None:
            if vehicle_id is None:
                parts.insert(0, self._trail_sorted)
            elif vehicle_id in self._trail_ranges:
                start, stop = self._trail_ranges[vehicle_id]
                parts.insert(0, self._trail_sorted.iloc[start:stop])
        if vehicle_id is not None:  # the compacted slice is the truck's already; filter the recent batches
            parts = parts[:1] + [f[f["vehicle_id"].to_numpy() == vehicle_id] for f in parts[1:]] \
                if self._trail_sorted is not None and vehicle_id in self._trail_ranges \
                else [f[f["vehicle_id"].to_numpy() == vehicle_id] for f in parts]
        parts = [f for f in parts if len(f)]
        if not parts:
            return pd.DataFrame(columns=_TRAIL_COLUMNS)
        out = pd.concat(parts, ignore_index=True)
        out = out[out["epoch_ms"].to_numpy() >= self._trail_cutoff_ms()]
        return out.sort_values(["vehicle_id", "epoch_ms"], kind="stable").reset_index(drop=True)

    def trail_rows(self) -> int:
        """Rows held for trails (bounded by the report rate over `trail_s`)."""
        compacted = 0 if self._trail_sorted is None else len(self._trail_sorted)
        return compacted + sum(len(f) for f in self._trail)

    def _compact_trail(self) -> None:
        parts = ([] if self._trail_sorted is None else [self._trail_sorted]) + self._trail
        merged = pd.concat(parts, ignore_index=True)
        merged = merged[merged["epoch_ms"].to_numpy() >= self._trail_cutoff_ms()]
        codes, uniques = pd.factorize(merged["vehicle_id"], sort=True)
        order = np.lexsort((merged["epoch_ms"].to_numpy(), codes))
        merged = merged.iloc[order].reset_index(drop=True)
        codes = codes[order]
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.array([], "int64")
        stops = np.r_[starts[1:], len(codes)]
        self._trail_ranges = dict(zip(uniques[codes[starts]], zip(starts.tolist(), stops.tolist())))
        self._trail_sorted, self._trail = merged, []

    def open_episodes(self) -> int:
        return len(self._open)

    def copy(self) -> "LiveState":
        """A copy safe to read while the original keeps changing (frames are never mutated
        in place, so sharing them is enough)."""
        return LiveState(self.positions, self.readings, self.alerts, self.version, self.trail_s,
                         _trail=list(self._trail), _trail_sorted=self._trail_sorted,
                         _trail_ranges=self._trail_ranges, _open=dict(self._open), cargo=self.cargo)

    def _trail_cutoff_ms(self) -> int:
        return int(self._trail_newest_ms()) - round(self.trail_s * 1000)

    def _trail_newest_ms(self) -> int:
        return int(self.positions["epoch_ms"].max()) if len(self.positions) else 0


def _empty_indexed(key: str, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=[*columns, "version"], index=pd.Index([], name=key))


def _newest_per_key(df: pd.DataFrame, key: str) -> pd.DataFrame:
    return df.sort_values("epoch_ms", kind="stable").drop_duplicates(key, keep="last").set_index(key)


def _merge_newest(old: pd.DataFrame, new: pd.DataFrame, version: int) -> pd.DataFrame:
    """Keep, per key, whichever row is newer (a late ping never moves a truck backwards);
    rows taken from `new` get `version`."""
    new = new.assign(version=version)
    if old.empty:
        return new
    both = pd.concat([old, new])
    both = both.iloc[np.argsort(both["epoch_ms"].to_numpy(dtype="int64"), kind="stable")]
    return both[~both.index.duplicated(keep="last")]
