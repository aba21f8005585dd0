"""The bus benchmark: domain events through the outbox relay and RabbitMQ, on this machine.

Run ``uv run python bench/bus.py`` (``--quick`` for a smoke run, ``--help`` for the knobs). It
creates a database and broker objects of its own (``bench_<hex>``), runs the scenarios below and
removes everything again. A benchmark, not a test: it prints numbers and judges them against the
targets, it never fails on them.

The parts are the kit's own: writers commit events with :func:`novitrac_kit.outbox.add`, an
:class:`~novitrac_kit.outbox.OutboxRelay` publishes them with confirms through
:class:`~novitrac_kit.bus.rabbitmq.RabbitBus`, and a consumer subscribed through
:meth:`~novitrac_kit.handlers.EventHandlers.subscription` handles each in one transaction that
claims it in the inbox and writes its effect. As in production, where the producing service, its
relay and the consuming service are separate processes, the writer, the relay and the consumer each
run in a process of their own (the in-process comparison runs them in one).

Scenarios:

1. ``write``: the writers fill the outbox (relay and consumer stopped).
2. ``publish``: the relay alone drains that backlog to RabbitMQ: the confirmed publish rate.
3. ``consume``: the consumer alone drains the queue the relay filled: the consume rate.
4. ``end to end``: writers, relay and consumer at once, from the first write to the last commit of
   a handler's transaction.
5. ``latency``: one writer paced at ``--rate`` events/s, one event per transaction; per event the
   time from just before its transaction commits (a timestamp in the payload, read against the same
   machine clock) to the start of its handler.
6. ``in-process``: scenario 4 with the in-process transport, everything in one process.

Under a scenario, a line gives the CPU spent per event by each role's process and by every
PostgreSQL and RabbitMQ process (from ``/proc``), and how busy the machine was meanwhile, with the
share of processes that are none of these, so that a busy neighbour shows in the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import multiprocessing
import os
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType
from typing import Any, ClassVar

import aio_pika
import asyncpg
from sqlalchemy import Column, Insert, Integer, Table, Uuid, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from measure import DiscardingExporter, machine, percentile
from novitrac_contracts.envelope import Envelope, Event
from novitrac_kit import db, inbox, outbox
from novitrac_kit.bus import Delivery, EventBus, Subscription
from novitrac_kit.bus.memory import InProcessBus
from novitrac_kit.bus.rabbitmq import RabbitBus
from novitrac_kit.handlers import EventHandlers, HandlerContext
from novitrac_kit.telemetry import configure_tracing

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

END_TO_END_TARGET = 2000.0
"""Events per second, confirmed end to end."""
P99_TARGET_MS = 50.0
"""Milliseconds, write to handler, at the paced rate."""

PRODUCER = "bench"
TIMEOUT = 600.0
"""Seconds any one scenario may take before the benchmark gives up on it."""


class BenchCallEnded(Event):
    """Emitted by the benchmark's writers: shaped like ``telephony.call.ended.v1``."""

    event_type: ClassVar[str] = "bench.call.ended.v1"

    n: int
    written_at: float
    call_id: uuid.UUID
    org_id: uuid.UUID
    agent_id: uuid.UUID
    status: str = "completed"
    duration_s: int = 42
    ended_reason: str | None = "remote_hung_up"


@dataclass(frozen=True)
class Setup:
    """Where everything lives; passed to each process.

    Attributes:
        database_url: the benchmark's own database.
        amqp_url: the broker.
        name: prefix of every schema, exchange and queue the benchmark creates.
        prefetch: deliveries the consumer handles concurrently.
        relay_batch: events the relay claims per transaction.
        tracing: record spans as a service with a collector does, or run without an SDK.
        gc_freeze: move what a process holds once set up out of the garbage collector's sight.
    """

    database_url: str
    amqp_url: str
    name: str
    prefetch: int
    relay_batch: int
    tracing: bool
    gc_freeze: bool

    @property
    def producer_schema(self) -> str:
        """The producing service's schema, holding the outbox."""
        return f"{self.name}_producer"

    @property
    def consumer_schema(self) -> str:
        """The consuming service's schema, holding the inbox and the handler's effects."""
        return f"{self.name}_consumer"

    @property
    def queue(self) -> str:
        """The consuming service's queue."""
        return f"{self.name}.consumer"

    @property
    def exchanges(self) -> tuple[str, str, str]:
        """The domain events, live signals and dead-letter exchanges."""
        return f"{self.name}.events", f"{self.name}.live", f"{self.name}.dlx"


@dataclass
class Tables:
    """The benchmark's tables, in the two services' schemas."""

    outbox: Table
    inbox: Table
    effect: Table
    effect_insert: Insert
    """The handler's write, built once as a hot path's statement should be."""

    @classmethod
    def of(cls, setup: Setup) -> Tables:
        """Define the tables of ``setup``'s schemas."""
        producer = db.service_metadata(setup.producer_schema)
        consumer = db.service_metadata(setup.consumer_schema)
        effect = Table(
            "effect",
            consumer,
            Column("event_id", Uuid, primary_key=True),
            Column("n", Integer, nullable=False),
        )
        return cls(
            outbox.outbox_table(producer), inbox.inbox_table(consumer), effect, insert(effect)
        )


@dataclass(frozen=True)
class Writes:
    """How the writers write.

    Attributes:
        count: events in all.
        per_transaction: events committed together.
        concurrency: transactions in flight at once (concurrent requests of one service process).
        rate: events per second when paced, else as fast as possible.
        run: tag carried in each event, so that a scenario's consumer counts only its own.
    """

    count: int
    per_transaction: int
    concurrency: int
    rate: float | None
    run: int


@dataclass
class Span:
    """When a role started and finished its part (``time.time()`` seconds), and its CPU seconds."""

    started: float
    finished: float
    cpu: float = 0.0

    @property
    def seconds(self) -> float:
        """The duration."""
        return self.finished - self.started


@dataclass
class Consumed:
    """What the consumer saw.

    Attributes:
        span: from subscribing to the commit of the last event's transaction.
        latencies: seconds from each event's write to the start of its handler.
    """

    span: Span
    latencies: list[float] = field(default_factory=list)


def _bus(setup: Setup) -> RabbitBus:
    events, live, dlx = setup.exchanges
    return RabbitBus(
        setup.amqp_url,
        connection_name=f"{setup.name}.bench",
        exchange=events,
        live_exchange=live,
        dead_letter_exchange=dlx,
    )


def _engine(setup: Setup, role: str) -> AsyncEngine:
    return db.create_engine(setup.database_url, application_name=f"{setup.name}.{role}")


async def _warm(engine: AsyncEngine, connections: int) -> None:
    """Open ``connections`` pooled connections now rather than during the measurement."""
    pool = [await engine.connect() for _ in range(connections)]
    for connection in pool:
        await connection.execute(text("SELECT 1"))
        await connection.close()


# --- the three roles -------------------------------------------------------------------------


Gate = Callable[[], Awaitable[None]]
"""Awaited by a role once it is set up, just before the part that is measured."""


async def _open() -> None:
    """The gate of a role that waits for no one."""


async def write(setup: Setup, engine: AsyncEngine, writes: Writes, gate: Gate = _open) -> Span:
    """Commit ``writes.count`` events through :func:`outbox.add`; the span of the writing."""
    table = Tables.of(setup).outbox
    sessions = db.create_session_factory(engine)
    org_id, agent_id = uuid.uuid4(), uuid.uuid4()
    batches = iter(range(0, writes.count, writes.per_transaction))
    await _warm(engine, writes.concurrency)
    await gate()
    started, cpu = time.time(), time.process_time()
    clock = time.perf_counter()

    async def writer() -> None:
        for first in batches:
            if writes.rate:
                delay = clock + first / writes.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            last = min(first + writes.per_transaction, writes.count)
            async with db.transaction(sessions) as session:
                for n in range(first, last):
                    event = BenchCallEnded(
                        n=writes.run * 10_000_000 + n,
                        written_at=time.time(),
                        call_id=uuid.uuid4(),
                        org_id=org_id,
                        agent_id=agent_id,
                    )
                    await outbox.add(session, table, Envelope.wrap(event, producer=PRODUCER))

    async with asyncio.TaskGroup() as group:
        for _ in range(writes.concurrency):
            group.create_task(writer())
    return Span(started, time.time(), time.process_time() - cpu)


async def relay(
    setup: Setup, engine: AsyncEngine, bus: EventBus, count: int, gate: Gate = _open
) -> Span:
    """Run an :class:`OutboxRelay` until it has published ``count`` more events."""
    relay = outbox.OutboxRelay(engine, Tables.of(setup).outbox, bus, batch_size=setup.relay_batch)

    def published() -> float:
        # This one metric's samples only: collecting the whole registry would read /proc each time.
        samples = next(iter(outbox.OUTBOX_PUBLISHED.collect())).samples
        return sum(
            sample.value
            for sample in samples
            if sample.name.endswith("_total") and sample.labels["schema"] == setup.producer_schema
        )

    goal = published() + count
    await _warm(engine, 1)
    await gate()
    started, cpu = time.time(), time.process_time()
    await relay.start()
    try:
        while published() < goal:  # noqa: ASYNC110 - a counter, nothing to wait on
            await asyncio.sleep(0.005)
        return Span(started, time.time(), time.process_time() - cpu)
    finally:
        await relay.stop()


async def consume(
    setup: Setup,
    engine: AsyncEngine,
    bus: EventBus,
    count: int,
    run: int,
    gate: Gate = _open,
) -> Consumed:
    """Handle ``count`` events of ``run`` through :class:`EventHandlers`, inbox and all.

    The span starts when the consumer subscribes and ends when the transaction of the last event
    has committed (just before its ack).
    """
    tables = Tables.of(setup)
    sessions = db.create_session_factory(engine)
    handlers = EventHandlers()
    started_at: dict[uuid.UUID, float] = {}
    latencies: list[float] = []
    done: set[uuid.UUID] = set()
    finished = asyncio.Event()
    low, high = run * 10_000_000, (run + 1) * 10_000_000

    @handlers.on(BenchCallEnded)
    async def record(event: BenchCallEnded, ctx: HandlerContext) -> None:
        now = time.time()
        await ctx.session.execute(tables.effect_insert, {"event_id": ctx.envelope.id, "n": event.n})
        if low <= event.n < high:
            started_at[ctx.envelope.id] = now
            latencies.append(now - event.written_at)

    subscription = handlers.subscription(
        queue=setup.queue, sessions=sessions, inbox=tables.inbox, prefetch=setup.prefetch
    )

    async def handle(delivery: Delivery) -> None:
        await subscription.handler(delivery)
        event_id = delivery.envelope.id
        if event_id in started_at and event_id not in done:
            done.add(event_id)
            if len(done) == count:
                finished.set()

    await _warm(engine, min(setup.prefetch, 10))
    await gate()
    started, cpu = time.time(), time.process_time()
    await bus.subscribe(
        Subscription(
            queue=subscription.queue,
            patterns=subscription.patterns,
            handler=handle,
            prefetch=subscription.prefetch,
            retry=subscription.retry,
        )
    )
    await asyncio.wait_for(finished.wait(), TIMEOUT)
    return Consumed(Span(started, time.time(), time.process_time() - cpu), latencies)


# --- processes -------------------------------------------------------------------------------


Report = Queue  # of (role, kind, value)


def _child(
    role: str, setup: Setup, arguments: dict[str, Any], report: Report[Any], go: EventType
) -> None:
    """A role's process: set up, report ``ready``, wait for ``go``, report ``done``."""

    async def gate() -> None:
        if setup.gc_freeze:
            # Full collections otherwise walk every object of the libraries, ~0.1 s here each.
            gc.collect()
            gc.freeze()
        report.put((role, "ready", None))
        await asyncio.to_thread(go.wait)

    try:
        report.put((role, "done", asyncio.run(_play(role, setup, arguments, gate))))
    except BaseException as error:
        report.put((role, "failed", repr(error)))
        raise


async def _play(role: str, setup: Setup, arguments: dict[str, Any], gate: Gate) -> Any:
    if setup.tracing:
        configure_tracing(f"bench-{role}", otlp_endpoint=None, exporter=DiscardingExporter())
    engine = _engine(setup, role)
    try:
        if role == "writer":
            return await write(setup, engine, arguments["writes"], gate)
        if role == "in-process":
            return await _in_process(setup, engine, arguments["writes"], gate)
        async with _bus(setup) as bus:
            if role == "relay":
                return await relay(setup, engine, bus, arguments["count"], gate)
            if role == "consumer":
                return await consume(setup, engine, bus, arguments["count"], arguments["run"], gate)
        raise ValueError(f"unknown role {role!r}")
    finally:
        await engine.dispose()


async def _in_process(
    setup: Setup, engine: AsyncEngine, writes: Writes, gate: Gate
) -> tuple[Span, Consumed]:
    async with InProcessBus() as bus:
        await bus.declare(setup.queue, [BenchCallEnded.event_type])
        await gate()
        async with asyncio.TaskGroup() as group:
            consumed = group.create_task(consume(setup, engine, bus, writes.count, writes.run))
            group.create_task(relay(setup, engine, bus, writes.count))
            written = await write(setup, engine, writes)
        return written, consumed.result()


class Processes:
    """Starts role processes, lets them go together, and collects what they report."""

    def __init__(self, setup: Setup) -> None:
        self._setup = setup
        self._context = multiprocessing.get_context("spawn")
        self._report: Report[Any] = self._context.Queue()
        self._running: list[multiprocessing.process.BaseProcess] = []
        self._waiting: list[tuple[str, EventType]] = []
        self._pending: list[tuple[str, str, Any]] = []
        self.meter = BackendMeter(setup.name)
        """Started by :meth:`go`; the caller stops it when the roles are done."""

    def start(self, role: str, **arguments: Any) -> None:
        """Start a process playing ``role``; it waits for :meth:`go` once set up."""
        go = self._context.Event()
        process = self._context.Process(
            target=_child, args=(role, self._setup, arguments, self._report, go), name=role
        )
        process.start()
        self._running.append(process)
        self._waiting.append((role, go))

    def go(self) -> CpuSample | None:
        """Wait until every started role is set up, then let them all go.

        Returns:
            The machine's CPU counters at the moment they went.
        """
        for role, _ in self._waiting:
            self.wait(role, "ready")
        self.meter.start()
        sample = CpuSample.now()
        for _, go in self._waiting:
            go.set()
        self._waiting.clear()
        return sample

    def wait(self, role: str, kind: str) -> Any:
        """Block until ``role`` reports ``kind``; raise if any process reports a failure."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            for message in self._pending:
                if message[:2] == (role, kind):
                    self._pending.remove(message)
                    return message[2]
            message = self._report.get(timeout=max(0.0, deadline - time.monotonic()))
            if message[1] == "failed":
                raise RuntimeError(f"the {message[0]} process failed: {message[2]}")
            self._pending.append(message)

    def join(self) -> None:
        """Wait for every started process to exit."""
        for process in self._running:
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()
        self._running.clear()


# --- set-up, clean-up, machine ---------------------------------------------------------------


async def create(setup: Setup, admin_url: str) -> None:
    """Create the benchmark's database, schemas, tables and queue."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{setup.name}"')
    finally:
        await admin.close()
    engine = _engine(setup, "setup")
    tables = Tables.of(setup)
    async with engine.begin() as connection:
        for schema in (setup.producer_schema, setup.consumer_schema):
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        for table in (tables.outbox, tables.inbox, tables.effect):
            await connection.run_sync(table.create)
    await engine.dispose()
    async with _bus(setup) as bus:
        await bus.declare(setup.queue, [BenchCallEnded.event_type])


async def remove(setup: Setup, admin_url: str) -> None:
    """Drop the benchmark's database and delete its queues and exchanges."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{setup.name}" WITH (FORCE)')
    finally:
        await admin.close()
    connection = await aio_pika.connect(setup.amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in (setup.queue, f"{setup.queue}.dlq"):
            await channel.queue_delete(queue)
        for exchange in setup.exchanges:
            await channel.exchange_delete(exchange)


async def tally(setup: Setup) -> tuple[int, int, int, int]:
    """Events written, still unpublished, effects written, and distinct events with an effect."""
    engine = _engine(setup, "tally")
    tables = Tables.of(setup)
    async with engine.connect() as connection:
        written, unpublished = (
            await connection.execute(
                select(
                    func.count(),
                    func.count().filter(tables.outbox.c.published_at.is_(None)),
                ).select_from(tables.outbox)
            )
        ).one()
        effects, distinct = (
            await connection.execute(
                select(func.count(), func.count(tables.effect.c.event_id.distinct()))
            )
        ).one()
    await engine.dispose()
    return written, unpublished, effects, distinct


async def versions(database_url: str, amqp_url: str) -> tuple[str, str]:
    """The PostgreSQL and RabbitMQ server versions."""
    database = await asyncpg.connect(database_url)
    try:
        postgres = str(await database.fetchval("SHOW server_version"))
    finally:
        await database.close()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        transport = connection.transport
        properties = transport.connection.server_properties if transport else {}
        rabbitmq = str(properties.get("version", "unknown"))
    return postgres, rabbitmq


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far by PostgreSQL's processes, RabbitMQ's, and the whole machine."""

    postgres: float
    rabbitmq: float
    busy: float
    total: float

    @classmethod
    def now(cls) -> CpuSample | None:
        """Read ``/proc``; None where there is none."""
        tick = os.sysconf("SC_CLK_TCK")
        used = {"postgres": 0, "beam.smp": 0}
        try:
            with open("/proc/stat") as stat:
                fields = [int(value) for value in stat.readline().split()[1:]]
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{pid}/stat") as process:
                        line = process.read()
                except OSError:
                    continue  # it ended meanwhile
                name = line[line.index("(") + 1 : line.rindex(")")]
                if name in used:
                    # utime, stime, and those of its waited-for children: a PostgreSQL backend
                    # that ended is counted in the postmaster's.
                    used[name] += sum(int(v) for v in line[line.rindex(")") + 2 :].split()[11:15])
        except OSError:
            return None
        idle = fields[3] + fields[4]
        busy = sum(fields[:8]) - idle
        return cls(
            used["postgres"] / tick, used["beam.smp"] / tick, busy / tick, (busy + idle) / tick
        )


class BackendMeter:
    """CPU of the PostgreSQL backends connected to one database, which no one else uses.

    The PostgreSQL figure of :class:`CpuSample` counts every backend of the server, so other
    users of it show there. Backends are sampled every ``interval`` seconds, since one that ends
    leaves no trace of its own; what a backend spent after its last sample is missed.
    """

    def __init__(self, database: str, interval: float = 0.2) -> None:
        self._title = f" {database} ".encode()
        self._interval = interval
        self._base: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> dict[str, int]:
        ticks: dict[str, int] = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as process:
                    line = process.read()
                if line[line.index("(") + 1 : line.rindex(")")] != "postgres":
                    continue
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    if self._title not in cmdline.read():
                        continue
            except OSError:
                continue
            ticks[pid] = sum(int(v) for v in line[line.rindex(")") + 2 :].split()[11:13])
        return ticks

    def start(self) -> None:
        """Take the backends' CPU so far as the base, and sample until :meth:`stop`."""
        self._base = self._sample()
        self._last = dict(self._base)
        self._stop.clear()

        def sample() -> None:
            while not self._stop.wait(self._interval):
                self._last.update(self._sample())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        """Stop sampling; the CPU seconds the backends spent since :meth:`start`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._last.update(self._sample())
        spent = sum(ticks - self._base.get(pid, 0) for pid, ticks in self._last.items())
        return spent / os.sysconf("SC_CLK_TCK")


def cpu_line(
    events: int,
    before: CpuSample | None,
    after: CpuSample | None,
    roles: dict[str, float],
    database: float | None = None,
) -> str:
    """Microseconds of CPU per event by role and server, and how busy the machine was.

    ``database`` is the CPU of the backends of the benchmark's own database, from
    :class:`BackendMeter`, shown beside the whole server's.
    """
    parts = dict(roles)
    if before is not None and after is not None:
        parts["PostgreSQL"] = after.postgres - before.postgres
        parts["RabbitMQ"] = after.rabbitmq - before.rabbitmq
    ours = sum(parts.values())
    text = ", ".join(f"{name} {1e6 * seconds / events:,.0f}" for name, seconds in parts.items())
    line = f"CPU per event (µs): {text}; sum {1e6 * ours / events:,.0f}"
    if database is not None:
        line += f" (PostgreSQL, this database's backends alone: {1e6 * database / events:,.0f})"
    if before is not None and after is not None:
        cores = os.cpu_count() or 1
        wall = (after.total - before.total) / cores
        busy = after.busy - before.busy
        line += (
            f"; machine {100 * busy / (after.total - before.total):.0f}% busy over"
            f" {cores} cores, {100 * max(0.0, busy - ours) / (cores * wall):.0f}% of it others"
        )
    return line


# --- the run ---------------------------------------------------------------------------------


def row(name: str, events: int, seconds: float, note: str = "") -> None:
    """Print one throughput line."""
    print(f"  {name:<36} {events:>7} {seconds:>8.2f} s {events / seconds:>9,.0f} /s   {note}")


def detail(text: str) -> None:
    """Print a line under the previous row."""
    print(f"  {'':<38}{text}")


def verdict(met: bool, target: str, actual: str) -> str:
    """``target ... met`` or ``MISSED``, with the actual figure."""
    return f"target {target}: {'met' if met else 'MISSED'} ({actual})"


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run every scenario, print the results and clean up."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per throughput run")
    parser.add_argument("--rate", type=float, default=200.0, help="paced events/s for latency")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of paced writing")
    parser.add_argument("--per-transaction", type=int, default=10, help="events per write")
    parser.add_argument("--writers", type=int, default=4, help="concurrent write transactions")
    parser.add_argument("--prefetch", type=int, default=None, help="consumer's prefetch")
    parser.add_argument("--relay-batch", type=int, default=500, help="relay's batch size")
    parser.add_argument("--quick", action="store_true", help="2,000 events and 3 s of latency")
    parser.add_argument(
        "--no-tracing", action="store_true", help="no OpenTelemetry SDK (services have one)"
    )
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() each process once it is set up"
    )
    parser.add_argument("--no-in-process", action="store_true", help="skip the in-process run")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.duration = 2_000, 3.0
    if args.prefetch is None:
        args.prefetch = inspect.signature(EventHandlers.subscription).parameters["prefetch"].default

    name = f"bench_{uuid.uuid4().hex[:10]}"
    base, _, _ = args.database_url.rpartition("/")
    setup = Setup(
        database_url=f"{base}/{name}",
        amqp_url=args.amqp_url,
        name=name,
        prefetch=args.prefetch,
        relay_batch=args.relay_batch,
        tracing=not args.no_tracing,
        gc_freeze=args.gc_freeze,
    )
    postgres, rabbitmq = asyncio.run(versions(args.database_url, args.amqp_url))
    print(f"novitrac bus benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"  command:  {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"  machine:  {machine()}")
    print(f"  servers:  PostgreSQL {postgres}, RabbitMQ {rabbitmq}, on the same machine")
    tracing = (
        "spans recorded (sampled 1.0, handed to an exporter that drops them)"
        if setup.tracing
        else "no tracing SDK"
    )
    print("  layout:   writer, relay and consumer each in a process of its own (6: all in one)")
    print(
        f"  writer:   {args.writers} concurrent transactions of {args.per_transaction} events"
        " (5: one writer, one event per transaction)"
    )
    print(f"  relay:    batches of up to {args.relay_batch}, publisher confirms, quorum queue")
    print(
        f"  consumer: prefetch {args.prefetch}, the kit's batches (deliveries that arrive together"
        " share a transaction: one inbox claim, one effect row each), acked after commit"
    )
    print(f"  process:  {tracing}; gc {'frozen after set-up' if setup.gc_freeze else 'as is'}")
    print(f"  objects:  database, schemas, exchanges and queues named {name}*")
    asyncio.run(create(setup, args.database_url))
    try:
        counts = run(setup, args)
    finally:
        asyncio.run(remove(setup, args.database_url))
    written, unpublished, effects, distinct = counts
    exact = effects == distinct == written and not unpublished
    print(
        f"  check: {written:,} events written, {unpublished} left unpublished, {effects:,} effects"
        f" of {distinct:,} distinct events: each handled exactly once: {'yes' if exact else 'NO'}"
    )


def run(setup: Setup, args: argparse.Namespace) -> tuple[int, int, int, int]:
    """Run the scenarios; return :func:`tally`'s counts, taken before clean-up."""
    count, per, writers = args.events, args.per_transaction, args.writers
    processes = Processes(setup)
    print(f"\n  {'scenario':<36} {'events':>7} {'time':>10} {'rate':>11}")
    try:
        # 1 and 2: fill the outbox, then let the relay alone drain it.
        processes.start("writer", writes=Writes(count, per, writers, None, run=1))
        before = processes.go()
        written: Span = processes.wait("writer", "done")
        after = CpuSample.now()
        row("1 write (outbox.add, commit)", count, written.seconds)
        detail(cpu_line(count, before, after, {"writer": written.cpu}, processes.meter.stop()))

        processes.start("relay", count=count)
        before = processes.go()
        published: Span = processes.wait("relay", "done")
        after = CpuSample.now()
        row("2 publish, confirmed (relay)", count, published.seconds)
        detail(cpu_line(count, before, after, {"relay": published.cpu}, processes.meter.stop()))

        # 3: the consumer alone drains what the relay published.
        processes.start("consumer", count=count, run=1)
        before = processes.go()
        consumed: Consumed = processes.wait("consumer", "done")
        after = CpuSample.now()
        row("3 consume (inbox + effect, ack)", count, consumed.span.seconds)
        detail(
            cpu_line(count, before, after, {"consumer": consumed.span.cpu}, processes.meter.stop())
        )
        processes.join()

        # 4: all three at once.
        processes.start("consumer", count=count, run=2)
        processes.start("relay", count=count)
        processes.start("writer", writes=Writes(count, per, writers, None, run=2))
        before = processes.go()
        written = processes.wait("writer", "done")
        published = processes.wait("relay", "done")
        consumed = processes.wait("consumer", "done")
        after = CpuSample.now()
        processes.join()
        confirmed = published.finished - written.started
        handled = consumed.span.finished - written.started
        row("4 end to end: write -> confirmed", count, confirmed)
        rate = count / handled
        target = f">= {END_TO_END_TARGET:,.0f}/s"
        row(
            "  end to end: write -> handled",
            count,
            handled,
            verdict(rate >= END_TO_END_TARGET, target, f"{rate:,.0f}/s"),
        )
        detail(f"(the writer alone took {written.seconds:.2f} s)")
        roles = {"writer": written.cpu, "relay": published.cpu, "consumer": consumed.span.cpu}
        detail(cpu_line(count, before, after, roles, processes.meter.stop()))

        # 5: paced, one event per transaction.
        paced = round(args.rate * args.duration)
        processes.start("consumer", count=paced, run=3)
        processes.start("relay", count=paced)
        processes.start("writer", writes=Writes(paced, 1, 1, args.rate, run=3))
        before = processes.go()
        written = processes.wait("writer", "done")
        consumed = processes.wait("consumer", "done")
        published = processes.wait("relay", "done")
        after = CpuSample.now()
        processes.join()
        latencies = [1000 * seconds for seconds in consumed.latencies]
        p50, p95, p99 = (percentile(latencies, f) for f in (0.50, 0.95, 0.99))
        row(
            "5 latency: write -> handler start",
            paced,
            written.seconds,
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms",
        )
        detail(verdict(p99 < P99_TARGET_MS, f"p99 < {P99_TARGET_MS:.0f} ms", f"{p99:.1f} ms"))
        roles = {"writer": written.cpu, "relay": published.cpu, "consumer": consumed.span.cpu}
        detail(cpu_line(paced, before, after, roles, processes.meter.stop()))

        # 6: the in-process transport, for comparison.
        if not args.no_in_process:
            processes.start("in-process", writes=Writes(count, per, writers, None, run=4))
            processes.go()
            written, consumed = processes.wait("in-process", "done")
            processes.meter.stop()
            processes.join()
            row("6 in-process: write -> handled", count, consumed.span.finished - written.started)
        return asyncio.run(tally(setup))
    finally:
        processes.join()


if __name__ == "__main__":
    main(sys.argv[1:])
