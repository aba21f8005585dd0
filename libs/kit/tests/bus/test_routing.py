"""Topic pattern matching, checked against a table of edge cases and against RabbitMQ itself."""

from __future__ import annotations

import aio_pika
import pytest

from novitrac_kit.bus.routing import TopicBindings, split_words, topic_matches

CASES = [
    # pattern, routing key, routed
    ("telephony.call.*.v1", "telephony.call.ended.v1", True),
    ("telephony.call.*.v1", "telephony.call.ended.v2", False),
    ("telephony.call.*.v1", "telephony.call.status.changed.v1", False),
    ("billing.#", "billing.payment.succeeded.v1", True),
    ("billing.#", "billing", True),
    ("billing.#", "billingx.payment", False),
    ("#", "", True),
    ("#", "a", True),
    ("#", "a.b.c", True),
    ("#.#", "", True),
    ("*", "", False),
    ("*", "a", True),
    ("*", "a.b", False),
    ("*", ".", False),
    ("*.*", ".", True),
    ("*.#", "", False),
    ("*.#", "a", True),
    ("#.*", "a.b", True),
    ("a.*", "a", False),
    ("a.*", "a.b", True),
    ("a.*", "a.", True),
    ("a.*.c", "a..c", True),
    ("#.a", "a", True),
    ("#.a", "b.a", True),
    ("#.a", "a.b", False),
    ("a.#.b", "a.b", True),
    ("a.#.b", "a.x.y.b", True),
    ("a.#.b", "a.b.c", False),
    ("a.#.#.b", "a.b", True),
    ("#.b.#", "b", True),
    ("#.b.#", "a.b.c", True),
    ("#.b.#", "a.c", False),
    ("*.b.*", "a.b.c", True),
    ("*.b.*", "b.c", False),
    ("a.b", "a.b.c", False),
    ("a.b.c", "a.b", False),
    ("", "", True),
    ("", "a", False),
    ("a", "", False),
    ("A", "a", False),
]


class TestTopicMatches:
    @pytest.mark.parametrize(("pattern", "routing_key", "routed"), CASES)
    def test_edge_case(self, pattern: str, routing_key: str, routed: bool) -> None:
        assert topic_matches(pattern, routing_key) is routed


class TestSplitWords:
    def test_empty_key_has_no_words(self) -> None:
        assert split_words("") == ()

    def test_every_dot_separates_two_words(self) -> None:
        assert split_words("a..b.") == ("a", "", "b", "")


class TestTopicBindings:
    def test_any_pattern_matching_routes(self) -> None:
        bindings = TopicBindings(["billing.#"])
        bindings.add("telephony.call.ended.v1")

        assert bindings.matches("billing.payment.failed.v1")
        assert bindings.matches("telephony.call.ended.v1")
        assert not bindings.matches("telephony.call.created.v1")

    def test_no_patterns_route_nothing(self) -> None:
        assert not TopicBindings().matches("")


@pytest.mark.rabbitmq
async def test_rabbitmq_routes_the_table_the_same_way(amqp_url: str, unique_name: str) -> None:
    patterns = sorted({pattern for pattern, _, _ in CASES})
    keys = sorted({key for _, key, _ in CASES})
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            unique_name, aio_pika.ExchangeType.TOPIC, auto_delete=True
        )
        queues = {}
        for pattern in patterns:
            queues[pattern] = await channel.declare_queue(exclusive=True)
            await queues[pattern].bind(exchange, routing_key=pattern)
        for key in keys:
            await exchange.publish(aio_pika.Message(key.encode()), routing_key=key)

        routed = set()
        for pattern, queue in queues.items():
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                routed.add((pattern, message.body.decode()))
    finally:
        await connection.close()

    assert routed == {(p, k) for p in patterns for k in keys if topic_matches(p, k)}
    assert {(p, k) for p, k, expected in CASES if expected} <= routed
