"""an index on the inbox's processed_at, for purging old claims

Revision ID: 3ea914c460c0
Revises: fdd9d00310d9
Create Date: 2026-11-26 20:10:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3ea914c460c0"
down_revision: str | None = "fdd9d00310d9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_inbox_processed_at", "inbox", ["processed_at"], unique=False, schema="notifications"
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_processed_at", table_name="inbox", schema="notifications")
