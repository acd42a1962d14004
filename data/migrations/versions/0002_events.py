"""Rule events: the `events` table, append-only, one row per Event the rules emit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-01

Frozen history, as 0001: the table is written out as it is at this revision.

`seq` numbers rows in the order they were recorded (BIGSERIAL on PostgreSQL; INTEGER PRIMARY KEY
AUTOINCREMENT on SQLite, which never reuses a value), so a consumer can ask for everything after
the last seq it saw. `event_time` is the instant the event speaks for: end_time for a close,
start_time otherwise. Position is nullable (unknown position: lon, lat, geometry, h3_cell NULL).
PostGIS: timestamptz, JSONB evidence, geometry(Point, 4326) with GiST.
SQLite: times as INTEGER microseconds since the Unix epoch (UTC), evidence as JSON text, geometry
as a WKB blob. Both: h3_cell (resolution 9, as the point layers) for area filters.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    postgres = dialect == "postgresql"
    time_type = (lambda: sa.DateTime(timezone=True)) if postgres else sa.BigInteger
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger() if postgres else sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("subject_id", sa.Text(), nullable=False),
        sa.Column("episode_id", sa.Text(), nullable=False),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("start_time", time_type(), nullable=False),
        sa.Column("end_time", time_type()),
        sa.Column("event_time", time_type(), nullable=False),
        sa.Column("lon", sa.Double()),
        sa.Column("lat", sa.Double()),
        sa.Column("severity", sa.BigInteger(), nullable=False),
        sa.Column("evidence", JSONB() if postgres else sa.Text(), nullable=False),
        sa.Column("recorded_at", time_type(), nullable=False),
        sa.Column(
            "geometry",
            Geometry(geometry_type="POINT", srid=4326, spatial_index=False) if postgres else sa.LargeBinary(),
        ),
        sa.Column("h3_cell", sa.Text()),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.CheckConstraint("phase IN ('open', 'update', 'close')", name="ck_events_phase"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_event_time", "events", ["event_time"])
    op.create_index("ix_events_subject_id_event_time", "events", ["subject_id", "event_time"])
    op.create_index("ix_events_rule_event_time", "events", ["rule", "event_time"])
    op.create_index("ix_events_episode_id", "events", ["episode_id"])
    if postgres:
        op.create_index("ix_events_geometry", "events", ["geometry"], postgresql_using="gist")
    op.create_index("ix_events_h3_cell", "events", ["h3_cell"])


def downgrade() -> None:
    op.drop_table("events")
