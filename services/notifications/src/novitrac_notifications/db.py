"""The `notifications` schema: every table the notifications service owns."""

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from novitrac_kit.db import service_metadata
from novitrac_kit.inbox import inbox_table
from novitrac_kit.outbox import outbox_table

metadata = service_metadata("notifications")
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

DELIVERY_STATUSES = ("pending", "sent", "failed", "skipped")
WEBHOOK_DELIVERY_STATUSES = ("pending", "succeeded", "failed")

recipients = Table(
    "recipients",
    metadata,
    Column("user_id", Uuid, primary_key=True),
    Column("email", Text, nullable=False),
    Column("name", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    comment="Users as auth announced them: where their email goes.",
)

organizations = Table(
    "organizations",
    metadata,
    Column("org_id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    comment="Organisation names, for the text of emails and notifications.",
)

memberships = Table(
    "memberships",
    metadata,
    Column("org_id", Uuid, primary_key=True),
    Column("user_id", Uuid, primary_key=True),
    Column("role", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_memberships_org_id_role", "org_id", "role"),
    comment="Who belongs to which organisation with which role, kept from auth's events.",
)

preferences = Table(
    "preferences",
    metadata,
    Column("user_id", Uuid, primary_key=True),
    Column(
        "email_off",
        ARRAY(Text),
        nullable=False,
        server_default=text("'{}'"),
        comment="Email categories the user turned off; every other one is on.",
    ),
    Column(
        "in_app_off",
        ARRAY(Text),
        nullable=False,
        server_default=text("'{}'"),
        comment="In-app categories the user turned off; every other one is on.",
    ),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

email_deliveries = Table(
    "email_deliveries",
    metadata,
    Column("id", Uuid, primary_key=True, comment="Also the Message-ID's local part."),
    Column("org_id", Uuid),
    Column("user_id", Uuid),
    Column("to_address", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column(
        "context",
        JSONB,
        comment="The template's variables (codes included); cleared once the outcome is final.",
    ),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text),
    Column(
        "created_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    ),
    Column("sent_at", DateTime(timezone=True)),
    Column("caused_by", Uuid, comment="The id of the event that asked for this email."),
    CheckConstraint("status IN ('pending', 'sent', 'failed', 'skipped')", name="status_is_known"),
    Index(
        "ix_email_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_email_deliveries_org_id_created_at", "org_id", "created_at"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("org_id", Uuid, nullable=False),
    Column("user_id", Uuid, nullable=False),
    Column("kind", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("link", Text),
    Column("read_at", DateTime(timezone=True)),
    Column(
        "created_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    ),
    Column("caused_by", Uuid, comment="The id of the event that caused it."),
    Index("ix_notifications_feed", "org_id", "user_id", "created_at", "id"),
    Index(
        "ix_notifications_unread",
        "org_id",
        "user_id",
        postgresql_where=text("read_at IS NULL"),
    ),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("org_id", Uuid, nullable=False),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column(
        "event_types",
        ARRAY(Text),
        nullable=False,
        server_default=text("'{}'"),
        comment="Event types sent to it; empty means every type offered.",
    ),
    Column(
        "secret",
        Text,
        comment="Only endpoints made before secrets were sealed, until a start-up seals them.",
    ),
    Column(
        "secret_sealed",
        LargeBinary,
        comment="The whsec_<base64 key> that signs its deliveries, sealed (AES-256-GCM) under "
        "NOTIFICATIONS_SECRET_ENCRYPTION_KEY; shown to the user only when set.",
    ),
    CheckConstraint("secret IS NOT NULL OR secret_sealed IS NOT NULL", name="secret_kept"),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("disabled_reason", Text),
    Column(
        "consecutive_failures",
        Integer,
        nullable=False,
        server_default=text("0"),
        comment="Failed attempts since its last success; too many disable it.",
    ),
    Column(
        "created_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    ),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_webhook_endpoints_org_id_created_at", "org_id", "created_at", "id"),
    comment="The organisations' own HTTPS endpoints that receive their events, signed.",
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "endpoint_id",
        Uuid,
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", Uuid, nullable=False, comment="Also the webhook-id header."),
    Column("event_type", Text, nullable=False),
    Column("payload", JSONB, nullable=False, comment="The body sent: the event's envelope."),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column(
        "next_attempt_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
        comment="While pending: when it is due (or, while being sent, when its lease runs out).",
    ),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("last_duration_ms", Integer),
    Column(
        "created_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    ),
    Column("delivered_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status_is_known"),
    UniqueConstraint("endpoint_id", "event_id"),
    Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at", "id"),
)

KEY_CHECK_COMMENT = (
    "One row: a known value sealed under the NOTIFICATIONS_SECRET_ENCRYPTION_KEY the service first "
    "started with; a start-up whose key does not open it refuses to start."
)

secret_key_check = Table(
    "secret_key_check",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("sealed", LargeBinary, nullable=False),
    Column(
        "created_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    ),
    CheckConstraint("id = 1", name="one_row"),
    comment=KEY_CHECK_COMMENT,
)
