"""Events published by the billing service: balances, account standing, payments, plans."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import AwareDatetime, Field

from novitrac_contracts.common import Currency, EventPart, Money
from novitrac_contracts.envelope import Event


class SuspensionReason(StrEnum):
    """Why an account was suspended."""

    INSUFFICIENT_BALANCE = "insufficient_balance"
    PAYMENT_FAILED = "payment_failed"


class ReinstatementReason(StrEnum):
    """What lifted an account's suspension."""

    PAYMENT_RECEIVED = "payment_received"
    CREDIT_GRANTED = "credit_granted"


class PaymentKind(StrEnum):
    """What a payment was for."""

    SUBSCRIPTION = "subscription"
    CREDIT_PACK = "credit_pack"


class PlanLimits(EventPart):
    """What an organisation may use under its plan."""

    concurrent_calls: int = Field(ge=0, description="Calls that may run at once.")
    phone_numbers: int = Field(ge=0, description="Phone numbers the organisation may hold.")
    minimum_call_balance: Money = Field(ge=0, description="Balance needed to start a call.")


class BalanceChanged(Event):
    """Emitted when an organisation's credit balance changes, after every change."""

    event_type: ClassVar[str] = "billing.balance.changed.v1"

    org_id: UUID
    balance: Money = Field(description="The new balance, in the smallest unit; may be negative.")
    currency: Currency
    delta: Money = Field(description="The signed change that led to this balance.")
    sequence: int = Field(
        ge=1,
        description="Grows with each change to the account; ignore one not above the last applied.",
    )


class BalanceRanLow(Event):
    """Emitted when a balance falls to or under the low-water mark, once per crossing."""

    event_type: ClassVar[str] = "billing.balance.ran_low.v1"

    org_id: UUID
    balance: Money
    currency: Currency
    threshold: Money = Field(description="The low-water mark that was crossed.")


class AccountSuspended(Event):
    """Emitted when an account is suspended; no new call may start until it is reinstated."""

    event_type: ClassVar[str] = "billing.account.suspended.v1"

    org_id: UUID
    reason: SuspensionReason
    balance: Money
    currency: Currency


class AccountReinstated(Event):
    """Emitted when a suspended account may start calls again."""

    event_type: ClassVar[str] = "billing.account.reinstated.v1"

    org_id: UUID
    reason: ReinstatementReason
    balance: Money
    currency: Currency


class PaymentSucceeded(Event):
    """Emitted when a payment (subscription invoice or credit pack) is received."""

    event_type: ClassVar[str] = "billing.payment.succeeded.v1"

    payment_id: UUID
    org_id: UUID
    amount: Money = Field(gt=0)
    currency: Currency
    kind: PaymentKind
    receipt_url: str | None = Field(default=None, description="The provider's receipt page.")


class PaymentFailed(Event):
    """Emitted when a payment attempt fails."""

    event_type: ClassVar[str] = "billing.payment.failed.v1"

    payment_id: UUID
    org_id: UUID
    amount: Money = Field(gt=0)
    currency: Currency
    kind: PaymentKind
    failure_reason: str | None = Field(default=None, description="As the provider gave it.")
    grace_period_ends_at: AwareDatetime | None = Field(
        default=None, description="When the account is suspended if still unpaid."
    )


class PlanChanged(Event):
    """Emitted when an organisation's plan or its limits change, the first plan included."""

    event_type: ClassVar[str] = "billing.plan.changed.v1"

    org_id: UUID
    plan_id: UUID
    plan_name: str
    currency: Currency = Field(description="Currency of the money amounts in limits.")
    limits: PlanLimits
    opening: bool = Field(
        default=False,
        description="True for the plan an account opens with, which nobody chose: not news.",
    )


class CallCharged(Event):
    """Emitted when a call is charged to its organisation's balance; once per call."""

    event_type: ClassVar[str] = "billing.call.charged.v1"

    call_id: UUID
    org_id: UUID
    amount: Money = Field(ge=0, description="What the call cost, in the smallest unit.")
    currency: Currency
    billed_seconds: int = Field(
        ge=0, description="Seconds billed after the plan's increment and minimum."
    )
    rate_per_minute: Money = Field(
        ge=0, description="The plan's rate for the call's direction, per minute."
    )
    plan_id: UUID = Field(description="The plan in force when the call started.")
