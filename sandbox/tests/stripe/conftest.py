"""A running Stripe sandbox, the official SDK aimed at it, and a webhook endpoint that records."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from novitrac_kit.testing.servers import running
from novitrac_sandbox.config import (
    SANDBOX_STRIPE_SECRET_KEY,
    SANDBOX_STRIPE_WEBHOOK_SECRET,
    SandboxConfig,
)
from novitrac_sandbox.phone import PhoneBook
from novitrac_sandbox.stripe.app import create_app

FAST_RETRIES = (0.05, 0.1, 0.2)


@dataclass
class Delivery:
    """One webhook POST as the endpoint received it."""

    body: bytes
    signature: str

    def event(self) -> dict[str, Any]:
        """The posted event, parsed."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class WebhookEndpoint:
    """Records every POST; answers 500 to the first ``failures`` of them."""

    url: str = ""
    failures: int = 0
    received: list[Delivery] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.received.append(
                Delivery(await request.body(), request.headers.get("stripe-signature", ""))
            )
            if self.failures > 0:
                self.failures -= 1
                return Response("try again", status_code=500)
            return Response("ok")

        return Starlette(routes=[Route("/webhooks", receive, methods=["POST"])])

    def types(self) -> list[str]:
        """The types of the events received, in arrival order."""
        return [delivery.event()["type"] for delivery in self.received]

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        """The received events of one type."""
        return [d.event() for d in self.received if d.event()["type"] == event_type]


@dataclass
class Sandbox:
    """The Stripe sandbox under test."""

    url: str
    client: stripe.StripeClient
    control: httpx.AsyncClient
    endpoint: WebhookEndpoint


@pytest.fixture
async def endpoint() -> AsyncIterator[WebhookEndpoint]:
    """A webhook endpoint on a real socket."""
    hook = WebhookEndpoint()
    async with running(hook.app()) as url:
        hook.url = f"{url}/webhooks"
        yield hook


@pytest.fixture
async def sandbox(endpoint: WebhookEndpoint) -> AsyncIterator[Sandbox]:
    """The Stripe sandbox on a real socket, posting its webhooks to ``endpoint``."""
    config = SandboxConfig(stripe_webhook_url=endpoint.url)
    app = create_app(config, PhoneBook(), webhook_retry_delays=FAST_RETRIES)
    async with running(app) as url, httpx.AsyncClient(base_url=url) as control:
        client = stripe.StripeClient(SANDBOX_STRIPE_SECRET_KEY, base_addresses={"api": url})
        yield Sandbox(url, client, control, endpoint)


def untyped(params: dict[str, Any]) -> Any:
    """Params the SDK's types would refuse, sent anyway to see the API refuse them."""
    return params


def verify(delivery: Delivery) -> stripe.Event:
    """The event, accepted by the SDK's signature check (raises if the signature is wrong)."""
    event: stripe.Event = stripe.Webhook.construct_event(
        delivery.body, delivery.signature, SANDBOX_STRIPE_WEBHOOK_SECRET
    )
    return event
