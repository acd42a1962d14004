"""The store's tables as the code sees them today (SQLAlchemy Core).

Every World layer, child and plain table of `spatial.model` (LAYER_SPECS, CHILD_SPECS, PLAIN_SPECS) with the same
names and columns, the live tables `pings` and `readings`, and `events` (what the rules said,
in the order it was recorded). The database itself is built by
the Alembic revisions in `data/migrations/versions` (the frozen history); this module declares the
current state so queries and `alembic revision --autogenerate` have something to compare with.

Two backends, one declaration:
- PostGIS: `geometry(<type>, 4326)` with GiST indexes, timestamptz, JSONB; pings and readings
  partitioned by range of `time`, one partition per UTC day, BRIN on `time`.
- SQLite (embedded, no extension): geometry as a WKB blob, times as INTEGER microseconds since the
  Unix epoch (UTC; sortable, exact, and fast to convert in bulk), string lists and JSON documents
  as JSON text.
Point layers also carry `h3_cell` (spatial.h3cells.H3_RES_AREA_FILTER) so area filters work on
both backends without a spatial extension.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from spatial.model import CHILD_SPECS, LAYER_SPECS, PLAIN_SPECS, TableSpec

SRID = 4326
GEOMETRY_COLUMN = "geometry"
H3_COLUMN = "h3_cell"
PINGS = "pings"
READINGS = "readings"
EVENTS = "events"
EVENT_PHASES = ("open", "update", "close")  # spatial.model.EventPhase
PARTITIONED_TABLES = (PINGS, READINGS)
# Column order of the live tables (as written and read by the store).
PING_COLUMNS = ("vehicle_id", "time", "lon", "lat", "speed_kmh", "heading", "alarm", "status")
READING_COLUMNS = ("point_id", "time", "value")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_EPOCH_TS = pd.Timestamp(_EPOCH)
_ONE_MICROSECOND = pd.Timedelta(microseconds=1)


class UtcDateTime(TypeDecorator):
    """A timezone-aware UTC instant: timestamptz on PostgreSQL, INTEGER microseconds since the
    Unix epoch on SQLite. Refuses naive datetimes; always returns aware UTC datetimes."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        ts = pd.Timestamp(value)
        if ts.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: hazmap stores timezone-aware UTC times only")
        ts = ts.tz_convert("UTC")
        if dialect.name == "sqlite":
            return (ts - _EPOCH_TS) // _ONE_MICROSECOND
        return ts.to_pydatetime()

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if dialect.name == "sqlite":
            return _EPOCH + dt.timedelta(microseconds=int(value))
        return value.astimezone(dt.timezone.utc)


class _Json(TypeDecorator):
    """JSON: JSONB on PostgreSQL, JSON text on SQLite. None stays SQL NULL."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(sa.Text())


class StrList(_Json):
    """A list of strings."""

    cache_ok = True  # SQLAlchemy reads it from each class's own namespace

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        items = [str(v) for v in value]
        return items if dialect.name == "postgresql" else json.dumps(items, ensure_ascii=False)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value if dialect.name == "postgresql" else json.loads(value)


class JsonDocument(_Json):
    """A JSON object. The store writes it already serialised (strict JSON, see data.store);
    through this type a dict goes in and comes out."""

    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or dialect.name == "postgresql":
            return value
        return json.dumps(value, ensure_ascii=False, allow_nan=False)

    def process_result_value(self, value, dialect):
        if value is None or dialect.name == "postgresql":
            return value
        return json.loads(value)


def geometry_type(spec: TableSpec):
    """`geometry(<type>, 4326)` on PostGIS, a WKB blob on SQLite."""
    return Geometry(geometry_type=spec.geometry.upper(), srid=SRID, spatial_index=False).with_variant(
        sa.LargeBinary(), "sqlite"
    )


def column_type(kind: str) -> sa.types.TypeEngine:
    return {
        "str": sa.Text(),
        "int": sa.BigInteger(),
        "float": sa.Double(),
        "bool": sa.Boolean(),
        "datetime": UtcDateTime(),
        "strlist": StrList(),
    }[kind]


def has_h3_column(spec: TableSpec) -> bool:
    return spec.geometry == "Point"


metadata = sa.MetaData()


def _layer_table(spec: TableSpec) -> sa.Table:
    columns = [sa.Column(f.name, column_type(f.kind), nullable=not f.required) for f in spec.fields]
    columns.append(sa.Column(GEOMETRY_COLUMN, geometry_type(spec), nullable=False))
    extra: list = [sa.PrimaryKeyConstraint("id", name=f"pk_{spec.name}")]
    extra.append(
        sa.Index(f"ix_{spec.name}_{GEOMETRY_COLUMN}", GEOMETRY_COLUMN, postgresql_using="gist").ddl_if(
            dialect="postgresql"
        )
    )
    if has_h3_column(spec):
        columns.append(sa.Column(H3_COLUMN, sa.Text(), nullable=False))
        extra.append(sa.Index(f"ix_{spec.name}_{H3_COLUMN}", H3_COLUMN))
    return sa.Table(spec.name, metadata, *columns, *extra)


def _child_table(spec: TableSpec) -> sa.Table:
    columns = [sa.Column(f.name, column_type(f.kind), nullable=not f.required) for f in spec.fields]
    extra: list = [
        sa.ForeignKeyConstraint(
            [spec.parent_key], [f"{spec.parent}.id"], name=f"fk_{spec.name}_{spec.parent}", ondelete="CASCADE"
        ),
        sa.Index(f"ix_{spec.name}_{spec.parent_key}", spec.parent_key),
    ]
    if "seq" in spec.columns:  # numbered lines (waybill goods) are unique within their parent
        extra.append(sa.PrimaryKeyConstraint(spec.parent_key, "seq", name=f"pk_{spec.name}"))
    return sa.Table(spec.name, metadata, *columns, *extra)


def _plain_table(spec: TableSpec) -> sa.Table:
    columns = [sa.Column(f.name, column_type(f.kind), nullable=not f.required) for f in spec.fields]
    return sa.Table(spec.name, metadata, *columns, sa.PrimaryKeyConstraint("id", name=f"pk_{spec.name}"))


LAYER_TABLES: dict[str, sa.Table] = {name: _layer_table(spec) for name, spec in LAYER_SPECS.items()}
CHILD_TABLES: dict[str, sa.Table] = {name: _child_table(spec) for name, spec in CHILD_SPECS.items()}
PLAIN_TABLES: dict[str, sa.Table] = {name: _plain_table(spec) for name, spec in PLAIN_SPECS.items()}
WORLD_TABLES: dict[str, sa.Table] = {**LAYER_TABLES, **CHILD_TABLES, **PLAIN_TABLES}


def _live_indexes(table: str, key: str) -> list[sa.Index]:
    return [
        sa.Index(f"ix_{table}_{key}_time", key, "time"),
        # BRIN suits append-mostly time series: tiny, and partitions are scanned by time range.
        sa.Index(f"ix_{table}_time_brin", "time", postgresql_using="brin").ddl_if(dialect="postgresql"),
        sa.Index(f"ix_{table}_time", "time").ddl_if(dialect="sqlite"),
    ]


pings = sa.Table(
    PINGS,
    metadata,
    sa.Column("vehicle_id", sa.Text(), nullable=False),
    sa.Column("time", UtcDateTime(), nullable=False),
    sa.Column("lon", sa.Double(), nullable=False),
    sa.Column("lat", sa.Double(), nullable=False),
    sa.Column("speed_kmh", sa.Double()),
    sa.Column("heading", sa.Double()),
    sa.Column("alarm", sa.BigInteger(), nullable=False),  # JT/T 808 uint32 bit fields
    sa.Column("status", sa.BigInteger(), nullable=False),
    *_live_indexes(PINGS, "vehicle_id"),
    postgresql_partition_by="RANGE (time)",
)

readings = sa.Table(
    READINGS,
    metadata,
    sa.Column("point_id", sa.Text(), nullable=False),
    sa.Column("time", UtcDateTime(), nullable=False),
    sa.Column("value", sa.Double()),
    *_live_indexes(READINGS, "point_id"),
    postgresql_partition_by="RANGE (time)",
)


# What the rules said, one row per Event, append-only. `seq` is the order rows were recorded
# (SQLite AUTOINCREMENT never reuses a value; on PostgreSQL the store serialises event writers so
# seq order is commit order): a consumer that remembers the last seq it saw asks for everything
# after it. `event_time` is the instant the event speaks for, as the engine orders events
# (spatial.rules.base.event_order): `end_time` for a close, `start_time` for an open or an update
# (an update carries its episode's start). Position may be unknown (lon, lat, geometry, h3_cell
# all NULL). `recorded_at` is the UTC wall clock of the write.
events = sa.Table(
    EVENTS,
    metadata,
    # INTEGER on SQLite: only `INTEGER PRIMARY KEY` aliases the rowid (and takes AUTOINCREMENT)
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("rule", sa.Text(), nullable=False),
    sa.Column("subject_id", sa.Text(), nullable=False),
    sa.Column("episode_id", sa.Text(), nullable=False),
    sa.Column("phase", sa.Text(), nullable=False),
    sa.Column("start_time", UtcDateTime(), nullable=False),
    sa.Column("end_time", UtcDateTime()),
    sa.Column("event_time", UtcDateTime(), nullable=False),
    sa.Column("lon", sa.Double()),
    sa.Column("lat", sa.Double()),
    sa.Column("severity", sa.BigInteger(), nullable=False),
    sa.Column("evidence", JsonDocument(), nullable=False),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
    sa.Column(
        GEOMETRY_COLUMN,
        Geometry(geometry_type="POINT", srid=SRID, spatial_index=False).with_variant(sa.LargeBinary(), "sqlite"),
    ),
    sa.Column(H3_COLUMN, sa.Text()),
    sa.PrimaryKeyConstraint("seq", name="pk_events"),
    sa.CheckConstraint("phase IN ('open', 'update', 'close')", name="ck_events_phase"),
    sa.Index("ix_events_event_time", "event_time"),
    sa.Index("ix_events_subject_id_event_time", "subject_id", "event_time"),
    sa.Index("ix_events_rule_event_time", "rule", "event_time"),
    sa.Index("ix_events_episode_id", "episode_id"),
    sa.Index(f"ix_events_{GEOMETRY_COLUMN}", GEOMETRY_COLUMN, postgresql_using="gist").ddl_if(dialect="postgresql"),
    sa.Index(f"ix_events_{H3_COLUMN}", H3_COLUMN),
    sqlite_autoincrement=True,
)
