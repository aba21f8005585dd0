"""seed plans and credit packs, guard the ledger

The plans and credit packs on offer are data: a price change is a new row (rows are never edited,
so a past call is always rated at the rate that applied). The ledger refuses UPDATE and DELETE.

Revision ID: 7d3b9c2a4e10
Revises: ea56ee50653d
Create Date: 2026-11-26 14:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d3b9c2a4e10"
down_revision: str | None = "ea56ee50653d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLAN_COLUMNS = [
    "id",
    "code",
    "name",
    "currency",
    "monthly_price",
    "included_credit",
    "trial_credit",
    "outbound_rate",
    "inbound_rate",
    "increment",
    "minimum_seconds",
    "concurrent_calls",
    "phone_numbers",
    "minimum_call_balance",
    "low_balance_threshold",
    "is_default",
    "offered",
    "position",
]

# Amounts in US cents; rates per minute.
PLANS = [
    (
        "3f0d6a52-0c0e-4b8e-9c51-2d7f61a0b001",
        "free",
        "Free",
        "USD",
        0,
        0,
        500,
        15,
        10,
        "minute",
        60,
        2,
        1,
        50,
        200,
        True,
        True,
        0,
    ),
    (
        "3f0d6a52-0c0e-4b8e-9c51-2d7f61a0b002",
        "starter",
        "Starter",
        "USD",
        4900,
        5000,
        0,
        12,
        8,
        "second",
        30,
        5,
        3,
        50,
        1000,
        False,
        True,
        1,
    ),
    (
        "3f0d6a52-0c0e-4b8e-9c51-2d7f61a0b003",
        "pro",
        "Pro",
        "USD",
        19900,
        22000,
        0,
        9,
        6,
        "second",
        15,
        20,
        10,
        100,
        5000,
        False,
        True,
        2,
    ),
]

PACK_COLUMNS = ["id", "code", "name", "currency", "price", "credit", "offered", "position"]
PACKS = [
    (
        "6a1e9b33-5d4f-4e0a-8f27-91c0d5e2a001",
        "credits_20",
        "$20 of call credit",
        "USD",
        2000,
        2000,
        True,
        0,
    ),
    (
        "6a1e9b33-5d4f-4e0a-8f27-91c0d5e2a002",
        "credits_50",
        "$50 of call credit (+5%)",
        "USD",
        5000,
        5250,
        True,
        1,
    ),
    (
        "6a1e9b33-5d4f-4e0a-8f27-91c0d5e2a003",
        "credits_100",
        "$100 of call credit (+10%)",
        "USD",
        10000,
        11000,
        True,
        2,
    ),
]


def upgrade() -> None:
    plans = sa.table("plans", *(sa.column(c) for c in PLAN_COLUMNS), schema="billing")
    packs = sa.table("credit_packs", *(sa.column(c) for c in PACK_COLUMNS), schema="billing")
    op.bulk_insert(plans, [dict(zip(PLAN_COLUMNS, row, strict=True)) for row in PLANS])
    op.bulk_insert(packs, [dict(zip(PACK_COLUMNS, row, strict=True)) for row in PACKS])
    op.execute(
        """
        CREATE FUNCTION billing.refuse_ledger_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger entries are never updated or deleted';
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER ledger_entries_append_only
        BEFORE UPDATE OR DELETE ON billing.ledger_entries
        FOR EACH ROW EXECUTE FUNCTION billing.refuse_ledger_change()
        """
    )
    op.execute(
        """
        CREATE TRIGGER ledger_entries_no_truncate
        BEFORE TRUNCATE ON billing.ledger_entries
        FOR EACH STATEMENT EXECUTE FUNCTION billing.refuse_ledger_change()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER ledger_entries_no_truncate ON billing.ledger_entries")
    op.execute("DROP TRIGGER ledger_entries_append_only ON billing.ledger_entries")
    op.execute("DROP FUNCTION billing.refuse_ledger_change()")
    op.execute("DELETE FROM billing.credit_packs")
    op.execute("DELETE FROM billing.plans")
