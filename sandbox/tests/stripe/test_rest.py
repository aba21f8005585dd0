"""Customers, products and prices through the official SDK; Stripe's errors for bad requests."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

import httpx
import pytest
import stripe

from novitrac_sandbox.config import SANDBOX_STRIPE_SECRET_KEY

from .conftest import Sandbox, untyped


async def test_customers_are_created_retrieved_updated_and_listed(sandbox: Sandbox) -> None:
    customers = sandbox.client.v1.customers
    created = await customers.create_async(
        {"email": "ada@example.com", "name": "Ada", "metadata": {"tenant_id": "t1"}}
    )

    assert re.fullmatch(r"cus_[A-Za-z0-9]{14}", created.id)
    assert created.object == "customer"
    assert created.livemode is False
    assert created.metadata is not None
    assert created.metadata.to_dict() == {"tenant_id": "t1"}

    updated = await customers.update_async(
        created.id, {"name": "Ada L.", "metadata": {"plan": "pro", "tenant_id": ""}}
    )
    assert updated.name == "Ada L."
    assert updated.metadata is not None
    assert updated.metadata.to_dict() == {"plan": "pro"}

    fetched = await customers.retrieve_async(created.id)
    assert fetched.email == "ada@example.com"
    assert fetched.name == "Ada L."

    await customers.create_async({"email": "bob@example.com"})
    by_email = await customers.list_async({"email": "ada@example.com"})
    assert [c.id for c in by_email.data] == [created.id]


async def test_lists_page_with_limit_and_starting_after(sandbox: Sandbox) -> None:
    customers = sandbox.client.v1.customers
    ids = [(await customers.create_async({"name": f"c{i}"})).id for i in range(5)]

    first = await customers.list_async({"limit": 2})
    assert first["object"] == "list"
    assert first.url == "/v1/customers"
    assert first.has_more is True
    assert [c.id for c in first.data] == [ids[4], ids[3]]

    second = await customers.list_async({"limit": 2, "starting_after": ids[3]})
    assert [c.id for c in second.data] == [ids[2], ids[1]]

    every = [c.id async for c in first.auto_paging_iter()]
    assert every == list(reversed(ids))


async def test_products_and_prices_one_off_and_recurring(sandbox: Sandbox) -> None:
    v1 = sandbox.client.v1
    product = await v1.products.create_async({"name": "Pro plan"})
    monthly = await v1.prices.create_async(
        {
            "product": product.id,
            "currency": "usd",
            "unit_amount": 2900,
            "recurring": {"interval": "month"},
        }
    )
    credits = await v1.prices.create_async(
        {
            "product_data": {"name": "Credits"},
            "currency": "EUR",
            "unit_amount_decimal": Decimal("0.5"),
        }
    )

    assert product.id.startswith("prod_")
    assert monthly.id.startswith("price_")
    assert monthly.type == "recurring"
    assert monthly.recurring is not None
    assert monthly.recurring.interval == "month"
    assert monthly.recurring.usage_type == "licensed"
    assert monthly.unit_amount == 2900
    assert credits.type == "one_time"
    assert credits.currency == "eur"
    assert credits.unit_amount is None
    assert credits.unit_amount_decimal == Decimal("0.5")
    assert (await v1.products.retrieve_async(str(credits.product))).name == "Credits"

    expanded = await v1.prices.retrieve_async(monthly.id, {"expand": ["product"]})
    assert isinstance(expanded.product, stripe.Product)
    assert expanded.product.name == "Pro plan"

    of_product = await v1.prices.list_async({"product": product.id})
    assert [p.id for p in of_product.data] == [monthly.id]


async def test_a_wrong_or_missing_key_is_refused_with_401(sandbox: Sandbox) -> None:
    wrong = stripe.StripeClient("sk_test_wrong_key_123456", base_addresses={"api": sandbox.url})

    with pytest.raises(stripe.AuthenticationError) as raised:
        await wrong.v1.customers.list_async()
    assert raised.value.http_status == 401
    assert "Invalid API Key" in str(raised.value.user_message)

    anonymous = await sandbox.control.get("/v1/customers")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "invalid_request_error"

    basic = await sandbox.control.get("/v1/customers", auth=(SANDBOX_STRIPE_SECRET_KEY, ""))
    assert basic.status_code == 200


async def test_missing_param_unknown_param_and_unknown_id(sandbox: Sandbox) -> None:
    v1 = sandbox.client.v1

    with pytest.raises(stripe.InvalidRequestError) as missing:
        await v1.prices.create_async({"currency": "usd", "unit_amount": 100})
    assert missing.value.http_status == 400
    assert missing.value.param == "product"
    assert missing.value.code == "parameter_missing"

    with pytest.raises(stripe.InvalidRequestError) as unknown_param:
        await v1.customers.create_async(untyped({"emial": "typo@example.com"}))
    assert unknown_param.value.param == "emial"

    with pytest.raises(stripe.InvalidRequestError) as unknown_id:
        await v1.customers.retrieve_async("cus_nope")
    assert unknown_id.value.http_status == 404
    assert unknown_id.value.code == "resource_missing"
    assert unknown_id.value.param == "id"

    with pytest.raises(stripe.InvalidRequestError) as bad_integer:
        await v1.prices.create_async(
            untyped({"currency": "usd", "unit_amount": "ten", "product_data": {"name": "x"}})
        )
    assert bad_integer.value.param == "unit_amount"

    still_there = await v1.customers.create_async({"name": "after the errors"})
    assert still_there.id.startswith("cus_")


async def test_malformed_bodies_and_unknown_urls_get_stripes_error_shape(
    sandbox: Sandbox,
) -> None:
    headers = {
        "Authorization": f"Bearer {SANDBOX_STRIPE_SECRET_KEY}",
        "Content-Type": "application/x-www-form-urlencoded",
    }

    for body in (b"metadata[tenant=1", b"name=a&name=b", b"\xff\xfe"):
        response = await sandbox.control.post("/v1/customers", content=body, headers=headers)
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"

    nowhere = await sandbox.control.get("/v1/nothing_here", headers=headers)
    assert nowhere.status_code == 404
    assert "Unrecognized request URL" in nowhere.json()["error"]["message"]

    assert (await sandbox.control.get("/v1/customers", headers=headers)).status_code == 200


async def test_an_idempotency_key_replays_the_first_answer(sandbox: Sandbox) -> None:
    customers = sandbox.client.v1.customers
    options: stripe.RequestOptions = {"idempotency_key": "signup-42"}

    first = await customers.create_async({"email": "once@example.com"}, options)
    again = await customers.create_async({"email": "once@example.com"}, options)

    assert again.id == first.id
    assert again.last_response is not None
    assert again.last_response.headers.get("idempotent-replayed") == "true"
    assert len((await customers.list_async({"email": "once@example.com"})).data) == 1

    with pytest.raises(stripe.IdempotencyError) as conflict:
        await customers.create_async({"email": "other@example.com"}, options)
    assert conflict.value.http_status == 400
    assert conflict.value.error is not None
    assert conflict.value.error.type == "idempotency_error"


async def test_idempotency_keys_are_kept_per_api_key_and_not_for_failures(
    sandbox: Sandbox,
) -> None:
    customers = sandbox.client.v1.customers
    options: stripe.RequestOptions = {"idempotency_key": "retry-after-fix"}

    with pytest.raises(stripe.InvalidRequestError):
        await customers.create_async(untyped({"emial": "x@example.com"}), options)
    fixed = await customers.create_async({"email": "x@example.com"}, options)

    assert fixed.email == "x@example.com"


async def test_concurrent_requests_are_all_served(sandbox: Sandbox) -> None:
    headers = {"Authorization": f"Bearer {SANDBOX_STRIPE_SECRET_KEY}"}
    async with httpx.AsyncClient(base_url=sandbox.url, headers=headers) as http:
        responses = await asyncio.gather(
            *(http.post("/v1/customers", data={"name": f"n{i}"}) for i in range(20))
        )

    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["id"] for r in responses}) == 20
    listed = await sandbox.client.v1.customers.list_async({"limit": 100})
    assert len(listed.data) == 20


async def test_a_deleted_customer_is_gone(sandbox: Sandbox) -> None:
    customers = sandbox.client.v1.customers
    customer = await customers.create_async({"email": "gone@example.com"})

    deleted = await customers.delete_async(customer.id)

    assert deleted.deleted is True
    assert (await customers.retrieve_async(customer.id)).to_dict().get("deleted") is True
    assert (await customers.list_async()).data == []
    with pytest.raises(stripe.InvalidRequestError) as raised:
        await customers.update_async(customer.id, {"name": "zombie"})
    assert raised.value.http_status == 404
