"""The loop-lag monitor sees a blocked event loop, and forgets it once the loop is free again."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import REGISTRY

from novitrac_kit.looplag import LoopLag


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
