"""HTTP routes: the caller's feed and preferences, and the organisation's email log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError

from novitrac_kit.errors import Forbidden, NotFound, error_response
from novitrac_kit.runtime import IdentityDep, SessionDep, WriterDep
from novitrac_kit.tokens import Identity
from novitrac_notifications import emails, feed, preferences
from novitrac_notifications.categories import REQUIRED_EMAIL_CATEGORIES
from novitrac_notifications.pagination import InvalidCursor, decode_cursor, encode_cursor
from novitrac_notifications.schemas import (
    Delivery,
    DeliveryPage,
    DeliveryStatus,
    MarkedRead,
    Notification,
    NotificationPage,
    PreferencesOut,
    PreferencesUpdate,
)

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])

_TOKEN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: error_response("Missing or invalid access token."),
    503: error_response("Token signing keys are unavailable."),
}
_FORBIDDEN: dict[int | str, dict[str, Any]] = {403: error_response("Not for this credential.")}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: error_response("No such notification in the caller's feed.")
}


@dataclass(frozen=True)
class Caller:
    """The user a request acts for, in the organisation of their token."""

    org_id: UUID
    user_id: UUID


def _user(identity: Identity) -> Caller:
    if identity.user_id is None:
        raise Forbidden("API keys have no notification feed; use a user's token")
    return Caller(identity.org_id, identity.user_id)


async def get_reader(identity: IdentityDep) -> Caller:
    """The user of the request's token (403 for an API key)."""
    return _user(identity)


async def get_writer(identity: WriterDep) -> Caller:
    """The user of the request's token, when it may write (403 for a read-only one)."""
    return _user(identity)


async def get_manager(identity: IdentityDep) -> UUID:
    """The org id of an owner's or admin's token (403 otherwise, API keys included)."""
    if identity.user_id is None or identity.role not in ("owner", "admin"):
        raise Forbidden("only owners and admins may read the email log")
    return identity.org_id


async def get_cursor(
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
) -> tuple[datetime, UUID] | None:
    """The decoded ``cursor`` query parameter (422 when malformed)."""
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor)
    except InvalidCursor:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "cursor"),
                    "msg": "malformed cursor",
                    "input": cursor,
                }
            ]
        ) from None


ReaderDep = Annotated[Caller, Depends(get_reader)]
UserWriterDep = Annotated[Caller, Depends(get_writer)]
ManagerDep = Annotated[UUID, Depends(get_manager)]
CursorDep = Annotated[tuple[datetime, UUID] | None, Depends(get_cursor)]
Limit = Annotated[int, Query(ge=1, le=100, description="Items per page.")]


@router.get("", response_model=NotificationPage, responses={**_TOKEN_ERRORS, **_FORBIDDEN})
async def list_notifications(
    caller: ReaderDep,
    session: SessionDep,
    after: CursorDep,
    limit: Limit = 50,
    unread_only: Annotated[bool, Query(description="Only unread notifications.")] = False,
) -> NotificationPage:
    """The caller's notifications in the current organisation, newest first."""
    rows = await feed.page(
        session,
        org_id=caller.org_id,
        user_id=caller.user_id,
        limit=limit + 1,
        unread_only=unread_only,
        after=after,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return NotificationPage(
        items=[Notification.model_validate(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].created_at, rows[-1].id) if more else None,
        unread_count=await feed.unread_count(session, org_id=caller.org_id, user_id=caller.user_id),
    )


@router.post("/read-all", response_model=MarkedRead, responses={**_TOKEN_ERRORS, **_FORBIDDEN})
async def mark_all_read(caller: UserWriterDep, session: SessionDep) -> MarkedRead:
    """Mark every notification of the caller's feed read."""
    return MarkedRead(
        marked_read=await feed.mark_all_read(session, org_id=caller.org_id, user_id=caller.user_id)
    )


@router.post(
    "/{notification_id}/read",
    response_model=Notification,
    responses={**_TOKEN_ERRORS, **_FORBIDDEN, **_NOT_FOUND},
)
async def mark_read(
    notification_id: UUID, caller: UserWriterDep, session: SessionDep
) -> Notification:
    """Mark one notification read (reading it again keeps the first time)."""
    row = await feed.mark_read(
        session, org_id=caller.org_id, user_id=caller.user_id, notification_id=notification_id
    )
    if row is None:
        raise NotFound("no such notification")
    return Notification.model_validate(row)


def _preferences_out(prefs: preferences.Preferences) -> PreferencesOut:
    return PreferencesOut(
        email=prefs.email(),
        in_app=prefs.in_app(),
        required_email=sorted(REQUIRED_EMAIL_CATEGORIES),
    )


@router.get(
    "/preferences", response_model=PreferencesOut, responses={**_TOKEN_ERRORS, **_FORBIDDEN}
)
async def get_preferences(caller: ReaderDep, session: SessionDep) -> PreferencesOut:
    """Which email and in-app categories the caller receives."""
    return _preferences_out(await preferences.get(session, user_id=caller.user_id))


@router.put(
    "/preferences", response_model=PreferencesOut, responses={**_TOKEN_ERRORS, **_FORBIDDEN}
)
async def update_preferences(
    body: PreferencesUpdate, caller: UserWriterDep, session: SessionDep
) -> PreferencesOut:
    """Turn categories on or off; categories not named keep their setting."""
    prefs = await preferences.update(
        session, user_id=caller.user_id, email=body.email, in_app=body.in_app
    )
    return _preferences_out(prefs)


@router.get("/deliveries", response_model=DeliveryPage, responses={**_TOKEN_ERRORS, **_FORBIDDEN})
async def list_deliveries(
    org_id: ManagerDep,
    session: SessionDep,
    after: CursorDep,
    limit: Limit = 50,
    status: Annotated[DeliveryStatus | None, Query(description="Only this outcome.")] = None,
) -> DeliveryPage:
    """The organisation's emails and their outcomes, newest first (owners and admins)."""
    rows = await emails.org_log(session, org_id=org_id, limit=limit + 1, after=after, status=status)
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryPage(
        items=[Delivery.from_row(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].created_at, rows[-1].id) if more else None,
    )
