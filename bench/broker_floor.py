"""The broker's floor: what RabbitMQ itself spends per event, with the leanest client we can write.

Run ``uv run python bench/broker_floor.py`` (``--quick`` for a smoke run). Nothing of the kit is
used: one process publishes persistent messages with publisher confirms through a durable topic
exchange into a durable queue, on aiormq directly (properties built once, publishes pipelined,
confirms awaited together); another consumes them with manual acks (``multiple=True``, every
``--ack-every`` deliveries or every few milliseconds) and a large prefetch. Both run at once, as the
relay and a consumer do end to end, first paced at ``--rate`` events/s, then flat out, for a quorum
and a classic queue. The messages are shaped as the bus sends them (about 500 bytes of JSON, the
same properties, a ``traceparent`` header).

Per scenario a line gives the CPU per event of the publisher, the consumer and RabbitMQ's
``beam.smp`` (and PostgreSQL's, which should be nil), and how busy the machine was. RabbitMQ's
figure is the one this benchmark is for: whatever the Python side does, two cores at 2,000
events/s leave 1,000 µs per event for everything, and this is the part no client change can cut.
RabbitMQ is shared: another process using it meanwhile shows in its figure. Its use in the
seconds before each run, with the benchmark idle, is printed and subtracted as its background.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType
from typing import Any, cast

import aiormq
from pamqp.commands import Basic

from bus import DEFAULT_AMQP_URL, CpuSample, cpu_line
from measure import machine

TIMEOUT = 300.0
"""Seconds any one scenario may take before the benchmark gives up on it."""
BACKGROUND = 3.0
"""Seconds RabbitMQ's own CPU use is sampled before each run, to subtract its background."""
TICK = 0.005
"""Seconds between the paced publisher's bursts."""


@dataclass(frozen=True)
class Scenario:
    """One run: ``count`` events into a ``queue_type`` queue, at ``rate``/s or flat out (None)."""

    name: str
    queue_type: str
    count: int
    rate: float | None
    exchange: str
    queue: str
    amqp_url: str
    prefetch: int
    ack_every: int
    window: int


def _body(n: int) -> bytes:
    """An envelope shaped like ``telephony.call.ended.v1``'s."""
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "type": "bench.call.ended.v1",
            "occurred_at": datetime.now(UTC).isoformat(),
            "producer": "bench",
            "correlation_id": None,
            "org_id": str(uuid.uuid4()),
            "data": {
                "n": n,
                "written_at": time.time(),
                "call_id": str(uuid.uuid4()),
                "org_id": str(uuid.uuid4()),
                "agent_id": str(uuid.uuid4()),
                "status": "completed",
                "duration_s": 42,
                "ended_reason": "remote_hung_up",
            },
        }
    ).encode()


async def publish(scenario: Scenario, gate: asyncio.Future[None]) -> tuple[float, float]:
    """Publish the scenario's events with confirms; (wall seconds, CPU seconds) of the publishing.

    Bodies and properties are made before the clock starts: the floor is the broker's, and the
    client's part is as small as a client can make it.
    """
    connection = await aiormq.connect(scenario.amqp_url)
    channel = cast(aiormq.Channel, await connection.channel(publisher_confirms=True))
    bodies = [_body(n) for n in range(scenario.count)]
    properties = [
        Basic.Properties(
            content_type="application/json",
            delivery_mode=2,
            headers={"traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"},
            message_id=str(uuid.uuid4()),
            timestamp=datetime.now(UTC),
            message_type="bench.call.ended.v1",
            app_id="bench",
        )
        for _ in range(scenario.count)
    ]
    await gate
    started, cpu = time.perf_counter(), time.process_time()
    window = asyncio.Semaphore(scenario.window)

    async def one(n: int) -> None:
        try:
            confirmation = await channel.basic_publish(
                bodies[n],
                exchange=scenario.exchange,
                routing_key="bench.call.ended.v1",
                properties=properties[n],
                wait=False,
            )
            if not isinstance(confirmation, Basic.Ack):
                raise RuntimeError(f"publish {n} not confirmed: {confirmation!r}")
        finally:
            window.release()

    burst = max(1, round((scenario.rate or 0) * TICK)) if scenario.rate else 100
    pending: set[asyncio.Task[None]] = set()
    for first in range(0, scenario.count, burst):
        if scenario.rate:
            delay = started + first / scenario.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        for n in range(first, min(first + burst, scenario.count)):
            await window.acquire()
            task = asyncio.create_task(one(n))
            pending.add(task)
            task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    await connection.close()
    return elapsed, used


async def consume(scenario: Scenario, gate: asyncio.Future[None]) -> tuple[float, float]:
    """Consume the scenario's events with manual acks; (wall seconds, CPU seconds)."""
    connection = await aiormq.connect(scenario.amqp_url)
    channel = await connection.channel()
    await channel.basic_qos(prefetch_count=scenario.prefetch)
    done = asyncio.Event()
    received = 0
    last_tag = 0
    acked_tag = 0

    async def ack_up_to(tag: int) -> None:
        nonlocal acked_tag
        if tag > acked_tag:
            acked_tag = tag
            await channel.basic_ack(tag, multiple=True, wait=False)

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        nonlocal received, last_tag
        received += 1
        last_tag = max(last_tag, message.delivery_tag or 0)
        if last_tag - acked_tag >= scenario.ack_every:
            await ack_up_to(last_tag)
        if received >= scenario.count:
            await ack_up_to(last_tag)
            done.set()

    async def flush() -> None:
        while True:
            await asyncio.sleep(TICK)
            await ack_up_to(last_tag)

    await gate
    started, cpu = time.perf_counter(), time.process_time()
    await channel.basic_consume(scenario.queue, on_message, no_ack=False)
    flusher = asyncio.create_task(flush())
    await asyncio.wait_for(done.wait(), TIMEOUT)
    elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    flusher.cancel()
    await connection.close()
    return elapsed, used


def _child(
    role: str, scenario: Scenario, report: Queue[Any], go: EventType
) -> None:  # pragma: no cover - runs in its own process
    async def play() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        gate: asyncio.Future[None] = loop.create_future()

        async def release() -> None:
            report.put((role, "ready", None))
            await asyncio.to_thread(go.wait)
            gate.set_result(None)

        opener = asyncio.create_task(release())
        try:
            if role == "publisher":
                return await publish(scenario, gate)
            return await consume(scenario, gate)
        finally:
            await opener

    try:
        report.put((role, "done", asyncio.run(play())))
    except BaseException as error:
        report.put((role, "failed", repr(error)))
        raise


async def declare(scenario: Scenario) -> None:
    """The exchange, the queue and its binding."""
    connection = await aiormq.connect(scenario.amqp_url)
    channel = await connection.channel()
    await channel.exchange_declare(scenario.exchange, exchange_type="topic", durable=True)
    await channel.queue_declare(
        scenario.queue, durable=True, arguments={"x-queue-type": scenario.queue_type}
    )
    await channel.queue_bind(scenario.queue, scenario.exchange, routing_key="bench.#")
    await connection.close()


async def remove(scenario: Scenario) -> None:
    """Delete the queue and the exchange."""
    connection = await aiormq.connect(scenario.amqp_url)
    channel = await connection.channel()
    await channel.queue_delete(scenario.queue)
    await channel.exchange_delete(scenario.exchange)
    await connection.close()


def _background(seconds: float = BACKGROUND) -> float | None:
    """RabbitMQ's CPU seconds per second while this benchmark sends it nothing."""
    before = CpuSample.now()
    time.sleep(seconds)
    after = CpuSample.now()
    if before is None or after is None:
        return None
    return (after.rabbitmq - before.rabbitmq) / seconds


def run(scenario: Scenario) -> None:
    """Run publisher and consumer together; print the rate and the CPU per event."""
    asyncio.run(declare(scenario))
    context = multiprocessing.get_context("spawn")
    report: Queue[Any] = context.Queue()
    go = context.Event()
    processes = [
        context.Process(target=_child, args=(role, scenario, report, go), name=role)
        for role in ("consumer", "publisher")
    ]
    try:
        for process in processes:
            process.start()
        results: dict[tuple[str, str], Any] = {}

        def wait(role: str, kind: str) -> Any:
            deadline = time.monotonic() + TIMEOUT
            while (role, kind) not in results:
                got_role, got_kind, value = report.get(timeout=deadline - time.monotonic())
                if got_kind == "failed":
                    raise RuntimeError(f"the {got_role} process failed: {value}")
                results[got_role, got_kind] = value
            return results.pop((role, kind))

        wait("consumer", "ready")
        wait("publisher", "ready")
        background = _background()
        before = CpuSample.now()
        go.set()
        published, publisher_cpu = wait("publisher", "done")
        consumed, consumer_cpu = wait("consumer", "done")
        after = CpuSample.now()
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
        asyncio.run(remove(scenario))
    rate = scenario.count / consumed
    print(
        f"  {scenario.name:<28} {scenario.count:>7} {consumed:>7.2f} s {rate:>8,.0f} /s"
        f"   (published in {published:.2f} s, {scenario.count / published:,.0f}/s)"
    )
    print(
        f"  {'':<30}"
        + cpu_line(
            scenario.count, before, after, {"publisher": publisher_cpu, "consumer": consumer_cpu}
        )
    )
    if before is not None and after is not None and background is not None:
        wall = (after.total - before.total) / (os.cpu_count() or 1)
        net = after.rabbitmq - before.rabbitmq - background * wall
        print(
            f"  {'':<30}RabbitMQ before the run, idle for us: {100 * background:.1f}% of a core;"
            f" net of that, RabbitMQ {1e6 * max(0.0, net) / scenario.count:,.0f} µs per event"
        )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run the scenarios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per flat-out run")
    parser.add_argument("--rate", type=float, default=2000.0, help="paced events/s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of paced publishing")
    parser.add_argument("--prefetch", type=int, default=1000, help="the consumer's prefetch")
    parser.add_argument("--ack-every", type=int, default=100, help="deliveries per multiple ack")
    parser.add_argument("--window", type=int, default=1000, help="publishes awaiting confirms")
    parser.add_argument(
        "--queue-types", default="quorum,classic", help="comma-separated: quorum, classic"
    )
    parser.add_argument("--quick", action="store_true", help="2,000 events, 2 s paced")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.duration = 2_000, 2.0
    name = f"bench_floor_{uuid.uuid4().hex[:10]}"
    print(f"broker floor benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"  command:  {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"  machine:  {machine()}")
    print(
        f"  client:   aiormq, publisher confirms with up to {args.window} in flight; consumer"
        f" prefetch {args.prefetch}, ack multiple every {args.ack_every} or {TICK * 1000:.0f} ms"
    )
    print(f"\n  {'scenario':<28} {'events':>7} {'time':>9} {'rate':>10}")
    for queue_type in args.queue_types.split(","):
        for rate in (args.rate, None):
            count = round(args.rate * args.duration) if rate else args.events
            label = f"{queue_type}, {f'{rate:,.0f}/s' if rate else 'flat out'}"
            run(
                Scenario(
                    name=label,
                    queue_type=queue_type,
                    count=count,
                    rate=rate,
                    exchange=f"{name}.events",
                    queue=f"{name}.{queue_type}",
                    amqp_url=args.amqp_url,
                    prefetch=args.prefetch,
                    ack_every=args.ack_every,
                    window=args.window,
                )
            )


if __name__ == "__main__":
    main(sys.argv[1:])
