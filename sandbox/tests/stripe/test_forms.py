"""Stripe's bracket form encoding decodes into the nested params Stripe reads."""

from __future__ import annotations

import pytest

from novitrac_sandbox.stripe.errors import StripeError
from novitrac_sandbox.stripe.forms import decode


def test_nested_objects_and_indexed_lists() -> None:
    body = (
        "mode=subscription&metadata[tenant_id]=t1&line_items[0][price]=price_a"
        "&line_items[0][quantity]=2&line_items[1][price_data][product_data][name]=Calls"
    )

    assert decode(body) == {
        "mode": "subscription",
        "metadata": {"tenant_id": "t1"},
        "line_items": [
            {"price": "price_a", "quantity": "2"},
            {"price_data": {"product_data": {"name": "Calls"}}},
        ],
    }


def test_appended_lists_and_empty_values() -> None:
    assert decode("expand[]=customer&expand[]=subscription&description=") == {
        "expand": ["customer", "subscription"],
        "description": "",
    }


def test_indices_beyond_ten_keep_numeric_order() -> None:
    body = "&".join(f"items[{i}]=v{i}" for i in range(12))

    assert decode(body)["items"] == [f"v{i}" for i in range(12)]


@pytest.mark.parametrize(
    "body",
    ["metadata[a=1", "a=1&a[b]=2", "a[b]=1&a=2", "a=1&a=2", "no-equals-sign", "]x=1"],
)
def test_malformed_bodies_are_refused_with_stripes_error(body: str) -> None:
    with pytest.raises(StripeError) as raised:
        decode(body)

    assert raised.value.status == 400
    assert raised.value.body()["error"]["type"] == "invalid_request_error"
