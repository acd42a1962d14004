"""Reading the incident KPI tables (IncidentStore.kpis delegates here).

A table is the rollup's counters (spatial/incidents/kpis.py) of one grouping: over all days from
`incident_kpi_totals` (a few thousand rows however long the record), over a range of local days
from `incident_kpis`. "Overdue" is signed after the deadline (counted when signed) or unsigned
past the deadline at `now`. The second part is the counter `unsigned_overdue`, which the
escalation pass moves as deadlines pass (IncidentStore.escalate_overdue marks each row it counts
with the severity it counted it under, and signing the row takes it back), corrected live for
what the pass has not seen at `now`:

    unsigned past deadline at now = counted
                                   + pushed rows not counted whose deadline < now
                                   - pushed rows counted whose deadline >= now

The first correction reads a partial index of the uncounted pushed rows (those whose deadline
passed since the last pass, and any pushed late with a deadline already past; the index is named
to SQLite, and PostgreSQL's sequential scan is turned off for it: its planner sizes the range from
the whole column and read every row); the second a range
of the (state, sign_deadline) index, empty unless `now` lies before an instant a pass ran at.
Both are a handful of rows on a store whose escalation timer runs; on a store no pass has counted
(just migrated) the first reads every unsigned row: correct, slow until the first pass.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from data.schema import UtcDateTime
from spatial.incidents import kpis as kpi_logic


def read_kpis(store, by: str, since: pd.Timestamp | None, until: pd.Timestamp | None,
              now: pd.Timestamp) -> pd.DataFrame:
    """The KPI table of `by` over incidents first seen on the local days [since, until) (None: all),
    at `now`. `store` is an IncidentStore."""
    from data.incidents import (OVERDUE_CURSOR, UNCOUNTED_INDEX, UNCOUNTED_OVERDUE, incident_cursor,
                                incident_kpi_totals, incident_kpis, incident_recipients)

    r = incident_recipients
    first_day = kpi_logic.local_days([since])[0] if since is not None else None
    last_day = kpi_logic.local_days([until])[0] if until is not None else None
    with store.engine.connect() as connection:
        if first_day is None and last_day is None:
            k = incident_kpi_totals
            statement = sa.select(k.c.key, k.c.metric, k.c.bin, k.c.n).where(k.c.grouping == by)
        else:
            k = incident_kpis
            days = [k.c.day >= first_day] if first_day is not None else []
            days += [k.c.day < last_day] if last_day is not None else []
            statement = (sa.select(k.c.key, k.c.metric, k.c.bin, sa.func.sum(k.c.n).label("n"))
                         .where(k.c.grouping == by, *days).group_by(k.c.key, k.c.metric, k.c.bin))
        rollup = _frame(connection.execute(statement).all(), ["key", "metric", "bin", "n"])
        # the partial index's WHERE, literally (SQLite matches a partial index on the same terms only),
        # and named on SQLite: without statistics it would pick (state, sign_deadline), every unsigned row
        hint = f" INDEXED BY {UNCOUNTED_INDEX}" if store.dialect == "sqlite" else ""
        postgres = store.dialect == "postgresql"
        if postgres:
            # PostgreSQL's planner sizes the partial index's deadline range from the whole column's
            # statistics (most deadlines are past) and reads every recipient row instead: 190-260 ms a
            # table over a year against well under a millisecond by the index (docs/performance.md)
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        not_counted = _frame(connection.execute(sa.text(
            f"SELECT incident_id, recipient_id, recipient_kind, pushed_severity FROM {r.name}{hint} "
            f"WHERE {UNCOUNTED_OVERDUE} AND sign_deadline < :now").bindparams(
            sa.bindparam("now", type_=UtcDateTime())), {"now": now}).all(),
            ["incident_id", "recipient_id", "recipient_kind", "pushed_severity"])
        if postgres:
            connection.exec_driver_sql("SET LOCAL enable_seqscan = on")
        # counted rows not yet past their deadline at `now`: none when `now` is past the latest deadline
        # counted (the pass keeps it; no row yet: no pass has counted, the range holds few rows)
        latest = connection.execute(sa.select(incident_cursor.c.last_seq).where(
            incident_cursor.c.name == OVERDUE_CURSOR)).scalar()
        if latest is None or now.value // 1000 <= latest:
            counted = store._read(connection, r, r.c.state == "pushed", r.c.sign_deadline >= now,
                                  r.c.overdue_counted_severity.is_not(None),
                                  columns=["incident_id", "recipient_id", "recipient_kind", "overdue_counted_severity"])
        else:
            counted = pd.DataFrame(columns=["incident_id"])
        ids = set(not_counted["incident_id"]) | set(counted["incident_id"])
        info = store._info(connection, ids) if ids else None
    parts = []
    for rows, sign in ((not_counted, 1), (counted, -1)):
        if not len(rows):
            continue
        rows = rows.join(info, on="incident_id")
        if "overdue_counted_severity" in rows.columns:  # taken back from the level it was counted under
            rows["severity"] = rows["overdue_counted_severity"].astype("int64")
        else:  # at the level the row was pushed at, as every count of it (migration 0012)
            rows["severity"] = kpi_logic.level_or(rows["pushed_severity"], rows["severity"])
        part = kpi_logic.rollup_increments(rows, "unsigned_overdue", per_recipient=True)
        part = part[part["grouping"] == by]
        if first_day is not None:
            part = part[part["day"] >= first_day]
        if last_day is not None:
            part = part[part["day"] < last_day]
        parts.append(pd.DataFrame({"key": part["key"].to_numpy(), "n": sign * part["n"].to_numpy(dtype="int64")}))
    live = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"key": [], "n": []})
    rollup["n"] = rollup["n"].astype("int64")
    rollup["bin"] = rollup["bin"].astype("int64")
    live["key"] = live["key"].astype(str)
    return kpi_logic.kpis_from_rollup(rollup, live, by=by)



def _frame(rows, columns: list[str]) -> pd.DataFrame:
    """Result rows as a frame, column by column (pandas' row-wise construction from Row objects
    costs more than the query here)."""
    values = list(zip(*rows)) if rows else [() for _ in columns]
    return pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in zip(columns, values)})
