"""hazmap's exchange format: a folder of GeoJSON files, one per World layer.

`export_world` writes a `World` as one FeatureCollection per layer of `LAYER_SPECS`
(`<layer>.geojson`, WGS-84 lon/lat), byte-for-byte deterministic and atomically.
`import_world` reads such a folder (point layers may also come as `<layer>.csv` or
`<layer>.xlsx` tables with `lon`/`lat` columns), optionally shifting GCJ-02 coordinates to
WGS-84, validates everything against the specs, and either returns a complete `World` or
raises one `ExchangeError` listing every problem found. docs/exchange-format.md is the
specification a partner agency implements; keep the two in step.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.geometry

from spatial.crs import WGS84, geometry_gcj02_to_wgs84
from spatial.model import (
    CHILD_SPECS, DEPARTMENT_KINDS, LAYER_SPECS, PLAIN_SPECS, ROUTING_ROLES_RESOLVED, SUBJECT_KINDS,
    WAYBILL_STATUSES, WORLD_SPECS, Field, TableSpec, World,
)

ExchangeCrs = Literal["wgs84", "gcj02"]
EXCHANGE_CRS: tuple[str, ...] = ("wgs84", "gcj02")

GEOJSON_SUFFIX = ".geojson"
TABLE_SUFFIXES = (".csv", ".xlsx")
LON_COLUMN, LAT_COLUMN = "lon", "lat"

# Every coordinate must lie in this lon/lat box (China with a margin of a few degrees):
# anything beyond is a swapped pair, a projected coordinate or another country's data.
SERVICE_AREA_BBOX = (70.0, 0.0, 140.0, 56.0)  # lon_min, lat_min, lon_max, lat_max

# Datetimes are stored with microsecond precision (pandas' default unit for parsed text).
DATETIME_DTYPE = "datetime64[us, UTC]"
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$", re.ASCII)
# Numbers in table cells: plain decimal text (Python's int()/float() would also take '1_000').
_INT_TEXT = re.compile(r"^\s*[+-]?\d+\s*$", re.ASCII)
_FLOAT_TEXT = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$", re.ASCII)

# The geometry types each layer kind accepts; a Polygon in a MultiPolygon layer is promoted.
_ACCEPTED_GEOMETRY_TYPES: dict[str, tuple[str, ...]] = {
    "Point": ("Point",),
    "LineString": ("LineString",),
    "MultiPolygon": ("MultiPolygon", "Polygon"),
    "Geometry": ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"),
}
_FEATURE_MEMBERS = {"type", "id", "properties", "geometry", "bbox"}
_GEOMETRY_MEMBERS = {"type", "coordinates", "bbox"}
# GeoJSON's old `crs` member, when present, must name WGS-84 (CGCS2000 equals it for this use).
_ACCEPTED_CRS_NAMES = {
    "urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "EPSG:4326",
    "urn:ogc:def:crs:EPSG::4326", "EPSG:4490", "urn:ogc:def:crs:EPSG::4490",
}


@dataclass(frozen=True)
class Reference:
    """`layer.column` must hold a value of `target.target_column` (ids, or district adcodes)."""

    layer: str
    column: str
    target: str
    target_column: str = "id"


REFERENCES: tuple[Reference, ...] = (
    Reference("parks", "district_adcode", "districts", "adcode"),
    Reference("entities", "district_adcode", "districts", "adcode"),
    Reference("entities", "park_id", "parks"),
    Reference("hazard_sources", "entity_id", "entities"),
    Reference("monitoring_points", "hazard_source_id", "hazard_sources"),
    Reference("waybills", "vehicle_id", "vehicles"),
    Reference("waybills", "loading_site_id", "entities"),
    Reference("waybills", "unloading_site_id", "entities"),
    Reference("wash_stations", "district_adcode", "districts", "adcode"),
    Reference("service_areas", "road_id", "roads"),
    Reference("vehicles", "carrier_id", "entities"),
    Reference("departments", "district_adcode", "districts", "adcode"),
)
# Columns other than `id` that must be unique within their layer (they are referenced).
UNIQUE_COLUMNS: tuple[tuple[str, str], ...] = (("districts", "adcode"),)


def _non_negative(v: float) -> bool:
    return v >= 0


def _positive(v: float) -> bool:
    return v > 0


# Range checks on single values: (table, field) -> (test, what the value must be).
def _is_local_clock_time(value: str) -> bool:
    """'HH:MM' in Asia/Shanghai time; '24:00' closes a window at midnight."""
    match = re.fullmatch(r"(\d\d):(\d\d)", value)
    return bool(match) and (int(match[1]), int(match[2])) <= (24, 0) and int(match[2]) < 60


VALUE_RULES: dict[tuple[str, str], tuple[Any, str]] = {
    ("hazard_sources", "people_500m"): (_non_negative, "must be ≥ 0"),
    ("hazard_sources", "alpha"): (_positive, "must be > 0"),
    ("hazard_sources", "s_value"): (_non_negative, "must be ≥ 0"),
    ("hazard_sources", "r_value"): (_non_negative, "must be ≥ 0"),
    ("hazard_sources", "grade"): (lambda v: 1 <= v <= 4, "must be 1, 2, 3 or 4 (GB 18218-2018)"),
    ("parking_lots", "capacity"): (_non_negative, "must be ≥ 0"),
    ("roads", "speed_limit_kmh"): (_positive, "must be > 0"),
    ("restricted_zones", "speed_limit_kmh"): (_positive, "must be > 0"),
    ("restricted_zones", "closed_from"): (_is_local_clock_time, "must be a local time HH:MM (00:00-24:00)"),
    ("restricted_zones", "closed_to"): (_is_local_clock_time, "must be a local time HH:MM (00:00-24:00)"),
    ("hazard_source_chemicals", "quantity_t"): (_non_negative, "must be ≥ 0"),
    ("waybill_goods", "quantity_t"): (_non_negative, "must be ≥ 0"),
    ("routing", "max_severity"): (lambda v: 1 <= v <= 4, "must be 1 (red), 2, 3 or 4 (blue)"),
    ("routing", "rule"): (lambda v: v.strip() == v and v != "", "must be a rule name or *"),
}
# Pairs within one feature: (layer, lower field, upper field); upper must not be below lower.
ORDERED_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("monitoring_points", "range_min", "range_max"),
    ("waybills", "planned_departure", "planned_arrival"),
    ("waybills", "actual_departure", "actual_unloading"),
)
# Fields that take one of a few words: (layer, field) -> the words.
ENUMERATED_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("waybills", "status"): WAYBILL_STATUSES,
}

_KIND_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "datetime": "an ISO-8601 date-time with a UTC offset (2024-05-01T08:30:00Z)",
    "strlist": "an array of strings",
}


class ExchangeError(ValueError):
    """Everything wrong with an import (or an export): `problems` holds one line each."""

    def __init__(self, summary: str, problems: list[str]):
        self.summary = summary
        self.problems = list(problems)
        super().__init__(summary + "".join(f"\n  {p}" for p in self.problems))


# --------------------------------------------------------------------------------------
# problems


@dataclass
class _Problems:
    """Problems in reading order: (file rank, record number, insertion order, text)."""

    file_rank: dict[str, int]
    items: list[tuple[int, int, int, str]] = field(default_factory=list)

    def add(self, file: str, what: str, *, record: int = 0, where: str = "", ident: str | None = None,
            field_name: str = "") -> None:
        parts = [file]
        if where:
            parts.append(f"{where} (id {ident if ident else '?'})")
        if field_name:
            parts.append(f"field {field_name}")
        parts.append(what)
        self.items.append((self.file_rank.get(file, -1), record, len(self.items), ": ".join(parts)))

    def __bool__(self) -> bool:
        return bool(self.items)

    def lines(self) -> list[str]:
        return [text for *_, text in sorted(self.items)]


def _file_ranks() -> dict[str, int]:
    ranks: dict[str, int] = {}
    for i, table in enumerate((*LAYER_SPECS, *PLAIN_SPECS)):
        for suffix in (GEOJSON_SUFFIX, *TABLE_SUFFIXES):
            ranks[table + suffix] = i
    return ranks


class _Invalid(Exception):
    """A value that does not fit its field; the message says why."""


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({kind})"


# --------------------------------------------------------------------------------------
# values: JSON values and table text to typed Python values


def _parse_datetime(text: str) -> pd.Timestamp:
    if not _ISO_DATETIME.match(text):
        raise _Invalid(f"expected {_KIND_WORDS['datetime']}, got {_describe(text)}")
    try:
        return pd.Timestamp(text).tz_convert("UTC").floor("us").as_unit("us")
    except ValueError as exc:
        raise _Invalid(f"not a valid date-time: {text!r} ({exc})") from None


def _json_value(kind: str, value: Any) -> Any:
    """A non-null JSON value checked against its field kind (no coercion between types)."""
    if kind == "str":
        if isinstance(value, str):
            return value
    elif kind == "int":
        if type(value) is int:
            return value
    elif kind == "float":
        if type(value) in (int, float):
            if not math.isfinite(value):
                raise _Invalid(f"not a finite number: {value!r}")
            return float(value)
    elif kind == "bool":
        if type(value) is bool:
            return value
    elif kind == "datetime":
        if isinstance(value, str):
            return _parse_datetime(value)
    elif kind == "strlist":
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
    else:
        raise AssertionError(f"unknown field kind {kind!r}")
    raise _Invalid(f"expected {_KIND_WORDS[kind]}, got {_describe(value)}")


def _text_value(kind: str, text: str) -> Any:
    """A non-empty table cell (text) parsed for its field kind."""
    if kind == "str":
        return text
    if kind == "int":
        if _INT_TEXT.match(text):
            return int(text)
    elif kind == "float":
        if _FLOAT_TEXT.match(text):
            number = float(text)
            if not math.isfinite(number):
                raise _Invalid(f"not a finite number: {text!r}")
            return number
    elif kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise _Invalid(f"expected true/false (or 1/0), got {text!r}")
    elif kind == "datetime":
        return _parse_datetime(text.strip())
    elif kind == "strlist":
        if text.lstrip().startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError as exc:
                raise _Invalid(f"not a JSON array of strings: {exc}") from None
            return _json_value("strlist", items)
        items = [item.strip() for item in text.split(";")]
        if any(not item for item in items):
            raise _Invalid(f"empty item in list {text!r} (items are separated by ';')")
        return items
    else:
        raise AssertionError(f"unknown field kind {kind!r}")
    raise _Invalid(f"expected {_KIND_WORDS[kind]}, got {text!r}")


# --------------------------------------------------------------------------------------
# geometry


def _position_error(p: Any) -> str | None:
    if not isinstance(p, list):
        return f"a position must be an array [lon, lat], got {_describe(p)}"
    if len(p) == 3:
        return "3-D positions [lon, lat, height] are not accepted: send [lon, lat]"
    if len(p) != 2:
        return f"a position must be [lon, lat], got {_describe(p)}"
    for v in p:
        if type(v) not in (int, float) or not math.isfinite(v):
            return f"a position must hold two finite numbers, got {_describe(p)}"
    return None


def _positions_error(points: Any, minimum: int, what: str) -> str | None:
    if not isinstance(points, list):
        return f"{what} must be an array of positions, got {_describe(points)}"
    if len(points) < minimum:
        return f"{what} needs at least {minimum} positions, has {len(points)}"
    for p in points:
        if error := _position_error(p):
            return error
    return None


def _rings_error(rings: Any) -> str | None:
    if not isinstance(rings, list) or not rings:
        return f"a polygon must be a non-empty array of linear rings, got {_describe(rings)}"
    for ring in rings:
        if error := _positions_error(ring, 4, "a linear ring"):
            return error
        if ring[0] != ring[-1]:
            return "a linear ring must end where it starts (closed ring)"
    return None


def _parts_error(parts: Any, check, what: str) -> str | None:
    if not isinstance(parts, list):
        return f"{what} coordinates must be an array, got {_describe(parts)}"
    for part in parts:
        if error := check(part):
            return error
    return None


_COORDINATE_CHECKS = {
    "Point": _position_error,
    "MultiPoint": lambda c: _parts_error(c, _position_error, "MultiPoint"),
    "LineString": lambda c: _positions_error(c, 2, "a LineString"),
    "MultiLineString": lambda c: _parts_error(c, lambda part: _positions_error(part, 2, "a LineString"),
                                              "MultiLineString"),
    "Polygon": _rings_error,
    "MultiPolygon": lambda c: _parts_error(c, _rings_error, "MultiPolygon"),
}


class _PendingPoint(tuple):
    """A checked Point position; shapely.points turns a whole layer's at once."""

    def __new__(cls, lon: float, lat: float):
        return super().__new__(cls, (lon, lat))


def _build_points(records: list[_Record]) -> None:
    pending = [r for r in records if isinstance(r.geometry, _PendingPoint)]
    if pending:
        points = shapely.points(np.array([r.geometry for r in pending], dtype="float64"))
        for record, point in zip(pending, points.tolist()):
            record.geometry = point


def _geometry_from_json(geometry: Any, layer_geometry: str):
    """A GeoJSON geometry object -> shapely geometry; raises _Invalid with the reason."""
    accepted = _ACCEPTED_GEOMETRY_TYPES[layer_geometry]
    if geometry is None:
        raise _Invalid("missing geometry (null)")
    if not isinstance(geometry, dict):
        raise _Invalid(f"a geometry must be a GeoJSON geometry object, got {_describe(geometry)}")
    gtype = geometry.get("type")
    if gtype not in _COORDINATE_CHECKS:
        if gtype == "GeometryCollection":
            raise _Invalid("GeometryCollection is not accepted: send one feature per geometry")
        raise _Invalid(f"unknown geometry type {_describe(gtype)}")
    if gtype not in accepted:
        raise _Invalid(f"wrong geometry type {gtype} for this layer (expected {' or '.join(accepted)})")
    extra = sorted(set(geometry) - _GEOMETRY_MEMBERS)
    if extra:
        raise _Invalid(f"unexpected geometry member(s) {', '.join(extra)}")
    if "coordinates" not in geometry:
        raise _Invalid("geometry without coordinates")
    coordinates = geometry["coordinates"]
    if coordinates == []:
        raise _Invalid(f"empty {gtype}")
    if error := _COORDINATE_CHECKS[gtype](coordinates):
        raise _Invalid(error)
    if gtype == "Point":  # the common case: built in bulk by _build_points
        return _PendingPoint(coordinates[0], coordinates[1])
    geom = shapely.geometry.shape({"type": gtype, "coordinates": coordinates})
    if geom.is_empty:
        raise _Invalid(f"empty {gtype}")
    if gtype == "Polygon" and layer_geometry == "MultiPolygon":
        geom = shapely.MultiPolygon([geom])
    return geom


# --------------------------------------------------------------------------------------
# records: one feature or table row, before and after typing


@dataclass
class _Record:
    number: int  # features from 1; table rows as a spreadsheet numbers them (header = 1)
    where: str  # "feature 3" / "row 4"
    ident: str | None  # the id, when it is a string, for messages
    values: dict[str, Any]  # property -> raw JSON value or cell text
    geometry: Any = None  # shapely geometry, or None when it was missing or bad
    children: list[dict[str, Any]] | None = None  # typed child rows (without the parent key)
    typed: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Layer:
    name: str
    file: str
    records: list[_Record]


def _type_fields(spec: TableSpec, raw: dict[str, Any], from_text: bool, report) -> dict[str, Any]:
    """Check and type every spec field of one feature/row/child; `report(field, what)`."""
    typed: dict[str, Any] = {}
    for f in spec.fields:
        value = raw.get(f.name)
        if from_text and value == "":
            if f.kind == "strlist":  # an empty cell is an empty list
                typed[f.name] = []
                continue
            value = None
        if value is None:
            if f.required:
                if f.name not in raw:
                    report(f.name, "missing (required)")
                else:
                    report(f.name, "empty cell, but the field is required" if from_text else
                           "null, but the field is required")
            typed[f.name] = None
            continue
        try:
            typed[f.name] = _text_value(f.kind, value) if from_text else _json_value(f.kind, value)
        except _Invalid as exc:
            report(f.name, str(exc))
            typed[f.name] = None
            continue
        rule = VALUE_RULES.get((spec.name, f.name))
        if rule and not rule[0](typed[f.name]):
            report(f.name, f"{rule[1]}, got {value!r}")
    return typed


def _child_specs_of(layer: str) -> list[TableSpec]:
    return [c for c in CHILD_SPECS.values() if c.parent == layer]


def _exchange_fields(child: TableSpec) -> tuple[Field, ...]:
    """A child table's fields as they appear nested (without the parent key)."""
    return tuple(f for f in child.fields if f.name != child.parent_key)


def _type_children(child: TableSpec, items: Any, report) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        report(child.nested_as, f"expected an array of objects, got {_describe(items)}")
        return []
    allowed = {f.name for f in _exchange_fields(child)}
    child_spec = TableSpec(child.name, _exchange_fields(child))
    rows = []
    for i, item in enumerate(items, start=1):
        prefix = f"{child.nested_as}[{i}]"
        if not isinstance(item, dict):
            report(prefix, f"expected an object, got {_describe(item)}")
            continue
        for key in item:
            if key not in allowed:
                why = "the parent key is implied by the enclosing feature" if key == child.parent_key else (
                    f"unknown field (expected {', '.join(sorted(allowed))})")
                report(f"{prefix}.{key}", why)
        for key in getattr(item, "duplicate_keys", ()):
            report(f"{prefix}.{key}", "appears twice in the object")
        rows.append(_type_fields(child_spec, item, False, lambda name, what: report(f"{prefix}.{name}", what)))
    return rows


@dataclass(frozen=True)
class _Layout:
    """What checking one layer's records needs, worked out once per layer."""

    children: dict[str, TableSpec]  # nested_as -> child spec
    known: frozenset[str]  # property names a feature may carry
    ordered: tuple[tuple[str, str], ...]  # (lower, upper) field pairs


@lru_cache(maxsize=None)
def _layout(layer: str) -> _Layout:
    spec = WORLD_SPECS[layer]
    children = {c.nested_as: c for c in _child_specs_of(layer)}
    return _Layout(children, frozenset([*spec.columns, *children]),
                   tuple((lo, up) for lay, lo, up in ORDERED_FIELDS if lay == layer))


def _check_record(spec: TableSpec, record: _Record, from_text: bool, file: str, problems: _Problems) -> None:
    def report(name: str, what: str) -> None:
        problems.add(file, what, record=record.number, where=record.where, ident=record.ident, field_name=name)

    layout = _layout(spec.name)
    children = layout.children
    for key in record.values:
        if key not in layout.known:
            report(key, f"unknown field (the {spec.name} layer has {', '.join([*spec.columns, *children])})")
    record.typed = _type_fields(spec, record.values, from_text, report)
    ident = record.typed.get("id")
    prefix = spec.id_prefix
    if ident is not None and prefix and not (ident.startswith(prefix) and len(ident) > len(prefix)):
        report("id", f"must start with {prefix} followed by the rest of the id, got {ident!r}")
    for lower, upper in layout.ordered:
        a, b = record.typed.get(lower), record.typed.get(upper)
        if a is not None and b is not None and b < a:
            report(upper, f"is before/below {lower} ({b} < {a})")
    for (layer, name), words in ENUMERATED_FIELDS.items():
        value = record.typed.get(name) if layer == spec.name else None
        if value is not None and value not in words:
            report(name, f"must be one of {', '.join(words)}, got {value!r}")
    for name, child in children.items():
        raw = record.values.get(name)
        if from_text and raw is not None:
            raw = _parse_nested_cell(raw, name, report)
        if raw is None:
            report(name, f"missing (required; an empty array when the {spec.name[:-1].replace('_', ' ')} has none)")
            record.children = []
            continue
        record.children = _type_children(child, raw, report)
        if "seq" in child.columns:  # seq numbers the rows within their parent: a key
            seqs = [row["seq"] for row in record.children if row.get("seq") is not None]
            for seq in sorted({s for s in seqs if seqs.count(s) > 1}):
                report(name, f"seq {seq} appears more than once")


def _parse_nested_cell(text: str, name: str, report) -> Any:
    if text == "":
        return []
    try:
        return json.loads(text, object_pairs_hook=_object_hook)
    except json.JSONDecodeError as exc:
        report(name, f"not a JSON array of objects: {exc}")
        return []


# --------------------------------------------------------------------------------------
# reading files


class _DuplicateKeyDict(dict):
    duplicate_keys: tuple[str, ...] = ()


def _object_hook(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = _DuplicateKeyDict(obj)
        dup.duplicate_keys = tuple(k for k, _ in pairs if k in seen or seen.add(k))
        return dup
    return obj


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _load_json(text: str, file: str, problems: _Problems) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_object_hook, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        problems.add(file, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
    except ValueError as exc:
        problems.add(file, f"malformed JSON: {exc}")
    return None


def _decode(data: bytes, file: str, problems: _Problems) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.add(file, f"not UTF-8 text (byte {exc.start}: {exc.reason})")
        return None


def _read_geojson_text(text: str, spec: TableSpec, file: str, problems: _Problems) -> _Layer | None:
    doc = _load_json(text, file, problems)
    if doc is None:
        return None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        problems.add(file, "not a GeoJSON FeatureCollection")
        return None
    crs = doc.get("crs")
    if crs is not None:
        crs_properties = crs.get("properties") if isinstance(crs, dict) else None
        name = crs_properties.get("name") if isinstance(crs_properties, dict) else None
        if name not in _ACCEPTED_CRS_NAMES:
            problems.add(file, f"crs {_describe(name)} is not WGS-84 lon/lat; send WGS-84, or GCJ-02 with --crs gcj02")
            return None
    features = doc.get("features")
    if not isinstance(features, list):
        problems.add(file, f"'features' must be an array, got {_describe(features)}")
        return None
    records = []
    for n, feature in enumerate(features, start=1):
        where = f"feature {n}"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            problems.add(file, "not a GeoJSON Feature", record=n, where=where)
            continue
        props = feature.get("properties")
        if props is None:
            props = {}
        if not isinstance(props, dict):
            problems.add(file, f"'properties' must be an object, got {_describe(props)}", record=n, where=where)
            continue
        ident = props.get("id") if isinstance(props.get("id"), str) else None
        record = _Record(n, where, ident, props)
        records.append(record)

        def report(name: str, what: str, record=record) -> None:
            problems.add(file, what, record=record.number, where=record.where, ident=record.ident, field_name=name)

        for key in sorted(set(feature) - _FEATURE_MEMBERS):
            report(key, "unknown Feature member (put attributes in 'properties')")
        for obj in (feature, props):
            for key in getattr(obj, "duplicate_keys", ()):
                report(key, "appears twice in the object")
        if "id" in feature and feature["id"] != props.get("id"):
            report("id", f"the Feature id {_describe(feature['id'])} differs from properties.id "
                         f"{_describe(props.get('id'))}")
        try:
            record.geometry = _geometry_from_json(feature.get("geometry"), spec.geometry)
        except _Invalid as exc:
            report("geometry", str(exc))
        _check_record(spec, record, False, file, problems)
    _build_points(records)
    return _Layer(spec.name, file, records)


def _table_rows_csv(data: bytes, file: str, problems: _Problems) -> list[list[str]] | None:
    text = _decode(data, file, problems)
    if text is None:
        return None
    try:
        return [row for row in csv.reader(io.StringIO(text, newline=""))]
    except csv.Error as exc:
        problems.add(file, f"malformed CSV: {exc}")
        return None


def _cell_text(value: Any) -> str:
    """An XLSX cell as the text a CSV would hold, so both tables share one parser."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise _Invalid("a spreadsheet date has no time zone: write the date-time as ISO-8601 text "
                           "with an offset (2024-05-01T08:30:00Z)")
        return pd.Timestamp(value).isoformat()
    if isinstance(value, (dt.date, dt.time, dt.timedelta)):
        raise _Invalid(f"a spreadsheet date/time cell ({value}): write the value as text")
    return str(value)


def _table_rows_xlsx(path: Path, file: str, problems: _Problems) -> list[list[Any]] | None:
    import openpyxl  # only tables need it

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/InvalidFileException on broken files
        problems.add(file, f"not a readable XLSX workbook: {exc}")
        return None
    try:
        return [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]
    finally:
        workbook.close()


def _read_table(path: Path, spec: TableSpec, file: str, problems: _Problems) -> _Layer | None:
    if path.suffix == ".csv":
        rows = _table_rows_csv(path.read_bytes(), file, problems)
    else:
        rows = _table_rows_xlsx(path, file, problems)
    if rows is None:
        return None
    return _layer_from_rows(rows, spec, file, problems)


def _layer_from_rows(rows: list[list[Any]], spec: TableSpec, file: str, problems: _Problems) -> _Layer | None:
    """A point layer's table (lon, lat and its fields) or a plain table (its fields only)."""
    position = [LON_COLUMN, LAT_COLUMN] if spec.is_layer else []
    # Spreadsheets keep empty trailing rows and columns: drop rows with nothing in them.
    numbered = [(i, row) for i, row in enumerate(rows, start=1) if any(c not in (None, "") for c in row)]
    if not numbered:
        problems.add(file, "no header row (expected lon, lat and the layer's fields)" if position else
                     f"no header row (expected {', '.join(spec.columns)})")
        return None
    _, header_row = numbered[0]
    header = [("" if c is None else str(c)).strip() for c in header_row]
    while header and header[-1] == "":
        header.pop()
    children = [c.nested_as for c in _child_specs_of(spec.name)]
    known = [*position, *spec.columns, *children]
    header_ok = True
    for name in header:
        if name not in known:
            problems.add(file, f"column {name!r}: unknown column (expected {', '.join(known)})")
            header_ok = False
    for name in sorted({n for n in header if header.count(n) > 1}):
        problems.add(file, f"column {name!r} appears more than once")
        header_ok = False
    needed = [*position, *(f.name for f in spec.fields if f.required), *children]
    for name in needed:
        if name not in header:
            problems.add(file, f"column {name!r} is missing (required)")
            header_ok = False
    if not header_ok:
        return None
    records = []
    for number, row in numbered[1:]:
        where = f"row {number}"
        cells = list(row) + [None] * (len(header) - len(row))
        if any(c not in (None, "") for c in cells[len(header):]):
            problems.add(file, f"has {len(row)} cells, the header has {len(header)} columns", record=number,
                         where=where)
            continue
        values: dict[str, str] = {}
        bad_cells: list[tuple[str, str]] = []
        for name, cell in zip(header, cells):
            try:
                values[name] = _cell_text(cell)
            except _Invalid as exc:
                bad_cells.append((name, str(exc)))
                values[name] = ""
        lon_text, lat_text = (values.pop(LON_COLUMN), values.pop(LAT_COLUMN)) if position else ("", "")
        ident = values.get("id") or None
        record = _Record(number, where, ident, values)
        records.append(record)
        for name, what in bad_cells:
            problems.add(file, what, record=number, where=where, ident=ident, field_name=name)
        if not position:
            _check_record(spec, record, True, file, problems)
            continue
        coords = []
        for name, text in ((LON_COLUMN, lon_text), (LAT_COLUMN, lat_text)):
            try:
                coords.append(_text_value("float", text) if text != "" else None)
                if text == "":
                    problems.add(file, "missing (required)", record=number, where=where, ident=ident, field_name=name)
            except _Invalid as exc:
                coords.append(None)
                problems.add(file, str(exc), record=number, where=where, ident=ident, field_name=name)
        if None not in coords:
            record.geometry = _PendingPoint(*coords)
        _check_record(spec, record, True, file, problems)
    _build_points(records)
    return _Layer(spec.name, file, records)


def _discover(source_dir: Path, problems: _Problems) -> dict[str, Path]:
    """Layer name -> its file in the folder; unknown, duplicate and missing files are problems."""
    found: dict[str, list[Path]] = {}
    for entry in sorted(source_dir.iterdir()):
        name = entry.name
        if name.startswith("."):  # hidden files (.DS_Store, editors' swap files) are not data
            continue
        stem, suffix = entry.stem, entry.suffix
        spec = LAYER_SPECS.get(stem) or PLAIN_SPECS.get(stem)
        if not entry.is_file() or spec is None or suffix not in (GEOJSON_SUFFIX, *TABLE_SUFFIXES):
            problems.add(name, "unknown file (expected <layer>.geojson for the layers "
                               f"{', '.join(LAYER_SPECS)}, or <layer>.csv / .xlsx for point layers; "
                               f"<table>.csv / .xlsx for the tables {', '.join(PLAIN_SPECS)})")
            continue
        if spec.is_plain and suffix == GEOJSON_SUFFIX:
            problems.add(name, f"{stem} has no geometry: send {stem}.csv or {stem}.xlsx")
            continue
        if suffix in TABLE_SUFFIXES and spec.geometry not in ("Point", None):
            problems.add(name, f"only point layers may come as tables; send {stem}{GEOJSON_SUFFIX} "
                               f"({spec.geometry} geometry)")
            continue
        found.setdefault(stem, []).append(entry)
    if not found and not problems:
        raise ExchangeError(f"cannot import {source_dir}", [f"{source_dir}: no layer files (the folder is empty)"])
    files: dict[str, Path] = {}
    for layer in LAYER_SPECS:
        paths = found.get(layer, [])
        if len(paths) > 1:
            problems.add(paths[0].name, f"the {layer} layer comes in {len(paths)} files "
                                        f"({', '.join(p.name for p in paths)}): keep one")
        elif not paths:
            problems.add(layer + GEOJSON_SUFFIX, "missing: every layer must have its file (an empty layer is a "
                                                 "FeatureCollection with no features, or a table with only its header)")
        else:
            files[layer] = paths[0]
    for table in PLAIN_SPECS:  # optional: a folder from before they existed has none
        paths = found.get(table, [])
        if len(paths) > 1:
            problems.add(paths[0].name, f"the {table} table comes in {len(paths)} files "
                                        f"({', '.join(p.name for p in paths)}): keep one")
        elif paths:
            files[table] = paths[0]
    return files


# --------------------------------------------------------------------------------------
# checks across features and layers, and the World


def _check_geometries(layers: dict[str, _Layer], crs: str, problems: _Problems) -> None:
    """Coordinate ranges on the input, GCJ-02 -> WGS-84, then validity, vectorised per layer."""
    lon_min, lat_min, lon_max, lat_max = SERVICE_AREA_BBOX
    for layer in layers.values():
        with_geometry = [r for r in layer.records if r.geometry is not None]
        if not with_geometry:
            continue
        geoms = np.array([r.geometry for r in with_geometry], dtype=object)
        coords, index = shapely.get_coordinates(geoms, return_index=True)
        lon, lat = coords[:, 0], coords[:, 1]
        not_wgs84 = (np.abs(lon) > 180) | (np.abs(lat) > 90)
        outside = ~not_wgs84 & ((lon < lon_min) | (lon > lon_max) | (lat < lat_min) | (lat > lat_max))
        bad_records: set[int] = set()
        field_name = "geometry" if layer.file.endswith(GEOJSON_SUFFIX) else f"{LON_COLUMN}/{LAT_COLUMN}"
        for mask, what in (
            (not_wgs84, "outside the lon/lat range (lon -180…180, lat -90…90): projected, or lon and lat swapped?"),
            (outside, f"far outside China (lon {lon_min:g}…{lon_max:g}, lat {lat_min:g}…{lat_max:g})"),
        ):
            rows, first = np.unique(index[mask], return_index=True)
            where = np.flatnonzero(mask)[first]
            for row, k in zip(rows.tolist(), where.tolist()):
                record = with_geometry[row]
                bad_records.add(row)
                problems.add(layer.file, f"position [{float(lon[k])!r}, {float(lat[k])!r}] is {what}",
                             record=record.number, where=record.where, ident=record.ident, field_name=field_name)
        if crs == "gcj02":
            geoms = geometry_gcj02_to_wgs84(geoms)
        valid = shapely.is_valid(geoms)
        for row in np.flatnonzero(~valid).tolist():
            record = with_geometry[row]
            if row in bad_records:  # its coordinates are already reported
                continue
            problems.add(layer.file, f"invalid geometry: {shapely.is_valid_reason(geoms[row])}",
                         record=record.number, where=record.where, ident=record.ident, field_name="geometry")
        for row, (record, geom) in enumerate(zip(with_geometry, geoms.tolist())):
            record.geometry = None if row in bad_records else geom


def _check_keys(layers: dict[str, _Layer], problems: _Problems) -> dict[tuple[str, str], set]:
    """Duplicate ids (and other unique keys); returns the values present per (layer, column)."""
    present: dict[tuple[str, str], set] = {}
    for layer in layers.values():
        unique = ["id", *(col for lay, col in UNIQUE_COLUMNS if lay == layer.name)]
        for column in unique:
            first_seen: dict[Any, _Record] = {}
            for record in layer.records:
                value = record.typed.get(column)
                if value is None:
                    continue
                if value in first_seen:
                    problems.add(layer.file, f"duplicate {column} {value!r} (also {first_seen[value].where})",
                                 record=record.number, where=record.where, ident=record.ident, field_name=column)
                else:
                    first_seen[value] = record
            present[(layer.name, column)] = set(first_seen)
    return present


def _catalogue_numbers(chemicals: Any) -> set[str] | None:
    """UN numbers of a chemical catalogue: a DataFrame indexed by UN number (as World.chemicals
    is) or with an `un_number` column, or any iterable of UN numbers."""
    if chemicals is None:
        return None
    if isinstance(chemicals, pd.DataFrame):
        values = chemicals["un_number"] if "un_number" in chemicals.columns else chemicals.index
        return {str(v) for v in values}
    if isinstance(chemicals, str):
        raise TypeError("chemicals must be a catalogue DataFrame or an iterable of UN numbers, not one string")
    return {str(v) for v in chemicals}


def _check_references(layers: dict[str, _Layer], present: dict, un_numbers: set[str] | None,
                      problems: _Problems) -> None:
    for ref in REFERENCES:
        layer, target = layers.get(ref.layer), layers.get(ref.target)
        if layer is None or target is None:  # an unreadable file is reported once, not per feature
            continue
        known = present.get((ref.target, ref.target_column), set())
        for record in layer.records:
            value = record.typed.get(ref.column)
            if value is not None and value not in known:
                problems.add(layer.file, f"{value!r} is not the {ref.target_column} of any feature in {target.file}",
                             record=record.number, where=record.where, ident=record.ident, field_name=ref.column)
    if un_numbers is None:
        return
    checks = [("monitoring_points", None, "substance_un")] + [
        (c.parent, c.nested_as, "un_number") for c in CHILD_SPECS.values() if "un_number" in c.columns
    ]
    for layer_name, nested, column in checks:
        layer = layers.get(layer_name)
        if layer is None:
            continue
        for record in layer.records:
            rows = [record.typed] if nested is None else (record.children or [])
            for i, row in enumerate(rows, start=1):
                value = row.get(column)
                if value is not None and value not in un_numbers:
                    name = column if nested is None else f"{nested}[{i}].{column}"
                    problems.add(layer.file, f"unknown UN number {value!r} (not in the chemical catalogue)",
                                 record=record.number, where=record.where, ident=record.ident, field_name=name)


def _check_routing(layers: dict[str, _Layer], problems: _Problems) -> None:
    """Departments' kinds (one district office per district) and routing rows that can reach
    someone: a known subject kind, and a role that is a resolved one or a kind some department has."""
    departments, routing = layers.get("departments"), layers.get("routing")
    kinds: set[str] = set()
    if departments is not None:
        offices: dict[str, _Record] = {}
        for record in departments.records:
            kind, adcode = record.typed.get("kind"), record.typed.get("district_adcode")

            def report(name: str, what: str, record=record) -> None:
                problems.add(departments.file, what, record=record.number, where=record.where, ident=record.ident,
                             field_name=name)

            if kind is None:
                continue
            kinds.add(kind)
            if kind not in DEPARTMENT_KINDS:
                report("kind", f"unknown department kind {kind!r} (expected one of {', '.join(DEPARTMENT_KINDS)})")
            elif kind == "district_office":
                if adcode is None:
                    report("district_adcode", "a district office needs its district's adcode")
                elif adcode in offices:
                    report("district_adcode", f"district {adcode} has a district office already "
                                              f"({offices[adcode].where})")
                else:
                    offices[adcode] = record
    if routing is None:
        return
    for record in routing.records:
        def report(name: str, what: str, record=record) -> None:
            problems.add(routing.file, what, record=record.number, where=record.where, ident=record.ident,
                         field_name=name)

        subject, role = record.typed.get("subject_kind"), record.typed.get("role")
        if subject is not None and subject not in SUBJECT_KINDS:
            report("subject_kind", f"unknown subject kind {subject!r} (expected {', '.join(SUBJECT_KINDS)})")
        if role is None:
            continue
        if role == "carrier" and subject == "monitoring_point" or role == "plant" and subject == "vehicle":
            report("role", f"{role} does not apply to a {subject.replace('_', ' ')}")
        elif role not in ROUTING_ROLES_RESOLVED and role not in kinds:
            known = sorted(kinds | set(ROUTING_ROLES_RESOLVED))
            report("role", f"no department of kind {role!r} (roles: {', '.join(known)})")


def _typed_column(f: Field, values: list[Any]) -> pd.Series:
    """One column in the World's dtype for its kind (see docs/exchange-format.md)."""
    if f.kind == "int":
        return pd.Series(values, dtype="int64" if f.required else "Int64")
    if f.kind == "float":
        return pd.Series([np.nan if v is None else v for v in values], dtype="float64")
    if f.kind == "bool":
        return pd.Series(values, dtype="bool" if f.required else "boolean")
    if f.kind == "datetime":
        return pd.Series(pd.to_datetime(pd.Series(values, dtype=object), utc=True)).astype(DATETIME_DTYPE)
    # str and strlist stay Python objects (None for null), not pandas' string dtype.
    return pd.Series(values, dtype=object)


def _frame(spec: TableSpec, rows: list[dict[str, Any]], sort_by: list[str]) -> pd.DataFrame:
    df = pd.DataFrame({f.name: _typed_column(f, [row[f.name] for row in rows]) for f in spec.fields})
    return df.sort_values(sort_by, kind="stable", ignore_index=True) if sort_by and len(df) else df


def _child_sort_keys(child: TableSpec) -> list[str]:
    """The canonical order of child rows: by parent, then by `seq` when the table has one,
    else by every other column in spec order."""
    if "seq" in child.columns:
        return [child.parent_key, "seq"]
    return [child.parent_key, *(c for c in child.columns if c != child.parent_key)]


def _build_world(layers: dict[str, _Layer], chemicals: Any) -> World:
    tables: dict[str, pd.DataFrame] = {}
    for name, spec in PLAIN_SPECS.items():  # an absent plain-table file is an empty table
        records = sorted(layers[name].records, key=lambda r: r.typed["id"]) if name in layers else []
        tables[name] = _frame(spec, [r.typed for r in records], [])
    for name, spec in LAYER_SPECS.items():
        records = sorted(layers[name].records, key=lambda r: r.typed["id"])
        df = _frame(spec, [r.typed for r in records], [])
        geometry = gpd.GeoSeries(np.array([r.geometry for r in records], dtype=object), crs=WGS84)
        tables[name] = gpd.GeoDataFrame(df, geometry=geometry, crs=WGS84)
        for child in _child_specs_of(name):
            rows = [{child.parent_key: r.typed["id"], **row} for r in records for row in (r.children or [])]
            tables[child.name] = _frame(child, rows, _child_sort_keys(child))
    catalogue = chemicals if isinstance(chemicals, pd.DataFrame) else pd.DataFrame()
    return World(**tables, chemicals=catalogue)


def _world_from_layers(layers: dict[str, _Layer], crs: str, chemicals: Any, problems: _Problems) -> World | None:
    _check_geometries(layers, crs, problems)
    present = _check_keys(layers, problems)
    _check_references(layers, present, _catalogue_numbers(chemicals), problems)
    _check_routing(layers, problems)
    return None if problems else _build_world(layers, chemicals)


def import_world(source_dir: Path, crs: ExchangeCrs = "wgs84", chemicals: Any = None) -> World:
    """Read an exchange folder into a World, or raise ExchangeError listing every problem.

    `crs="gcj02"` shifts every coordinate from GCJ-02 (Amap/Tencent data) to WGS-84.
    `chemicals` (a catalogue DataFrame indexed by UN number, or any iterable of UN numbers)
    turns on the check that every UN number in the files is known; it becomes the
    returned World's `chemicals`. Nothing is returned when anything is wrong.
    """
    if crs not in EXCHANGE_CRS:
        raise ValueError(f"crs must be one of {', '.join(EXCHANGE_CRS)}, got {crs!r}")
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise ExchangeError(f"cannot import {source_dir}", [f"{source_dir}: not a folder"])
    problems = _Problems(_file_ranks())
    files = _discover(source_dir, problems)
    layers: dict[str, _Layer] = {}
    for layer, path in files.items():
        spec = WORLD_SPECS[layer]
        if path.suffix == GEOJSON_SUFFIX:
            text = _decode(path.read_bytes(), path.name, problems)
            loaded = None if text is None else _read_geojson_text(text, spec, path.name, problems)
        else:
            loaded = _read_table(path, spec, path.name, problems)
        if loaded is not None:
            layers[layer] = loaded
    world = _world_from_layers(layers, crs, chemicals, problems)
    if world is None:
        lines = problems.lines()
        raise ExchangeError(f"cannot import {source_dir}: {len(lines)} problem(s)", lines)
    return world


# --------------------------------------------------------------------------------------
# export


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _dumps(obj: Any) -> str:
    # The standard json module, not pyogrio/GDAL: its output is a pure function of the
    # values (float repr is the shortest text that round-trips exactly, keys stay in
    # insertion order), so the same World always gives the same bytes, on every machine.
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default)


def _is_null(value: Any) -> bool:
    return value is None or (not isinstance(value, (list, tuple, np.ndarray)) and bool(pd.isna(value)))


def _iso_datetime(value: Any) -> Any:
    """UTC 'Z' text at microsecond precision; a naive value keeps no offset, so validation
    names it instead of guessing its zone."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return value
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
    return ts.floor("us").as_unit("us").isoformat().replace("+00:00", "Z")


def _export_value(kind: str, value: Any) -> Any:
    """A World cell as its JSON value. Producers differ in dtypes (an int column read back as
    float because of a NULL, a float column holding ints): convert what is unambiguous, and
    leave anything else for validation to name."""
    if value is None:
        return None
    value_type = type(value)
    if value_type is str or value_type is bool:  # the fast path for most cells
        return value
    if value_type is float and kind == "float":
        return None if value != value else value
    if value_type is int and kind == "int":
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value) if kind == "strlist" else value
    if _is_null(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "float" and type(value) is int:
        return float(value)
    if kind == "datetime" and not isinstance(value, str):
        return _iso_datetime(value)
    return value


def _export_values(f: Field, column: pd.Series) -> list[Any]:
    return [_export_value(f.kind, v) for v in column.tolist()]


def _records_of(table: pd.DataFrame, spec_fields: Iterable[Field], what: str) -> list[dict[str, Any]]:
    fields = list(spec_fields)
    missing = [f.name for f in fields if f.name not in table.columns]
    if missing:
        raise ExchangeError(f"cannot export: the World's {what} table lacks columns", [
            f"{what}: column {name!r} is missing" for name in missing])
    columns = {f.name: _export_values(f, table[f.name]) for f in fields}
    return [dict(zip(columns, values)) for values in zip(*columns.values())] if fields else []


def _layer_text(world: World, layer: str) -> str:
    """One layer as deterministic GeoJSON text: one feature per line, sorted by id."""
    spec = LAYER_SPECS[layer]
    table = world.table(layer)
    if isinstance(table, gpd.GeoDataFrame) and table.crs is not None and not table.crs.equals(WGS84):
        table = table.to_crs(WGS84)
    rows = _records_of(table, spec.fields, layer)
    geometries = table.geometry.tolist() if isinstance(table, gpd.GeoDataFrame) else [None] * len(rows)
    nested: dict[str, dict[Any, list[dict[str, Any]]]] = {}
    for child in _child_specs_of(layer):
        child_table = world.table(child.name)
        child_rows = _records_of(child_table, child.fields, child.name)
        keys = [child_rows[i][child.parent_key] for i in range(len(child_rows))]
        order = sorted(range(len(child_rows)), key=lambda i: tuple(
            (child_rows[i][k] is None, child_rows[i][k] if child_rows[i][k] is not None else 0)
            for k in _child_sort_keys(child)))
        groups: dict[Any, list[dict[str, Any]]] = {}
        for i in order:
            row = {k: v for k, v in child_rows[i].items() if k != child.parent_key}
            groups.setdefault(keys[i], []).append(row)
        parent_ids = {row["id"] for row in rows}
        orphans = sorted({str(k) for k in groups if k not in parent_ids})
        if orphans:
            raise ExchangeError(f"cannot export: {child.name} rows without a parent", [
                f"{child.name}: {child.parent_key} {k!r} is not an id in {layer}" for k in orphans])
        nested[child.nested_as] = groups
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["id"] is None, str(rows[i]["id"])))
    lines = []
    for i in order:
        properties = dict(rows[i])
        for name, groups in nested.items():
            properties[name] = groups.get(properties["id"], [])
        geom = geometries[i]
        geometry = None if geom is None or geom.is_empty else shapely.geometry.mapping(geom)
        feature = {"type": "Feature", "id": properties["id"], "properties": properties, "geometry": geometry}
        lines.append(_dumps(feature))
    head = _dumps({"type": "FeatureCollection", "name": layer})[:-1]
    return head + ',"features":[\n' + ",\n".join(lines) + ("\n" if lines else "") + "]}\n"


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _plain_text(world: World, name: str) -> str:
    """A plain table as deterministic CSV text: a header of the spec's fields, rows by id,
    empty cells for nulls, "\n" line ends."""
    spec = PLAIN_SPECS[name]
    rows = _records_of(world.table(name), spec.fields, name)
    rows.sort(key=lambda row: (row["id"] is None, str(row["id"])))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(spec.columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else (str(row[c]).lower() if isinstance(row[c], bool) else row[c])
                         for c in spec.columns])
    return out.getvalue()


EXPORT_FILE_NAMES: tuple[str, ...] = (
    *(layer + GEOJSON_SUFFIX for layer in LAYER_SPECS), *(table + ".csv" for table in PLAIN_SPECS))


def export_world(world: World, out_dir: Path) -> list[Path]:
    """Write every layer as `<layer>.geojson` and every plain table as `<table>.csv` into
    `out_dir`; returns the files written.

    The files are validated exactly as `import_world` would read them (so every export
    imports) and written into a temporary sibling folder that then replaces `out_dir`: a
    failed export leaves `out_dir` as it was. An existing `out_dir` may hold only a
    previous export's files, never anything else (which would be lost).
    """
    out_dir = Path(out_dir)
    texts = {layer + GEOJSON_SUFFIX: _layer_text(world, layer) for layer in LAYER_SPECS}
    texts.update({table + ".csv": _plain_text(world, table) for table in PLAIN_SPECS})
    problems = _Problems(_file_ranks())
    layers = {}
    for file, text in texts.items():
        name = file.rsplit(".", 1)[0]
        if file.endswith(GEOJSON_SUFFIX):
            loaded = _read_geojson_text(text, LAYER_SPECS[name], file, problems)
        else:
            rows = _table_rows_csv(text.encode("utf-8"), file, problems)
            loaded = None if rows is None else _layer_from_rows(rows, PLAIN_SPECS[name], file, problems)
        if loaded is not None:
            layers[name] = loaded
    _world_from_layers(layers, "wgs84", None, problems)
    if problems:
        lines = problems.lines()
        raise ExchangeError(f"cannot export to {out_dir}: the World has {len(lines)} problem(s)", lines)

    if out_dir.exists():
        if not out_dir.is_dir():
            raise ExchangeError(f"cannot export to {out_dir}", [f"{out_dir}: exists and is not a folder"])
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in EXPORT_FILE_NAMES)
        if foreign:
            raise ExchangeError(f"cannot export to {out_dir}", [
                f"{out_dir}: holds files that are not a hazmap export ({', '.join(foreign[:5])}); "
                "choose a new or empty folder"])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        os.chmod(staging, 0o755)
        for file, text in texts.items():
            _write_file(staging / file, text.encode("utf-8"))
        if out_dir.exists():
            previous = staging.with_name(staging.name[: -len(".tmp")] + ".old")
            os.rename(out_dir, previous)
            try:
                os.rename(staging, out_dir)
            except BaseException:
                os.rename(previous, out_dir)
                raise
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out_dir / name for name in EXPORT_FILE_NAMES]
