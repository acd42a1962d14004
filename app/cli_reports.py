"""`hazmap snapshot` (an area's risk at a time, in every format) and `hazmap briefing` (the
day's risk briefing), registered on app/cli.py's group when it imports this module.

The CLI gathers the inputs from data/ — the world, the live picture at T rebuilt by the grid's
path (app/cli_grid.grid_inputs_at: stored pings and events), the incidents and their
recipients — and hands them to spatial/ (snapshot.py, briefing.py) and reports/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from app.cli import UserError, _audit_cli, _load_world, _open_store, _parse_time, _settings, bench_cli, cli

WINDOW_S = 1800.0  # a truck is present at T when its newest ping is at most this old (as `hazmap grid`)


def earliest_data(store) -> pd.Timestamp | None:
    """The oldest stored ping or event: a snapshot cannot look further back."""
    import sqlalchemy as sa

    from data import schema
    from spatial.model import Field

    wire = store._wire_type("datetime")
    found = []
    with store.engine.connect() as connection:
        for column in (schema.pings.c.time, schema.events.c.event_time):
            value = connection.execute(sa.select(sa.func.min(sa.type_coerce(column, wire)))).scalar()
            if value is not None:
                found.append(store._decode(Field("time", "datetime"), [value]).iloc[0])
    return min(found) if found else None


def incident_frames(store, world, until: pd.Timestamp | None = None, since: pd.Timestamp | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(incidents first seen before `until` and not closed before `since`, their recipient rows)."""
    import sqlalchemy as sa

    from data.incidents import IncidentStore, incident_recipients

    inc = IncidentStore(store, world).list()
    first = pd.to_datetime(inc["first_time"], utc=True)
    closed = pd.to_datetime(inc["closed_at"], utc=True)
    keep = pd.Series(True, index=inc.index)
    if until is not None:
        keep &= first < until
    if since is not None:
        keep &= closed.isna() | (closed >= since) | (first >= since)
    inc = inc[keep].reset_index(drop=True)
    ids = inc["id"].astype(str).tolist()
    r = incident_recipients
    columns = ["incident_id", "recipient_id", "recipient_kind", "district_adcode", "state", "tier", "pushed_at",
               "sign_deadline", "signed_at", "disposed_at", "outcome", "escalated_at"]
    rows = []
    with store.engine.connect() as connection:
        for start in range(0, len(ids), 5000):  # bounded IN lists
            chunk = ids[start:start + 5000]
            rows += connection.execute(sa.select(*(r.c[c] for c in columns)).where(r.c.incident_id.in_(chunk))).all()
    rec = pd.DataFrame(rows, columns=columns)
    for c in ("pushed_at", "sign_deadline", "signed_at", "disposed_at", "escalated_at"):
        rec[c] = pd.to_datetime(rec[c], utc=True)
    return inc, rec


def build_snapshot(settings, world, store, area_kind: str, area_value, at: pd.Timestamp | None,
                   resolution: int | None = None, now: pd.Timestamp | None = None):
    """The snapshot of one area at `at` (None: now) from the store; AreaError on a bad area or time."""
    from app.cli_grid import grid_inputs_at
    from spatial.h3cells import H3_RES_RISK_GRID
    from spatial.risk import RiskGrid, weights_from
    from spatial.snapshot import RECENT, check_time, resolve_area, snapshot

    area = resolve_area(world, area_kind, area_value)
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    when = now if at is None else at.tz_convert("UTC")
    check_time(when, now, earliest_data(store))
    live = grid_inputs_at(store, world, when, WINDOW_S)
    grid = RiskGrid(world, weights_from(settings.risk_weights))
    grid.apply(**live)
    incidents, recipients = incident_frames(store, world, until=when + pd.Timedelta(microseconds=1),
                                            since=when - RECENT)
    return snapshot(world, area, when, trucks=live["trucks"], alarms=live["alarms"], open_alerts=live["incidents"],
                    rows=grid.rows(), incidents=incidents, recipients=recipients,
                    resolution=H3_RES_RISK_GRID if resolution is None else resolution)


def _area_choice(district, park, bbox, h3cell, geojson) -> tuple[str, object]:
    given = [(k, v) for k, v in (("district", district), ("park", park), ("bbox", bbox), ("h3", h3cell),
                                 ("geojson", geojson)) if v is not None]
    if len(given) != 1:
        raise UserError("give exactly one area: --district NAME | --park NAME | --bbox W,S,E,N | --h3 CELL | "
                        f"--geojson FILE (got {len(given)})")
    kind, value = given[0]
    if kind == "geojson":
        path = Path(value)
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserError(f"--geojson {path}: cannot read it ({exc.strerror or exc})") from exc
        except ValueError as exc:
            raise UserError(f"--geojson {path}: not JSON ({exc})") from exc
    return kind, value


@cli.command("snapshot")
def snapshot_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="directory the files are written to")],
    district: Annotated[str | None, typer.Option("--district", help="a district by name (北仑区, Beilun) or adcode")] = None,
    park: Annotated[str | None, typer.Option("--park", help="a chemical park by name")] = None,
    bbox: Annotated[str | None, typer.Option("--bbox", help="W,S,E,N in WGS-84 degrees")] = None,
    h3cell: Annotated[str | None, typer.Option("--h3", help="an H3 cell of any resolution")] = None,
    geojson: Annotated[Path | None, typer.Option("--geojson", help="a GeoJSON file of (Multi)Polygons")] = None,
    at: Annotated[str | None, typer.Option("--at", help="ISO 8601 time (no offset: Asia/Shanghai); default now")] = None,
    formats: Annotated[str | None, typer.Option("--formats", help="comma list of pdf,png,xlsx,geojson,html")] = None,
    res: Annotated[int | None, typer.Option("--res", help="H3 resolution of the grid cells: 6, 7, 8 or 9")] = None,
) -> None:
    """An area's risk snapshot (as now or at a past time) as PDF, PNG, XLSX, GeoJSON and offline HTML."""
    from reports.snapshot import parse_formats, write_snapshot
    from spatial.h3cells import RISK_GRID_RESOLUTIONS
    from spatial.snapshot import AreaError

    kind, value = _area_choice(district, park, bbox, h3cell, geojson)
    try:
        wanted = parse_formats(formats)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if res is not None and res not in RISK_GRID_RESOLUTIONS:
        raise UserError(f"--res must be one of {', '.join(map(str, RISK_GRID_RESOLUTIONS))}, got {res}")
    when = None if at is None else _parse_time(at, "--at")
    settings = _settings(ctx)
    world = _load_world(settings)
    store = _open_store(settings)
    try:
        snap = build_snapshot(settings, world, store, kind, value, when, res)
    except AreaError as exc:
        raise UserError(str(exc)) from exc
    finally:
        store.close()
    paths = write_snapshot(snap, out, wanted)
    _audit_cli(settings, "export", str(out), {"what": "snapshot", "area": snap.area.name,
                                              "at": snap.at.isoformat(), "formats": list(paths)})
    if snap.area.note:
        typer.echo(f"note: {snap.area.note}", err=True)
    f = snap.figures
    typer.echo(f"{snap.area.name} at {snap.at.tz_convert('Asia/Shanghai'):%Y-%m-%d %H:%M:%S} (Asia/Shanghai): "
               f"score {f['score']:g}, {f['hazard_sources']} hazard sources, {f['points_in_alarm']} points in alarm, "
               f"{f['trucks']} trucks, {f['incidents_open']} open incidents")
    for name, path in paths.items():
        typer.echo(f"  {name}: {path}")


@cli.command("briefing")
def briefing_command(
    ctx: typer.Context,
    date: Annotated[str, typer.Option("--date", help="the day, YYYY-MM-DD (Asia/Shanghai)")],
    out: Annotated[Path, typer.Option("--out", help="directory the files are written to")],
    formats: Annotated[str | None, typer.Option("--formats", help="comma list of pdf,xlsx")] = None,
) -> None:
    """The daily risk briefing: the day's incidents by rule, district, department and level with
    handling rates, the enterprises with most and gravest, trends, the attention lists."""
    from reports.briefing import BRIEFING_FORMATS, write_briefing

    day = parse_day(date)
    wanted = tuple(f.strip() for f in (formats or ",".join(BRIEFING_FORMATS)).split(",") if f.strip())
    if not wanted or any(f not in BRIEFING_FORMATS for f in wanted):
        raise UserError(f"--formats must be a comma list of {', '.join(BRIEFING_FORMATS)}, got {formats!r}")
    settings = _settings(ctx)
    world = _load_world(settings)
    store = _open_store(settings)
    try:
        brief = build_briefing(settings, world, store, day)
    finally:
        store.close()
    paths = write_briefing(brief, out, wanted)
    _audit_cli(settings, "export", str(out), {"what": "briefing", "day": day.isoformat(), "formats": list(paths)})
    f = brief.figures
    typer.echo(f"briefing {day}: {f['incidents']} incidents, handling rate {f['handling_rate']:.1%}, "
               f"{len(brief.key_attention)} key attention, {len(brief.suggested_attention)} suggested attention")
    for name, path in paths.items():
        typer.echo(f"  {name}: {path}")


def parse_day(text: str):
    import datetime as dt

    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError as exc:
        raise UserError(f"--date must be YYYY-MM-DD, got {text!r}") from exc


def build_briefing(settings, world, store, day, now: pd.Timestamp | None = None):
    """The briefing of `day` from the store: per-day aggregates of the day and the 30 before it."""
    import datetime as dt

    from spatial.briefing import HISTORY_DAYS, AttentionSettings, briefing, day_bounds, day_aggregates

    now = pd.Timestamp.now(tz="UTC") if now is None else now
    start, _ = day_bounds(day - dt.timedelta(days=HISTORY_DAYS))
    _, end = day_bounds(day)
    if start > now:
        raise UserError(f"--date {day} is in the future")
    incidents, recipients = incident_frames(store, world, until=end)
    incidents = incidents[pd.to_datetime(incidents["first_time"], utc=True) >= start]
    recipients = recipients[recipients["incident_id"].isin(incidents["id"])]
    aggregates = day_aggregates(incidents, recipients, world, now=min(now, end))
    try:
        thresholds = AttentionSettings.from_settings(getattr(settings, "briefing_attention", None))
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad HAZMAP_BRIEFING_ATTENTION: {exc}") from exc
    return briefing(aggregates, day, world, thresholds)


@bench_cli.command("snapshot")
def bench_snapshot(
    seed: Annotated[int, typer.Option(help="demo world seed")] = 7,
    scale: Annotated[float, typer.Option(help="fraction of Ningbo's counts")] = 1.0,
    repeat: Annotated[int, typer.Option(help="runs per figure (the median is printed)")] = 3,
    district: Annotated[str, typer.Option(help="the district snapshotted")] = "北仑区",
) -> None:
    """A district snapshot in every format with the app warm, per format, beside GeoPandas writing
    the same features to GeoJSON (target: all five ≤ 3 s)."""
    from bench.snapshot import run_snapshot_bench

    run_snapshot_bench(seed=seed, scale=scale, repeat=repeat, district=district)


@cli.command("incident-record")
def incident_record_command(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="a closed incident's id (INC-…)")],
    out: Annotated[Path, typer.Option("--out", help="directory the PDF is written to")],
) -> None:
    """A closed incident as a printable record (PDF): evidence map, recipients, history."""
    from data.incidents import IncidentError, IncidentStore
    from reports.record import incident_record_pdf

    settings = _settings(ctx)
    world = _load_world(settings)
    store = _open_store(settings)
    try:
        try:
            shown = IncidentStore(store, world).show(incident_id)
        except IncidentError as exc:
            raise UserError(str(exc)) from exc
        row = shown["incident"]
        if row["status"] != "closed":
            raise UserError(f"{incident_id} is not closed (status {row['status']}): only a closed incident "
                            "is exported as a record")
        track = pd.DataFrame(columns=["lon", "lat", "epoch_ms"])
        if row["subject_kind"] == "vehicle":  # its track from 30 min before to 30 min after
            end = row["end_time"] if pd.notna(row["end_time"]) else row["last_time"]
            track = store.read_pings(row["first_time"] - pd.Timedelta(minutes=30), end + pd.Timedelta(minutes=30),
                                     [row["subject_id"]])
    finally:
        store.close()
    data = incident_record_pdf(shown, track, world.districts[["name", "geometry"]], world.sensitive_sites,
                               world.hazard_sources)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"incident_{incident_id}.pdf"
    tmp = path.with_suffix(".pdf.part")
    tmp.write_bytes(data)
    tmp.replace(path)
    _audit_cli(settings, "export", str(path), {"what": "incident_record", "incident": incident_id})
    typer.echo(f"  pdf: {path}")
