"""World tables without geometry: departments and the incident routing table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Frozen history, as 0001: tables are written out here as they are at this revision.

- departments: who acts on incidents — the city's departments and one district office per
  district (`district_adcode` set for district offices, empty for city departments), with contacts.
- routing: which rule ('*': every rule) about which subject kind reaches which role (a department
  kind, or `district_office` / `carrier` / `plant`, resolved per incident), up to a severity.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# name: "field:kind, optional:kind?" (every table keyed by its text `id`)
TABLES = {
    "departments": "id:str, name:str, name_en:str, kind:str, district_adcode:str?, contact:str, phone:str, email:str?",
    "routing": "id:str, rule:str, subject_kind:str, role:str, max_severity:int?",
}
_TYPES = {"str": sa.Text, "int": sa.BigInteger}


def upgrade() -> None:
    for name, fields in TABLES.items():
        columns = []
        for part in fields.split(","):
            column, kind = (s.strip() for s in part.split(":"))
            columns.append(sa.Column(column, _TYPES[kind.rstrip("?")](), nullable=kind.endswith("?")))
        op.create_table(name, *columns, sa.PrimaryKeyConstraint("id", name=f"pk_{name}"))


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
