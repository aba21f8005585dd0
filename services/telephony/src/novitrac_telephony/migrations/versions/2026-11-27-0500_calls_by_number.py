"""calls by number: find an organisation's calls to or from one number (a contact's history)

Revision ID: 9e2b4d7a1c35
Revises: 7c1e9a4d2f60
Create Date: 2026-11-27 05:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9e2b4d7a1c35"
down_revision: str | None = "7c1e9a4d2f60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Built without locking ``calls`` against writes (calls keep being placed and updated while
    # they build): CONCURRENTLY cannot run inside a transaction, hence the autocommit block, and
    # a build interrupted half-way is picked up by ``IF NOT EXISTS`` when the upgrade is rerun.
    with op.get_context().autocommit_block():
        op.create_index(
            op.f("ix_calls_org_to_number"),
            "calls",
            ["org_id", "to_number", "created_at"],
            schema="telephony",
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.create_index(
            op.f("ix_calls_org_from_number"),
            "calls",
            ["org_id", "from_number", "created_at"],
            schema="telephony",
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            op.f("ix_calls_org_from_number"),
            table_name="calls",
            schema="telephony",
            postgresql_concurrently=True,
            if_exists=True,
        )
        op.drop_index(
            op.f("ix_calls_org_to_number"),
            table_name="calls",
            schema="telephony",
            postgresql_concurrently=True,
            if_exists=True,
        )
