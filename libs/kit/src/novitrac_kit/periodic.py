"""A background loop that runs one step every ``interval`` seconds, or sooner when poked.

The shape every service's housekeeping shares (purging the inbox, sampling the loop's lag,
reconciling, syncing, renewing leases): started and stopped with the service, a step that fails is
logged and the loop goes on, and stopping is prompt::

    purger = Periodic(purge_once, interval=3600, name="inbox-purger", immediately=True)
    purger.start()
    ...
    purger.poke()  # run a step now instead of at the end of the wait
    ...
    await purger.stop(grace=5)  # a step in progress gets up to 5 s, then it is cancelled

The wait is measured from the end of one step to the start of the next, and is timed exactly as
``asyncio.sleep`` is (one timer, no extra task), so a step can measure how late it was woken
against :attr:`Periodic.due`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

logger = logging.getLogger(__name__)

Step = Callable[[], Awaitable[float | None]]
"""One run of the loop's work. It may return the seconds to wait before the next run (None: the
interval); beware a step whose result is a count, which would be taken as a wait: wrap it."""


class Periodic:
    """Runs ``step`` in a background task until :meth:`stop`.

    Args:
        step: the work of one run (see :data:`Step`).
        interval: seconds between the end of one run and the start of the next.
        name: the task's name, also logged (``task``) with a failure.
        immediately: run the first step at start (else after one interval).
        failure_event: the log event of a failed step (a warning, with ``error``).
        extra: more fields logged with a failure (``{"schema": ...}``).
    """

    def __init__(
        self,
        step: Step,
        *,
        interval: float,
        name: str,
        immediately: bool = False,
        failure_event: str = "periodic.step_failed",
        extra: Mapping[str, object] | None = None,
    ) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.interval = interval
        self.name = name
        self._step = step
        self._immediately = immediately
        self._failure_event = failure_event
        self._extra = dict(extra or {})
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._poked = False
        self._stopping = False
        self._due = 0.0

    @property
    def running(self) -> bool:
        """Whether the loop was started and not stopped."""
        return self._task is not None

    @property
    def due(self) -> float:
        """The loop time at which the last wait was set to end (a poke ends it earlier)."""
        return self._due

    def start(self) -> None:
        """Start the loop on the running event loop.

        Raises:
            RuntimeError: it is running already.
        """
        if self._task is not None:
            raise RuntimeError(f"{self.name} is already running")
        self._stopping = False
        self._poked = False
        self._task = asyncio.create_task(self._run(), name=self.name)

    def poke(self) -> None:
        """Run a step now: the wait in progress ends, or, during a step, the next one is skipped."""
        self._poked = True
        self._wake()

    async def stop(self, grace: float = 0.0) -> None:
        """Stop the loop: at once if it is waiting; a step in progress gets ``grace`` seconds.

        A step still running after ``grace`` is cancelled. Stopping a loop that is not running
        does nothing.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake()
        if grace > 0 and not task.done():
            await asyncio.wait({task}, timeout=grace)
        if not task.done():
            task.cancel()
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            logger.error("periodic.crashed", extra={"task": self.name}, exc_info=task.exception())

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)

    async def _wait(self, delay: float) -> None:
        # What asyncio.sleep does (a future and one timer), with a way to end it early.
        loop = asyncio.get_running_loop()
        self._due = loop.time() + delay
        if self._poked or self._stopping:
            await asyncio.sleep(0)  # still yield, so a step that pokes itself starves nothing
            return
        waiter = self._waiter = loop.create_future()
        timer = loop.call_at(self._due, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _run(self) -> None:
        if not self._immediately:
            await self._wait(self.interval)
        while not self._stopping:
            self._poked = False
            try:
                wait = await self._step()
            except Exception as error:
                logger.warning(
                    self._failure_event,
                    extra={"task": self.name, **self._extra, "error": repr(error)},
                )
                wait = None
            await self._wait(self.interval if wait is None else max(wait, 0.0))


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


__all__ = ["Periodic", "Step"]
