"""webhook secrets sealed: endpoints keep their signing secret sealed, not in clear

Secrets stored in clear before this revision are sealed by the service when it starts (a migration
does not hold NOTIFICATIONS_SECRET_ENCRYPTION_KEY); until then they stay usable.

Revision ID: 5b7d0c2e9a41
Revises: e30f32ce688c
Create Date: 2026-11-27 04:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b7d0c2e9a41"
down_revision: str | None = "e30f32ce688c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLEAR_COMMENT = "Only endpoints made before secrets were sealed, until a start-up seals them."
SEALED_COMMENT = (
    "The whsec_<base64 key> that signs its deliveries, sealed (AES-256-GCM) under "
    "NOTIFICATIONS_SECRET_ENCRYPTION_KEY; shown to the user only when set."
)
OLD_COMMENT = "whsec_<base64 key> that signs its deliveries; shown to the user only when set."


def upgrade() -> None:
    op.add_column(
        "webhook_endpoints",
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=True, comment=SEALED_COMMENT),
        schema="notifications",
    )
    op.alter_column(
        "webhook_endpoints",
        "secret",
        existing_type=sa.Text(),
        nullable=True,
        comment=CLEAR_COMMENT,
        existing_comment=OLD_COMMENT,
        schema="notifications",
    )
    op.create_check_constraint(
        op.f("webhook_endpoints_secret_kept_check"),
        "webhook_endpoints",
        "secret IS NOT NULL OR secret_sealed IS NOT NULL",
        schema="notifications",
    )


def downgrade() -> None:
    sealed = op.get_bind().execute(
        sa.text("SELECT count(*) FROM notifications.webhook_endpoints WHERE secret IS NULL")
    )
    if sealed.scalar_one():
        raise RuntimeError(
            "webhook endpoints hold sealed secrets, which a migration cannot open: delete those "
            "endpoints (or keep this revision) before downgrading"
        )
    op.drop_constraint(
        op.f("webhook_endpoints_secret_kept_check"),
        "webhook_endpoints",
        schema="notifications",
        type_="check",
    )
    op.alter_column(
        "webhook_endpoints",
        "secret",
        existing_type=sa.Text(),
        nullable=False,
        comment=OLD_COMMENT,
        existing_comment=CLEAR_COMMENT,
        schema="notifications",
    )
    op.drop_column("webhook_endpoints", "secret_sealed", schema="notifications")
