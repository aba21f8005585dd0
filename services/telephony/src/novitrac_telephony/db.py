"""The `telephony` schema: every table the telephony service owns."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    Time,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from novitrac_kit.db import service_metadata
from novitrac_kit.inbox import inbox_table
from novitrac_kit.outbox import outbox_table

metadata = service_metadata("telephony")
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

accounts = Table(
    "accounts",
    metadata,
    Column("org_id", Uuid, primary_key=True),
    Column("plan_id", Uuid, comment="Null until billing.plan.changed.v1 arrives."),
    Column("currency", Text),
    Column("concurrent_calls", Integer, nullable=False, server_default=text("0")),
    Column("phone_numbers", Integer, nullable=False, server_default=text("0")),
    Column("minimum_call_balance", BigInteger, nullable=False, server_default=text("0")),
    Column("balance", BigInteger, comment="Null until billing.balance.changed.v1 arrives."),
    Column("balance_sequence", BigInteger, nullable=False, server_default=text("0")),
    Column("suspended", Boolean, nullable=False, server_default=text("false")),
    Column(
        "standing_changed_at",
        DateTime(timezone=True),
        comment="When billing decided the standing applied; an older decision never overrides it.",
    ),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    comment="Projection of billing's view of each organisation; its row lock serialises calls.",
)

agents = Table(
    "agents",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("org_id", Uuid, nullable=False, index=True),
    Column("revision", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("max_duration_s", Integer, nullable=False),
    Column("machine_detection", Text, nullable=False),
    Column("transfer_number", Text),
    Column("sync_status", Text, nullable=False),
    Column("deleted", Boolean, nullable=False, server_default=text("false")),
    comment="Projection of voice-ai's agents (voice.agent.updated/deleted.v1).",
)

phone_numbers = Table(
    "phone_numbers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("org_id", Uuid, nullable=False),
    Column("phone_number", Text, nullable=False),
    Column("twilio_sid", Text, nullable=False),
    Column("friendly_name", Text, nullable=False),
    Column("agent_id", Uuid),
    Column("voice", Boolean, nullable=False, server_default=text("true")),
    Column("sms", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("released_at", DateTime(timezone=True)),
    Index("ix_phone_numbers_org", "org_id", "created_at"),
    Index(
        "uq_phone_numbers_held",
        "phone_number",
        unique=True,
        postgresql_where=text("released_at IS NULL"),
    ),
)

calls = Table(
    "calls",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("org_id", Uuid, nullable=False),
    Column("agent_id", Uuid, nullable=False),
    Column("phone_number_id", Uuid, nullable=False),
    Column("direction", Text, nullable=False),
    Column("from_number", Text, nullable=False),
    Column("to_number", Text, nullable=False),
    Column("twilio_sid", Text, unique=True),
    Column("status", Text, nullable=False),
    Column(
        "status_sequence",
        Integer,
        nullable=False,
        server_default=text("0"),
        comment="Counts applied status changes; the sequence of telephony.call.* events.",
    ),
    Column(
        "callback_sequence",
        Integer,
        comment="Highest Twilio SequenceNumber seen; older callbacks change nothing.",
    ),
    Column("variables", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("machine_detection", Text, nullable=False, server_default=text("'off'")),
    Column("max_duration_s", Integer, nullable=False),
    Column("answered_by", Text),
    Column("ended_reason", Text),
    Column("duration_s", Integer),
    Column("price", Text),
    Column("price_unit", Text),
    Column("recording_url", Text),
    Column("recording_sid", Text),
    Column("recording_duration_s", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("conversation_id", Uuid),
    Column("transcript", JSONB),
    Column("summary", Text),
    Column("cost_amount", BigInteger),
    Column("cost_currency", Text),
    Column("billed_seconds", Integer),
    Column("rate_per_minute", BigInteger),
    Column(
        "checked_at",
        DateTime(timezone=True),
        comment="When the call's status was last asked of Twilio, its callbacks having gone quiet.",
    ),
    Index("ix_calls_org_created", "org_id", "created_at", "id"),
    Index("ix_calls_org_to_number", "org_id", "to_number", "created_at"),
    Index("ix_calls_org_from_number", "org_id", "from_number", "created_at"),
    Index(
        "ix_calls_active",
        "org_id",
        postgresql_where=text("status IN ('queued', 'ringing', 'in-progress')"),
    ),
)

call_events = Table(
    "call_events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("call_id", Uuid, ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
    Column("status", Text, nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("call_id", "sequence"),
    comment="A call's status history: one row per applied change.",
)

sms_messages = Table(
    "sms_messages",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("org_id", Uuid, nullable=False),
    Column("phone_number_id", Uuid, nullable=False),
    Column("direction", Text, nullable=False),
    Column("from_number", Text, nullable=False),
    Column("to_number", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("twilio_sid", Text, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_sms_org_created", "org_id", "created_at", "id"),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("org_id", Uuid, nullable=False),
    Column("name", Text, nullable=False),
    Column("agent_id", Uuid, nullable=False),
    Column("from_number_id", Uuid, nullable=False),
    Column("status", Text, nullable=False),
    Column("pause_reason", Text, comment="Why a paused campaign stopped dialing."),
    Column("max_concurrent", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("retry_delay_s", Integer, nullable=False),
    Column("window_start", Time, comment="Calls start only from this local time."),
    Column("window_end", Time, comment="Calls start only before this local time."),
    Column("window_timezone", Text, comment="The IANA time zone of the calling window."),
    Column(
        "window_days",
        ARRAY(Text),
        comment="The local days (mon..sun) the calling window opens on; null: every day.",
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Index("ix_campaigns_org_created", "org_id", "created_at", "id"),
    Index("ix_campaigns_running", "created_at", postgresql_where=text("status = 'running'")),
    comment="Outbound calls to a list of recipients, placed by the campaign runner.",
)

campaign_recipients = Table(
    "campaign_recipients",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("campaign_id", Uuid, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("to_number", Text, nullable=False),
    Column("variables", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), comment="When a retry_wait one is due."),
    Column("last_call_id", Uuid),
    Column("last_outcome", Text),
    Column(
        "claimed_at",
        DateTime(timezone=True),
        comment="When a runner took it for dialing; a stale claim is the trace of a dead runner.",
    ),
    UniqueConstraint("campaign_id", "to_number"),
    UniqueConstraint("campaign_id", "position"),
    Index(
        "ix_campaign_recipients_due",
        "campaign_id",
        "position",
        postgresql_where=text("status IN ('pending', 'retry_wait')"),
    ),
    Index(
        "ix_campaign_recipients_active",
        "campaign_id",
        "claimed_at",
        postgresql_where=text("status IN ('dialing', 'in_call')"),
    ),
    Index(
        "ix_campaign_recipients_in_call",
        "last_call_id",
        postgresql_where=text("status = 'in_call'"),
    ),
    comment="A campaign's numbers to call, each with its own attempts and outcome.",
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("org_id", Uuid, nullable=False),
    Column("phone_number", Text, nullable=False, comment="E.164; one contact per number per org."),
    Column("name", Text),
    Column("email", Text),
    Column("variables", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("tags", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("notes", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("org_id", "phone_number"),
    Index("ix_contacts_org_created", "org_id", "created_at", "id"),
    Index("ix_contacts_tags", "tags", postgresql_using="gin"),
    comment="The people an organisation calls or is called by, with their prompt variables.",
)

do_not_call = Table(
    "do_not_call",
    metadata,
    Column("org_id", Uuid, primary_key=True),
    Column("phone_number", Text, primary_key=True),
    Column("reason", Text),
    Column("source", Text, nullable=False, comment="api, import or sms (an opt-out keyword)."),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    comment="Numbers an organisation may not call: opted-out contacts and numbers of its own list.",
)
