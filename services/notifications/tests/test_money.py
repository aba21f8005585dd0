"""Amounts read as people expect in every currency, and billing emails show them in both parts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from novitrac_contracts.billing import (
    AccountSuspended,
    PaymentFailed,
    PaymentKind,
    PaymentSucceeded,
    SuspensionReason,
)
from novitrac_notifications import billing_notices, templates
from novitrac_notifications.billing_notices import Notice
from novitrac_notifications.money import format_money


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (1234, "USD", "$12.34"),
        (5, "USD", "$0.05"),
        (0, "USD", "$0.00"),
        (-37, "USD", "-$0.37"),
        (123456789, "EUR", "€1,234,567.89"),
        (1234, "JPY", "¥1,234"),
        (-500, "JPY", "-¥500"),
        (1234, "KWD", "KWD 1.234"),
        (100000, "CHF", "CHF 1,000.00"),
        (990, "gbp", "£9.90"),
    ],
)
def test_amounts_are_shown_in_the_currencys_own_unit(
    amount: int, currency: str, shown: str
) -> None:
    assert format_money(amount, currency) == shown


def rendered(notice: Notice, org_name: str) -> templates.RenderedEmail:
    variables = {**notice.variables, "org_name": org_name, "link": f"https://app{notice.link}"}
    return templates.render(notice.template.name, variables)


def test_a_receipt_in_yen_shows_whole_yen_in_both_parts_and_links_the_receipt() -> None:
    event = PaymentSucceeded(
        payment_id=uuid.uuid4(),
        org_id=uuid.uuid4(),
        amount=1234,
        currency="JPY",
        kind=PaymentKind.CREDIT_PACK,
        receipt_url="https://pay.stripe.test/receipts/r_1?a=1&b=2",
    )
    notice = billing_notices.payment_received(
        event, "Acme <K.K.>", paid_at=datetime(2026, 11, 26, 9, tzinfo=UTC)
    )

    email = rendered(notice, "Acme <K.K.>")

    assert email.subject == "Receipt for your payment of ¥1,234"
    assert notice.title == "Payment received: ¥1,234"
    for part in (email.text, email.html):
        assert "¥1,234" in part
        assert "¥12.34" not in part
        assert "26 November 2026" in part
        assert str(event.payment_id) in part
    assert "https://pay.stripe.test/receipts/r_1?a=1&b=2" in email.text
    assert 'href="https://pay.stripe.test/receipts/r_1?a=1&amp;b=2"' in email.html
    assert "Acme &lt;K.K.&gt;" in email.html
    assert "<K.K.>" not in email.html


def test_a_receipt_without_a_web_receipt_still_reads_well() -> None:
    event = PaymentSucceeded(
        payment_id=uuid.uuid4(),
        org_id=uuid.uuid4(),
        amount=4900,
        currency="USD",
        kind=PaymentKind.SUBSCRIPTION,
        receipt_url="javascript:alert(1)",
    )
    notice = billing_notices.payment_received(event, "Acme", paid_at=datetime.now(UTC))

    email = rendered(notice, "Acme")

    assert "javascript:" not in email.html
    assert "Your receipt" not in email.text
    assert "subscription payment of $49.00" in email.text


def test_a_failed_payment_without_reason_or_grace_period_says_what_to_do() -> None:
    event = PaymentFailed(
        payment_id=uuid.uuid4(),
        org_id=uuid.uuid4(),
        amount=2500,
        currency="EUR",
        kind=PaymentKind.CREDIT_PACK,
    )
    notice = billing_notices.payment_failed(event, "Acme")

    email = rendered(notice, "Acme")

    assert notice.body == (
        "The credit pack purchase of €25.00 for Acme could not be collected."
        " Check your payment method and try again."
    )
    for part in (email.text, email.html):
        assert "€25.00" in part
        assert "the payment provider gave none" in part
        assert "Check your payment method and try again." in part


def test_a_suspension_for_a_failed_payment_asks_for_the_invoice_not_a_top_up() -> None:
    event = AccountSuspended(
        org_id=uuid.uuid4(), reason=SuspensionReason.PAYMENT_FAILED, balance=1500, currency="USD"
    )
    notice = billing_notices.account_suspended(event, "Acme")

    email = rendered(notice, "Acme")

    assert notice.link == billing_notices.BILLING_PATH
    for part in (email.text, email.html):
        assert "a payment could not be collected before the grace period ended" in part
        assert "Update your payment method and pay the outstanding invoice." in part
        assert "$15.00" in part
