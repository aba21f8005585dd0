"""Waiting for asynchronous outcomes in tests: poll a condition until a generous deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, within: float = 20.0, interval: float = 0.02
) -> None:
    """Return as soon as ``condition()`` is true; fail the test when ``within`` seconds pass first.

    The deadline is a safety net for a broken system, not a performance bound: keep it generous.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition {condition.__name__!r} not met within {within} s")
        await asyncio.sleep(interval)
