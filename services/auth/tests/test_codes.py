"""One-time codes: wrong, expired, brute-forced, resent too soon; and password reset."""

from __future__ import annotations

import sqlalchemy as sa

from novitrac_auth.db import otp_codes, refresh_tokens, users

from .conftest import PASSWORD, Auth, bearer


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_a_wrong_code_is_refused_and_the_right_one_still_works(auth: Auth) -> None:
    await auth.sign_up("ada@example.com")
    code = await auth.last_code("ada@example.com")

    response = await auth.post(
        "/v1/auth/verify", {"email": "ada@example.com", "code": _wrong(code)}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_code"
    response = await auth.post("/v1/auth/verify", {"email": "ada@example.com", "code": code})
    assert response.status_code == 200
    # Single use.
    response = await auth.post("/v1/auth/verify", {"email": "ada@example.com", "code": code})
    assert response.status_code == 400


async def test_an_expired_code_is_refused(auth: Auth) -> None:
    await auth.sign_up("ada@example.com")
    code = await auth.last_code("ada@example.com")
    [row] = await auth.fetch(sa.select(otp_codes.c.expires_at - otp_codes.c.created_at))
    assert row[0].total_seconds() == 600
    await auth.execute(
        sa.update(otp_codes).values(expires_at=sa.func.now() - sa.text("'1 s'::interval"))
    )

    response = await auth.post("/v1/auth/verify", {"email": "ada@example.com", "code": code})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "code_expired"
    [user] = await auth.fetch(sa.select(users.c.verified_at))
    assert user.verified_at is None


async def test_brute_force_is_stopped_after_five_attempts(auth: Auth) -> None:
    await auth.sign_up("ada@example.com")
    code = await auth.last_code("ada@example.com")
    answers = []
    for attempt in range(5):
        guess = f"{(int(code) + 1 + attempt) % 1_000_000:06d}"
        response = await auth.post("/v1/auth/verify", {"email": "ada@example.com", "code": guess})
        answers.append((response.status_code, response.json()["error"]["code"]))
    assert answers == [(400, "invalid_code")] * 4 + [(400, "code_exhausted")]

    # Even the right code is now refused: a new one is needed.
    response = await auth.post("/v1/auth/verify", {"email": "ada@example.com", "code": code})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "code_exhausted"
    assert "new code" in response.json()["error"]["message"]

    await auth.execute(
        sa.update(otp_codes).values(created_at=sa.func.now() - sa.text("'2 min'::interval"))
    )
    assert (
        await auth.post("/v1/auth/verify/resend", {"email": "ada@example.com"})
    ).status_code == 202
    fresh = await auth.last_code("ada@example.com")
    response = await auth.post("/v1/auth/verify", {"email": "ada@example.com", "code": fresh})
    assert response.status_code == 200


async def test_resend_has_a_cool_down(auth: Auth) -> None:
    await auth.sign_up("ada@example.com")
    first = await auth.last_code("ada@example.com")

    response = await auth.post("/v1/auth/verify/resend", {"email": "ada@example.com"})
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 61
    assert len(await auth.events("auth.otp.requested.v1")) == 1

    await auth.execute(
        sa.update(otp_codes).values(created_at=sa.func.now() - sa.text("'61 s'::interval"))
    )
    response = await auth.post("/v1/auth/verify/resend", {"email": "ada@example.com"})
    assert response.status_code == 202
    second = await auth.last_code("ada@example.com")
    # The new code supersedes the first.
    if second != first:
        response = await auth.post("/v1/auth/verify", {"email": "ada@example.com", "code": first})
        assert response.status_code == 400
    response = await auth.post("/v1/auth/verify", {"email": "ada@example.com", "code": second})
    assert response.status_code == 200


async def test_resend_and_signup_say_nothing_about_unknown_or_verified_addresses(
    auth: Auth,
) -> None:
    await auth.register("ada@example.com")
    before = len(await auth.events("auth.otp.requested.v1"))
    for email in ("ada@example.com", "nobody@example.com"):
        response = await auth.post("/v1/auth/verify/resend", {"email": email})
        assert response.status_code == 202
    again = await auth.sign_up("ada@example.com", password="another password")
    fresh = await auth.sign_up("new@example.com")
    assert again.status_code == fresh.status_code == 202
    assert again.json() == {"email": "ada@example.com", "status": "verification_required"}
    codes = await auth.events("auth.otp.requested.v1")
    assert [c["data"]["email"] for c in codes[before:]] == ["new@example.com"]
    assert len(await auth.events("auth.user.registered.v1")) == 2
    # The verified account kept its password.
    response = await auth.post("/v1/auth/login", {"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 200


async def test_password_reset_by_code_ends_every_session(auth: Auth) -> None:
    first = await auth.register("ada@example.com")
    second = (
        await auth.post("/v1/auth/login", {"email": "ada@example.com", "password": PASSWORD})
    ).json()
    assert (
        await auth.post("/v1/auth/password/forgot", {"email": "ada@example.com"})
    ).status_code == 202
    assert (
        await auth.post("/v1/auth/password/forgot", {"email": "no@example.com"})
    ).status_code == 202
    code = await auth.last_code("ada@example.com", purpose="password_reset")

    response = await auth.post(
        "/v1/auth/password/reset",
        {"email": "ada@example.com", "code": _wrong(code), "new_password": "brand new words"},
    )
    assert response.status_code == 400
    response = await auth.post(
        "/v1/auth/password/reset",
        {"email": "ada@example.com", "code": code, "new_password": "brand new words"},
    )
    assert response.status_code == 204

    for tokens in (first, second):
        response = await auth.post("/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        assert response.status_code == 401
    response = await auth.post("/v1/auth/login", {"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 401
    response = await auth.post(
        "/v1/auth/login", {"email": "ada@example.com", "password": "brand new words"}
    )
    assert response.status_code == 200
    log = (await auth.http.get("/v1/auth/audit-log", headers=bearer(response.json()))).json()
    assert "password.reset" in [entry["action"] for entry in log["items"]]


async def test_password_change_ends_the_other_sessions(auth: Auth) -> None:
    here = await auth.register("ada@example.com")
    elsewhere = (
        await auth.post("/v1/auth/login", {"email": "ada@example.com", "password": PASSWORD})
    ).json()
    response = await auth.post(
        "/v1/auth/password/change",
        {"current_password": "not it at all", "new_password": "a better password"},
        headers=bearer(here),
    )
    assert response.status_code == 403
    response = await auth.post(
        "/v1/auth/password/change",
        {"current_password": PASSWORD, "new_password": "a better password"},
        headers=bearer(here),
    )
    assert response.status_code == 204

    response = await auth.post("/v1/auth/refresh", {"refresh_token": elsewhere["refresh_token"]})
    assert response.status_code == 401
    response = await auth.post("/v1/auth/refresh", {"refresh_token": here["refresh_token"]})
    assert response.status_code == 200
    revoked = await auth.fetch(
        sa.select(refresh_tokens).where(refresh_tokens.c.revoked_at.is_not(None))
    )
    assert len(revoked) == 1


async def test_signing_up_again_before_verifying_sends_a_fresh_code(auth: Auth) -> None:
    await auth.sign_up("ada@example.com", password="first password")
    await auth.sign_up("ada@example.com", password="second password")
    assert len(await auth.events("auth.otp.requested.v1")) == 1, "within the cool-down"
    await auth.execute(
        sa.update(otp_codes).values(created_at=sa.func.now() - sa.text("'61 s'::interval"))
    )
    response = await auth.sign_up("ada@example.com", password="third password")
    assert response.status_code == 202
    assert len(await auth.events("auth.otp.requested.v1")) == 2
    assert len(await auth.events("auth.user.registered.v1")) == 1
    code = await auth.last_code("ada@example.com")
    assert (
        await auth.post("/v1/auth/verify", {"email": "ada@example.com", "code": code})
    ).status_code == 200
    response = await auth.post(
        "/v1/auth/login", {"email": "ada@example.com", "password": "third password"}
    )
    assert response.status_code == 200
