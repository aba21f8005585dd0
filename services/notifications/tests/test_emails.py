"""Emails from auth's events reach the SMTP sink, once, with every outcome recorded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from novitrac_contracts.auth import MemberInvited, OtpPurpose, OtpRequested, Role
from novitrac_contracts.envelope import Envelope
from novitrac_kit.testing.waiting import eventually

from .conftest import REFUSED_DOMAIN, Harness, HarnessFactory


def otp(email: str, code: str = "482913", purpose: OtpPurpose = OtpPurpose.SIGNUP) -> OtpRequested:
    return OtpRequested(
        email=email,
        purpose=purpose,
        code=code,
        expires_at=datetime.now(UTC) + timedelta(minutes=10),
        user_id=uuid.uuid4(),
    )


class TestCodeEmails:
    async def test_a_sign_up_code_arrives_in_both_parts_and_is_recorded_sent(
        self, harness: Harness
    ) -> None:
        org_id = uuid.uuid4()
        await harness.publish(otp("ada@example.com", "482913"), org_id=org_id)

        (message,) = await harness.mail_to("ada@example.com")
        delivery = await harness.delivery_status("ada@example.com", "sent")

        assert message.subject == "Confirm your email for Novitrac"
        assert message.sender == "Novitrac <no-reply@novitrac.local>"
        assert message.text is not None
        assert "482913" in message.text
        assert message.html is not None
        assert "482913" in message.html
        assert "http://127.0.0.1:8000/verify?email=ada%40example.com" in message.text
        assert dict(message.headers)["Message-ID"] == f"<{delivery.id}@novitrac.local>"
        assert delivery.template == "signup_code"
        assert delivery.attempts == 1
        assert delivery.sent_at is not None
        assert delivery.org_id == org_id
        assert delivery.context is None, "the code is not kept once the email is sent"

    async def test_a_password_reset_code_uses_its_own_template(self, harness: Harness) -> None:
        await harness.publish(otp("bob@example.com", "111222", OtpPurpose.PASSWORD_RESET))

        (message,) = await harness.mail_to("bob@example.com")

        assert message.subject == "Reset your Novitrac password"
        assert message.text is not None
        assert "111222" in message.text
        assert "/reset-password?email=bob%40example.com" in (message.html or "")

    async def test_a_redelivered_event_sends_one_email(self, harness: Harness) -> None:
        envelope = Envelope.wrap(otp("cy@example.com"), producer="auth")

        await harness.handle_directly(envelope)
        await harness.handle_directly(envelope)

        await harness.delivery_status("cy@example.com", "sent")
        assert len(await harness.deliveries(to_address="cy@example.com")) == 1
        assert len(harness.sink.messages("cy@example.com")) == 1

    @pytest.mark.rabbitmq
    async def test_a_code_published_on_rabbitmq_arrives(self, make_harness: HarnessFactory) -> None:
        async with make_harness(transport="rabbitmq") as harness:
            await harness.publish(otp("kim@example.com", "246810"))

            (message,) = await harness.mail_to("kim@example.com")
            await harness.delivery_status("kim@example.com", "sent")

        assert message.text is not None
        assert "246810" in message.text


class TestInvitation:
    async def test_the_invitation_carries_org_role_code_and_accept_link(
        self, harness: Harness
    ) -> None:
        org_id = uuid.uuid4()
        event = MemberInvited(
            invitation_id=uuid.uuid4(),
            org_id=org_id,
            org_name="Acme <Sales> & Co",
            email="dee@example.com",
            role=Role.ADMIN,
            code="inv_Zx81kQ",
            expires_at=datetime(2030, 1, 2, 3, 4, tzinfo=UTC),
            invited_by_user_id=uuid.uuid4(),
        )
        await harness.publish(event)

        (message,) = await harness.mail_to("dee@example.com")

        assert message.subject == "You are invited to join Acme <Sales> & Co"
        assert message.text is not None
        assert message.html is not None
        assert "Acme <Sales> & Co" in message.text
        assert "Acme &lt;Sales&gt; &amp; Co" in message.html, "HTML is escaped"
        assert "<Sales>" not in message.html
        for part in (message.text, message.html):
            assert "admin" in part
            assert "inv_Zx81kQ" in part
            assert "http://127.0.0.1:8000/invitations/accept?code=inv_Zx81kQ" in part
        delivery = await harness.delivery_status("dee@example.com", "sent")
        assert delivery.org_id == org_id


class TestFailures:
    async def test_an_smtp_outage_is_retried_with_backoff_until_the_server_is_back(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(sink_up=False, delivery_max_attempts=50) as harness:
            await harness.publish(otp("eve@example.com", "777888"))

            async def retried() -> bool:
                rows = await harness.deliveries(to_address="eve@example.com")
                return bool(rows) and rows[0].attempts >= 2

            await eventually(retried)
            pending = (await harness.deliveries(to_address="eve@example.com"))[0]
            assert pending.status == "pending"
            assert pending.last_error
            assert pending.next_attempt_at > pending.created_at

            harness.sink.start()
            delivery = await harness.delivery_status("eve@example.com", "sent")

            assert delivery.attempts >= 3
            (message,) = harness.sink.messages("eve@example.com")
            assert message.text is not None
            assert "777888" in message.text

    async def test_a_delivery_fails_for_good_after_the_last_attempt(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(sink_up=False, delivery_max_attempts=3) as harness:
            await harness.publish(otp("fay@example.com"))

            delivery = await harness.delivery_status("fay@example.com", "failed")

            assert delivery.attempts == 3
            assert delivery.last_error
            assert delivery.context is None

    async def test_a_permanently_refused_recipient_fails_without_retry(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(refusing=True, delivery_max_attempts=5) as harness:
            await harness.publish(otp(f"gus@{REFUSED_DOMAIN}"))
            await harness.publish(otp("hal@example.com"))

            refused = await harness.delivery_status(f"gus@{REFUSED_DOMAIN}", "failed")
            await harness.mail_to("hal@example.com")

            assert refused.attempts == 1
            assert refused.last_error.startswith("550")
