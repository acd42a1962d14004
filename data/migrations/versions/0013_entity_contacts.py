"""Who answers for an enterprise: entities.contact and entities.phone (optional).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

Frozen history, as 0001: the columns are written out here as they are at this revision.

The incident panels name the carrier and the plant to call (data/incident_view.py) from these; a
world without them shows "no contact on record".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COLUMNS = ("contact", "phone")


def upgrade() -> None:
    for name in COLUMNS:  # plain ADD COLUMN on both backends, as 0003
        op.add_column("entities", sa.Column(name, sa.Text(), nullable=True))


def downgrade() -> None:
    for name in reversed(COLUMNS):
        op.execute(f'ALTER TABLE "entities" DROP COLUMN "{name}"')
