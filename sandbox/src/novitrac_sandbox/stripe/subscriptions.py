"""``/v1/subscriptions`` (retrieve, list, change, cancel) and ``/v1/invoices`` (retrieve, list)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from novitrac_sandbox.stripe import objects
from novitrac_sandbox.stripe.account import Account
from novitrac_sandbox.stripe.errors import StripeError, missing
from novitrac_sandbox.stripe.http import AccountDep, RawParams, read, respond
from novitrac_sandbox.stripe.lifecycle import LIVE_STATUSES, cancel
from novitrac_sandbox.stripe.params import Params, merge_metadata
from novitrac_sandbox.stripe.store import LIST_PARAMS, Object, page

router = APIRouter()

ITEM_FIELDS = ("id", "price", "quantity", "deleted", "metadata")


@router.get("/v1/subscriptions/{subscription_id}")
async def retrieve_subscription(
    subscription_id: str, account: AccountDep, values: RawParams
) -> JSONResponse:
    """Retrieve a subscription."""
    params = read(values)
    return respond(account, account.subscriptions.get(subscription_id), params)


@router.get("/v1/subscriptions")
async def list_subscriptions(account: AccountDep, values: RawParams) -> JSONResponse:
    """List subscriptions (by default those not canceled), newest first."""
    params = read(values, *LIST_PARAMS, "customer", "price", "status")
    customer = params.string("customer")
    price = params.string("price")
    status = params.choice("status", (*LIVE_STATUSES, "canceled", "all", "ended"))

    def keep(sub: Object) -> bool:
        if customer is not None and sub["customer"] != customer:
            return False
        if price is not None and all(i["price"]["id"] != price for i in sub["items"]["data"]):
            return False
        if status is None:
            return bool(sub["status"] != "canceled")
        return (
            status == "all"
            or sub["status"] == status
            or (status == "ended" and sub["status"] == "canceled")
        )

    found = account.subscriptions.newest_first(keep)
    return respond(account, page(found, params, "/v1/subscriptions"), params)


@router.post("/v1/subscriptions/{subscription_id}")
async def update_subscription(
    subscription_id: str, account: AccountDep, values: RawParams
) -> JSONResponse:
    """Change a subscription's items (price, quantity), ``cancel_at_period_end`` or metadata."""
    params = read(
        values,
        "items",
        "cancel_at_period_end",
        "metadata",
        "proration_behavior",
        "payment_behavior",
        "description",
    )
    params.choice("proration_behavior", ("create_prorations", "none", "always_invoice"))
    subscription = account.subscriptions.get(subscription_id)
    if subscription["status"] == "canceled":
        raise StripeError(
            400,
            "A canceled subscription can only update its cancellation_details and metadata.",
            param="items" if params.has("items") else None,
        )
    previous: dict[str, Any] = {}
    if params.has("items"):
        previous["items"] = {"data": [dict(i) for i in subscription["items"]["data"]]}
        _change_items(account, subscription, params.items("items", ITEM_FIELDS))
    cancel_at_period_end = params.boolean("cancel_at_period_end")
    if cancel_at_period_end is not None:
        previous["cancel_at_period_end"] = subscription["cancel_at_period_end"]
        previous["cancel_at"] = subscription["cancel_at"]
        subscription["cancel_at_period_end"] = cancel_at_period_end
        subscription["cancel_at"] = (
            subscription["items"]["data"][0]["current_period_end"] if cancel_at_period_end else None
        )
    if params.has("metadata"):
        previous["metadata"] = dict(subscription["metadata"])
        subscription["metadata"] = merge_metadata(subscription["metadata"], params.metadata())
    if params.has("description"):
        previous["description"] = subscription["description"]
        subscription["description"] = params.string("description")
    if previous:
        account.webhooks.emit("customer.subscription.updated", subscription, previous=previous)
    return respond(account, subscription, params)


@router.delete("/v1/subscriptions/{subscription_id}")
async def cancel_subscription(
    subscription_id: str, account: AccountDep, values: RawParams
) -> JSONResponse:
    """Cancel a subscription now."""
    params = read(values, "invoice_now", "prorate", "cancellation_details")
    subscription = account.subscriptions.get(subscription_id)
    if subscription["status"] == "canceled":
        raise StripeError(
            400,
            f"No such subscription: '{subscription_id}' is already canceled.",
            code="resource_missing",
            param="id",
        )
    return respond(account, cancel(account, subscription), params)


@router.get("/v1/invoices/{invoice_id}")
async def retrieve_invoice(invoice_id: str, account: AccountDep, values: RawParams) -> JSONResponse:
    """Retrieve an invoice."""
    params = read(values)
    return respond(account, account.invoices.get(invoice_id), params)


@router.get("/v1/invoices")
async def list_invoices(account: AccountDep, values: RawParams) -> JSONResponse:
    """List invoices, newest first, optionally of one customer, subscription or status."""
    params = read(values, *LIST_PARAMS, "customer", "subscription", "status")
    customer = params.string("customer")
    subscription = params.string("subscription")
    status = params.choice("status", ("draft", "open", "paid", "uncollectible", "void"))
    found = account.invoices.newest_first(
        lambda inv: (
            (customer is None or inv["customer"] == customer)
            and (subscription is None or inv["subscription"] == subscription)
            and (status is None or inv["status"] == status)
        )
    )
    return respond(account, page(found, params, "/v1/invoices"), params)


def _change_items(account: Account, subscription: Object, changes: list[Params]) -> None:
    items: list[Object] = subscription["items"]["data"]
    for change in changes:
        item_id = change.string("id")
        if item_id is not None:
            matches = [item for item in items if item["id"] == item_id]
            if not matches:
                raise StripeError(
                    400,
                    f"No such subscription item: '{item_id}'",
                    code="resource_missing",
                    param=change.name("id"),
                )
            item = matches[0]
            if change.boolean("deleted"):
                items.remove(item)
                continue
        else:
            if not change.has("price"):
                raise missing(change.name("price"))
            first = items[0]
            item = objects.subscription_item(
                subscription_id=subscription["id"],
                price=first["price"],
                quantity=None,
                start=first["current_period_start"],
                end=first["current_period_end"],
            )
            items.append(item)
        price_id = change.string("price")
        if price_id is not None:
            price = account.prices.ref(price_id, change.name("price"))
            if price["recurring"] is None:
                raise StripeError(
                    400,
                    "The price specified is set to `type=one_time` but this field only accepts "
                    "prices with `type=recurring`.",
                    param=change.name("price"),
                )
            item["price"] = price
        quantity = change.integer("quantity", minimum=0)
        metered = item["price"]["recurring"]["usage_type"] == "metered"
        if quantity is not None and metered:
            raise StripeError(
                400,
                "Quantity should not be specified where usage_type is `metered`. "
                f"Remove quantity from `{change.name('quantity')}`.",
                param=change.name("quantity"),
            )
        if quantity is not None:
            item["quantity"] = quantity
        elif metered:
            item["quantity"] = None
        elif item["quantity"] is None:
            item["quantity"] = 1
        item["metadata"] = merge_metadata(item["metadata"], change.metadata())
    if not items:
        raise StripeError(400, "A subscription must keep at least one item.", param="items")
