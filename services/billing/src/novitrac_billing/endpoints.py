"""HTTP routes: the organisation's billing API, Stripe's webhook, and the platform's route.

The ``/internal/billing`` routes answer only callers holding the internal token.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime

from novitrac_billing import invoices, service, signatures, stripe_events, usage
from novitrac_billing.deps import GatewayDep, SettingsDep
from novitrac_billing.schemas import (
    AccountOut,
    AdjustmentIn,
    AdjustmentOut,
    Catalogue,
    CheckoutOut,
    CheckoutRequest,
    InvoiceOut,
    InvoicePage,
    LedgerPage,
    PlanChange,
    ReceiptList,
    UsageOut,
    WebhookAck,
)
from novitrac_kit.errors import DomainError, Forbidden, Unauthorized, error_response
from novitrac_kit.internal import INTERNAL, INTERNAL_RESPONSES
from novitrac_kit.runtime import IdentityDep, SessionDep, WriterDep
from novitrac_kit.tokens import Identity

router = APIRouter(prefix="/v1/billing", tags=["billing"])
webhooks = APIRouter(tags=["webhooks"])
internal = APIRouter(
    prefix="/internal/billing",
    tags=["internal"],
    dependencies=INTERNAL,
    responses=INTERNAL_RESPONSES,
)


_TOKEN: dict[int | str, dict[str, Any]] = {
    401: error_response("Missing or invalid access token."),
    503: error_response("Token signing keys (or Stripe) are unavailable."),
}
_MANAGER: dict[int | str, dict[str, Any]] = {
    **_TOKEN,
    403: error_response("Only owners and admins (with a user's token) may do this."),
}
_NO_ACCOUNT: dict[int | str, dict[str, Any]] = {
    404: error_response("The organisation has no billing account yet.")
}
_STRIPE: dict[int | str, dict[str, Any]] = {502: error_response("Stripe refused the request.")}

INVOICE_ID = r"^in_[A-Za-z0-9]+$"


class BadRequest(DomainError):
    """The request body is not what the route reads."""


async def get_manager(identity: WriterDep) -> Identity:
    """An owner's or admin's token that may write (403 for members and API keys)."""
    if identity.user_id is None or identity.role not in ("owner", "admin"):
        raise Forbidden("only owners and admins may change billing")
    return identity


ManagerDep = Annotated[Identity, Depends(get_manager)]


def get_cursor(
    cursor: Annotated[
        str | None, Query(max_length=100, description="`next_cursor` of the previous page.")
    ] = None,
) -> int | None:
    """The decoded ``cursor`` query parameter (422 when malformed)."""
    if cursor is None:
        return None
    try:
        return service.decode_cursor(cursor)
    except service.InvalidCursor:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "cursor"), "msg": "malformed cursor"}]
        ) from None


@router.get("/plans", response_model=Catalogue, responses=_TOKEN)
async def list_plans(identity: IdentityDep, session: SessionDep) -> Catalogue:
    """The plans and credit packs on offer."""
    return await service.catalogue(session)


@router.get("/account", response_model=AccountOut, responses={**_TOKEN, **_NO_ACCOUNT})
async def get_account(identity: IdentityDep, session: SessionDep) -> AccountOut:
    """The caller's organisation: balance, standing, plan and limits, subscription."""
    return await service.account(session, identity.org_id)


@router.get("/ledger", response_model=LedgerPage, responses=_TOKEN)
async def list_ledger(
    identity: IdentityDep,
    session: SessionDep,
    after: Annotated[int | None, Depends(get_cursor)],
    limit: Annotated[int, Query(ge=1, le=100, description="Entries per page.")] = 50,
) -> LedgerPage:
    """The organisation's ledger entries, newest first."""
    return await service.ledger_page(session, identity.org_id, limit=limit, after=after)


@router.get("/invoices", response_model=InvoicePage, responses={**_TOKEN, **_STRIPE})
async def list_invoices(
    identity: IdentityDep,
    session: SessionDep,
    gateway: GatewayDep,
    cursor: Annotated[
        str | None,
        Query(
            pattern=INVOICE_ID, max_length=255, description="`next_cursor` of the previous page."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Invoices per page.")] = 20,
) -> InvoicePage:
    """The organisation's Stripe invoices, newest first (none before its first purchase)."""
    return await invoices.invoice_page(session, gateway, identity.org_id, limit=limit, after=cursor)


@router.get(
    "/invoices/{invoice_id}",
    response_model=InvoiceOut,
    responses={**_TOKEN, **_STRIPE, 404: error_response("No such invoice of this organisation.")},
)
async def get_invoice(
    invoice_id: Annotated[str, Path(pattern=INVOICE_ID, max_length=255)],
    identity: IdentityDep,
    session: SessionDep,
    gateway: GatewayDep,
) -> InvoiceOut:
    """One of the organisation's invoices."""
    return await invoices.one_invoice(session, gateway, identity.org_id, invoice_id)


@router.get("/receipts", response_model=ReceiptList, responses={**_TOKEN, **_STRIPE})
async def list_receipts(
    identity: IdentityDep, session: SessionDep, gateway: GatewayDep
) -> ReceiptList:
    """Everything the organisation has paid (credit packs and subscription invoices)."""
    return await invoices.receipts(session, gateway, identity.org_id)


@router.get("/usage", response_model=UsageOut, responses=_TOKEN)
async def get_usage(
    identity: IdentityDep,
    session: SessionDep,
    by: Annotated[usage.Grouping, Query(description="Group by day, agent or number.")] = "day",
    since: Annotated[
        AwareDatetime | None, Query(description="Calls ended at or after (with a UTC offset).")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Calls ended before (with a UTC offset).")
    ] = None,
) -> UsageOut:
    """What the organisation's calls cost, by day (UTC), agent or phone number."""
    return await usage.usage(session, identity.org_id, by=by, since=since, until=until)


@router.post(
    "/checkout",
    response_model=CheckoutOut,
    status_code=201,
    responses={
        **_MANAGER,
        **_STRIPE,
        404: error_response("No such plan or credit pack, or no billing account yet."),
        409: error_response("Already subscribed, or the plan needs no checkout."),
    },
)
async def create_checkout(
    body: CheckoutRequest,
    identity: ManagerDep,
    session: SessionDep,
    gateway: GatewayDep,
    settings: SettingsDep,
) -> CheckoutOut:
    """Start a Stripe Checkout for a plan subscription or a credit pack; returns its URL."""
    return await service.start_checkout(session, gateway, settings, identity.org_id, body)


@router.post(
    "/subscription",
    response_model=AccountOut,
    responses={
        **_MANAGER,
        **_STRIPE,
        404: error_response("No such plan, or no billing account yet."),
        409: error_response("No subscription to change."),
    },
)
async def change_subscription(
    body: PlanChange, identity: ManagerDep, session: SessionDep, gateway: GatewayDep
) -> AccountOut:
    """Move the subscription to another plan from its next period (the free plan cancels it)."""
    return await service.change_plan(session, gateway, identity.org_id, body.plan)


@router.delete(
    "/subscription",
    response_model=AccountOut,
    responses={
        **_MANAGER,
        **_STRIPE,
        404: error_response("No billing account yet."),
        409: error_response("No subscription to cancel."),
    },
)
async def cancel_subscription(
    identity: ManagerDep, session: SessionDep, gateway: GatewayDep
) -> AccountOut:
    """Cancel the subscription at the end of its current period."""
    return await service.cancel_plan(session, gateway, identity.org_id)


@webhooks.post(
    "/webhooks/stripe",
    response_model=WebhookAck,
    responses={
        400: error_response("The signed body is not a Stripe event."),
        401: error_response("Missing, forged or expired Stripe-Signature."),
        502: error_response("Stripe refused a request made while applying the event."),
        503: error_response("Stripe could not be reached while applying the event; it will retry."),
    },
)
async def stripe_webhook(
    request: Request, session: SessionDep, gateway: GatewayDep, settings: SettingsDep
) -> WebhookAck:
    """Verify, store and apply one Stripe event (once, whatever the order or repetition)."""
    payload = await request.body()
    try:
        signatures.verify(
            payload,
            request.headers.get("stripe-signature"),
            secret=settings.stripe_webhook_secret.get_secret_value(),
            tolerance=settings.stripe_webhook_tolerance,
            now=time.time(),
        )
    except signatures.InvalidSignature as error:
        raise Unauthorized(f"invalid Stripe-Signature: {error}") from None
    event = _parse_event(payload)
    received = await stripe_events.receive(
        session,
        event,
        stripe_events.Context(gateway, timedelta(seconds=settings.payment_grace_period)),
    )
    return WebhookAck(id=event["id"], outcome=received.outcome, reason=received.reason)


@internal.post(
    "/adjustments",
    response_model=AdjustmentOut,
    responses={
        404: error_response("The organisation has no billing account."),
        409: error_response("The amount does not fit the kind."),
    },
)
async def create_adjustment(body: AdjustmentIn, session: SessionDep) -> AdjustmentOut:
    """Credit or debit an organisation by hand (refunds too), once per reference."""
    return await service.adjust(session, body)


def _parse_event(payload: bytes) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("the body is not JSON") from None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("data"), dict)
    ):
        raise BadRequest("the body is not a Stripe event")
    return event
