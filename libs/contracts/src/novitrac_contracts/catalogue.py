"""Every event and live signal by its type string, so a consumer can find the model of a message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from novitrac_contracts import auth, billing, live, notifications, telephony, voice
from novitrac_contracts.envelope import Event


class UnknownEventType(KeyError):
    """Raised when a type string names no event or live signal in the catalogue."""

    def __init__(self, event_type: str) -> None:
        super().__init__(event_type)
        self.event_type = event_type

    def __str__(self) -> str:
        return f"unknown event type {self.event_type!r}: not in the novitrac_contracts catalogue"


def _index(models: Iterable[type[Event]]) -> Mapping[str, type[Event]]:
    index: dict[str, type[Event]] = {}
    for model in models:
        if model.event_type in index:
            raise ValueError(f"event type {model.event_type!r} declared twice")
        index[model.event_type] = model
    return MappingProxyType(index)


EVENTS: Mapping[str, type[Event]] = _index(
    [
        auth.UserRegistered,
        auth.OtpRequested,
        auth.OrgCreated,
        auth.MemberInvited,
        auth.MemberJoined,
        auth.MemberRoleChanged,
        auth.MemberRemoved,
        auth.ApiKeyCreated,
        auth.ApiKeyRevoked,
        telephony.CallCreated,
        telephony.CallStatusChanged,
        telephony.CallEnded,
        telephony.SmsReceived,
        telephony.SmsSent,
        telephony.CampaignCompleted,
        telephony.ContactOptedOut,
        voice.AgentUpdated,
        voice.AgentDeleted,
        voice.ConversationEnded,
        voice.ConversationAnalyzed,
        billing.BalanceChanged,
        billing.BalanceRanLow,
        billing.AccountSuspended,
        billing.AccountReinstated,
        billing.PaymentSucceeded,
        billing.PaymentFailed,
        billing.PlanChanged,
        billing.CallCharged,
        notifications.NotificationCreated,
    ]
)
"""Domain events (durable, versioned) by type string."""

LIVE_SIGNALS: Mapping[str, type[Event]] = _index(
    [
        live.LiveCallStatus,
        live.LiveTranscriptLine,
        live.LiveCampaignProgress,
    ]
)
"""Live signals (best effort, unversioned) by type string."""


def event_class(event_type: str) -> type[Event]:
    """The model of a domain event or live signal.

    Args:
        event_type: the type string, e.g. ``telephony.call.ended.v1`` or ``live.call.status``.

    Returns:
        The event class whose ``event_type`` it is.

    Raises:
        UnknownEventType: no event or live signal has this type (a ``KeyError``).
    """
    model = EVENTS.get(event_type) or LIVE_SIGNALS.get(event_type)
    if model is None:
        raise UnknownEventType(event_type)
    return model
