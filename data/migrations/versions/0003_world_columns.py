"""World columns this round adds: waybill actual times, vehicle carrier, site occupancy.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

Frozen history, as 0001: the columns are written out here as they are at this revision.

- waybills.actual_departure, waybills.actual_unloading (optional): when the truck really left
  its loading site and really finished unloading; the waybill stage honours them over the plan.
  A waybill's status may now also be `cancelled` (a text column: no schema change).
- vehicles.carrier_id (optional): the entity (a licensed transport enterprise) that operates the
  truck; incidents about a truck are routed to it.
- sensitive_sites.occupancy (optional): people present (pupils, beds, residents), weighting the
  site's exposure in the risk grid.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


# Plain ADD/DROP COLUMN on both backends (SQLite >= 3.35): a batch rebuild of `waybills` on SQLite
# drops the old table, and its ON DELETE CASCADE would take every waybill's goods with it.
COLUMNS = {
    "waybills": [("actual_departure", "datetime"), ("actual_unloading", "datetime")],
    "vehicles": [("carrier_id", "str")],
    "sensitive_sites": [("occupancy", "int")],
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    types = {
        "datetime": (lambda: sa.DateTime(timezone=True)) if postgres else sa.BigInteger,
        "str": sa.Text,
        "int": sa.BigInteger,
    }
    for table, columns in COLUMNS.items():
        for name, kind in columns:
            op.add_column(table, sa.Column(name, types[kind](), nullable=True))


def downgrade() -> None:
    for table, columns in reversed(COLUMNS.items()):
        for name, _ in reversed(columns):
            op.execute(f'ALTER TABLE "{table}" DROP COLUMN "{name}"')
