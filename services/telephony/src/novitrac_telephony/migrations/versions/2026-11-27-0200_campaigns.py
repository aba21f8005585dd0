"""campaigns: outbound calls to a list, and each recipient's attempts and outcome

Revision ID: d363d5df47a7
Revises: aec5aa9e364f
Create Date: 2026-11-27 02:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d363d5df47a7"
down_revision: str | None = "aec5aa9e364f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("from_number_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column(
            "pause_reason",
            sa.Text(),
            nullable=True,
            comment="Why a paused campaign stopped dialing.",
        ),
        sa.Column("max_concurrent", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("retry_delay_s", sa.Integer(), nullable=False),
        sa.Column(
            "window_start",
            sa.Time(),
            nullable=True,
            comment="Calls start only from this local time.",
        ),
        sa.Column(
            "window_end",
            sa.Time(),
            nullable=True,
            comment="Calls start only before this local time.",
        ),
        sa.Column(
            "window_timezone",
            sa.Text(),
            nullable=True,
            comment="The IANA time zone of the calling window.",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("campaigns_pkey")),
        schema="telephony",
        comment="Outbound calls to a list of recipients, placed by the campaign runner.",
    )
    op.create_index(
        "ix_campaigns_org_created",
        "campaigns",
        ["org_id", "created_at", "id"],
        unique=False,
        schema="telephony",
    )
    op.create_index(
        "ix_campaigns_running",
        "campaigns",
        ["created_at"],
        unique=False,
        schema="telephony",
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_table(
        "campaign_recipients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("to_number", sa.Text(), nullable=False),
        sa.Column(
            "variables",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When a retry_wait one is due.",
        ),
        sa.Column("last_call_id", sa.Uuid(), nullable=True),
        sa.Column("last_outcome", sa.Text(), nullable=True),
        sa.Column(
            "claimed_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When a runner took it for dialing; a stale claim is the trace of a dead runner.",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["telephony.campaigns.id"],
            name=op.f("campaign_recipients_campaign_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("campaign_recipients_pkey")),
        sa.UniqueConstraint(
            "campaign_id", "position", name=op.f("campaign_recipients_campaign_id_position_key")
        ),
        sa.UniqueConstraint(
            "campaign_id", "to_number", name=op.f("campaign_recipients_campaign_id_to_number_key")
        ),
        schema="telephony",
        comment="A campaign's numbers to call, each with its own attempts and outcome.",
    )
    op.create_index(
        "ix_campaign_recipients_active",
        "campaign_recipients",
        ["campaign_id", "claimed_at"],
        unique=False,
        schema="telephony",
        postgresql_where=sa.text("status IN ('dialing', 'in_call')"),
    )
    op.create_index(
        "ix_campaign_recipients_due",
        "campaign_recipients",
        ["campaign_id", "position"],
        unique=False,
        schema="telephony",
        postgresql_where=sa.text("status IN ('pending', 'retry_wait')"),
    )
    op.create_index(
        "ix_campaign_recipients_in_call",
        "campaign_recipients",
        ["last_call_id"],
        unique=False,
        schema="telephony",
        postgresql_where=sa.text("status = 'in_call'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_campaign_recipients_in_call",
        table_name="campaign_recipients",
        schema="telephony",
        postgresql_where=sa.text("status = 'in_call'"),
    )
    op.drop_index(
        "ix_campaign_recipients_due",
        table_name="campaign_recipients",
        schema="telephony",
        postgresql_where=sa.text("status IN ('pending', 'retry_wait')"),
    )
    op.drop_index(
        "ix_campaign_recipients_active",
        table_name="campaign_recipients",
        schema="telephony",
        postgresql_where=sa.text("status IN ('dialing', 'in_call')"),
    )
    op.drop_table("campaign_recipients", schema="telephony")
    op.drop_index(
        "ix_campaigns_running",
        table_name="campaigns",
        schema="telephony",
        postgresql_where=sa.text("status = 'running'"),
    )
    op.drop_index("ix_campaigns_org_created", table_name="campaigns", schema="telephony")
    op.drop_table("campaigns", schema="telephony")
