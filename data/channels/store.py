"""The delivery tables (migration 0006 is their frozen history) and `DeliveryStore`: subscriptions,
the fan-out of the incident outbox into deliveries, the delivery log, dead letters, resend.

Exactly once from the outbox's side: a delivery's id is derived from what it delivers
(subscription + outbox row, or subscription + incident + "opened", or driver + incident + kind),
so turning the outbox into deliveries is idempotent (insert, ignore what exists) and the outbox
row's `sent_at` is stamped in the same transaction. A delivery is `pending` until an attempt's
outcome is recorded; a sender killed between sending and recording finds it still pending and
sends it again with the same id, which the receiver dedupes by (the X-Hazmap-Delivery header).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from data import schema
from data.channels.settings import ChannelError, ChannelSettings
from data.schema import JsonDocument, StrList, UtcDateTime
from spatial.incidents.levels import BY_SEVERITY, LEVEL_KEYS, parse_level
from spatial.rules.titles import RULE_TITLES

_m = schema.metadata
KINDS = ("department", "enterprise", "upstream")
PROFILES = ("webhook", "sms")
# the incident's transitions an upstream platform gets by default (GB/T 35658: each alarm and its handling)
UPSTREAM_EVENTS = ("opened", "escalated", "signed", "disposed", "closed")
STATUSES = ("pending", "sent", "dead")
DRIVER = "driver"  # the subscription id of the built-in JT/T 808 channel's deliveries
# JT/T 808-2019 0x8203: the alarm bits a platform may confirm manually (messages.ManualAlarmConfirm)
CONFIRMABLE_BITS = (0, 3, 20, 21, 22, 27, 28)


def _time(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, UtcDateTime(), nullable=nullable)


subscriptions = sa.Table(
    "delivery_subscriptions", _m,
    sa.Column("id", sa.Text(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("kind", sa.Text(), nullable=False),  # department | enterprise | upstream
    sa.Column("subscriber_id", sa.Text()),  # DEPT-… | ENT-… (its own deliveries); NULL for upstream
    sa.Column("levels", StrList()), sa.Column("rules", StrList()), sa.Column("events", StrList()),  # NULL: all
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("secret", sa.Text()),  # HMAC-SHA256 key of the signature header
    sa.Column("profile", sa.Text(), nullable=False),  # webhook | sms
    sa.Column("body_template", sa.Text()),  # sms: the provider's body, $placeholders (string.Template)
    sa.Column("content_type", sa.Text()),
    sa.Column("headers", JsonDocument()),  # extra request headers (a provider's key …)
    sa.Column("enabled", sa.Boolean(), nullable=False),
    _time("created_at", False),
    sa.PrimaryKeyConstraint("id", name="pk_delivery_subscriptions"),
)

deliveries = sa.Table(
    "deliveries", _m,
    sa.Column("delivery_id", sa.Text(), nullable=False),
    sa.Column("channel", sa.Text(), nullable=False),  # webhook | sms | jt808
    sa.Column("subscription_id", sa.Text()),  # driver for the JT/T 808 channel
    sa.Column("target", sa.Text(), nullable=False),  # URL, or the terminal's phone
    sa.Column("incident_id", sa.Text()),
    sa.Column("event", sa.Text(), nullable=False),  # opened, signed … | text | confirm
    sa.Column("outbox_seq", sa.BigInteger()),
    sa.Column("payload", JsonDocument(), nullable=False),
    sa.Column("status", sa.Text(), nullable=False),  # pending | sent | dead
    sa.Column("attempts", sa.BigInteger(), nullable=False),
    _time("created_at", False), _time("next_attempt_at", False), _time("expires_at"),
    _time("last_attempt_at"), _time("sent_at"),
    sa.Column("last_error", sa.Text()),
    sa.Column("requested_by", sa.Text()),  # on demand: who asked
    sa.PrimaryKeyConstraint("delivery_id", name="pk_deliveries"),
    sa.Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    sa.Index("ix_deliveries_incident_id", "incident_id"),
)

attempts = sa.Table(  # the delivery log: append-only, one row per attempt
    "delivery_attempts", _m,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("delivery_id", sa.Text(), nullable=False),
    sa.Column("attempt", sa.BigInteger(), nullable=False),
    _time("at", False),
    sa.Column("channel", sa.Text(), nullable=False),
    sa.Column("target", sa.Text(), nullable=False),
    sa.Column("status", sa.Text(), nullable=False),  # ok | http_error | refused | timeout | connection | expired …
    sa.Column("code", sa.BigInteger()),  # HTTP status, or the terminal's 0x0001 result
    sa.Column("answer", sa.Text()),
    sa.Column("latency_ms", sa.Double()),
    sa.PrimaryKeyConstraint("seq", name="pk_delivery_attempts"),
    sa.Index("ix_delivery_attempts_delivery_id", "delivery_id"),
    sa.Index("ix_delivery_attempts_at", "at"),
    sqlite_autoincrement=True,
)

dead_letters = sa.Table(
    "delivery_dead_letters", _m,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("delivery_id", sa.Text(), nullable=False),
    _time("dead_at", False),
    sa.Column("attempts", sa.BigInteger(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    _time("resent_at"),
    sa.Column("resent_by", sa.Text()),
    sa.PrimaryKeyConstraint("seq", name="pk_delivery_dead_letters"),
    sa.Index("ix_delivery_dead_letters_delivery_id", "delivery_id"),
    sqlite_autoincrement=True,
)

sender_state = sa.Table(  # the sender's lease: one sender drains at a time
    "delivery_sender", _m,
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("owner", sa.Text()),
    _time("heartbeat_at"),
    _time("started_at"),
    sa.PrimaryKeyConstraint("name", name="pk_delivery_sender"),
)

TABLES = (subscriptions, deliveries, attempts, dead_letters, sender_state)


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("us")


def _value(ts) -> sa.BindParameter:
    """A time as a bound value of the store's time type (inside CASE, where no column types it)."""
    return sa.bindparam(None, ts, type_=UtcDateTime())


def delivery_id(key: str) -> str:
    """A delivery's id from what it delivers: the same key always gives the same id."""
    return "DLV-" + uuid.uuid5(uuid.NAMESPACE_URL, "hazmap:" + key).hex


@dataclass(frozen=True)
class Outcome:
    """One attempt's result, as a channel reports it."""

    status: str  # ok | retry statuses (http_error, timeout, connection, not_answered …) | refused | expired
    code: int | None = None
    answer: str | None = None
    latency_ms: float | None = None
    final: bool = False  # a failure no retry can fix (4xx, a terminal that refuses): dead at once
    waiting: bool = False  # nothing was attempted (a terminal not connected): try again next tick, not counted

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class DeliveryStore:
    """The delivery tables on a Store's engine; every call is one transaction."""

    def __init__(self, store, settings: ChannelSettings = ChannelSettings()):
        self.store = store
        self.engine = store.engine
        self.dialect = store.dialect
        self.settings = settings

    @staticmethod
    def _write_first(connection) -> None:
        """Begin the transaction with a write: in SQLite's WAL mode a transaction that has read cannot
        start writing once another writer committed (it fails at once, 'database is locked'), while a
        first write waits its turn (busy timeout). A no-op UPDATE takes the write lock."""
        connection.execute(sa.update(sender_state).where(sender_state.c.name == "-").values(owner=None))

    def _insert_ignore(self, table: sa.Table):
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table).on_conflict_do_nothing()

    # --- subscriptions ----------------------------------------------------------------------

    def subscribe(self, *, name: str, kind: str, url: str, subscriber_id: str | None = None,
                  levels=None, rules=None, events=None, secret: str | None = None, profile: str = "webhook",
                  body_template: str | None = None, content_type: str | None = None,
                  headers: dict | None = None, subscription_id: str | None = None, enabled: bool = True) -> str:
        """Add (or, with an existing `subscription_id`, replace) a subscription; returns its id."""
        if kind not in KINDS:
            raise ChannelError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if profile not in PROFILES:
            raise ChannelError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
        if not re.match(r"^https?://[^\s/]+", str(url or "")):
            raise ChannelError(f"url must be an http:// or https:// URL, got {url!r}")
        if kind == "department" and not str(subscriber_id or "").startswith("DEPT-"):
            raise ChannelError(f"a department subscription names its department (DEPT-…), got {subscriber_id!r}")
        if kind == "enterprise" and not str(subscriber_id or "").startswith("ENT-"):
            raise ChannelError(f"an enterprise subscription names its enterprise (ENT-…), got {subscriber_id!r}")
        if kind == "upstream" and subscriber_id:
            raise ChannelError("an upstream platform gets every incident it asks for: no subscriber id")
        if profile == "sms" and not body_template:
            raise ChannelError("an sms profile needs the provider's body template (--body-template)")
        if levels:
            try:
                levels = [LEVEL_KEYS[parse_level(level) - 1] for level in levels]
            except ValueError as exc:
                raise ChannelError(str(exc)) from None
        if events:
            known = set(UPSTREAM_EVENTS) | {"pushed", "reminded", "supervised", "upgraded"}
            bad = [e for e in events if e not in known]
            if bad:
                raise ChannelError(f"unknown event(s) {', '.join(bad)}: one of {', '.join(sorted(known))}")
        if headers is not None and not (isinstance(headers, dict)
                                        and all(isinstance(v, str) for v in headers.values())):
            raise ChannelError("headers must be a JSON object of strings")
        sid = subscription_id or "SUB-" + uuid.uuid4().hex[:12]
        row = {"id": sid, "name": str(name), "kind": kind, "subscriber_id": subscriber_id or None,
               "levels": list(levels) if levels else None, "rules": list(rules) if rules else None,
               "events": list(events) if events else None, "url": str(url), "secret": secret or None,
               "profile": profile, "body_template": body_template, "content_type": content_type,
               "headers": headers, "enabled": bool(enabled), "created_at": _now()}
        with self.engine.begin() as connection:
            connection.execute(sa.delete(subscriptions).where(subscriptions.c.id == sid))
            connection.execute(sa.insert(subscriptions).values(**row))
        return sid

    def subscriptions(self) -> pd.DataFrame:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(subscriptions).order_by(subscriptions.c.id)).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in subscriptions.columns])

    def unsubscribe(self, subscription_id: str) -> None:
        with self.engine.begin() as connection:
            if not connection.execute(sa.delete(subscriptions).where(subscriptions.c.id == subscription_id)).rowcount:
                raise ChannelError(f"no subscription {subscription_id!r}")

    # --- the outbox -> deliveries -------------------------------------------------------------

    def fan_out(self, now=None) -> int:
        """Turn up to fanout_batch unsent outbox rows into deliveries (idempotent: a delivery's id
        is its key) and stamp their sent_at, in one transaction; returns the deliveries made."""
        from data.incidents import fan_out_routing, incident_outbox, incidents

        now = _now() if now is None else pd.Timestamp(now)
        o = incident_outbox
        with self.engine.begin() as connection:
            self._write_first(connection)
            rows = connection.execute(sa.select(o).where(o.c.sent_at.is_(None)).order_by(o.c.seq)
                                      .limit(self.settings.fanout_batch)).mappings().all()
            if not rows:
                return 0
            ids = sorted({r["incident_id"] for r in rows})
            info = {r["id"]: dict(r) for r in connection.execute(
                sa.select(incidents.c.id, incidents.c.rule, incidents.c.subject_id, incidents.c.subject_kind,
                          incidents.c.severity, incidents.c.lon, incidents.c.lat, incidents.c.first_time,
                          incidents.c.evidence).where(incidents.c.id.in_(ids))).mappings()}
            subs = [dict(r) for r in connection.execute(
                sa.select(subscriptions).where(subscriptions.c.enabled.is_(True))).mappings()]
            vehicles = {info[i]["subject_id"] for i in ids if i in info and info[i]["subject_kind"] == "vehicle"}
            phones = self._phones(connection, vehicles)
            # an opened incident's routing is one outbox row: one `pushed` row per recipient here
            made = plan_deliveries(fan_out_routing(connection, [dict(r) for r in rows]), info, subs, phones,
                                   self.settings, now)
            if made:
                connection.execute(self._insert_ignore(deliveries), made)
            connection.execute(sa.update(o).where(o.c.seq.in_([r["seq"] for r in rows]))
                               .values(sent_at=now, attempts=o.c.attempts + 1))
        return len(made)

    def _phones(self, connection, vehicle_ids: set[str]) -> dict[str, str]:
        if not vehicle_ids:
            return {}
        v = schema.WORLD_TABLES["vehicles"]
        return {str(i): str(p) for i, p in connection.execute(
            sa.select(v.c.id, v.c.terminal_phone).where(v.c.id.in_(sorted(vehicle_ids)))) if p}

    def request_text(self, incident_id: str, message: str, actor: str, now=None) -> str:
        """On demand: a JT/T 808 text to the incident's truck; returns the delivery id. The
        request goes into the incident's history with who asked."""
        from data.incidents import IncidentStore, incidents

        if not actor or not str(actor).strip():
            raise ChannelError("who sends the message must be named (--as NAME)")
        text = str(message or "").strip()
        if not text:
            raise ChannelError("the message is empty")
        try:
            encoded = text.encode("gbk")
        except UnicodeEncodeError as exc:
            raise ChannelError(f"the message has a character GBK cannot carry: {text[exc.start]!r}") from None
        if len(encoded) > 1000:  # a terminal screen, not a letter; the frame's body limit is 1023 bytes
            raise ChannelError(f"the message is {len(encoded)} bytes in GBK, at most 1000")
        now = _now() if now is None else pd.Timestamp(now)
        with self.engine.begin() as connection:
            self._write_first(connection)
            row = connection.execute(sa.select(incidents.c.subject_id, incidents.c.subject_kind)
                                     .where(incidents.c.id == str(incident_id))).first()
            if row is None:
                raise ChannelError(f"no incident {incident_id!r}")
            if row.subject_kind != "vehicle":
                raise ChannelError(f"{incident_id} is about {row.subject_id}, not a truck: no terminal to text")
            phone = self._phones(connection, {row.subject_id}).get(row.subject_id)
            if phone is None:
                raise ChannelError(f"{row.subject_id} has no terminal phone in the vehicles table")
            did = delivery_id(f"{DRIVER}|{incident_id}|text|{uuid.uuid4().hex}")
            connection.execute(sa.insert(deliveries).values(
                delivery_id=did, channel="jt808", subscription_id=DRIVER, target=phone, incident_id=str(incident_id),
                event="text", outbox_seq=None, payload={"kind": "text", "text": text, "vehicle_id": row.subject_id},
                status="pending", attempts=0, created_at=now, next_attempt_at=now,
                expires_at=now + pd.Timedelta(seconds=self.settings.driver_text_ttl_s), requested_by=str(actor)))
            IncidentStore(self.store).append_history(
                connection, str(incident_id), "driver_text_requested", str(actor), now, note=text,
                details={"delivery_id": did, "terminal_phone": phone})
        return did

    # --- the sender's side --------------------------------------------------------------------

    def take_lease(self, owner: str, now=None, name: str = "sender") -> bool:
        """Hold (or renew) the sender lease; False while another sender's heartbeat is fresh."""
        now = _now() if now is None else pd.Timestamp(now)
        stale = now - pd.Timedelta(seconds=self.settings.lease_s)
        s = sender_state
        with self.engine.begin() as connection:
            connection.execute(self._insert_ignore(s).values(name=name, owner=None, heartbeat_at=None,
                                                             started_at=None))
            taken = connection.execute(
                sa.update(s).where(s.c.name == name, sa.or_(s.c.owner.is_(None), s.c.owner == owner,
                                                            s.c.heartbeat_at < stale))
                .values(owner=owner, heartbeat_at=now,
                        started_at=sa.case((s.c.owner == owner, s.c.started_at), else_=_value(now)))).rowcount
        return bool(taken)

    def release_lease(self, owner: str, name: str = "sender") -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.update(sender_state).where(sender_state.c.name == name,
                                                             sender_state.c.owner == owner)
                               .values(owner=None, heartbeat_at=None))

    def due(self, now=None, limit: int = 1000, exclude=(), skip_channels=()) -> list[dict]:
        """Pending deliveries whose next attempt is due, oldest first (channels in skip_channels left out)."""
        now = _now() if now is None else pd.Timestamp(now)
        d = deliveries
        statement = (sa.select(d).where(d.c.status == "pending", d.c.next_attempt_at <= now,
                                        d.c.channel.not_in(list(skip_channels)))
                     .order_by(d.c.next_attempt_at, d.c.created_at).limit(limit))
        with self.engine.connect() as connection:
            rows = [dict(r) for r in connection.execute(statement).mappings()]
        skip = set(exclude)
        return [r for r in rows if r["delivery_id"] not in skip]

    def subscription_rows(self) -> dict[str, dict]:
        with self.engine.connect() as connection:
            return {r["id"]: dict(r) for r in connection.execute(sa.select(subscriptions)).mappings()}

    def record(self, delivery: dict, outcome: Outcome, at, rand: float = 0.0) -> str:
        """Record one attempt's outcome: the log row, the delivery's new state (sent, retry at
        a backed-off time, or dead) and, for the driver's channel, the incident's history; one
        transaction. Returns the new status."""
        from data.incidents import IncidentStore

        at = pd.Timestamp(at)
        s = self.settings
        d = deliveries
        with self.engine.begin() as connection:
            self._write_first(connection)
            current = connection.execute(sa.select(d.c.status, d.c.attempts)
                                         .where(d.c.delivery_id == delivery["delivery_id"])).first()
            if current is None or current.status != "pending":
                return current.status if current is not None else "gone"  # resent/recorded elsewhere meanwhile
            n = int(current.attempts) + 1
            connection.execute(sa.insert(attempts).values(
                delivery_id=delivery["delivery_id"], attempt=n, at=at, channel=delivery["channel"],
                target=delivery["target"], status=outcome.status, code=outcome.code,
                answer=None if outcome.answer is None else str(outcome.answer)[: s.answer_max_chars],
                latency_ms=outcome.latency_ms))
            expires = delivery.get("expires_at")
            expired = expires is not None and at >= pd.Timestamp(expires)
            if outcome.ok:
                status, values = "sent", {"sent_at": at, "last_error": None}
            elif outcome.final or n >= s.max_attempts or expired:
                status = "dead"
                reason = (f"{outcome.status}: {outcome.answer}" if outcome.final or not expired
                          else f"expired after {s.driver_text_ttl_s:g} s: {outcome.answer}")
                values = {"last_error": reason}
                connection.execute(sa.insert(dead_letters).values(delivery_id=delivery["delivery_id"], dead_at=at,
                                                                  attempts=n, reason=reason))
            else:
                status = "pending"
                values = {"last_error": f"{outcome.status}: {outcome.answer}",
                          "next_attempt_at": (at + pd.Timedelta(seconds=s.backoff(n, rand))).floor("us")}
            connection.execute(sa.update(d).where(d.c.delivery_id == delivery["delivery_id"])
                               .values(status=status, attempts=n, last_attempt_at=at, target=delivery["target"],
                                       **values))
            if delivery["channel"] == "jt808" and delivery.get("incident_id") and outcome.code is not None:
                kind = delivery["payload"].get("kind", "text")
                IncidentStore(self.store).append_history(
                    connection, delivery["incident_id"], f"driver_{kind}_answered",
                    f"terminal:{delivery['target']}", at,
                    note=f"0x0001 result {outcome.code} ({outcome.answer})",
                    details={"delivery_id": delivery["delivery_id"], "message_id": "0x8300" if kind == "text"
                             else "0x8203", "result": int(outcome.code)})
        return status

    def expire(self, delivery: dict, at, reason: str) -> None:
        """A delivery that could not even be attempted before its expiry (a terminal never connected)."""
        self.record(delivery, Outcome("expired", answer=reason, final=True), at)

    def note_waiting(self, delivery_ids: list[str], reason: str, until) -> None:
        """Deliveries waiting for their terminal: looked at again at `until` (not an attempt), so
        they neither count as failures nor crowd the due list ahead of other channels."""
        if delivery_ids:
            with self.engine.begin() as connection:
                connection.execute(sa.update(deliveries).where(deliveries.c.delivery_id.in_(delivery_ids),
                                                               deliveries.c.status == "pending")
                                   .values(last_error=reason, next_attempt_at=pd.Timestamp(until).floor("us")))

    # --- operators ----------------------------------------------------------------------------

    def list(self, failed: bool = False, status: str | None = None, limit: int | None = 200) -> pd.DataFrame:
        """Deliveries, newest first, with their attempts' count and last error."""
        d = deliveries
        statement = sa.select(d).order_by(d.c.created_at.desc(), d.c.delivery_id)
        if failed:
            statement = statement.where(d.c.status == "dead")
        elif status is not None:
            if status not in STATUSES:
                raise ChannelError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
            statement = statement.where(d.c.status == status)
        if limit is not None:
            statement = statement.limit(int(limit))
        with self.engine.connect() as connection:
            rows = [dict(r) for r in connection.execute(statement).mappings()]
        return pd.DataFrame(rows, columns=[c.name for c in d.columns])

    def log(self, delivery_id: str | None = None, limit: int | None = 200) -> pd.DataFrame:
        """The delivery log: attempts, newest first."""
        statement = sa.select(attempts).order_by(attempts.c.seq.desc())
        if delivery_id is not None:
            statement = statement.where(attempts.c.delivery_id == delivery_id)
        if limit is not None:
            statement = statement.limit(int(limit))
        with self.engine.connect() as connection:
            rows = [dict(r) for r in connection.execute(statement).mappings()]
        return pd.DataFrame(rows, columns=[c.name for c in attempts.columns])

    def resend(self, delivery_ids=None, *, all_failed: bool = False, actor: str = "operator", now=None) -> list[str]:
        """Re-queue dead deliveries (same ids, attempts counted afresh); all or none."""
        now = _now() if now is None else pd.Timestamp(now)
        d = deliveries
        with self.engine.begin() as connection:
            self._write_first(connection)
            if all_failed:
                ids = [r[0] for r in connection.execute(sa.select(d.c.delivery_id).where(d.c.status == "dead"))]
            else:
                ids = list(dict.fromkeys(delivery_ids or []))
                if not ids:
                    raise ChannelError("say which delivery to resend (ID …, or --all-failed)")
                found = dict(connection.execute(sa.select(d.c.delivery_id, d.c.status)
                                                .where(d.c.delivery_id.in_(ids))).all())
                unknown = [i for i in ids if i not in found]
                if unknown:
                    raise ChannelError(f"no delivery {', '.join(unknown)}")
                alive = [i for i in ids if found[i] != "dead"]
                if alive:
                    raise ChannelError(f"only failed deliveries are resent; {', '.join(alive)} "
                                       f"{'is' if len(alive) == 1 else 'are'} {found[alive[0]]}")
            if ids:
                ttl = pd.Timedelta(seconds=self.settings.driver_text_ttl_s)
                connection.execute(sa.update(d).where(d.c.delivery_id.in_(ids)).values(
                    status="pending", attempts=0, next_attempt_at=now, last_error=None,
                    expires_at=sa.case((d.c.channel == "jt808", _value(now + ttl)), else_=sa.null())))
                connection.execute(sa.update(dead_letters).where(dead_letters.c.delivery_id.in_(ids),
                                                                 dead_letters.c.resent_at.is_(None))
                                   .values(resent_at=now, resent_by=str(actor)))
        return ids

    def figures(self, since=None) -> dict:
        """For the health line and the metrics: deliveries by status, attempts and failed attempts."""
        d = deliveries
        with self.engine.connect() as connection:
            by_status = dict(connection.execute(sa.select(d.c.status, sa.func.count()).group_by(d.c.status)).all())
            statement = sa.select(attempts.c.status, sa.func.count()).group_by(attempts.c.status)
            if since is not None:
                statement = statement.where(attempts.c.at >= pd.Timestamp(since))
            by_attempt = dict(connection.execute(statement).all())
            last = connection.execute(sa.select(attempts.c.at).order_by(attempts.c.seq.desc()).limit(1)).scalar()
        return {"pending": int(by_status.get("pending", 0)), "sent": int(by_status.get("sent", 0)),
                "dead": int(by_status.get("dead", 0)), "attempts": int(sum(by_attempt.values())),
                "failed_attempts": int(sum(v for k, v in by_attempt.items() if k != "ok")),
                "last_attempt_at": None if last is None else pd.Timestamp(last).isoformat()}


# --- the plan of a fan-out (pure over the rows read) ------------------------------------------

# each rule's Chinese name, as the wall shows it (spatial/rules/titles.py)
RULE_NAMES_ZH = {rule: names[0] for rule, names in RULE_TITLES.items()}
DRIVER_TEXT = "【危化品安全提示】{level_zh}预警：{rule_zh}。请立即按规定处置，注意安全。（{incident_id}）"


def _event_name(kind: str, action: str) -> str:
    return "opened" if kind == "upstream" and action == "pushed" else action


def plan_deliveries(rows: list[dict], info: dict, subs: list[dict], phones: dict, settings: ChannelSettings,
                    now: pd.Timestamp) -> list[dict]:
    """Outbox rows x enabled subscriptions (+ the driver channel) -> delivery rows."""
    made: dict[str, dict] = {}
    for row in rows:
        inc = info.get(row["incident_id"])
        if inc is None:
            continue
        level = BY_SEVERITY[int(inc["severity"])]
        incident = {"id": inc["id"], "rule": inc["rule"], "subject_id": inc["subject_id"],
                    "subject_kind": inc["subject_kind"], "level": level.key, "severity": int(inc["severity"]),
                    "lon": inc["lon"], "lat": inc["lat"],
                    "first_time": None if inc["first_time"] is None else pd.Timestamp(inc["first_time"]).isoformat()}
        for sub in subs:
            if sub["kind"] in ("department", "enterprise") and sub["subscriber_id"] != row["recipient_id"]:
                continue
            event = _event_name(sub["kind"], row["action"])
            wanted = sub["events"] or (UPSTREAM_EVENTS if sub["kind"] == "upstream" else None)
            if wanted and event not in wanted:
                continue
            if sub["levels"] and level.key not in sub["levels"]:
                continue
            if sub["rules"] and inc["rule"] not in sub["rules"]:
                continue
            key = (f"{sub['id']}|{inc['id']}|opened" if event == "opened"
                   else f"{sub['id']}|{row['delivery_id']}")
            did = delivery_id(key)
            body = {"delivery_id": did, "event": event, "incident": incident,
                    "transition": {**row["payload"], "recipient_id": row["recipient_id"],
                                   "recipient_kind": row["recipient_kind"], "transition_id": row["transition_id"]},
                    "subscription_id": sub["id"]}
            made[did] = {"delivery_id": did, "channel": sub["profile"], "subscription_id": sub["id"],
                         "target": sub["url"], "incident_id": inc["id"], "event": event,
                         "outbox_seq": int(row["seq"]), "payload": body}
        phone = phones.get(inc["subject_id"])
        if phone is None:
            continue
        if row["action"] == "pushed" and int(inc["severity"]) in settings.driver_levels:
            text = DRIVER_TEXT.format(level_zh=level.name_zh, rule_zh=RULE_NAMES_ZH.get(inc["rule"], inc["rule"]),
                                      incident_id=inc["id"])
            did = delivery_id(f"{DRIVER}|{inc['id']}|text")
            made[did] = {"delivery_id": did, "channel": "jt808", "subscription_id": DRIVER, "target": phone,
                         "incident_id": inc["id"], "event": "text", "outbox_seq": int(row["seq"]),
                         "payload": {"kind": "text", "text": text, "vehicle_id": inc["subject_id"]}}
        bit = (inc["evidence"] or {}).get("bit")
        if (row["action"] == "signed" and settings.confirm_terminal_alarms and inc["rule"] == "terminal_alarm"
                and bit is not None and int(bit) in CONFIRMABLE_BITS):
            did = delivery_id(f"{DRIVER}|{inc['id']}|confirm")
            made[did] = {"delivery_id": did, "channel": "jt808", "subscription_id": DRIVER, "target": phone,
                         "incident_id": inc["id"], "event": "confirm", "outbox_seq": int(row["seq"]),
                         "payload": {"kind": "confirm", "alarm_type": 1 << int(bit), "bit": int(bit),
                                     "vehicle_id": inc["subject_id"]}}
    ttl = pd.Timedelta(seconds=settings.driver_text_ttl_s)
    return [{**m, "status": "pending", "attempts": 0, "created_at": now, "next_attempt_at": now,
             "expires_at": now + ttl if m["channel"] == "jt808" else None, "last_attempt_at": None,
             "sent_at": None, "last_error": None, "requested_by": None} for m in made.values()]


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
