"""The loop-lag monitor sees a blocked event loop, and forgets it once the loop is free again;
a replica configured to care reports not ready meanwhile."""

from __future__ import annotations

import asyncio
import time

import httpx
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY

from novitrac_kit.bus.memory import InProcessBus
from novitrac_kit.config import ServiceSettings, load_settings
from novitrac_kit.looplag import LoopLag
from novitrac_kit.runtime import create_app
from novitrac_kit.service import Service
from novitrac_kit.testing.internal import INTERNAL_TOKEN
from novitrac_kit.testing.waiting import eventually


def observed(service: str) -> float:
    value = REGISTRY.get_sample_value("novitrac_event_loop_lag_seconds_count", {"service": service})
    return value or 0.0


async def test_a_blocked_loop_shows_as_lag_then_clears() -> None:
    lag = LoopLag("looplag-test", interval=0.02, window=0.2)
    lag.start()
    try:
        await asyncio.sleep(0.1)
        assert lag.recent < 0.1

        time.sleep(0.3)  # noqa: ASYNC251 - the loop held, as CPU starvation does
        await asyncio.sleep(0.05)
        assert lag.recent >= 0.25

        await asyncio.sleep(0.4)
        assert lag.recent < 0.1
        assert observed("looplag-test") > 5
    finally:
        await lag.stop()


async def test_a_replica_whose_loop_lags_reports_not_ready_until_it_recovers() -> None:
    service = Service(name="looplag-ready", title="lagging", settings=ServiceSettings, port=0)
    settings = load_settings(
        ServiceSettings,
        database_url="postgresql://unused/unused",
        amqp_url="memory://",
        internal_token=INTERNAL_TOKEN,
        ready_max_loop_lag=0.2,
    )
    async with InProcessBus() as bus:
        app = create_app(service, settings=settings, bus=bus, owns_bus=False)
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://x") as client,
        ):

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await eventually(ready)

            time.sleep(0.5)  # noqa: ASYNC251 - the loop held, as CPU starvation does
            await asyncio.sleep(0.2)  # the sampler's late wake-up is recorded
            overloaded = await client.get("/readyz")
            assert overloaded.status_code == 503
            assert overloaded.json()["checks"]["event_loop"] == "failing"
            assert (await client.get("/healthz")).status_code == 200

            await eventually(ready)
