"""`hazmap users …` and `hazmap audit`, and the checked `--as NAME` of `hazmap incidents`.

Registered on the root command by app/cli.py. A password is read from standard input (one line)
or generated and printed once; it is never logged. Changes made from the CLI are audited as the
operating-system user at the address "cli".
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated

import typer

users_cli = typer.Typer(help="People: users of the screen and the API, their roles and passwords.",
                        no_args_is_help=True)

DEMO_USERS = (  # hazmap demo: one per role (department and enterprise picked from the world)
    ("duty", "duty_officer"), ("dept", "department"), ("ent", "enterprise"), ("admin", "admin"), ("wall", "kiosk"))


def _cli_actor():
    from data.people import Actor

    try:
        who = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in a container
        who = "unknown"
    return Actor(f"cli:{who}", "admin", "cli")


class _People:
    def __init__(self, ctx: typer.Context):
        from app.cli import _open_store, _settings
        from data.people import PeopleStore

        self.settings = _settings(ctx)
        self.store = _open_store(self.settings)
        self.people = PeopleStore(self.store)

    def __enter__(self):
        return self.people

    def __exit__(self, exc_type, exc, tb):
        from app.cli import UserError
        from data.people import PeopleError

        self.store.close()
        if isinstance(exc, PeopleError):
            raise UserError(str(exc)) from exc
        return False


def _read_password(from_stdin: bool) -> str | None:
    if not from_stdin:
        return None
    line = sys.stdin.readline().rstrip("\r\n")
    return line


@users_cli.command("add")
def users_add(
    ctx: typer.Context,
    name: str,
    role: Annotated[str, typer.Option(help="duty_officer | department | enterprise | admin | kiosk")],
    department: Annotated[str | None, typer.Option(help="the department a department user acts for (DEPT-…)")] = None,
    enterprise: Annotated[str | None, typer.Option(help="the enterprise an enterprise user acts for (ENT-…)")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from standard input "
                                                 "(else one is generated and printed once)")] = False,
) -> None:
    """Add a user."""
    from app.cli import _load_world

    world = _load_world(_People_settings(ctx)) if (department or enterprise) else None
    with _People(ctx) as people:
        user, generated = people.add_user(name, role, by=_cli_actor(), password=_read_password(password_stdin),
                                          department=department, enterprise=enterprise, world=world)
    typer.echo(f"added {user.name} ({user.role}{', ' + user.recipient_id if user.recipient_id else ''})")
    if generated:
        typer.echo(f"password (shown once): {generated}")


def _People_settings(ctx):  # noqa: N802 - the settings the CLI was started with
    from app.cli import _settings

    return _settings(ctx)


@users_cli.command("list")
def users_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every user with its role, scope and state (never a password or its hash)."""
    with _People(ctx) as people:
        frame = people.list_users()
    for row in frame.to_dict("records"):
        if as_json:
            typer.echo(json.dumps({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()},
                                  ensure_ascii=False))
        else:
            scope = row["department_id"] or row["enterprise_id"] or ""
            typer.echo(f"{row['name']:<20} {row['role']:<13} {scope:<20} "
                       f"{'disabled' if row['disabled'] else 'active'}")


@users_cli.command("disable")
def users_disable(ctx: typer.Context, name: str,
                  enable: Annotated[bool, typer.Option("--enable", help="enable it again")] = False) -> None:
    """Disable a user (its sessions and tokens end at once), or --enable it again."""
    with _People(ctx) as people:
        people.set_disabled(name, not enable, by=_cli_actor())
    typer.echo(f"{name}: {'enabled' if enable else 'disabled'}")


@users_cli.command("reset-password")
def users_reset_password(
    ctx: typer.Context, name: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read it from standard input")] = False,
) -> None:
    """A new password (generated and printed once, or from stdin); ends its sessions and unlocks it."""
    with _People(ctx) as people:
        generated = people.reset_password(name, by=_cli_actor(), password=_read_password(password_stdin))
    typer.echo(f"{name}: password reset")
    if generated:
        typer.echo(f"password (shown once): {generated}")


def audit_command(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="from (ISO 8601 with offset, or a duration back from now: 2h, 7d)")]
    = None,
    actor: Annotated[str | None, typer.Option(help="only this user's")] = None,
    limit: Annotated[int, typer.Option(help="at most the newest N")] = 1000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The audit log, oldest first: logins and failures, incident actions, exports, user changes."""
    import pandas as pd

    from app.cli import UserError

    start = None
    if since:
        try:
            start = pd.Timestamp.now(tz="UTC") - pd.Timedelta(since) if since[-1] in "smhd" and since[:-1].isdigit() \
                else pd.Timestamp(since)
        except ValueError:
            raise UserError(f"--since: not a time or a duration: {since!r}") from None
        if start.tzinfo is None:
            raise UserError(f"--since needs a UTC offset (e.g. +08:00), got {since!r}")
    with _People(ctx) as people:
        frame = people.read_audit(since=start, limit=limit, actor=actor)
    for row in frame.to_dict("records"):
        if as_json:
            typer.echo(json.dumps({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()},
                                  ensure_ascii=False, default=str))
        else:
            at = pd.Timestamp(row["at"]).tz_convert("Asia/Shanghai").strftime("%Y-%m-%d %H:%M:%S")
            typer.echo(f"{at}  {row['actor']:<20} {row['address'] or '-':<15} {row['action']:<22} "
                       f"{row['target'] or '':<28} {row['outcome']}")


def demo_users(store, world) -> list[tuple[str, str, str]]:
    """One user per role on the demo world (a department and an enterprise that have work):
    [(name, role, password)], for printing once. Users that exist already are left alone."""
    from data.people import PeopleStore

    people = PeopleStore(store)
    department = next((d for d in world.departments["id"] if str(d).startswith("DEPT-")), None)
    carriers = world.vehicles["carrier_id"].dropna() if "carrier_id" in world.vehicles.columns else []
    enterprise = str(carriers.iloc[0]) if len(carriers) else (str(world.entities["id"].iloc[0])
                                                               if len(world.entities) else None)
    made = []
    for name, role in DEMO_USERS:
        if people.user(name) is not None:
            continue
        if (role == "department" and department is None) or (role == "enterprise" and enterprise is None):
            continue
        _, password = people.add_user(name, role, by=_cli_actor(),
                                      department=department if role == "department" else None,
                                      enterprise=enterprise if role == "enterprise" else None)
        made.append((name, role, password))
    return made


def checked_user(store, name: str, action: str = "incident.act"):
    """`--as NAME` of the incident commands: a user that exists, is enabled and whose role may
    do `action` at all (the row it acts on is checked by the caller); else a one-line error."""
    from app.cli import UserError
    from app.permissions import can
    from data.people import PeopleStore

    user = PeopleStore(store).user(name)
    if user is None or user.disabled:
        raise UserError(f"--as {name}: no such active user (hazmap users list)")
    if not can(user, action):
        raise UserError(f"--as {name}: a {user.role} may not do this")
    return user
