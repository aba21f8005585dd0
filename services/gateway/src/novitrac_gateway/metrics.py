"""The gateway's own Prometheus metrics."""

from __future__ import annotations

from novitrac_kit.metrics import counter, gauge

WEBSOCKETS_OPEN = gauge(
    "novitrac_gateway_websockets_open", "WebSockets open on this replica, authenticated."
)
WEBSOCKET_MESSAGES_SENT = counter(
    "novitrac_gateway_websocket_messages_sent_total",
    "Messages written to WebSockets, by type (event, ping, reconnect, ...).",
    ("type",),
)
WEBSOCKET_CLOSED = counter(
    "novitrac_gateway_websocket_closed_total",
    "WebSockets ended, by reason (slow, lifetime, heartbeat, revoked, disconnected, ...).",
    ("reason",),
)
RATE_LIMITED = counter(
    "novitrac_gateway_rate_limited_total",
    "Requests refused with 429, by the bucket that refused them (org, address, webhook).",
    ("bucket",),
)
UPSTREAM_ERRORS = counter(
    "novitrac_gateway_upstream_errors_total",
    "Requests the gateway could not complete with a service, by service and kind.",
    ("service", "kind"),
)
