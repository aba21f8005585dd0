"""Prometheus metrics of the bus, shared by both transports."""

from __future__ import annotations

from prometheus_client import Counter

DELIVERIES = Counter(
    "novitrac_bus_deliveries_total",
    "Domain event deliveries by consuming queue and outcome (handled, retried, dead_lettered).",
    ["queue", "outcome"],
)

LIVE_SIGNALS_DROPPED = Counter(
    "novitrac_bus_live_signals_dropped_total",
    "Live signals dropped because a publisher could not write or a subscriber fell behind.",
    ["transport"],
)
