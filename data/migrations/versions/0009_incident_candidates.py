"""The incident apply at a year's scale: its candidate incidents found by index.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Frozen history, as 0001: what this revision adds is written out here.

Each applied batch reads the incidents its events may move: the episodes' own, the subjects'
active ones and those ended within the reopen window. Before this revision the last two were
found by scanning the whole incidents table (no index on the subject alone), once per batch: a
year's record read 126 times over a year's apply.

- ix_incidents_active_subject_id: incidents.subject_id of the active incidents (a partial index;
  its WHERE text is the one data/incidents.py queries with, literally, so SQLite matches it).
- ix_incidents_end_time: incidents.end_time (those ended within the window are the newest ends).
- ix_incidents_subject_id_first_time replaces ix_incidents_rule_subject_id (rule, subject_id),
  which no query led with the rule used: the drill-down asks for a subject's newest incidents
  (data/drilldown.py), which read the whole table before.
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
    op.create_index("ix_incidents_active_subject_id", "incidents", ["subject_id"],
                    sqlite_where=sa.text(ACTIVE), postgresql_where=sa.text(ACTIVE))
    op.create_index("ix_incidents_end_time", "incidents", ["end_time"])
    op.drop_index("ix_incidents_rule_subject_id", table_name="incidents")
    op.create_index("ix_incidents_subject_id_first_time", "incidents", ["subject_id", "first_time"])


def downgrade() -> None:
    op.drop_index("ix_incidents_subject_id_first_time", table_name="incidents")
    op.create_index("ix_incidents_rule_subject_id", "incidents", ["rule", "subject_id"])
    op.drop_index("ix_incidents_end_time", table_name="incidents")
    op.drop_index("ix_incidents_active_subject_id", table_name="incidents")
