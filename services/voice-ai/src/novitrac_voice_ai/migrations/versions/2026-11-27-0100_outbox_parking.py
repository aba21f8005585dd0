"""outbox parking: refusals counted per event, parked events set aside from the claims

Revision ID: b606007ed4ab
Revises: 9c3abab3baff
Create Date: 2026-11-27 01:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b606007ed4ab"
down_revision: str | None = "9c3abab3baff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "outbox",
        sa.Column(
            "refusals",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Publications the broker refused since the event was written or released.",
        ),
        schema="voice",
    )
    op.add_column(
        "outbox",
        sa.Column(
            "parked_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the relay stopped trying, the broker having refused it too often.",
        ),
        schema="voice",
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["created_at"],
        unique=False,
        schema="voice",
        postgresql_where=sa.text("published_at IS NULL AND parked_at IS NULL"),
    )
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema="voice")
    op.create_index(
        "ix_outbox_parked",
        "outbox",
        ["created_at"],
        unique=False,
        schema="voice",
        postgresql_where=sa.text("parked_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_parked", table_name="outbox", schema="voice")
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["created_at"],
        unique=False,
        schema="voice",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_index("ix_outbox_pending", table_name="outbox", schema="voice")
    op.drop_column("outbox", "parked_at", schema="voice")
    op.drop_column("outbox", "refusals", schema="voice")
