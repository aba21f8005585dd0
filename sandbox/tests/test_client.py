"""The Python control client against a whole running sandbox: the mailbox and provider controls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib
import pytest
import stripe
from fastapi import FastAPI, Request, Response
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from novitrac_kit.testing.servers import free_port, running
from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.client import SandboxClient, SandboxRequestError
from novitrac_sandbox.config import (
    SANDBOX_ACCOUNT_SID,
    SANDBOX_AUTH_TOKEN,
    SANDBOX_STRIPE_SECRET_KEY,
    SandboxConfig,
)
from novitrac_sandbox.phone import PhoneScript, Utterance
from novitrac_sandbox.sandbox import Sandbox

CALLER = "+12025550143"


@dataclass
class Application:
    """Where the sandbox's webhooks land: what a Novitrac service would be."""

    url: str = ""
    hits: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{hook}")
        async def hook(hook: str, request: Request) -> Response:
            if hook == "stripe":
                self.hits.setdefault(hook, []).append({"body": (await request.body()).decode()})
                return Response("ok")
            form = await request.form()
            self.hits.setdefault(hook, []).append({k: str(v) for k, v in form.items()})
            return Response(
                "<Response><Say>Hello from Novitrac.</Say><Hangup/></Response>",
                media_type="text/xml",
            )

        return app


@pytest.fixture
async def application() -> AsyncIterator[Application]:
    application = Application()
    async with running(application.app()) as url:
        application.url = url
        yield application


@pytest.fixture
async def sandbox(application: Application) -> AsyncIterator[Sandbox]:
    config = SandboxConfig(
        control_port=free_port(),
        twilio_port=free_port(),
        elevenlabs_port=free_port(),
        stripe_port=free_port(),
        smtp_port=free_port(),
        stripe_webhook_url=f"{application.url}/stripe",
    )
    async with Sandbox(config).running() as sandbox:
        yield sandbox


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[SandboxClient]:
    async with SandboxClient(sandbox.control_url) as client:
        yield client


async def send_mail(config: SandboxConfig, to: str, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "no-reply@novitrac.test", to, subject
    message.set_content(body)
    await aiosmtplib.send(message, hostname=config.host, port=config.smtp_port)


async def test_waits_for_the_sign_up_email_and_reads_its_code(
    sandbox: Sandbox, client: SandboxClient
) -> None:
    waiting = asyncio.create_task(client.wait_for_message(to="ada@example.com"))
    await asyncio.sleep(0.2)
    assert not waiting.done()

    await send_mail(sandbox.config, "bob@example.com", "Not Ada's", "Code 000000")
    await send_mail(sandbox.config, "ada@example.com", "Your code", "Code 271828")
    email = await waiting

    assert email.subject == "Your code"
    assert email.text is not None
    assert "271828" in email.text
    assert email.sender == "no-reply@novitrac.test"
    assert (await client.message(email.id)).raw is not None
    assert [m.subject for m in await client.messages(to="bob@example.com")] == ["Not Ada's"]
    assert len(await client.messages()) == 2


async def test_waiting_can_pick_a_later_message_and_gives_up_with_a_clear_error(
    sandbox: Sandbox, client: SandboxClient
) -> None:
    await send_mail(sandbox.config, "ada@example.com", "Welcome", "Hello")
    await send_mail(sandbox.config, "ada@example.com", "Receipt", "Paid")

    welcome = await client.wait_for_message(
        to="ada@example.com", where=lambda m: m.subject == "Welcome"
    )
    assert welcome.text is not None
    assert welcome.text.strip() == "Hello"
    with pytest.raises(TimeoutError, match=r"no email to zoe@example\.com"):
        await client.wait_for_message(to="zoe@example.com", timeout=0.3)


async def test_clearing_the_mailbox(sandbox: Sandbox, client: SandboxClient) -> None:
    await send_mail(sandbox.config, "ada@example.com", "One", ".")

    assert await client.clear_mailbox() == 1
    assert await client.messages() == []


async def test_the_index_through_the_client(sandbox: Sandbox, client: SandboxClient) -> None:
    index = await client.index()

    assert index["smtp"]["port"] == sandbox.config.smtp_port
    assert set(index["providers"]) == set(sandbox.providers)


@pytest.fixture
async def twilio(sandbox: Sandbox) -> AsyncIterator[Client]:
    http_client = AsyncTwilioHttpClient()
    client = Client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, http_client=http_client)
    client.api.base_url = sandbox.config.url(sandbox.config.twilio_port)
    yield client
    await http_client.close()


async def test_twilio_controls_call_and_text_an_owned_number(
    sandbox: Sandbox, client: SandboxClient, twilio: Client, application: Application
) -> None:
    if "twilio" not in sandbox.providers:
        pytest.skip("the Twilio stand-in is not in this build")
    (available,) = await twilio.available_phone_numbers("US").local.list_async(limit=1)
    number = await twilio.incoming_phone_numbers.create_async(
        phone_number=available.phone_number,
        voice_url=f"{application.url}/voice",
        sms_url=f"{application.url}/sms",
    )

    owned = await client.twilio.numbers()
    call = await client.twilio.place_inbound_call(
        from_=CALLER,
        to=number.phone_number,
        script=PhoneScript(utterances=(Utterance("hello", at=0.1),), hang_up_after=1.0),
    )
    texted = await client.twilio.send_sms(from_=CALLER, to=number.phone_number, body="Hi")

    assert [n["phone_number"] for n in owned] == [number.phone_number]
    assert call["from"] == CALLER
    assert texted is not None
    assert application.hits["sms"][0]["Body"] == "Hi"

    async def call_ended() -> bool:
        (latest, *_) = await client.twilio.calls()
        return bool(latest["sid"] == call["sid"] and latest["status"] == "completed")

    await eventually(call_ended)
    assert application.hits["voice"][0]["From"] == CALLER
    assert (await client.twilio.call(call["sid"]))["direction"] == "inbound"
    assert [m["body"] for m in await client.twilio.messages()] == ["Hi"]


async def test_twilio_controls_queue_outcomes_and_report_refusals(
    sandbox: Sandbox, client: SandboxClient
) -> None:
    if "twilio" not in sandbox.providers:
        pytest.skip("the Twilio stand-in is not in this build")
    await client.twilio.set_next_outcome("busy", ring_seconds=0.5)
    await client.twilio.set_next_outcome("answer", script=PhoneScript(hang_up_after=2.0))

    upcoming = await client.twilio.upcoming_outcomes()
    await client.twilio.clear_next_outcomes()

    assert [(u["outcome"], u["ring_seconds"]) for u in upcoming] == [("busy", 0.5), ("answer", 0.2)]
    assert await client.twilio.upcoming_outcomes() == []
    with pytest.raises(SandboxRequestError) as refused:
        await client.twilio.place_inbound_call(from_=CALLER, to="+14155559999")
    assert refused.value.status == 404


async def test_stripe_controls_complete_a_checkout_and_redeliver_its_event(
    sandbox: Sandbox, client: SandboxClient, application: Application
) -> None:
    if "stripe" not in sandbox.providers:
        pytest.skip("the Stripe stand-in is not in this build")
    stripe_client = stripe.StripeClient(
        SANDBOX_STRIPE_SECRET_KEY,
        base_addresses={"api": sandbox.config.url(sandbox.config.stripe_port)},
    )
    customer = await stripe_client.v1.customers.create_async({"email": "ada@example.com"})
    session = await stripe_client.v1.checkout.sessions.create_async(
        {
            "mode": "payment",
            "customer": customer.id,
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 500,
                        "product_data": {"name": "Call credits"},
                    },
                    "quantity": 2,
                }
            ],
            "success_url": "https://app.example/ok",
        }
    )

    await client.stripe.complete_checkout(session.id)

    paid = await stripe_client.v1.checkout.sessions.retrieve_async(session.id)
    assert paid.status == "complete"
    assert [s["id"] for s in await client.stripe.objects("checkout/sessions")] == [session.id]
    (completed,) = [
        e
        for e in await client.stripe.objects("events")
        if e["type"] == "checkout.session.completed"
    ]

    def deliveries_of_completed() -> int:
        return sum(completed["id"] in hit["body"] for hit in application.hits.get("stripe", []))

    async def delivered_once() -> bool:
        return deliveries_of_completed() == 1

    await eventually(delivered_once)
    await client.stripe.redeliver_event(completed["id"])

    async def delivered_twice() -> bool:
        return deliveries_of_completed() == 2

    await eventually(delivered_twice)


async def test_elevenlabs_controls_report_conversations_and_limits(
    sandbox: Sandbox, client: SandboxClient
) -> None:
    if "elevenlabs" not in sandbox.providers:
        pytest.skip("the ElevenLabs stand-in is not in this build")

    limits = await client.elevenlabs.limits()
    conversations = await client.elevenlabs.conversations()

    assert limits["concurrency_per_api_key"] == sandbox.config.elevenlabs_concurrency
    assert conversations in ([], {"conversations": []})


async def test_provider_controls_also_work_without_the_control_app(
    sandbox: Sandbox,
) -> None:
    if "twilio" not in sandbox.providers:
        pytest.skip("the Twilio stand-in is not in this build")
    config = sandbox.config
    async with SandboxClient(
        "http://127.0.0.1:9", twilio_url=config.url(config.twilio_port)
    ) as direct:
        await direct.twilio.set_next_outcome("no-answer")

        assert [u["outcome"] for u in await direct.twilio.upcoming_outcomes()] == ["no-answer"]
