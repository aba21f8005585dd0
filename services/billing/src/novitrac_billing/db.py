"""The `billing` schema: every table the billing service owns.

Money is ``BigInteger`` in the currency's smallest unit everywhere; no column holds a float.
Plan and credit pack rows are never changed once written: a new price is a new plan, so a rate
looked up for a past call is the rate that applied then.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from novitrac_kit.db import service_metadata
from novitrac_kit.inbox import inbox_table
from novitrac_kit.outbox import outbox_table

metadata = service_metadata("billing")
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

plans = Table(
    "plans",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("code", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("monthly_price", BigInteger, nullable=False),
    Column("included_credit", BigInteger, nullable=False, comment="Granted on each paid invoice."),
    Column("trial_credit", BigInteger, nullable=False, comment="Granted when an account opens."),
    Column("outbound_rate", BigInteger, nullable=False, comment="Per minute."),
    Column("inbound_rate", BigInteger, nullable=False, comment="Per minute."),
    Column("increment", Text, nullable=False),
    Column("minimum_seconds", Integer, nullable=False),
    Column("concurrent_calls", Integer, nullable=False),
    Column("phone_numbers", Integer, nullable=False),
    Column("minimum_call_balance", BigInteger, nullable=False),
    Column("low_balance_threshold", BigInteger, nullable=False),
    Column("is_default", Boolean, nullable=False, server_default=text("false")),
    Column("offered", Boolean, nullable=False, server_default=text("true")),
    Column("position", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("increment IN ('second', 'minute')", name="increment"),
    CheckConstraint(
        "monthly_price >= 0 AND included_credit >= 0 AND trial_credit >= 0 AND outbound_rate >= 0"
        " AND inbound_rate >= 0 AND minimum_seconds >= 0 AND concurrent_calls >= 0"
        " AND phone_numbers >= 0 AND minimum_call_balance >= 0 AND low_balance_threshold >= 0",
        name="non_negative",
    ),
    Index("plans_one_default", "is_default", unique=True, postgresql_where=text("is_default")),
)

credit_packs = Table(
    "credit_packs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("code", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("price", BigInteger, nullable=False, comment="What the shopper pays."),
    Column("credit", BigInteger, nullable=False, comment="What the balance gains."),
    Column("offered", Boolean, nullable=False, server_default=text("true")),
    Column("position", Integer, nullable=False, server_default=text("0")),
    CheckConstraint("price > 0 AND credit > 0", name="positive"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("org_id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("owner_email", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("plan_id", Uuid, ForeignKey(plans.c.id), nullable=False),
    Column("pending_plan_id", Uuid, ForeignKey(plans.c.id)),
    Column("pending_plan_at", DateTime(timezone=True)),
    Column("balance", BigInteger, nullable=False, comment="Running balance: the ledger's sum."),
    Column("sequence", BigInteger, nullable=False, comment="Counts balance changes."),
    Column("standing", Text, nullable=False, server_default=text("'active'")),
    Column("suspension_reason", Text),
    Column("failed_invoice_id", Text),
    Column("grace_period_ends_at", DateTime(timezone=True)),
    Column("stripe_customer_id", Text, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("standing IN ('active', 'suspended')", name="standing"),
    Index(
        "ix_accounts_grace",
        "grace_period_ends_at",
        postgresql_where=text("grace_period_ends_at IS NOT NULL"),
    ),
    Index(
        "ix_accounts_pending_plan",
        "pending_plan_at",
        postgresql_where=text("pending_plan_id IS NOT NULL"),
    ),
)

plan_history = Table(
    "plan_history",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("org_id", Uuid, ForeignKey(accounts.c.org_id), nullable=False),
    Column("plan_id", Uuid, ForeignKey(plans.c.id), nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Index("ix_plan_history_org_id_effective_from", "org_id", "effective_from"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Text, primary_key=True, comment="Stripe's subscription id."),
    Column("org_id", Uuid, ForeignKey(accounts.c.org_id), nullable=False, index=True),
    Column("plan_id", Uuid, ForeignKey(plans.c.id), nullable=False),
    Column("status", Text, nullable=False),
    Column("cancel_at_period_end", Boolean, nullable=False),
    Column("current_period_end", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

checkouts = Table(
    "checkouts",
    metadata,
    Column("id", Text, primary_key=True, comment="Stripe's checkout session id."),
    Column("org_id", Uuid, ForeignKey(accounts.c.org_id), nullable=False, index=True),
    Column("kind", Text, nullable=False),
    Column("plan_id", Uuid, ForeignKey(plans.c.id)),
    Column("credit_pack_id", Uuid, ForeignKey(credit_packs.c.id)),
    Column("amount", BigInteger, nullable=False),
    Column("credit", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'open'")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("completed_at", DateTime(timezone=True)),
    CheckConstraint("kind IN ('subscription', 'credit_pack')", name="kind"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("org_id", Uuid, ForeignKey(accounts.c.org_id), nullable=False),
    Column("kind", Text, nullable=False),
    Column("reference", Text, nullable=False, comment="What caused it: call id, session, ..."),
    Column("debit_account", Text, nullable=False),
    Column("credit_account", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("description", Text, nullable=False),
    Column(
        "created_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    ),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("debit_account <> credit_account", name="two_accounts"),
    UniqueConstraint("org_id", "kind", "reference"),
    UniqueConstraint("org_id", "sequence"),
    Index("ix_ledger_entries_org_id_id", "org_id", "id"),
)

call_charges = Table(
    "call_charges",
    metadata,
    Column("call_id", Uuid, primary_key=True),
    Column("org_id", Uuid, ForeignKey(accounts.c.org_id), nullable=False),
    Column("plan_id", Uuid, ForeignKey(plans.c.id), nullable=False),
    Column("agent_id", Uuid, nullable=False),
    Column("phone_number_id", Uuid, nullable=False),
    Column("direction", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("duration_s", Integer, nullable=False),
    Column("billed_seconds", Integer, nullable=False),
    Column("rate_per_minute", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True), nullable=False),
    Column("meter_status", Text, nullable=False, comment="pending, reported or skipped"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("amount >= 0 AND billed_seconds >= 0", name="non_negative"),
    Index("ix_call_charges_org_id_ended_at", "org_id", "ended_at"),
    Index(
        "ix_call_charges_meter_pending",
        "created_at",
        postgresql_where=text("meter_status = 'pending'"),
    ),
)

stripe_events = Table(
    "stripe_events",
    metadata,
    Column("id", Text, primary_key=True, comment="Stripe's event id."),
    Column("type", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("outcome", Text, nullable=False, comment="applied or ignored"),
    Column("reason", Text),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
