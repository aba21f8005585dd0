"""an index on the inbox's processed_at, for purging old claims

Revision ID: 013474eb0e07
Revises: f78de71275b0
Create Date: 2026-11-26 20:10:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "013474eb0e07"
down_revision: str | None = "f78de71275b0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at"], unique=False, schema="auth")


def downgrade() -> None:
    op.drop_index("ix_inbox_processed_at", table_name="inbox", schema="auth")
