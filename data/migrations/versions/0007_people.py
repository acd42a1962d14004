"""People: users, API and session tokens, login failures and locks, the audit log (issue 14).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Frozen history, as 0001: tables are written out here as they are at this revision.

- users: one row per login name; role duty_officer | department | enterprise | admin | kiosk,
  the department (DEPT-…) or enterprise (ENT-…) it acts for, an argon2 hash, disabled flag.
- api_tokens: bearer tokens and screen sessions alike, stored as the SHA-256 of the secret
  (the secret itself is shown once); expiry (NULL: a kiosk's, never), revocation.
- login_failures: failures per login name since its last success, and the lock they earned.
- audit_log: append-only, who / when / from where / what / on what, written in the same
  transaction as the change it records.
PostGIS: timestamptz, JSONB. SQLite: times as INTEGER microseconds since the Unix epoch (UTC),
JSON as text.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"

    def time(name: str, nullable: bool = True) -> sa.Column:
        return sa.Column(name, sa.DateTime(timezone=True) if postgres else sa.BigInteger(), nullable=nullable)

    text, big = sa.Text, sa.BigInteger
    op.create_table(
        "users",
        sa.Column("name", text(), nullable=False),
        sa.Column("role", text(), nullable=False),
        sa.Column("department_id", text()),
        sa.Column("enterprise_id", text()),
        sa.Column("password_hash", text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        time("created_at", False), time("password_set_at", False), time("last_login_at"),
        sa.PrimaryKeyConstraint("name", name="pk_users"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", text(), nullable=False),
        sa.Column("token_hash", text(), nullable=False),
        sa.Column("user_name", text(), nullable=False),
        sa.Column("kind", text(), nullable=False),
        time("created_at", False), time("expires_at"), time("revoked_at"), time("last_used_at"),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        sa.ForeignKeyConstraint(["user_name"], ["users.name"], name="fk_api_tokens_users", ondelete="CASCADE"),
    )
    op.create_index("ix_api_tokens_user_name", "api_tokens", ["user_name"])
    op.create_table(
        "login_failures",
        sa.Column("name", text(), nullable=False),
        sa.Column("failures", big(), nullable=False),
        time("last_failure_at", False), time("locked_until"),
        sa.PrimaryKeyConstraint("name", name="pk_login_failures"),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", big() if postgres else sa.Integer(), autoincrement=True, nullable=False),
        time("at", False),
        sa.Column("actor", text(), nullable=False),
        sa.Column("role", text()),
        sa.Column("address", text()),
        sa.Column("action", text(), nullable=False),
        sa.Column("target", text()),
        sa.Column("outcome", text(), nullable=False),
        sa.Column("details", JSONB() if postgres else text()),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("login_failures")
    op.drop_index("ix_api_tokens_user_name", table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("users")
