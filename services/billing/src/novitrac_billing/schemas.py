"""HTTP request and response models. Money is an integer in the currency's smallest unit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StrictInt, field_validator

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")]


class Limits(BaseModel):
    """What a plan allows."""

    concurrent_calls: int
    phone_numbers: int
    minimum_call_balance: int


class PlanOut(BaseModel):
    """A plan as offered."""

    id: UUID
    code: str
    name: str
    currency: str
    monthly_price: int
    included_credit: int = Field(description="Credit granted with each paid monthly invoice.")
    trial_credit: int = Field(description="Credit a new organisation starts with on this plan.")
    outbound_rate_per_minute: int
    inbound_rate_per_minute: int
    increment: Literal["second", "minute"] = Field(description="Billed per second or per minute.")
    minimum_seconds: int = Field(description="Shortest billed duration of an answered call.")
    low_balance_threshold: int
    limits: Limits
    is_default: bool


class CreditPackOut(BaseModel):
    """A credit pack as offered."""

    id: UUID
    code: str
    name: str
    currency: str
    price: int
    credit: int


class Catalogue(BaseModel):
    """Everything on sale."""

    plans: list[PlanOut]
    credit_packs: list[CreditPackOut]


class SubscriptionOut(BaseModel):
    """The organisation's Stripe subscription."""

    id: str
    plan_code: str
    status: str
    cancel_at_period_end: bool
    current_period_end: datetime | None


class AccountOut(BaseModel):
    """An organisation's billing account."""

    org_id: UUID
    balance: int = Field(description="Credit left; may be negative after calls overran.")
    currency: str
    standing: Literal["active", "suspended"]
    suspension_reason: str | None
    grace_period_ends_at: datetime | None = Field(
        description="Set after a failed payment: when the account is suspended if still unpaid."
    )
    plan: PlanOut
    pending_plan: PlanOut | None = Field(description="The plan that starts with the next period.")
    pending_plan_at: datetime | None
    subscription: SubscriptionOut | None


class LedgerEntryOut(BaseModel):
    """One ledger entry, seen from the organisation's credit account."""

    id: int
    kind: str
    reference: str
    amount: int = Field(description="Signed: positive credits the balance, negative debits it.")
    debit_account: str
    credit_account: str
    balance_after: int
    description: str
    created_at: datetime


class LedgerPage(BaseModel):
    """Entries, newest first, and the cursor of the next page (None at the end)."""

    items: list[LedgerEntryOut]
    next_cursor: str | None


class InvoiceOut(BaseModel):
    """A Stripe invoice of the organisation's subscription; amounts in the smallest unit."""

    id: str
    number: str | None
    status: str | None = Field(description="draft, open, paid, uncollectible or void.")
    currency: str
    amount_due: int
    amount_paid: int
    amount_remaining: int
    period_start: datetime | None
    period_end: datetime | None
    created_at: datetime
    paid_at: datetime | None
    hosted_invoice_url: str | None = Field(description="Stripe's page for the invoice.")
    invoice_pdf: str | None


class InvoicePage(BaseModel):
    """Invoices, newest first, and the cursor of the next page (None at the end)."""

    items: list[InvoiceOut]
    next_cursor: str | None


class ReceiptOut(BaseModel):
    """One payment the organisation made: a credit pack or a paid subscription invoice."""

    kind: Literal["credit_pack", "invoice"]
    reference: str = Field(description="The checkout session id or the invoice id.")
    description: str
    amount: int = Field(description="Paid, in the smallest unit.")
    currency: str
    paid_at: datetime
    receipt_url: str | None = Field(description="Stripe's page for the payment, when it has one.")


class ReceiptList(BaseModel):
    """Payments, newest first."""

    items: list[ReceiptOut]


class SubscriptionCheckout(BaseModel):
    """Subscribe to a plan."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["subscription"]
    plan: Code
    success_url: HttpUrl | None = None
    cancel_url: HttpUrl | None = None


class CreditPackCheckout(BaseModel):
    """Buy a credit pack once."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["credit_pack"]
    credit_pack: Code
    success_url: HttpUrl | None = None
    cancel_url: HttpUrl | None = None


CheckoutRequest = Annotated[SubscriptionCheckout | CreditPackCheckout, Field(discriminator="kind")]


class CheckoutOut(BaseModel):
    """A Stripe Checkout session to send the shopper to."""

    id: str
    url: str
    kind: Literal["subscription", "credit_pack"]
    amount: int
    currency: str


class PlanChange(BaseModel):
    """Move the subscription to another plan from its next period."""

    model_config = ConfigDict(extra="forbid")

    plan: Code


class AdjustmentIn(BaseModel):
    """A correction to an organisation's balance, by an operator."""

    model_config = ConfigDict(extra="forbid")

    org_id: UUID
    amount: StrictInt = Field(description="Signed, non-zero; positive credits the organisation.")
    kind: Literal["adjustment", "refund"] = "adjustment"
    reference: str = Field(
        min_length=1, max_length=200, description="Idempotency key: what the correction is for."
    )
    description: str = Field(min_length=1, max_length=500)

    @field_validator("amount")
    @classmethod
    def _moves_money(cls, amount: int) -> int:
        if amount == 0:
            raise ValueError("an adjustment moves a non-zero amount")
        return amount


class AdjustmentOut(BaseModel):
    """The entry an adjustment wrote (or had written before with the same reference)."""

    entry: LedgerEntryOut
    balance: int
    created: bool


class WebhookAck(BaseModel):
    """What became of a Stripe event."""

    id: str
    outcome: Literal["applied", "ignored", "duplicate"]
    reason: str | None = None


class UsageRow(BaseModel):
    """Charged calls of one day, agent or phone number."""

    key: str = Field(description="The day (YYYY-MM-DD, UTC), agent id or phone number id.")
    calls: int
    billed_seconds: int
    amount: int
    currency: str


class UsageOut(BaseModel):
    """Usage grouped as asked."""

    by: Literal["day", "agent", "number"]
    data: list[UsageRow]
