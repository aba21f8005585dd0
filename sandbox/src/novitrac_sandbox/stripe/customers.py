"""``/v1/customers``: create, retrieve, update, delete, list (filtered by ``email``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from novitrac_sandbox.stripe import objects
from novitrac_sandbox.stripe.account import Account
from novitrac_sandbox.stripe.errors import no_such
from novitrac_sandbox.stripe.http import AccountDep, RawParams, read, respond
from novitrac_sandbox.stripe.params import merge_metadata
from novitrac_sandbox.stripe.store import LIST_PARAMS, Object, page

router = APIRouter()

_FIELDS = ("email", "name", "phone", "description")


@router.post("/v1/customers")
async def create_customer(account: AccountDep, values: RawParams) -> JSONResponse:
    """Create a customer."""
    params = read(values, *_FIELDS, "metadata")
    customer = objects.customer(
        email=params.string("email"),
        name=params.string("name"),
        phone=params.string("phone"),
        description=params.string("description"),
        metadata=params.metadata(),
    )
    account.customers.add(customer)
    account.webhooks.emit("customer.created", customer)
    return respond(account, customer, params)


@router.get("/v1/customers/{customer_id}")
async def retrieve_customer(
    customer_id: str, account: AccountDep, values: RawParams
) -> JSONResponse:
    """Retrieve a customer."""
    params = read(values)
    customer = account.customers.get(customer_id)
    if customer.get("deleted"):
        return JSONResponse(objects.deleted(customer))
    return respond(account, customer, params)


@router.post("/v1/customers/{customer_id}")
async def update_customer(customer_id: str, account: AccountDep, values: RawParams) -> JSONResponse:
    """Update a customer's fields and metadata (an empty value unsets a metadata key)."""
    params = read(values, *_FIELDS, "metadata")
    customer = _live(account, customer_id)
    previous = {key: customer[key] for key in (*_FIELDS, "metadata") if params.has(key)}
    for key in _FIELDS:
        if params.has(key):
            customer[key] = params.string(key)
    customer["metadata"] = merge_metadata(customer["metadata"], params.metadata())
    account.webhooks.emit("customer.updated", customer, previous=previous)
    return respond(account, customer, params)


@router.delete("/v1/customers/{customer_id}")
async def delete_customer(customer_id: str, account: AccountDep, values: RawParams) -> JSONResponse:
    """Delete a customer (later retrievals answer ``deleted: true``)."""
    read(values)
    customer = _live(account, customer_id)
    customer["deleted"] = True
    account.webhooks.emit("customer.deleted", customer)
    return JSONResponse(objects.deleted(customer))


@router.get("/v1/customers")
async def list_customers(account: AccountDep, values: RawParams) -> JSONResponse:
    """List customers, newest first, optionally only those with one ``email``."""
    params = read(values, *LIST_PARAMS, "email", "created")
    email = params.string("email")
    found = account.customers.newest_first(
        lambda c: not c.get("deleted") and (email is None or c["email"] == email)
    )
    return respond(account, page(found, params, "/v1/customers"), params)


def _live(account: Account, customer_id: str) -> Object:
    customer = account.customers.get(customer_id)
    if customer.get("deleted"):
        raise no_such("customer", customer_id)
    return customer
