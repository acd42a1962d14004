"""Deliveries: webhook/SMS subscriptions, the deliveries the sender owes, every attempt, dead
letters and the sender's lease (issue 13).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Frozen history, as 0001: tables are written out here as they are at this revision.

- delivery_subscriptions: who wants what (a department, an enterprise or an upstream platform;
  levels, rules and events wanted; URL; HMAC secret; profile webhook | sms with its body template).
- deliveries: one row per (outbox row or on-demand message, channel target); its id is what the
  receiver dedupes by; status pending | sent | dead.
- delivery_attempts: the delivery log, one row per attempt (time, channel, target, status,
  answer, latency).
- delivery_dead_letters: deliveries given up after their last retry (resend re-queues them).
- delivery_sender: one row per sender lease; a second sender waits until the lease lapses.
PostGIS: timestamptz, JSONB. SQLite: times as INTEGER microseconds since the Unix epoch (UTC),
JSON as text.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"

    def time(name: str, nullable: bool = True) -> sa.Column:
        return sa.Column(name, sa.DateTime(timezone=True) if postgres else sa.BigInteger(), nullable=nullable)

    def json(name: str, nullable: bool = True) -> sa.Column:
        return sa.Column(name, JSONB() if postgres else sa.Text(), nullable=nullable)

    def serial() -> sa.Column:
        return sa.Column("seq", sa.BigInteger() if postgres else sa.Integer(), autoincrement=True, nullable=False)

    text, big = sa.Text, sa.BigInteger
    op.create_table(
        "delivery_subscriptions",
        sa.Column("id", text(), nullable=False),
        sa.Column("name", text(), nullable=False),
        sa.Column("kind", text(), nullable=False),
        sa.Column("subscriber_id", text()),
        json("levels"), json("rules"), json("events"),
        sa.Column("url", text(), nullable=False),
        sa.Column("secret", text()),
        sa.Column("profile", text(), nullable=False),
        sa.Column("body_template", text()),
        sa.Column("content_type", text()),
        json("headers"),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        time("created_at", False),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_subscriptions"),
    )
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", text(), nullable=False),
        sa.Column("channel", text(), nullable=False),
        sa.Column("subscription_id", text()),
        sa.Column("target", text(), nullable=False),
        sa.Column("incident_id", text()),
        sa.Column("event", text(), nullable=False),
        sa.Column("outbox_seq", big()),
        json("payload", False),
        sa.Column("status", text(), nullable=False),
        sa.Column("attempts", big(), nullable=False),
        time("created_at", False), time("next_attempt_at", False), time("expires_at"),
        time("last_attempt_at"), time("sent_at"),
        sa.Column("last_error", text()),
        sa.Column("requested_by", text()),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_deliveries"),
    )
    op.create_index("ix_deliveries_status_next_attempt_at", "deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_deliveries_incident_id", "deliveries", ["incident_id"])
    op.create_table(
        "delivery_attempts",
        serial(),
        sa.Column("delivery_id", text(), nullable=False),
        sa.Column("attempt", big(), nullable=False),
        time("at", False),
        sa.Column("channel", text(), nullable=False),
        sa.Column("target", text(), nullable=False),
        sa.Column("status", text(), nullable=False),
        sa.Column("code", big()),
        sa.Column("answer", text()),
        sa.Column("latency_ms", sa.Double()),
        sa.PrimaryKeyConstraint("seq", name="pk_delivery_attempts"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_delivery_attempts_delivery_id", "delivery_attempts", ["delivery_id"])
    op.create_index("ix_delivery_attempts_at", "delivery_attempts", ["at"])
    op.create_table(
        "delivery_dead_letters",
        serial(),
        sa.Column("delivery_id", text(), nullable=False),
        time("dead_at", False),
        sa.Column("attempts", big(), nullable=False),
        sa.Column("reason", text(), nullable=False),
        time("resent_at"),
        sa.Column("resent_by", text()),
        sa.PrimaryKeyConstraint("seq", name="pk_delivery_dead_letters"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_delivery_dead_letters_delivery_id", "delivery_dead_letters", ["delivery_id"])
    op.create_table(
        "delivery_sender",
        sa.Column("name", text(), nullable=False),
        sa.Column("owner", text()),
        time("heartbeat_at"),
        time("started_at"),
        sa.PrimaryKeyConstraint("name", name="pk_delivery_sender"),
    )


def downgrade() -> None:
    for name in ("delivery_sender", "delivery_dead_letters", "delivery_attempts", "deliveries",
                 "delivery_subscriptions"):
        op.drop_table(name)
