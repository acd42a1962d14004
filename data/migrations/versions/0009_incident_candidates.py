"""The incident apply at a year's scale: its candidate incidents found by index, its applied keys in one B-tree.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Frozen history, as 0001: what this revision adds is written out here.

Each applied batch reads the incidents its events may move: the episodes' own, the subjects'
active ones and those ended within the reopen window. Before this revision the last two were
found by scanning the whole incidents table (no index on the subject alone), once per batch: a
year's record read 126 times over a year's apply.

- ix_incidents_active: the active incidents (a partial index on state: few rows, each gone when
  its incident ends; its WHERE text is the one data/incidents.py queries with, literally, so
  SQLite matches it).
- ix_incidents_end_time: incidents.end_time (those ended within the window are the newest ends).
- ix_incidents_subject_id_first_time replaces ix_incidents_rule_subject_id (rule, subject_id),
  which no query led with the rule used: the drill-down asks for a subject's newest incidents
  (data/drilldown.py), which read the whole table before.
- incident_applied: its primary key led by episode_id, (episode_id, rule, phase, ordinal) — the
  apply reads it by episode — so ix_incident_applied_episode_id goes; on SQLite the table is
  rebuilt WITHOUT ROWID (the key is the table: one B-tree written per applied event, not three).
  New columns version and position: the order events were applied in (the batch's version, the
  event's place in it), which the table's order no longer gives; rows applied before take
  version 0 and their place in the old table (SQLite's rowid; PostgreSQL's applied_at, seq and
  heap order).
- incident_outbox.recipient_id and recipient_kind nullable: an opened incident's routing goes out
  as ONE row (action `routed`, no recipient), which the sender fans out to the recipient rows the
  routing made (data/channels/store.py), instead of a row per recipient.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ACTIVE = "state = 'active'"


def upgrade() -> None:
    op.create_index("ix_incidents_active", "incidents", ["state"],
                    sqlite_where=sa.text(ACTIVE), postgresql_where=sa.text(ACTIVE))
    op.create_index("ix_incidents_end_time", "incidents", ["end_time"])
    op.drop_index("ix_incidents_rule_subject_id", table_name="incidents")
    op.create_index("ix_incidents_subject_id_first_time", "incidents", ["subject_id", "first_time"])
    op.drop_index("ix_incident_applied_episode_id", table_name="incident_applied")
    _rekey_applied(("episode_id", "rule", "phase", "ordinal"), with_rowid=False)
    _outbox_recipient_nullable(True)


def _outbox_recipient_nullable(nullable: bool) -> None:
    # SQLite alters a column by rebuilding the table (Alembic's batch mode); AUTOINCREMENT kept
    with op.batch_alter_table("incident_outbox", table_kwargs={"sqlite_autoincrement": True}) as batch:
        for name in ("recipient_id", "recipient_kind"):
            batch.alter_column(name, existing_type=sa.Text(), nullable=nullable)


def _rekey_applied(key: tuple[str, ...], with_rowid: bool) -> None:
    """incident_applied with `key` as its primary key, its rows kept."""
    ordered = not with_rowid  # the new key: with the version and position columns
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_incident_applied", "incident_applied", type_="primary")
        op.create_primary_key("pk_incident_applied", "incident_applied", list(key))
        if not ordered:
            op.drop_column("incident_applied", "position")
            op.drop_column("incident_applied", "version")
            return
        for name in ("version", "position"):
            op.add_column("incident_applied", sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))
            op.alter_column("incident_applied", name, server_default=None)
        op.execute("UPDATE incident_applied a SET position = o.position FROM (SELECT ctid, row_number() OVER "
                   "(ORDER BY applied_at, seq, ctid) AS position FROM incident_applied) o WHERE a.ctid = o.ctid")
        return
    # SQLite changes no primary key in place: a new table, the rows copied, the old one dropped
    text, big = sa.Text, sa.BigInteger
    op.create_table(
        "_incident_applied_new",
        sa.Column("rule", text(), nullable=False),
        sa.Column("episode_id", text(), nullable=False),
        sa.Column("phase", text(), nullable=False),
        sa.Column("ordinal", big(), nullable=False),
        sa.Column("digest", text()),
        sa.Column("incident_id", text(), nullable=False),
        sa.Column("seq", big()),
        sa.Column("source", text(), nullable=False),
        sa.Column("applied_at", big(), nullable=False),
        *([sa.Column("version", big(), nullable=False), sa.Column("position", big(), nullable=False)]
          if ordered else []),
        sa.PrimaryKeyConstraint(*key, name="pk_incident_applied"),
        sqlite_with_rowid=with_rowid,
    )
    columns = "rule, episode_id, phase, ordinal, digest, incident_id, seq, source, applied_at"
    if ordered:  # the old table's order is its rowid's
        op.execute(f"INSERT INTO _incident_applied_new ({columns}, version, position) "
                   f"SELECT {columns}, 0, rowid FROM incident_applied")
    else:  # back to a rowid table, in the order they were applied
        op.execute(f"INSERT INTO _incident_applied_new ({columns}) "
                   f"SELECT {columns} FROM incident_applied ORDER BY version, position")
    op.drop_table("incident_applied")  # and its index
    op.rename_table("_incident_applied_new", "incident_applied")
    op.create_index("ix_incident_applied_incident_id", "incident_applied", ["incident_id"])


def downgrade() -> None:
    # the routing rows (no recipient) back to a row per recipient, from the recipient rows; their
    # payload stays the routing's (level and time; no per-recipient deadline)
    op.execute("INSERT INTO incident_outbox (delivery_id, transition_id, incident_id, recipient_id, recipient_kind, "
               "action, payload, created_at, attempts, sent_at, last_error) "
               "SELECT o.delivery_id || ':' || r.recipient_id, 'TR-push-' || r.incident_id || '-' || r.recipient_id, "
               "o.incident_id, r.recipient_id, r.recipient_kind, 'pushed', o.payload, o.created_at, o.attempts, "
               "o.sent_at, o.last_error FROM incident_outbox o JOIN incident_recipients r "
               "ON r.incident_id = o.incident_id AND r.tier = 0 WHERE o.action = 'routed' ORDER BY o.seq, r.recipient_id")
    op.execute("DELETE FROM incident_outbox WHERE action = 'routed'")
    _outbox_recipient_nullable(False)
    _rekey_applied(("rule", "episode_id", "phase", "ordinal"), with_rowid=True)
    op.create_index("ix_incident_applied_episode_id", "incident_applied", ["episode_id"])
    op.drop_index("ix_incidents_subject_id_first_time", table_name="incidents")
    op.create_index("ix_incidents_rule_subject_id", "incidents", ["rule", "subject_id"])
    op.drop_index("ix_incidents_end_time", table_name="incidents")
    op.drop_index("ix_incidents_active", table_name="incidents")
