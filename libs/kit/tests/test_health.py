from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Mapping

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from novitrac_kit.health import health_router


def client(
    checks: Mapping[str, Callable[[], Awaitable[bool]]], *, timeout: float = 0.2
) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(health_router(checks, timeout=timeout))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


async def passing() -> bool:
    return True


async def failing() -> bool:
    return False


async def hanging() -> bool:
    await asyncio.Event().wait()
    return True


async def raising() -> bool:
    raise ConnectionError("password authentication failed for user billing with hunter2")


def postgres_check(url: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        engine = create_async_engine(url, connect_args={"timeout": 2})
        try:
            async with engine.connect() as connection:
                return bool(await connection.scalar(text("SELECT 1")) == 1)
        finally:
            await engine.dispose()

    return check


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TestHealthz:
    async def test_alive_even_when_dependencies_are_not(self) -> None:
        async with client({"database": failing, "bus": hanging}) as http:
            response = await http.get("/healthz")

        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


class TestReadyz:
    async def test_ready_when_every_check_passes(self) -> None:
        async with client({"database": passing, "bus": passing}) as http:
            response = await http.get("/readyz")

        assert response.status_code == 200
        assert response.json() == {"status": "ok", "checks": {"database": "ok", "bus": "ok"}}

    async def test_ready_without_checks(self) -> None:
        async with client({}) as http:
            response = await http.get("/readyz")

        assert response.status_code == 200

    async def test_failing_check(self) -> None:
        async with client({"database": passing, "bus": failing}) as http:
            response = await http.get("/readyz")

        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "checks": {"database": "ok", "bus": "failing"},
        }

    async def test_hanging_check_times_out(self) -> None:
        async with client({"database": passing, "bus": hanging}) as http:
            response = await http.get("/readyz")

        assert response.status_code == 503
        assert response.json()["checks"] == {"database": "ok", "bus": "timeout"}

    async def test_raising_check_does_not_leak_its_error(self) -> None:
        async with client({"database": raising}) as http:
            response = await http.get("/readyz")

        assert response.status_code == 503
        assert response.json()["checks"] == {"database": "error"}
        assert "hunter2" not in response.text
        assert "ConnectionError" not in response.text

    @pytest.mark.postgres
    async def test_real_database(self, database_url: str) -> None:
        unreachable = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/test"
        reachable_only = {"database": postgres_check(database_url)}
        both = {**reachable_only, "replica": postgres_check(unreachable)}

        async with client(reachable_only, timeout=10) as http:
            up = await http.get("/readyz")
        async with client(both, timeout=10) as http:
            down = await http.get("/readyz")

        assert up.status_code == 200
        assert down.status_code == 503
        assert down.json()["checks"] == {"database": "ok", "replica": "error"}
