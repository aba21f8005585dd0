"""A periodic loop runs its step again and again, survives a failing step, wakes when poked and
stops promptly, giving a step in progress its grace.

The long intervals (an hour) stand for "never in this test": a step that runs anyway ran because of
a poke, a returned wait or the start; the timeouts only keep a broken loop from hanging the suite.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from novitrac_kit.periodic import Periodic

NEVER = 3600.0
GUARD = 10.0


class Steps:
    """A step that counts its runs and lets a test wait for the n-th."""

    def __init__(self, *, fail_first: int = 0, wait: float | None = None) -> None:
        self.runs = 0
        self.fail_first = fail_first
        self.wait = wait
        self._changed = asyncio.Condition()

    async def __call__(self) -> float | None:
        self.runs += 1
        async with self._changed:
            self._changed.notify_all()
        if self.runs <= self.fail_first:
            raise RuntimeError(f"run {self.runs} failed")
        return self.wait

    async def reach(self, runs: int) -> None:
        async with asyncio.timeout(GUARD), self._changed:
            await self._changed.wait_for(lambda: self.runs >= runs)


@asynccontextmanager
async def running(periodic: Periodic) -> AsyncIterator[Periodic]:
    periodic.start()
    try:
        yield periodic
    finally:
        await periodic.stop()


async def test_steps_run_repeatedly() -> None:
    steps = Steps()
    async with running(Periodic(steps, interval=0.01, name="repeats")):
        await steps.reach(3)


async def test_the_first_step_waits_one_interval_unless_immediately() -> None:
    later, now = Steps(), Steps()
    async with (
        running(Periodic(later, interval=NEVER, name="later")),
        running(Periodic(now, interval=NEVER, name="now", immediately=True)),
    ):
        await now.reach(1)
        assert later.runs == 0


async def test_a_failing_step_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    steps = Steps(fail_first=2)
    periodic = Periodic(
        steps,
        interval=0.01,
        name="flaky",
        failure_event="flaky.step_failed",
        extra={"schema": "billing"},
    )
    with caplog.at_level(logging.WARNING, logger="novitrac_kit.periodic"):
        async with running(periodic):
            await steps.reach(4)

    failures = [record for record in caplog.records if record.msg == "flaky.step_failed"]
    assert len(failures) == 2
    assert [record.__dict__["error"] for record in failures] == [
        "RuntimeError('run 1 failed')",
        "RuntimeError('run 2 failed')",
    ]
    assert {(record.__dict__["task"], record.__dict__["schema"]) for record in failures} == {
        ("flaky", "billing")
    }
    assert periodic.running is False


async def test_poke_runs_a_step_before_the_interval_ends() -> None:
    steps = Steps()
    async with running(Periodic(steps, interval=NEVER, name="poked", immediately=True)) as loop:
        await steps.reach(1)
        loop.poke()
        await steps.reach(2)
        loop.poke()
        await steps.reach(3)


async def test_a_poke_during_a_step_runs_another_right_after_it() -> None:
    inside, release, again = asyncio.Event(), asyncio.Event(), asyncio.Event()
    runs = 0

    async def step() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            inside.set()
            await release.wait()
        else:
            again.set()

    async with running(Periodic(step, interval=NEVER, name="busy", immediately=True)) as loop:
        async with asyncio.timeout(GUARD):
            await inside.wait()
            loop.poke()
            release.set()
            await again.wait()


async def test_the_wait_a_step_returns_replaces_the_interval() -> None:
    steps = Steps(wait=0.0)
    async with running(Periodic(steps, interval=NEVER, name="eager", immediately=True)):
        await steps.reach(5)


async def test_stop_mid_wait_returns_at_once_and_runs_no_step() -> None:
    steps = Steps()
    periodic = Periodic(steps, interval=NEVER, name="idle")
    periodic.start()
    await asyncio.sleep(0)  # the loop is in its wait now

    async with asyncio.timeout(GUARD):
        await periodic.stop(grace=NEVER)

    assert steps.runs == 0
    assert periodic.running is False


async def test_stop_waits_for_the_step_in_progress_within_its_grace() -> None:
    inside, release = asyncio.Event(), asyncio.Event()
    finished: list[bool] = []

    async def step() -> None:
        inside.set()
        await release.wait()
        finished.append(True)

    periodic = Periodic(step, interval=NEVER, name="graceful", immediately=True)
    periodic.start()
    async with asyncio.timeout(GUARD):
        await inside.wait()
        stopping = asyncio.create_task(periodic.stop(grace=NEVER))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not stopping.done(), "stop waits for the step"
        release.set()
        await stopping

    assert finished == [True]


async def test_a_step_outlasting_the_grace_is_cancelled() -> None:
    inside = asyncio.Event()
    cancelled: list[bool] = []

    async def step() -> None:
        inside.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    periodic = Periodic(step, interval=NEVER, name="stuck", immediately=True)
    periodic.start()
    async with asyncio.timeout(GUARD):
        await inside.wait()
        await periodic.stop(grace=0.01)

    assert cancelled == [True]


async def test_it_starts_once_and_again_after_a_stop() -> None:
    steps = Steps()
    periodic = Periodic(steps, interval=NEVER, name="restart", immediately=True)
    async with running(periodic):
        await steps.reach(1)
        with pytest.raises(RuntimeError, match="already running"):
            periodic.start()
    await periodic.stop()  # stopping a stopped loop does nothing

    async with running(periodic):
        await steps.reach(2)


async def test_due_is_when_each_wait_was_set_to_end() -> None:
    seen: list[tuple[float, float]] = []  # (due, the loop's time when the step ran)
    enough = asyncio.Event()
    periodic: Periodic

    async def step() -> None:
        seen.append((periodic.due, asyncio.get_running_loop().time()))
        if len(seen) == 3:
            enough.set()

    periodic = Periodic(step, interval=0.01, name="due")
    async with running(periodic), asyncio.timeout(GUARD):
        await enough.wait()

    dues = [due for due, _ in seen]
    assert dues == sorted(set(dues)), "a new due for every wait"
    assert all(ran < due for (_, ran), (due, _) in itertools.pairwise(seen))
