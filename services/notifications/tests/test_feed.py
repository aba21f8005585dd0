"""The in-app feed: who is told when someone joins, reading it, and who may see what."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from novitrac_contracts.auth import MemberJoined, OrgCreated, Role, UserRegistered
from novitrac_contracts.envelope import Envelope, Event
from novitrac_kit.testing.waiting import eventually

from .conftest import Harness


@dataclass(frozen=True)
class Team:
    org_id: uuid.UUID
    owner: uuid.UUID
    admin: uuid.UUID
    member: uuid.UUID


async def handle(harness: Harness, event: Event, org_id: uuid.UUID | None = None) -> None:
    await harness.handle_directly(Envelope.wrap(event, producer="auth", org_id=org_id))


async def make_team(harness: Harness, name: str = "Acme") -> Team:
    """An organisation with an owner and an admin; then a member joins."""
    org_id, owner, admin, member = (uuid.uuid4() for _ in range(4))
    owner_email = f"owner-{owner.hex[:6]}@example.com"
    await handle(harness, UserRegistered(user_id=owner, org_id=org_id, email=owner_email))
    await handle(
        harness,
        OrgCreated(org_id=org_id, name=name, owner_user_id=owner, owner_email=owner_email),
    )
    await handle(
        harness,
        MemberJoined(
            org_id=org_id,
            user_id=admin,
            email=f"admin-{admin.hex[:6]}@example.com",
            role=Role.ADMIN,
        ),
    )
    await handle(
        harness,
        MemberJoined(
            org_id=org_id,
            user_id=member,
            email=f"member-{member.hex[:6]}@example.com",
            role=Role.MEMBER,
        ),
    )
    return Team(org_id, owner, admin, member)


def member_email(team: Team) -> str:
    return f"member-{team.member.hex[:6]}@example.com"


class TestMemberJoined:
    async def test_owners_and_admins_are_told_and_the_event_is_emitted(
        self, harness: Harness
    ) -> None:
        team = await make_team(harness)

        owner_feed = await harness.client.get(
            "/v1/notifications", headers=harness.headers(org_id=team.org_id, user_id=team.owner)
        )
        admin_feed = await harness.client.get(
            "/v1/notifications",
            headers=harness.headers(org_id=team.org_id, user_id=team.admin, role="admin"),
        )
        member_feed = await harness.client.get(
            "/v1/notifications",
            headers=harness.headers(org_id=team.org_id, user_id=team.member, role="member"),
        )

        assert owner_feed.status_code == 200
        titles = [item["title"] for item in owner_feed.json()["items"]]
        assert titles == [
            f"{member_email(team)} joined as member",
            f"admin-{team.admin.hex[:6]}@example.com joined as admin",
        ]
        assert owner_feed.json()["unread_count"] == 2
        assert (
            owner_feed.json()["items"][0]["body"] == f"{member_email(team)} joined Acme as member."
        )
        assert [i["title"] for i in admin_feed.json()["items"]] == [
            f"{member_email(team)} joined as member"
        ]
        assert member_feed.json() == {"items": [], "next_cursor": None, "unread_count": 0}

        async def emitted() -> bool:
            return len(harness.published) == 3

        await eventually(emitted)
        created = [
            e for e in harness.published if e.type == "notifications.notification.created.v1"
        ]
        assert {(e.org_id, e.data["user_id"]) for e in created} == {
            (team.org_id, str(team.owner)),
            (team.org_id, str(team.admin)),
        }
        assert all(e.producer == "notifications" for e in created)

    async def test_owners_and_admins_also_get_a_team_email(self, harness: Harness) -> None:
        team = await make_team(harness)

        (message,) = await harness.mail_to(f"admin-{team.admin.hex[:6]}@example.com")

        assert message.subject == f"{member_email(team)} joined Acme as member"


class TestReading:
    async def test_mark_one_read_then_all(self, harness: Harness) -> None:
        team = await make_team(harness)
        headers = harness.headers(org_id=team.org_id, user_id=team.owner)
        newest = (await harness.client.get("/v1/notifications", headers=headers)).json()["items"][0]

        read = await harness.client.post(f"/v1/notifications/{newest['id']}/read", headers=headers)
        again = await harness.client.post(f"/v1/notifications/{newest['id']}/read", headers=headers)
        unread = await harness.client.get(
            "/v1/notifications", params={"unread_only": "true"}, headers=headers
        )

        assert read.status_code == 200
        assert read.json()["read_at"] is not None
        assert again.json()["read_at"] == read.json()["read_at"]
        assert unread.json()["unread_count"] == 1
        assert [i["id"] for i in unread.json()["items"]] != [newest["id"]]
        assert len(unread.json()["items"]) == 1

        everything = await harness.client.post("/v1/notifications/read-all", headers=headers)
        after = await harness.client.get("/v1/notifications", headers=headers)

        assert everything.json() == {"marked_read": 1}
        assert after.json()["unread_count"] == 0
        assert all(item["read_at"] for item in after.json()["items"])

    async def test_pages_follow_the_cursor_newest_first(self, harness: Harness) -> None:
        team = await make_team(harness)
        headers = harness.headers(org_id=team.org_id, user_id=team.owner)

        first = await harness.client.get("/v1/notifications", params={"limit": 1}, headers=headers)
        second = await harness.client.get(
            "/v1/notifications",
            params={"limit": 1, "cursor": first.json()["next_cursor"]},
            headers=headers,
        )
        whole = await harness.client.get("/v1/notifications", headers=headers)

        assert first.json()["next_cursor"] is not None
        assert second.json()["next_cursor"] is None
        assert [first.json()["items"][0], second.json()["items"][0]] == whole.json()["items"]

    async def test_bad_paging_input_is_refused_naming_the_field(self, harness: Harness) -> None:
        headers = harness.headers(org_id=uuid.uuid4(), user_id=uuid.uuid4())

        bad_cursor = await harness.client.get(
            "/v1/notifications", params={"cursor": "not-a-cursor"}, headers=headers
        )
        too_many = await harness.client.get(
            "/v1/notifications", params={"limit": 101}, headers=headers
        )

        assert bad_cursor.status_code == 422
        assert bad_cursor.json()["detail"][0]["loc"] == ["query", "cursor"]
        assert too_many.status_code == 422
        assert too_many.json()["detail"][0]["loc"] == ["query", "limit"]


class TestIsolation:
    async def test_someone_elses_notification_is_not_found(self, harness: Harness) -> None:
        team = await make_team(harness)
        other = await make_team(harness, name="Globex")
        owner = harness.headers(org_id=team.org_id, user_id=team.owner)
        notification_id = (await harness.client.get("/v1/notifications", headers=owner)).json()[
            "items"
        ][0]["id"]

        callers = {
            "another org's owner": harness.headers(org_id=other.org_id, user_id=other.owner),
            "a colleague": harness.headers(org_id=team.org_id, user_id=team.admin, role="admin"),
            "the owner acting in another org": harness.headers(
                org_id=other.org_id, user_id=team.owner
            ),
            "a stranger": harness.headers(org_id=uuid.uuid4(), user_id=uuid.uuid4()),
        }
        for who, headers in callers.items():
            response = await harness.client.post(
                f"/v1/notifications/{notification_id}/read", headers=headers
            )
            assert response.status_code == 404, who
            assert response.json() == {
                "error": {"code": "not_found", "message": "no such notification"}
            }
        feed = await harness.client.get("/v1/notifications", headers=owner)
        assert all(item["read_at"] is None for item in feed.json()["items"])
        rows = await harness.feed_rows(other.owner)
        assert {row.org_id for row in rows} == {other.org_id}

    async def test_api_keys_and_missing_tokens_have_no_feed(self, harness: Harness) -> None:
        org_id = uuid.uuid4()
        api_key = harness.headers(org_id=org_id, user_id=None)

        for method, path in [
            ("GET", "/v1/notifications"),
            ("POST", "/v1/notifications/read-all"),
            ("GET", "/v1/notifications/preferences"),
            ("GET", "/v1/notifications/deliveries"),
        ]:
            refused = await harness.client.request(method, path, headers=api_key)
            anonymous = await harness.client.request(method, path)
            assert refused.status_code == 403, path
            assert refused.json()["error"]["code"] == "forbidden"
            assert anonymous.status_code == 401, path
