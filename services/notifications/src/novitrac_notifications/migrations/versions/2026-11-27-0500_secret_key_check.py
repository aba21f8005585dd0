"""secret key check: a known value sealed under the key the service first started with

A start-up whose NOTIFICATIONS_SECRET_ENCRYPTION_KEY does not open it refuses to start, before it
seals any clear secret under a key nobody has. The service writes the row on its first start-up
(a migration does not hold the key).

Revision ID: 8c2f4a6d1e97
Revises: 5b7d0c2e9a41
Create Date: 2026-11-27 05:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8c2f4a6d1e97"
down_revision: str | None = "5b7d0c2e9a41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_CHECK_COMMENT = (
    "One row: a known value sealed under the NOTIFICATIONS_SECRET_ENCRYPTION_KEY the service first "
    "started with; a start-up whose key does not open it refuses to start."
)


def upgrade() -> None:
    op.create_table(
        "secret_key_check",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("secret_key_check_one_row_check")),
        sa.PrimaryKeyConstraint("id", name=op.f("secret_key_check_pkey")),
        schema="notifications",
        comment=KEY_CHECK_COMMENT,
    )


def downgrade() -> None:
    op.drop_table("secret_key_check", schema="notifications")
