"""The internal token: what ``/internal`` routers require and what the platform's callers send."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import SecretStr

from novitrac_kit.devmode import development_environment
from novitrac_kit.errors import install_error_handlers
from novitrac_kit.internal import (
    INTERNAL,
    INTERNAL_RESPONSES,
    INTERNAL_TOKEN_FILE,
    InternalAuth,
    development_token,
    internal_headers,
    matches,
)
from novitrac_kit.service import DevelopmentSite
from novitrac_kit.testing.internal import INTERNAL_TOKEN, WRONG_INTERNAL_TOKEN
from novitrac_kit.testing.servers import running


def _app() -> tuple[FastAPI, list[str]]:
    calls: list[str] = []
    router = APIRouter(prefix="/internal", dependencies=INTERNAL, responses=INTERNAL_RESPONSES)

    @router.post("/things")
    async def things(body: dict[str, int]) -> dict[str, int]:
        calls.append("things")
        return body

    app = FastAPI()
    settings = SimpleNamespace(internal_token=SecretStr(INTERNAL_TOKEN))
    app.state.context = SimpleNamespace(settings=settings)
    app.include_router(router)
    install_error_handlers(app)
    return app, calls


REFUSED: dict[str, Mapping[str, str] | Mapping[bytes, bytes]] = {
    "none": {},
    "wrong": internal_headers(WRONG_INTERNAL_TOKEN),
    "prefix": internal_headers(INTERNAL_TOKEN[:-1]),
    "longer": internal_headers(INTERNAL_TOKEN + "!"),
    "basic": {"Authorization": f"Basic {INTERNAL_TOKEN}"},
    "bare": {"Authorization": INTERNAL_TOKEN},
    "not ascii": {b"Authorization": "Bearer ünïcode-token-that-is-long-enough".encode("latin-1")},
}


@pytest.mark.parametrize("headers", REFUSED.values(), ids=REFUSED.keys())
async def test_refused_without_the_token(
    headers: Mapping[str, str] | Mapping[bytes, bytes],
) -> None:
    app, calls = _app()
    async with running(app) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/internal/things", json={"a": 1}, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    message = "this route is for the platform's services only"
    assert response.json() == {"error": {"code": "unauthorized", "message": message}}
    assert calls == []


async def test_accepted_with_the_token_by_header_or_client_auth() -> None:
    app, calls = _app()
    auth = InternalAuth(SecretStr(INTERNAL_TOKEN))
    async with running(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            by_header = await client.post(
                "/internal/things", json={"a": 1}, headers=internal_headers(INTERNAL_TOKEN)
            )
            # The scheme is case-insensitive, as HTTP says.
            lower = await client.post(
                "/internal/things",
                json={"a": 3},
                headers={"Authorization": f"bearer {INTERNAL_TOKEN}"},
            )
        async with httpx.AsyncClient(base_url=url, auth=auth) as client:
            by_auth = await client.post("/internal/things", json={"a": 2})

    assert [r.status_code for r in (by_header, by_auth)] == [200, 200]
    assert by_auth.json() == {"a": 2}
    assert calls == ["things", "things", "things"]
    assert lower.status_code == 200


async def test_the_token_is_checked_before_the_body_is_validated() -> None:
    app, calls = _app()
    async with running(app) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/internal/things", json={"a": "not a number"})
    assert response.status_code == 401
    assert calls == []


async def test_the_401_is_documented() -> None:
    app, _ = _app()
    refused = app.openapi()["paths"]["/internal/things"]["post"]["responses"]["401"]
    assert "internal token" in refused["description"]
    assert refused["headers"]["WWW-Authenticate"]["schema"] == {"type": "string"}
    assert refused["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }


def test_matches() -> None:
    assert matches(f"Bearer {INTERNAL_TOKEN}", SecretStr(INTERNAL_TOKEN))
    assert matches(f"  Bearer   {INTERNAL_TOKEN} ", INTERNAL_TOKEN)
    assert not matches(None, INTERNAL_TOKEN)
    assert not matches("Bearer", INTERNAL_TOKEN)
    assert not matches(f"Bearer {WRONG_INTERNAL_TOKEN}", INTERNAL_TOKEN)


def test_the_auth_never_shows_the_token() -> None:
    auth = InternalAuth(SecretStr(INTERNAL_TOKEN))
    assert INTERNAL_TOKEN not in repr(auth)


def test_a_development_token_is_made_once_per_data_folder(tmp_path: Path) -> None:
    first = development_token(tmp_path / "data")
    again = development_token(tmp_path / "data")
    other = development_token(tmp_path / "elsewhere")

    assert first == again
    assert len(first) >= 32
    assert other != first
    path = tmp_path / "data" / INTERNAL_TOKEN_FILE
    assert path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_a_short_stored_token_is_replaced(tmp_path: Path) -> None:
    (tmp_path / INTERNAL_TOKEN_FILE).write_text("short\n")
    token = development_token(tmp_path)
    assert len(token) >= 32
    assert (tmp_path / INTERNAL_TOKEN_FILE).read_text().strip() == token


def test_development_mode_sets_the_folders_token(tmp_path: Path) -> None:
    site = DevelopmentSite(host="127.0.0.1", port_offset=0, data_dir=tmp_path)
    environment = development_environment([], site)
    assert environment["NOVITRAC_INTERNAL_TOKEN"] == development_token(tmp_path)
