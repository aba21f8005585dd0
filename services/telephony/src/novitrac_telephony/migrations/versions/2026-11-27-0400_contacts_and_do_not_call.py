"""contacts: an organisation's people, and its do-not-call list

Revision ID: 7c1e9a4d2f60
Revises: 4f8a2c6e1b93
Create Date: 2026-11-27 04:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7c1e9a4d2f60"
down_revision: str | None = "4f8a2c6e1b93"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column(
            "phone_number",
            sa.Text(),
            nullable=False,
            comment="E.164; one contact per number per org.",
        ),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column(
            "variables",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("contacts_pkey")),
        sa.UniqueConstraint(
            "org_id", "phone_number", name=op.f("contacts_org_id_phone_number_key")
        ),
        schema="telephony",
        comment="The people an organisation calls or is called by, with their prompt variables.",
    )
    op.create_index(
        "ix_contacts_org_created",
        "contacts",
        ["org_id", "created_at", "id"],
        unique=False,
        schema="telephony",
    )
    op.create_index(
        "ix_contacts_tags",
        "contacts",
        ["tags"],
        unique=False,
        schema="telephony",
        postgresql_using="gin",
    )
    op.create_table(
        "do_not_call",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("phone_number", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "source",
            sa.Text(),
            nullable=False,
            comment="api, import or sms (an opt-out keyword).",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("org_id", "phone_number", name=op.f("do_not_call_pkey")),
        schema="telephony",
        comment=(
            "Numbers an organisation may not call: opted-out contacts and numbers of its own list."
        ),
    )


def downgrade() -> None:
    op.drop_table("do_not_call", schema="telephony")
    op.drop_index(
        "ix_contacts_tags", table_name="contacts", schema="telephony", postgresql_using="gin"
    )
    op.drop_index("ix_contacts_org_created", table_name="contacts", schema="telephony")
    op.drop_table("contacts", schema="telephony")
