"""agent tools: the customer's HTTP tools of each agent and their sealed signing secret

Revision ID: 5d0c7a3e91f2
Revises: b606007ed4ab
Create Date: 2026-11-27 03:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5d0c7a3e91f2"
down_revision: str | None = "b606007ed4ab"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "agents",
        sa.Column(
            "tools",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
            comment="The customer's HTTP tools the agent may call (name, description, url...).",
        ),
        schema="voice",
    )
    op.add_column(
        "agents",
        sa.Column(
            "tool_secret_sealed",
            sa.LargeBinary(),
            nullable=True,
            comment="The tools' whsec_ signing secret, sealed under VOICE_KEY_ENCRYPTION_KEY.",
        ),
        schema="voice",
    )


def downgrade() -> None:
    op.drop_column("agents", "tool_secret_sealed", schema="voice")
    op.drop_column("agents", "tools", schema="voice")
