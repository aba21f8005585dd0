"""Bad input: a 422 naming the field, and nothing written."""

from __future__ import annotations

import sqlalchemy as sa

from novitrac_auth.db import audit_log, outbox, users

from .conftest import Auth


async def test_validation_errors_name_the_field_and_write_nothing(auth: Auth) -> None:
    cases = [
        (
            "/v1/auth/signup",
            {"email": "ada", "password": "long enough", "name": "A", "organization_name": "O"},
            "email",
        ),
        (
            "/v1/auth/signup",
            {"email": "a@b.c", "password": "short", "name": "A", "organization_name": "O"},
            "password",
        ),
        (
            "/v1/auth/signup",
            {"email": "a@b.c", "password": "long enough", "name": " ", "organization_name": "O"},
            "name",
        ),
        (
            "/v1/auth/signup",
            {
                "email": "a@b.c",
                "password": "long enough",
                "name": "A",
                "organization_name": "x\x00y",
            },
            "organization_name",
        ),
        ("/v1/auth/verify", {"email": "a@b.c", "code": "12345"}, "code"),
        ("/v1/auth/login", {"email": "a@b.c", "password": "p", "org_id": "nope"}, "org_id"),
        ("/v1/auth/refresh", {}, "refresh_token"),
    ]
    for path, body, field in cases:
        response = await auth.post(path, body)
        assert response.status_code == 422, (path, body)
        assert response.json()["detail"][0]["loc"][-1] == field, response.json()
    assert await auth.fetch(sa.select(users.c.id)) == []
    assert await auth.fetch(sa.select(outbox.c.id)) == []


async def test_client_address_comes_from_the_last_forwarded_entry(auth: Auth) -> None:
    await auth.post(
        "/v1/auth/login",
        {"email": "a@b.c", "password": "wrong password"},
        headers={"X-Forwarded-For": "1.1.1.1, 203.0.113.50", "User-Agent": "tests/1"},
    )
    [entry] = await auth.fetch(sa.select(audit_log.c.client_address, audit_log.c.user_agent))
    assert tuple(entry) == ("203.0.113.50", "tests/1")


async def test_undecodable_and_control_characters_are_refused(auth: Auth) -> None:
    bodies = [
        '{"email": "\\ud800@example.com", "password": "long enough", "name": "A",'
        ' "organization_name": "O"}',
        '{"email": "\\u001f@example.com", "password": "long enough", "name": "A",'
        ' "organization_name": "O"}',
        '{"email": "a@example.com", "password": "long \\ud800 enough", "name": "A",'
        ' "organization_name": "O"}',
    ]
    for body in bodies:
        response = await auth.http.post(
            "/v1/auth/signup", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, body
    response = await auth.http.post(
        "/v1/auth/refresh",
        content='{"refresh_token": "\\udfff"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "refresh_token"]
    assert await auth.fetch(sa.select(users.c.id)) == []
