"""One clock for every media stream: a single task sends all streams' frames, 50 a second each.

The 20 ms period is cut into :data:`SLOTS` equal slots and each stream joins the least busy one,
so a few streams send at each 2 ms step rather than all at once: a stream's frame then waits only
for its slot's few sends, and its cadence does not wobble with the number of calls. Steps are
scheduled from a monotonic start (step ``n`` is due at ``start + n * 2 ms``), so a late step never
shifts the ones after it: the clock catches up. One timer for all streams, instead of one per
stream, keeps the cost per frame low enough for hundreds of simultaneous calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from novitrac_sandbox.twilio.audio import FRAME_SAMPLES, SAMPLE_RATE

FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
SLOTS = 10
STEP_SECONDS = FRAME_SECONDS / SLOTS

logger = logging.getLogger(__name__)


class Ticking(Protocol):
    """Something that sends one frame per tick."""

    async def tick(self, due: float) -> None:
        """Send the frame due at ``due`` (``time.monotonic()`` seconds)."""


class FrameClock:
    """Paces every registered stream from one task, running while any stream is registered."""

    def __init__(self) -> None:
        self._slots: list[dict[Ticking, None]] = [{} for _ in range(SLOTS)]
        self._task: asyncio.Task[None] | None = None

    def add(self, stream: Ticking) -> None:
        """Start ticking ``stream`` in the least busy slot (from that slot's next step on)."""
        min(self._slots, key=len)[stream] = None
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="twilio-frame-clock")

    def remove(self, stream: Ticking) -> None:
        """Stop ticking ``stream``."""
        for slot in self._slots:
            slot.pop(stream, None)

    async def _run(self) -> None:
        start = time.monotonic()
        step = 0
        while any(self._slots):
            due = start + step * STEP_SECONDS
            # Behind schedule, still yield once per step so the sockets' input is read meanwhile.
            await asyncio.sleep(max(due - time.monotonic(), 0))
            slot = self._slots[step % SLOTS]
            for stream in list(slot):
                try:
                    await stream.tick(due)
                except Exception:
                    logger.exception("a media stream failed to tick; it stops")
                    self.remove(stream)
            step += 1
