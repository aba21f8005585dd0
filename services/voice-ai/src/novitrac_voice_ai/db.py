"""The `voice` schema: every table the voice-ai service owns."""

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
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from novitrac_kit.db import service_metadata
from novitrac_kit.inbox import inbox_table
from novitrac_kit.outbox import outbox_table

metadata = service_metadata("voice")
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

agents = Table(
    "agents",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("org_id", Uuid, nullable=False),
    Column("name", Text, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("first_message", Text, nullable=False),
    Column("language", Text, nullable=False),
    Column("voice_id", Text, nullable=False),
    Column("llm", Text, nullable=False),
    Column("max_duration_s", Integer, nullable=False),
    Column("machine_detection", Text, nullable=False),
    Column("voicemail_message", Text),
    Column("transfer_number", Text),
    Column("allowed_overrides", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("variables", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column(
        "tools",
        JSONB,
        nullable=False,
        server_default=text("'[]'::jsonb"),
        comment="The customer's HTTP tools the agent may call (name, description, url...).",
    ),
    Column(
        "tool_secret_sealed",
        LargeBinary,
        comment="The tools' whsec_ signing secret, sealed under VOICE_KEY_ENCRYPTION_KEY.",
    ),
    Column("revision", Integer, nullable=False, comment="Grows with every voice.agent.* event."),
    Column("sync_status", Text, nullable=False, comment="pending, synced or failed."),
    Column("sync_error", Text),
    Column("sync_attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_sync_at", DateTime(timezone=True)),
    Column("synced_at", DateTime(timezone=True)),
    Column("elevenlabs_agent_id", Text),
    Column("deleted_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_agents_org_id_created_at", "org_id", "created_at"),
    Index(
        "ix_agents_sync_due",
        "next_sync_at",
        postgresql_where=text("sync_status <> 'synced'"),
    ),
)

elevenlabs_keys = Table(
    "elevenlabs_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("fingerprint", Text, nullable=False, unique=True, comment="SHA-256 of the key."),
    Column("ciphertext", LargeBinary, nullable=False, comment="AES-GCM nonce + sealed key."),
    Column("label", Text, nullable=False, comment="The key's first characters, for people."),
    Column("max_concurrency", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("max_concurrency > 0", name="max_concurrency_positive"),
)

key_slots = Table(
    "key_slots",
    metadata,
    Column(
        "key_id",
        Uuid,
        ForeignKey("elevenlabs_keys.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("slot", Integer, primary_key=True, comment="0 .. the key's max_concurrency - 1."),
    Column("lease_id", Uuid, comment="The lease holding the slot, when one does."),
    Column("call_id", Uuid),
    Column("holder", Text, comment="The process holding it (its heartbeat renews it)."),
    Column("expires_at", DateTime(timezone=True), comment="Free again after this."),
    Index("ix_key_slots_holder", "holder"),
)


conversations = Table(
    "conversations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("org_id", Uuid, nullable=False),
    Column("call_id", Uuid, nullable=False),
    Column("agent_id", Uuid, nullable=False),
    Column("call_sid", Text),
    Column("direction", Text),
    Column("from_number", Text),
    Column("to_number", Text),
    Column("answered_by", Text),
    Column("elevenlabs_conversation_id", Text, unique=True),
    Column("key_id", Uuid),
    Column("status", Text, nullable=False, comment="live, ended or failed."),
    Column("ended_reason", Text),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("ended_at", DateTime(timezone=True)),
    Column("ai_seconds", Integer, nullable=False, server_default=text("0")),
    Column("transcript", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("metrics", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("summary", Text),
    Column("outcome", Text),
    Column("analysis", JSONB),
    Column("analyzed_at", DateTime(timezone=True)),
    Column("reconcile_attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_reconcile_at", DateTime(timezone=True)),
    Index("ix_conversations_org_id_started_at", "org_id", "started_at"),
    Index("ix_conversations_call_id", "call_id"),
    Index(
        "ix_conversations_reconcile_due",
        "next_reconcile_at",
        postgresql_where=text("analyzed_at IS NULL AND next_reconcile_at IS NOT NULL"),
    ),
)
