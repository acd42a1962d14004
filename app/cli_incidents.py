"""`hazmap incidents …`: import events, list, show, sign for, dispose, close, supervise, KPIs.

Registered on the root command by app/cli.py. Every change is one store transaction: bad input
(an unknown id, an illegal transition, a malformed file) prints one line and changes nothing.
NAME (`--as`) is a checked user (app/cli_people.checked_user): it must exist, be enabled and have a role
that may act; a department or enterprise user acts on its own recipient row. Recorded in the history
and in the audit log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

incidents_cli = typer.Typer(help="Incidents: the alert loop (pushed → signed → disposed → closed).",
                            no_args_is_help=True)


def incident_settings(settings):
    """app.settings.Settings -> the pure IncidentSettings."""
    from spatial.incidents.lifecycle import IncidentSettings

    return IncidentSettings(sign_deadline_s=tuple(settings.incident_sign_deadlines_s),
                            reopen_window_s=settings.incident_reopen_window_s,
                            quick_close_s=settings.incident_quick_close_s)


class _Incidents:
    """An IncidentStore for one command (the world loaded only when routing needs it);
    IncidentError and StoreError become the CLI's one-line user errors."""

    def __init__(self, ctx: typer.Context, *, world: bool = False, actor: str | None = None,
                 action: str = "incident.act"):
        from app.cli import _load_world, _open_store, _settings
        from data.incidents import IncidentStore

        settings = _settings(ctx)
        self.world = _load_world(settings) if world else None
        self.store = _open_store(settings)
        self.incidents = IncidentStore(self.store, self.world, incident_settings(settings))
        self.user = None
        if actor is not None:  # `--as NAME`: a checked user (app/permissions.py), its actions audited
            from app.cli_people import checked_user
            from data.people import Actor, PeopleStore

            try:
                self.user = checked_user(self.store, actor, action)
            except Exception:
                self.store.close()
                raise
            self.incidents.audit = PeopleStore(self.store).audit_hook(Actor(self.user.name, self.user.role, "cli"))

    def recipient(self, given: str | None) -> str | None:
        """The recipient row acted on: a department or enterprise user's own, whatever --for says."""
        from app.cli import UserError

        own = self.user.recipient_id if self.user is not None else None
        if own is None:
            return given
        if given not in (None, own):
            raise UserError(f"--as {self.user.name} acts for {own} only, not {given}")
        return own

    def __enter__(self):
        return self.incidents

    def __exit__(self, exc_type, exc, tb):
        from app.cli import UserError
        from data.incidents import IncidentError

        self.store.close()
        if isinstance(exc, IncidentError):
            raise UserError(str(exc)) from exc
        return False


def _time(text: str | None, option: str):
    if text is None:
        return None
    from app.cli import _parse_time

    return _parse_time(text, option)


def _records(frame) -> list[dict]:
    import pandas as pd

    out = []
    for row in frame.to_dict("records"):
        out.append({k: (None if (v is None or (not isinstance(v, (dict, list)) and pd.isna(v))) else
                        v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()})
    return out


def _echo_json(value) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


def _local(ts) -> str:
    import pandas as pd

    return "-" if ts is None or pd.isna(ts) else ts.tz_convert("Asia/Shanghai").strftime("%Y-%m-%d %H:%M:%S")


@incidents_cli.command("import")
def incidents_import(
    ctx: typer.Context,
    events: Annotated[Path, typer.Option("--events", help="events file: .jsonl (hazmap events --json), .csv or "
                                                          ".parquet (hazmap rules run)")],
) -> None:
    """Apply a file's events in file order, 5,000 a transaction once all are checked; events
    applied before are counted, not doubled (so a file whose import stopped half-way is imported again)."""
    from app.cli import UserError
    from data.incidents import CHUNK_EVENTS, IncidentError, read_event_file

    try:
        frame, labels = read_event_file(events)
    except IncidentError as exc:
        raise UserError(str(exc)) from exc
    with _Incidents(ctx, world=True) as incidents:
        result = incidents.apply_events(frame, source="file", labels=labels, chunk=CHUNK_EVENTS)
    _echo_json({k: v for k, v in result.__dict__.items() if k != "last_seq"})


@incidents_cli.command("apply")
def incidents_apply(ctx: typer.Context) -> None:
    """Apply the stored events after the last applied seq (the live monitor does this itself)."""
    with _Incidents(ctx, world=True) as incidents:
        result = incidents.apply_stored_events()
    _echo_json(result.__dict__)


@incidents_cli.command("list")
def incidents_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="pushed | signed | disposed | closed")] = None,
    level: Annotated[str | None, typer.Option(help="red | orange | yellow | blue (or 1..4)")] = None,
    department: Annotated[str | None, typer.Option(help="pushed to this department (DEPT-…)")] = None,
    recipient: Annotated[str | None, typer.Option(help="pushed to this recipient (DEPT-… or ENT-…)")] = None,
    limit: Annotated[int, typer.Option(help="at most this many (the newest)")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Incidents, newest first."""
    with _Incidents(ctx) as incidents:
        frame = incidents.list(status=status, level=level, department=department, recipient_id=recipient,
                               limit=limit)
    if as_json:
        for row in _records(frame):
            _echo_json(row)
        return
    for row in frame.itertuples(index=False):
        typer.echo(f"{row.id}  {_local(row.first_time)}  {row.level:<6} {row.status:<8} {row.state:<6} "
                   f"{row.rule:<26} {row.subject_id}")
    typer.echo(f"{len(frame)} incidents", err=True)


@incidents_cli.command("show")
def incidents_show(ctx: typer.Context, incident_id: str,
                   as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One incident: its events, recipients and history."""
    with _Incidents(ctx) as incidents:
        shown = incidents.show(incident_id)
    if as_json:
        _echo_json({"incident": _records(__import__("pandas").DataFrame([shown["incident"]]))[0],
                    **{k: _records(shown[k]) for k in ("events", "recipients", "history")}})
        return
    inc = shown["incident"]
    typer.echo(f"{inc['id']}  {inc['rule']}  {inc['subject_id']}  level {inc['level']}  status {inc['status']}  "
               f"rule {inc['state']}  from {_local(inc['first_time'])}  to {_local(inc['end_time'])}  "
               f"episodes {inc['episodes']}")
    for row in shown["recipients"].itertuples(index=False):
        typer.echo(f"  → {row.recipient_id:<24} {row.state:<8} pushed {_local(row.pushed_at)}  "
                   f"deadline {_local(row.sign_deadline)}  tier {row.tier}")
    for row in shown["history"].itertuples(index=False):
        typer.echo(f"  {_local(row.at)}  {row.action:<12} {row.recipient_id or '':<24} {row.actor}"
                   + (f"  — {row.note}" if row.note else ""))


@incidents_cli.command("inbox")
def incidents_inbox(ctx: typer.Context, recipient: str,
                    show_all: Annotated[bool, typer.Option("--all", help="closed ones too")] = False,
                    as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What a department or enterprise must act on, oldest deadline first."""
    with _Incidents(ctx) as incidents:
        frame = incidents.inbox(recipient, pending_only=not show_all)
    if as_json:
        for row in _records(frame):
            _echo_json(row)
        return
    for row in frame.itertuples(index=False):
        typer.echo(f"{row.incident_id}  {row.level:<6} {row.state:<8} deadline {_local(row.sign_deadline)}  "
                   f"{row.rule:<26} {row.subject_id}")
    typer.echo(f"{len(frame)} in the inbox of {recipient}", err=True)


AsOption = Annotated[str, typer.Option("--as", help="who acts: a user (hazmap users list) whose role may do it; "
                                                   "recorded in the history and the audit log")]
ForOption = Annotated[str | None, typer.Option("--for", help="the recipient acting (DEPT-…/ENT-…); "
                                                             "needed when several are pending")]
NoteOption = Annotated[str | None, typer.Option(help="note for the record")]
AtOption = Annotated[str | None, typer.Option(help="when (ISO 8601; default now)")]


@incidents_cli.command("sign")
def incidents_sign(ctx: typer.Context, incident_ids: Annotated[list[str], typer.Argument(help="one or more ids")],
                   actor: AsOption, recipient: ForOption = None, note: NoteOption = None,
                   at: AtOption = None) -> None:
    """签收: sign for one or several incidents (all or none)."""
    with (guard := _Incidents(ctx, actor=actor)) as incidents:
        done = incidents.sign(incident_ids, guard.recipient(recipient), actor, at=_time(at, "--at"), note=note)
    for row in done.itertuples(index=False):
        typer.echo(f"{row.incident_id} {row.recipient_id}: {row.from_state} → {row.to_state}")


@incidents_cli.command("dispose")
def incidents_dispose(ctx: typer.Context, incident_id: str, actor: AsOption,
                      outcome: Annotated[str, typer.Option(help="resolved | rectified | penalised | referred | "
                                                                "false_alarm")],
                      measures: Annotated[str | None, typer.Option(help="measures taken")] = None,
                      recipient: ForOption = None, note: NoteOption = None, at: AtOption = None) -> None:
    """处置: record measures, a note (required for red and orange) and the outcome."""
    with (guard := _Incidents(ctx, actor=actor)) as incidents:
        done = incidents.dispose(incident_id, guard.recipient(recipient), actor, measures, note, outcome,
                                 at=_time(at, "--at"))
    for row in done.itertuples(index=False):
        typer.echo(f"{row.incident_id} {row.recipient_id}: {row.from_state} → {row.to_state}")


@incidents_cli.command("close")
def incidents_close(ctx: typer.Context, incident_id: str, actor: AsOption, recipient: ForOption = None,
                    note: NoteOption = None, at: AtOption = None) -> None:
    """办结: close a disposed incident."""
    with (guard := _Incidents(ctx, actor=actor)) as incidents:
        done = incidents.close(incident_id, guard.recipient(recipient), actor, note=note, at=_time(at, "--at"))
    for row in done.itertuples(index=False):
        typer.echo(f"{row.incident_id} {row.recipient_id}: {row.from_state} → {row.to_state}")


@incidents_cli.command("supervise")
def incidents_supervise(ctx: typer.Context, incident_id: str, actor: AsOption,
                        department: Annotated[str, typer.Option("--by", help="the department (DEPT-…)")],
                        deadline: Annotated[str, typer.Option(help="act by (ISO 8601)")],
                        note: NoteOption = None, at: AtOption = None) -> None:
    """督办: a department orders the incident's enterprise to act by a deadline."""
    with (guard := _Incidents(ctx, actor=actor, action="incident.supervise")) as incidents:
        if guard.user is not None and guard.user.role == "department" and department != guard.user.department_id:
            from app.cli import UserError

            raise UserError(f"--as {actor} orders for {guard.user.department_id} only, not {department}")
        n = incidents.supervise(incident_id, department, actor, _time(deadline, "--deadline"), note,
                                at=_time(at, "--at"))
    typer.echo(f"{incident_id}: supervision order on {n} enterprise recipient(s)")


@incidents_cli.command("escalate")
def incidents_escalate(ctx: typer.Context, now: AtOption = None) -> None:
    """Remind and escalate the recipients past their sign deadline (the monitor does it on its clock)."""
    with _Incidents(ctx, world=True) as incidents:
        result = incidents.escalate_overdue(_time(now, "--now"))
    _echo_json(result.__dict__)


@incidents_cli.command("kpis")
def incidents_kpis(
    ctx: typer.Context,
    by: Annotated[str, typer.Option(help="department | district | enterprise | rule | level | day")] = "department",
    since: Annotated[str | None, typer.Option(help="incidents first seen from (ISO 8601)")] = None,
    until: Annotated[str | None, typer.Option(help="… until (exclusive)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Pushed, signed, disposed, handling rate, time to sign / dispose, overdue, escalated, false alarms, noise."""
    with _Incidents(ctx) as incidents:
        frame = incidents.kpis(by=by, since=_time(since, "--since"), until=_time(until, "--until"))
    if as_json:
        for row in _records(frame):
            _echo_json(row)
        return
    typer.echo(frame.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))


@incidents_cli.command("rebuild-kpis")
def incidents_rebuild_kpis(ctx: typer.Context) -> None:
    """Recompute the KPI rollup from the incidents and recipient rows (after an upgrade that counts
    differently, or a rollup lost); one transaction, signatures wait for it."""
    with _Incidents(ctx) as incidents:
        n = incidents.rebuild_kpis()
    typer.echo(f"KPI rollup rebuilt: {n:,} counters")
