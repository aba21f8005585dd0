"""The event bus: one interface, a RabbitMQ transport and an in-process transport."""

from novitrac_kit.bus.base import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    LIVE_EXCHANGE,
    DeadLetter,
    Delivery,
    EventBus,
    Handler,
    LiveHandler,
    PermanentFailure,
    PublishFailed,
    RetryPolicy,
    Subscription,
)

__all__ = [
    "DEAD_LETTER_EXCHANGE",
    "EVENTS_EXCHANGE",
    "LIVE_EXCHANGE",
    "DeadLetter",
    "Delivery",
    "EventBus",
    "Handler",
    "LiveHandler",
    "PermanentFailure",
    "PublishFailed",
    "RetryPolicy",
    "Subscription",
]
