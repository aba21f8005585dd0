"""Run one outbox relay batch and SIGKILL this process as soon as the broker confirms a publish.

The relay's transaction is left open, so its rows stay unpublished while the broker already holds
the event: the crash the outbox must survive. Used by ``test_outbox.py``::

    python kill_after_publish.py <database_url> <schema> <amqp_url> <name_prefix>
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence

from novitrac_contracts.envelope import Envelope
from novitrac_kit import db
from novitrac_kit.bus import PublishFailed
from novitrac_kit.bus.rabbitmq import RabbitBus
from novitrac_kit.outbox import OutboxRelay, StoredEvent, outbox_table


class DyingBus(RabbitBus):
    async def publish(
        self, envelope: Envelope, *, headers: Mapping[str, str] | None = None
    ) -> None:
        await super().publish(envelope, headers=headers)
        os.kill(os.getpid(), signal.SIGKILL)

    async def publish_stored(self, events: Sequence[StoredEvent]) -> list[PublishFailed | None]:
        errors = await super().publish_stored(events)
        if not any(errors):
            os.kill(os.getpid(), signal.SIGKILL)
        return errors


async def main(database_url: str, schema: str, amqp_url: str, prefix: str) -> None:
    table = outbox_table(db.service_metadata(schema))
    engine = db.create_engine(database_url, application_name="kit-tests.doomed-relay")
    bus = DyingBus(
        amqp_url,
        connection_name="kit-tests.doomed-relay",
        exchange=f"{prefix}.events",
        live_exchange=f"{prefix}.live",
        dead_letter_exchange=f"{prefix}.dlx",
    )
    async with bus:
        await OutboxRelay(engine, table, bus).relay_once()
    raise SystemExit("the relay returned without publishing anything")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
