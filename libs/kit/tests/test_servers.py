"""The test helper that serves an app on a real socket."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from novitrac_kit.testing.servers import running


async def test_serves_the_app_until_the_block_ends() -> None:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    async with running(app) as url, httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/hello")).json() == {"hello": "world"}

    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/hello")
