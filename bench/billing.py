"""The billing benchmark: calls charged per second through billing's real consumer path.

Run ``uv run python bench/billing.py`` (``--quick`` for a smoke run, ``--help`` for the knobs). It
creates a database and broker objects of its own (``bench_<hex>``), migrates billing's schema into
it, runs the scenarios below and removes everything again. A benchmark, not a test: it prints
numbers and judges them against the targets, it never fails on them.

The path is billing's own: ``telephony.call.ended.v1`` envelopes are published to RabbitMQ (with
confirms, as telephony's outbox relay does) into billing's queue; a consumer process, set up as
``novitrac run billing`` sets it up (the RabbitMQ transport, tracing recorded but not exported,
``gc.freeze()``), handles them through ``EventHandlers.subscription`` with billing's handlers: per
event one transaction that claims it in the inbox, rates the call by the plan in force, locks the
account, writes the charge and its ledger entry, updates the running balance and writes
``billing.call.charged.v1`` and ``billing.balance.changed.v1`` to the outbox; the message is acked
after the commit. The time runs from the consumer subscribing to the commit of the last charge.

Scenarios (each drains a backlog of ``--events`` events already in the queue):

1. ``one account``: every call belongs to one organisation; every charge waits on that account's
   row lock. Target: 500 charges/s.
2. ``1,000 accounts``: the calls are spread over 1,000 organisations. Target: 1,000 charges/s.
3. ``1,000 accounts, 2 consumers``: scenario 2 with two consumer processes (two replicas).

Afterwards every call must have been charged exactly once and every account's ledger must add up.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
from sqlalchemy import func, select, text

from measure import DiscardingExporter, cpu_seconds, machine
from novitrac_billing.db import call_charges, inbox
from novitrac_billing.main import service
from novitrac_contracts.auth import OrgCreated
from novitrac_contracts.envelope import Envelope
from novitrac_contracts.telephony import CallDirection, CallEnded, CallStatus
from novitrac_kit import db, migrations
from novitrac_kit.bus import Delivery, Subscription
from novitrac_kit.bus.rabbitmq import RabbitBus
from novitrac_kit.telemetry import configure_tracing

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
ONE_ACCOUNT_TARGET = 500.0
SPREAD_TARGET = 1000.0
SPREAD_ACCOUNTS = 1000
TIMEOUT = 600.0
MIGRATIONS = Path(service.database.migrations if service.database else ".")


@dataclass(frozen=True)
class Setup:
    """Where everything lives; passed to each process."""

    database_url: str
    amqp_url: str
    name: str
    prefetch: int
    batch_size: int
    async_commit: bool = False

    @property
    def queue(self) -> str:
        """Billing's queue in this run."""
        return f"{self.name}.billing"

    @property
    def exchanges(self) -> tuple[str, str, str]:
        """The domain events, live signals and dead-letter exchanges."""
        return f"{self.name}.events", f"{self.name}.live", f"{self.name}.dlx"


def _bus(setup: Setup, role: str) -> RabbitBus:
    events, live, dlx = setup.exchanges
    return RabbitBus(
        setup.amqp_url,
        connection_name=f"{setup.name}.{role}",
        exchange=events,
        live_exchange=live,
        dead_letter_exchange=dlx,
    )


# --- the consumer process --------------------------------------------------------------------


@dataclass
class Shared:
    """What the consumer processes of one scenario share."""

    handled: Any  # multiprocessing.Value("q"): deliveries handled, all consumers together
    finished_at: Any  # multiprocessing.Value("d"): when the last one committed
    done: EventType
    go: EventType
    report: Queue[Any]


async def consume(setup: Setup, count: int, shared: Shared) -> None:
    """Charge calls from the queue with billing's handlers until ``count`` are charged in all."""
    configure_tracing("billing", otlp_endpoint=None, exporter=DiscardingExporter())
    engine = db.create_engine(setup.database_url, application_name=f"{setup.name}.consumer")
    subscription = service.handlers.subscription(
        queue=setup.queue,
        sessions=db.create_session_factory(engine),
        inbox=inbox,
        prefetch=setup.prefetch,
        batch_size=setup.batch_size,
    )

    async def handle(delivery: Delivery) -> None:
        await subscription.handler(delivery)
        with shared.handled.get_lock():
            shared.handled.value += 1
            if shared.handled.value == count:
                shared.finished_at.value = time.time()
                shared.done.set()

    bus = _bus(setup, "consumer")
    await bus.start()
    connections = [await engine.connect() for _ in range(2)]
    for connection in connections:
        await connection.execute(text("SELECT 1"))
        await connection.close()
    gc.collect()
    gc.freeze()
    shared.report.put(("ready", os.getpid()))
    await asyncio.to_thread(shared.go.wait)
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
    await asyncio.to_thread(shared.done.wait, TIMEOUT)
    shared.report.put(("done", (started, time.process_time() - cpu)))
    await bus.close()
    await engine.dispose()


def _consumer(setup: Setup, count: int, shared: Shared) -> None:
    try:
        asyncio.run(consume(setup, count, shared))
    except BaseException as error:
        shared.report.put(("failed", repr(error)))
        raise


# --- the parent ------------------------------------------------------------------------------


async def create(setup: Setup, admin_url: str) -> None:
    """The benchmark's database, migrated, and billing's queue."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{setup.name}"')
    finally:
        await admin.close()
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, setup.database_url)
    if setup.async_commit:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'ALTER DATABASE "{setup.name}" SET synchronous_commit = off')
        finally:
            await admin.close()
    async with _bus(setup, "setup") as bus:
        await bus.declare(setup.queue, service.handlers.event_types)


async def remove(setup: Setup, admin_url: str) -> None:
    """Drop the database, the queues and the exchanges."""
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


async def open_accounts(setup: Setup, count: int) -> list[uuid.UUID]:
    """``count`` organisations, opened by billing's own handler (trial credit and all)."""
    engine = db.create_engine(setup.database_url, application_name=f"{setup.name}.setup")
    subscription = service.handlers.subscription(
        queue="bench-setup", sessions=db.create_session_factory(engine), inbox=inbox
    )
    org_ids = [uuid.uuid4() for _ in range(count)]

    async def open_one(org_id: uuid.UUID) -> None:
        event = OrgCreated(
            org_id=org_id, name="Bench", owner_user_id=uuid.uuid4(), owner_email="b@example.com"
        )
        await subscription.handler(Delivery(Envelope.wrap(event, producer="auth")))

    for start in range(0, count, 8):
        await asyncio.gather(*(open_one(org_id) for org_id in org_ids[start : start + 8]))
    await engine.dispose()
    return org_ids


async def publish(setup: Setup, org_ids: list[uuid.UUID], count: int) -> None:
    """``count`` call-ended events for random organisations of ``org_ids``, into the queue."""
    rng = random.Random(count)
    started_at = datetime.now(UTC) + timedelta(seconds=5)
    envelopes = [
        Envelope.wrap(
            CallEnded(
                call_id=uuid.uuid4(),
                org_id=rng.choice(org_ids),
                agent_id=uuid.uuid4(),
                phone_number_id=uuid.uuid4(),
                direction=CallDirection.OUTBOUND,
                status=CallStatus.COMPLETED,
                duration_s=rng.randint(1, 600),
                ended_reason="remote_hung_up",
                started_at=started_at,
                ended_at=started_at + timedelta(minutes=10),
            ),
            producer="telephony",
        )
        for _ in range(count)
    ]
    async with _bus(setup, "publisher") as bus:
        for start in range(0, count, 200):
            await asyncio.gather(*(bus.publish(e) for e in envelopes[start : start + 200]))


async def check(setup: Setup) -> tuple[int, int, bool]:
    """Charges written, distinct calls charged, and whether every ledger adds up."""
    engine = db.create_engine(setup.database_url, application_name=f"{setup.name}.check")
    async with engine.connect() as connection:
        charges = (
            await connection.execute(select(func.count()).select_from(call_charges))
        ).scalar_one()
        distinct = (
            await connection.execute(select(func.count(func.distinct(call_charges.c.call_id))))
        ).scalar_one()
        mismatched = (
            await connection.execute(
                text(
                    "SELECT count(*) FROM billing.accounts a LEFT JOIN ("
                    " SELECT org_id, sum(CASE WHEN credit_account = 'customer_credit'"
                    " THEN amount ELSE -amount END) AS total, max(sequence) AS last"
                    " FROM billing.ledger_entries GROUP BY org_id) l USING (org_id)"
                    " WHERE coalesce(l.total, 0) <> a.balance"
                    " OR a.balance <> coalesce((SELECT balance_after FROM billing.ledger_entries e"
                    " WHERE e.org_id = a.org_id AND e.sequence = l.last), 0)"
                )
            )
        ).scalar_one()
    await engine.dispose()
    return int(charges), int(distinct), mismatched == 0


@dataclass(frozen=True)
class Measured:
    """One scenario's time, CPU per charge (µs) by part, and how busy the machine was."""

    seconds: float
    consumer_us: float
    postgres_us: float
    rabbitmq_us: float
    busy: float
    others: float


def run_scenario(setup: Setup, consumers: int, count: int) -> Measured:
    """Let ``consumers`` processes drain ``count`` queued events; seconds, CPU per charge (µs) of
    the consumers and of PostgreSQL."""
    context = multiprocessing.get_context("fork")
    shared = Shared(
        handled=context.Value("q", 0),
        finished_at=context.Value("d", 0.0),
        done=context.Event(),
        go=context.Event(),
        report=context.Queue(),
    )
    processes = [
        context.Process(target=_consumer, args=(setup, count, shared)) for _ in range(consumers)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        kind, value = shared.report.get(timeout=TIMEOUT)
        if kind == "failed":
            raise RuntimeError(value)
    postgres_before = _postgres_cpu()
    rabbit_before = _cpu_by_command(("beam.smp",))
    busy_before, total_before = _machine_cpu()
    shared.go.set()
    spans = []
    for _ in processes:
        kind, value = shared.report.get(timeout=TIMEOUT)
        if kind == "failed":
            raise RuntimeError(value)
        spans.append(value)
    postgres = _postgres_cpu() - postgres_before
    rabbit = _cpu_by_command(("beam.smp",)) - rabbit_before
    busy_after, total_after = _machine_cpu()
    for process in processes:
        process.join(timeout=60)
    seconds = shared.finished_at.value - min(s[0] for s in spans)
    consumer_cpu = sum(s[1] for s in spans)
    busy, total = busy_after - busy_before, total_after - total_before
    others = max(0.0, busy - consumer_cpu - postgres - rabbit)
    return Measured(
        seconds=seconds,
        consumer_us=1e6 * consumer_cpu / count,
        postgres_us=1e6 * postgres / count,
        rabbitmq_us=1e6 * rabbit / count,
        busy=busy / total if total else 0.0,
        others=others / total if total else 0.0,
    )


def _cpu_by_command(commands: tuple[str, ...]) -> float:
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() not in commands:
                    continue
            total += cpu_seconds(int(pid))
        except OSError:
            continue
    return total


def _postgres_cpu() -> float:
    return _cpu_by_command(("postgres", "postmaster"))


def _machine_cpu() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine so far."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def main(argv: list[str]) -> None:
    """Parse the arguments, run every scenario, print the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="calls charged per scenario")
    parser.add_argument(
        "--prefetch", type=int, default=64, help="deliveries the consumer holds unacknowledged"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="most deliveries charged in one transaction"
    )
    parser.add_argument("--quick", action="store_true", help="1,000 events per scenario")
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="diagnostic: synchronous_commit=off for the benchmark's database",
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    args = parser.parse_args(argv)
    if args.quick:
        args.events = 1000
    name = f"bench_{uuid.uuid4().hex[:10]}"
    base, _, _ = args.database_url.rpartition("/")
    setup = Setup(
        f"{base}/{name}",
        args.amqp_url,
        name,
        args.prefetch,
        args.batch_size,
        async_commit=args.async_commit,
    )

    print(f"novitrac billing benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"  command:  {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"  machine:  {machine()}")
    print(
        f"  consumer: billing's handlers, RabbitBus, prefetch {args.prefetch}, "
        f"batches of up to {args.batch_size}, tracing on,"
        " gc frozen; events queued before it starts"
    )
    asyncio.run(create(setup, args.database_url))
    try:
        one = asyncio.run(open_accounts(setup, 1))
        spread = asyncio.run(open_accounts(setup, SPREAD_ACCOUNTS))
        print(f"\n  {'scenario':<32} {'charges':>8} {'time':>8} {'rate':>10}")
        for label, org_ids, consumers, target in (
            ("1 one account", one, 1, ONE_ACCOUNT_TARGET),
            ("2 1,000 accounts", spread, 1, SPREAD_TARGET),
            ("3 1,000 accounts, 2 consumers", spread, 2, SPREAD_TARGET),
        ):
            asyncio.run(publish(setup, org_ids, args.events))
            m = run_scenario(setup, consumers, args.events)
            rate = args.events / m.seconds
            verdict = "meets" if rate >= target else "MISSES"
            print(
                f"  {label:<32} {args.events:>8,} {m.seconds:>7.2f}s {rate:>8,.0f}/s"
                f"   ({verdict} {target:,.0f}/s)"
            )
            print(
                f"  {'':<32} CPU per charge: consumer {m.consumer_us:,.0f} µs, PostgreSQL"
                f" {m.postgres_us:,.0f} µs, RabbitMQ {m.rabbitmq_us:,.0f} µs; machine"
                f" {m.busy:.0%} busy, {m.others:.0%} by other processes"
            )
        charges, distinct, balanced = asyncio.run(check(setup))
        expected = 3 * args.events
        print(
            f"\n  check: {charges:,} charges of {distinct:,} distinct calls for {expected:,}"
            " published: each charged exactly once:"
            f" {'yes' if charges == distinct == expected else 'NO'};"
            f" every ledger adds up: {'yes' if balanced else 'NO'}"
        )
    finally:
        asyncio.run(remove(setup, args.database_url))


if __name__ == "__main__":
    main(sys.argv[1:])
