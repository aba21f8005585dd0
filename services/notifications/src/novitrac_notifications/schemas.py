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
