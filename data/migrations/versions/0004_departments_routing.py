"""World tables without geometry: departments and the incident routing table (owner: incidents routing work; empty until it lands).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Frozen history, as 0001: tables are written out here as they are at this revision.
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
