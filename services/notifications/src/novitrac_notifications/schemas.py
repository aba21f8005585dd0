"""The HTTP API's request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from novitrac_notifications.categories import (
    REQUIRED_EMAIL_CATEGORIES,
    EmailCategory,
    InAppCategory,
)
from novitrac_notifications.webhooks import EVENT_TYPES

DeliveryStatus = Literal["pending", "sent", "failed", "skipped"]


class Notification(BaseModel):
    """One entry of the caller's feed."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    kind: str = Field(description="What it is about, e.g. team.member_joined.")
    title: str
    body: str
    link: str | None = Field(description="Dashboard path it points to, if any.")
    read_at: datetime | None
    created_at: datetime


class NotificationPage(BaseModel):
    """A page of the caller's feed, newest first."""

    items: list[Notification]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
    unread_count: int = Field(description="Unread notifications in the whole feed.")


class MarkedRead(BaseModel):
    marked_read: int = Field(description="How many notifications were unread and now are read.")


class PreferencesOut(BaseModel):
    """Which categories the caller receives."""

    email: dict[EmailCategory, bool]
    in_app: dict[InAppCategory, bool]
    required_email: list[EmailCategory] = Field(
        description="Email categories that are always sent and cannot be turned off."
    )


class PreferencesUpdate(BaseModel):
    """Categories to turn on (true) or off (false); those not named stay as they are."""

    model_config = ConfigDict(extra="forbid")

    email: dict[EmailCategory, bool] = Field(default_factory=dict)
    in_app: dict[InAppCategory, bool] = Field(default_factory=dict)

    @field_validator("email")
    @classmethod
    def _required_stay_on(cls, value: dict[EmailCategory, bool]) -> dict[EmailCategory, bool]:
        refused = sorted(
            c.value for c, on in value.items() if not on and c in REQUIRED_EMAIL_CATEGORIES
        )
        if refused:
            raise ValueError(f"{', '.join(refused)} emails cannot be turned off")
        return value


class Delivery(BaseModel):
    """One email and what became of it."""

    id: UUID
    user_id: UUID | None
    to: str
    template: str
    category: str
    subject: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="When it is tried again, while pending.")
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Delivery:
        return cls(
            id=row.id,
            user_id=row.user_id,
            to=row.to_address,
            template=row.template,
            category=row.category,
            subject=row.subject,
            status=row.status,
            attempts=row.attempts,
            last_error=row.last_error,
            next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
            created_at=row.created_at,
            sent_at=row.sent_at,
        )


class DeliveryPage(BaseModel):
    """A page of the organisation's email log, newest first."""

    items: list[Delivery]
    next_cursor: str | None


WebhookDeliveryStatus = Literal["pending", "succeeded", "failed"]


def _known_event_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = sorted({event_type for event_type in value if event_type not in EVENT_TYPES})
    if unknown:
        raise ValueError(
            f"unknown event types: {', '.join(unknown)} (offered: {', '.join(sorted(EVENT_TYPES))})"
        )
    return sorted(set(value))


_URL_DESCRIPTION = "Where deliveries are POSTed: https, on a public address."
_URL_EXAMPLE = "https://example.com/novitrac/webhooks"
_TYPES_DESCRIPTION = "Event types it receives; empty for every type offered."
_TYPES_EXAMPLE = ["telephony.call.ended.v1", "voice.conversation.analyzed.v1"]


class WebhookEndpointCreate(BaseModel):
    """A new webhook endpoint."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1, max_length=2000, description=_URL_DESCRIPTION, examples=[_URL_EXAMPLE]
    )
    description: str = Field("", max_length=500, description="What it is, for people.")
    event_types: list[str] = Field(
        default_factory=list,
        max_length=100,
        description=_TYPES_DESCRIPTION,
        examples=[_TYPES_EXAMPLE],
    )

    _event_types_known = field_validator("event_types")(_known_event_types)


class WebhookEndpointUpdate(BaseModel):
    """Changes to an endpoint; fields not given keep their value."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None, min_length=1, max_length=2000, description=_URL_DESCRIPTION, examples=[_URL_EXAMPLE]
    )
    description: str | None = Field(None, max_length=500, description="What it is, for people.")
    event_types: list[str] | None = Field(
        None, max_length=100, description=_TYPES_DESCRIPTION, examples=[_TYPES_EXAMPLE]
    )
    enabled: bool | None = Field(
        None, description="Enabling it again clears its failures and disabled reason."
    )

    _event_types_known = field_validator("event_types")(_known_event_types)


class WebhookEndpoint(BaseModel):
    """An organisation's webhook endpoint (its secret is shown only when set)."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    url: str
    description: str
    event_types: list[str] = Field(description="Empty: every type offered.")
    enabled: bool
    disabled_reason: str | None = Field(description="Why it is disabled, while it is.")
    consecutive_failures: int = Field(description="Failed attempts since its last success.")
    created_at: datetime
    updated_at: datetime


class WebhookEndpointWithSecret(WebhookEndpoint):
    """An endpoint just created or given a new secret: the only time the secret is shown."""

    secret: str = Field(
        description="whsec_<base64 key>: verify each delivery's webhook-signature with it."
    )


class WebhookEndpointPage(BaseModel):
    """A page of the organisation's endpoints, newest first."""

    items: list[WebhookEndpoint]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class WebhookDelivery(BaseModel):
    """One event sent (or to be sent) to one endpoint, and how its attempts went."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    event_id: UUID = Field(description="Also the webhook-id header.")
    event_type: str
    payload: dict[str, Any] = Field(description="The body sent: the event's envelope.")
    status: WebhookDeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When it is tried next, while pending.")
    last_status_code: int | None = Field(description="The HTTP status of the last answer.")
    last_error: str | None
    last_duration_ms: int | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> WebhookDelivery:
        delivery = cls.model_validate(row)
        if delivery.status != "pending":
            delivery.next_attempt_at = None
        return delivery


class WebhookDeliveryPage(BaseModel):
    """A page of an endpoint's deliveries, newest first."""

    items: list[WebhookDelivery]
    next_cursor: str | None
