"""Usage billing: ``/v1/billing/meters``, ``/v1/billing/meter_events`` and event summaries.

A meter event is recorded once per ``identifier``: sending the same identifier again is refused
with Stripe's 400 ("An event already exists with identifier …", ``Stripe-Should-Retry: false``),
so usage is never counted twice. Summaries sum the recorded values per customer.
"""

from __future__ import annotations

import time
from decimal import Decimal

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from novitrac_sandbox.stripe import objects
from novitrac_sandbox.stripe.account import Account
from novitrac_sandbox.stripe.errors import StripeError, missing
from novitrac_sandbox.stripe.http import AccountDep, RawParams, read, respond
from novitrac_sandbox.stripe.ids import new_id
from novitrac_sandbox.stripe.params import Params
from novitrac_sandbox.stripe.store import LIST_PARAMS, Object, page

router = APIRouter()

PAST_WINDOW = 35 * 24 * 3600
FUTURE_WINDOW = 5 * 60


@router.post("/v1/billing/meters")
async def create_meter(account: AccountDep, values: RawParams) -> JSONResponse:
    """Create a meter that sums (or counts) the events named ``event_name``."""
    params = read(
        values,
        "display_name",
        "event_name",
        "default_aggregation",
        "customer_mapping",
        "value_settings",
        "event_time_window",
    )
    display_name = params.need("display_name")
    event_name = params.need("event_name")
    aggregation = params.nested("default_aggregation", ("formula",), required=True)
    assert aggregation is not None
    formula = aggregation.choice("formula", ("sum", "count", "last"), required=True) or "sum"
    mapping = params.nested("customer_mapping", ("event_payload_key", "type"))
    value_settings = params.nested("value_settings", ("event_payload_key",))
    if meter_for(account, event_name) is not None:
        raise StripeError(
            400,
            f"A meter with event_name '{event_name}' already exists.",
            code="resource_already_exists",
            param="event_name",
        )
    meter = objects.meter(
        display_name=display_name,
        event_name=event_name,
        formula=formula,
        customer_key=(mapping.string("event_payload_key") if mapping else None)
        or "stripe_customer_id",
        value_key=(value_settings.string("event_payload_key") if value_settings else None)
        or "value",
    )
    account.meters.add(meter)
    return respond(account, meter, params)


@router.get("/v1/billing/meters/{meter_id}")
async def retrieve_meter(meter_id: str, account: AccountDep, values: RawParams) -> JSONResponse:
    """Retrieve a meter."""
    params = read(values)
    return respond(account, account.meters.get(meter_id), params)


@router.get("/v1/billing/meters")
async def list_meters(account: AccountDep, values: RawParams) -> JSONResponse:
    """List meters, newest first."""
    params = read(values, *LIST_PARAMS, "status")
    found = account.meters.newest_first()
    return respond(account, page(found, params, "/v1/billing/meters"), params)


@router.post("/v1/billing/meter_events")
async def create_meter_event(account: AccountDep, values: RawParams) -> JSONResponse:
    """Record usage; refused when its ``identifier`` was seen before."""
    params = read(values, "event_name", "payload", "identifier", "timestamp")
    event_name = params.need("event_name")
    payload = params.metadata("payload")
    if not payload:
        raise missing("payload")
    meter = meter_for(account, event_name)
    customer_key = meter["customer_mapping"]["event_payload_key"] if meter else "stripe_customer_id"
    value_key = meter["value_settings"]["event_payload_key"] if meter else "value"
    if customer_key not in payload:
        raise missing(f"payload[{customer_key}]")
    if meter is not None and meter["default_aggregation"]["formula"] != "count":
        Params(payload, allowed=payload, prefix="payload").decimal(value_key, required=True)
    now = int(time.time())
    timestamp = params.integer("timestamp")
    if timestamp is None:
        timestamp = now
    elif not now - PAST_WINDOW <= timestamp <= now + FUTURE_WINDOW:
        raise StripeError(
            400,
            "Timestamp must be within the past 35 days and not more than 5 minutes in the future.",
            code="parameter_invalid",
            param="timestamp",
        )
    identifier = params.string("identifier") or new_id("", 32)
    if identifier in account.meter_events:
        raise StripeError(
            400,
            f"An event already exists with identifier {identifier}.",
            param="identifier",
            headers={"Stripe-Should-Retry": "false"},
        )
    event = objects.meter_event(
        event_name=event_name, identifier=identifier, payload=payload, timestamp=timestamp
    )
    account.meter_events[identifier] = event
    return respond(account, event, params)


@router.get("/v1/billing/meters/{meter_id}/event_summaries")
async def list_event_summaries(
    meter_id: str, account: AccountDep, values: RawParams
) -> JSONResponse:
    """The meter's aggregated usage of one customer between ``start_time`` and ``end_time``."""
    params = read(
        values, *LIST_PARAMS, "customer", "start_time", "end_time", "value_grouping_window"
    )
    meter = account.meters.get(meter_id)
    customer = params.need("customer")
    start = params.integer("start_time", required=True) or 0
    end = params.integer("end_time", required=True) or 0
    summary = {
        "id": new_id("mtrusg_", 24),
        "object": "billing.meter_event_summary",
        "aggregated_value": float(usage(account, meter, customer, start, end)),
        "end_time": end,
        "livemode": False,
        "meter": meter_id,
        "start_time": start,
    }
    return respond(
        account, page([summary], params, f"/v1/billing/meters/{meter_id}/event_summaries"), params
    )


def meter_for(account: Account, event_name: str) -> Object | None:
    """The meter counting events named ``event_name``, if there is one."""
    found = account.meters.newest_first(lambda m: m["event_name"] == event_name)
    return found[0] if found else None


def usage(account: Account, meter: Object, customer: str, start: int, end: int) -> Decimal:
    """The meter's aggregate for ``customer`` over events stamped in ``[start, end)``."""
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    events = [
        event
        for event in account.meter_events.values()
        if event["event_name"] == meter["event_name"]
        and event["payload"].get(customer_key) == customer
        and start <= event["timestamp"] < end
    ]
    formula = meter["default_aggregation"]["formula"]
    if formula == "count":
        return Decimal(len(events))
    values = [Decimal(event["payload"].get(value_key, "0")) for event in events]
    if formula == "last":
        return values[-1] if values else Decimal(0)
    return sum(values, Decimal(0))
