"""``novitrac run``'s drain: the first signal drains a service that says how, a second one stops it.

Each test runs this file as a real process (a tiny service with no database) and signals it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import APIRouter

from novitrac_kit.bus.memory import InProcessBus
from novitrac_kit.config import ServiceSettings, load_settings
from novitrac_kit.process import serve
from novitrac_kit.runtime import ServiceContext, create_app
from novitrac_kit.service import Service
from novitrac_kit.testing.internal import INTERNAL_TOKEN
from novitrac_kit.testing.servers import free_port
from novitrac_kit.testing.waiting import eventually

HERE = Path(__file__)
released = asyncio.Event()
router = APIRouter()


@router.post("/release")
async def release() -> dict[str, str]:
    """Let the drain finish (the last "call" ended)."""
    released.set()
    return {"status": "released"}


async def wait_for_release(context: ServiceContext) -> None:
    await released.wait()


def tiny_service(*, drains: bool) -> Service:
    return Service(
        name="drainer",
        title="Drainer",
        settings=ServiceSettings,
        port=0,
        routers=[router],
        drain=wait_for_release if drains else None,
    )


@asynccontextmanager
async def tiny_process(*, drains: bool) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE), str(port), "drains" if drains else "plain"
    )
    url = f"http://127.0.0.1:{port}"
    try:

        async def serving() -> bool:
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(serving)
        yield process, url
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_first_signal_drains_then_the_process_exits_cleanly() -> None:
    async with tiny_process(drains=True) as (process, url), httpx.AsyncClient() as http:
        process.send_signal(signal.SIGTERM)

        async def not_ready() -> bool:
            return (await http.get(f"{url}/readyz")).status_code == 503

        await eventually(not_ready, within=2)
        body = (await http.get(f"{url}/readyz")).json()
        assert body["checks"]["accepting"] == "failing"
        assert (await http.get(f"{url}/healthz")).status_code == 200, "alive, serving meanwhile"
        await asyncio.sleep(0.5)
        assert process.returncode is None, "still draining"

        assert (await http.post(f"{url}/release")).status_code == 200
        assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_a_second_signal_during_the_drain_stops_at_once() -> None:
    async with tiny_process(drains=True) as (process, url), httpx.AsyncClient() as http:
        process.send_signal(signal.SIGTERM)

        async def not_ready() -> bool:
            return (await http.get(f"{url}/readyz")).status_code == 503

        await eventually(not_ready, within=2)
        assert process.returncode is None
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 5)


async def test_a_service_without_a_drain_stops_on_the_first_signal() -> None:
    async with tiny_process(drains=False) as (process, url), httpx.AsyncClient() as http:
        body = (await http.get(f"{url}/readyz")).json()
        assert "accepting" not in body["checks"], "its readiness report is as before"
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 5)
        assert process.returncode == -signal.SIGTERM


if __name__ == "__main__":
    port, mode = int(sys.argv[1]), sys.argv[2]
    service = tiny_service(drains=mode == "drains")
    settings = load_settings(
        ServiceSettings,
        database_url="postgresql://unused@127.0.0.1/unused",
        amqp_url="memory://",
        internal_token=INTERNAL_TOKEN,
        environment="test",
    )
    app = create_app(service, settings=settings, bus=InProcessBus(), owns_bus=True)
    serve(app, service, host="127.0.0.1", port=port, log_level="warning")
