"""webhooks: the organisations' endpoints and each event's delivery to each of them

Revision ID: e30f32ce688c
Revises: 1a520f3132db
Create Date: 2026-11-27 03:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e30f32ce688c"
down_revision: str | None = "1a520f3132db"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column(
            "event_types",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
            comment="Event types sent to it; empty means every type offered.",
        ),
        sa.Column(
            "secret",
            sa.Text(),
            nullable=False,
            comment="whsec_<base64 key> that signs its deliveries; shown to the user only when set.",
        ),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column(
            "consecutive_failures",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Failed attempts since its last success; too many disable it.",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("webhook_endpoints_pkey")),
        schema="notifications",
        comment="The organisations' own HTTPS endpoints that receive their events, signed.",
    )
    op.create_index(
        "ix_webhook_endpoints_org_id_created_at",
        "webhook_endpoints",
        ["org_id", "created_at", "id"],
        unique=False,
        schema="notifications",
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False, comment="Also the webhook-id header."),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="The body sent: the event's envelope.",
        ),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="While pending: when it is due (or, while being sent, when its lease runs out).",
        ),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_duration_ms", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')",
            name=op.f("webhook_deliveries_status_is_known_check"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["notifications.webhook_endpoints.id"],
            name=op.f("webhook_deliveries_endpoint_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("webhook_deliveries_pkey")),
        sa.UniqueConstraint(
            "endpoint_id", "event_id", name=op.f("webhook_deliveries_endpoint_id_event_id_key")
        ),
        schema="notifications",
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        unique=False,
        schema="notifications",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_id_created_at",
        "webhook_deliveries",
        ["endpoint_id", "created_at", "id"],
        unique=False,
        schema="notifications",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_webhook_deliveries_endpoint_id_created_at",
        table_name="webhook_deliveries",
        schema="notifications",
    )
    op.drop_index(
        "ix_webhook_deliveries_due",
        table_name="webhook_deliveries",
        schema="notifications",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("webhook_deliveries", schema="notifications")
    op.drop_index(
        "ix_webhook_endpoints_org_id_created_at",
        table_name="webhook_endpoints",
        schema="notifications",
    )
    op.drop_table("webhook_endpoints", schema="notifications")
