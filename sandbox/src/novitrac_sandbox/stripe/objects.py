"""The JSON shapes of the Stripe objects the sandbox serves (after Stripe's own fixtures)."""

from __future__ import annotations

import time
from typing import Any

from novitrac_sandbox.stripe.ids import new_id
from novitrac_sandbox.stripe.store import Object


def now() -> int:
    """The current unix time, as Stripe stamps ``created``."""
    return int(time.time())


def empty_address() -> Object:
    """An address with every line unset."""
    keys = ("city", "country", "line1", "line2", "postal_code", "state")
    return dict.fromkeys(keys)


def customer(
    *,
    email: str | None,
    name: str | None,
    phone: str | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Object:
    """A new ``customer``."""
    return {
        "id": new_id("cus_", 14),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": now(),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": description,
        "discount": None,
        "email": email,
        "invoice_prefix": new_id("", 8).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata or {},
        "name": name,
        "next_invoice_sequence": 1,
        "phone": phone,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def product(*, name: str, description: str | None, metadata: dict[str, str] | None) -> Object:
    """A new ``product``."""
    created = now()
    return {
        "id": new_id("prod_", 14),
        "object": "product",
        "active": True,
        "created": created,
        "default_price": None,
        "description": description,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": metadata or {},
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": created,
        "url": None,
    }


def price(
    *,
    product_id: str,
    currency: str,
    unit_amount: int | None,
    unit_amount_decimal: str,
    recurring: Object | None,
    nickname: str | None = None,
    lookup_key: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Object:
    """A new ``price`` (``recurring`` holds interval, interval_count, meter and usage_type)."""
    return {
        "id": new_id("price_", 24),
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": now(),
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": metadata or {},
        "nickname": nickname,
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": unit_amount_decimal,
    }


def recurring(*, interval: str, interval_count: int, usage_type: str, meter: str | None) -> Object:
    """The ``recurring`` part of a price."""
    return {
        "interval": interval,
        "interval_count": interval_count,
        "meter": meter,
        "trial_period_days": None,
        "usage_type": usage_type,
    }


def checkout_session(
    *,
    mode: str,
    url_base: str,
    customer: str | None,
    customer_email: str | None,
    client_reference_id: str | None,
    success_url: str | None,
    cancel_url: str | None,
    metadata: dict[str, str],
    currency: str | None,
    amount_total: int,
) -> Object:
    """A new open ``checkout.session``; its ``url`` is the sandbox's hosted page."""
    session_id = new_id("cs_test_", 58)
    created = now()
    return {
        "id": session_id,
        "object": "checkout.session",
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "automatic_tax": {"enabled": False, "liability": None, "status": None, "provider": None},
        "billing_address_collection": None,
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "client_secret": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer,
        "customer_creation": None if customer else "if_required",
        "customer_details": None,
        "customer_email": customer_email,
        "expires_at": created + 24 * 3600,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "metadata": metadata,
        "mode": mode,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always" if mode == "subscription" else None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": f"{url_base}/checkout/{session_id}",
    }


def payment_intent(
    *, amount: int, currency: str, customer: str | None, metadata: dict[str, str], status: str
) -> Object:
    """A ``payment_intent`` (``status`` ``succeeded`` for a paid checkout)."""
    intent_id = new_id("pi_", 24)
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": amount if status == "succeeded" else 0,
        "application": None,
        "application_fee_amount": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{intent_id}_secret_{new_id('', 24)}",
        "confirmation_method": "automatic",
        "created": now(),
        "currency": currency,
        "customer": customer,
        "description": None,
        "last_payment_error": None,
        "latest_charge": new_id("ch_", 24) if status == "succeeded" else None,
        "livemode": False,
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": new_id("pm_", 24),
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def subscription_item(
    *, subscription_id: str, price: Object, quantity: int | None, start: int, end: int
) -> Object:
    """A ``subscription_item`` (its billing period lives here in recent API versions)."""
    return {
        "id": new_id("si_", 14),
        "object": "subscription_item",
        "created": now(),
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "price": price,
        "quantity": quantity,
        "subscription": subscription_id,
        "tax_rates": [],
    }


def subscription(*, customer: str, currency: str, metadata: dict[str, str], start: int) -> Object:
    """A new active ``subscription`` without items (the caller adds them)."""
    subscription_id = new_id("sub_", 24)
    return {
        "id": subscription_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
        "billing_cycle_anchor": start,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": start,
        "currency": currency,
        "customer": customer,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "items": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={subscription_id}",
        },
        "latest_invoice": None,
        "livemode": False,
        "metadata": metadata,
        "on_behalf_of": None,
        "pause_collection": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": start,
        "status": "active",
        "test_clock": None,
        "trial_end": None,
        "trial_start": None,
    }


def invoice_line(
    *, invoice_id: str, item: Object, amount: int, quantity: int, start: int, end: int
) -> Object:
    """One line of a subscription invoice."""
    price_obj: Object = item["price"]
    return {
        "id": new_id("il_", 24),
        "object": "line_item",
        "amount": amount,
        "currency": price_obj["currency"],
        "description": f"{quantity} x {price_obj['product']}",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": item["subscription"],
                "subscription_item": item["id"],
            },
            "type": "subscription_item_details",
        },
        "period": {"end": end, "start": start},
        "pricing": {
            "type": "price_details",
            "unit_amount_decimal": price_obj["unit_amount_decimal"],
        },
        "quantity": quantity,
        "subtotal": amount,
    }


def invoice(
    *,
    invoice_id: str,
    customer: Object,
    subscription: Object,
    billing_reason: str,
    lines: list[Object],
    period_start: int,
    period_end: int,
) -> Object:
    """A finalized, not yet paid subscription ``invoice``."""
    total = sum(line["amount"] for line in lines)
    created = now()
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Novitrac Sandbox",
        "amount_due": total,
        "amount_paid": 0,
        "amount_remaining": total,
        "amount_shipping": 0,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": subscription["currency"],
        "customer": customer["id"],
        "customer_email": customer["email"],
        "customer_name": customer["name"],
        "description": None,
        "due_date": None,
        "effective_at": created,
        "ending_balance": 0,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}",
        "parent": {
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(subscription["metadata"]),
                "subscription": subscription["id"],
            },
            "type": "subscription_details",
        },
        "period_end": period_end,
        "period_start": period_start,
        "starting_balance": 0,
        "status": "open",
        "status_transitions": {
            "finalized_at": created,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subscription": subscription["id"],
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "total": total,
        "total_discount_amounts": [],
        "total_excluding_tax": total,
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }


def meter(
    *,
    display_name: str,
    event_name: str,
    formula: str,
    customer_key: str,
    value_key: str,
) -> Object:
    """A new active ``billing.meter``."""
    created = now()
    return {
        "id": new_id("mtr_", 24),
        "object": "billing.meter",
        "created": created,
        "customer_mapping": {"event_payload_key": customer_key, "type": "by_id"},
        "default_aggregation": {"formula": formula},
        "display_name": display_name,
        "event_name": event_name,
        "event_time_window": None,
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": created,
        "value_settings": {"event_payload_key": value_key},
    }


def meter_event(
    *, event_name: str, identifier: str, payload: dict[str, str], timestamp: int
) -> Object:
    """A ``billing.meter_event`` (it has no ``id``: ``identifier`` names it)."""
    return {
        "object": "billing.meter_event",
        "created": now(),
        "event_name": event_name,
        "identifier": identifier,
        "livemode": False,
        "payload": payload,
        "timestamp": timestamp,
    }


def deleted(obj: Object) -> dict[str, Any]:
    """The answer to a DELETE."""
    return {"id": obj["id"], "object": obj["object"], "deleted": True}
