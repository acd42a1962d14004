"""The store: the World's layers, the live pings and readings, and the rules' events, in PostGIS
or embedded SQLite.

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

Events (`write_events` / `read_events`) are few next to pings: an executemany in one transaction,
evidence serialised to strict JSON first (numpy and pandas values unwrapped, NaN as null), so a
value JSON cannot hold is refused before anything is written.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping
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
from data.schema import EVENT_PHASES, GEOMETRY_COLUMN, H3_COLUMN, PINGS, READINGS, SRID
from spatial.h3cells import cells_for_points
from spatial.model import WORLD_SPECS, Event, Field, PingBatch, ReadingBatch, TableSpec, World

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
# Serialises event writers on PostgreSQL: a sequence hands out seq at INSERT, not at COMMIT, so two
# concurrent writers could commit seq 11 before seq 10 and a reader following "after seq N" would
# skip 10 for good. Holding this lock until commit makes seq order commit order.
_EVENTS_LOCK_KEY = 0x4841_5A4D_0003
_EPOCH_DATE = dt.date(1970, 1, 1)
_FIRST_DAY = (dt.date.min - _EPOCH_DATE).days
_LAST_DAY = (dt.date.max - _EPOCH_DATE).days - 1  # the day after must be a date too
_WORLD_ORDER = tuple(WORLD_SPECS)  # layers, children, plain tables: parents before children
_GEOMETRY_TYPE_IDS = {"Point": 0, "LineString": 1, "MultiPolygon": 6}
_PG_NULL = r"\N"
PING_FRAME_COLUMNS = ["vehicle_id", "epoch_ms", "lon", "lat", "speed_kmh", "heading", "alarm", "status", "time"]
READING_FRAME_COLUMNS = ["point_id", "epoch_ms", "value", "time"]
EVENT_FRAME_COLUMNS = [
    "seq", "rule", "subject_id", "episode_id", "phase", "start", "end", "event_time",
    "lon", "lat", "severity", "evidence", "recorded_at",
]
EVENT_SEVERITIES = (1, 2, 3, 4)  # spatial.model.Event: 1 highest ... 4 lowest


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
    # An optional column may be left out (all empty); a required one may not.
    missing_columns = [f.name for f in spec.fields if f.required and f.name not in frame.columns]
    if missing_columns:
        raise StoreError(f"{spec.name}: missing column(s) {', '.join(missing_columns)}")
    out: dict[str, list] = {}
    for field in spec.fields:
        where = f"{spec.name}.{field.name}"
        if field.name not in frame.columns:
            out[field.name] = [None] * len(frame)
            continue
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


# --- events: checks and strict JSON evidence (a loop over events: a batch holds a few, not pings) ---


def _event_json(value, path: str, where: str):
    """`value` as plain JSON data: numpy/pandas scalars and arrays unwrapped, NaN and infinities
    as null, aware times as ISO-8601, tuples as lists; anything else is refused, naming `path`."""
    if value is None:
        return None
    if isinstance(value, str):
        if "\x00" in value:  # PostgreSQL's JSONB cannot hold it; refused on both backends alike
            raise StoreError(f"{where}: evidence{path} holds a NUL character")
        return str(value)  # numpy's str_ becomes a plain str
    if isinstance(value, (bool, np.bool_)):  # before int: bool is an int
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and "\x00" not in key:
                name = str(key)
            elif isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
                name = str(int(key))  # as json.dumps would; it comes back a string
            else:
                raise StoreError(f"{where}: evidence{path} has the key {key!r}; keys must be strings (without NUL)")
            out[name] = _event_json(item, f"{path}[{name!r}]", where)
        return out
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.datetime64):  # numpy times carry no zone: UTC, as everywhere in hazmap
        return None if np.isnat(value) else pd.Timestamp(value).tz_localize("UTC").isoformat()
    if isinstance(value, dt.datetime):  # pd.Timestamp included
        if value.tzinfo is None:
            raise StoreError(f"{where}: evidence{path} is a naive datetime {value!r}; hazmap keeps aware times")
        return pd.Timestamp(value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _event_json(value[()], path, where)
    if isinstance(value, (list, tuple, np.ndarray, pd.Series, pd.Index, pd.api.extensions.ExtensionArray)):
        return [_event_json(item, f"{path}[{i}]", where) for i, item in enumerate(value)]
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise StoreError(f"{where}: evidence{path} is a {type(value).__name__} ({shown}), which JSON cannot hold")


def _event_label(index: int, event) -> str:
    rule, episode = getattr(event, "rule", "?"), getattr(event, "episode_id", "?")
    return f"event {index} (rule {rule!r}, episode {episode!r})"


def _event_columns(events: list, dialect: str) -> dict[str, list]:
    """Checks every event and returns the events table's columns, driver-ready (times as the
    backend stores them: µs since the epoch on SQLite, aware datetimes on PostgreSQL)."""
    n = len(events)
    out: dict[str, list] = {
        name: [None] * n
        for name in ("rule", "subject_id", "episode_id", "phase", "start_time", "end_time", "event_time", "severity",
                     "evidence")
    }
    lon, lat = np.full(n, np.nan), np.full(n, np.nan)
    wire = _micros if dialect == "sqlite" else (lambda ts: ts.to_pydatetime())
    for i, event in enumerate(events):
        where = _event_label(i, event)
        if not isinstance(event, Event):
            raise StoreError(f"{where}: expected a spatial.model.Event, got {type(event).__name__}")
        for name in ("rule", "subject_id", "episode_id"):
            value = getattr(event, name)
            if not isinstance(value, str) or not value or "\x00" in value:
                raise StoreError(f"{where}: {name} must be a non-empty string without NUL, got {value!r}")
            out[name][i] = str(value)
        if event.phase not in EVENT_PHASES:
            raise StoreError(f"{where}: phase {event.phase!r} is not one of {', '.join(EVENT_PHASES)}")
        out["phase"][i] = str(event.phase)
        start = _utc_timestamp(event.start, f"{where}: start")
        end = None if event.end is None or event.end is pd.NaT else _utc_timestamp(event.end, f"{where}: end")
        if end is not None and end < start:
            raise StoreError(f"{where}: end {end} is before start {start}")
        if event.phase == "close" and end is None:
            raise StoreError(f"{where}: a close needs its end time")
        out["start_time"][i] = wire(start)
        out["end_time"][i] = None if end is None else wire(end)
        at = getattr(event, "at", None)
        at = None if at is None or at is pd.NaT or event.phase != "update" else _utc_timestamp(at, f"{where}: at")
        if at is not None and (at < start or (end is not None and at > end)):
            raise StoreError(f"{where}: an update's time {at} is outside its episode ({start} .. {end or 'open'})")
        # the instant the event speaks for: a close its end, an update its own time, an open its start
        out["event_time"][i] = wire(end if event.phase == "close" else start if at is None else at)
        severity = event.severity
        if isinstance(severity, (bool, np.bool_)) or not isinstance(severity, (int, np.integer)) \
                or int(severity) not in EVENT_SEVERITIES:
            raise StoreError(f"{where}: severity must be an integer 1 (highest) ... 4, got {severity!r}")
        out["severity"][i] = int(severity)
        try:
            lon[i], lat[i] = float(event.lon), float(event.lat)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{where}: lon/lat are not numbers ({event.lon!r}, {event.lat!r})") from exc
        if not isinstance(event.evidence, Mapping):
            raise StoreError(f"{where}: evidence must be a dict, got {type(event.evidence).__name__}")
        try:
            plain = _event_json(event.evidence, "", where)
        except RecursionError as exc:
            raise StoreError(f"{where}: evidence nests too deep (does it contain itself?)") from exc
        out["evidence"][i] = json.dumps(plain, ensure_ascii=False, allow_nan=False)
    # NaN lon and lat together: position unknown (stored NULL); anything else must be a real place
    unknown = np.isnan(lon) & np.isnan(lat)
    bad = ~unknown & ~((np.abs(lon) <= 180) & (np.abs(lat) <= 90))  # NaN and ±inf fail the bounds
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StoreError(
            f"{_event_label(i, events[i])}: lon/lat ({lon[i]}, {lat[i]}) are not a WGS-84 position "
            f"(both NaN for an unknown one); {int(bad.sum())} event(s) so"
        )
    known = ~unknown
    wkb = np.full(n, None, dtype=object)
    cells = np.full(n, None, dtype=object)
    if known.any():
        wkb[known] = shapely.to_wkb(shapely.points(lon[known], lat[known]), byte_order=1, output_dimension=2)
        cells[known] = cells_for_points(lon[known], lat[known])
    out["lon"] = _objects(lon, unknown)
    out["lat"] = _objects(lat, unknown)
    out[GEOMETRY_COLUMN] = wkb.tolist()
    out[H3_COLUMN] = cells.tolist()
    return out


def events_from_frame(frame: pd.DataFrame) -> list[Event]:
    """The rows of `Store.read_events` back as spatial.model.Event objects (a loop over rows:
    for tests and small replays, not a hot path)."""
    missing = [c for c in ("rule", "subject_id", "episode_id", "phase", "start", "end", "lon", "lat", "severity",
                           "evidence") if c not in frame.columns]
    if missing:
        raise StoreError(f"not an events frame: missing column(s) {', '.join(missing)}")
    return [
        Event(
            rule=str(row.rule),
            subject_id=str(row.subject_id),
            episode_id=str(row.episode_id),
            phase=str(row.phase),  # type: ignore[arg-type]
            start=pd.Timestamp(row.start),
            end=None if pd.isna(row.end) else pd.Timestamp(row.end),
            lon=float(row.lon),
            lat=float(row.lat),
            severity=int(row.severity),
            evidence=row.evidence,
            # an update's own time, when it is not its start (the events table's event_time)
            at=pd.Timestamp(row.event_time) if row.phase == "update" and "event_time" in frame.columns
            and pd.notna(row.event_time) and pd.Timestamp(row.event_time) != pd.Timestamp(row.start) else None,
        )
        for row in frame.itertuples(index=False)
    ]


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

    def replace_world(self, world: World, audit: Callable[[sa.Connection], None] | None = None) -> None:
        """Replace every layer and child table in ONE transaction: on any error nothing changes.
        `audit(connection)` writes the change's audit row inside that transaction (data/people.py)."""
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
            if audit is not None:
                audit(connection)

    def _world_records(self, name: str, frame: pd.DataFrame) -> list[dict]:
        spec = WORLD_SPECS[name]
        if not isinstance(frame, pd.DataFrame):
            raise StoreError(f"{name}: expected a DataFrame, got {type(frame).__name__}")
        key = spec.parent_key if spec.is_child else "id"
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
        spec = WORLD_SPECS[name]
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
            raise StoreError(f"no World table named {name!r}; known: {', '.join(_WORLD_ORDER)}")
        with self.engine.connect() as connection:
            return self._read_table(connection, name, h3_cells)

    def _read_table(self, connection: sa.Connection, name: str, h3_cells: Iterable[str] | None = None):
        spec = WORLD_SPECS[name]
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
        keys = [f.name for f in spec.fields if f.kind != "strlist"] if spec.is_child else ["id"]
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

    def _in_values(self, column: sa.ColumnElement, values: Iterable[str], name: str = "in_values") -> sa.ColumnElement:
        """`column IN values` for any number of values (bound as one array / one JSON text, as
        parameter `name`: distinct names for several in one statement)."""
        items = sorted({str(v) for v in values})
        if self.dialect == "postgresql":
            return column == sa.func.any(sa.bindparam(name, items, type_=ARRAY(sa.Text())))
        json_values = sa.select(sa.column("value")).select_from(
            sa.func.json_each(sa.bindparam(name, json.dumps(items), type_=sa.Text()))
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

    # --- events ---------------------------------------------------------------------------------

    def write_events(self, events: Iterable[Event]) -> int:
        """Append rule events in ONE transaction (all or nothing); returns the number written.
        Each gets the next `seq` and `recorded_at` = now (UTC, one instant for the call). Evidence
        must be JSON-able once numpy/pandas values are unwrapped (NaN becomes null); see schema.events."""
        if isinstance(events, Event) or not isinstance(events, Iterable):
            raise StoreError(f"write_events needs a list of Events, got {type(events).__name__}")
        events = list(events)
        if not events:
            return 0
        columns = _event_columns(events, self.dialect)
        recorded_at = pd.Timestamp.now(tz="UTC").floor("us")
        columns["recorded_at"] = [_micros(recorded_at) if self.dialect == "sqlite" else recorded_at.to_pydatetime()] \
            * len(events)
        keys = [f"p_{name}" for name in columns]
        records = [dict(zip(keys, row)) for row in zip(*columns.values())]
        with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _EVENTS_LOCK_KEY})
            try:
                connection.execute(self._events_insert(), records)
            except (sa.exc.IntegrityError, sa.exc.DataError) as exc:
                raise StoreError(f"events: the database refused the batch, nothing was written: {exc.orig}") from exc
        return len(events)

    def _events_insert(self) -> sa.Insert:
        if schema.EVENTS in self._insert_statements:
            return self._insert_statements[schema.EVENTS]
        postgres = self.dialect == "postgresql"
        table = schema.events
        values = {}
        for column in table.columns:
            if column.name == "seq":
                continue
            if isinstance(column.type, schema.UtcDateTime):
                wire = self._wire_type("datetime")
            elif column.name in ("evidence", H3_COLUMN, GEOMETRY_COLUMN):
                wire = sa.LargeBinary() if column.name == GEOMETRY_COLUMN else sa.Text()
            else:
                wire = column.type
            param = sa.bindparam(f"p_{column.name}", type_=wire)
            if postgres and column.name == "evidence":
                param = sa.cast(param, JSONB)
            elif postgres and column.name == GEOMETRY_COLUMN:
                param = sa.func.ST_GeomFromWKB(param, SRID)
            values[column.name] = param
        statement = sa.insert(table).values(values)
        self._insert_statements[schema.EVENTS] = statement
        return statement

    def read_events(
        self,
        since=None,
        until=None,
        after_seq: int | None = None,
        rule: str | Iterable[str] | None = None,
        subject_id: str | Iterable[str] | None = None,
        limit: int | None = None,
        episode_id: str | Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Stored events with since <= event_time < until, seq > after_seq, of some rule(s),
        subject(s) and episode(s) (each filter optional), ordered by event_time then seq. `limit` keeps the LAST
        `limit` rows of that order (the newest). Columns EVENT_FRAME_COLUMNS: times as aware UTC
        timestamps (`end` NaT while open), lon/lat NaN where unknown, evidence as dicts."""
        table = schema.events
        conditions = []
        since_ts = None if since is None else _utc_timestamp(since, "since")
        until_ts = None if until is None else _utc_timestamp(until, "until")
        if since_ts is not None and until_ts is not None and until_ts < since_ts:
            raise StoreError(f"until {until_ts} is before since {since_ts}")
        if since_ts is not None:
            conditions.append(table.c.event_time >= since_ts)
        if until_ts is not None:
            conditions.append(table.c.event_time < until_ts)
        if after_seq is not None:
            if isinstance(after_seq, (bool, np.bool_)) or not isinstance(after_seq, (int, np.integer)) or after_seq < 0:
                raise StoreError(f"after_seq must be a non-negative integer, got {after_seq!r}")
            conditions.append(table.c.seq > int(after_seq))
        for name, wanted in (("rule", rule), ("subject_id", subject_id), ("episode_id", episode_id)):
            if wanted is None:
                continue
            if isinstance(wanted, str):
                conditions.append(table.c[name] == wanted)
            elif isinstance(wanted, Iterable):
                conditions.append(self._in_values(table.c[name], wanted, f"in_{name}"))
            else:
                raise StoreError(f"{name} must be a string or a collection of strings, got {wanted!r}")
        if limit is not None and (
            isinstance(limit, (bool, np.bool_)) or not isinstance(limit, (int, np.integer)) or limit < 0
        ):
            raise StoreError(f"limit must be a non-negative integer, got {limit!r}")

        postgres = self.dialect == "postgresql"
        time_type = self._wire_type("datetime")
        selected = [
            table.c.seq, table.c.rule, table.c.subject_id, table.c.episode_id, table.c.phase,
            *(sa.type_coerce(table.c[c], time_type) for c in ("start_time", "end_time", "event_time")),
            table.c.lon, table.c.lat, table.c.severity,
            sa.cast(table.c.evidence, sa.Text()) if postgres else sa.type_coerce(table.c.evidence, sa.Text()),
            sa.type_coerce(table.c.recorded_at, time_type),
        ]
        statement = sa.select(*selected).where(*conditions)
        if limit is None:
            statement = statement.order_by(table.c.event_time, table.c.seq)
        else:  # the newest `limit`, turned back into ascending order below
            statement = statement.order_by(table.c.event_time.desc(), table.c.seq.desc()).limit(int(limit))
        with self.engine.connect() as connection:
            rows = connection.execute(statement).all()
        if limit is not None:
            rows.reverse()
        raw = list(zip(*rows)) if rows else [() for _ in selected]
        values = dict(zip(EVENT_FRAME_COLUMNS, raw))
        frame = pd.DataFrame({
            "seq": pd.Series(values["seq"], dtype="int64"),
            **{c: pd.Series(values[c], dtype="str") for c in ("rule", "subject_id", "episode_id", "phase")},
            **{c: self._decode(Field(c, "datetime"), values[c]) for c in ("start", "end", "event_time")},
            "lon": pd.Series(values["lon"], dtype="float64"),
            "lat": pd.Series(values["lat"], dtype="float64"),
            "severity": pd.Series(values["severity"], dtype="int64"),
            # one JSON document per row: parsing is per row whatever the driver
            "evidence": pd.Series([json.loads(text) for text in values["evidence"]], dtype=object),
            "recorded_at": self._decode(Field("recorded_at", "datetime"), values["recorded_at"]),
        })
        return frame[EVENT_FRAME_COLUMNS]

    def newest_event_time(self) -> pd.Timestamp | None:
        """The latest event_time stored, or None when there are no events."""
        column = sa.type_coerce(schema.events.c.event_time, self._wire_type("datetime"))
        with self.engine.connect() as connection:
            newest = connection.execute(sa.select(sa.func.max(column))).scalar()
        if newest is None:
            return None
        return self._decode(Field("event_time", "datetime"), [newest]).iloc[0]

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
