"""Bulk writes of typed columns: one executemany on SQLite, one COPY on PostgreSQL (through a
per-connection temporary table when upserting). The incident store writes every batch this way,
and the escalation pass's audit rows (data/people.py audit_system) go the same way: a SQLAlchemy
executemany of dicts runs every value through its type's bind processing, ~20 µs a row."""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import pandas as pd
import sqlalchemy as sa

from data.schema import JsonDocument, UtcDateTime

_COLUMN_TYPES = (list, tuple, np.ndarray, pd.Series, pd.Index, pd.api.extensions.ExtensionArray)


def plain(raw, n: int | None = None) -> list:
    """Driver-ready Python values of one column (numpy scalars unwrapped, NaN, NA and NaT as None),
    without a detour through a pandas Series (pandas 3 would infer its arrow-backed str dtype from
    an object array and convert every value). A scalar stands for a column of `n` equal values."""
    if not isinstance(raw, (list, tuple, np.ndarray, pd.Series, pd.Index, pd.api.extensions.ExtensionArray)):
        value = None if raw is None or (not isinstance(raw, str) and pd.isna(raw)) else raw
        return [value.item() if isinstance(value, np.generic) else value] * int(n or 0)
    if isinstance(raw, (pd.Series, pd.Index, pd.api.extensions.ExtensionArray)):
        values = np.asarray(raw) if isinstance(raw.dtype, np.dtype) else raw.to_numpy(dtype=object, na_value=None)
    elif isinstance(raw, np.ndarray):
        values = raw
    else:
        values = np.asarray(raw, dtype=object) if len(raw) else np.zeros(0, dtype=object)
    if values.dtype.kind in "iub":
        return values.tolist()
    if values.dtype.kind == "f":
        out = values.astype(object)
        out[np.isnan(values)] = None
        return out.tolist()
    if values.dtype.kind != "O":
        values = values.astype(object)
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = None
    out = values.tolist()
    if len(out) and any(isinstance(v, np.generic) for v in out[:1]):
        out = [v.item() if isinstance(v, np.generic) else v for v in out]
    return out


def wire_times(dialect: str, values, n: int | None = None) -> list:
    """Times as the driver takes them: µs since the epoch (SQLite), ISO-8601 text for COPY
    (PostgreSQL); None for a missing time. A single time stands for a column of `n`."""
    if not isinstance(values, _COLUMN_TYPES):
        return wire_times(dialect, [values])[:1] * int(n or 0)
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.DatetimeTZDtype):
        raw = values.dt.as_unit("us").array.asi8
    elif isinstance(values, np.ndarray) and values.dtype.kind == "M":  # naive datetime64: UTC
        raw = values.astype("datetime64[us]").view("int64")
    else:
        raw = pd.to_datetime(pd.Series(values, dtype=object), utc=True).dt.as_unit("us").array.asi8
    missing = raw == np.iinfo("int64").min
    if dialect == "sqlite":
        out = raw.astype(object)
    else:
        out = (np.datetime_as_string(raw.view("M8[us]"), unit="us").astype(object) + "Z")
    if missing.any():
        out[missing] = None
    return out.tolist()


def bulk_insert(connection: sa.Connection, table: sa.Table, columns: dict[str, Iterable],
                conflict: tuple[str, ...] | None = None, update: Iterable[str] = (),
                accumulate: Iterable[str] = (), json_ready: Iterable[str] = ()) -> None:
    """Write `columns` (name -> values) into `table` in one statement per table: SQLite an
    executemany, PostgreSQL a COPY (through a temporary table when upserting); with `conflict`,
    an upsert that sets `update` from the new row and adds `accumulate` to it. JSON columns take
    documents, or text already encoded for the columns named in `json_ready`."""
    names = list(columns)
    # a scalar value stands for a column of equal values (the batch's time, version, source …)
    n = next((len(v) for v in columns.values() if isinstance(v, _COLUMN_TYPES)), 0)
    if not n:
        return
    dialect = connection.dialect.name
    ready = set(json_ready)
    values = []
    for name in names:
        column_type = table.c[name].type
        raw = columns[name]
        if isinstance(column_type, UtcDateTime):
            values.append(wire_times(dialect, raw, n))
        elif isinstance(column_type, JsonDocument):
            values.append(plain(raw, n) if name in ready else
                          [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in raw])
        else:
            values.append(plain(raw, n))
    sets = ", ".join([f"{c} = excluded.{c}" for c in update]
                     + [f"{c} = {table.name}.{c} + excluded.{c}" for c in accumulate])
    driver = connection.connection.driver_connection
    if dialect != "postgresql":
        sql = f'INSERT INTO {table.name} ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})'
        if conflict:
            sql += f' ON CONFLICT ({", ".join(conflict)}) DO UPDATE SET {sets}'
        driver.executemany(sql, list(zip(*values)))
        return
    target = table.name
    with driver.cursor() as cursor:
        if conflict:
            # a per-connection scratch table, emptied at commit: COPY there, then one upsert
            target = f"_incoming_{table.name}"
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {target} (LIKE {table.name}) ON COMMIT DELETE ROWS")
        with cursor.copy(f'COPY {target} ({", ".join(names)}) FROM STDIN') as copy:
            for row in zip(*values):
                copy.write_row(row)
        if conflict:
            cursor.execute(f'INSERT INTO {table.name} ({", ".join(names)}) SELECT {", ".join(names)} FROM {target} '
                           f'ON CONFLICT ({", ".join(conflict)}) DO UPDATE SET {sets}')
            cursor.execute(f"DELETE FROM {target}")  # a second upsert in this transaction starts empty
