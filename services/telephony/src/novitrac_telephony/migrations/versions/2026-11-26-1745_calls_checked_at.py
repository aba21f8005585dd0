"""when a quiet call was last checked with Twilio

Revision ID: 9b3d5f7a1c62
Revises: 5c1e7a9d2b40
Create Date: 2026-11-26 17:45:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b3d5f7a1c62"
down_revision: str | None = "5c1e7a9d2b40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "calls",
        sa.Column(
            "checked_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the call's status was last asked of Twilio, its callbacks having gone quiet.",
        ),
        schema="telephony",
    )


def downgrade() -> None:
    op.drop_column("calls", "checked_at", schema="telephony")
