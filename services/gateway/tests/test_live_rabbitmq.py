"""``/v1/ws`` on RabbitMQ: the gateway's own exclusive queues see live signals and domain events."""

from __future__ import annotations

import uuid

import pytest
from websockets.asyncio.client import connect

from novitrac_kit.bus.rabbitmq import RabbitBus

from .conftest import UNLIMITED, PlatformFactory
from .live import call_ended, event, live_status


def bus(amqp_url: str, name: str, role: str) -> RabbitBus:
    return RabbitBus(
        amqp_url,
        connection_name=f"{name}.{role}",
        exchange=f"{name}.events",
        live_exchange=f"{name}.live",
        dead_letter_exchange=f"{name}.dlx",
    )


@pytest.mark.rabbitmq
async def test_events_reach_only_their_organisation(
    make_platform: PlatformFactory, amqp_url: str, unique_name: str
) -> None:
    async with (
        bus(amqp_url, unique_name, "gateway") as gateway_bus,
        bus(amqp_url, unique_name, "producer") as producer,
        make_platform(bus=gateway_bus, **UNLIMITED) as platform,
    ):
        org_a, org_b = uuid.uuid4(), uuid.uuid4()
        url = platform.ws_url + "?access_token="
        async with (
            connect(url + platform.token(org_id=org_a)) as socket_a,
            connect(url + platform.token(org_id=org_b)) as socket_b,
        ):
            await producer.publish_live(live_status(org_a))
            await producer.publish(call_ended(org_a))
            # Live signals and domain events come through two queues, in either order.
            seen_by_a = {(await event(socket_a))["type"] for _ in range(2)}
            assert seen_by_a == {"live.call.status", "telephony.call.ended.v1"}
            await producer.publish(call_ended(org_b, n=1))
            seen_by_b = await event(socket_b)
            assert (seen_by_b["org_id"], seen_by_b["data"]["n"]) == (str(org_b), 1)
