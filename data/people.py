"""People: users, tokens (API bearer tokens and screen sessions), login failures, the audit log.

`PeopleStore(store)` works on the Store's SQLAlchemy engine (both backends; migration 0007 is
the tables' frozen history). What it guarantees:

- Passwords are hashed with argon2id (argon2-cffi, its RFC 9106 low-memory profile by default)
  and never stored, logged or echoed; a generated password is returned once to the caller.
- A token's secret is shown once; the store keeps its SHA-256 (a high-entropy random secret
  needs no slow hash), its expiry (None: never, the kiosk's) and its revocation. Screen
  sessions are tokens of kind "session", so disabling a user or revoking ends them at once.
- Failures slow down, then lock: from the `slow_after`-th failure in a row a name must wait
  `slow_s * 2**k` (capped) before the next attempt, and at `lock_after` failures it is locked
  for `lock_s`; attempts in those windows are refused before the password is even checked
  (LockedError, with the seconds to wait). A success clears the count. Unknown names are
  counted and verified against a dummy hash, so they answer like a wrong password.
- The audit log is written on the caller's connection (`audit(connection, …)`), i.e. in the
  same transaction as the change; `audit_hook(actor)` gives IncidentStore that callable.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from data import schema
from data.bulk import bulk_insert
from data.schema import JsonDocument, UtcDateTime
from data.store import Store
from spatial.incidents.batch import json_text

__all__ = ["Actor", "AuthError", "LockedError", "PeopleError", "PeopleSettings", "PeopleStore", "ROLES", "User"]

ROLES = ("duty_officer", "department", "enterprise", "admin", "kiosk")
TOKEN_KINDS = ("api", "session")
_NAME = re.compile(r"[\w.@-]{2,64}")  # letters of any script (王伟), digits, '.', '_', '@', '-'
MIN_PASSWORD_CHARS = 10

_m = schema.metadata


def _time(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, UtcDateTime(), nullable=nullable)


users = sa.Table(
    "users", _m,
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("role", sa.Text(), nullable=False),
    sa.Column("department_id", sa.Text()),
    sa.Column("enterprise_id", sa.Text()),
    sa.Column("password_hash", sa.Text(), nullable=False),
    sa.Column("disabled", sa.Boolean(), nullable=False),
    _time("created_at", False), _time("password_set_at", False), _time("last_login_at"),
    sa.PrimaryKeyConstraint("name", name="pk_users"),
)

api_tokens = sa.Table(
    "api_tokens", _m,
    sa.Column("id", sa.Text(), nullable=False),  # public: what `revoke` names
    sa.Column("token_hash", sa.Text(), nullable=False),  # SHA-256 hex of the secret
    sa.Column("user_name", sa.Text(), nullable=False),
    sa.Column("kind", sa.Text(), nullable=False),  # api | session
    _time("created_at", False), _time("expires_at"), _time("revoked_at"), _time("last_used_at"),
    sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
    sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    sa.ForeignKeyConstraint(["user_name"], ["users.name"], name="fk_api_tokens_users", ondelete="CASCADE"),
    sa.Index("ix_api_tokens_user_name", "user_name"),
)

login_failures = sa.Table(
    "login_failures", _m,
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("failures", sa.BigInteger(), nullable=False),
    _time("last_failure_at", False), _time("locked_until"),
    sa.PrimaryKeyConstraint("name", name="pk_login_failures"),
)

audit_log = sa.Table(  # append-only
    "audit_log", _m,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    _time("at", False),
    sa.Column("actor", sa.Text(), nullable=False),  # a user's name, "cli:<os user>" or "system"
    sa.Column("role", sa.Text()),
    sa.Column("address", sa.Text()),  # the client's address, or "cli"
    sa.Column("action", sa.Text(), nullable=False),  # login, login_failed, incident.sign, user.add, export …
    sa.Column("target", sa.Text()),
    sa.Column("outcome", sa.Text(), nullable=False),  # ok | refused | failed
    sa.Column("details", JsonDocument()),
    sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    sa.Index("ix_audit_log_at", "at"),
    sa.Index("ix_audit_log_actor", "actor"),
    sqlite_autoincrement=True,
)

TABLES = (users, api_tokens, login_failures, audit_log)


class PeopleError(ValueError):
    """Bad input about people (a name, a role, a password): the message says what."""


class AuthError(PeopleError):
    """Wrong name or password, an unknown, expired or revoked token, a disabled user."""


class LockedError(AuthError):
    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class User:
    name: str
    role: str
    department_id: str | None = None
    enterprise_id: str | None = None
    disabled: bool = False

    @property
    def recipient_id(self) -> str | None:
        """The inbox this user acts for (DEPT-… or ENT-…), or None (duty officer, admin, kiosk)."""
        return self.department_id if self.role == "department" else self.enterprise_id if self.role == "enterprise" \
            else None


@dataclass(frozen=True)
class Actor:
    """Who does something and from where, as the audit log records it."""
    name: str
    role: str | None = None
    address: str | None = None

    @classmethod
    def of(cls, user: User, address: str | None) -> "Actor":
        return cls(user.name, user.role, address)


@dataclass(frozen=True)
class PeopleSettings:
    session_ttl_s: float = 12 * 3600.0  # a screen login lasts a shift
    token_ttl_s: float = 3600.0  # an API token, one hour; a kiosk's never expire
    slow_after: int = 3  # failures in a row before each next attempt must wait
    slow_s: float = 2.0  # the first wait; doubles with each further failure
    slow_max_s: float = 60.0
    lock_after: int = 10  # failures in a row that lock the name
    lock_s: float = 900.0

    def __post_init__(self):
        if not 1 <= self.slow_after <= self.lock_after:
            raise ValueError("need 1 <= slow_after <= lock_after")


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("us")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def default_hasher():
    from argon2 import PasswordHasher
    from argon2.profiles import RFC_9106_LOW_MEMORY

    return PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


def generate_password() -> str:
    return secrets.token_urlsafe(12)  # 16 characters, 96 bits


class PeopleStore:
    """Users, tokens and the audit log on a Store's engine; see the module docstring."""

    def __init__(self, store: Store, *, settings: PeopleSettings = PeopleSettings(), hasher=None):
        self.store = store
        self.engine = store.engine
        self.settings = settings
        self.hasher = hasher or default_hasher()
        self._dummy: str | None = None

    @property
    def _dummy_hash(self) -> str:
        """What an unknown name's password is checked against (so it takes as long as a known one's)."""
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_hex(8))
        return self._dummy

    # --- users --------------------------------------------------------------------------------

    @staticmethod
    def check_user(name: str, role: str, department: str | None, enterprise: str | None, world=None) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise PeopleError(f"a user name is 2-64 letters, digits, '.', '_', '@' or '-', got {name!r}")
        if role not in ROLES:
            raise PeopleError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if role == "department" and not (department or "").startswith("DEPT-"):
            raise PeopleError("a department user needs --department DEPT-…")
        if role == "enterprise" and not (enterprise or "").startswith("ENT-"):
            raise PeopleError("an enterprise user needs --enterprise ENT-…")
        if role not in ("department",) and department:
            raise PeopleError(f"--department is for department users, not {role}")
        if role not in ("enterprise",) and enterprise:
            raise PeopleError(f"--enterprise is for enterprise users, not {role}")
        if world is not None:
            if department and department not in set(world.departments["id"]):
                raise PeopleError(f"no department {department} in the stored world")
            if enterprise and enterprise not in set(world.entities["id"]):
                raise PeopleError(f"no enterprise {enterprise} in the stored world")

    def _hash_password(self, password: str) -> str:
        if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
            raise PeopleError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
        if len(password) > 1024:
            raise PeopleError("a password is at most 1024 characters")
        return self.hasher.hash(password)

    def add_user(self, name: str, role: str, *, by: Actor, password: str | None = None,
                 department: str | None = None, enterprise: str | None = None,
                 world=None) -> tuple[User, str | None]:
        """Create a user; returns it and the generated password (None when one was given)."""
        self.check_user(name, role, department, enterprise, world)
        generated = None
        if password is None:
            password = generated = generate_password()
        digest = self._hash_password(password)
        now = _now()
        with self.engine.begin() as connection:
            if connection.execute(sa.select(users.c.name).where(users.c.name == name)).first():
                raise PeopleError(f"a user {name!r} exists already")
            connection.execute(sa.insert(users).values(
                name=name, role=role, department_id=department or None, enterprise_id=enterprise or None,
                password_hash=digest, disabled=False, created_at=now, password_set_at=now))
            self.audit(connection, by, "user.add", name, details={"role": role, "department": department,
                                                                  "enterprise": enterprise})
        return User(name, role, department or None, enterprise or None), generated

    def user(self, name: str) -> User | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(users).where(users.c.name == str(name))).mappings().first()
        return None if row is None else User(row["name"], row["role"], row["department_id"], row["enterprise_id"],
                                             bool(row["disabled"]))

    def list_users(self) -> pd.DataFrame:
        columns = [c for c in users.c if c.name != "password_hash"]
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(*columns).order_by(users.c.name)).all()
        return pd.DataFrame(rows, columns=[c.name for c in columns])

    def _existing(self, connection, name: str) -> None:
        if not connection.execute(sa.select(users.c.name).where(users.c.name == str(name))).first():
            raise PeopleError(f"no user {name!r}")

    def set_disabled(self, name: str, disabled: bool, *, by: Actor) -> None:
        """Disable (or enable) a user; disabling revokes its tokens and sessions at once."""
        now = _now()
        with self.engine.begin() as connection:
            self._existing(connection, name)
            connection.execute(sa.update(users).where(users.c.name == name).values(disabled=disabled))
            if disabled:
                connection.execute(sa.update(api_tokens).where(api_tokens.c.user_name == name,
                                                               api_tokens.c.revoked_at.is_(None))
                                   .values(revoked_at=now))
            self.audit(connection, by, "user.disable" if disabled else "user.enable", name)

    def reset_password(self, name: str, *, by: Actor, password: str | None = None) -> str | None:
        """A new password (generated when none is given: returned once); ends its sessions and
        tokens and clears its lock."""
        generated = None
        if password is None:
            password = generated = generate_password()
        digest = self._hash_password(password)
        now = _now()
        with self.engine.begin() as connection:
            self._existing(connection, name)
            connection.execute(sa.update(users).where(users.c.name == name)
                               .values(password_hash=digest, password_set_at=now))
            connection.execute(sa.update(api_tokens).where(api_tokens.c.user_name == name,
                                                           api_tokens.c.revoked_at.is_(None)).values(revoked_at=now))
            connection.execute(sa.delete(login_failures).where(login_failures.c.name == name))
            self.audit(connection, by, "user.reset_password", name)
        return generated

    # --- logging in ---------------------------------------------------------------------------

    def _wait_s(self, failures: int, last: pd.Timestamp, locked_until, now: pd.Timestamp) -> float:
        s = self.settings
        if locked_until is not None and pd.Timestamp(locked_until) > now:
            return (pd.Timestamp(locked_until) - now).total_seconds()
        if failures >= s.slow_after:
            wait = min(s.slow_s * 2 ** (failures - s.slow_after), s.slow_max_s)
            ready = pd.Timestamp(last) + pd.Timedelta(seconds=wait)
            if ready > now:
                return (ready - now).total_seconds()
        return 0.0

    def authenticate(self, name: str, password: str, *, address: str | None = None, now=None) -> User:
        """The user whose password this is, else AuthError (LockedError while it must wait).
        The attempt, either way, goes to the audit log."""
        now = _now() if now is None else pd.Timestamp(now)
        name = str(name or "")[:128]
        if not _NAME.fullmatch(name):  # no user has such a name (and PostgreSQL text cannot hold NUL)
            raise AuthError("wrong user name or password")
        with self.engine.begin() as connection:
            row = connection.execute(sa.select(users).where(users.c.name == name)).mappings().first()
            failed = connection.execute(sa.select(login_failures).where(login_failures.c.name == name)) \
                .mappings().first()
            wait = 0.0 if failed is None else \
                self._wait_s(int(failed["failures"]), failed["last_failure_at"], failed["locked_until"], now)
            if wait > 0:  # refused before the password is looked at
                self.audit(connection, Actor(name or "-", None, address), "login_refused", name,
                           outcome="refused", details={"wait_s": round(wait, 1)}, at=now)
        if wait > 0:
            raise LockedError(f"too many failed logins for {name!r}: try again in {wait:.0f} s", wait)
        with self.engine.begin() as connection:
            ok = False
            try:
                ok = self.hasher.verify(row["password_hash"] if row is not None else self._dummy_hash,
                                        str(password or ""))
            except Exception:  # argon2's VerifyMismatchError / InvalidHashError: a mismatch either way
                ok = False
            if not ok or row is None or row["disabled"]:
                failures = (int(failed["failures"]) if failed is not None else 0) + 1
                locked = now + pd.Timedelta(seconds=self.settings.lock_s) if failures >= self.settings.lock_after \
                    else None
                values = dict(failures=failures, last_failure_at=now, locked_until=locked)
                if failed is None:
                    connection.execute(sa.insert(login_failures).values(name=name, **values))
                else:
                    connection.execute(sa.update(login_failures).where(login_failures.c.name == name).values(**values))
                reason = "disabled" if (ok and row is not None) else "wrong name or password"
                self.audit(connection, Actor(name or "-", None, address), "login_failed", name, outcome="failed",
                           details={"failures": failures, "reason": reason, "locked": locked is not None}, at=now)
        # the failure is committed (outside the block) before it is reported
        if not ok or row is None or row["disabled"]:
            raise AuthError("wrong user name or password")
        user = User(row["name"], row["role"], row["department_id"], row["enterprise_id"], False)
        if self.hasher.check_needs_rehash(row["password_hash"]):
            new_hash = self.hasher.hash(password)
        else:
            new_hash = None
        with self.engine.begin() as connection:
            connection.execute(sa.delete(login_failures).where(login_failures.c.name == name))
            connection.execute(sa.update(users).where(users.c.name == name)
                               .values(last_login_at=now, **({"password_hash": new_hash} if new_hash else {})))
            self.audit(connection, Actor.of(user, address), "login", name, at=now)
        return user

    # --- tokens -------------------------------------------------------------------------------

    def issue_token(self, user: User, *, kind: str = "api", address: str | None = None,
                    ttl_s: float | None = None) -> dict:
        """A new token for `user`: {"id", "token" (the secret, shown once), "expires_at" (None:
        never: kiosks)}."""
        if kind not in TOKEN_KINDS:
            raise PeopleError(f"token kind must be one of {TOKEN_KINDS}, got {kind!r}")
        now = _now()
        if user.role == "kiosk":
            expires = None
        else:
            ttl = ttl_s if ttl_s is not None else (self.settings.session_ttl_s if kind == "session"
                                                    else self.settings.token_ttl_s)
            expires = now + pd.Timedelta(seconds=float(ttl))
        secret = secrets.token_urlsafe(32)
        token_id = "TOK-" + uuid.uuid4().hex[:16]
        with self.engine.begin() as connection:
            connection.execute(sa.insert(api_tokens).values(
                id=token_id, token_hash=_digest(secret), user_name=user.name, kind=kind, created_at=now,
                expires_at=expires))
            if kind == "api":
                self.audit(connection, Actor.of(user, address), "token.issue", token_id,
                           details={"expires_at": None if expires is None else expires.isoformat()})
        return {"id": token_id, "token": secret, "expires_at": expires}

    def resolve_token(self, secret: str, kind: str = "api", now=None) -> tuple[User, str] | None:
        """(user, token id) for a live token of this kind; None when unknown, expired, revoked
        or its user is disabled."""
        if not secret or len(secret) > 256:
            return None
        now = _now() if now is None else pd.Timestamp(now)
        t = api_tokens
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(t.c.id, t.c.expires_at, t.c.revoked_at, users.c.name, users.c.role, users.c.department_id,
                          users.c.enterprise_id, users.c.disabled)
                .join(users, users.c.name == t.c.user_name)
                .where(t.c.token_hash == _digest(secret), t.c.kind == kind)).mappings().first()
        if row is None or row["revoked_at"] is not None or row["disabled"]:
            return None
        if row["expires_at"] is not None and pd.Timestamp(row["expires_at"]) <= now:
            return None
        return User(row["name"], row["role"], row["department_id"], row["enterprise_id"]), row["id"]

    def revoke_token(self, token_id: str, *, by: Actor, owner: str | None = None) -> None:
        """Revoke by id; with `owner`, only that user's token (else: no such token)."""
        t = api_tokens
        with self.engine.begin() as connection:
            conditions = [t.c.id == str(token_id)]
            if owner is not None:
                conditions.append(t.c.user_name == owner)
            done = connection.execute(sa.update(t).where(*conditions, t.c.revoked_at.is_(None))
                                      .values(revoked_at=_now()))
            if not done.rowcount:
                raise PeopleError(f"no live token {token_id!r}")
            self.audit(connection, by, "token.revoke", str(token_id))

    def end_session(self, secret: str, user: User, address: str | None) -> None:
        t = api_tokens
        with self.engine.begin() as connection:
            connection.execute(sa.update(t).where(t.c.token_hash == _digest(secret), t.c.revoked_at.is_(None))
                               .values(revoked_at=_now()))
            self.audit(connection, Actor.of(user, address), "logout", user.name)

    # --- the audit log ------------------------------------------------------------------------

    @staticmethod
    def audit(connection: sa.Connection, actor: Actor, action: str, target: str | None = None, *,
              outcome: str = "ok", details: dict | None = None, at=None) -> None:
        """One audit row, on the caller's connection: it commits or rolls back with the change."""
        connection.execute(sa.insert(audit_log).values(
            at=_now() if at is None else at, actor=actor.name, role=actor.role, address=actor.address,
            action=action, target=None if target is None else str(target), outcome=outcome,
            details=details))

    def audit_hook(self, actor: Actor) -> Callable:
        """For IncidentStore(audit=…): called inside its transaction with (connection, action,
        rows): one audit row per (incident, recipient) changed."""

        def hook(connection, action: str, rows: list[dict]) -> None:
            for row in rows:
                self.audit(connection, actor, f"incident.{action}", row.get("incident_id"),
                           details={k: v for k, v in row.items() if k != "incident_id"})

        return hook

    def record(self, actor: Actor, action: str, target: str | None = None, *, outcome: str = "ok",
               details: dict | None = None) -> None:
        """An audit row on its own (an export, a refused request): one short transaction."""
        with self.engine.begin() as connection:
            self.audit(connection, actor, action, target, outcome=outcome, details=details)

    def read_audit(self, since=None, limit: int | None = None, actor: str | None = None) -> pd.DataFrame:
        """Audit rows, oldest first, from `since` (aware time) on."""
        conditions = []
        if since is not None:
            conditions.append(audit_log.c.at >= pd.Timestamp(since))
        if actor is not None:
            conditions.append(audit_log.c.actor == actor)
        statement = sa.select(audit_log).where(*conditions).order_by(audit_log.c.seq)
        if limit is not None:
            statement = sa.select(audit_log).where(*conditions).order_by(audit_log.c.seq.desc()).limit(int(limit))
        with self.engine.connect() as connection:
            rows = connection.execute(statement).all()
        frame = pd.DataFrame(rows, columns=[c.name for c in audit_log.c])
        if limit is not None:
            frame = frame.iloc[::-1].reset_index(drop=True)
        return frame


SYSTEM = Actor("system", "system", None)


def audit_system(connection: sa.Connection, actions, incident_ids, recipient_ids, details) -> None:
    """An audit row per incident transition the system made (escalations, the pushes to the next
    recipient up, reminders), on the connection of the change: data/incidents.py calls it inside
    escalate_overdue's transaction. Columns, one value per transition; `details` each
    transition's details as JSON text of an object, or None; the row's details are
    {"recipient_id": …, **details}. Written in bulk (data/bulk.py): a year's first pass audits
    hundreds of thousands of rows, which a SQLAlchemy executemany of dicts took ~20 µs each to bind."""
    n = len(actions)
    if not n:
        return
    given = pd.Series(np.asarray(details, dtype=object), dtype=object)
    tail = np.full(n, "}", dtype=object)
    has = (given.notna() & (given != "{}")).to_numpy()
    tail[has] = ", " + given[has].str.slice(1).to_numpy(dtype=object)  # the object's members after ours
    recipients = json_text(pd.Series(np.asarray(recipient_ids, dtype=object), dtype=object).astype(str))
    bulk_insert(connection, audit_log, {
        "at": _now(), "actor": SYSTEM.name, "role": SYSTEM.role, "address": None,
        "action": "incident." + pd.Series(np.asarray(actions, dtype=object), dtype=object).astype(str)
        .to_numpy(dtype=object),
        "target": pd.Series(np.asarray(incident_ids, dtype=object), dtype=object).astype(str).to_numpy(dtype=object),
        "outcome": "ok", "details": '{"recipient_id": ' + recipients + tail,
    }, json_ready=("details",))
