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
    """A World table: a layer (with geometry and a prefixed string id) or a child table."""

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
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]


def _f(spec: str) -> tuple[Field, ...]:
    """'name:kind, other:kind?' -> Fields; a trailing '?' marks an optional field."""
    out = []
    for part in spec.split(","):
        name, kind = (s.strip() for s in part.split(":"))
        out.append(Field(name, kind.rstrip("?"), required=not kind.endswith("?")))  # type: ignore[arg-type]
    return tuple(out)


LAYER_SPECS: dict[str, TableSpec] = {
    s.name: s
    for s in [
        TableSpec("districts", _f("id:str, adcode:str, name:str, name_en:str"), "MultiPolygon", "DIST-"),
        TableSpec("parks", _f("id:str, name:str, name_en:str, district_adcode:str"), "MultiPolygon", "CP-"),
        TableSpec(
            "entities",
            _f("id:str, name:str, licensed:bool, category:str, district_adcode:str, park_id:str?"),
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
                "driver:str, escort:str"
            ),
            "Point",
            "VEH-",
        ),
        TableSpec(
            "waybills",
            _f(
                "id:str, vehicle_id:str, status:str, loading_site_id:str, unloading_site_id:str, consignor:str, "
                "consignee:str, carrier:str, planned_departure:datetime, planned_arrival:datetime, "
                "emergency_phone:str"
            ),
            "LineString",
            "WB-",
        ),
        TableSpec("roads", _f("id:str, name:str, road_class:str, speed_limit_kmh:float"), "LineString", "ROAD-"),
        TableSpec("wash_stations", _f("id:str, name:str, district_adcode:str"), "Point", "WS-"),
        TableSpec("parking_lots", _f("id:str, name:str, capacity:int"), "Point", "PL-"),
        TableSpec("service_areas", _f("id:str, name:str, road_id:str"), "Point", "SA-"),
        TableSpec("repair_shops", _f("id:str, name:str"), "Point", "RS-"),
        TableSpec("sensitive_sites", _f("id:str, name:str, kind:str"), "Geometry", "SITE-"),
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

LAYER_NAMES: tuple[str, ...] = tuple(LAYER_SPECS)

# Kinds of sensitive site (GB/T 37243-2019 protected targets, as the rules group them).
SENSITIVE_SITE_KINDS = (
    "school", "kindergarten", "hospital", "elderly_home", "residential", "water_protection", "government",
)
ENTITY_CATEGORIES_LICENSED = ("production", "use", "trade", "transport", "disposal")
ENTITY_CATEGORIES_UNLICENSED = ("school", "hospital", "research")
MONITORING_POINT_KINDS = ("level", "temperature", "pressure", "combustible_gas", "toxic_gas")


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
    chemicals: pd.DataFrame = field(default_factory=pd.DataFrame)

    def table(self, name: str) -> pd.DataFrame:
        return getattr(self, name)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every layer and child table by name (the catalogue excluded)."""
        return {n: getattr(self, n) for n in (*LAYER_SPECS, *CHILD_SPECS)}

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
        specs = {**LAYER_SPECS, **CHILD_SPECS}
        kwargs = {f.name: empty_table(specs[f.name]) for f in dataclass_fields(cls) if f.name in specs}
        return cls(**kwargs, chemicals=chemicals if chemicals is not None else pd.DataFrame())


def _as_array(values, dtype) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=dtype))


@dataclass(frozen=True)
class PingBatch:
    """Truck positions, columnar. `epoch_ms` is UTC; `speed_kmh`/`heading` NaN when not
    reported; `alarm`/`status` carry the JT/T 808 bit fields (status bit 1 = fix valid)."""

    vehicle_id: np.ndarray
    epoch_ms: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    speed_kmh: np.ndarray
    heading: np.ndarray
    alarm: np.ndarray
    status: np.ndarray

    STATUS_FIX_VALID = 0b10

    @classmethod
    def from_arrays(cls, vehicle_id, epoch_ms, lon, lat, speed_kmh=None, heading=None, alarm=None, status=None):
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
        )
        batch.check()
        return batch

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


_POSITION_COLUMNS = ["epoch_ms", "lon", "lat", "speed_kmh", "heading", "alarm", "status"]


@dataclass
class LiveState:
    """The newest position of every truck and the newest reading of every point, with a
    version that grows with every change so the screen can ask what changed."""

    positions: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=_POSITION_COLUMNS, index=pd.Index([], name="vehicle_id"))
    )
    readings: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["epoch_ms", "value"], index=pd.Index([], name="point_id"))
    )
    version: int = 0

    def apply_pings(self, batch: PingBatch) -> None:
        if not len(batch):
            return
        newest = _newest_per_key(batch.to_frame()[["vehicle_id", *_POSITION_COLUMNS]], "vehicle_id")
        self.positions = _merge_newest(self.positions, newest)
        self.version += 1

    def apply_readings(self, batch: ReadingBatch) -> None:
        if not len(batch):
            return
        newest = _newest_per_key(batch.to_frame()[["point_id", "epoch_ms", "value"]], "point_id")
        self.readings = _merge_newest(self.readings, newest)
        self.version += 1


def _newest_per_key(df: pd.DataFrame, key: str) -> pd.DataFrame:
    return df.sort_values("epoch_ms", kind="stable").drop_duplicates(key, keep="last").set_index(key)


def _merge_newest(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Keep, per key, whichever row is newer: a late ping never moves a truck backwards."""
    if old.empty:
        return new
    both = pd.concat([old, new])
    both = both.iloc[np.argsort(both["epoch_ms"].to_numpy(dtype="int64"), kind="stable")]
    return both[~both.index.duplicated(keep="last")]
