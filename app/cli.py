"""`hazmap` command line: the composition root that wires settings, store, world and screen."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from app.settings import Settings

log = logging.getLogger("hazmap")

cli = typer.Typer(help="hazmap — hazardous-chemicals safety command centre.", no_args_is_help=True)
db_cli = typer.Typer(help="The database: migrations and schema version.", no_args_is_help=True)
world_cli = typer.Typer(help="The world: build the demo, import, export, count.", no_args_is_help=True)
jt808_cli = typer.Typer(help="JT/T 808: the BeiDou terminal protocol.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(world_cli, name="world")
rules_cli = typer.Typer(help="The rule engine: run it over a track file, list its thresholds.", no_args_is_help=True)
cli.add_typer(rules_cli, name="rules")
bench_cli = typer.Typer(help="Benchmarks: figures against anchors measured in the same run.", no_args_is_help=True)
cli.add_typer(jt808_cli, name="jt808")
cli.add_typer(bench_cli, name="bench")


class UserError(Exception):
    """An error the operator can fix; printed without a traceback."""


def _settings(ctx: typer.Context) -> Settings:
    return ctx.find_root().obj


@cli.callback()
def _root(ctx: typer.Context, verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if ctx.obj is None:
        ctx.obj = Settings()


def _open_store(settings: Settings, *, upgrade: bool = False):
    from data.store import Store

    return Store.open(settings.resolved_database_url, upgrade=upgrade)


def _load_world(settings: Settings):
    from data.reference import load_chemicals

    store = _open_store(settings)
    try:
        world = store.load_world(chemicals=load_chemicals())
    finally:
        store.close()
    if not len(world.districts):
        raise UserError("the store holds no world yet: run `hazmap world build` or `hazmap world import DIR`")
    return world


# --- db -----------------------------------------------------------------------------------
@db_cli.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the database to the schema this hazmap needs."""
    store = _open_store(_settings(ctx), upgrade=True)
    typer.echo(f"{store.url}: at revision {store.current_revision()}")
    store.close()


@db_cli.command("status")
def db_status(ctx: typer.Context) -> None:
    """Show the database's schema revision against the one hazmap needs."""
    from data.store import Store

    settings = _settings(ctx)
    try:
        store = Store.open(settings.resolved_database_url)
    except Exception as exc:  # the message says what is behind and how to fix it
        raise UserError(str(exc)) from exc
    typer.echo(f"{store.url}: revision {store.current_revision()} (needed {store.head_revision()})")
    store.close()


# --- world --------------------------------------------------------------------------------
@world_cli.command("build")
def world_build(
    ctx: typer.Context,
    seed: Annotated[int | None, typer.Option(help="seed; same seed, same world")] = None,
    scale: Annotated[float | None, typer.Option(help="fraction of Ningbo's real counts (0 < F ≤ 1)")] = None,
) -> None:
    """Generate the Ningbo demo world and store it (replacing the world there)."""
    from data.demo import build_world
    from data.reference import load_chemicals

    settings = _settings(ctx)
    seed = settings.world_seed if seed is None else seed
    scale = settings.world_scale if scale is None else scale
    if not 0 < scale <= 1:
        raise UserError(f"--scale must be in (0, 1], got {scale}")
    world = build_world(seed=seed, scale=scale, chemicals=load_chemicals())
    store = _open_store(settings, upgrade=True)
    try:
        store.replace_world(world)
    finally:
        store.close()
    typer.echo(json.dumps(world.counts(), ensure_ascii=False))


@world_cli.command("export")
def world_export(ctx: typer.Context, out: Annotated[Path, typer.Option("--out", help="folder to write")]) -> None:
    """Write the stored world as hazmap's exchange format: one GeoJSON per layer (WGS-84)."""
    from data.exchange import export_world

    paths = export_world(_load_world(_settings(ctx)), out)
    typer.echo(f"wrote {len(paths)} files to {out}")


@world_cli.command("import")
def world_import(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="folder of <layer>.geojson / .csv / .xlsx files")],
    crs: Annotated[str, typer.Option(help="datum of the files: wgs84 or gcj02")] = "wgs84",
) -> None:
    """Validate a folder in the exchange format and replace the stored world with it (all or nothing)."""
    from data.exchange import import_world
    from data.reference import load_chemicals

    if crs not in ("wgs84", "gcj02"):
        raise UserError(f"--crs must be wgs84 or gcj02, got {crs!r}")
    crs_name: Literal["wgs84", "gcj02"] = crs  # type: ignore[assignment]
    world = import_world(source, crs=crs_name, chemicals=load_chemicals())
    store = _open_store(_settings(ctx), upgrade=True)
    try:
        store.replace_world(world)
    finally:
        store.close()
    typer.echo(json.dumps(world.counts(), ensure_ascii=False))


@world_cli.command("stats")
def world_stats(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Count every layer of the stored world."""
    store = _open_store(_settings(ctx))
    try:
        counts = store.counts()
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(counts))
    else:
        width = max(map(len, counts))
        for name, n in counts.items():
            typer.echo(f"{name:<{width}}  {n:>8,}")


# --- screen -------------------------------------------------------------------------------
def _gateway_settings(settings: Settings, host: str | None = None, port: int | None = None):
    from data.feeds.gateway import GatewaySettings

    return GatewaySettings(
        host=host or settings.jt808_host,
        port=port or settings.jt808_port,
        stats_port=settings.jt808_stats_port,
        auth_secret=settings.jt808_auth_secret,
    )


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    from app.live import LiveMonitor
    from app.webapp import create_app

    world = _load_world(settings)
    web = create_app(settings, world, world_version=world.fingerprint())
    monitor = None
    if settings.jt808_in_serve:
        try:
            monitor = LiveMonitor(world, settings.resolved_database_url, _gateway_settings(settings)).start()
        except RuntimeError as exc:
            raise UserError(f"{exc} (set HAZMAP_JT808_PORT, or HAZMAP_JT808_IN_SERVE=false to run without it)") from exc
    host = host or settings.host
    port = port or settings.port
    log.info("hazmap at http://%s:%d", host, port)
    # SIGTERM (a service manager stopping hazmap) unwinds like Ctrl-C, so the gateway hands its
    # last reports to the store before the process ends.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        web.run(host=host, port=port, debug=False)
    finally:
        if monitor is not None:
            monitor.stop()
            log.info("JT/T 808 gateway stopped")


@cli.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="listen port")] = None,
) -> None:
    """Start the wall-screen app on the stored world."""
    _serve(_settings(ctx), host, port)


@cli.command()
def demo(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="listen port")] = None,
) -> None:
    """Build the demo world if the store has none, then start the app."""
    settings = _settings(ctx)
    store = _open_store(settings, upgrade=True)
    try:
        empty = store.counts().get("districts", 0) == 0
    finally:
        store.close()
    if empty:
        log.info("no world in %s: building the demo world (seed %d, scale %g)",
                 settings.resolved_database_url, settings.world_seed, settings.world_scale)
        ctx.invoke(world_build, ctx=ctx, seed=None, scale=None)
    _serve(settings, host, port)


@cli.command("settings")
def show_settings(ctx: typer.Context) -> None:
    """Print the settings in force (defaults <- hazmap.toml <- HAZMAP_* environment)."""
    typer.echo(_settings(ctx).model_dump_json(indent=2))


# --- jt808 --------------------------------------------------------------------------------
@jt808_cli.command("decode")
def jt808_decode(frame_hex: Annotated[str, typer.Argument(help="one frame as hex, spaces allowed")]) -> None:
    """Decode one JT/T 808 frame and print it as JSON."""
    from data.feeds.jt808 import Jt808Error, decode_hex

    try:
        typer.echo(json.dumps(decode_hex(frame_hex), ensure_ascii=False, indent=2))
    except Jt808Error as exc:
        raise UserError(f"not a valid JT/T 808 frame: {exc}") from exc


@jt808_cli.command("serve")
def jt808_serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port for terminals")] = None,
) -> None:
    """Run the JT/T 808 gateway: terminals register, authenticate and report; pings go to the store."""
    from data.feeds.gateway import run_gateway

    settings = _settings(ctx)
    stats = run_gateway(settings.resolved_database_url, _gateway_settings(settings, host, port))
    typer.echo(json.dumps(stats, ensure_ascii=False, default=str))


@jt808_cli.command("stats")
def jt808_stats(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Feed health of the running gateway: terminals, reports/s, rejections by reason, queues."""
    from data.feeds.gateway import fetch_stats, format_stats

    settings = _settings(ctx)
    try:
        stats = fetch_stats("127.0.0.1", settings.jt808_stats_port)
    except OSError as exc:
        raise UserError(f"no gateway answers on port {settings.jt808_stats_port}: {exc}") from exc
    typer.echo(json.dumps(stats, ensure_ascii=False, default=str) if as_json else format_stats(stats))


@rules_cli.command("run")
def rules_run(
    ctx: typer.Context,
    tracks: Annotated[Path, typer.Option("--tracks", help="CSV or Parquet: vehicle_id, time, lon, lat[, speed_kmh, heading, alarm]")],
    out: Annotated[Path, typer.Option("--out", help="events file: .csv, .parquet or .jsonl")],
) -> None:
    """Run every rule over a track file against the stored world and write the events."""
    from data.tracks import EVENT_SUFFIXES, read_tracks, write_events
    from spatial.rules.engine import Engine

    if out.suffix.lower() not in EVENT_SUFFIXES:
        raise UserError(f"--out must end in one of {', '.join(sorted(EVENT_SUFFIXES))}, got {out.name!r}")
    pings = read_tracks(tracks)
    engine = Engine(_load_world(_settings(ctx)))
    events = engine.run(pings)
    write_events(events, out)
    summary = {"pings": len(pings), "released": engine.released_count, "events": len(events),
               "dropped": engine.drop_counts}
    typer.echo(json.dumps(summary, ensure_ascii=False))


@rules_cli.command("settings")
def rules_settings(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every threshold of every rule, with its unit and the regulation or default behind it."""
    from spatial.rules.engine import engine_settings_rows
    from spatial.rules.points import point_settings_rows

    rows = engine_settings_rows() + point_settings_rows()
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
    else:
        for row in rows:
            typer.echo(f"{row['rule']}.{row['name']} = {row['value']} {row['unit']}  — {row['source']}")


@bench_cli.command("ingest")
def bench_ingest(
    connections: Annotated[int, typer.Option(help="concurrent terminal connections")] = 2000,
    reports_per_s: Annotated[float, typer.Option(help="total reports per second")] = 5000.0,
    duration_s: Annotated[float, typer.Option(help="seconds of load")] = 60.0,
) -> None:
    """JT/T 808 ingest: a load generator in its own process against the gateway."""
    from bench.ingest import run_ingest_bench

    run_ingest_bench(connections=connections, reports_per_s=reports_per_s, duration_s=duration_s)


@bench_cli.command("rules")
def bench_rules(
    seed: Annotated[int, typer.Option(help="demo world and fleet-day seed")] = 7,
    scale: Annotated[float, typer.Option(help="fraction of Ningbo's fleet")] = 1.0,
    hours: Annotated[float, typer.Option(help="hours of the fleet day")] = 24.0,
    copies: Annotated[int, typer.Option(help="fleet multiple streamed in chunks")] = 10,
) -> None:
    """The rule engine: pings/s/core on a fleet day, ratios against GeoPandas and MovingPandas, memory."""
    from bench.rules import run_rules_bench

    run_rules_bench(seed=seed, scale=scale, hours=hours, copies=copies)


def main() -> None:
    import click
    from pydantic import ValidationError

    from data.exchange import ExchangeError
    from data.store import SchemaBehindError, StoreError
    from data.tracks import TrackFileError

    try:
        cli(standalone_mode=False)
    except click.ClickException as exc:  # usage errors: click prints them itself
        exc.show()
        sys.exit(exc.exit_code)
    except (UserError, SchemaBehindError, StoreError, ExchangeError, TrackFileError) as exc:
        typer.echo(f"hazmap: {exc}", err=True)
        sys.exit(2)
    except ValidationError as exc:
        typer.echo(f"hazmap: bad settings (HAZMAP_* environment or hazmap.toml):\n{exc}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.exit(130)
