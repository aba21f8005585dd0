"""Every call charged exactly once, through RabbitMQ, while the consumer is killed at random."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import pytest
import sqlalchemy as sa

from novitrac_billing.db import call_charges, inbox, ledger_entries, outbox
from novitrac_billing.main import service
from novitrac_billing.rating import rate_call
from novitrac_contracts.envelope import Envelope
from novitrac_contracts.telephony import CallDirection
from novitrac_kit import db
from novitrac_kit.bus import Delivery
from novitrac_kit.bus.rabbitmq import RabbitBus
from novitrac_kit.testing.waiting import eventually

from .conftest import call_ended, check_ledger

CONSUMER = Path(__file__).with_name("consumer_process.py")
CALLS = 1000
ORGS = 10
KILLS = 4

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def broker(amqp_url: str, unique_name: str) -> AsyncIterator[RabbitBus]:
    bus = RabbitBus(
        amqp_url,
        connection_name=f"{unique_name}.tests",
        exchange=f"{unique_name}.events",
        live_exchange=f"{unique_name}.live",
        dead_letter_exchange=f"{unique_name}.dlx",
    )
    await bus.start()
    await bus.declare(f"{unique_name}.billing", service.handlers.event_types)
    yield bus
    await bus.close()
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for queue in (f"{unique_name}.billing", f"{unique_name}.billing.dlq"):
            await channel.queue_delete(queue, if_unused=False, if_empty=False)
        for exchange in ("events", "live", "dlx"):
            await channel.exchange_delete(f"{unique_name}.{exchange}")
    finally:
        await connection.close()


class Consumers:
    """Forks billing consumers on demand from a process that imported everything once."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, database_url: str, amqp_url: str, name: str) -> Consumers:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CONSUMER),
            database_url,
            amqp_url,
            name,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def spawn(self) -> int:
        """A new consumer, consuming; its pid."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(b"spawn\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        word, pid = line.split()
        assert word == b"ready"
        return int(pid)

    async def stop(self) -> None:
        self.process.kill()
        await self.process.wait()


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


async def test_replayed_duplicated_and_interrupted_calls_are_charged_once(
    billing_database: str, amqp_url: str, unique_name: str, broker: RabbitBus
) -> None:
    engine = db.create_engine(billing_database, application_name="tests")
    sessions = db.create_session_factory(engine)
    subscription = service.handlers.subscription(queue="setup", sessions=sessions, inbox=inbox)
    rng = random.Random()
    org_ids = [uuid.uuid4() for _ in range(ORGS)]
    from novitrac_contracts.auth import OrgCreated

    for org_id in org_ids:
        opened = OrgCreated(
            org_id=org_id, name="Org", owner_user_id=uuid.uuid4(), owner_email="o@example.com"
        )
        await subscription.handler(Delivery(Envelope.wrap(opened, producer="auth")))

    soon = datetime.now(UTC) + timedelta(seconds=5)
    calls = [
        call_ended(
            rng.choice(org_ids),
            rng.choice([0, rng.randint(1, 900)]),
            direction=rng.choice(list(CallDirection)),
            started_at=soon,
        )
        for _ in range(CALLS)
    ]
    envelopes = [Envelope.wrap(call, producer="telephony") for call in calls]
    redelivered = rng.sample(envelopes, 150)  # the same message twice
    republished = [  # telephony publishing the same call again
        Envelope.wrap(call, producer="telephony") for call in rng.sample(calls, 100)
    ]
    stream = envelopes + redelivered + republished
    rng.shuffle(stream)
    for envelope in stream:
        await broker.publish(envelope)

    consumers = await Consumers.start(billing_database, amqp_url, unique_name)
    try:
        for _ in range(KILLS):
            pid = await consumers.spawn()
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            _kill(pid)
        pid = await consumers.spawn()

        async def all_handled() -> bool:
            query = sa.select(sa.func.count()).where(inbox.c.source == f"{unique_name}.billing")
            async with engine.connect() as connection:
                handled = (await connection.execute(query)).scalar_one()
            return bool(handled == len(envelopes) + len(republished))

        await eventually(all_handled, within=120)
        _kill(pid)
    finally:
        await consumers.stop()

    async with engine.connect() as connection:
        charges = {
            row.call_id: row for row in (await connection.execute(sa.select(call_charges))).all()
        }
        entries = (
            await connection.execute(
                sa.select(ledger_entries.c.reference, ledger_entries.c.amount).where(
                    ledger_entries.c.kind == "call"
                )
            )
        ).all()
        charged_events = (
            (
                await connection.execute(
                    sa.select(outbox.c.envelope).where(outbox.c.type == "billing.call.charged.v1")
                )
            )
            .scalars()
            .all()
        )
    await engine.dispose()

    assert set(charges) == {call.call_id for call in calls}
    for call in calls:
        expected = rate_call(
            duration_s=call.duration_s,
            rate_per_minute=15 if call.direction == CallDirection.OUTBOUND else 10,
            increment="minute",
            minimum_seconds=60,
        )
        assert charges[call.call_id].amount == expected.amount
    assert Counter(reference for reference, _ in entries).most_common(1)[0][1] == 1
    assert {uuid.UUID(reference): amount for reference, amount in entries} == {
        call_id: row.amount for call_id, row in charges.items() if row.amount > 0
    }
    assert sorted(e["data"]["call_id"] for e in charged_events) == sorted(
        str(call.call_id) for call in calls
    )
    engine = db.create_engine(billing_database, application_name="tests")
    try:
        for org_id in org_ids:
            spent = sum(row.amount for row in charges.values() if row.org_id == org_id)
            assert await check_ledger(engine, org_id) == 500 - spent
    finally:
        await engine.dispose()
    assert await broker.dead_letters(f"{unique_name}.billing") == []
