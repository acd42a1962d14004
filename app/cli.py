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
import app.cli_chemicals  # noqa: E402, F401  (adds `hazmap chemicals` to cli)
from app.cli_incidents import incidents_cli  # noqa: E402  (imports app.cli only inside its commands)
cli.add_typer(incidents_cli, name="incidents")
from app.cli_deliveries import deliveries_cli  # noqa: E402  (also adds `hazmap incidents text`)
cli.add_typer(deliveries_cli, name="deliveries")
from app.cli_people import audit_command, users_cli  # noqa: E402  (imports app.cli only inside its commands)
cli.add_typer(users_cli, name="users")
cli.command("audit")(audit_command)


class UserError(Exception):
    """An error the operator can fix; printed without a traceback."""


def _settings(ctx: typer.Context) -> Settings:
    return ctx.find_root().obj


@cli.callback()
def _root(ctx: typer.Context, verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    from app.server import configure_logging

    if ctx.obj is None:
        ctx.obj = Settings()
    configure_logging(ctx.obj.log_format, verbose=verbose)  # text or JSON lines, with request ids


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
    from app.cli_people import _cli_actor
    from data.people import PeopleStore

    details = {"seed": int(seed), "scale": float(scale), "routing": int(len(world.routing))}
    try:  # a new world is a new routing table: audited in the transaction that stores it
        store.replace_world(world, audit=lambda connection: PeopleStore.audit(
            connection, _cli_actor(), "world.build", "demo", details=details))
    finally:
        store.close()
    typer.echo(json.dumps(world.counts(), ensure_ascii=False))


@world_cli.command("export")
def world_export(ctx: typer.Context, out: Annotated[Path, typer.Option("--out", help="folder to write")]) -> None:
    """Write the stored world as hazmap's exchange format: one GeoJSON per layer (WGS-84)."""
    from data.exchange import export_world

    paths = export_world(_load_world(_settings(ctx)), out)
    _audit_cli(_settings(ctx), "export", str(out), {"what": "world", "files": len(paths)})
    typer.echo(f"wrote {len(paths)} files to {out}")


def _audit_cli(settings: Settings, action: str, target: str, details: dict | None = None) -> None:
    """An audit row for a change or export made from the command line (app/cli_people.py)."""
    from app.cli_people import _cli_actor
    from data.people import PeopleStore

    store = _open_store(settings)
    try:
        PeopleStore(store).record(_cli_actor(), action, target, details=details)
    finally:
        store.close()


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
    # the world carries the departments and the routing table: a routing change, audited in the
    # transaction that replaces the world (both land or neither)
    from app.cli_people import _cli_actor
    from data.people import PeopleStore

    details = {"routing": int(len(world.routing)), "departments": int(len(world.departments))}
    try:
        store.replace_world(world, audit=lambda connection: PeopleStore.audit(
            connection, _cli_actor(), "world.import", str(source), details=details))
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


def _monitor_settings(settings: Settings, *, gateway: bool, mqtt: bool):
    from app.live import MonitorSettings

    return MonitorSettings(
        gateway=_gateway_settings(settings) if gateway else None,
        mqtt_url=settings.mqtt_url if mqtt else None,
        clock=settings.live_clock,
        trail_s=settings.trail_s,
    )


def _sim_settings(settings: Settings, *, seed: int | None = None, start: str | None = None,
                  hours: float | None = None, stage_share: float | None = None):
    import pandas as pd

    from data.sim.settings import DEMO_DAY, SimSettings

    text = settings.sim_start if start is None else start
    try:
        begin = DEMO_DAY + pd.Timedelta(hours=6) if not text else pd.Timestamp(text)
    except ValueError as exc:
        raise UserError(f"--start / HAZMAP_SIM_START must be an ISO 8601 time, got {text!r}") from exc
    if begin.tzinfo is None:
        raise UserError(f"--start / HAZMAP_SIM_START needs a UTC offset (e.g. +08:00), got {text!r}")
    share = settings.sim_stage_share if stage_share is None else stage_share
    try:
        return SimSettings(seed=settings.sim_seed if seed is None else seed, start=begin,
                           hours=settings.sim_hours if hours is None else hours,
                           stage_share=share, point_stage_share=share)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def _serve(settings: Settings, host: str | None, port: int | None, *, simulate: bool = False) -> None:
    from app.live import LiveMonitor
    from app.server import serve as serve_wsgi
    from app.webapp import create_app
    from data.feeds.mqtt import broker_available

    world = _load_world(settings)
    mqtt = settings.mqtt_in_serve
    if mqtt and simulate and not broker_available(settings.mqtt_url):
        # a fresh laptop has no broker: the demo feeds its own readings straight in (said once)
        log.warning("no MQTT broker at %s: the simulated monitoring-point readings go to the monitor "
                    "in-process", settings.mqtt_url)
        mqtt = False
    try:
        monitor = LiveMonitor(world, settings.resolved_database_url,
                              _monitor_settings(settings, gateway=settings.jt808_in_serve, mqtt=mqtt)).start()
    except RuntimeError as exc:
        raise UserError(f"{exc} (set HAZMAP_JT808_PORT, or HAZMAP_JT808_IN_SERVE=false to run without it)") from exc
    channels = None
    simulator = sender = responders = None
    briefings = None
    people_store = None
    try:
        from data.people import PeopleStore

        people_store = _open_store(settings)  # users, tokens, the audit log (app/auth.py, app/api/)
        web = create_app(settings, world, world_version=world.fingerprint(), live=monitor,
                         people=PeopleStore(people_store))
        from app.cli_deliveries import start_channels

        channels = start_channels(settings, monitor, demo=simulate)  # webhooks, SMS, driver messages
        from app.briefing_scheduler import start_briefings

        briefings = start_briefings(settings, world)  # yesterday's briefing each morning (docs/reports.md)
        if simulate:
            simulator, sender = _start_simulation(settings, world, monitor, readings_via_mqtt=mqtt)
            responders = _start_responders(settings, world, monitor, simulator)
        # SIGTERM (a service manager stopping hazmap) unwinds like Ctrl-C: the web server finishes
        # the requests in flight, then the gateway hands its last reports to the store.
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
        serve_wsgi(web.server, host=host or settings.host, port=settings.port if port is None else port,
                   threads=settings.http_threads, connection_limit=settings.http_connection_limit,
                   channel_timeout_s=settings.http_channel_timeout_s, trusted_proxy=settings.trusted_proxy)
    finally:
        if briefings is not None:
            briefings.stop()
        if responders is not None:
            responders.stop()
        if simulator is not None:
            simulator.stop()
        for s in sender or ():
            s.close()
        if channels is not None:  # before the gateway goes: a message in flight gets its answer
            channels.stop()
        monitor.stop()
        log.info("live monitor stopped")
        if people_store is not None:
            people_store.close()


class _RespondersRun:
    """The demo's simulated responders (data/sim/responders.py) on their own store connection."""

    def __init__(self, runner, store):
        self.runner, self.store = runner, store

    def stop(self) -> None:
        self.runner.stop()
        self.store.close()
        log.info("simulated responders: %s", self.runner.totals)


def _start_responders(settings: Settings, world, monitor, simulator):
    """Departments and enterprises answering the demo's incidents on the simulation's clock;
    None when the monitor keeps no incidents."""
    from data.incidents import IncidentStore
    from data.sim.responders import ResponderRunner, Responders

    incident_settings = monitor.settings.incidents
    if incident_settings is None:
        return None
    store = _open_store(settings)
    responders = Responders(IncidentStore(store, world, incident_settings))
    runner = ResponderRunner(responders, clock=lambda: simulator.progress.sim_ms).start()
    log.info("simulated responders sign for, dispose of and close the incidents")
    return _RespondersRun(runner, store)


def _plan(world, sim):
    from data.sim.fleet import plan_fleet
    from data.sim.points import plan_points

    try:
        return plan_fleet(world, sim), plan_points(world, sim)
    except ValueError as exc:  # the world cannot carry the simulation asked for
        raise UserError(f"cannot simulate on this world: {exc}") from exc


def _start_simulation(settings: Settings, world, monitor, *, readings_via_mqtt: bool):
    """The demo's traffic: trucks through the app's own JT/T 808 gateway (in-process when the
    gateway is off), readings through the broker (in-process without one)."""
    from data.sim.runner import Simulator
    from data.sim.senders import Jt808Sender, MqttReadingSender

    sim = _sim_settings(settings)
    fleet, points = _plan(world, sim)
    senders = []
    ping_sink, reading_sink = monitor.submit_pings, monitor.submit_readings
    if readings_via_mqtt:  # first: connecting thousands of terminals below keeps the process busy
        try:
            mqtt = MqttReadingSender(settings.mqtt_url, timeout_s=30.0).start()
        except ConnectionError as exc:
            log.warning("the MQTT broker at %s took no publisher (%s): the simulated readings go to the "
                        "monitor in-process", settings.mqtt_url, exc)
        else:
            senders.append(mqtt)
            reading_sink = mqtt.send
    if monitor.gateway is not None:
        jt808 = Jt808Sender("127.0.0.1", monitor.gateway.port, world.vehicles).start(fleet.vehicle_ids)
        senders.append(jt808)
        ping_sink = lambda batch: jt808.send(batch, wait_acked=True)  # noqa: E731
    simulator = Simulator(fleet, points, ping_sink=ping_sink, reading_sink=reading_sink,
                          time_factor=settings.sim_time_factor).start()
    log.info("simulating %d trucks and %d points from %s at %g× (%d staged behaviours)", len(fleet.vehicle_ids),
             len(points.point_ids), sim.start.tz_convert("Asia/Shanghai"), settings.sim_time_factor,
             len(fleet.staged) + len(points.staged))
    return simulator, senders


@cli.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="listen port")] = None,
) -> None:
    """Start the wall-screen app on the stored world, with the live feeds and rules."""
    _serve(_settings(ctx), host, port)


@cli.command()
def demo(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="listen port")] = None,
) -> None:
    """Build the demo world if the store has none, then start the app with simulated traffic."""
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
    _print_demo_logins(settings)
    _serve(settings, host, port, simulate=settings.sim_in_demo)


def _print_demo_logins(settings: Settings) -> None:
    """One user per role, made on the demo's first start; their passwords are printed once."""
    from app.cli_people import demo_users

    store = _open_store(settings)
    try:
        from types import SimpleNamespace

        made = demo_users(store, SimpleNamespace(**{n: store.read_layer(n) for n in
                                                    ("departments", "vehicles", "entities")}))
    finally:
        store.close()
    if made:
        typer.echo("demo logins (passwords shown once; `hazmap users reset-password NAME` for a new one):")
        for name, role, password in made:
            typer.echo(f"  {name:<6} {role:<13} {password}")


@cli.command()
def simulate(
    ctx: typer.Context,
    via: Annotated[Literal["jt808", "direct"], typer.Option(
        help="jt808: trucks over TCP to a running gateway (hazmap serve / jt808 serve) and readings to the "
             "MQTT broker; direct: straight into a live monitor in this process, events stored")] = "jt808",
    time_factor: Annotated[float | None, typer.Option(help="simulated seconds per wall second")] = None,
    lockstep: Annotated[bool, typer.Option(
        "--lockstep", help="as fast as the gateway acknowledges (overrides --time-factor)")] = False,
    hours: Annotated[float | None, typer.Option(help="simulated hours")] = None,
    start: Annotated[str | None, typer.Option(help="simulated start, ISO 8601 with offset")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of traffic and readings")] = None,
    stage_share: Annotated[float | None, typer.Option(help="share of trucks/points staged per violation kind")] = None,
    staged_out: Annotated[Path | None, typer.Option(help="write the staged behaviours (the ground truth) as CSV")] = None,
) -> None:
    """Drive the stored world's fleet along its waybills and publish sensor readings, staging violations."""
    import pandas as pd

    settings = _settings(ctx)
    world = _load_world(settings)
    sim = _sim_settings(settings, seed=seed, start=start, hours=hours, stage_share=stage_share)
    fleet, points = _plan(world, sim)
    staged = pd.concat([fleet.staged, points.staged], ignore_index=True)
    if staged_out is not None:
        staged.to_csv(staged_out, index=False)
    factor = None if lockstep else (settings.sim_time_factor if time_factor is None else time_factor)
    if via == "direct":
        _simulate_direct(settings, world, fleet, points, staged, factor)
    else:
        _simulate_jt808(settings, world, fleet, points, factor)


def _simulate_jt808(settings: Settings, world, fleet, points, factor: float | None) -> None:
    from data.feeds.mqtt import broker_available
    from data.sim.runner import Simulator
    from data.sim.senders import Jt808Sender, MqttReadingSender

    if not broker_available(settings.mqtt_url):
        raise UserError(f"no MQTT broker answers at {settings.mqtt_url} (HAZMAP_MQTT_URL); "
                        "or run `hazmap simulate --via direct`")
    host = "127.0.0.1" if settings.jt808_host in ("0.0.0.0", "") else settings.jt808_host
    try:
        jt808 = Jt808Sender(host, settings.jt808_port, world.vehicles).start(fleet.vehicle_ids)
    except (OSError, RuntimeError) as exc:
        raise UserError(f"no JT/T 808 gateway takes terminals at {host}:{settings.jt808_port} "
                        f"(start `hazmap serve` or `hazmap jt808 serve`): {exc}") from exc
    with jt808, MqttReadingSender(settings.mqtt_url).start() as mqtt:
        simulator = Simulator(fleet, points, ping_sink=lambda b: jt808.send(b, wait_acked=True),
                              reading_sink=mqtt.send, time_factor=factor)
        progress = _run_reporting(simulator)
        typer.echo(json.dumps({"pings": progress.pings, "readings": progress.readings,
                               "finished": progress.finished, "jt808": jt808.stats(), "mqtt": mqtt.stats()},
                              ensure_ascii=False, default=str))


def _simulate_direct(settings: Settings, world, fleet, points, staged, factor: float | None) -> None:
    from app.live import LiveMonitor
    from data.sim.check import cleaned_expected, match_staged, summary
    from data.sim.runner import Simulator

    store = _open_store(settings)
    after = store.read_events(limit=1)
    store.close()
    first_seq = int(after["seq"].iloc[-1]) if len(after) else 0
    with LiveMonitor(world, settings.resolved_database_url,
                     _monitor_settings(settings, gateway=False, mqtt=False)) as monitor:
        simulator = Simulator(fleet, points, ping_sink=monitor.submit_pings, reading_sink=monitor.submit_readings,
                              time_factor=factor)
        progress = _run_reporting(simulator)
        monitor.wait_idle(600)
        dropped = monitor.drop_counts
    store = _open_store(settings)
    try:
        events = store.read_events(after_seq=first_seq)
    finally:
        store.close()
    matched = match_staged(staged, events)
    table = summary(matched)
    for row in table.itertuples():
        typer.echo(f"{row.kind:<28} {row.rule:<26} staged {row.staged:>3}  found {row.found:>3}")
    for reason, count in cleaned_expected(staged).items():
        typer.echo(f"{reason:<28} {'(cleaned)':<26} staged {count:>3}  dropped {dropped.get(reason, 0):>3}")
    typer.echo(json.dumps({"pings": progress.pings, "readings": progress.readings, "events": len(events),
                           "finished": progress.finished}, ensure_ascii=False))


def _run_reporting(simulator):
    """Run in this thread, logging progress every ~10 s of wall time; Ctrl-C stops cleanly."""
    import threading
    import time

    import pandas as pd

    done = threading.Event()

    def report():
        while not done.wait(10.0):
            p = simulator.progress
            log.info("simulated up to %s: %d pings, %d readings",
                     pd.Timestamp(p.sim_ms, unit="ms", tz="UTC").tz_convert("Asia/Shanghai"), p.pings, p.readings)

    threading.Thread(target=report, daemon=True).start()
    started = time.monotonic()
    try:
        simulator.start()
        while not simulator.join(0.5):
            pass
    except KeyboardInterrupt:
        simulator.stop()
    finally:
        done.set()
    log.info("simulation ran %.1f s of wall time", time.monotonic() - started)
    return simulator.progress


@cli.command()
def events(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(
        help="ISO 8601 time, or a duration (30m, 2h, 1d) back from the newest stored event")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 time (exclusive)")] = None,
    rule: Annotated[str | None, typer.Option(help="only this rule")] = None,
    subject: Annotated[str | None, typer.Option(help="only this truck or point id")] = None,
    limit: Annotated[int, typer.Option(help="at most this many (the newest)")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line, evidence included")] = False,
) -> None:
    """The rules' events, oldest first, times in Asia/Shanghai."""
    store = _open_store(_settings(ctx))
    try:
        since_ts = _since(since, store)
        until_ts = _parse_time(until, "--until") if until else None
        frame = store.read_events(since=since_ts, until=until_ts, rule=rule, subject_id=subject, limit=limit)
    finally:
        store.close()
    for row in frame.to_dict("records"):
        if as_json:
            typer.echo(json.dumps({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()},
                                  ensure_ascii=False, default=str))
        else:
            when = row["event_time"].tz_convert("Asia/Shanghai").strftime("%Y-%m-%d %H:%M:%S")
            typer.echo(f"{row['seq']:>7} {when} {row['phase']:<6} {row['rule']:<26} {row['subject_id']:<14} "
                       f"sev {row['severity']}  {row['episode_id']}")
    if not as_json:
        typer.echo(f"{len(frame)} events", err=True)


def _parse_time(text: str, option: str):
    import pandas as pd

    try:
        ts = pd.Timestamp(text)
    except ValueError as exc:
        raise UserError(f"{option} must be an ISO 8601 time, got {text!r}") from exc
    return ts.tz_localize("Asia/Shanghai") if ts.tzinfo is None else ts


def _since(text: str | None, store):
    """An ISO time, or a duration back from the newest stored event: the feed's clock, not the
    wall clock (a simulated day runs on the demo world's date)."""
    import re

    import pandas as pd

    if text is None:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text.strip())
    if match is None:
        return _parse_time(text, "--since")
    newest = store.newest_event_time()
    if newest is None:
        return None
    return newest - pd.Timedelta(float(match.group(1)), unit=match.group(2))


@cli.command("settings")
def show_settings(ctx: typer.Context, markdown: Annotated[bool, typer.Option(
        "--markdown", help="the reference of every setting (docs/settings.md) instead")] = False) -> None:
    """Print the settings in force (defaults <- hazmap.toml <- HAZMAP_* environment)."""
    if markdown:
        from app.settings_doc import render

        typer.echo(render(), nl=False)
        return
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


# The benches' options are defined once, by their own argparse parsers (`python -m bench.…`):
# these commands hand every argument through, `--help` included.
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@bench_cli.command("ingest", context_settings=_PASS_THROUGH, add_help_option=False)
def bench_ingest(ctx: typer.Context) -> None:
    """JT/T 808 ingest: a load generator in its own process against the gateway (options: --help)."""
    from bench.ingest import main as ingest_main

    ingest_main(list(ctx.args), prog="hazmap bench ingest")


@bench_cli.command("rules", context_settings=_PASS_THROUGH, add_help_option=False)
def bench_rules(ctx: typer.Context) -> None:
    """The rule engine: pings/s/core on a fleet day, ratios against GeoPandas and MovingPandas, memory
    (options: --help)."""
    from bench.rules import main as rules_main

    rules_main(list(ctx.args), prog="hazmap bench rules")


@bench_cli.command("incidents", context_settings=_PASS_THROUGH, add_help_option=False)
def bench_incidents(ctx: typer.Context) -> None:
    """Incidents: a year of alerts applied, handled and queried, against the raw insert rate (options: --help)."""
    from bench.incidents import main as incidents_main

    incidents_main(list(ctx.args), prog="hazmap bench incidents")


@bench_cli.command("drilldown", context_settings=_PASS_THROUGH, add_help_option=False)
def bench_drilldown(ctx: typer.Context) -> None:
    """Drill-down: a panel's data and figures per kind against the attribute panel, a 24 h track (options: --help)."""
    from bench.drilldown import main as drilldown_main

    drilldown_main(list(ctx.args), prog="hazmap bench drilldown")


@bench_cli.command("map", context_settings=_PASS_THROUGH, add_help_option=False)
def bench_map(ctx: typer.Context) -> None:
    """The wall in headless Chromium with every layer on, against GeoJSON circle markers (options: --help)."""
    from bench.map import main as map_main

    map_main(list(ctx.args), prog="hazmap bench map")


import app.cli_grid  # noqa: E402,F401  (registers `hazmap grid` and `hazmap bench grid`)
import app.cli_reports  # noqa: E402,F401  (registers `hazmap snapshot`, `hazmap briefing`, `hazmap bench snapshot`)


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
