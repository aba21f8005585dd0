"""Preferences: optional categories can be turned off, security emails never; the email log."""

from __future__ import annotations

import uuid

from novitrac_contracts.auth import MemberJoined, OtpPurpose, Role

from .conftest import Harness
from .test_emails import otp
from .test_feed import handle, make_team, member_email


class TestPreferencesApi:
    async def test_everything_is_on_by_default(self, harness: Harness) -> None:
        response = await harness.client.get(
            "/v1/notifications/preferences",
            headers=harness.headers(org_id=uuid.uuid4(), user_id=uuid.uuid4()),
        )

        assert response.status_code == 200
        assert response.json() == {
            "email": {"security": True, "team": True, "billing": True, "calls": True},
            "in_app": {"team": True, "billing": True, "calls": True},
            "required_email": ["security"],
        }

    async def test_a_change_keeps_the_categories_not_named(self, harness: Harness) -> None:
        headers = harness.headers(org_id=uuid.uuid4(), user_id=uuid.uuid4())

        await harness.client.put(
            "/v1/notifications/preferences", json={"email": {"billing": False}}, headers=headers
        )
        changed = await harness.client.put(
            "/v1/notifications/preferences", json={"in_app": {"calls": False}}, headers=headers
        )
        read_back = await harness.client.get("/v1/notifications/preferences", headers=headers)

        assert changed.status_code == 200
        assert read_back.json() == changed.json()
        assert changed.json()["email"] == {
            "security": True,
            "team": True,
            "billing": False,
            "calls": True,
        }
        assert changed.json()["in_app"] == {"team": True, "billing": True, "calls": False}

    async def test_unknown_categories_and_turning_security_off_are_refused(
        self, harness: Harness
    ) -> None:
        headers = harness.headers(org_id=uuid.uuid4(), user_id=uuid.uuid4())

        unknown = await harness.client.put(
            "/v1/notifications/preferences", json={"email": {"newsletter": False}}, headers=headers
        )
        security = await harness.client.put(
            "/v1/notifications/preferences", json={"email": {"security": False}}, headers=headers
        )
        stray = await harness.client.put(
            "/v1/notifications/preferences", json={"sms": {"team": False}}, headers=headers
        )
        unchanged = await harness.client.get("/v1/notifications/preferences", headers=headers)

        assert unknown.status_code == 422
        assert "newsletter" in unknown.json()["detail"][0]["loc"]
        assert security.status_code == 422
        assert security.json()["detail"][0]["loc"] == ["body", "email"]
        assert "security emails cannot be turned off" in security.json()["detail"][0]["msg"]
        assert stray.status_code == 422
        assert stray.json()["detail"][0]["loc"] == ["body", "sms"]
        assert all(unchanged.json()["email"].values())


class TestPreferencesApplied:
    async def test_an_optional_email_is_skipped_but_a_security_code_still_sent(
        self, harness: Harness
    ) -> None:
        team = await make_team(harness)
        owner = harness.headers(org_id=team.org_id, user_id=team.owner)
        await harness.client.put(
            "/v1/notifications/preferences", json={"email": {"team": False}}, headers=owner
        )
        owner_email = f"owner-{team.owner.hex[:6]}@example.com"
        newcomer = uuid.uuid4()

        await handle(
            harness,
            MemberJoined(
                org_id=team.org_id, user_id=newcomer, email="new@example.com", role=Role.MEMBER
            ),
        )
        code = otp(owner_email, "909090", OtpPurpose.PASSWORD_RESET)
        await harness.publish(code.model_copy(update={"user_id": team.owner}))

        await harness.mail_to(owner_email, count=3)
        await harness.settled(owner_email)
        (reset,) = [m for m in harness.sink.messages(owner_email) if m.subject.startswith("Reset")]
        assert reset.text is not None
        assert "909090" in reset.text
        skipped = await harness.deliveries(to_address=owner_email, status="skipped")
        assert [row.template for row in skipped] == ["member_joined"]
        assert skipped[0].subject == "new@example.com joined Acme as member"
        sent = await harness.deliveries(to_address=owner_email, status="sent")
        assert {row.template for row in sent} == {"member_joined", "password_reset_code"}
        assert len(harness.sink.messages(owner_email)) == 3, "two team emails before, one code"

    async def test_an_in_app_category_turned_off_adds_nothing_to_the_feed(
        self, harness: Harness
    ) -> None:
        team = await make_team(harness)
        admin = harness.headers(org_id=team.org_id, user_id=team.admin, role="admin")
        await harness.client.put(
            "/v1/notifications/preferences", json={"in_app": {"team": False}}, headers=admin
        )
        before = len(await harness.feed_rows(team.admin))

        await handle(
            harness,
            MemberJoined(
                org_id=team.org_id, user_id=uuid.uuid4(), email="late@example.com", role=Role.MEMBER
            ),
        )

        assert len(await harness.feed_rows(team.admin)) == before
        assert len(await harness.feed_rows(team.owner)) == 3


class TestDeliveryLog:
    async def test_owners_and_admins_read_their_orgs_log_and_members_may_not(
        self, harness: Harness
    ) -> None:
        team = await make_team(harness)
        other = await make_team(harness, name="Globex")
        await harness.mail_to(f"admin-{team.admin.hex[:6]}@example.com")
        await harness.delivery_status(f"admin-{team.admin.hex[:6]}@example.com", "sent")

        log = await harness.client.get(
            "/v1/notifications/deliveries",
            params={"status": "sent"},
            headers=harness.headers(org_id=team.org_id, user_id=team.admin, role="admin"),
        )
        member = await harness.client.get(
            "/v1/notifications/deliveries",
            headers=harness.headers(org_id=team.org_id, user_id=team.member, role="member"),
        )
        other_log = await harness.client.get(
            "/v1/notifications/deliveries",
            headers=harness.headers(org_id=other.org_id, user_id=other.owner),
        )

        assert log.status_code == 200
        items = log.json()["items"]
        assert items
        assert {item["template"] for item in items} == {"member_joined"}
        assert all(item["status"] == "sent" and item["attempts"] == 1 for item in items)
        assert member_email(team) in items[0]["subject"]
        assert member.status_code == 403
        assert all(member_email(team) not in item["subject"] for item in other_log.json()["items"])
