"""campaigns: the local days a calling window opens on

Revision ID: 4f8a2c6e1b93
Revises: d363d5df47a7
Create Date: 2026-11-27 03:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "4f8a2c6e1b93"
down_revision: str | None = "d363d5df47a7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Null for the campaigns created before: their windows open every day.
    op.add_column(
        "campaigns",
        sa.Column(
            "window_days",
            postgresql.ARRAY(sa.Text()),
            nullable=True,
            comment="The local days (mon..sun) the calling window opens on; null: every day.",
        ),
        schema="telephony",
    )


def downgrade() -> None:
    op.drop_column("campaigns", "window_days", schema="telephony")
