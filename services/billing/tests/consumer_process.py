"""Billing's event consumer alone, in processes of their own, for the test that kills them.

``python consumer_process.py <database url> <amqp url> <name>`` imports everything once and then
forks one consumer per ``spawn`` line read from stdin (so a fresh consumer starts at once). Each
consumer consumes ``<name>.billing`` (on the exchanges ``<name>.events``, ``<name>.live``,
``<name>.dlx``) with billing's own handlers and inbox, and writes ``ready <pid>`` once it consumes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from novitrac_billing.db import inbox
from novitrac_billing.main import service
from novitrac_kit import db
from novitrac_kit.bus import RetryPolicy
from novitrac_kit.bus.rabbitmq import RabbitBus


async def consume(database_url: str, amqp_url: str, name: str) -> None:
    bus = RabbitBus(
        amqp_url,
        connection_name=f"{name}.billing",
        exchange=f"{name}.events",
        live_exchange=f"{name}.live",
        dead_letter_exchange=f"{name}.dlx",
    )
    engine = db.create_engine(database_url, application_name="billing.consumer")
    await bus.start()
    await bus.subscribe(
        service.handlers.subscription(
            queue=f"{name}.billing",
            sessions=db.create_session_factory(engine),
            inbox=inbox,
            retry=RetryPolicy(max_attempts=10, initial_delay=0.05, max_delay=1.0),
        )
    )
    sys.stdout.write(f"ready {os.getpid()}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main(database_url: str, amqp_url: str, name: str) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    for line in sys.stdin:
        if line.strip() == "spawn" and os.fork() == 0:
            asyncio.run(consume(database_url, amqp_url, name))


if __name__ == "__main__":
    main(*sys.argv[1:4])
