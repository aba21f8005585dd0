"""Webhooks: the organisations' own endpoints, which events they get, and how those are signed.

An organisation registers HTTPS endpoints (``/v1/webhook-endpoints``), each subscribed to some of
the event types in :data:`EVENT_TYPES` (none named: all of them). When one of those events arrives,
its handler calls :func:`enqueue_event` in its own transaction: one ``pending`` row in
``webhook_deliveries`` per enabled endpoint of the event's organisation that wants the type, unique
per ``(endpoint, event id)`` so a redelivered event is not sent twice, and a ``NOTIFY`` that wakes
the senders (:mod:`novitrac_notifications.webhook_sender`) once it commits.

Deliveries follow the Standard Webhooks specification (https://www.standardwebhooks.com): the body
is the event's envelope as JSON (``id``, ``type``, ``occurred_at``, ``org_id``, ``data``), and the
headers ``webhook-id`` (the event id), ``webhook-timestamp`` (UNIX seconds) and
``webhook-signature`` (``v1,`` and the base64 HMAC-SHA256 of ``"{id}.{timestamp}.{body}"`` keyed by
the base64-decoded part of the endpoint's ``whsec_...`` secret) let the receiver check them.

Endpoint URLs must be ``https`` and resolve only to public addresses (never loopback, private,
link-local or otherwise reserved ones), checked when they are set and again before each attempt;
the ``development`` and ``test`` environments allow plain ``http`` and any address
(:mod:`novitrac_kit.outbound`; signing is :mod:`novitrac_kit.standard_webhooks`).

Secrets are stored sealed (:mod:`novitrac_kit.sealing`, under
``NOTIFICATIONS_SECRET_ENCRYPTION_KEY``) and shown to the user only when they are set, so a copy
of the database cannot forge deliveries. The one-row ``secret_key_check`` holds a known value sealed
under the key the service first started with: a start-up whose key does not open it refuses to
start (:func:`check_secret_key`) before it seals anything under that key.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import CursorResult, Uuid, delete, func, literal, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from novitrac_contracts.billing import (
    AccountReinstated,
    AccountSuspended,
    BalanceChanged,
    BalanceRanLow,
    PaymentFailed,
    PaymentSucceeded,
)
from novitrac_contracts.envelope import Envelope, Event
from novitrac_contracts.telephony import (
    CallCreated,
    CallEnded,
    CallStatusChanged,
    CampaignCompleted,
    ContactOptedOut,
    SmsReceived,
    SmsSent,
)
from novitrac_contracts.voice import ConversationAnalyzed, ConversationEnded
from novitrac_kit.sealing import Sealer, Unsealable
from novitrac_kit.standard_webhooks import new_secret
from novitrac_notifications.db import secret_key_check, webhook_deliveries, webhook_endpoints

WEBHOOK_CHANNEL = "notifications_webhooks"
"""The ``NOTIFY`` channel that wakes webhook senders."""

WEBHOOK_EVENTS: tuple[type[Event], ...] = (
    CallCreated,
    CallStatusChanged,
    CallEnded,
    SmsReceived,
    SmsSent,
    CampaignCompleted,
    ContactOptedOut,
    ConversationEnded,
    ConversationAnalyzed,
    BalanceChanged,
    BalanceRanLow,
    PaymentSucceeded,
    PaymentFailed,
    AccountSuspended,
    AccountReinstated,
)
"""The domain events an endpoint may subscribe to."""

EVENT_TYPES = frozenset(model.event_type for model in WEBHOOK_EVENTS)
"""Their types, the values ``event_types`` accepts."""

TEST_EVENT_TYPE = "novitrac.webhook.test"
"""The type of the delivery ``POST /v1/webhook-endpoints/{id}/test`` sends, whatever the filter."""

# Secrets (signing itself is novitrac_kit.standard_webhooks).


SECRET_PURPOSE = b"novitrac webhook signing secrets"


@functools.cache
def secret_sealer(configured: str) -> Sealer:
    """What seals the endpoints' secrets under ``NOTIFICATIONS_SECRET_ENCRYPTION_KEY``."""
    return Sealer(configured, purpose=SECRET_PURPOSE)


def endpoint_secret(sealer: Sealer, *, sealed: bytes | None, clear: str | None) -> str:
    """An endpoint's secret in clear, from its stored columns."""
    if sealed is not None:
        return sealer.open(sealed)
    if clear is None:
        raise ValueError("the endpoint has no secret")
    return clear


KEY_CHECK_VALUE = "novitrac notifications: the webhook secrets' key"
"""What ``secret_key_check`` holds sealed: opening it proves the configured key is the right one."""


class WrongSecretKey(RuntimeError):
    """``NOTIFICATIONS_SECRET_ENCRYPTION_KEY`` is not the key the secrets are sealed under."""


async def check_secret_key(engine: AsyncEngine, sealer: Sealer) -> bool:
    """Check the configured key against the one the service first started with.

    The first start-up stores :data:`KEY_CHECK_VALUE` sealed under its key (of replicas starting
    together, one writes it and all check it). Returns whether this call wrote it.

    Raises:
        WrongSecretKey: the stored check value does not open with ``sealer``.
    """
    c = secret_key_check.c
    async with engine.begin() as connection:
        written = await connection.execute(
            insert(secret_key_check)
            .values(id=1, sealed=sealer.seal(KEY_CHECK_VALUE))
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(c.id)
        )
        wrote = written.first() is not None
        stored = (await connection.execute(select(c.sealed).where(c.id == 1))).scalar_one()
    try:
        opened = sealer.open(stored)
    except Unsealable:
        opened = None
    if opened != KEY_CHECK_VALUE:
        raise WrongSecretKey(
            "NOTIFICATIONS_SECRET_ENCRYPTION_KEY is not the key the webhook endpoints' secrets "
            "are sealed under (it does not open notifications.secret_key_check): set the key "
            "the service ran with before; nothing was sealed under this one. If that earlier "
            "key was the mistake, delete the row of notifications.secret_key_check and rotate "
            "the secret of every endpoint made meanwhile (theirs are sealed under it)"
        )
    return wrote


async def seal_clear_secrets(engine: AsyncEngine, sealer: Sealer) -> int:
    """Seal the secrets of endpoints made before secrets were sealed; returns how many.

    Run at start-up, once :func:`check_secret_key` has passed with ``sealer``; replicas
    starting together seal each endpoint once (its row is locked).
    """
    e = webhook_endpoints.c
    async with engine.begin() as connection:
        rows = (
            await connection.execute(
                select(e.id, e.secret)
                .where(e.secret.is_not(None))
                .with_for_update(skip_locked=True)
            )
        ).all()
        for row in rows:
            await connection.execute(
                update(webhook_endpoints)
                .where(e.id == row.id)
                .values(secret=None, secret_sealed=sealer.seal(row.secret))
            )
    return len(rows)


# Endpoints.


async def create_endpoint(
    session: AsyncSession,
    sealer: Sealer,
    *,
    org_id: UUID,
    url: str,
    description: str,
    event_types: list[str],
) -> tuple[Any, str]:
    """Register an endpoint with a new secret; returns its row and the secret, in clear."""
    secret = new_secret()
    statement = (
        insert(webhook_endpoints)
        .values(
            id=uuid.uuid4(),
            org_id=org_id,
            url=url,
            description=description,
            event_types=sorted(set(event_types)),
            secret_sealed=sealer.seal(secret),
        )
        .returning(webhook_endpoints)
    )
    return (await session.execute(statement)).one(), secret


async def get_endpoint(session: AsyncSession, *, org_id: UUID, endpoint_id: UUID) -> Any:
    """One of the organisation's endpoints, or None."""
    query = select(webhook_endpoints).where(
        webhook_endpoints.c.org_id == org_id, webhook_endpoints.c.id == endpoint_id
    )
    return (await session.execute(query)).one_or_none()


async def list_endpoints(
    session: AsyncSession,
    *,
    org_id: UUID,
    limit: int,
    after: tuple[datetime, UUID] | None = None,
) -> list[Any]:
    """The organisation's endpoints, newest first, up to ``limit`` after the cursor ``after``."""
    columns = webhook_endpoints.c
    query = (
        select(webhook_endpoints)
        .where(columns.org_id == org_id)
        .order_by(columns.created_at.desc(), columns.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(tuple_(columns.created_at, columns.id) < tuple_(*after))
    return list((await session.execute(query)).all())


async def update_endpoint(
    session: AsyncSession, *, org_id: UUID, endpoint_id: UUID, changes: dict[str, Any]
) -> Any:
    """Change an endpoint; returns its row, or None when the organisation has no such endpoint.

    ``enabled`` set to true clears ``disabled_reason`` and the count of failures; set to false,
    it records that the organisation disabled it.
    """
    values = dict(changes)
    if "event_types" in values:
        values["event_types"] = sorted(set(values["event_types"]))
    if values.get("enabled") is True:
        values |= {"disabled_reason": None, "consecutive_failures": 0}
    elif values.get("enabled") is False:
        values["disabled_reason"] = "disabled through the API"
    statement = (
        update(webhook_endpoints)
        .where(webhook_endpoints.c.org_id == org_id, webhook_endpoints.c.id == endpoint_id)
        .values(**values, updated_at=func.now())
        .returning(webhook_endpoints)
    )
    return (await session.execute(statement)).one_or_none()


async def rotate_secret(
    session: AsyncSession, sealer: Sealer, *, org_id: UUID, endpoint_id: UUID
) -> tuple[Any, str] | None:
    """Give an endpoint a new secret, used from its next attempt on; its row and the secret."""
    secret = new_secret()
    row = await update_endpoint(
        session,
        org_id=org_id,
        endpoint_id=endpoint_id,
        changes={"secret": None, "secret_sealed": sealer.seal(secret)},
    )
    return None if row is None else (row, secret)


async def delete_endpoint(session: AsyncSession, *, org_id: UUID, endpoint_id: UUID) -> bool:
    """Delete an endpoint and its deliveries; whether the organisation had it."""
    result = await session.execute(
        delete(webhook_endpoints).where(
            webhook_endpoints.c.org_id == org_id, webhook_endpoints.c.id == endpoint_id
        )
    )
    return bool(cast(CursorResult[Any], result).rowcount)


# Deliveries.


def envelope_payload(envelope: Envelope, *, org_id: UUID) -> dict[str, Any]:
    """The body of an event's deliveries: its envelope as JSON, without transport details."""
    return {
        "id": str(envelope.id),
        "type": envelope.type,
        "occurred_at": envelope.occurred_at.isoformat(),
        "org_id": str(org_id),
        "data": envelope.data,
    }


async def _wake(session: AsyncSession) -> None:
    await session.execute(select(func.pg_notify(WEBHOOK_CHANNEL, "")))


async def enqueue_event(session: AsyncSession, envelope: Envelope, *, org_id: UUID) -> int:
    """Queue the event for every enabled endpoint of ``org_id`` that wants its type.

    Runs in the handler's transaction; an event already queued for an endpoint is not queued
    again. Returns how many deliveries were queued.
    """
    columns = webhook_endpoints.c
    source = select(
        func.gen_random_uuid(),
        columns.id,
        literal(envelope.id, Uuid),
        literal(envelope.type),
        literal(envelope_payload(envelope, org_id=org_id), JSONB),
    ).where(
        columns.org_id == org_id,
        columns.enabled,
        or_(
            func.cardinality(columns.event_types) == 0, columns.event_types.any_() == envelope.type
        ),
    )
    statement = (
        insert(webhook_deliveries)
        .from_select(["id", "endpoint_id", "event_id", "event_type", "payload"], source)
        .on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
    )
    queued = int(cast(CursorResult[Any], await session.execute(statement)).rowcount)
    if queued:
        await _wake(session)
    return queued


async def enqueue_test(session: AsyncSession, *, org_id: UUID, endpoint_id: UUID) -> Any:
    """Queue a :data:`TEST_EVENT_TYPE` delivery to one endpoint; returns the delivery's row."""
    event_id = uuid.uuid4()
    payload = {
        "id": str(event_id),
        "type": TEST_EVENT_TYPE,
        "occurred_at": datetime.now(UTC).isoformat(),
        "org_id": str(org_id),
        "data": {
            "endpoint_id": str(endpoint_id),
            "message": "A test delivery from Novitrac: this endpoint is reachable.",
        },
    }
    statement = (
        insert(webhook_deliveries)
        .values(
            id=uuid.uuid4(),
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=TEST_EVENT_TYPE,
            payload=payload,
        )
        .returning(webhook_deliveries)
    )
    row = (await session.execute(statement)).one()
    await _wake(session)
    return row


async def list_deliveries(
    session: AsyncSession,
    *,
    endpoint_id: UUID,
    limit: int,
    after: tuple[datetime, UUID] | None = None,
    status: str | None = None,
) -> list[Any]:
    """An endpoint's deliveries, newest first, up to ``limit`` after the cursor ``after``."""
    columns = webhook_deliveries.c
    query = (
        select(webhook_deliveries)
        .where(columns.endpoint_id == endpoint_id)
        .order_by(columns.created_at.desc(), columns.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(tuple_(columns.created_at, columns.id) < tuple_(*after))
    if status is not None:
        query = query.where(columns.status == status)
    return list((await session.execute(query)).all())


async def retry_delivery(session: AsyncSession, *, endpoint_id: UUID, delivery_id: UUID) -> Any:
    """Make a delivery of the endpoint due now, whatever its status; its row, or None.

    A delivery that had failed gets one more attempt (failing again, it is failed again); one
    that had succeeded is sent again, with the same ``webhook-id``.
    """
    statement = (
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.id == delivery_id
        )
        .values(status="pending", next_attempt_at=func.now())
        .returning(webhook_deliveries)
    )
    row = (await session.execute(statement)).one_or_none()
    if row is not None:
        await _wake(session)
    return row
