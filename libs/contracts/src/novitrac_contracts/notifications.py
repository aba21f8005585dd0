"""Events published by the notifications service."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from novitrac_contracts.envelope import Event


class NotificationCreated(Event):
    """Emitted when an in-app notification is added to a user's feed."""

    event_type: ClassVar[str] = "notifications.notification.created.v1"

    notification_id: UUID
    org_id: UUID
    user_id: UUID = Field(description="The user whose feed it is in; no one else may see it.")
    kind: str = Field(description="What it is about, e.g. billing.balance.low.")
    title: str
    body: str
    link: str | None = Field(default=None, description="Dashboard path it points to, if any.")
