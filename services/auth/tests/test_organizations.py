"""Roles, tenancy and API-key scopes: who may do what, and to which organisation's objects."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from novitrac_auth.db import invitations, outbox
from novitrac_kit.testing.internal import INTERNAL_HEADERS

from .conftest import PASSWORD, Auth, bearer


async def _join(auth: Auth, admin: dict[str, Any], email: str, role: str = "member") -> Any:
    """Invite ``email`` (a new user) and accept; returns the newcomer's tokens."""
    response = await auth.post(
        "/v1/auth/invitations", {"email": email, "role": role}, headers=bearer(admin)
    )
    assert response.status_code == 201, response.text
    invited = [
        e for e in await auth.events("auth.member.invited.v1") if e["data"]["email"] == email
    ]
    response = await auth.post(
        "/v1/auth/invitations/accept",
        {"code": invited[-1]["data"]["code"], "name": email.split("@")[0], "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_members_are_refused_on_admin_routes_and_nothing_is_written(auth: Auth) -> None:
    ada = await auth.register("ada@example.com")
    grace = await _join(auth, ada, "grace@example.com")
    events_before = len(await auth.fetch(sa.select(outbox.c.id)))
    invitations_before = len(await auth.fetch(sa.select(invitations.c.id)))

    refused = [
        await auth.post("/v1/auth/invitations", {"email": "x@example.com"}, headers=bearer(grace)),
        await auth.http.get("/v1/auth/invitations", headers=bearer(grace)),
        await auth.post("/v1/auth/api-keys", {"name": "mine"}, headers=bearer(grace)),
        await auth.http.get("/v1/auth/api-keys", headers=bearer(grace)),
        await auth.http.get("/v1/auth/audit-log", headers=bearer(grace)),
        await auth.http.patch(
            f"/v1/auth/members/{ada['user_id']}", json={"role": "member"}, headers=bearer(grace)
        ),
        await auth.http.delete(f"/v1/auth/members/{ada['user_id']}", headers=bearer(grace)),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert len(await auth.fetch(sa.select(outbox.c.id))) == events_before
    assert len(await auth.fetch(sa.select(invitations.c.id))) == invitations_before
    # Reading the member list is fine.
    response = await auth.http.get("/v1/auth/members", headers=bearer(grace))
    assert response.status_code == 200


async def test_owners_and_the_last_owner(auth: Auth) -> None:
    ada = await auth.register("ada@example.com")
    grace = await _join(auth, ada, "grace@example.com", role="admin")
    alan = await _join(auth, ada, "alan@example.com")

    def role(user: dict[str, Any], new: str, by: dict[str, Any]) -> Any:
        return auth.http.patch(
            f"/v1/auth/members/{user['user_id']}", json={"role": new}, headers=bearer(by)
        )

    assert (await role(alan, "admin", grace)).status_code == 200
    assert (await role(grace, "owner", grace)).status_code == 403
    assert (await role(ada, "admin", grace)).status_code == 403
    assert (
        await auth.http.delete(f"/v1/auth/members/{ada['user_id']}", headers=bearer(grace))
    ).status_code == 403
    response = await role(ada, "admin", ada)
    assert response.status_code == 409
    assert "last owner" in response.json()["error"]["message"]
    assert (
        await auth.http.delete(f"/v1/auth/members/{ada['user_id']}", headers=bearer(ada))
    ).status_code == 409

    response = await role(grace, "owner", ada)
    assert response.status_code == 200
    assert response.json()["role"] == "owner"
    changed = await auth.events("auth.member.role_changed.v1")
    assert [(e["data"]["role"], e["data"]["previous_role"]) for e in changed] == [
        ("admin", "member"),
        ("owner", "admin"),
    ]
    assert (await role(ada, "member", ada)).status_code == 200

    # Alan (admin) removes nobody who is an owner, but may leave; removal ends his sessions here.
    response = await auth.http.delete(f"/v1/auth/members/{alan['user_id']}", headers=bearer(grace))
    assert response.status_code == 204
    [removed] = await auth.events("auth.member.removed.v1")
    assert removed["data"]["user_id"] == alan["user_id"]
    response = await auth.post("/v1/auth/refresh", {"refresh_token": alan["refresh_token"]})
    assert response.status_code == 401
    response = await auth.http.get("/v1/auth/me", headers=bearer(alan))
    assert response.status_code == 403
    actions = [
        e["action"]
        for e in (await auth.http.get("/v1/auth/audit-log", headers=bearer(grace))).json()["items"]
    ]
    assert actions[:4] == [
        "member.removed",
        "member.role_changed",
        "member.role_changed",
        "member.role_changed",
    ]


async def test_another_organisations_objects_are_not_found(auth: Auth) -> None:
    ada = await auth.register("ada@example.com", org="A")
    bob = await auth.register("bob@example.com", org="B")
    grace = await _join(auth, ada, "grace@example.com")
    response = await auth.post(
        "/v1/auth/invitations", {"email": "x@example.com"}, headers=bearer(ada)
    )
    invitation_id = response.json()["id"]
    response = await auth.post("/v1/auth/api-keys", {"name": "A's key"}, headers=bearer(ada))
    key_id = response.json()["id"]

    attempts = [
        await auth.http.patch(
            f"/v1/auth/members/{grace['user_id']}", json={"role": "admin"}, headers=bearer(bob)
        ),
        await auth.http.delete(f"/v1/auth/members/{grace['user_id']}", headers=bearer(bob)),
        await auth.http.delete(f"/v1/auth/invitations/{invitation_id}", headers=bearer(bob)),
        await auth.http.delete(f"/v1/auth/api-keys/{key_id}", headers=bearer(bob)),
        await auth.post("/v1/auth/switch", {"org_id": ada["org_id"]}, headers=bearer(bob)),
        await auth.post(
            "/v1/auth/login",
            {"email": "bob@example.com", "password": PASSWORD, "org_id": ada["org_id"]},
        ),
    ]
    assert [r.status_code for r in attempts] == [404] * len(attempts)

    assert [
        m["email"] for m in (await auth.http.get("/v1/auth/members", headers=bearer(bob))).json()
    ] == ["bob@example.com"]
    assert (await auth.http.get("/v1/auth/invitations", headers=bearer(bob))).json() == []
    assert (await auth.http.get("/v1/auth/api-keys", headers=bearer(bob))).json() == []
    log = (await auth.http.get("/v1/auth/audit-log", headers=bearer(bob))).json()["items"]
    assert {entry["actor_user_id"] for entry in log} == {bob["user_id"]}
    # A's objects are untouched.
    listed = (await auth.http.get("/v1/auth/invitations", headers=bearer(ada))).json()
    assert {i["id"]: i["status"] for i in listed}[invitation_id] == "pending"
    [key] = (await auth.http.get("/v1/auth/api-keys", headers=bearer(ada))).json()
    assert key["revoked_at"] is None


async def test_api_key_tokens(auth: Auth) -> None:
    ada = await auth.register("ada@example.com")
    keys = {}
    for scope in ("read_only", "full"):
        response = await auth.post(
            "/v1/auth/api-keys", {"name": scope, "scope": scope}, headers=bearer(ada)
        )
        key = response.json()["key"]
        exchanged = await auth.post(
            "/internal/api-keys/exchange", {"key": key}, headers=INTERNAL_HEADERS
        )
        keys[scope] = exchanged.json()
    assert keys["read_only"]["scope"] == "read"
    read, full = keys["read_only"]["access_token"], keys["full"]["access_token"]

    # A read-only key cannot write, and no key may use the role-gated (person's) routes.
    for token in (read, full):
        refused = [
            await auth.post("/v1/auth/api-keys", {"name": "more"}, headers=bearer(token)),
            await auth.post(
                "/v1/auth/invitations", {"email": "x@example.com"}, headers=bearer(token)
            ),
            await auth.http.get("/v1/auth/audit-log", headers=bearer(token)),
            await auth.post(
                "/v1/auth/password/change",
                {"current_password": PASSWORD, "new_password": "something else"},
                headers=bearer(token),
            ),
        ]
        assert [r.status_code for r in refused] == [403] * len(refused)
        # Reading the organisation's members is open to its keys, for integrations.
        members = await auth.http.get("/v1/auth/members", headers=bearer(token))
        assert members.status_code == 200
        assert [m["email"] for m in members.json()] == ["ada@example.com"]
    response = await auth.post("/v1/auth/api-keys", {"name": "more"}, headers=bearer(read))
    assert response.json()["error"]["message"] == "this credential is read-only"
    assert len(await auth.events("auth.api_key.created.v1")) == 2


async def test_invitations_are_revocable_and_replaced(auth: Auth) -> None:
    ada = await auth.register("ada@example.com")
    first = (
        await auth.post("/v1/auth/invitations", {"email": "g@example.com"}, headers=bearer(ada))
    ).json()
    second = (
        await auth.post("/v1/auth/invitations", {"email": "g@example.com"}, headers=bearer(ada))
    ).json()
    listed = {
        i["id"]: i["status"]
        for i in (await auth.http.get("/v1/auth/invitations", headers=bearer(ada))).json()
    }
    assert listed == {first["id"]: "revoked", second["id"]: "pending"}
    response = await auth.http.delete(f"/v1/auth/invitations/{second['id']}", headers=bearer(ada))
    assert response.status_code == 204
    codes = [e["data"]["code"] for e in await auth.events("auth.member.invited.v1")]
    for code in codes:
        response = await auth.post(
            "/v1/auth/invitations/accept", {"code": code, "name": "G", "password": PASSWORD}
        )
        assert response.status_code == 400
    # Only owners invite owners; members cannot be invited twice.
    grace = await _join(auth, ada, "grace@example.com", role="admin")
    response = await auth.post(
        "/v1/auth/invitations", {"email": "o@example.com", "role": "owner"}, headers=bearer(grace)
    )
    assert response.status_code == 403
    response = await auth.post(
        "/v1/auth/invitations", {"email": "GRACE@example.com"}, headers=bearer(ada)
    )
    assert response.status_code == 409
