"""Login, failed-login limits, refresh rotation and reuse, logout."""

from __future__ import annotations

import sqlalchemy as sa

from novitrac_auth.db import audit_log, login_lockouts

from .conftest import PASSWORD, Auth, bearer


async def _fail(auth: Auth, email: str, times: int, address: str) -> list[int]:
    statuses = []
    for _ in range(times):
        response = await auth.post(
            "/v1/auth/login",
            {"email": email, "password": "not the password"},
            headers={"X-Forwarded-For": address},
        )
        statuses.append(response.status_code)
    return statuses


async def test_a_wrong_password_and_an_unknown_email_look_the_same(auth: Auth) -> None:
    await auth.register("ada@example.com")
    wrong = await auth.post("/v1/auth/login", {"email": "ada@example.com", "password": "nope"})
    unknown = await auth.post("/v1/auth/login", {"email": "who@example.com", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_lockout_is_identical_for_existing_and_unknown_emails(auth: Auth) -> None:
    await auth.register("ada@example.com")
    assert await _fail(auth, "ada@example.com", 5, "203.0.113.1") == [401] * 5
    assert await _fail(auth, "nobody@example.com", 5, "203.0.113.2") == [401] * 5

    # Locked now: even the right password is refused, from any address.
    existing = await auth.post(
        "/v1/auth/login",
        {"email": "ada@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.3"},
    )
    unknown = await auth.post(
        "/v1/auth/login",
        {"email": "nobody@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.4"},
    )
    assert existing.status_code == unknown.status_code == 429
    assert existing.json() == unknown.json()
    assert existing.json()["error"]["code"] == "rate_limited"
    assert 850 <= int(existing.headers["Retry-After"]) <= 901
    assert 850 <= int(unknown.headers["Retry-After"]) <= 901
    assert existing.headers.keys() - {"date"} == unknown.headers.keys() - {"date"}

    actions = [row.action for row in await auth.fetch(sa.select(audit_log.c.action))]
    assert actions.count("login.failed") == 10
    assert actions.count("login.locked") == 2

    # When the lock expires, the right password works again.
    await auth.execute(sa.delete(login_lockouts))
    response = await auth.post(
        "/v1/auth/login",
        {"email": "ada@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.3"},
    )
    assert response.status_code == 200


async def test_one_address_is_limited_across_emails(auth: Auth) -> None:
    await auth.register("ada@example.com")
    for index in range(5):
        assert await _fail(auth, f"user{index}@example.com", 4, "192.0.2.9") == [401] * 4
    response = await auth.post(
        "/v1/auth/login",
        {"email": "ada@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "10.0.0.1, 192.0.2.9"},
    )
    assert response.status_code == 429
    response = await auth.post(
        "/v1/auth/login",
        {"email": "ada@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "192.0.2.9, 10.0.0.1"},
    )
    assert response.status_code == 200


async def test_refresh_rotates_and_reuse_revokes_the_family(auth: Auth) -> None:
    tokens = await auth.register("ada@example.com")
    first = tokens["refresh_token"]
    response = await auth.post("/v1/auth/refresh", {"refresh_token": first})
    assert response.status_code == 200
    second = response.json()["refresh_token"]
    assert second != first

    # Someone replays the first token: the whole family dies, the legitimate holder included.
    response = await auth.post("/v1/auth/refresh", {"refresh_token": first})
    assert response.status_code == 401
    response = await auth.post("/v1/auth/refresh", {"refresh_token": second})
    assert response.status_code == 401
    reused = await auth.fetch(
        sa.select(audit_log).where(audit_log.c.action == "refresh_token.reused")
    )
    assert len(reused) == 1

    # Other sessions are untouched.
    response = await auth.post("/v1/auth/login", {"email": "ada@example.com", "password": PASSWORD})
    other = response.json()
    response = await auth.post("/v1/auth/refresh", {"refresh_token": other["refresh_token"]})
    assert response.status_code == 200


async def test_logout_ends_the_session(auth: Auth) -> None:
    tokens = await auth.register("ada@example.com")
    response = await auth.post("/v1/auth/logout", {"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 204
    response = await auth.post("/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 401
    response = await auth.post("/v1/auth/logout", {"refresh_token": "made-up"})
    assert response.status_code == 204


async def test_an_unknown_refresh_token_is_refused(auth: Auth) -> None:
    response = await auth.post("/v1/auth/refresh", {"refresh_token": "x" * 43})
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "unauthorized", "message": "the refresh token is not valid"}
    }


async def test_the_audit_log_records_logins_for_owners(auth: Auth) -> None:
    ada = await auth.register("ada@example.com")
    await _fail(auth, "ada@example.com", 1, "203.0.113.7")
    response = await auth.http.get("/v1/auth/audit-log", params={"limit": 2}, headers=bearer(ada))
    assert response.status_code == 200
    page = response.json()
    assert [entry["action"] for entry in page["items"]] == ["login.failed", "user.verified"]
    assert page["items"][0]["client_address"] == "203.0.113.7"
    response = await auth.http.get(
        "/v1/auth/audit-log", params={"before": page["next_cursor"]}, headers=bearer(ada)
    )
    assert [entry["action"] for entry in response.json()["items"]] == ["user.signed_up"]
    assert response.json()["next_cursor"] is None
