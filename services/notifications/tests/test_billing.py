"""Billing's news reaches an organisation's owners and admins by email and in their feeds, once."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from novitrac_contracts.auth import OrgCreated, UserRegistered
from novitrac_contracts.billing import (
    AccountReinstated,
    AccountSuspended,
    BalanceRanLow,
    PaymentFailed,
    PaymentKind,
    PaymentSucceeded,
    PlanChanged,
    PlanLimits,
    ReinstatementReason,
    SuspensionReason,
)
from novitrac_contracts.envelope import Envelope, Event
from novitrac_kit.bus import Delivery
from novitrac_kit.db import create_session_factory
from novitrac_kit.testing.waiting import eventually
from novitrac_kit.tokens import Role
from novitrac_notifications.billing_notices import ROSTER_ATTEMPTS, RecipientsNotKnownYet
from novitrac_notifications.db import inbox
from novitrac_sandbox.smtp.mailbox import Message

from .conftest import Harness
from .test_feed import Team, handle, make_team, member_email

BILLING_TEMPLATES = {
    "balance_low",
    "payment_failed",
    "account_suspended",
    "account_reinstated",
    "payment_receipt",
    "plan_changed",
}


def owner_email(team: Team) -> str:
    return f"owner-{team.owner.hex[:6]}@example.com"


def admin_email(team: Team) -> str:
    return f"admin-{team.admin.hex[:6]}@example.com"


def from_billing(event: Event) -> Envelope:
    return Envelope.wrap(event, producer="billing")


async def deliver(harness: Harness, envelope: Envelope, *, attempt: int = 1) -> None:
    """Run the service's handlers on delivery number ``attempt`` of ``envelope``."""
    subscription = harness.service.handlers.subscription(
        queue=harness.service.name, sessions=create_session_factory(harness.engine), inbox=inbox
    )
    await subscription.handler(Delivery(envelope, attempt=attempt))


async def add_owner(harness: Harness, org_id: uuid.UUID, email: str) -> uuid.UUID:
    owner = uuid.uuid4()
    await handle(harness, UserRegistered(user_id=owner, org_id=org_id, email=email))
    await handle(
        harness, OrgCreated(org_id=org_id, name="Initech", owner_user_id=owner, owner_email=email)
    )
    return owner


async def billing_sent(harness: Harness, address: str, count: int) -> list[Message]:
    """Wait until ``count`` billing emails to ``address`` are sent; the messages the sink got."""

    async def all_sent() -> bool:
        rows = await harness.deliveries(to_address=address, status="sent")
        return len([row for row in rows if row.template in BILLING_TEMPLATES]) >= count

    await eventually(all_sent)
    await harness.settled(address)
    rows = await harness.deliveries(to_address=address)
    subjects = {row.subject for row in rows if row.template in BILLING_TEMPLATES}
    return [m for m in harness.sink.messages(address) if m.subject in subjects]


@dataclass(frozen=True)
class Expected:
    subject: str
    kind: str
    title: str
    link: str
    in_both_parts: tuple[str, ...]


def every_billing_event(org_id: uuid.UUID) -> list[tuple[Event, Expected]]:
    payment = uuid.uuid4()
    return [
        (
            BalanceRanLow(org_id=org_id, balance=450, currency="USD", threshold=500),
            Expected(
                "Your Novitrac balance is low: $4.50",
                "billing.balance.low",
                "Balance low: $4.50",
                "/billing/top-up",
                ("$4.50", "$5.00", "http://127.0.0.1:8000/billing/top-up"),
            ),
        ),
        (
            PaymentFailed(
                payment_id=uuid.uuid4(),
                org_id=org_id,
                amount=4900,
                currency="USD",
                kind=PaymentKind.SUBSCRIPTION,
                failure_reason="Your card was declined.",
                grace_period_ends_at=datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
            ),
            Expected(
                "Payment of $49.00 failed",
                "billing.payment.failed",
                "Payment of $49.00 failed",
                "/billing",
                ("$49.00", "Your card was declined.", "03 December 2026 at 12:00 UTC"),
            ),
        ),
        (
            AccountSuspended(
                org_id=org_id,
                reason=SuspensionReason.INSUFFICIENT_BALANCE,
                balance=-37,
                currency="USD",
            ),
            Expected(
                "Your Novitrac account is suspended",
                "billing.account.suspended",
                "Account suspended: new calls are stopped",
                "/billing/top-up",
                ("its credit balance reached -$0.37", "Top up credit", "/billing/top-up"),
            ),
        ),
        (
            PaymentSucceeded(
                payment_id=payment,
                org_id=org_id,
                amount=123456,
                currency="USD",
                kind=PaymentKind.CREDIT_PACK,
                receipt_url="https://pay.stripe.test/receipts/rcpt_1",
            ),
            Expected(
                "Receipt for your payment of $1,234.56",
                "billing.payment.succeeded",
                "Payment received: $1,234.56",
                "/billing/invoices",
                ("$1,234.56", str(payment), "https://pay.stripe.test/receipts/rcpt_1"),
            ),
        ),
        (
            AccountReinstated(
                org_id=org_id,
                reason=ReinstatementReason.PAYMENT_RECEIVED,
                balance=123419,
                currency="USD",
            ),
            Expected(
                "Your Novitrac account is active again",
                "billing.account.reinstated",
                "Account reinstated",
                "/billing",
                ("a payment was received", "$1,234.19"),
            ),
        ),
        (
            PlanChanged(
                org_id=org_id,
                plan_id=uuid.uuid4(),
                plan_name="Growth",
                currency="USD",
                limits=PlanLimits(concurrent_calls=10, phone_numbers=5, minimum_call_balance=100),
            ),
            Expected(
                "Your Novitrac plan is now Growth",
                "billing.plan.changed",
                "Plan changed to Growth",
                "/billing/plan",
                ("Growth", "up to 10", "up to 5", "$1.00"),
            ),
        ),
    ]


class TestBillingNews:
    async def test_each_event_emails_owners_and_admins_and_fills_their_feeds_not_members(
        self, harness: Harness
    ) -> None:
        team = await make_team(harness, name="Acme & Sons")
        cases = every_billing_event(team.org_id)

        for event, _ in cases:
            await deliver(harness, from_billing(event))

        for address in (owner_email(team), admin_email(team)):
            await billing_sent(harness, address, len(cases))
            by_subject = {m.subject: m for m in harness.sink.messages(address)}
            for _, expected in cases:
                message = by_subject[expected.subject]
                assert message.text is not None
                assert message.html is not None
                assert "Acme & Sons" in message.text
                assert "Acme &amp; Sons" in message.html
                for text in expected.in_both_parts:
                    assert text in message.text, (expected.subject, text)
                    assert text in message.html, (expected.subject, text)
        assert await harness.deliveries(to_address=member_email(team)) == []

        managers: list[tuple[uuid.UUID, Role]] = [(team.owner, "owner"), (team.admin, "admin")]
        for user, role in managers:
            feed = await harness.client.get(
                "/v1/notifications",
                headers=harness.headers(org_id=team.org_id, user_id=user, role=role),
            )
            billing = [i for i in feed.json()["items"] if i["kind"].startswith("billing.")]
            assert [(i["kind"], i["title"], i["link"]) for i in reversed(billing)] == [
                (expected.kind, expected.title, expected.link) for _, expected in cases
            ]
        member_feed = await harness.client.get(
            "/v1/notifications",
            headers=harness.headers(org_id=team.org_id, user_id=team.member, role="member"),
        )
        assert member_feed.json()["items"] == []

        async def pushed() -> bool:
            created = [e for e in harness.published if e.data["kind"].startswith("billing.")]
            return len(created) == 2 * len(cases)

        await eventually(pushed)
        billing_pushes = [e for e in harness.published if e.data["kind"].startswith("billing.")]
        assert {(e.org_id, e.data["user_id"]) for e in billing_pushes} == {
            (team.org_id, str(team.owner)),
            (team.org_id, str(team.admin)),
        }

    async def test_a_redelivered_event_sends_nothing_new(self, harness: Harness) -> None:
        team = await make_team(harness)
        (_, _), (_, _), (_, _), (receipt, expected), *_ = every_billing_event(team.org_id)
        envelope = from_billing(receipt)

        await deliver(harness, envelope)
        await deliver(harness, envelope, attempt=2)

        for address in (owner_email(team), admin_email(team)):
            await billing_sent(harness, address, 1)
            receipts = [m for m in harness.sink.messages(address) if m.subject == expected.subject]
            assert len(receipts) == 1
            assert (
                len(await harness.deliveries(to_address=address, template="payment_receipt")) == 1
            )
        for user in (team.owner, team.admin):
            rows = await harness.feed_rows(user)
            assert [row.kind for row in rows].count("billing.payment.succeeded") == 1

    async def test_the_plan_an_account_opens_with_is_not_news(self, harness: Harness) -> None:
        team = await make_team(harness)
        opening = PlanChanged(
            org_id=team.org_id,
            plan_id=uuid.uuid4(),
            plan_name="Free",
            currency="USD",
            limits=PlanLimits(concurrent_calls=2, phone_numbers=1, minimum_call_balance=50),
            opening=True,
        )

        await deliver(harness, from_billing(opening))

        assert await harness.deliveries(to_address=owner_email(team), template="plan_changed") == []
        kinds = [row.kind for row in await harness.feed_rows(team.owner)]
        assert "billing.plan.changed" not in kinds


class TestPreferences:
    async def test_billing_email_turned_off_while_the_in_app_item_follows_its_own_setting(
        self, harness: Harness
    ) -> None:
        team = await make_team(harness)
        owner = harness.headers(org_id=team.org_id, user_id=team.owner)
        admin = harness.headers(org_id=team.org_id, user_id=team.admin, role="admin")
        await harness.client.put(
            "/v1/notifications/preferences", json={"email": {"billing": False}}, headers=owner
        )
        await harness.client.put(
            "/v1/notifications/preferences", json={"in_app": {"billing": False}}, headers=admin
        )

        await deliver(
            harness,
            from_billing(
                BalanceRanLow(org_id=team.org_id, balance=0, currency="JPY", threshold=500)
            ),
        )

        (to_admin,) = await billing_sent(harness, admin_email(team), 1)
        assert to_admin.subject == "Your Novitrac balance is low: ¥0"
        await harness.settled(owner_email(team))
        (skipped,) = await harness.deliveries(to_address=owner_email(team), template="balance_low")
        assert skipped.status == "skipped"
        assert skipped.subject == "Your Novitrac balance is low: ¥0"
        assert all(
            "balance is low" not in m.subject for m in harness.sink.messages(owner_email(team))
        )
        owner_kinds = [row.kind for row in await harness.feed_rows(team.owner)]
        admin_kinds = [row.kind for row in await harness.feed_rows(team.admin)]
        assert "billing.balance.low" in owner_kinds
        assert "billing.balance.low" not in admin_kinds


class TestOwnersNotKnownYet:
    async def test_an_event_that_overtakes_the_owner_is_retried_then_sent(
        self, harness: Harness
    ) -> None:
        org_id = uuid.uuid4()
        envelope = from_billing(
            AccountSuspended(
                org_id=org_id,
                reason=SuspensionReason.INSUFFICIENT_BALANCE,
                balance=0,
                currency="USD",
            )
        )

        with pytest.raises(RecipientsNotKnownYet):
            await deliver(harness, envelope)
        assert await harness.deliveries(org_id=org_id) == []
        await add_owner(harness, org_id, "early@example.com")
        await deliver(harness, envelope, attempt=2)

        (message,) = await billing_sent(harness, "early@example.com", 1)
        assert message.subject == "Your Novitrac account is suspended"
        assert message.text is not None
        assert "Initech" in message.text

    async def test_on_the_bus_the_email_follows_once_the_owner_is_known(
        self, harness: Harness
    ) -> None:
        org_id = uuid.uuid4()
        await harness.bus.publish(
            from_billing(BalanceRanLow(org_id=org_id, balance=90, currency="EUR", threshold=100))
        )
        await add_owner(harness, org_id, "late@example.com")

        (message,) = await billing_sent(harness, "late@example.com", 1)
        assert message.subject == "Your Novitrac balance is low: €0.90"

    async def test_the_last_try_skips_with_a_log_line_and_does_not_fail(
        self, harness: Harness, caplog: pytest.LogCaptureFixture
    ) -> None:
        org_id = uuid.uuid4()
        envelope = from_billing(
            AccountReinstated(
                org_id=org_id,
                reason=ReinstatementReason.CREDIT_GRANTED,
                balance=1000,
                currency="USD",
            )
        )

        with caplog.at_level(logging.WARNING, logger="novitrac_notifications"):
            await deliver(harness, envelope, attempt=ROSTER_ATTEMPTS)
        await add_owner(harness, org_id, "never@example.com")
        await deliver(harness, envelope, attempt=ROSTER_ATTEMPTS + 1)

        skipped = [
            r for r in caplog.records if r.getMessage() == "notifications.billing.no_recipients"
        ]
        assert len(skipped) == 1
        assert skipped[0].__dict__["org_id"] == str(org_id)
        assert await harness.deliveries(org_id=org_id) == []
