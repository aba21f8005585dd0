"""The Stripe stand-in: the REST v1 subset at the root, a hosted checkout page, signed webhooks.

Aim the SDK at it with ``stripe.StripeClient(key, base_addresses={"api": base_url})``. Keys are
``config.stripe_secret_keys``; events go to ``config.stripe_webhook_url`` signed with
``config.stripe_webhook_secret``.

Stripe API (``Authorization: Bearer sk_…``; form bodies with bracket syntax; ``Idempotency-Key``
replay; ``expand[]``; lists take ``limit``, ``starting_after``, ``ending_before``):
    /v1/customers                       POST, GET (?email=); /{id} GET, POST, DELETE
    /v1/products                        POST, GET; /{id} GET
    /v1/prices                          POST, GET (?product=, ?type=); /{id} GET
    /v1/checkout/sessions               POST, GET; /{id} GET; /{id}/line_items GET;
                                        /{id}/expire POST
    /v1/payment_intents/{id}            GET (created by payment-mode checkouts)
    /v1/subscriptions                   GET (?customer=, ?status=); /{id} GET, POST, DELETE (cancel)
    /v1/invoices                        GET (?customer=, ?subscription=, ?status=); /{id} GET
    /v1/billing/meters                  POST, GET; /{id} GET; /{id}/event_summaries GET
    /v1/billing/meter_events            POST (deduplicated by ``identifier``)
    /v1/events                          GET (?type=, ``*`` suffix allowed); /{id} GET

Hosted checkout (a session's ``url``; no key):
    GET  /checkout/{session_id}          the page: Pay, Pay with a declined card, Cancel
    POST /checkout/{session_id}/pay      form ``card=declined`` to decline; JSON session or redirect
    POST /checkout/{session_id}/cancel   expires the session; JSON session or redirect

Sandbox controls (JSON, no key):
    GET  /_sandbox/customers | /checkout/sessions | /subscriptions | /invoices | /events
    GET  /_sandbox/meter_events          recorded usage
    GET  /_sandbox/deliveries[?event_id=]  webhook attempts: event_id, type, attempt, url, status,
                                          error, at, succeeded
    GET  /_sandbox/webhooks              {"url", "holding", "held": [event ids]}
    PUT  /_sandbox/webhooks              body {"url": "http://…"|null}: change the endpoint
    POST /_sandbox/checkout/sessions/{id}/pay     body {"declined": false}: complete a checkout
    POST /_sandbox/checkout/sessions/{id}/cancel  abandon it (expired)
    POST /_sandbox/customers/{id}/card            body {"declines": true}: renewals then fail
    POST /_sandbox/subscriptions/{id}/renew       body {"outcome": "paid"|"failed"|null}: next
                                                  period and its invoice (or the end of a
                                                  subscription set to cancel at period end)
    POST /_sandbox/invoices/{id}/pay              collect an open (failed) invoice
    POST /_sandbox/events/{id}/redeliver          send an event again
    POST /_sandbox/webhooks/hold                  keep new events back
    POST /_sandbox/webhooks/release               send the held events in order, stop holding
    POST /_sandbox/events/deliver                 body {"event_ids": [..]|null (held), "reverse":
                                                  false, "times": 1}: send now, in that order,
                                                  each ``times`` times
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from novitrac_sandbox.config import SandboxConfig
from novitrac_sandbox.phone import PhoneBook
from novitrac_sandbox.stripe import (
    catalog,
    checkout,
    control,
    customers,
    events,
    hosted_page,
    metering,
    subscriptions,
)
from novitrac_sandbox.stripe.account import Account
from novitrac_sandbox.stripe.auth import authenticate
from novitrac_sandbox.stripe.errors import StripeError, render
from novitrac_sandbox.stripe.idempotency import IdempotencyMiddleware
from novitrac_sandbox.stripe.webhooks import DEFAULT_RETRY_DELAYS

API_ROUTERS = (
    customers.router,
    catalog.router,
    checkout.router,
    subscriptions.router,
    metering.router,
    events.router,
)


def create_app(
    config: SandboxConfig,
    phones: PhoneBook,
    *,
    webhook_retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
) -> FastAPI:
    """The Stripe stand-in as an ASGI app (webhook delivery runs in its lifespan).

    Args:
        config: keys, webhook URL and secret.
        phones: unused by Stripe (every provider app takes the same arguments).
        webhook_retry_delays: seconds before each retry of a failed webhook delivery.
    """
    del phones
    account = Account(
        webhook_url=config.stripe_webhook_url,
        webhook_secret=config.stripe_webhook_secret,
        retry_delays=webhook_retry_delays,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        delivery = asyncio.create_task(account.webhooks.run())
        try:
            yield
        finally:
            delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await delivery

    app = FastAPI(title="Stripe sandbox", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.stripe = account
    app.state.stripe_keys = config.stripe_secret_keys
    app.add_exception_handler(StripeError, render)
    app.add_exception_handler(HTTPException, _unrecognized)
    app.add_exception_handler(RequestValidationError, _invalid_control_body)
    app.add_exception_handler(Exception, _internal_error)
    for router in API_ROUTERS:
        app.include_router(router, dependencies=[Depends(authenticate)])
    app.include_router(hosted_page.router)
    app.include_router(control.router)
    app.add_middleware(IdempotencyMiddleware)
    return app


async def _unrecognized(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code not in (404, 405):
        return JSONResponse(
            {"error": {"type": "api_error", "message": str(exc.detail)}}, exc.status_code
        )
    error = StripeError(
        404,
        f"Unrecognized request URL ({request.method}: {request.url.path}). Please see "
        "https://stripe.com/docs or we can help at https://support.stripe.com/.",
    )
    return JSONResponse(error.body(), status_code=404)


async def _invalid_control_body(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    error = StripeError(400, f"Invalid request body: {exc.errors()}")
    return JSONResponse(error.body(), status_code=400)


async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
    error = StripeError(500, f"The sandbox failed: {type(exc).__name__}: {exc}", type="api_error")
    return JSONResponse(error.body(), status_code=500)
