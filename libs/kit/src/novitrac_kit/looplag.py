"""How far behind the event loop runs: the wait every callback has before its turn.

A timer is set every ``interval`` seconds; how late it fires is the lag. It is what every frame,
request and message handled by the process waits on top of its own work, so it is the first sign
of a process taking more than it can carry (CPU starved, or one callback blocking the loop). The
lag is exported as ``novitrac_event_loop_lag_seconds`` by every service (the kit's runtime samples
it), and :attr:`LoopLag.recent` gives the recent worst to code that wants to act on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from novitrac_kit.metrics import histogram

EVENT_LOOP_LAG = histogram(
    "novitrac_event_loop_lag_seconds",
    "How late the event loop ran a timer set to fire now, sampled every 100 ms.",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class LoopLag:
    """Samples the running loop's lag in a background task.

    Args:
        service: the ``service`` label of the metric.
        interval: seconds between samples.
        window: seconds over which :attr:`recent` is the worst sample.
    """

    def __init__(self, service: str, *, interval: float = 0.1, window: float = 2.0) -> None:
        self._series = EVENT_LOOP_LAG.labels(service)
        self._interval = interval
        self._samples: deque[float] = deque(maxlen=max(1, round(window / interval)))
        self._task: asyncio.Task[None] | None = None

    @property
    def recent(self) -> float:
        """The worst lag, in seconds, over the last window (0 before the first sample)."""
        return max(self._samples, default=0.0)

    def start(self) -> None:
        """Start sampling on the running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-loop-lag")

    async def stop(self) -> None:
        """Stop sampling."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            lag = max(0.0, loop.time() - due)
            self._samples.append(lag)
            self._series.observe(lag)


__all__ = ["EVENT_LOOP_LAG", "LoopLag"]
