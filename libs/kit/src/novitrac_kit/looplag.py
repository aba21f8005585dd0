"""How far behind the event loop runs: the wait every callback has before its turn.

A timer is set every ``interval`` seconds; how late it fires is the lag. It is what every frame,
request and message handled by the process waits on top of its own work, so it is the first sign
of a process taking more than it can carry (CPU starved, or one callback blocking the loop). The
lag is exported as ``novitrac_event_loop_lag_seconds`` by every service (the kit's runtime samples
it), and :attr:`LoopLag.recent` gives the recent worst to code that wants to act on it.
"""

from __future__ import annotations

import asyncio
from collections import deque

from novitrac_kit.metrics import histogram
from novitrac_kit.periodic import Periodic

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
        self._samples: deque[float] = deque(maxlen=max(1, round(window / interval)))
        self._loop = Periodic(self._sample, interval=interval, name="event-loop-lag")

    @property
    def recent(self) -> float:
        """The worst lag, in seconds, over the last window (0 before the first sample)."""
        return max(self._samples, default=0.0)

    def start(self) -> None:
        """Start sampling on the running loop."""
        if not self._loop.running:
            self._loop.start()

    async def stop(self) -> None:
        """Stop sampling."""
        await self._loop.stop()

    async def _sample(self) -> None:
        # Run straight from the wake-up, with no await between: how late it comes is the lag.
        lag = max(0.0, asyncio.get_running_loop().time() - self._loop.due)
        self._samples.append(lag)
        self._series.observe(lag)


__all__ = ["EVENT_LOOP_LAG", "LoopLag"]
