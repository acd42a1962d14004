"""The store: the World's layers and the live pings and readings, in PostGIS or embedded SQLite.

`Store.open(url)` picks the backend from the URL the caller passes (`HAZMAP_DATABASE_URL`):
`postgresql+psycopg://…` for PostGIS, `sqlite:///path/file.sqlite` for the embedded file. It
refuses a database whose schema is behind the code (`SchemaBehindError`) unless asked to
upgrade it. Tables come from the Alembic revisions in `data/migrations` (see `data.schema`).

Bulk paths are columnar: World layers go in as one executemany per table with geometry as WKB
(shapely.to_wkb, vectorised; ST_GeomFromWKB(…, 4326) on PostGIS) and come back through
ST_AsBinary / the blob, decoded by shapely.from_wkb. Pings and readings go into PostgreSQL by
binary COPY (the byte stream built column by column with numpy, through the SQLAlchemy
connection's psycopg connection), after creating the partition of every UTC day the batch
touches, and into SQLite by executemany; they come back by COPY … TO STDOUT (CSV, parsed by
pandas) or one SELECT.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.pool import StaticPool

from data import schema
from data.schema import GEOMETRY_COLUMN, H3_COLUMN, PINGS, READINGS, SRID
from spatial.h3cells import cells_for_points
from spatial.model import CHILD_SPECS, LAYER_SPECS, PingBatch, ReadingBatch, TableSpec, World

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
DAY_MS = 86_400_000
# A batch whose times span more new days than this is almost surely garbage (a bad clock, ms read
# as s): refuse it rather than create thousands of partitions.
MAX_NEW_PARTITION_DAYS = 400
# Rows per COPY chunk: bounds the memory of the CSV text made for one write.
COPY_CHUNK_ROWS = 250_000
# Keys of pg_advisory_xact_lock: serialise migrations and partition creation across processes.
_MIGRATION_LOCK_KEY = 0x4841_5A4D_0001
_PARTITION_LOCK_KEY = 0x4841_5A4D_0002
_EPOCH_DATE = dt.date(1970, 1, 1)
_FIRST_DAY = (dt.date.min - _EPOCH_DATE).days
_LAST_DAY = (dt.date.max - _EPOCH_DATE).days - 1  # the day after must be a date too
_WORLD_ORDER = (*LAYER_SPECS, *CHILD_SPECS)  # parents before children
_GEOMETRY_TYPE_IDS = {"Point": 0, "LineString": 1, "MultiPolygon": 6}
_PG_NULL = r"\N"
PING_FRAME_COLUMNS = ["vehicle_id", "epoch_ms", "lon", "lat", "speed_kmh", "heading", "alarm", "status", "time"]
READING_FRAME_COLUMNS = ["point_id", "epoch_ms", "value", "time"]


class StoreError(ValueError):
    """Bad input to the store (a malformed World or batch, a bad URL): nothing was written."""


class SchemaBehindError(RuntimeError):
    """The database's schema is older than this hazmap's (or the database is empty)."""


def _alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_alembic_config())


def _safe_url(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def _create_engine(url: str) -> sa.Engine:
    if not url:
        raise StoreError("no database URL: pass postgresql+psycopg://… or sqlite:///path/to/hazmap.sqlite")
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        elif parsed.get_driver_name() != "psycopg":
            raise StoreError(
                f"{_safe_url(parsed)}: the PostGIS store needs psycopg 3 (COPY); use postgresql+psycopg://"
            )
        return sa.create_engine(parsed, pool_pre_ping=True)
    if backend == "sqlite":
        database = parsed.database or ""
        in_memory = database in ("", ":memory:") or "mode=memory" in database
        if in_memory:
            engine = sa.create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            Path(database.removeprefix("file:").split("?")[0]).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(parsed)
        _configure_sqlite(engine)
        return engine
    raise StoreError(f"{_safe_url(parsed)}: hazmap stores data in PostgreSQL/PostGIS or SQLite, not {backend}")


def _configure_sqlite(engine: sa.Engine) -> None:
    """Foreign keys on, WAL, and real transactions: pysqlite on its own would not BEGIN before DDL,
    which would make a failed migration half-applied (SQLAlchemy's documented recipe)."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable across app crashes; WAL keeps it consistent
        cursor.execute("PRAGMA cache_size = -65536")  # 64 MiB: index upkeep of large ping batches
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN")


# ---------------------------------------------------------------------------------------------
# Input checks and column conversions (vectorised; the only per-row Python is JSON for strlists)


def _utc_series(values, what: str) -> pd.Series:
    series = pd.Series(values)
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        try:
            series = pd.to_datetime(series)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{what}: not datetimes ({exc})") from exc
        if not isinstance(series.dtype, pd.DatetimeTZDtype):
            if series.notna().any():
                raise StoreError(f"{what}: naive datetimes; hazmap stores timezone-aware UTC times only")
            series = series.dt.tz_localize("UTC")
    return series.dt.tz_convert("UTC").dt.as_unit("us")


def _utc_timestamp(value, what: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what}: not a time: {value!r}") from exc
    if ts is pd.NaT or ts.tzinfo is None:
        raise StoreError(f"{what}: {value!r} is not a timezone-aware time")
    return ts.tz_convert("UTC")


def _objects(values: np.ndarray, missing: np.ndarray) -> list:
    """Python objects for the driver, None where missing."""
    out = np.asarray(values, dtype=object).copy()
    out[missing] = None
    return out.tolist()


def _sample(ids: pd.Series, mask: np.ndarray, limit: int = 5) -> str:
    picked = ids[mask].astype(str).tolist()
    more = f" and {len(picked) - limit} more" if len(picked) > limit else ""
    return ", ".join(picked[:limit]) + more


def _column_values(spec: TableSpec, frame: pd.DataFrame, row_ids: pd.Series, dialect: str) -> dict[str, list]:
    """Checks `frame` against the spec and converts every field into driver-ready lists."""
    missing_columns = [c for c in spec.columns if c not in frame.columns]
    if missing_columns:
        raise StoreError(f"{spec.name}: missing column(s) {', '.join(missing_columns)}")
    out: dict[str, list] = {}
    for field in spec.fields:
        where = f"{spec.name}.{field.name}"
        series = frame[field.name].reset_index(drop=True)
        missing = series.isna().to_numpy(dtype=bool)
        if field.required and missing.any():
            raise StoreError(f"{where} is required but missing for {_sample(row_ids, missing)}")
        try:
            if field.kind == "str":
                values = _objects(series.astype("str").to_numpy(dtype=object), missing)
            elif field.kind == "int":
                ints = pd.array(series, dtype="Int64")
                values = _objects(ints.to_numpy(dtype=object, na_value=None), missing)
            elif field.kind == "float":
                floats = pd.to_numeric(series, errors="raise").astype("float64").to_numpy()
                if np.isinf(floats).any():
                    raise StoreError(f"{where}: infinite values for {_sample(row_ids, np.isinf(floats))}")
                values = _objects(floats, missing)
            elif field.kind == "bool":
                values = _objects(pd.array(series, dtype="boolean").to_numpy(dtype=object, na_value=None), missing)
            elif field.kind == "datetime":
                times = _utc_series(series, where)
                if dialect == "sqlite":
                    raw = times.array.asi8  # microseconds since the epoch (NaT masked below)
                else:
                    raw = times.dt.to_pydatetime()
                values = _objects(np.asarray(raw, dtype=object), missing)
            elif field.kind == "strlist":
                values = [None if m else _strlist_json(v, where) for v, m in zip(series.tolist(), missing)]
            else:  # pragma: no cover - the spec's kinds are closed
                raise StoreError(f"{where}: unknown field kind {field.kind!r}")
        except StoreError:
            raise
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{where}: values are not {field.kind} ({exc})") from exc
        out[field.name] = values
    return out


def _strlist_json(value, where: str) -> str:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise StoreError(f"{where}: expected a list of strings, got {value!r}")
    return json.dumps([str(v) for v in value], ensure_ascii=False)


def _layer_geometries(spec: TableSpec, frame: pd.DataFrame, row_ids: pd.Series) -> np.ndarray:
    if not isinstance(frame, gpd.GeoDataFrame) or frame._geometry_column_name not in frame.columns:
        raise StoreError(f"{spec.name}: a layer must be a GeoDataFrame with a geometry column")
    if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
        raise StoreError(f"{spec.name}: geometries are in {frame.crs.to_string()}, the store holds EPSG:4326")
    geoms = np.asarray(frame.geometry.array, dtype=object)
    bad = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if bad.any():
        raise StoreError(f"{spec.name}: missing or empty geometry for {_sample(row_ids, bad)}")
    expected = _GEOMETRY_TYPE_IDS.get(spec.geometry)
    if expected is not None:
        wrong = shapely.get_type_id(geoms) != expected
        if wrong.any():
            raise StoreError(f"{spec.name}: geometry must be {spec.geometry}; not so for {_sample(row_ids, wrong)}")
    three_d = shapely.has_z(geoms)
    if three_d.any():
        raise StoreError(f"{spec.name}: 3-D geometry (the store holds lon/lat only) for {_sample(row_ids, three_d)}")
    return geoms


# ---------------------------------------------------------------------------------------------


class Store:
    """One database holding the World and the live tables. Open with `Store.open(url)`."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.url: str = _safe_url(engine.url)
        self.dialect: str = engine.dialect.name
        self._partition_days: dict[str, set[int]] | None = None
        self._insert_statements: dict[str, sa.Insert] = {}

    # --- opening and schema ------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, upgrade: bool = False) -> "Store":
        """Connect to `url`; migrate first when `upgrade`, else refuse a database that is behind."""
        store = cls(_create_engine(url))
        try:
            if upgrade:
                store.upgrade()
            store._check_schema()
        except BaseException:
            store.close()
            raise
        return store

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def upgrade(self) -> None:
        """Apply every migration up to head, in one transaction."""
        with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            command.upgrade(_alembic_config(connection), "head")
        self._partition_days = None

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @staticmethod
    def head_revision() -> str:
        head = _scripts().get_current_head()
        assert head is not None, "data/migrations/versions holds no revision"
        return head

    def _check_schema(self) -> None:
        current, head = self.current_revision(), self.head_revision()
        if current == head:
            return
        known = {script.revision for script in _scripts().walk_revisions()}
        if current is None or current in known:
            shown = current if current is not None else "<none> (empty database)"
            raise SchemaBehindError(
                f"database at revision {shown}, hazmap needs {head}: run `hazmap db upgrade` ({self.url})"
            )
        raise StoreError(
            f"database at revision {current}, which this hazmap (head {head}) does not know: "
            f"it was migrated by a newer hazmap ({self.url})"
        )

    def close(self) -> None:
        self.engine.dispose()

    # --- the World ----------------------------------------------------------------------------

    def replace_world(self, world: World) -> None:
        """Replace every layer and child table in ONE transaction: on any error nothing changes."""
        if not isinstance(world, World):
            raise StoreError(f"replace_world needs a World, got {type(world).__name__}")
        prepared = [(name, self._world_records(name, world.table(name))) for name in _WORLD_ORDER]
        with self.engine.begin() as connection:
            for name in reversed(_WORLD_ORDER):  # children first
                connection.execute(sa.delete(schema.WORLD_TABLES[name]))
            for name, records in prepared:
                if not records:
                    continue
                try:
                    connection.execute(self._insert_statement(name), records)
                except sa.exc.IntegrityError as exc:
                    raise StoreError(f"replace_world: {name} refused, nothing was changed: {exc.orig}") from exc

    def _world_records(self, name: str, frame: pd.DataFrame) -> list[dict]:
        spec = {**LAYER_SPECS, **CHILD_SPECS}[name]
        if not isinstance(frame, pd.DataFrame):
            raise StoreError(f"{name}: expected a DataFrame, got {type(frame).__name__}")
        key = "id" if spec.is_layer else spec.parent_key
        row_ids = frame[key].reset_index(drop=True) if key in frame.columns else pd.Series(range(len(frame)))
        columns = {f"p_{c}": v for c, v in _column_values(spec, frame, row_ids, self.dialect).items()}
        if spec.is_layer:
            geoms = _layer_geometries(spec, frame, row_ids)
            columns[f"p_{GEOMETRY_COLUMN}"] = list(shapely.to_wkb(geoms, byte_order=1, output_dimension=2))
            if schema.has_h3_column(spec):
                cells = cells_for_points(shapely.get_x(geoms), shapely.get_y(geoms))
                columns[f"p_{H3_COLUMN}"] = cells.tolist()
        keys = list(columns)
        return [dict(zip(keys, row)) for row in zip(*columns.values())]

    def _insert_statement(self, name: str) -> sa.Insert:
        if name in self._insert_statements:
            return self._insert_statements[name]
        spec = {**LAYER_SPECS, **CHILD_SPECS}[name]
        table = schema.WORLD_TABLES[name]
        postgres = self.dialect == "postgresql"
        values = {}
        for field in spec.fields:
            param = sa.bindparam(f"p_{field.name}", type_=self._wire_type(field.kind))
            values[field.name] = sa.cast(param, JSONB) if (postgres and field.kind == "strlist") else param
        if spec.is_layer:
            wkb = sa.bindparam(f"p_{GEOMETRY_COLUMN}", type_=sa.LargeBinary())
            values[GEOMETRY_COLUMN] = sa.func.ST_GeomFromWKB(wkb, SRID) if postgres else wkb
            if schema.has_h3_column(spec):
                values[H3_COLUMN] = sa.bindparam(f"p_{H3_COLUMN}", type_=sa.Text())
        statement = sa.insert(table).values(values)
        self._insert_statements[name] = statement
        return statement

    def _wire_type(self, kind: str) -> sa.types.TypeEngine:
        """What the driver is handed and gives back, without per-value processing in Python."""
        if kind == "datetime":
            return sa.DateTime(timezone=True) if self.dialect == "postgresql" else sa.BigInteger()
        if kind == "strlist":
            return sa.Text()
        return schema.column_type(kind)

    def load_world(self, chemicals: pd.DataFrame | None = None) -> World:
        """Every layer and child table, sorted by id (children by their key columns)."""
        with self.engine.connect() as connection:
            tables = {name: self._read_table(connection, name) for name in _WORLD_ORDER}
        return World(**tables, chemicals=chemicals if chemicals is not None else pd.DataFrame())

    def read_layer(self, name: str, *, h3_cells: Iterable[str] | None = None) -> gpd.GeoDataFrame | pd.DataFrame:
        """One layer (GeoDataFrame) or child table (DataFrame). `h3_cells` (cells at
        spatial.h3cells.H3_RES_AREA_FILTER) keeps the features of a point layer in those cells."""
        if name not in schema.WORLD_TABLES:
            raise StoreError(f"no layer or child table named {name!r}; known: {', '.join(_WORLD_ORDER)}")
        with self.engine.connect() as connection:
            return self._read_table(connection, name, h3_cells)

    def _read_table(self, connection: sa.Connection, name: str, h3_cells: Iterable[str] | None = None):
        spec = {**LAYER_SPECS, **CHILD_SPECS}[name]
        table = schema.WORLD_TABLES[name]
        postgres = self.dialect == "postgresql"
        selected = []
        for field in spec.fields:
            column = table.c[field.name]
            if field.kind == "strlist":
                selected.append(sa.cast(column, sa.Text()) if postgres else sa.type_coerce(column, sa.Text()))
            else:
                selected.append(sa.type_coerce(column, self._wire_type(field.kind)))
        if spec.is_layer:
            geometry = table.c[GEOMETRY_COLUMN]
            selected.append(sa.type_coerce(sa.func.ST_AsBinary(geometry) if postgres else geometry, sa.LargeBinary()))
        statement = sa.select(*selected)
        if h3_cells is not None:
            if not schema.has_h3_column(spec):
                raise StoreError(f"{name} is not a point layer: it has no {H3_COLUMN} to filter on")
            if isinstance(h3_cells, str):
                raise StoreError("h3_cells must be a collection of cell ids, not one string")
            statement = statement.where(self._in_values(table.c[H3_COLUMN], h3_cells))
        rows = connection.execute(statement).all()
        raw = list(zip(*rows)) if rows else [() for _ in selected]
        frame = pd.DataFrame({f.name: self._decode(f, values) for f, values in zip(spec.fields, raw)})
        if spec.is_layer:
            geoms = shapely.from_wkb(np.asarray(raw[-1], dtype=object)) if rows else np.array([], dtype=object)
            frame = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=f"EPSG:{SRID}"), crs=f"EPSG:{SRID}")
            frame = frame.rename_geometry(GEOMETRY_COLUMN) if frame.geometry.name != GEOMETRY_COLUMN else frame
        keys = ["id"] if spec.is_layer else [f.name for f in spec.fields if f.kind != "strlist"]
        return frame.sort_values(keys, kind="stable", ignore_index=True) if len(frame) else frame

    def _decode(self, field, values) -> pd.Series:
        values = list(values)
        kind = field.kind
        if kind == "str":
            return pd.Series(values, dtype="str")
        if kind == "int":
            return pd.Series(values, dtype="int64" if field.required else "Int64")
        if kind == "float":
            return pd.Series(values, dtype="float64")
        if kind == "bool":
            return pd.Series(values, dtype="bool" if field.required else "boolean")
        if kind == "datetime":
            if self.dialect == "sqlite":
                times = pd.to_datetime(pd.array(values, dtype="Int64"), unit="us", utc=True)
            else:
                times = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
            return pd.Series(times, dtype="datetime64[us, UTC]")
        if kind == "strlist":
            return pd.Series([None if v is None else json.loads(v) for v in values], dtype=object)
        raise StoreError(f"unknown field kind {kind!r}")  # pragma: no cover

    def _in_values(self, column: sa.ColumnElement, values: Iterable[str]) -> sa.ColumnElement:
        """`column IN values` for any number of values (bound as one array / one JSON text)."""
        items = sorted({str(v) for v in values})
        if self.dialect == "postgresql":
            return column == sa.func.any(sa.bindparam("in_values", items, type_=ARRAY(sa.Text())))
        json_values = sa.select(sa.column("value")).select_from(
            sa.func.json_each(sa.bindparam("in_values", json.dumps(items), type_=sa.Text()))
        )
        return column.in_(json_values.scalar_subquery())

    def counts(self) -> dict[str, int]:
        """Rows per layer and child table, plus "active_waybills" (as World.counts())."""
        parts = [
            sa.select(sa.literal(name).label("name"), sa.func.count().label("n")).select_from(schema.WORLD_TABLES[name])
            for name in _WORLD_ORDER
        ]
        waybills = schema.WORLD_TABLES["waybills"]
        parts.append(
            sa.select(sa.literal("active_waybills").label("name"), sa.func.count().label("n"))
            .select_from(waybills)
            .where(waybills.c.status == "active")
        )
        with self.engine.connect() as connection:
            rows = connection.execute(sa.union_all(*parts)).all()
        return {name: int(n) for name, n in rows}

    # --- live tables --------------------------------------------------------------------------

    def write_pings(self, batch: PingBatch) -> int:
        """Append a batch of pings; returns the number written. All or nothing."""
        if not isinstance(batch, PingBatch):
            raise StoreError(f"write_pings needs a PingBatch, got {type(batch).__name__}")
        try:
            batch.check()
        except ValueError as exc:
            raise StoreError(str(exc)) from exc
        if not len(batch):
            return 0
        vehicle_ids = _ids(batch.vehicle_id, "vehicle_id")
        _check_finite(batch.lon, "lon", -180, 180, vehicle_ids)
        _check_finite(batch.lat, "lat", -90, 90, vehicle_ids)
        for name in ("speed_kmh", "heading"):
            infinite = np.isinf(getattr(batch, name))
            if infinite.any():
                raise StoreError(f"ping {name} is infinite for {_sample(vehicle_ids, infinite)}")
        columns = {
            "vehicle_id": vehicle_ids,
            "time": batch.epoch_ms,
            "lon": batch.lon,
            "lat": batch.lat,
            "speed_kmh": batch.speed_kmh,
            "heading": batch.heading,
            "alarm": batch.alarm.astype("int64"),
            "status": batch.status.astype("int64"),
        }
        self._write_live(PINGS, columns)
        return len(batch)

    def write_readings(self, batch: ReadingBatch) -> int:
        """Append a batch of monitoring-point readings; returns the number written. All or nothing."""
        if not isinstance(batch, ReadingBatch):
            raise StoreError(f"write_readings needs a ReadingBatch, got {type(batch).__name__}")
        if not (len(batch.point_id) == len(batch.epoch_ms) == len(batch.value)):
            raise StoreError("ReadingBatch columns point_id, epoch_ms and value differ in length")
        if not len(batch):
            return 0
        point_ids = _ids(batch.point_id, "point_id")
        infinite = np.isinf(batch.value)
        if infinite.any():
            raise StoreError(f"reading value is infinite for {_sample(point_ids, infinite)}")
        self._write_live(READINGS, {"point_id": point_ids, "time": batch.epoch_ms, "value": batch.value})
        return len(batch)

    def _write_live(self, table: str, columns: dict[str, np.ndarray | pd.Series]) -> None:
        epoch_ms = np.asarray(columns["time"], dtype="int64")
        names = ", ".join(columns)
        if self.dialect == "sqlite":
            values = {k: v.tolist() for k, v in columns.items()}
            values["time"] = (epoch_ms * 1000).tolist()  # microseconds since the epoch
            placeholders = ", ".join("?" * len(columns))
            with self.engine.begin() as connection:
                connection.connection.driver_connection.executemany(
                    f"INSERT INTO {table} ({names}) VALUES ({placeholders})", zip(*values.values())
                )
            return
        self._ensure_partition_days(table, np.unique(np.floor_divide(epoch_ms, DAY_MS)))
        fields = []
        for name, values in columns.items():
            if name == "time":
                fields.append(_BinaryField.int8(epoch_ms * 1000 - _PG_EPOCH_US))  # timestamptz: µs since 2000
            elif isinstance(values, pd.Series):
                fields.append(_BinaryField.text(values))
            elif values.dtype.kind == "f":
                fields.append(_BinaryField.float8(values))
            else:
                fields.append(_BinaryField.int8(values))
        copy_sql = f"COPY {table} ({names}) FROM STDIN (FORMAT binary)"
        try:
            try:
                self._copy_binary(copy_sql, fields, len(epoch_ms))
            except psycopg.errors.CheckViolation:
                # "no partition of relation found for row": a partition this store had seen was
                # dropped meanwhile (retention): look again, create, and retry once.
                self._partition_days = None
                self._ensure_partition_days(table, np.unique(np.floor_divide(epoch_ms, DAY_MS)))
                self._copy_binary(copy_sql, fields, len(epoch_ms))
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            raise StoreError(f"{table}: PostgreSQL refused the batch, nothing was written: {exc}") from exc

    def _copy_binary(self, copy_sql: str, fields: list["_BinaryField"], rows: int) -> None:
        with self.engine.begin() as connection:
            driver = connection.connection.driver_connection
            with driver.cursor() as cursor, cursor.copy(copy_sql) as copy:
                copy.write(_PG_COPY_SIGNATURE)
                for first in range(0, rows, COPY_CHUNK_ROWS):
                    copy.write(memoryview(_binary_copy_rows(fields, first, min(first + COPY_CHUNK_ROWS, rows))))
                copy.write(_PG_COPY_TRAILER)

    def read_pings(self, start, end, vehicle_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Pings with start <= time < end (optionally of some vehicles), ordered by time then
        vehicle; the columns of PingBatch.to_frame(), so PingBatch.from_frame() takes it back."""
        frame = self._read_live(
            PINGS, "vehicle_id", ["lon", "lat", "speed_kmh", "heading", "alarm", "status"], start, end, vehicle_ids
        )
        for name in ("lon", "lat", "speed_kmh", "heading"):
            frame[name] = frame[name].astype("float64")
        for name in ("alarm", "status"):
            frame[name] = frame[name].astype("int64").astype("uint32")
        return frame[PING_FRAME_COLUMNS]

    def read_readings(self, start, end, point_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Readings with start <= time < end (optionally of some points), ordered by time then point."""
        frame = self._read_live(READINGS, "point_id", ["value"], start, end, point_ids)
        frame["value"] = frame["value"].astype("float64")
        return frame[READING_FRAME_COLUMNS]

    def _read_live(self, table: str, key: str, rest: list[str], start, end, keys) -> pd.DataFrame:
        start_ts, end_ts = _utc_timestamp(start, "start"), _utc_timestamp(end, "end")
        if end_ts < start_ts:
            raise StoreError(f"end {end_ts} is before start {start_ts}")
        if keys is not None and isinstance(keys, str):
            raise StoreError(f"{key}s must be a collection of ids, not one string")
        key_list = None if keys is None else sorted({str(k) for k in keys})
        names = [key, "epoch_ms", *rest]
        if self.dialect == "sqlite":
            sql = f"SELECT {key}, time / 1000, {', '.join(rest)} FROM {table} WHERE time >= ? AND time < ?"
            params: list = [_micros(start_ts), _micros(end_ts)]
            if key_list is not None:
                sql += f" AND {key} IN (SELECT value FROM json_each(?))"
                params.append(json.dumps(key_list))
            sql += f" ORDER BY time, {key}"
            with self.engine.connect() as connection:
                rows = connection.connection.driver_connection.execute(sql, params).fetchall()
            frame = pd.DataFrame.from_records(rows, columns=names)
            frame[key] = frame[key].astype("str")
        else:
            # date_part gives float8 seconds (extract's numeric is several times slower): exact
            # after rounding for the millisecond times the store writes.
            sql = (
                f"COPY (SELECT {key}, round(date_part('epoch', time) * 1000)::int8, {', '.join(rest)} FROM {table} "
                "WHERE time >= %s AND time < %s"
            )
            params = [start_ts.to_pydatetime(), end_ts.to_pydatetime()]
            if key_list is not None:
                sql += f" AND {key} = ANY(%s)"
                params.append(key_list)
            sql += f' ORDER BY time, {key} COLLATE "C") TO STDOUT (FORMAT csv, NULL \'{_PG_NULL}\')'
            buffer = io.BytesIO()
            with self.engine.connect() as connection:
                with connection.connection.driver_connection.cursor() as cursor, cursor.copy(sql, params) as copy:
                    for block in copy:
                        buffer.write(block)
            buffer.seek(0)
            if buffer.getbuffer().nbytes:
                frame = pd.read_csv(
                    buffer, names=names, header=None, dtype={key: "str"}, na_values=[_PG_NULL], keep_default_na=False
                )
            else:
                frame = pd.DataFrame({n: pd.Series(dtype="str" if n == key else "float64") for n in names})
        frame["epoch_ms"] = frame["epoch_ms"].astype("int64")
        frame["time"] = pd.to_datetime(frame["epoch_ms"], unit="ms", utc=True)
        return frame

    # --- partitions (PostgreSQL) ----------------------------------------------------------------

    def ensure_partitions(self, first_day: dt.date, days: int) -> None:
        """Create the pings and readings partitions of `days` UTC days from `first_day` (PostgreSQL;
        a no-op on SQLite). Existing partitions are kept."""
        if isinstance(first_day, dt.datetime) or not isinstance(first_day, dt.date):
            raise StoreError(f"first_day must be a date, got {first_day!r}")
        if not isinstance(days, (int, np.integer)) or days < 0:
            raise StoreError(f"days must be a non-negative integer, got {days!r}")
        if self.dialect != "postgresql" or days == 0:
            return
        first = (first_day - _EPOCH_DATE).days
        day_numbers = np.arange(first, first + int(days))
        for table in schema.PARTITIONED_TABLES:
            self._ensure_partition_days(table, day_numbers, limit=None)

    def _ensure_partition_days(self, table: str, day_numbers: np.ndarray, limit: int | None = MAX_NEW_PARTITION_DAYS):
        """Create the missing partitions of `table` for days given as days since 1970-01-01 (UTC)."""
        known = self._known_partition_days()[table]
        missing = sorted(set(np.asarray(day_numbers, dtype="int64").tolist()) - known)
        if not missing:
            return
        if limit is not None and len(missing) > limit:
            raise StoreError(
                f"{table}: the batch spans {len(missing)} days without a partition (from "
                f"{_day_label(missing[0])} to {_day_label(missing[-1])}), more than {limit}: "
                "check its times (epoch milliseconds, UTC)"
            )
        if missing[0] < _FIRST_DAY or missing[-1] > _LAST_DAY:
            raise StoreError(f"{table}: times outside years 1-9999 (days {missing[0]} … {missing[-1]} since 1970)")
        with self.engine.begin() as connection:
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PARTITION_LOCK_KEY})
            for number in missing:
                day = _EPOCH_DATE + dt.timedelta(days=number)
                connection.exec_driver_sql(
                    f'CREATE TABLE IF NOT EXISTS "{_partition_name(table, day)}" PARTITION OF "{table}" '
                    f"FOR VALUES FROM ('{day.isoformat()} 00:00:00+00') "
                    f"TO ('{(day + dt.timedelta(days=1)).isoformat()} 00:00:00+00')"
                )
        known.update(missing)

    def _known_partition_days(self) -> dict[str, set[int]]:
        """Days (since 1970-01-01) that have a partition, per partitioned table; cached."""
        if self._partition_days is None:
            found: dict[str, set[int]] = {t: set() for t in schema.PARTITIONED_TABLES}
            with self.engine.connect() as connection:
                rows = connection.execute(
                    sa.text(
                        "SELECT parent.relname, child.relname FROM pg_inherits i "
                        "JOIN pg_class child ON child.oid = i.inhrelid "
                        "JOIN pg_class parent ON parent.oid = i.inhparent "
                        "WHERE parent.oid IN (to_regclass(:pings), to_regclass(:readings))"  # as search_path finds them
                    ),
                    {"pings": PINGS, "readings": READINGS},
                ).all()
            for parent, child in rows:
                suffix = child.removeprefix(f"{parent}_p")
                if len(suffix) == 8 and suffix.isdigit():
                    found[parent].add((dt.datetime.strptime(suffix, "%Y%m%d").date() - _EPOCH_DATE).days)
            self._partition_days = found
        return self._partition_days

    def partitions(self, table: str = PINGS) -> list[str]:
        """Names of the day partitions of `table` (PostgreSQL; empty on SQLite), oldest first."""
        if table not in schema.PARTITIONED_TABLES:
            raise StoreError(f"{table!r} is not partitioned; partitioned tables: {schema.PARTITIONED_TABLES}")
        if self.dialect != "postgresql":
            return []
        self._partition_days = None
        days = sorted(self._known_partition_days()[table])
        return [_partition_name(table, _EPOCH_DATE + dt.timedelta(days=d)) for d in days]


# --- PostgreSQL binary COPY, built with numpy ------------------------------------------------------
# Format: signature, then per row an int16 field count and per field an int32 byte length (-1 for
# NULL) and the bytes, big-endian; an int16 -1 ends the stream. Building it column by column with
# numpy costs a fraction of formatting CSV text, and the server parses it faster too.

_PG_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
_PG_COPY_TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00Z, PostgreSQL's timestamp origin, in Unix µs


class _BinaryField:
    """One column of a binary COPY: fixed 8-byte values (int8, float8, timestamptz) or text."""

    def __init__(self, fixed: np.ndarray | None = None, null: np.ndarray | None = None, text=None):
        self.fixed, self.null, self.text = fixed, null, text

    @classmethod
    def int8(cls, values: np.ndarray) -> "_BinaryField":
        return cls(fixed=np.asarray(values, dtype=">i8"))

    @classmethod
    def float8(cls, values: np.ndarray) -> "_BinaryField":
        values = np.asarray(values, dtype=">f8")
        null = np.isnan(values)  # NaN is stored as NULL
        return cls(fixed=values, null=null if null.any() else None)

    @classmethod
    def text(cls, values: pd.Series) -> "_BinaryField":
        # Encode each distinct value once (a few thousand vehicles), then index per row.
        codes, uniques = pd.factorize(values)
        encoded = [str(u).encode("utf-8") for u in uniques]
        lengths = np.fromiter((len(b) for b in encoded), dtype="int64", count=len(encoded))
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype("int64")
        return cls(text=(codes.astype("int64"), lengths, offsets, np.frombuffer(b"".join(encoded), dtype=np.uint8)))

    def sizes(self, rows: slice) -> np.ndarray:
        """Bytes of each row's value (0 for NULL)."""
        if self.text is not None:
            codes, lengths, _, _ = self.text
            return lengths[codes[rows]]
        n = rows.stop - rows.start
        return np.full(n, 8, dtype="int64") if self.null is None else np.where(self.null[rows], 0, 8)


def _scatter(buffer: np.ndarray, starts: np.ndarray, data: np.ndarray) -> None:
    """buffer[starts[i] : starts[i] + w] = data[i] for every row of the (n, w) byte array `data`."""
    width = data.shape[1]
    buffer[(starts[:, None] + np.arange(width)).ravel()] = data.ravel()


def _binary_copy_rows(fields: list[_BinaryField], first: int, stop: int) -> np.ndarray:
    rows = slice(first, stop)
    n = stop - first
    value_sizes = [f.sizes(rows) for f in fields]
    row_sizes = 2 + sum(4 + size for size in value_sizes)
    row_starts = np.concatenate([[0], np.cumsum(row_sizes)[:-1]]).astype("int64")
    buffer = np.empty(int(row_sizes.sum()), dtype=np.uint8)
    field_count = np.frombuffer(np.array(len(fields), dtype=">i2").tobytes(), dtype=np.uint8)
    _scatter(buffer, row_starts, np.broadcast_to(field_count, (n, 2)))
    position = row_starts + 2
    for field, size in zip(fields, value_sizes):
        length_word = size.astype(">i4")
        if field.null is not None:
            length_word[field.null[rows]] = -1
        _scatter(buffer, position, length_word.view(np.uint8).reshape(n, 4))
        position = position + 4
        if field.text is not None:
            codes, lengths, offsets, data = field.text
            total = int(size.sum())
            within = np.arange(total) - np.repeat(np.cumsum(size) - size, size)
            buffer[np.repeat(position, size) + within] = data[np.repeat(offsets[codes[rows]], size) + within]
        else:
            present = slice(None) if field.null is None else ~field.null[rows]
            values = field.fixed[rows].view(np.uint8).reshape(n, 8)
            _scatter(buffer, position[present], values[present])
        position = position + size
    return buffer


def _partition_name(table: str, day: dt.date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def _day_label(day_number: int) -> str:
    if _FIRST_DAY <= day_number <= _LAST_DAY:
        return (_EPOCH_DATE + dt.timedelta(days=day_number)).isoformat()
    return f"day {day_number} since 1970"


def _micros(ts: pd.Timestamp) -> int:
    return (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)


def _ids(values: np.ndarray, what: str) -> pd.Series:
    ids = pd.Series(values, dtype=object)
    missing = ids.isna().to_numpy()
    ids = ids.astype("str")
    bad = missing | (ids.str.len() == 0).to_numpy()
    if bad.any():
        raise StoreError(f"{what} missing or empty in {int(bad.sum())} of {len(ids)} rows")
    return ids


def _check_finite(values: np.ndarray, what: str, low: float, high: float, ids: pd.Series) -> None:
    bad = ~np.isfinite(values) | (values < low) | (values > high)
    if bad.any():
        raise StoreError(f"ping {what} missing or outside [{low}, {high}] for {_sample(ids, bad)}")
