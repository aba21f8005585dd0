"""Paying for calls, through the gateway only: trial credit, a credit pack bought through the
sandbox's Stripe Checkout, calls charged per the plan, the low-balance warning, suspension at zero,
and reinstatement by a payment.

Short calls are real: placed through ``POST /v1/calls`` (or rung in through the sandbox), answered
by the sandbox's phone, bridged to the agent, and hung up by the phone two seconds in. Long calls
would take as long as they last, so they end here the way telephony reports them: a
``telephony.call.ended.v1`` published on the platform's bus, which is what billing charges from.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.telephony import CallDirection, CallEnded, CallStatus
from novitrac_kit.bus.rabbitmq import RabbitBus
from novitrac_kit.service import discover
from novitrac_kit.testing.waiting import eventually

from .conftest import Platform
from .test_journey import WAIT, Account, LiveFeed, live_feed, sign_up

OWNER = "lovelace@example.com"
CALLEE = "+14155550123"
"""Answers, and hangs up two seconds later."""
BUSY_CALLEE = "+14155550188"
"""Always busy: a call to it costs nothing, wherever it is placed."""
CALLER = "+14155550177"

# The free plan, as seeded: per started minute, a minute at least, 15¢ out and 10¢ in; warned at
# $2.00 and under.
TRIAL_CREDIT = 500
PACK = 2000
SHORT_OUTBOUND = 15
SHORT_INBOUND = 10


@pytest.fixture
async def telephony_bus(amqp_url: str, unique_name: str) -> AsyncIterator[RabbitBus]:
    """A connection to the platform's bus (the fixture's exchanges), to publish as telephony."""
    bus = RabbitBus(
        amqp_url,
        connection_name=f"{unique_name}-telephony-stand-in",
        exchange=f"{unique_name}.events",
        live_exchange=f"{unique_name}.live",
        dead_letter_exchange=f"{unique_name}.dlx",
    )
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


class Customer:
    """A new organisation's owner at the dashboard, and the phones its calls reach."""

    def __init__(
        self,
        platform: Platform,
        account: Account,
        http: httpx.AsyncClient,
        bus: RabbitBus,
        platform_name: str,
    ) -> None:
        self.platform = platform
        self.platform_name = platform_name
        self.account = account
        self.http = http
        self.bus = bus
        self.org_id = uuid.UUID(account.org_id)
        self.agent_id = ""
        self.number_id = ""
        self.phone_number = ""
        self.charged: dict[str, int] = {}
        """What each call cost, by call id, as the test expects it."""
        config = platform.sandbox.config
        self.twilio = httpx.AsyncClient(
            base_url=f"{config.url(config.twilio_port)}/_sandbox", timeout=10.0
        )
        self.stripe = httpx.AsyncClient(
            base_url=f"{config.url(config.stripe_port)}/_sandbox", timeout=10.0
        )

    async def billing_account(self) -> dict[str, Any]:
        response = await self.http.get("/v1/billing/account")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_for_balance(self, expected: int) -> dict[str, Any]:
        """The account once its balance is ``expected``."""
        seen: dict[str, Any] = {}

        async def reached() -> bool:
            seen.update(await self.billing_account())
            return bool(seen["balance"] == expected)

        try:
            await eventually(reached)
        except AssertionError:
            entries = [(e["kind"], e["amount"], e["description"]) for e in await self.ledger()]
            raise AssertionError(f"balance {seen['balance']}, not {expected}: {entries}") from None
        return seen

    async def ledger(self) -> list[dict[str, Any]]:
        """Every ledger entry, oldest first, read a few at a time."""
        entries: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 3}
        while True:
            response = await self.http.get("/v1/billing/ledger", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            entries.extend(page["items"])
            if page["next_cursor"] is None:
                return entries[::-1]
            params["cursor"] = page["next_cursor"]

    async def buy_credit_pack(self, code: str) -> dict[str, Any]:
        """Check out a credit pack and pay on the sandbox's hosted page, as a shopper does."""
        created = await self.http.post(
            "/v1/billing/checkout", json={"kind": "credit_pack", "credit_pack": code}
        )
        assert created.status_code == 201, created.text
        checkout: dict[str, Any] = created.json()
        async with httpx.AsyncClient(timeout=10.0) as browser:
            page = await browser.get(checkout["url"])
            assert page.status_code == 200, page.text
            paid = await browser.post(f"{checkout['url']}/pay", data={"card": "4242424242424242"})
            assert paid.status_code == 200, paid.text
            assert paid.json()["payment_status"] == "paid"
        return checkout

    async def set_up_calling(self) -> None:
        """A synced agent and a number it answers; the phones called behave as their names say."""
        created = await self.http.post(
            "/v1/agents",
            json={
                "name": "Reminders",
                "prompt": "Remind the customer of their appointment.",
                "first_message": "Hello, this is your reminder.",
            },
        )
        assert created.status_code == 201, created.text
        self.agent_id = str(created.json()["id"])

        async def synced() -> bool:
            agent = (await self.http.get(f"/v1/agents/{self.agent_id}")).json()
            return bool(agent["sync_status"] == "synced")

        await eventually(synced)
        offered = await self.http.get("/v1/numbers/available")
        assert offered.status_code == 200, offered.text
        bought = await self.http.post(
            "/v1/numbers",
            json={"phone_number": offered.json()[0]["phone_number"], "agent_id": self.agent_id},
        )
        assert bought.status_code == 201, bought.text
        self.number_id = str(bought.json()["id"])
        self.phone_number = str(bought.json()["phone_number"])
        for number, behaviour in [
            (CALLEE, {"outcome": "answer", "script": {"hang_up_after": 2.0}}),
            (BUSY_CALLEE, {"outcome": "busy"}),
        ]:
            answer = await self.twilio.put(f"/phones/{number}", json=behaviour)
            assert answer.status_code == 200, answer.text

    async def place_call(self, to: str = CALLEE) -> httpx.Response:
        return await self.http.post(
            "/v1/calls",
            json={"agent_id": self.agent_id, "to": to, "from_number_id": self.number_id},
        )

    async def ring_in(self) -> str:
        """A caller rings the organisation's number and hangs up two seconds after the answer."""
        answer = await self.twilio.post(
            "/inbound",
            json={"from": CALLER, "to": self.phone_number, "script": {"hang_up_after": 2.0}},
        )
        assert answer.status_code == 201, answer.text
        found: list[str] = []

        async def listed() -> bool:
            response = await self.http.get("/v1/calls", params={"direction": "inbound"})
            assert response.status_code == 200, response.text
            found[:] = [call["id"] for call in response.json()["items"]]
            return bool(found)

        await eventually(listed)
        return found[0]

    async def charged_call(self, call_id: str, cost: int) -> dict[str, Any]:
        """The call's page once it shows what billing charged for it (expected: ``cost``)."""
        self.charged[call_id] = cost
        seen: dict[str, Any] = {}

        async def costed() -> bool:
            response = await self.http.get(f"/v1/calls/{call_id}")
            assert response.status_code == 200, response.text
            seen.update(response.json())
            return seen["cost"] is not None

        await eventually(costed)
        return seen

    async def end_call(
        self, duration_s: int, cost: int, direction: CallDirection = CallDirection.OUTBOUND
    ) -> None:
        """Telephony's report of a finished call of ``duration_s`` seconds (costing ``cost``)."""
        ended_at = datetime.now(UTC)
        event = CallEnded(
            call_id=uuid.uuid4(),
            org_id=self.org_id,
            agent_id=uuid.UUID(self.agent_id),
            phone_number_id=uuid.UUID(self.number_id),
            direction=direction,
            status=CallStatus.COMPLETED,
            duration_s=duration_s,
            started_at=ended_at - timedelta(seconds=duration_s),
            ended_at=ended_at,
        )
        await self.bus.publish(Envelope.wrap(event, producer="telephony"))
        self.charged[str(event.call_id)] = cost

    async def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every attempt the sandbox's Stripe made to deliver an event to the gateway."""
        response = await self.stripe.get("/deliveries")
        assert response.status_code == 200, response.text
        attempts: list[dict[str, Any]] = response.json()["data"]
        return attempts

    async def dead_letters(self) -> list[str]:
        """The events any service's queue gave up on, with why."""
        letters: list[str] = []
        for service in discover().values():
            if service.handlers.event_types:
                queue = f"{service.name}-{self.platform_name}"
                dead = await self.bus.dead_letters(queue)
                letters += [f"{queue}: {letter.routing_key}: {letter.reason}" for letter in dead]
        return letters

    def emails(self, containing: str) -> list[str]:
        """The texts of the emails to the owner that contain ``containing``."""
        messages = self.platform.mailbox.messages(to=self.account.email)
        return [m.text or "" for m in messages if containing in (m.text or "")]


async def pushed(feed: LiveFeed, matching: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first event pushed on the socket that ``matching`` accepts, waiting for it."""
    async with asyncio.timeout(WAIT):
        while True:
            for event in feed.events:
                if matching(event):
                    return event
            await asyncio.sleep(0.02)


def notice(kind: str) -> Callable[[dict[str, Any]], bool]:
    """Matches the in-app notification of ``kind``."""
    return lambda event: bool(
        event["type"] == "notifications.notification.created.v1" and event["data"]["kind"] == kind
    )


@pytest.fixture
async def customer(
    whole_platform: Platform, telephony_bus: RabbitBus, unique_name: str
) -> AsyncIterator[Customer]:
    """A new organisation's owner, signed up through the gateway."""
    account = await sign_up(whole_platform, OWNER, "Difference Engines")
    async with whole_platform.client(account.access_token) as http:
        customer = Customer(whole_platform, account, http, telephony_bus, unique_name)
        try:
            yield customer
        finally:
            await customer.twilio.aclose()
            await customer.stripe.aclose()


async def test_an_organisation_pays_for_its_calls_is_stopped_at_zero_and_reinstated(
    customer: Customer,
) -> None:
    platform, http = customer.platform, customer.http

    # A new organisation starts on the free plan with its trial credit.
    async def opened() -> bool:
        return (await http.get("/v1/billing/account")).status_code == 200

    await eventually(opened)
    account = await customer.billing_account()
    assert (account["plan"]["code"], account["standing"]) == ("free", "active")
    assert (account["balance"], account["currency"]) == (TRIAL_CREDIT, "USD")
    [trial] = await customer.ledger()
    assert (trial["kind"], trial["amount"], trial["balance_after"]) == ("trial_credit", 500, 500)

    await customer.set_up_calling()
    async with live_feed(platform, customer.account.access_token) as feed:
        # A $20 credit pack through Stripe Checkout; the signed webhook reaches billing.
        checkout = await customer.buy_credit_pack("credits_20")
        assert (checkout["amount"], checkout["currency"]) == (2000, "USD")
        balance = TRIAL_CREDIT + PACK
        await customer.wait_for_balance(balance)
        receipt = await platform.email_to(OWNER, containing="credit pack purchase")
        assert "$20.00" in (receipt.text or "")
        receipts = (await customer.http.get("/v1/billing/receipts")).json()["items"]
        assert [(r["kind"], r["reference"], r["amount"]) for r in receipts] == [
            ("credit_pack", checkout["id"], 2000)
        ]
        await pushed(feed, notice("billing.payment.succeeded"))

        # Real calls, charged per the plan: two seconds are billed as the plan's minute.
        placed = await customer.place_call()
        assert placed.status_code == 201, placed.text
        outbound = await customer.charged_call(placed.json()["id"], SHORT_OUTBOUND)
        assert outbound["status"] == "completed"
        assert outbound["cost"] == {
            "amount": SHORT_OUTBOUND,
            "currency": "USD",
            "billed_seconds": 60,
            "rate_per_minute": 15,
        }
        balance -= SHORT_OUTBOUND
        await customer.wait_for_balance(balance)
        inbound = await customer.charged_call(await customer.ring_in(), SHORT_INBOUND)
        assert (inbound["direction"], inbound["cost"]["amount"]) == ("inbound", SHORT_INBOUND)
        balance -= SHORT_INBOUND
        await customer.wait_for_balance(balance)

        # Long calls, as telephony reports them: per started minute.
        for duration, cost in [(61, 30), (149 * 60, 2235)]:
            await customer.end_call(duration, cost)
            balance -= cost
            await customer.wait_for_balance(balance)
        assert balance == 210
        calls = [e for e in await customer.ledger() if e["kind"] == "call"]
        assert [e["amount"] for e in calls] == [-15, -10, -30, -2235]
        assert customer.emails("low-balance mark") == []

        # At or under the $2.00 low-water mark: one warning, by email and in the app.
        for duration, cost in [(45, 15), (300, 75)]:
            await customer.end_call(duration, cost)
            balance -= cost
            await customer.wait_for_balance(balance)
        warning = await platform.email_to(OWNER, containing="low-balance mark")
        assert "$1.95" in (warning.text or "")
        low = await pushed(feed, notice("billing.balance.low"))
        assert low["data"]["link"] == "/billing/top-up"

        # At zero the account is suspended, and telephony refuses a new call.
        await customer.end_call(600, 150)
        balance -= 150
        suspended = await pushed(feed, lambda e: e["type"] == "billing.account.suspended.v1")
        assert suspended["data"]["reason"] == "insufficient_balance"
        assert balance == -30
        account = await customer.wait_for_balance(balance)
        assert (account["standing"], account["suspension_reason"]) == (
            "suspended",
            "insufficient_balance",
        )
        await platform.email_to(OWNER, containing="New calls are stopped")

        async def refused() -> bool:
            # Telephony learns of the suspension from the bus; until then a call to the busy
            # phone may still be admitted (and costs nothing), or refused for the low balance.
            response = await customer.place_call(BUSY_CALLEE)
            return response.status_code == 402 and "suspended" in response.text

        await eventually(refused)
        refusal = await customer.place_call()
        assert refusal.status_code == 402, refusal.text
        assert refusal.json()["error"]["code"] == "payment_required"

        # A payment reinstates it, and calls are accepted again.
        await customer.buy_credit_pack("credits_20")
        balance += PACK
        reinstated = await pushed(feed, lambda e: e["type"] == "billing.account.reinstated.v1")
        assert reinstated["data"]["reason"] == "payment_received"
        account = await customer.wait_for_balance(balance)
        assert (account["standing"], account["suspension_reason"]) == ("active", None)
        await platform.email_to(OWNER, containing="New calls are allowed again")

        attempts: list[httpx.Response] = []

        async def accepted() -> bool:
            attempts.append(await customer.place_call())
            return attempts[-1].status_code == 201

        await eventually(accepted)
        assert {r.status_code for r in attempts[:-1]} <= {402}, [r.text for r in attempts]
        again = await customer.charged_call(attempts[-1].json()["id"], SHORT_OUTBOUND)
        assert again["cost"]["amount"] == SHORT_OUTBOUND
        balance -= SHORT_OUTBOUND
        await customer.wait_for_balance(balance)

        # Crossing the mark once sent one warning, whatever followed.
        assert len(customer.emails("low-balance mark")) == 1
        assert len([e for e in feed.events if notice("billing.balance.low")(e)]) == 1

    # Every call was charged once, as its own ledger entry, and the ledger adds up.
    entries = await customer.ledger()
    calls = [e for e in entries if e["kind"] == "call"]
    assert {e["reference"]: -e["amount"] for e in calls} == customer.charged
    assert len(calls) == len(customer.charged)
    running = 0
    for entry in entries:
        running += entry["amount"]
        assert entry["balance_after"] == running
    assert running == balance
    usage = await http.get("/v1/billing/usage", params={"by": "number"})
    assert usage.status_code == 200, usage.text
    [by_number] = usage.json()["data"]
    assert (by_number["key"], by_number["amount"]) == (
        customer.number_id,
        sum(customer.charged.values()),
    )
    # Calls to the busy phone, if telephony admitted any before it heard of the suspension,
    # count as calls that cost nothing.
    assert by_number["calls"] >= len(customer.charged)
    assert await customer.dead_letters() == []
    deliveries = await customer.webhook_deliveries()
    assert [d for d in deliveries if not d["succeeded"]] == []
