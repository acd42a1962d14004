"""Incident KPIs over a year without reading the year: the unsigned-past-deadline counter and
the all-days rollup.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

Frozen history, as 0001: what this revision adds is written out here.

- incident_recipients.overdue_counted_severity: NULL until the escalation pass counts the row in
  the KPI rollup as unsigned past its deadline (metric `unsigned_overdue`); then the severity it
  was counted under, so that signing it takes the count back from the same level.
- ix_incident_recipients_uncounted_deadline: a partial index on sign_deadline of the pushed rows
  not yet counted; the KPI query counts those past `now` live (few: the pass counts them as their
  deadlines pass). The WHERE text is the one data/incident_kpis.py queries with, literally, so
  SQLite matches the partial index.
- incident_kpi_totals: the rollup's counters summed over days, (grouping, key, metric, bin) ->
  n, kept in the same transaction as incident_kpis; a KPI table over all days reads it (a few
  thousand rows) instead of summing a year of day rows. Filled here from incident_kpis.
Existing rows stay uncounted: the KPI query counts them live until the next escalation pass.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UNCOUNTED = "state = 'pushed' AND overdue_counted_severity IS NULL"


def upgrade() -> None:
    op.add_column("incident_recipients", sa.Column("overdue_counted_severity", sa.BigInteger(), nullable=True))
    op.create_index("ix_incident_recipients_uncounted_deadline", "incident_recipients", ["sign_deadline"],
                    sqlite_where=sa.text(UNCOUNTED), postgresql_where=sa.text(UNCOUNTED))
    text, big = sa.Text, sa.BigInteger
    op.create_table(
        "incident_kpi_totals",
        sa.Column("grouping", text(), nullable=False),
        sa.Column("key", text(), nullable=False),
        sa.Column("metric", text(), nullable=False),
        sa.Column("bin", big(), nullable=False),
        sa.Column("n", big(), nullable=False),
        sa.PrimaryKeyConstraint("grouping", "key", "metric", "bin", name="pk_incident_kpi_totals"),
    )
    op.execute('INSERT INTO incident_kpi_totals ("grouping", "key", metric, bin, n) '
               'SELECT "grouping", "key", metric, bin, SUM(n) FROM incident_kpis GROUP BY "grouping", "key", metric, bin')


def downgrade() -> None:
    op.drop_table("incident_kpi_totals")
    op.drop_index("ix_incident_recipients_uncounted_deadline", table_name="incident_recipients")
    op.drop_column("incident_recipients", "overdue_counted_severity")
