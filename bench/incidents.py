"""Incidents benchmark: a year of the city's alert volume applied, handled and queried.

A synthetic year (`incidents` episodes spread over 365 days on the demo world's trucks and
monitoring points: an open and a close each, a level update one level up on a tenth — an upgrade,
which routes the incident again at its new level —, severities ~5 % red, 15 % orange, 40 % yellow,
40 % blue) goes through `IncidentStore.apply_events` in chunks of
`chunk` events (one transaction each, as the live monitor applies them), routed by the world's
routing table. Then the recipients handle them in bulk calls (sign ~96 %, dispose ~92 % with a
tenth false alarms, close what was disposed) and every KPI grouping is queried. Figures, one
name=value a line at the end, per store:

- ``events_per_s``: events applied per second of wall time (target >= 20,000);
  ``events_per_cpu_s`` the same per CPU-second of the applying process (the steadier figure on a
  shared machine; PostgreSQL's server CPU is not in it); ``rows_per_event`` the rows it wrote per event;
- ``apply_rows_per_s`` and ``raw_insert_rows_per_s``: rows the application wrote (incidents,
  recipients, transitions, outbox, applied keys) per second, and the same rows inserted straight
  into an empty copy of the tables by the store's own bulk write (`IncidentStore._insert`: one
  executemany per table on SQLite, COPY on PostgreSQL) in transactions of the same size, handed over
  as typed columns with the JSON encoded beforehand, as the apply hands its own (the anchor);
  ``ratio_vs_raw_insert`` = apply time / raw insert time;
- ``handling_rows_per_s``: recipient transitions (sign, dispose, close) per second;
- ``escalation_pass_s``: one escalation pass at the end of the year (`escalate_overdue(YEAR_END)`,
  as the server's timer would run it: the year's first, so it reminds, escalates and counts every
  recipient left unsigned past its deadline);
- ``kpi_ms_max`` and ``kpi_ms_<by>``: the median of 3 runs of `kpis(by=…, now=YEAR_END)` over the
  year (target <= 200 ms each); ``kpi_exact_<by>``: whether the table's counts equal
  `kpis_exact`'s (read from every row, once).

`--kpis-only` skips the raw-insert anchor and applies in chunks of 50,000 events (unless
`--chunk` says otherwise): the same apply, so the same rows (the plan does not depend on the
batch size: spatial/incidents/batch.py is tested equal to the event-by-event loop, and the
exactly-once key makes chunk boundaries invisible), in a fraction of the time.

    python -m bench.incidents [--incidents 300000] [--scale 0.2] [--postgres URL] [--kpis-only]
    hazmap bench incidents    (the same options)

The machine these figures come from is shared; run it alone for figures to compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

YEAR_START = pd.Timestamp("2026-01-01T00:00:00+08:00").tz_convert("UTC")
YEAR_END = YEAR_START + pd.Timedelta(days=365)  # the escalation pass and the KPIs run at the year's end
VEHICLE_RULES = ("speeding", "route_deviation", "illegal_parking", "offline", "stop_near_sensitive_site", "fatigue")
POINT_RULES = ("point_level", "point_interruption", "point_rate")
SEVERITY_SHARES = (0.05, 0.15, 0.40, 0.40)


def synthetic_year(world, n: int, seed: int = 1) -> pd.DataFrame:
    """Events of `n` episodes over a year, in event-time order (EVENT_COLUMNS)."""
    rng = np.random.default_rng(seed)
    vehicles = world.vehicles["id"].astype(str).to_numpy()
    points = world.monitoring_points["id"].astype(str).to_numpy()
    on_truck = rng.random(n) < 0.6
    subject = np.where(on_truck, vehicles[rng.integers(0, len(vehicles), n)], points[rng.integers(0, len(points), n)])
    rule = np.where(on_truck, np.asarray(VEHICLE_RULES, dtype=object)[rng.integers(0, len(VEHICLE_RULES), n)],
                    np.asarray(POINT_RULES, dtype=object)[rng.integers(0, len(POINT_RULES), n)])
    start_ms = YEAR_START.value // 1_000_000 + np.sort(rng.integers(0, 365 * 86_400_000, n))
    duration_ms = np.clip(rng.lognormal(np.log(600), 1.0, n), 30, 86_400).astype("int64") * 1000
    severity = rng.choice(np.arange(1, 5), n, p=SEVERITY_SHARES)
    lon = 121.3 + rng.random(n) * 0.6
    lat = 29.7 + rng.random(n) * 0.3
    episode = np.char.add(np.char.add(np.char.add(rule.astype(str), ":"), np.char.add(subject.astype(str), ":")),
                          start_ms.astype(str)).astype(object)
    update = rng.random(n) < 0.1
    parts = []
    for phase, mask, time_ms, end_ms in (("open", np.ones(n, bool), start_ms, None),
                                        ("update", update, start_ms + duration_ms // 2, None),
                                        ("close", np.ones(n, bool), start_ms + duration_ms, start_ms + duration_ms)):
        k = int(mask.sum())
        parts.append(pd.DataFrame({
            "rule": rule[mask], "subject_id": subject[mask], "episode_id": episode[mask], "phase": phase,
            "start": pd.to_datetime(start_ms[mask], unit="ms", utc=True),
            # typed times, as the monitor reads them from the events table (an object column of
            # Timestamps and NaT would take check_events' parsing path for text from files)
            "end": pd.to_datetime(end_ms[mask] if end_ms is not None else np.full(k, np.iinfo("int64").min),
                                  unit="ms", utc=True),
            "lon": lon[mask], "lat": lat[mask],
            "severity": np.maximum(severity[mask] - (phase == "update"), 1),
            "evidence": [{"bench": True, "t": int(t)} for t in time_ms[mask]] if k else [],
            "event_time": pd.to_datetime(time_ms[mask], unit="ms", utc=True),  # an update's own time
            "_t": time_ms[mask], "_order": {"open": 0, "update": 1, "close": 2}[phase],
        }))
    events = pd.concat(parts, ignore_index=True).sort_values(["_t", "_order"], kind="stable", ignore_index=True)
    return events.drop(columns=["_t", "_order"])


def _open_store(url: str):
    from data.store import Store

    return Store.open(url, upgrade=True)


def _count_rows(store) -> dict[str, int]:
    from data.incidents import TABLES

    with store.engine.connect() as connection:
        return {t.name: connection.execute(sa.select(sa.func.count()).select_from(t)).scalar() for t in TABLES}


def _raw_insert(source, target_url: str, chunk_rows: int) -> tuple[float, int]:
    """Copy every incident table's rows into an empty store by the same bulk write path, in
    transactions of `chunk_rows`: the anchor. The rows are handed over as the apply hands its own
    (typed columns: times as datetime Series, text and numbers as arrays) with the JSON documents
    encoded beforehand, so that what is timed is the store's write, not a conversion of its input
    (lists of Timestamps parsed back one by one were ~35 % of the recipients' time). Returns
    (seconds, rows)."""
    from data.incidents import TABLES, IncidentStore, incident_cursor
    from data.schema import JsonDocument

    target = _open_store(target_url)
    try:
        reader, writer = IncidentStore(source), IncidentStore(target)
        frames = {}
        with source.engine.connect() as connection:
            for table in TABLES:
                if table is incident_cursor:
                    continue
                frame = reader._read(connection, table)
                frame = frame.drop(columns=[c for c in ("seq",) if c in frame.columns and table.name != "incident_applied"])
                documents = [c for c in frame.columns if isinstance(table.c[c].type, JsonDocument)]
                for name in documents:
                    frame[name] = pd.Series([None if v is None else json.dumps(v, ensure_ascii=False)
                                             for v in frame[name]], dtype=object)
                frames[table.name] = (table, frame, documents)
        rows = 0
        started = time.perf_counter()
        for table, frame, documents in frames.values():
            for first in range(0, len(frame), chunk_rows):
                part = frame.iloc[first:first + chunk_rows]
                with target.engine.begin() as connection:
                    writer._insert(connection, table, {c: part[c] for c in part.columns}, json_ready=documents)
                rows += len(part)
        return time.perf_counter() - started, rows
    finally:
        target.close()


def _handle(incidents_store, store, rng, out, budget_s: float | None = None) -> tuple[float, int]:
    """Sign, dispose, close in bulk calls per recipient (chunks of 5,000 rows), the recipients
    with most rows first; with `budget_s`, stop starting new recipients once it is spent (the
    rest stay pushed: said in the output)."""
    from data.incidents import incident_recipients, incidents

    with store.engine.connect() as connection:
        rec = incidents_store._read(connection, incident_recipients,
                                    columns=["incident_id", "recipient_id", "pushed_at"])
        sev = incidents_store._read(connection, incidents, columns=["id", "severity"])
    rec = rec.merge(sev.rename(columns={"id": "incident_id"}), on="incident_id").sort_values("pushed_at")
    rec["sign"] = rng.random(len(rec)) < 0.96
    rec["dispose"] = rec["sign"] & (rng.random(len(rec)) < 0.96)
    rec["false_alarm"] = rng.random(len(rec)) < 0.1
    moved = handled_rows = 0
    started = time.perf_counter()
    sizes = rec.groupby("recipient_id").size().sort_values(ascending=False, kind="stable")
    groups = dict(list(rec.groupby("recipient_id", sort=False)))
    for who in sizes.index:
        if budget_s is not None and time.perf_counter() - started > budget_s:
            out(f"  handling budget of {budget_s:.0f} s spent: {handled_rows:,} of {len(rec):,} recipient rows handled "
                f"({sizes.index.get_loc(who):,} of {len(sizes):,} recipients), the rest left pushed")
            break
        mine = groups[who]
        handled_rows += len(mine)
        for first in range(0, len(mine), 5000):
            part = mine.iloc[first:first + 5000]
            at = part["pushed_at"].max() + pd.Timedelta(minutes=10)
            signing = part[part["sign"]]
            if len(signing):
                incidents_store.sign(signing["incident_id"].tolist(), who, "bench", at=at)
                moved += len(signing)
            for false_alarm, group in part[part["dispose"]].groupby("false_alarm"):
                ids = group["incident_id"].tolist()
                incidents_store.dispose(ids, who, "bench", "checked", "bench note",
                                        "false_alarm" if false_alarm else "resolved", at=at + pd.Timedelta(hours=1))
                incidents_store.close(ids, who, "bench", at=at + pd.Timedelta(hours=2))
                moved += 2 * len(ids)
    return time.perf_counter() - started, moved


def bench_store(url: str, world, events: pd.DataFrame, *, chunk: int, seed: int, out,
                handle_budget_s: float | None = None, anchor: bool = True, apply_only: bool = False) -> dict:
    from data.incidents import IncidentStore

    store = _open_store(url)
    try:
        incidents_store = IncidentStore(store, world)
        started, cpu_started = time.perf_counter(), time.process_time()
        applied = 0
        for first in range(0, len(events), chunk):
            result = incidents_store.apply_events(events.iloc[first:first + chunk], source="bench")
            applied += result.applied
        apply_s = time.perf_counter() - started
        apply_cpu_s = time.process_time() - cpu_started  # this process only: PostgreSQL's server works apart
        rows = _count_rows(store)
        written = sum(v for k, v in rows.items() if k != "incident_cursor")
        out(f"  applied {applied:,} events in {apply_s:.1f} s: {applied / apply_s:,.0f} events/s "
            f"({applied / apply_cpu_s:,.0f} per CPU-second of this process); "
            f"{rows['incidents']:,} incidents, {rows['incident_recipients']:,} recipients, "
            f"{rows['incident_transitions']:,} logged transitions, {rows['incident_outbox']:,} outbox rows; "
            f"{written / max(applied, 1):.2f} rows written per event")
        figures = {"events": applied, "incidents": rows["incidents"], "events_per_s": round(applied / apply_s),
                   "events_per_cpu_s": round(applied / apply_cpu_s), "rows_per_event": round(written / applied, 2),
                   "apply_rows_per_s": round(written / apply_s)}
        if anchor:
            with tempfile.TemporaryDirectory() as folder:
                raw_url = f"sqlite:///{Path(folder) / 'raw.sqlite'}" if store.dialect == "sqlite" else None
                if raw_url is None:
                    raw_url, drop = _fresh_postgres(url)
                raw_s, raw_rows = _raw_insert(store, raw_url, chunk_rows=chunk * written // max(applied, 1))
                if store.dialect != "sqlite":
                    drop()
            out(f"  raw insert of the same {raw_rows:,} rows: {raw_s:.1f} s ({raw_rows / raw_s:,.0f} rows/s); "
                f"apply {written / apply_s:,.0f} rows/s, {apply_s / raw_s:.2f}x the raw insert time")
            figures.update(raw_insert_rows_per_s=round(raw_rows / raw_s), ratio_vs_raw_insert=round(apply_s / raw_s, 2))
        if apply_only:
            return figures
        handle_s, moved = _handle(incidents_store, store, np.random.default_rng(seed), out, handle_budget_s)
        out(f"  handled {moved:,} recipient transitions in {handle_s:.1f} s: {moved / handle_s:,.0f}/s")
        figures["handling_rows_per_s"] = round(moved / handle_s)
        figures.update(_escalate_and_query(incidents_store, out))
        return figures
    finally:
        store.close()


def _escalate_and_query(incidents_store, out) -> dict:
    """The year's escalation pass at its end, then every KPI table at that instant (median of 3),
    each checked once against the table computed from every row."""
    from spatial.incidents.kpis import GROUPINGS

    started = time.perf_counter()
    result = incidents_store.escalate_overdue(YEAR_END)
    pass_s = time.perf_counter() - started
    out(f"  escalation pass at {YEAR_END.isoformat()}: {result.escalated:,} escalated, {result.reminded:,} reminded "
        f"in {pass_s:.1f} s")
    figures = {"escalation_pass_s": round(pass_s, 1), "escalated": result.escalated, "reminded": result.reminded}
    store = incidents_store.store
    if store.dialect == "postgresql":
        # what autovacuum does after a mass update (the test server runs with it off): the pass's
        # updated rows leave dead entries in the partial index of uncounted rows until vacuumed
        started = time.perf_counter()
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM (ANALYZE) incident_recipients")
            connection.exec_driver_sql("ANALYZE incident_kpi_totals")
        out(f"  VACUUM (ANALYZE) after the pass: {time.perf_counter() - started:.1f} s")
    counts = ["incidents", "pushed", "signed", "disposed", "overdue", "escalated", "false_alarms", "quick_closes",
              "reopens"]
    kpi_ms = {}
    for by in GROUPINGS:
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            table = incidents_store.kpis(by=by, now=YEAR_END)
            runs.append((time.perf_counter() - t0) * 1000)
        kpi_ms[by] = statistics.median(runs)
        exact = incidents_store.kpis_exact(by=by, now=YEAR_END)
        same = table[[by, *counts]].to_dict("records") == exact[[by, *counts]].to_dict("records")
        figures[f"kpi_exact_{by}"] = same
        out(f"  kpis by {by:<10} {len(table):>6,} rows  {kpi_ms[by]:8.1f} ms  "
            f"(median of {', '.join(f'{r:.1f}' for r in runs)}; counts {'equal' if same else 'DIFFER from'} kpis_exact)")
    figures.update({f"kpi_ms_{k}": round(v, 1) for k, v in kpi_ms.items()})
    figures["kpi_ms_max"] = round(max(kpi_ms.values()), 1)
    return figures


def _fresh_postgres(url: str):
    """A new empty database with PostGIS on the server of `url`, and how to drop it."""
    admin = sa.create_engine(sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"hazmap_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    fresh = sa.make_url(url).set(database=name)
    engine = sa.create_engine(fresh)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS postgis")
    engine.dispose()

    def drop():
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return fresh.render_as_string(hide_password=False), drop


def run_incidents_bench(incidents: int = 300_000, scale: float = 0.2, seed: int = 7, chunk: int = 5_000,
                        postgres: str | None = None, out: Callable[[str], None] = print, *,
                        sqlite: bool = True, handle_budget_s: float | None = None, anchor: bool = True,
                        apply_only: bool = False) -> dict:
    from data.demo import build_world
    from data.reference import load_chemicals

    world = build_world(seed=seed, scale=scale, chemicals=load_chemicals())
    started = time.perf_counter()
    events = synthetic_year(world, incidents, seed)
    out(f"synthetic year: {incidents:,} episodes, {len(events):,} events ({time.perf_counter() - started:.1f} s to "
        f"generate) on the demo world (seed {seed}, scale {scale}: {len(world.vehicles):,} trucks, "
        f"{len(world.monitoring_points):,} points); chunks of {chunk:,} events")
    figures = {}
    if sqlite:
        with tempfile.TemporaryDirectory() as folder:
            out("SQLite:")
            figures["sqlite"] = bench_store(f"sqlite:///{Path(folder) / 'bench.sqlite'}", world, events, chunk=chunk,
                                            seed=seed, out=out, handle_budget_s=handle_budget_s, anchor=anchor,
                                            apply_only=apply_only)
    if postgres:
        url, drop = _fresh_postgres(postgres)
        try:
            out("PostGIS:")
            figures["postgis"] = bench_store(url, world, events, chunk=chunk, seed=seed, out=out,
                                             handle_budget_s=handle_budget_s, anchor=anchor, apply_only=apply_only)
        finally:
            drop()
    for backend, values in figures.items():
        for name, value in values.items():
            out(f"{backend}.{name}={value}")
    return figures


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--incidents", type=int, default=300_000, help="episodes in the year")
    p.add_argument("--scale", type=float, default=0.2, help="demo world scale (trucks and points to draw from)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--chunk", type=int, default=None, help="events per transaction (5,000; 50,000 with --kpis-only)")
    p.add_argument("--postgres", default=None, help="a PostgreSQL URL whose server gets a throwaway database")
    p.add_argument("--no-sqlite", action="store_true", help="only the PostgreSQL store (with --postgres)")
    p.add_argument("--handle-budget-s", type=float, default=None,
                   help="stop handling new recipients after this many seconds (the rest stay pushed)")
    p.add_argument("--kpis-only", action="store_true",
                   help="build the year for the escalation pass and KPIs: no raw-insert anchor, 50,000-event chunks")
    p.add_argument("--apply-only", action="store_true", help="the apply and its raw-insert anchor only")
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> dict:
    p = parser()
    if prog:
        p.prog = prog
    args = p.parse_args(argv)
    chunk = args.chunk or (50_000 if args.kpis_only else 5_000)
    return run_incidents_bench(args.incidents, args.scale, args.seed, chunk, args.postgres,
                               lambda line: print(line, flush=True), sqlite=not args.no_sqlite,
                               handle_budget_s=args.handle_budget_s, anchor=not args.kpis_only,
                               apply_only=args.apply_only)


if __name__ == "__main__":
    main()
