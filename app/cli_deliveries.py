"""`hazmap deliveries …` (subscriptions, the delivery log, dead letters, resend, a stand-alone
sender) and `hazmap incidents text` (a JT/T 808 message to the incident's truck).

Registered on the root command by app/cli.py. Bad input prints one line and changes nothing.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from app.cli_incidents import incidents_cli

deliveries_cli = typer.Typer(help="Deliveries: webhooks, SMS gateways and driver messages; the log, dead letters.",
                             no_args_is_help=True)


def channel_settings(settings):
    """app.settings.Settings -> the sender's ChannelSettings."""
    from data.channels import ChannelSettings

    return ChannelSettings(max_attempts=settings.delivery_max_attempts, backoff_s=settings.delivery_backoff_s,
                           backoff_max_s=settings.delivery_backoff_max_s,
                           webhook_timeout_s=settings.webhook_timeout_s,
                           driver_levels=tuple(settings.driver_text_levels),
                           driver_text_ttl_s=settings.driver_text_ttl_s)


class _Deliveries:
    """A DeliveryStore for one command; ChannelError becomes the CLI's one-line user error."""

    def __init__(self, ctx: typer.Context):
        from app.cli import _open_store, _settings
        from data.channels.store import DeliveryStore

        self.settings = _settings(ctx)
        self.store = _open_store(self.settings)
        self.deliveries = DeliveryStore(self.store, channel_settings(self.settings))

    def __enter__(self):
        return self.deliveries

    def __exit__(self, exc_type, exc, tb):
        from app.cli import UserError
        from data.channels import ChannelError

        self.store.close()
        if isinstance(exc, ChannelError):
            raise UserError(str(exc)) from exc
        return False


def _records(frame) -> list[dict]:
    from app.cli_incidents import _records as records

    return records(frame)


def _echo_json(value) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


def _local(ts) -> str:
    from app.cli_incidents import _local as local

    return local(ts)


DEMO_SUBSCRIPTION = "SUB-DEMO-RECEIVER"


class Channels:
    """The sender inside `hazmap serve` / `demo` (and, for the demo, its local receiver):
    start with the live monitor (its gateway carries the driver messages), stop with it."""

    FIGURES_TTL_S = 2.0  # the header, /api/ready and /metrics ask often; the store is asked at most this often

    def __init__(self, settings, monitor=None, *, demo: bool = False):
        import secrets
        import threading

        from app.cli import _open_store
        from data.channels.jt808_text import Jt808Channel
        from data.channels.receiver import Receiver
        from data.channels.sender import Sender
        from data.channels.store import DeliveryStore

        self.store = _open_store(settings)
        cs = channel_settings(settings)
        gateway = getattr(monitor, "gateway", None)
        jt808 = Jt808Channel(gateway, monitor.gateway_loop, cs.driver_answer_timeout_s) if gateway is not None else None
        self.receiver = None
        if demo and settings.demo_receiver:
            secret = secrets.token_hex(16)
            self.receiver = Receiver(secret=secret).start()
            DeliveryStore(self.store, cs).subscribe(
                name="demo receiver (loopback)", kind="upstream", url=self.receiver.url, levels=["red", "orange"],
                secret=secret, subscription_id=DEMO_SUBSCRIPTION)
        self.sender = Sender(self.store, cs, jt808=jt808).start()
        self._lock = threading.Lock()
        self._figures: tuple[float, dict] | None = None

    def figures(self) -> dict:
        """The delivery log's figures (DeliveryStore.figures), the sender's and the demo receiver's."""
        import time

        with self._lock:
            now = time.monotonic()
            if self._figures is None or now - self._figures[0] >= self.FIGURES_TTL_S:
                figures = {**self.sender.deliveries.figures(), "sender": self.sender.stats()}
                if self.receiver is not None:
                    figures["demo_receiver"] = {**self.receiver.stats(), "url": self.receiver.url}
                self._figures = (now, figures)
            return self._figures[1]

    def stop(self) -> None:
        self.sender.stop()
        if self.receiver is not None:
            self.receiver.stop()
        self.store.close()


def start_channels(settings, monitor, *, demo: bool = False) -> Channels | None:
    """`hazmap serve` / `demo`: the sender (and the demo's receiver), hung on the monitor so its
    figures reach the screen's header, /api/ready and /metrics; None when turned off."""
    if not settings.channels_in_serve:
        return None
    channels = Channels(settings, monitor, demo=demo)
    monitor.channels = channels
    return channels


@deliveries_cli.command("list")
def deliveries_list(
    ctx: typer.Context,
    failed: Annotated[bool, typer.Option("--failed",
                                         help="only the dead letters (failed after the last retry)")] = False,
    status: Annotated[str | None, typer.Option(help="pending | sent | dead")] = None,
    limit: Annotated[int, typer.Option(help="at most this many (the newest)")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Deliveries, newest first: channel, target, incident, event, status, attempts, last error."""
    with _Deliveries(ctx) as deliveries:
        frame = deliveries.list(failed=failed, status=status, limit=limit)
    if as_json:
        for row in _records(frame.drop(columns=["payload"])):
            _echo_json(row)
        return
    for row in frame.itertuples():
        typer.echo(f"{row.delivery_id}  {row.status:<7} {row.channel:<7} {row.event:<9} {row.incident_id or '-':<21} "
                   f"{row.attempts:>2}×  {_local(row.last_attempt_at)}  {row.target}"
                   + (f"  ({row.last_error})" if row.last_error else ""))


@deliveries_cli.command("log")
def deliveries_log(
    ctx: typer.Context,
    delivery_id: Annotated[str | None, typer.Argument(help="one delivery's attempts")] = None,
    limit: Annotated[int, typer.Option(help="at most this many (the newest)")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """The delivery log: every attempt (time, channel, target, status, answer, latency), newest first."""
    with _Deliveries(ctx) as deliveries:
        frame = deliveries.log(delivery_id, limit=limit)
    if as_json:
        for row in _records(frame):
            _echo_json(row)
        return
    for row in frame.itertuples():
        latency = "-" if row.latency_ms is None or row.latency_ms != row.latency_ms else f"{row.latency_ms:.0f} ms"
        typer.echo(f"{_local(row.at)}  {row.delivery_id} #{row.attempt}  {row.channel:<7} {row.status:<14} "
                   f"{'' if row.code is None else row.code!s:<4} {latency:>9}  {row.target}  "
                   f"{(row.answer or '')[:80]}")


@deliveries_cli.command("resend")
def deliveries_resend(
    ctx: typer.Context,
    delivery_ids: Annotated[list[str] | None, typer.Argument(help="failed deliveries to send again")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="every dead letter")] = False,
    actor: Annotated[str, typer.Option("--as", help="who resends (recorded on the dead letter)")] = "operator",
) -> None:
    """Send failed deliveries again, with the same delivery ids (receivers dedupe by them)."""
    from app.cli import UserError

    if bool(delivery_ids) == all_failed:
        raise UserError("give delivery ids or --all-failed (one of the two)")
    with _Deliveries(ctx) as deliveries:
        ids = deliveries.resend(delivery_ids, all_failed=all_failed, actor=actor)
    _echo_json({"resent": ids})


@deliveries_cli.command("subscribe")
def deliveries_subscribe(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="a label")],
    kind: Annotated[str, typer.Option(help="department | enterprise | upstream")],
    url: Annotated[str, typer.Option(help="where to POST")],
    subscriber: Annotated[str | None, typer.Option(help="the department (DEPT-…) or enterprise (ENT-…)")] = None,
    level: Annotated[list[str] | None, typer.Option(help="levels wanted (repeat): red orange yellow blue")] = None,
    rule: Annotated[list[str] | None, typer.Option(help="rules wanted (repeat)")] = None,
    event: Annotated[list[str] | None, typer.Option(
        help="transitions wanted (repeat); upstream default: opened escalated signed disposed closed")] = None,
    secret: Annotated[str | None, typer.Option(help="HMAC-SHA256 key of the X-Hazmap-Signature header")] = None,
    profile: Annotated[str, typer.Option(help="webhook | sms")] = "webhook",
    body_template: Annotated[str | None, typer.Option(help="sms: the provider's body with $text, $incident_id, "
                                                           "$level_zh, $delivery_id … (docs/channels.md)")] = None,
    content_type: Annotated[str | None, typer.Option(help="Content-Type of the body")] = None,
    header: Annotated[list[str] | None, typer.Option(help="extra header NAME=VALUE (repeat)")] = None,
    subscription_id: Annotated[str | None, typer.Option("--id", help="replace this subscription")] = None,
) -> None:
    """Add a subscription (its id is printed)."""
    from app.cli import UserError

    headers = {}
    for item in header or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--header must be NAME=VALUE, got {item!r}")
        headers[key.strip()] = value
    with _Deliveries(ctx) as deliveries:
        sid = deliveries.subscribe(name=name, kind=kind, url=url, subscriber_id=subscriber, levels=level, rules=rule,
                                   events=event, secret=secret, profile=profile, body_template=body_template,
                                   content_type=content_type, headers=headers or None, subscription_id=subscription_id)
    _echo_json({"subscription_id": sid})


@deliveries_cli.command("subscriptions")
def deliveries_subscriptions(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """The subscriptions (secrets shown as set or not)."""
    with _Deliveries(ctx) as deliveries:
        frame = deliveries.subscriptions()
    frame["secret"] = frame["secret"].notna()
    if as_json:
        for row in _records(frame):
            _echo_json(row)
        return
    for row in frame.itertuples():
        wants = ",".join(row.levels or ["all levels"]) + " " + ",".join(row.rules or ["all rules"])
        typer.echo(f"{row.id}  {row.kind:<10} {row.subscriber_id or '-':<14} {row.profile:<7} {wants}  {row.url}"
                   + ("" if row.enabled else "  (disabled)"))


@deliveries_cli.command("unsubscribe")
def deliveries_unsubscribe(ctx: typer.Context, subscription_id: Annotated[str, typer.Argument()]) -> None:
    """Remove a subscription (its pending deliveries fail: nobody to send them to)."""
    with _Deliveries(ctx) as deliveries:
        deliveries.unsubscribe(subscription_id)
    _echo_json({"removed": subscription_id})


@deliveries_cli.command("run")
def deliveries_run(
    ctx: typer.Context,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="stop once nothing is left to send")] = False,
    timeout: Annotated[float, typer.Option(help="--until-idle: give up after this many seconds")] = 600.0,
) -> None:
    """Run the sender without the app (webhooks and SMS; driver messages need the gateway in
    `hazmap serve`). Waits while another sender holds the lease."""
    import signal
    import sys

    from data.channels.sender import Sender

    from app.cli import UserError, _open_store, _settings

    settings = _settings(ctx)
    store = _open_store(settings)
    sender = Sender(store, channel_settings(settings))
    try:
        if until_idle:
            if not sender.drain(timeout):
                raise UserError(f"deliveries still pending after {timeout:g} s (hazmap deliveries list)")
        else:
            signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
            sender.start()
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
    finally:
        sender.stop()
        store.close()
    _echo_json(sender.stats())


@incidents_cli.command("text")
def incidents_text(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="the incident (its truck gets the message)")],
    message: Annotated[str, typer.Option("--message", help="the text (GBK: Chinese, ASCII)")],
    actor: Annotated[str, typer.Option("--as", help="who sends it (recorded in the incident's history)")],
) -> None:
    """Send a JT/T 808 text message (0x8300) to the incident's truck; the running app's sender
    delivers it (when the terminal is connected, or when it next connects) and records the
    terminal's answer in the incident's history."""
    with _Deliveries(ctx) as deliveries:
        did = deliveries.request_text(incident_id, message, actor)
    _echo_json({"delivery_id": did, "incident_id": incident_id})
