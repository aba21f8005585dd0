"""HTTP routes: the organisation's webhook endpoints, their secrets, tests and delivery logs.

Owners and admins manage them with their own tokens, and integrators with the organisation's API
keys (which carry no role; a read-only key may only read); members get 403. Another
organisation's endpoint is 404, as if it did not exist.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.exceptions import RequestValidationError

from novitrac_kit.errors import Conflict, Forbidden, NotFound, error_response
from novitrac_kit.outbound import UnsafeUrl, check_url
from novitrac_kit.runtime import ContextDep, IdentityDep, ServiceContext, SessionDep
from novitrac_kit.sealing import Sealer
from novitrac_kit.tokens import Identity
from novitrac_notifications import webhooks
from novitrac_notifications.config import Settings
from novitrac_notifications.endpoints import CursorDep, Limit
from novitrac_notifications.pagination import encode_cursor
from novitrac_notifications.schemas import (
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointPage,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: error_response("Missing or invalid access token."),
    403: error_response("Only owners and admins (or the organisation's API keys) may do this."),
    503: error_response("Token signing keys are unavailable."),
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: error_response("No such webhook endpoint in the caller's organisation.")
}
_DISABLED: dict[int | str, dict[str, Any]] = {409: error_response("The endpoint is disabled.")}


def _may_manage(identity: Identity) -> None:
    # An API key's token acts for the organisation and carries no role: only owners and admins
    # create keys. A user's token must be an owner's or an admin's.
    if identity.user_id is not None and identity.role not in ("owner", "admin"):
        raise Forbidden("only owners and admins may manage webhook endpoints")


async def get_reader(identity: IdentityDep) -> UUID:
    """The organisation of a caller who may see its webhook endpoints."""
    _may_manage(identity)
    return identity.org_id


async def get_writer(identity: IdentityDep) -> UUID:
    """The organisation of a caller who may change its endpoints (403 for read-only keys)."""
    _may_manage(identity)
    if not identity.can_write:
        raise Forbidden("this credential is read-only")
    return identity.org_id


ReaderDep = Annotated[UUID, Depends(get_reader)]
WriterDep = Annotated[UUID, Depends(get_writer)]


async def _checked_url(url: str, context: ContextDep) -> str:
    try:
        await check_url(url, environment=context.settings.environment)
    except UnsafeUrl as error:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "url"), "msg": str(error), "input": url}]
        ) from None
    return url


def _sealer(context: ServiceContext) -> Sealer:
    settings = context.settings
    if not isinstance(settings, Settings):
        raise TypeError("the notifications service needs its own Settings")
    return webhooks.secret_sealer(settings.secret_encryption_key.get_secret_value())


def _with_secret(row: Any, secret: str) -> WebhookEndpointWithSecret:
    return WebhookEndpointWithSecret.model_validate({**row._mapping, "secret": secret})


async def _endpoint(session: SessionDep, org_id: UUID, endpoint_id: UUID) -> Any:
    row = await webhooks.get_endpoint(session, org_id=org_id, endpoint_id=endpoint_id)
    if row is None:
        raise NotFound("no such webhook endpoint")
    return row


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookEndpointWithSecret,
    responses=_ERRORS,
)
async def create_endpoint(
    body: WebhookEndpointCreate, org_id: WriterDep, session: SessionDep, context: ContextDep
) -> WebhookEndpointWithSecret:
    """Register an endpoint; the answer holds its signing secret, shown this once."""
    url = await _checked_url(body.url, context)
    row, secret = await webhooks.create_endpoint(
        session,
        _sealer(context),
        org_id=org_id,
        url=url,
        description=body.description,
        event_types=body.event_types,
    )
    return _with_secret(row, secret)


@router.get("", response_model=WebhookEndpointPage, responses=_ERRORS)
async def list_endpoints(
    org_id: ReaderDep, session: SessionDep, after: CursorDep, limit: Limit = 50
) -> WebhookEndpointPage:
    """The organisation's endpoints, newest first."""
    rows = await webhooks.list_endpoints(session, org_id=org_id, limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    return WebhookEndpointPage(
        items=[WebhookEndpoint.model_validate(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].created_at, rows[-1].id) if more else None,
    )


@router.get("/{endpoint_id}", response_model=WebhookEndpoint, responses={**_ERRORS, **_NOT_FOUND})
async def get_endpoint(
    endpoint_id: UUID, org_id: ReaderDep, session: SessionDep
) -> WebhookEndpoint:
    """One endpoint (without its secret)."""
    return WebhookEndpoint.model_validate(await _endpoint(session, org_id, endpoint_id))


@router.patch("/{endpoint_id}", response_model=WebhookEndpoint, responses={**_ERRORS, **_NOT_FOUND})
async def update_endpoint(
    endpoint_id: UUID,
    body: WebhookEndpointUpdate,
    org_id: WriterDep,
    session: SessionDep,
    context: ContextDep,
) -> WebhookEndpoint:
    """Change an endpoint's URL, description, event types or whether it is enabled.

    Enabling it again clears its count of failures; its deliveries still pending go out then.
    """
    changes = body.model_dump(exclude_none=True)
    await _endpoint(session, org_id, endpoint_id)
    if "url" in changes:
        await _checked_url(changes["url"], context)
    row = await webhooks.update_endpoint(
        session, org_id=org_id, endpoint_id=endpoint_id, changes=changes
    )
    if row is None:
        raise NotFound("no such webhook endpoint")
    return WebhookEndpoint.model_validate(row)


@router.delete(
    "/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**_ERRORS, **_NOT_FOUND},
)
async def delete_endpoint(endpoint_id: UUID, org_id: WriterDep, session: SessionDep) -> Response:
    """Delete an endpoint and its delivery log; nothing more is sent to it."""
    if not await webhooks.delete_endpoint(session, org_id=org_id, endpoint_id=endpoint_id):
        raise NotFound("no such webhook endpoint")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=WebhookEndpointWithSecret,
    responses={**_ERRORS, **_NOT_FOUND},
)
async def rotate_secret(
    endpoint_id: UUID, org_id: WriterDep, session: SessionDep, context: ContextDep
) -> WebhookEndpointWithSecret:
    """Replace the signing secret (shown this once); every attempt from now on uses the new one."""
    rotated = await webhooks.rotate_secret(
        session, _sealer(context), org_id=org_id, endpoint_id=endpoint_id
    )
    if rotated is None:
        raise NotFound("no such webhook endpoint")
    return _with_secret(*rotated)


@router.post(
    "/{endpoint_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookDelivery,
    responses={**_ERRORS, **_NOT_FOUND, **_DISABLED},
)
async def send_test(endpoint_id: UUID, org_id: WriterDep, session: SessionDep) -> WebhookDelivery:
    """Queue a ``novitrac.webhook.test`` delivery to the endpoint, whatever its event types."""
    endpoint = await _endpoint(session, org_id, endpoint_id)
    if not endpoint.enabled:
        raise Conflict("the endpoint is disabled; enable it first")
    row = await webhooks.enqueue_test(session, org_id=org_id, endpoint_id=endpoint_id)
    return WebhookDelivery.from_row(row)


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=WebhookDeliveryPage,
    responses={**_ERRORS, **_NOT_FOUND},
)
async def list_deliveries(
    endpoint_id: UUID,
    org_id: ReaderDep,
    session: SessionDep,
    after: CursorDep,
    limit: Limit = 50,
    status: Annotated[
        WebhookDeliveryStatus | None, Query(description="Only deliveries in this state.")
    ] = None,
) -> WebhookDeliveryPage:
    """The endpoint's deliveries, newest first, with how their attempts went."""
    await _endpoint(session, org_id, endpoint_id)
    rows = await webhooks.list_deliveries(
        session, endpoint_id=endpoint_id, limit=limit + 1, after=after, status=status
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return WebhookDeliveryPage(
        items=[WebhookDelivery.from_row(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].created_at, rows[-1].id) if more else None,
    )


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookDelivery,
    responses={**_ERRORS, **_NOT_FOUND, **_DISABLED},
)
async def retry_delivery(
    endpoint_id: UUID, delivery_id: UUID, org_id: WriterDep, session: SessionDep
) -> WebhookDelivery:
    """Send a delivery again now: one more attempt for a failed one, a resend of a sent one."""
    endpoint = await _endpoint(session, org_id, endpoint_id)
    if not endpoint.enabled:
        raise Conflict("the endpoint is disabled; enable it first")
    row = await webhooks.retry_delivery(session, endpoint_id=endpoint_id, delivery_id=delivery_id)
    if row is None:
        raise NotFound("no such delivery for this endpoint")
    return WebhookDelivery.from_row(row)
