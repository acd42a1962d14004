"""Incidents: incidents, recipients (the inbox is a view of them), the append-only transition
log, the outbox, the applied-event keys and the processor's cursor.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

Frozen history, as 0001: tables are written out here as they are at this revision.

- incidents: one per (rule, subject, episode), episodes reopening within the noise window joined;
  `state` is the rule side (active | ended), `status` the handling (pushed | signed | disposed |
  closed: the least advanced recipient's state).
- incident_recipients: one row per (incident, recipient); recipients are departments (DEPT-…) and
  enterprises (ENT-…), each with its own state, deadline, escalation and supervision order (督办).
- incident_transitions: append-only (who, when, from, to, note); `seq` orders it, `id` names it.
- incident_outbox: one delivery per recipient-facing transition, for the sender (issue 13).
- incident_applied: PRIMARY KEY (rule, episode_id, phase, ordinal): an event is applied once.
- incident_cursor: the last applied events.seq and the store's change version; one row 'events'.
- incident_kpis: the KPI rollup, counters per (grouping, key, local day, metric, duration bin).
PostGIS: timestamptz, JSONB. SQLite: times as INTEGER microseconds since the Unix epoch (UTC),
JSON as text.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
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
        "incidents",
        sa.Column("id", text(), nullable=False),
        sa.Column("rule", text(), nullable=False),
        sa.Column("subject_id", text(), nullable=False),
        sa.Column("subject_kind", text(), nullable=False),
        sa.Column("first_episode_id", text(), nullable=False),
        sa.Column("last_episode_id", text(), nullable=False),
        sa.Column("episodes", big(), nullable=False),
        sa.Column("state", text(), nullable=False),
        sa.Column("status", text(), nullable=False),
        sa.Column("severity", big(), nullable=False),
        sa.Column("peak_severity", big(), nullable=False),
        time("first_time", False), time("last_time", False), time("end_time"), time("closed_at"),
        sa.Column("lon", sa.Double()), sa.Column("lat", sa.Double()),
        sa.Column("district_adcode", text()),
        json("evidence", False),
        sa.Column("source", text(), nullable=False),
        sa.Column("quick_close", sa.Boolean(), nullable=False),
        sa.Column("false_alarm", sa.Boolean(), nullable=False),
        sa.Column("escalations", big(), nullable=False),
        sa.Column("version", big(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    )
    op.create_index("ix_incidents_rule_subject_id", "incidents", ["rule", "subject_id"])
    op.create_index("ix_incidents_status", "incidents", ["status"])
    op.create_index("ix_incidents_first_time", "incidents", ["first_time"])
    op.create_index("ix_incidents_version", "incidents", ["version"])

    op.create_table(
        "incident_recipients",
        sa.Column("incident_id", text(), nullable=False),
        sa.Column("recipient_id", text(), nullable=False),
        sa.Column("recipient_kind", text(), nullable=False),
        sa.Column("role", text()),
        sa.Column("district_adcode", text()),
        sa.Column("state", text(), nullable=False),
        sa.Column("tier", big(), nullable=False),
        sa.Column("escalated_from", text()),
        time("pushed_at", False), time("sign_deadline", False),
        time("signed_at"), sa.Column("signed_by", text()),
        time("disposed_at"), sa.Column("disposed_by", text()), sa.Column("measures", text()),
        sa.Column("note", text()), sa.Column("outcome", text()),
        time("closed_at"), sa.Column("closed_by", text()),
        time("escalated_at"),
        sa.Column("reminders", big(), nullable=False), time("last_reminded_at"),
        sa.Column("supervised_by", text()), time("supervised_at"), time("supervision_deadline"),
        sa.Column("supervision_note", text()),
        sa.Column("version", big(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "recipient_id", name="pk_incident_recipients"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_incident_recipients_incidents",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_incident_recipients_recipient_id_state", "incident_recipients", ["recipient_id", "state"])
    op.create_index("ix_incident_recipients_state_sign_deadline", "incident_recipients", ["state", "sign_deadline"])

    op.create_table(
        "incident_transitions",
        serial(),
        sa.Column("id", text(), nullable=False),
        sa.Column("incident_id", text(), nullable=False),
        sa.Column("recipient_id", text()),
        sa.Column("action", text(), nullable=False),
        sa.Column("from_state", text()), sa.Column("to_state", text()),
        sa.Column("actor", text(), nullable=False),
        time("at", False),
        sa.Column("note", text()),
        json("details"),
        time("recorded_at", False),
        sa.PrimaryKeyConstraint("seq", name="pk_incident_transitions"),
        sa.UniqueConstraint("id", name="uq_incident_transitions_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_incident_transitions_incident_id", "incident_transitions", ["incident_id"])

    op.create_table(
        "incident_outbox",
        serial(),
        sa.Column("delivery_id", text(), nullable=False),
        sa.Column("transition_id", text(), nullable=False),
        sa.Column("incident_id", text(), nullable=False),
        sa.Column("recipient_id", text(), nullable=False),
        sa.Column("recipient_kind", text(), nullable=False),
        sa.Column("action", text(), nullable=False),
        json("payload", False),
        time("created_at", False),
        sa.Column("attempts", big(), nullable=False),
        time("sent_at"),
        sa.Column("last_error", text()),
        sa.PrimaryKeyConstraint("seq", name="pk_incident_outbox"),
        sa.UniqueConstraint("delivery_id", name="uq_incident_outbox_delivery_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_incident_outbox_sent_at", "incident_outbox", ["sent_at"])

    op.create_table(
        "incident_applied",
        sa.Column("rule", text(), nullable=False),
        sa.Column("episode_id", text(), nullable=False),
        sa.Column("phase", text(), nullable=False),
        sa.Column("ordinal", big(), nullable=False),
        sa.Column("digest", text()),
        sa.Column("incident_id", text(), nullable=False),
        sa.Column("seq", big()),
        sa.Column("source", text(), nullable=False),
        time("applied_at", False),
        sa.PrimaryKeyConstraint("rule", "episode_id", "phase", "ordinal", name="pk_incident_applied"),
    )
    op.create_index("ix_incident_applied_episode_id", "incident_applied", ["episode_id"])
    op.create_index("ix_incident_applied_incident_id", "incident_applied", ["incident_id"])

    op.create_table(
        "incident_kpis",
        sa.Column("grouping", text(), nullable=False),
        sa.Column("key", text(), nullable=False),
        sa.Column("day", text(), nullable=False),
        sa.Column("metric", text(), nullable=False),
        sa.Column("bin", big(), nullable=False),
        sa.Column("n", big(), nullable=False),
        sa.PrimaryKeyConstraint("grouping", "key", "day", "metric", "bin", name="pk_incident_kpis"),
    )

    cursor = op.create_table(
        "incident_cursor",
        sa.Column("name", text(), nullable=False),
        sa.Column("last_seq", big(), nullable=False),
        sa.Column("version", big(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_incident_cursor"),
    )
    op.bulk_insert(cursor, [{"name": "events", "last_seq": 0, "version": 0}])


def downgrade() -> None:
    for name in ("incident_kpis", "incident_cursor", "incident_applied", "incident_outbox", "incident_transitions",
                 "incident_recipients", "incidents"):
        op.drop_table(name)
