"""AMQP topic matching, as RabbitMQ's topic exchange does it, for the in-process transport.

A routing key and a pattern are split into words on ``.``; an empty string has no words, and
every dot separates two words, so ``"a."`` is the words ``a`` and an empty one. In a pattern ``*``
matches exactly one word (possibly empty) and ``#`` matches zero or more words.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable


def split_words(key: str) -> tuple[str, ...]:
    """The words of a routing key or pattern: none for ``""``, otherwise the dot-separated parts."""
    return tuple(key.split(".")) if key else ()


@functools.lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether a message with ``routing_key`` is routed to a binding with ``pattern``.

    Args:
        pattern: an AMQP topic binding pattern, e.g. ``telephony.call.*.v1`` or ``billing.#``.
        routing_key: the message's routing key, e.g. ``telephony.call.ended.v1``.
    """
    return _match(split_words(pattern), split_words(routing_key))


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    # reachable[j]: the pattern words consumed so far can match the first j key words.
    reachable = [True] + [False] * len(words)
    for token in pattern:
        if token == "#":
            for j in range(1, len(words) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            for j in range(len(words), 0, -1):
                reachable[j] = reachable[j - 1] and (token in ("*", words[j - 1]))
            reachable[0] = False
    return reachable[-1]


class TopicBindings:
    """A set of patterns that a routing key matches when any one of them does."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self._patterns: set[str] = set(patterns)

    def add(self, pattern: str) -> None:
        """Bind one more pattern (binding the same pattern twice is one binding)."""
        self._patterns.add(pattern)

    def matches(self, routing_key: str) -> bool:
        """Whether any bound pattern matches ``routing_key``."""
        return any(topic_matches(pattern, routing_key) for pattern in self._patterns)
