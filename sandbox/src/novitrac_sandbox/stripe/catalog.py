"""``/v1/products`` and ``/v1/prices``: what is sold, once or recurring (licensed or metered)."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from novitrac_sandbox.stripe import objects
from novitrac_sandbox.stripe.account import Account
from novitrac_sandbox.stripe.errors import StripeError, missing
from novitrac_sandbox.stripe.http import AccountDep, RawParams, read, respond
from novitrac_sandbox.stripe.params import Params
from novitrac_sandbox.stripe.store import LIST_PARAMS, Object, page

router = APIRouter()

INTERVALS = ("day", "week", "month", "year")
PRICE_DATA_FIELDS = (
    "currency",
    "unit_amount",
    "unit_amount_decimal",
    "product",
    "product_data",
    "recurring",
)


@router.post("/v1/products")
async def create_product(account: AccountDep, values: RawParams) -> JSONResponse:
    """Create a product."""
    params = read(values, "name", "description", "metadata", "active")
    product = objects.product(
        name=params.need("name"),
        description=params.string("description"),
        metadata=params.metadata(),
    )
    account.products.add(product)
    return respond(account, product, params)


@router.get("/v1/products/{product_id}")
async def retrieve_product(product_id: str, account: AccountDep, values: RawParams) -> JSONResponse:
    """Retrieve a product."""
    params = read(values)
    return respond(account, account.products.get(product_id), params)


@router.get("/v1/products")
async def list_products(account: AccountDep, values: RawParams) -> JSONResponse:
    """List products, newest first."""
    params = read(values, *LIST_PARAMS, "active")
    return respond(account, page(account.products.newest_first(), params, "/v1/products"), params)


@router.post("/v1/prices")
async def create_price(account: AccountDep, values: RawParams) -> JSONResponse:
    """Create a price of an existing product (``product``) or a new one (``product_data``)."""
    params = read(values, *PRICE_DATA_FIELDS, "nickname", "lookup_key", "metadata", "active")
    price = build_price(account, params)
    account.prices.add(price)
    return respond(account, price, params)


@router.get("/v1/prices/{price_id}")
async def retrieve_price(price_id: str, account: AccountDep, values: RawParams) -> JSONResponse:
    """Retrieve a price."""
    params = read(values)
    return respond(account, account.prices.get(price_id), params)


@router.get("/v1/prices")
async def list_prices(account: AccountDep, values: RawParams) -> JSONResponse:
    """List prices, newest first, optionally of one ``product`` or ``type``."""
    params = read(values, *LIST_PARAMS, "product", "active", "type", "currency")
    product = params.string("product")
    kind = params.choice("type", ("one_time", "recurring"))
    found = account.prices.newest_first(
        lambda p: (
            (product is None or p["product"] == product) and (kind is None or p["type"] == kind)
        )
    )
    return respond(account, page(found, params, "/v1/prices"), params)


def build_price(account: Account, params: Params) -> Object:
    """A price from ``params`` (a ``/v1/prices`` body or a ``price_data``), not yet kept."""
    currency = params.need("currency").lower()
    product_id = _product_of(account, params)
    amount, amount_decimal = _amount(params)
    recurring = params.nested("recurring", ("interval", "interval_count", "usage_type", "meter"))
    recurring_obj: Object | None = None
    if recurring is not None:
        interval = recurring.choice("interval", INTERVALS, required=True) or "month"
        usage_type = recurring.choice("usage_type", ("licensed", "metered")) or "licensed"
        meter = recurring.string("meter")
        if meter is not None:
            account.meters.ref(meter, recurring.name("meter"))
        if usage_type == "metered" and meter is None:
            raise missing(recurring.name("meter"))
        recurring_obj = objects.recurring(
            interval=interval,
            interval_count=recurring.integer("interval_count", minimum=1) or 1,
            usage_type=usage_type,
            meter=meter,
        )
    return objects.price(
        product_id=product_id,
        currency=currency,
        unit_amount=amount,
        unit_amount_decimal=amount_decimal,
        recurring=recurring_obj,
        nickname=params.string("nickname") if params.has("nickname") else None,
        lookup_key=params.string("lookup_key") if params.has("lookup_key") else None,
        metadata=params.metadata() if params.has("metadata") else None,
    )


def _product_of(account: Account, params: Params) -> str:
    product_id = params.string("product")
    if product_id is not None:
        account.products.ref(product_id, params.name("product"))
        return product_id
    product_data = params.nested("product_data", ("name", "description", "metadata"))
    if product_data is None:
        raise missing(params.name("product"))
    product = objects.product(
        name=product_data.need("name"),
        description=product_data.string("description"),
        metadata=product_data.metadata(),
    )
    account.products.add(product)
    return str(product["id"])


def _amount(params: Params) -> tuple[int | None, str]:
    amount = params.integer("unit_amount", minimum=0)
    decimal = params.decimal("unit_amount_decimal")
    if amount is not None and decimal is not None:
        raise StripeError(
            400,
            "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
            code="parameter_invalid_empty",
            param=params.name("unit_amount_decimal"),
        )
    if amount is not None:
        return amount, str(amount)
    if decimal is not None:
        if decimal < 0:
            raise StripeError(
                400,
                "Invalid unit_amount_decimal: must be at least 0",
                code="parameter_invalid",
                param=params.name("unit_amount_decimal"),
            )
        whole = int(decimal) if decimal == decimal.to_integral_value() else None
        return whole, _plain(decimal)
    raise missing(params.name("unit_amount"))


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
