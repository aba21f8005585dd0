"""The Stripe adapter: the only module that imports ``stripe``.

Domain code calls :class:`StripeGateway` with plain values and gets plain values back; every SDK
failure becomes :class:`PaymentProviderUnavailable` (or, for a refusal that no retry would change,
:class:`PaymentProviderRefused`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import stripe

from novitrac_kit.errors import DomainError

ALREADY_RECORDED = "An event already exists with identifier"


class PaymentProviderUnavailable(DomainError):
    """Stripe could not be reached or failed; the request may be retried."""

    status_code = 503
    code = "payment_provider_unavailable"


class PaymentProviderRefused(DomainError):
    """Stripe refused the request as made."""

    status_code = 502
    code = "payment_provider_refused"


@dataclass(frozen=True)
class CheckoutSession:
    """A Stripe Checkout session we created."""

    id: str
    url: str


@dataclass(frozen=True)
class SubscriptionState:
    """A subscription as Stripe holds it now."""

    id: str
    customer: str
    status: str
    cancel_at_period_end: bool
    current_period_end: datetime | None
    metadata: dict[str, str]
    item_id: str | None


@dataclass(frozen=True)
class LineItem:
    """What a checkout sells: a named amount, once or monthly."""

    name: str
    currency: str
    unit_amount: int
    recurring: bool


@dataclass(frozen=True)
class Invoice:
    """A Stripe invoice as the billing API shows it (amounts in the smallest unit)."""

    id: str
    customer: str | None
    number: str | None
    status: str | None
    currency: str
    amount_due: int
    amount_paid: int
    amount_remaining: int
    period_start: datetime | None
    period_end: datetime | None
    created: datetime
    paid_at: datetime | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None


class StripeGateway:
    """Stripe through the official SDK, aimed at ``api_base`` (the sandbox in development)."""

    def __init__(self, *, secret_key: str, api_base: str, max_network_retries: int = 2) -> None:
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base},
            max_network_retries=max_network_retries,
        )

    async def create_customer(self, *, org_id: UUID, email: str, name: str) -> str:
        """A customer for the organisation; the same one however often this is retried."""
        customer = await _call(
            self._client.v1.customers.create_async(
                {"email": email, "name": name, "metadata": {"org_id": str(org_id)}},
                {"idempotency_key": f"novitrac-customer-{org_id}"},
            )
        )
        return str(customer.id)

    async def create_checkout(
        self,
        *,
        customer: str,
        item: LineItem,
        org_id: UUID,
        metadata: dict[str, str],
        success_url: str,
        cancel_url: str,
    ) -> CheckoutSession:
        """A hosted Checkout session for a monthly subscription or a one-off payment."""
        price_data: dict[str, Any] = {
            "currency": item.currency.lower(),
            "unit_amount": item.unit_amount,
            "product_data": {"name": item.name},
        }
        params: dict[str, Any] = {
            "customer": customer,
            "client_reference_id": str(org_id),
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": metadata,
            "line_items": [{"price_data": price_data, "quantity": 1}],
        }
        if item.recurring:
            price_data["recurring"] = {"interval": "month"}
            params["mode"] = "subscription"
            params["subscription_data"] = {"metadata": metadata}
        else:
            params["mode"] = "payment"
            params["payment_intent_data"] = {"metadata": metadata}
        session = await _call(self._client.v1.checkout.sessions.create_async(cast(Any, params)))
        return CheckoutSession(id=str(session.id), url=str(session.url))

    async def subscription(self, subscription_id: str) -> SubscriptionState:
        """The subscription as it is now."""
        found = await _call(self._client.v1.subscriptions.retrieve_async(subscription_id))
        return _subscription_state(found.to_dict())

    async def invoice_status(self, invoice_id: str) -> str:
        """An invoice's status now (``open``, ``paid``, ...)."""
        invoice = await _call(self._client.v1.invoices.retrieve_async(invoice_id))
        return str(invoice.status)

    async def invoices(
        self, customer: str, *, limit: int, starting_after: str | None = None, paid: bool = False
    ) -> tuple[list[Invoice], bool]:
        """The customer's invoices, newest first, and whether Stripe has more after them."""
        params: dict[str, Any] = {"customer": customer, "limit": limit}
        if starting_after is not None:
            params["starting_after"] = starting_after
        if paid:
            params["status"] = "paid"
        page = await _call(self._client.v1.invoices.list_async(cast(Any, params)))
        data = page.to_dict()
        return [_invoice(item) for item in data.get("data", [])], bool(data.get("has_more"))

    async def invoice(self, invoice_id: str) -> Invoice | None:
        """One invoice; None when Stripe knows no invoice by that id."""
        try:
            found = await self._client.v1.invoices.retrieve_async(invoice_id)
        except stripe.InvalidRequestError as error:
            if error.http_status == 404:
                return None
            raise PaymentProviderRefused(str(error.user_message or error)) from error
        except stripe.StripeError as error:
            raise PaymentProviderUnavailable(str(error.user_message or error)) from error
        return _invoice(found.to_dict())

    async def change_price(
        self, subscription: SubscriptionState, item: LineItem, metadata: dict[str, str]
    ) -> SubscriptionState:
        """Bill ``item`` from the next period on (no proration) and keep the subscription."""
        if subscription.item_id is None:
            raise PaymentProviderRefused("the subscription has no item to change")
        price = await _call(
            self._client.v1.prices.create_async(
                {
                    "currency": item.currency.lower(),
                    "unit_amount": item.unit_amount,
                    "recurring": {"interval": "month"},
                    "product_data": {"name": item.name},
                }
            )
        )
        updated = await _call(
            self._client.v1.subscriptions.update_async(
                subscription.id,
                {
                    "items": [{"id": subscription.item_id, "price": price.id}],
                    "proration_behavior": "none",
                    "cancel_at_period_end": False,
                    "metadata": metadata,
                },
            )
        )
        return _subscription_state(updated.to_dict())

    async def set_cancel_at_period_end(
        self, subscription_id: str, cancel: bool
    ) -> SubscriptionState:
        """End the subscription when its period ends (or keep it going again)."""
        updated = await _call(
            self._client.v1.subscriptions.update_async(
                subscription_id, {"cancel_at_period_end": cancel}
            )
        )
        return _subscription_state(updated.to_dict())

    async def report_usage(
        self, *, event_name: str, customer: str, value: int, identifier: str, timestamp: int
    ) -> None:
        """Record a meter event once: a repeated ``identifier`` counts as already recorded."""
        try:
            await self._client.v1.billing.meter_events.create_async(
                {
                    "event_name": event_name,
                    "payload": {"stripe_customer_id": customer, "value": str(value)},
                    "identifier": identifier,
                    "timestamp": timestamp,
                },
                {"idempotency_key": identifier},
            )
        except stripe.InvalidRequestError as error:
            if ALREADY_RECORDED not in str(error.user_message or error):
                raise PaymentProviderRefused(str(error.user_message or error)) from error
        except stripe.StripeError as error:
            raise PaymentProviderUnavailable(str(error.user_message or error)) from error


def _moment(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _invoice(data: dict[str, Any]) -> Invoice:
    transitions = data.get("status_transitions") or {}
    return Invoice(
        id=str(data["id"]),
        customer=data.get("customer"),
        number=data.get("number"),
        status=data.get("status"),
        currency=str(data.get("currency") or ""),
        amount_due=int(data.get("amount_due") or 0),
        amount_paid=int(data.get("amount_paid") or 0),
        amount_remaining=int(data.get("amount_remaining") or 0),
        period_start=_moment(data.get("period_start")),
        period_end=_moment(data.get("period_end")),
        created=_moment(data.get("created")) or datetime.now(UTC),
        paid_at=_moment(transitions.get("paid_at")),
        hosted_invoice_url=data.get("hosted_invoice_url"),
        invoice_pdf=data.get("invoice_pdf"),
    )


async def _call(awaitable: Any) -> Any:
    try:
        return await awaitable
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as error:
        raise PaymentProviderUnavailable(str(error.user_message or error)) from error
    except stripe.StripeError as error:
        raise PaymentProviderRefused(str(error.user_message or error)) from error


def _subscription_state(data: dict[str, Any]) -> SubscriptionState:
    items = (data.get("items") or {}).get("data") or []
    period_end = items[0].get("current_period_end") if items else None
    period_end = period_end or data.get("current_period_end")
    customer = data.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return SubscriptionState(
        id=str(data["id"]),
        customer=str(customer),
        status=str(data.get("status")),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        current_period_end=(
            datetime.fromtimestamp(int(period_end), UTC) if period_end is not None else None
        ),
        metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
        item_id=str(items[0]["id"]) if items else None,
    )
