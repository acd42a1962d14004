"""An incident upgraded after it opened is routed again at its new level.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Frozen history, as 0001: what this revision adds is written out here.

- incident_recipients.upgraded_to: the level (severity 1 red ... 4 blue) at which an upgrade of
  the incident pushed this recipient; NULL for a recipient the routing reached when the incident
  opened (tier 0) or an escalation reached (tier 1..). The sender's fan-out of an opened
  incident's one `routed` outbox row takes the tier-0 rows with no `upgraded_to` (an upgrade's
  pushes have outbox rows of their own). Existing rows stay NULL: none was pushed by an upgrade.
The downgrade drops the column; the recipients upgrades reached stay (tier 0), so a further
downgrade past 0009 would write them a routing push besides the one their own outbox row made.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("incident_recipients", sa.Column("upgraded_to", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("incident_recipients", "upgraded_to")
