"""The applied keys led by the episode's start: a batch's keys appended, not scattered.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

Frozen history, as 0001: what this revision adds is written out here.

incident_applied's primary key was led by episode_id (`rule:subject:start_ms` from the rules):
each applied event's key landed on a random page of the table (on SQLite the key is the table),
so at a year's record one 5,000-event batch dirtied thousands of its pages, each written whole
to the WAL and checkpointed — most of the apply's commit time (a plain sqlite3 replay of a
year's 629,963 keys in the apply's batches: 3.5 s of inserts and 7.9 s of commits, against 2.0
and 0.6 s led by the start). Every event of an episode carries the episode's start, and a batch's
events are near each other in time, so led by it the keys of a batch land on the key's newest
pages.

- incident_applied.episode_start (UtcDateTime, not null): the start of the event's episode.
  Filled for the rows applied before: from the stored event (`seq`), else from another applied
  row of the same episode, else from the episode's `opened` / `reopened` transition (its `at` is
  the episode's start), else the incident's first_time.
- the primary key (episode_start, episode_id, rule, phase, ordinal); on SQLite the table is
  rebuilt WITHOUT ROWID, as 0009 made it, with ix_incident_applied_incident_id.
The downgrade drops the column and keys the table as 0009 did; it fails (and changes nothing) if
one (rule, episode_id) was applied under two starts since.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OLD_KEY = ("episode_id", "rule", "phase", "ordinal")
NEW_KEY = ("episode_start", *OLD_KEY)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    time_type = sa.DateTime(timezone=True) if postgres else sa.BigInteger()
    op.add_column("incident_applied", sa.Column("episode_start", time_type, nullable=True))
    op.execute("UPDATE incident_applied SET episode_start = (SELECT e.start_time FROM events e "
               "WHERE e.seq = incident_applied.seq) WHERE seq IS NOT NULL")
    same_episode = ("UPDATE incident_applied SET episode_start = (SELECT MIN(o.episode_start) FROM incident_applied o "
                    "WHERE o.rule = incident_applied.rule AND o.episode_id = incident_applied.episode_id) "
                    "WHERE episode_start IS NULL")
    op.execute(same_episode)
    episode_of = "t.details ->> 'episode_id'" if postgres else "json_extract(t.details, '$.episode_id')"
    op.execute("UPDATE incident_applied SET episode_start = (SELECT MIN(t.at) FROM incident_transitions t "
               "WHERE t.incident_id = incident_applied.incident_id AND t.action IN ('opened', 'reopened') "
               f"AND {episode_of} = incident_applied.episode_id) WHERE episode_start IS NULL")
    op.execute(same_episode)
    op.execute("UPDATE incident_applied SET episode_start = (SELECT i.first_time FROM incidents i "
               "WHERE i.id = incident_applied.incident_id) WHERE episode_start IS NULL")
    if postgres:
        op.alter_column("incident_applied", "episode_start", nullable=False)
        op.drop_constraint("pk_incident_applied", "incident_applied", type_="primary")
        op.create_primary_key("pk_incident_applied", "incident_applied", list(NEW_KEY))
        return
    _rebuild_sqlite(with_start=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_incident_applied", "incident_applied", type_="primary")
        op.create_primary_key("pk_incident_applied", "incident_applied", list(OLD_KEY))
        op.drop_column("incident_applied", "episode_start")
        return
    _rebuild_sqlite(with_start=False)


def _rebuild_sqlite(with_start: bool) -> None:
    """SQLite changes no primary key in place: a new WITHOUT ROWID table, the rows copied in the
    order they were applied, the old one dropped."""
    text, big = sa.Text, sa.BigInteger
    op.create_table(
        "_incident_applied_new",
        sa.Column("rule", text(), nullable=False),
        *([sa.Column("episode_start", big(), nullable=False)] if with_start else []),
        sa.Column("episode_id", text(), nullable=False),
        sa.Column("phase", text(), nullable=False),
        sa.Column("ordinal", big(), nullable=False),
        sa.Column("digest", text()),
        sa.Column("incident_id", text(), nullable=False),
        sa.Column("seq", big()),
        sa.Column("source", text(), nullable=False),
        sa.Column("applied_at", big(), nullable=False),
        sa.Column("version", big(), nullable=False),
        sa.Column("position", big(), nullable=False),
        sa.PrimaryKeyConstraint(*(NEW_KEY if with_start else OLD_KEY), name="pk_incident_applied"),
        sqlite_with_rowid=False,
    )
    columns = ("rule, " + ("episode_start, " if with_start else "")
               + "episode_id, phase, ordinal, digest, incident_id, seq, source, applied_at, version, position")
    op.execute(f"INSERT INTO _incident_applied_new ({columns}) SELECT {columns} FROM incident_applied "
               "ORDER BY version, position")
    op.drop_table("incident_applied")  # and its index
    op.rename_table("_incident_applied_new", "incident_applied")
    op.create_index("ix_incident_applied_incident_id", "incident_applied", ["incident_id"])
