"""an index on the inbox's processed_at, for purging old claims

Revision ID: f12e057491ce
Revises: 9b3d5f7a1c62
Create Date: 2026-11-26 20:10:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f12e057491ce"
down_revision: str | None = "9b3d5f7a1c62"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_inbox_processed_at", "inbox", ["processed_at"], unique=False, schema="telephony"
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_processed_at", table_name="inbox", schema="telephony")
