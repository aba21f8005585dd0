"""The sandbox's own Stripe controls under ``/_sandbox`` (JSON, no API key): inspect and steer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from novitrac_sandbox.stripe import checkout, lifecycle
from novitrac_sandbox.stripe.http import AccountDep
from novitrac_sandbox.stripe.store import Collection

router = APIRouter(prefix="/_sandbox")


class PayRequest(BaseModel):
    """How the shopper pays: ``declined`` uses a card that is declined."""

    declined: bool = False


class CardRequest(BaseModel):
    """Whether the customer's card declines from now on (renewals then fail)."""

    declines: bool


class RenewRequest(BaseModel):
    """The renewal's outcome: ``paid``, ``failed``, or None (by the customer's card)."""

    outcome: str | None = None


class EndpointRequest(BaseModel):
    """Where webhooks go from now on (None: nowhere)."""

    url: str | None


class DeliverRequest(BaseModel):
    """Which events to send now (None: the held ones), in which order, how many times each."""

    event_ids: list[str] | None = None
    reverse: bool = False
    times: int = 1


def _all(collection: Collection) -> dict[str, Any]:
    return {"data": collection.newest_first()}


@router.get("/customers")
async def customers(account: AccountDep) -> dict[str, Any]:
    """Every customer, newest first."""
    return _all(account.customers)


@router.get("/checkout/sessions")
async def sessions(account: AccountDep) -> dict[str, Any]:
    """Every checkout session, newest first."""
    return _all(account.sessions)


@router.get("/subscriptions")
async def all_subscriptions(account: AccountDep) -> dict[str, Any]:
    """Every subscription (canceled ones too), newest first."""
    return _all(account.subscriptions)


@router.get("/invoices")
async def invoices(account: AccountDep) -> dict[str, Any]:
    """Every invoice, newest first."""
    return _all(account.invoices)


@router.get("/meter_events")
async def meter_events(account: AccountDep) -> dict[str, Any]:
    """Every recorded meter event, oldest first."""
    return {"data": list(account.meter_events.values())}


@router.get("/events")
async def events(account: AccountDep) -> dict[str, Any]:
    """Every event, newest first."""
    return _all(account.events)


@router.get("/deliveries")
async def deliveries(account: AccountDep, event_id: str | None = None) -> dict[str, Any]:
    """Every webhook delivery attempt (of one event with ``?event_id=``), oldest first."""
    attempts = account.webhooks.attempts
    if event_id is not None:
        attempts = account.webhooks.attempts_of(event_id)
    return {"data": [attempt.to_json() for attempt in attempts]}


@router.get("/webhooks")
async def webhook_state(account: AccountDep) -> dict[str, Any]:
    """The endpoint URL, whether deliveries are held, and the held event ids."""
    hooks = account.webhooks
    return {"url": hooks.url, "holding": hooks.holding, "held": list(hooks.held)}


@router.post("/checkout/sessions/{session_id}/pay")
async def pay(session_id: str, account: AccountDep, body: PayRequest | None = None) -> Any:
    """Complete a checkout as the shopper would (402 ``card_declined`` with ``declined``)."""
    session = account.sessions.get(session_id)
    return checkout.pay(account, session, declined=(body or PayRequest()).declined)


@router.post("/checkout/sessions/{session_id}/cancel")
async def cancel(session_id: str, account: AccountDep) -> Any:
    """Abandon a checkout: the session expires."""
    return checkout.expire(account, account.sessions.get(session_id))


@router.post("/customers/{customer_id}/card")
async def card(customer_id: str, body: CardRequest, account: AccountDep) -> dict[str, Any]:
    """Make the customer's card decline (or work again)."""
    account.customers.get(customer_id)
    if body.declines:
        account.declining_customers.add(customer_id)
    else:
        account.declining_customers.discard(customer_id)
    return {"customer": customer_id, "declines": body.declines}


@router.post("/subscriptions/{subscription_id}/renew")
async def renew(subscription_id: str, account: AccountDep, body: RenewRequest | None = None) -> Any:
    """Pass to the next period: returns the renewal invoice (or the subscription it ended)."""
    outcome = (body or RenewRequest()).outcome
    paid = None if outcome is None else outcome == "paid"
    return lifecycle.renew(account, account.subscriptions.get(subscription_id), paid=paid)


@router.post("/invoices/{invoice_id}/pay")
async def pay_invoice(invoice_id: str, account: AccountDep) -> Any:
    """Retry collecting an open invoice, successfully (``invoice.paid``)."""
    invoice = account.invoices.get(invoice_id)
    if invoice["status"] == "open":
        lifecycle.settle(account, invoice, paid=True)
    return invoice


@router.post("/events/{event_id}/redeliver")
async def redeliver(event_id: str, account: AccountDep) -> dict[str, Any]:
    """Send an event again, whether or not it was delivered before."""
    return {"scheduled": account.webhooks.deliver([event_id])}


@router.post("/events/deliver")
async def deliver(account: AccountDep, body: DeliverRequest | None = None) -> dict[str, Any]:
    """Send events now: chosen ones or the held ones, in order or reversed, once or more."""
    request = body or DeliverRequest()
    ids = request.event_ids if request.event_ids is not None else list(account.webhooks.held)
    if request.reverse:
        ids = list(reversed(ids))
    return {"scheduled": account.webhooks.deliver(ids, times=max(1, request.times))}


@router.put("/webhooks")
async def point_webhooks(body: EndpointRequest, account: AccountDep) -> dict[str, Any]:
    """Change the webhook endpoint while the sandbox runs."""
    account.webhooks.point_at(body.url)
    return await webhook_state(account)


@router.post("/webhooks/hold")
async def hold(account: AccountDep) -> dict[str, Any]:
    """Hold new events instead of sending them (to deliver them late, twice or out of order)."""
    account.webhooks.hold()
    return {"holding": True}


@router.post("/webhooks/release")
async def release(account: AccountDep) -> dict[str, Any]:
    """Stop holding and send the held events in order."""
    return {"holding": False, "released": account.webhooks.release()}
