"""an index on the inbox's processed_at, for purging old claims

Revision ID: 1e4af3b49be7
Revises: 7d3b9c2a4e10
Create Date: 2026-11-26 20:10:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "1e4af3b49be7"
down_revision: str | None = "7d3b9c2a4e10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_inbox_processed_at", "inbox", ["processed_at"], unique=False, schema="billing"
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_processed_at", table_name="inbox", schema="billing")
