"""A live subscriber's inbox: bounded, dropping the oldest signal when full, never blocking."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from novitrac_contracts.envelope import Envelope
from novitrac_kit.bus.base import LiveHandler
from novitrac_kit.bus.metrics import LIVE_SIGNALS_DROPPED

log = logging.getLogger(__name__)

DEFAULT_LIVE_BUFFER = 1000
"""Signals a live subscriber may fall behind by before the oldest are dropped."""


class LiveInbox:
    """Hands signals to one live handler, in order, one at a time, from a bounded buffer.

    :meth:`offer` never waits: when the handler has fallen ``maxlen`` signals behind, the oldest
    waiting signal is dropped, so a slow screen sees the latest state rather than stale history.

    Args:
        handler: called once per signal; its errors are logged and do not stop the inbox.
        maxlen: how many signals may wait.
        transport: label of the drop counter.
    """

    def __init__(self, handler: LiveHandler, *, maxlen: int, transport: str) -> None:
        self._handler = handler
        self._waiting: deque[Envelope] = deque(maxlen=maxlen)
        self._wakeup = asyncio.Event()
        self._transport = transport
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self) -> None:
        """Start handing signals to the handler."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop at once; signals still waiting are dropped."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def offer(self, envelope: Envelope) -> None:
        """Queue a signal for the handler, dropping the oldest waiting one when full."""
        if len(self._waiting) == self._waiting.maxlen:
            self.dropped += 1
            LIVE_SIGNALS_DROPPED.labels(self._transport).inc()
        self._waiting.append(envelope)
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._waiting:
                envelope = self._waiting.popleft()
                try:
                    await self._handler(envelope)
                except Exception:
                    log.exception(
                        "bus.live.handler_failed",
                        extra={"event_type": envelope.type, "event_id": str(envelope.id)},
                    )
