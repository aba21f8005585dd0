"""A RabbitMQ consumer in a process of its own, for the test that kills one mid-message.

``python consumer_process.py <amqp url> <events exchange> <live exchange> <dlx> <queue>``

Writes ``ready`` once it consumes ``telephony.#`` from the queue, then ``received <event id>``
when a handler starts; handlers never finish, so whatever it received it still holds when killed.
"""

from __future__ import annotations

import asyncio
import sys

from novitrac_kit.bus import Delivery, Subscription
from novitrac_kit.bus.rabbitmq import RabbitBus


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(url: str, exchange: str, live_exchange: str, dlx: str, queue: str) -> None:
    bus = RabbitBus(
        url,
        connection_name=f"{queue}.doomed",
        exchange=exchange,
        live_exchange=live_exchange,
        dead_letter_exchange=dlx,
    )
    await bus.start()

    async def hold(delivery: Delivery) -> None:
        say(f"received {delivery.envelope.id}")
        await asyncio.Event().wait()

    await bus.subscribe(Subscription(queue, ["telephony.#"], hold, prefetch=1))
    say("ready")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
