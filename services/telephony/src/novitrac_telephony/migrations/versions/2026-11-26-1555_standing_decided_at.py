"""when the account standing projected was decided

Revision ID: 5c1e7a9d2b40
Revises: e8ef8d0139d3
Create Date: 2026-11-26 15:55:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1e7a9d2b40"
down_revision: str | None = "e8ef8d0139d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column(
            "standing_changed_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When billing decided the standing applied; an older decision never overrides it.",
        ),
        schema="telephony",
    )


def downgrade() -> None:
    op.drop_column("accounts", "standing_changed_at", schema="telephony")
