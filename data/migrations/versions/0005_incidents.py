"""Incidents: incidents, recipients, transitions, inbox, outbox, applied seq (owner: incidents core work; empty until it lands).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

Frozen history, as 0001: tables are written out here as they are at this revision.
"""

from __future__ import annotations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
