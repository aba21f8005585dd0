"""The whole journey of a business: sign up, verify, log in, invite, switch, API keys."""

from __future__ import annotations

from .conftest import PASSWORD, Auth, bearer


async def test_sign_up_to_api_key(auth: Auth) -> None:
    response = await auth.sign_up("Ada@Example.com", org="Analytical Engines")
    assert response.status_code == 202
    assert response.json() == {"email": "ada@example.com", "status": "verification_required"}
    registered = await auth.events("auth.user.registered.v1")
    created = await auth.events("auth.org.created.v1")
    assert [e["data"]["email"] for e in registered] == ["ada@example.com"]
    assert created[0]["data"]["name"] == "Analytical Engines"
    assert created[0]["org_id"] == registered[0]["data"]["org_id"]

    # Not verified yet: the right password says so, and nothing more.
    response = await auth.post("/v1/auth/login", {"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "email_not_verified"

    code = await auth.last_code("ada@example.com")
    response = await auth.post("/v1/auth/verify", {"email": "ADA@example.com", "code": code})
    assert response.status_code == 200
    verified = response.json()
    assert verified["role"] == "owner"
    assert verified["token_type"] == "bearer"
    assert verified["expires_in"] == 900

    response = await auth.post("/v1/auth/login", {"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 200
    ada = response.json()
    assert ada["org_id"] == verified["org_id"]

    response = await auth.post("/v1/auth/refresh", {"refresh_token": ada["refresh_token"]})
    assert response.status_code == 200
    ada = response.json()

    me = (await auth.http.get("/v1/auth/me", headers=bearer(ada))).json()
    assert me["user"]["email"] == "ada@example.com"
    assert me["organization"] == {
        "id": ada["org_id"],
        "name": "Analytical Engines",
        "role": "owner",
    }
    assert me["role"] == "owner"

    # Grace runs her own organisation; Ada invites her as an admin, the code goes by email.
    await auth.register("grace@example.com", password="compilers rule", org="Navy")
    response = await auth.post(
        "/v1/auth/invitations",
        {"email": "Grace@Example.com", "role": "admin"},
        headers=bearer(ada),
    )
    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    [invited] = await auth.events("auth.member.invited.v1")
    assert invited["org_id"] == ada["org_id"]
    assert invited["data"]["email"] == "grace@example.com"

    response = await auth.post(
        "/v1/auth/invitations/accept",
        {"code": invited["data"]["code"], "password": "compilers rule"},
    )
    assert response.status_code == 200
    grace = response.json()
    assert (grace["org_id"], grace["role"]) == (ada["org_id"], "admin")
    [joined] = await auth.events("auth.member.joined.v1")
    assert joined["data"]["user_id"] == grace["user_id"]
    members = (await auth.http.get("/v1/auth/members", headers=bearer(ada))).json()
    assert sorted(m["email"] for m in members) == ["ada@example.com", "grace@example.com"]

    # Grace switches back to her own organisation.
    navy = next(
        o
        for o in (await auth.http.get("/v1/auth/organizations", headers=bearer(grace))).json()
        if o["name"] == "Navy"
    )
    response = await auth.post("/v1/auth/switch", {"org_id": navy["id"]}, headers=bearer(grace))
    assert response.status_code == 200
    assert (response.json()["org_id"], response.json()["role"]) == (navy["id"], "owner")

    # Ada makes an API key, which the gateway exchanges for an access token.
    response = await auth.post("/v1/auth/api-keys", {"name": "CRM"}, headers=bearer(ada))
    assert response.status_code == 201
    key = response.json()["key"]
    response = await auth.internal("/internal/api-keys/exchange", {"key": key})
    assert response.status_code == 200
    assert response.json()["org_id"] == ada["org_id"]


async def test_a_new_user_joins_by_invitation(auth: Auth) -> None:
    ada = await auth.register("ada@example.com", org="Engines")
    await auth.post("/v1/auth/invitations", {"email": "grace@example.com"}, headers=bearer(ada))
    [invited] = await auth.events("auth.member.invited.v1")
    code = invited["data"]["code"]

    response = await auth.post("/v1/auth/invitations/accept", {"code": code})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]
    response = await auth.post(
        "/v1/auth/invitations/accept", {"code": code, "name": "Grace", "password": "compilers"}
    )
    assert response.status_code == 200
    assert response.json()["role"] == "member"
    # The code proved the address: Grace logs in at once, and the code works only once.
    response = await auth.post(
        "/v1/auth/login", {"email": "grace@example.com", "password": "compilers"}
    )
    assert response.status_code == 200
    response = await auth.post(
        "/v1/auth/invitations/accept", {"code": code, "name": "Eve", "password": "whatever1"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_invitation"


async def test_a_second_organisation_and_switching(auth: Auth) -> None:
    ada = await auth.register("ada@example.com", org="Engines")
    grace = await auth.register("grace@example.com", org="Navy")
    await auth.post("/v1/auth/invitations", {"email": "grace@example.com"}, headers=bearer(ada))
    [invited] = await auth.events("auth.member.invited.v1")
    response = await auth.post(
        "/v1/auth/invitations/accept", {"code": invited["data"]["code"]}, headers=bearer(grace)
    )
    assert response.status_code == 200
    assert response.json()["org_id"] == ada["org_id"]

    me = (await auth.http.get("/v1/auth/me", headers=bearer(grace))).json()
    assert me["organization"]["name"] == "Navy"
    assert [(o["name"], o["role"]) for o in me["organizations"]] == [
        ("Navy", "owner"),
        ("Engines", "member"),
    ]
    response = await auth.post("/v1/auth/switch", {"org_id": ada["org_id"]}, headers=bearer(grace))
    assert response.status_code == 200
    switched = response.json()
    assert (switched["org_id"], switched["role"]) == (ada["org_id"], "member")
    me = (await auth.http.get("/v1/auth/me", headers=bearer(switched))).json()
    assert (me["organization"]["name"], me["role"]) == ("Engines", "member")

    # Logging in may name the organisation.
    response = await auth.post(
        "/v1/auth/login",
        {"email": "grace@example.com", "password": PASSWORD, "org_id": ada["org_id"]},
    )
    assert response.json()["org_id"] == ada["org_id"]


async def test_api_key_life(auth: Auth) -> None:
    ada = await auth.register("ada@example.com")
    response = await auth.post(
        "/v1/auth/api-keys", {"name": "CRM sync", "scope": "full"}, headers=bearer(ada)
    )
    assert response.status_code == 201
    created = response.json()
    key = created["key"]
    assert key.startswith("nvk_")
    assert len(key) == 47
    assert created["prefix"] == key[:12]
    [event] = await auth.events("auth.api_key.created.v1")
    assert event["data"]["prefix"] == key[:12]
    assert key not in str(event)

    listed = (await auth.http.get("/v1/auth/api-keys", headers=bearer(ada))).json()
    assert [(k["name"], k["prefix"], k["last_used_at"]) for k in listed] == [
        ("CRM sync", key[:12], None)
    ]
    assert "key" not in listed[0]

    response = await auth.internal("/internal/api-keys/exchange", {"key": key})
    assert response.status_code == 200
    exchanged = response.json()
    assert exchanged["org_id"] == ada["org_id"]
    assert exchanged["api_key_id"] == created["id"]
    assert exchanged["scope"] == "full"
    assert exchanged["expires_in"] == 300
    listed = (await auth.http.get("/v1/auth/api-keys", headers=bearer(ada))).json()
    assert listed[0]["last_used_at"] is not None

    response = await auth.http.delete(f"/v1/auth/api-keys/{created['id']}", headers=bearer(ada))
    assert response.status_code == 204
    [revoked] = await auth.events("auth.api_key.revoked.v1")
    assert revoked["data"]["api_key_id"] == created["id"]
    response = await auth.internal("/internal/api-keys/exchange", {"key": key})
    assert response.status_code == 401
