"""The KPI tables' level: a recipient row counts at the level it was pushed at, an incident at
the level it opened at.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

Frozen history, as 0001: what this revision adds is written out here.

The rollup counted each metric at the level the incident stood at when it was counted (a push at
the level pushed at, a signature or an overdue row at the level then), so an incident whose level
changed spread one recipient's counts over two levels (a level row could show more overdue than
pushed) and the table differed from the one computed from the rows.

- incidents.opened_severity: the level the incident opened at (its first episode's opening event).
  Filled for the incidents before: from their `opened` transition's details, else their severity.
- incident_recipients.pushed_severity: the level the row was pushed at (its deadline's level).
  Filled for the rows before: an upgrade's rows their `upgraded_to`; rows routed at opening (tier
  0) the incident's opened_severity; rows an escalation reached (tier 1..) the incident's severity
  now (the level at the escalation was not kept).
The KPI rollup of rows before keeps the counts it made (rebuilding it is not this revision's).
The downgrade drops both columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column("incidents", sa.Column("opened_severity", sa.BigInteger(), nullable=True))
    op.add_column("incident_recipients", sa.Column("pushed_severity", sa.BigInteger(), nullable=True))
    severity_of = "CAST(t.details ->> 'severity' AS BIGINT)" if postgres \
        else "CAST(json_extract(t.details, '$.severity') AS INTEGER)"
    op.execute(f"UPDATE incidents SET opened_severity = (SELECT MIN({severity_of}) FROM incident_transitions t "
               "WHERE t.incident_id = incidents.id AND t.action = 'opened')")
    op.execute("UPDATE incidents SET opened_severity = severity WHERE opened_severity IS NULL")
    op.execute("UPDATE incident_recipients SET pushed_severity = COALESCE(upgraded_to, (SELECT CASE WHEN "
               "incident_recipients.tier = 0 THEN i.opened_severity ELSE i.severity END FROM incidents i "
               "WHERE i.id = incident_recipients.incident_id))")


def downgrade() -> None:
    op.drop_column("incident_recipients", "pushed_severity")
    op.drop_column("incidents", "opened_severity")
