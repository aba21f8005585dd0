"""One sandbox Stripe account: every object it holds, its event stream and its test switches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fastapi import Request

from novitrac_sandbox.stripe.store import Collection, Object, Store
from novitrac_sandbox.stripe.webhooks import DEFAULT_RETRY_DELAYS, Webhooks


@dataclass
class SessionDetails:
    """What a checkout session will buy, kept beside the session object.

    Attributes:
        line_items: the session's ``item`` objects (``/v1/checkout/sessions/{id}/line_items``).
        subscription_metadata: ``subscription_data[metadata]``, for the subscription it creates.
        payment_metadata: ``payment_intent_data[metadata]``, for the payment intent it creates.
    """

    line_items: list[Object]
    subscription_metadata: dict[str, str]
    payment_metadata: dict[str, str]


@dataclass
class Account:
    """The state behind the sandbox's Stripe API.

    Attributes:
        customers, products, prices, sessions, payment_intents, subscriptions, invoices, meters,
            events: the objects, by kind.
        meter_events: recorded meter events by ``identifier`` (which deduplicates them).
        billed_usage: identifiers of the meter events already on an invoice.
        session_details: what each checkout session buys, by session id.
        declining_customers: customers whose card is declined (renewals fail).
        webhooks: event creation and delivery.
        store: every collection, for ``expand``.
    """

    webhook_url: str | None
    webhook_secret: str
    retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS
    customers: Collection = field(default_factory=lambda: Collection("customer", "cus_"))
    products: Collection = field(default_factory=lambda: Collection("product", "prod_"))
    prices: Collection = field(default_factory=lambda: Collection("price", "price_"))
    sessions: Collection = field(default_factory=lambda: Collection("checkout.session", "cs_"))
    payment_intents: Collection = field(default_factory=lambda: Collection("payment_intent", "pi_"))
    subscriptions: Collection = field(default_factory=lambda: Collection("subscription", "sub_"))
    invoices: Collection = field(default_factory=lambda: Collection("invoice", "in_"))
    meters: Collection = field(default_factory=lambda: Collection("billing.meter", "mtr_"))
    events: Collection = field(default_factory=lambda: Collection("event", "evt_"))
    meter_events: dict[str, Object] = field(default_factory=dict)
    billed_usage: set[str] = field(default_factory=set)
    session_details: dict[str, SessionDetails] = field(default_factory=dict)
    declining_customers: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.webhooks = Webhooks(
            events=self.events,
            url=self.webhook_url,
            secret=self.webhook_secret,
            retry_delays=self.retry_delays,
        )
        self.store = Store(
            [
                self.customers,
                self.products,
                self.prices,
                self.sessions,
                self.payment_intents,
                self.subscriptions,
                self.invoices,
                self.meters,
                self.events,
            ]
        )


def current_account(request: Request) -> Account:
    """The account of the app serving ``request`` (a FastAPI dependency)."""
    account: Account = request.app.state.stripe
    return account
