"""``/v1/checkout/sessions`` and their completion, for a one-off payment or a subscription.

Paying (:func:`pay`, from the hosted page or the controls) completes the session: payment mode
gets a succeeded payment intent, subscription mode the subscription and its paid first invoice;
then ``checkout.session.completed`` is emitted. A declined card answers Stripe's 402
``card_declined`` and leaves the session open, as at Stripe. Cancelling (:func:`expire`) is the
shopper walking away: the sandbox expires the session at once (``checkout.session.expired``)
where Stripe would wait for ``expires_at``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from novitrac_sandbox.stripe import lifecycle, objects
from novitrac_sandbox.stripe.account import Account, SessionDetails
from novitrac_sandbox.stripe.catalog import PRICE_DATA_FIELDS, build_price
from novitrac_sandbox.stripe.errors import StripeError, missing
from novitrac_sandbox.stripe.http import AccountDep, RawParams, read, respond
from novitrac_sandbox.stripe.ids import new_id
from novitrac_sandbox.stripe.params import Params
from novitrac_sandbox.stripe.store import LIST_PARAMS, Object, page

router = APIRouter()

SESSION_FIELDS = (
    "mode",
    "line_items",
    "success_url",
    "cancel_url",
    "client_reference_id",
    "metadata",
    "customer",
    "customer_email",
    "customer_creation",
    "subscription_data",
    "payment_intent_data",
    "payment_method_types",
    "allow_promotion_codes",
    "billing_address_collection",
    "locale",
    "ui_mode",
)


@router.post("/v1/checkout/sessions")
async def create_session(request: Request, account: AccountDep, values: RawParams) -> JSONResponse:
    """Create a checkout session for a one-off payment or a subscription."""
    params = read(values, *SESSION_FIELDS)
    mode = params.choice("mode", ("payment", "subscription", "setup"), required=True)
    if mode == "setup":
        raise StripeError(400, "The sandbox does not support `setup` mode.", param="mode")
    assert mode is not None
    customer = params.string("customer")
    if customer is not None:
        account.customers.ref(customer, "customer")
    items = [
        _line_item(account, mode, item)
        for item in params.items(
            "line_items", ("price", "price_data", "quantity", "adjustable_quantity"), required=True
        )
    ]
    currencies = {price["currency"] for price, _ in items}
    if len(currencies) > 1:
        raise StripeError(400, "All line items must share one currency.", param="line_items")
    if mode == "subscription":
        intervals = {
            (p["recurring"]["interval"], p["recurring"]["interval_count"]) for p, _ in items
        }
        if len(intervals) > 1:
            raise StripeError(
                400, "All recurring prices must share one billing interval.", param="line_items"
            )
    line_items = [_line_item_object(price, quantity) for price, quantity in items]
    session = objects.checkout_session(
        mode=mode,
        url_base=str(request.base_url).rstrip("/"),
        customer=customer,
        customer_email=params.string("customer_email"),
        client_reference_id=params.string("client_reference_id"),
        success_url=params.string("success_url"),
        cancel_url=params.string("cancel_url"),
        metadata=params.metadata() or {},
        currency=items[0][0]["currency"],
        amount_total=sum(line["amount_total"] for line in line_items),
    )
    account.sessions.add(session)
    account.session_details[session["id"]] = SessionDetails(
        line_items=line_items,
        subscription_metadata=_nested_metadata(params, "subscription_data", mode, "subscription"),
        payment_metadata=_nested_metadata(params, "payment_intent_data", mode, "payment"),
    )
    return respond(account, session, params)


@router.get("/v1/checkout/sessions/{session_id}")
async def retrieve_session(session_id: str, account: AccountDep, values: RawParams) -> JSONResponse:
    """Retrieve a checkout session."""
    params = read(values)
    return respond(account, account.sessions.get(session_id), params)


@router.get("/v1/checkout/sessions/{session_id}/line_items")
async def list_session_line_items(
    session_id: str, account: AccountDep, values: RawParams
) -> JSONResponse:
    """The items a checkout session sells."""
    params = read(values, *LIST_PARAMS)
    account.sessions.get(session_id)
    items = account.session_details[session_id].line_items
    url = f"/v1/checkout/sessions/{session_id}/line_items"
    return respond(account, page(items, params, url), params)


@router.get("/v1/checkout/sessions")
async def list_sessions(account: AccountDep, values: RawParams) -> JSONResponse:
    """List checkout sessions, newest first."""
    params = read(values, *LIST_PARAMS, "customer", "status", "payment_intent", "subscription")
    customer = params.string("customer")
    status = params.choice("status", ("open", "complete", "expired"))
    found = account.sessions.newest_first(
        lambda s: (
            (customer is None or s["customer"] == customer)
            and (status is None or s["status"] == status)
        )
    )
    return respond(account, page(found, params, "/v1/checkout/sessions"), params)


@router.post("/v1/checkout/sessions/{session_id}/expire")
async def expire_session(session_id: str, account: AccountDep, values: RawParams) -> JSONResponse:
    """Expire an open session."""
    params = read(values)
    return respond(account, expire(account, account.sessions.get(session_id)), params)


@router.get("/v1/payment_intents/{intent_id}")
async def retrieve_payment_intent(
    intent_id: str, account: AccountDep, values: RawParams
) -> JSONResponse:
    """Retrieve the payment intent a payment-mode checkout created."""
    params = read(values)
    return respond(account, account.payment_intents.get(intent_id), params)


# --- completion ------------------------------------------------------------------------------


def pay(account: Account, session: Object, *, declined: bool = False) -> Object:
    """The shopper pays: complete ``session``, or a 402 ``card_declined`` (session stays open)."""
    _require_open(session)
    if declined:
        raise StripeError(
            402,
            "Your card was declined.",
            type="card_error",
            code="card_declined",
            extra={"decline_code": "generic_decline"},
        )
    details = account.session_details[session["id"]]
    customer = _customer_for(account, session)
    if customer is not None:
        session["customer"] = customer["id"]
        session["customer_details"] = {
            "address": objects.empty_address(),
            "email": customer["email"],
            "name": customer["name"],
            "phone": customer["phone"],
            "tax_exempt": "none",
            "tax_ids": [],
        }
    if session["mode"] == "payment":
        intent = objects.payment_intent(
            amount=session["amount_total"],
            currency=session["currency"],
            customer=session["customer"],
            metadata=details.payment_metadata,
            status="succeeded",
        )
        account.payment_intents.add(intent)
        account.webhooks.emit("payment_intent.succeeded", intent)
        session["payment_intent"] = intent["id"]
    else:
        assert customer is not None
        prices = [
            (account.prices.get(line["price"]["id"]), line["quantity"])
            for line in details.line_items
        ]
        subscription = lifecycle.start(
            account, customer=customer, items=prices, metadata=details.subscription_metadata
        )
        session["subscription"] = subscription["id"]
        session["invoice"] = subscription["latest_invoice"]
    session["status"] = "complete"
    session["payment_status"] = "paid" if session["amount_total"] else "no_payment_required"
    account.webhooks.emit("checkout.session.completed", session)
    return session


def expire(account: Account, session: Object) -> Object:
    """Close an open ``session`` unpaid (``checkout.session.expired``)."""
    _require_open(session)
    session["status"] = "expired"
    account.webhooks.emit("checkout.session.expired", session)
    return session


def _require_open(session: Object) -> None:
    if session["status"] != "open":
        raise StripeError(
            400,
            f"This Checkout Session is no longer active (status {session['status']}).",
            param="session",
        )


def _customer_for(account: Account, session: Object) -> Object | None:
    if session["customer"] is not None:
        return account.customers.get(session["customer"])
    if session["mode"] == "payment":
        return None
    customer = objects.customer(email=session["customer_email"], name=None)
    account.customers.add(customer)
    account.webhooks.emit("customer.created", customer)
    return customer


def _line_item(account: Account, mode: str, item: Params) -> tuple[Object, int | None]:
    price_id = item.string("price")
    if price_id is not None:
        price = account.prices.ref(price_id, item.name("price"))
    else:
        data = item.nested("price_data", PRICE_DATA_FIELDS)
        if data is None:
            raise missing(item.name("price"))
        price = account.prices.add(build_price(account, data))
    if mode == "subscription" and price["recurring"] is None:
        raise StripeError(
            400,
            "You must provide at least one recurring price in `subscription` mode when using "
            "prices.",
            param=item.name("price"),
        )
    if mode == "payment" and price["recurring"] is not None:
        raise StripeError(
            400,
            "You specified `payment` mode but passed a recurring price. Either switch to "
            "`subscription` mode or use only one-time prices.",
            param=item.name("price"),
        )
    quantity = item.integer("quantity", minimum=1)
    metered = price["recurring"] is not None and price["recurring"]["usage_type"] == "metered"
    if metered and quantity is not None:
        raise StripeError(
            400,
            "Quantity should not be specified where usage_type is `metered`. "
            f"Remove quantity from `{item.name('quantity')}`.",
            param=item.name("quantity"),
        )
    if not metered and quantity is None:
        raise StripeError(
            400,
            f"Quantity is required. Add `quantity` to `{item.prefix}`.",
            code="parameter_missing",
            param=item.name("quantity"),
        )
    return price, quantity


def _line_item_object(price: Object, quantity: int | None) -> Object:
    metered = price["recurring"] is not None and price["recurring"]["usage_type"] == "metered"
    amount = (
        0
        if metered
        else int(
            (Decimal(price["unit_amount_decimal"]) * (quantity or 1)).quantize(
                Decimal(1), rounding=ROUND_HALF_UP
            )
        )
    )
    return {
        "id": new_id("li_", 24),
        "object": "item",
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": price["currency"],
        "description": price["nickname"] or price["product"],
        "price": price,
        "quantity": quantity,
    }


def _nested_metadata(params: Params, key: str, mode: str, needs_mode: str) -> dict[str, str]:
    allowed = ("metadata", "description", "trial_period_days", "setup_future_usage")
    nested = params.nested(key, allowed)
    if nested is None:
        return {}
    if mode != needs_mode:
        raise StripeError(
            400,
            f"You can only specify `{key}` in `{needs_mode}` mode.",
            param=key,
        )
    return nested.metadata() or {}
