"""Novitrac's event contracts: the envelope every message travels in and the event models.

Event classes live in one module per producing domain (``novitrac_contracts.telephony`` and so
on); :data:`EVENTS` and :data:`LIVE_SIGNALS` index them by type string.
"""

from novitrac_contracts.catalogue import EVENTS, LIVE_SIGNALS, UnknownEventType, event_class
from novitrac_contracts.envelope import EVENT_TYPE_PATTERN, LIVE_SIGNAL_PATTERN, Envelope, Event

__all__ = [
    "EVENTS",
    "EVENT_TYPE_PATTERN",
    "LIVE_SIGNALS",
    "LIVE_SIGNAL_PATTERN",
    "Envelope",
    "Event",
    "UnknownEventType",
    "event_class",
]
