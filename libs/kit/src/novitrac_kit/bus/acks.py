"""Acknowledging a consumer's deliveries with as few frames as their order allows.

Deliveries finished in the same moment (a batch committed by the handlers) are acknowledged
together: the longest run of finished deliveries at the front of a channel's unacknowledged ones
goes as one ``basic.ack`` with ``multiple``, which spares the broker and the socket a frame per
message. A delivery finished behind one still running is acknowledged on its own, so a slow
handler never holds the others' acknowledgements back. Delivery tags belong to their channel:
after a reconnection the old channel's deliveries are forgotten (the broker redelivers them) and
nothing is acknowledged on the new channel by a stale tag.
"""

from __future__ import annotations

import asyncio
import logging

from aio_pika.abc import AbstractIncomingMessage
from aiormq.abc import AbstractChannel

log = logging.getLogger(__name__)


class Acknowledgements:
    """The deliveries a consumer holds, per channel, in the order they arrived.

    Args:
        queue: the consumed queue's name, for logs.
    """

    def __init__(self, queue: str) -> None:
        self._queue = queue
        # Per channel and delivery tag, in arrival order: None while the delivery is being
        # handled, then the future its task awaits until the acknowledgement is written.
        self._held: dict[AbstractChannel, dict[int, asyncio.Future[bool] | None]] = {}
        self._sending: asyncio.Task[None] | None = None

    def received(self, message: AbstractIncomingMessage) -> AbstractChannel:
        """Hold a new delivery; returns the channel it came on, to settle it with."""
        channel = message.channel
        if message.delivery_tag is not None:
            self._held.setdefault(channel, {})[message.delivery_tag] = None
        return channel

    async def ack(self, message: AbstractIncomingMessage, channel: AbstractChannel) -> bool:
        """Acknowledge a delivery with others that finish at the same time.

        Returns:
            Whether the acknowledgement was written; if not, the channel closed and the broker
            will deliver the message again.
        """
        tags = self._held.get(channel)
        tag = message.delivery_tag
        if tags is None or tag not in tags:
            return False
        written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        tags[tag] = written
        if self._sending is None or self._sending.done():
            self._sending = asyncio.get_running_loop().create_task(self._send())
        return bool(await written)

    def release(self, message: AbstractIncomingMessage, channel: AbstractChannel) -> None:
        """Stop holding a delivery the broker has settled otherwise (rejected or requeued).

        A delivery abandoned unsettled stays held, so that no later acknowledgement with
        ``multiple`` covers it.
        """
        tags = self._held.get(channel)
        if tags is not None and message.delivery_tag is not None:
            tags.pop(message.delivery_tag, None)

    async def _send(self) -> None:
        while True:
            # Deliveries finishing in this turn of the loop join the same frame.
            await asyncio.sleep(0)
            for channel, tags in list(self._held.items()):
                front: int | None = None
                front_written: list[asyncio.Future[bool]] = []
                for tag, written in list(tags.items()):
                    if written is None:
                        break
                    del tags[tag]
                    front = tag
                    front_written.append(written)
                behind = [(tag, written) for tag, written in tags.items() if written is not None]
                for tag, _ in behind:
                    del tags[tag]
                if not tags:
                    del self._held[channel]
                if front is not None:
                    _resolve(front_written, await self._write(channel, front, multiple=True))
                for tag, written in behind:
                    _resolve([written], await self._write(channel, tag, multiple=False))
            if not any(
                written is not None for tags in self._held.values() for written in tags.values()
            ):
                return

    async def _write(self, channel: AbstractChannel, tag: int, *, multiple: bool) -> bool:
        try:
            await channel.basic_ack(tag, multiple=multiple)
        except Exception:
            log.warning("bus.delivery.ack_failed", extra={"queue": self._queue}, exc_info=True)
            return False
        return True


def _resolve(futures: list[asyncio.Future[bool]], written: bool) -> None:
    for future in futures:
        if not future.done():
            future.set_result(written)
