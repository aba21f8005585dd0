"""A small async client of the sandbox's controls, for tests and scripts.

::

    async with SandboxClient("http://127.0.0.1:8100") as sandbox:
        email = await sandbox.wait_for_message(to="ada@example.com")
        await sandbox.twilio.set_next_outcome("busy")
        await sandbox.stripe.complete_checkout(session_id)

Provider controls go through the control app's forwarding (``/{provider}/_sandbox/...``) unless a
provider's own address is given. Provider answers are returned as decoded JSON; their shapes are
documented in each provider's ``app`` module.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import httpx

from novitrac_sandbox.phone import PhoneScript
from novitrac_sandbox.smtp.mailbox import Message


class SandboxRequestError(Exception):
    """The sandbox refused a control request.

    Attributes:
        status: the HTTP status.
        body: the response body (JSON when it was JSON, else text).
    """

    def __init__(self, method: str, url: str, status: int, body: Any) -> None:
        """Describe the refused request."""
        super().__init__(f"{method} {url} -> {status}: {body}")
        self.status = status
        self.body = body


class _Controls:
    """Requests to one base address, JSON in and out, errors raised."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        url = f"{self._base_url}{path}"
        response = await self._http.request(method, url, json=json, params=params)
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        if response.is_error:
            raise SandboxRequestError(method, url, response.status_code, body)
        return body


def script_json(script: PhoneScript) -> dict[str, Any]:
    """The JSON form of a :class:`PhoneScript` that the Twilio controls accept."""
    return dataclasses.asdict(script)


class TwilioControls:
    """The Twilio stand-in's ``/_sandbox`` routes."""

    def __init__(self, controls: _Controls) -> None:
        """Use ``controls`` (a base address ending in ``/_sandbox``)."""
        self._controls = controls

    async def calls(self) -> list[dict[str, Any]]:
        """Every call, newest first, with its timeline, callbacks and media statistics."""
        answer = await self._controls.request("GET", "/calls")
        calls: list[dict[str, Any]] = answer["calls"]
        return calls

    async def call(self, sid: str, *, audio: bool = False) -> dict[str, Any]:
        """One call; with ``audio`` also the audio the phone received and heard (base64 μ-law)."""
        params = {"audio": "true"} if audio else None
        call: dict[str, Any] = await self._controls.request("GET", f"/calls/{sid}", params=params)
        return call

    async def hang_up(self, sid: str) -> dict[str, Any]:
        """The far phone of call ``sid`` hangs up now."""
        call: dict[str, Any] = await self._controls.request("POST", f"/calls/{sid}/hangup")
        return call

    async def set_next_outcome(
        self,
        outcome: str = "answer",
        *,
        ring_seconds: float | None = None,
        script: PhoneScript | None = None,
    ) -> None:
        """Queue how the next outbound call's phone behaves.

        Args:
            outcome: ``answer``, ``machine``, ``busy``, ``no-answer`` or ``failed``.
            ring_seconds: how long it rings first (default: the sandbox's).
            script: what the person on the phone does once answered.
        """
        await self._controls.request(
            "POST", "/next-outcome", json=_behaviour(outcome, ring_seconds, script)
        )

    async def upcoming_outcomes(self) -> list[dict[str, Any]]:
        """The queued outcomes, next first."""
        answer = await self._controls.request("GET", "/next-outcome")
        upcoming: list[dict[str, Any]] = answer["upcoming"]
        return upcoming

    async def clear_next_outcomes(self) -> None:
        """Forget the queued outcomes."""
        await self._controls.request("DELETE", "/next-outcome")

    async def set_phone(
        self,
        number: str,
        outcome: str = "answer",
        *,
        ring_seconds: float | None = None,
        script: PhoneScript | None = None,
    ) -> None:
        """How calls to ``number`` behave whenever no outcome is queued."""
        await self._controls.request(
            "PUT", f"/phones/{number}", json=_behaviour(outcome, ring_seconds, script)
        )

    async def forget_phone(self, number: str) -> None:
        """Drop the behaviour set for ``number``."""
        await self._controls.request("DELETE", f"/phones/{number}")

    async def place_inbound_call(
        self, *, from_: str, to: str, script: PhoneScript | None = None
    ) -> dict[str, Any]:
        """Call the owned number ``to`` from ``from_``; its ``VoiceUrl`` takes the call."""
        body: dict[str, Any] = {"from": from_, "to": to}
        if script is not None:
            body["script"] = script_json(script)
        call: dict[str, Any] = await self._controls.request("POST", "/inbound", json=body)
        return call

    async def send_sms(self, *, from_: str, to: str, body: str) -> dict[str, Any]:
        """Text the owned number ``to``; its ``SmsUrl`` receives it."""
        answer: dict[str, Any] = await self._controls.request(
            "POST", "/sms", json={"from": from_, "to": to, "body": body}
        )
        return answer

    async def messages(self) -> list[dict[str, Any]]:
        """Every SMS, both ways, newest first."""
        answer = await self._controls.request("GET", "/messages")
        messages: list[dict[str, Any]] = answer["messages"]
        return messages

    async def numbers(self) -> list[dict[str, Any]]:
        """Every owned phone number."""
        answer = await self._controls.request("GET", "/numbers")
        numbers: list[dict[str, Any]] = answer["numbers"]
        return numbers


def _behaviour(
    outcome: str, ring_seconds: float | None, script: PhoneScript | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"outcome": outcome}
    if ring_seconds is not None:
        body["ring_seconds"] = ring_seconds
    if script is not None:
        body["script"] = script_json(script)
    return body


class ElevenLabsControls:
    """The ElevenLabs stand-in's ``/_sandbox`` routes."""

    def __init__(self, controls: _Controls) -> None:
        """Use ``controls`` (a base address ending in ``/_sandbox``)."""
        self._controls = controls

    async def conversations(self) -> Any:
        """Every conversation, newest first, with transcript and webhook deliveries."""
        return await self._controls.request("GET", "/conversations")

    async def conversation(self, conversation_id: str) -> Any:
        """One conversation."""
        return await self._controls.request("GET", f"/conversations/{conversation_id}")

    async def limits(self) -> Any:
        """The concurrency limit per API key and the conversations open per key."""
        return await self._controls.request("GET", "/limits")


class StripeControls:
    """The Stripe stand-in's ``/_sandbox`` routes."""

    def __init__(self, controls: _Controls) -> None:
        """Use ``controls`` (a base address ending in ``/_sandbox``)."""
        self._controls = controls

    async def objects(self, kind: str) -> list[dict[str, Any]]:
        """Every object of a kind, newest first.

        Args:
            kind: ``customers``, ``checkout/sessions``, ``subscriptions``, ``invoices``,
                ``events`` or ``meter_events``.
        """
        answer = await self._controls.request("GET", f"/{kind}")
        data: list[dict[str, Any]] = answer["data"]
        return data

    async def complete_checkout(self, session_id: str, *, declined: bool = False) -> Any:
        """Pay a checkout session as the shopper would (``declined``: with a declined card)."""
        return await self._controls.request(
            "POST", f"/checkout/sessions/{session_id}/pay", json={"declined": declined}
        )

    async def cancel_checkout(self, session_id: str) -> Any:
        """Abandon a checkout session (it expires)."""
        return await self._controls.request("POST", f"/checkout/sessions/{session_id}/cancel")

    async def set_card_declines(self, customer_id: str, declines: bool = True) -> Any:
        """Make the customer's card decline (renewals then fail) or work again."""
        return await self._controls.request(
            "POST", f"/customers/{customer_id}/card", json={"declines": declines}
        )

    async def renew_subscription(self, subscription_id: str, outcome: str | None = None) -> Any:
        """Move a subscription to its next period (``outcome``: ``paid``, ``failed``, or None)."""
        return await self._controls.request(
            "POST", f"/subscriptions/{subscription_id}/renew", json={"outcome": outcome}
        )

    async def pay_invoice(self, invoice_id: str) -> Any:
        """Collect an open (failed) invoice."""
        return await self._controls.request("POST", f"/invoices/{invoice_id}/pay")

    async def redeliver_event(self, event_id: str) -> Any:
        """Send an event to the webhook endpoint again."""
        return await self._controls.request("POST", f"/events/{event_id}/redeliver")

    async def deliver_events(
        self, event_ids: list[str] | None = None, *, reverse: bool = False, times: int = 1
    ) -> Any:
        """Send events now (None: the held ones), in order or ``reverse``, each ``times`` times."""
        return await self._controls.request(
            "POST",
            "/events/deliver",
            json={"event_ids": event_ids, "reverse": reverse, "times": times},
        )

    async def hold_webhooks(self) -> Any:
        """Keep new events back until :meth:`release_webhooks` (to deliver them late)."""
        return await self._controls.request("POST", "/webhooks/hold")

    async def release_webhooks(self) -> Any:
        """Send the held events in order and stop holding."""
        return await self._controls.request("POST", "/webhooks/release")

    async def deliveries(self, event_id: str | None = None) -> Any:
        """Webhook delivery attempts (of one event when given)."""
        params = {"event_id": event_id} if event_id else None
        return await self._controls.request("GET", "/deliveries", params=params)


class SandboxClient:
    """The sandbox's controls over HTTP: the mailbox, and each provider's ``/_sandbox`` routes.

    Attributes:
        twilio: calls, phone behaviours, inbound calls and SMS.
        elevenlabs: conversations and concurrency.
        stripe: checkouts, renewals, webhook deliveries.
    """

    def __init__(
        self,
        control_url: str,
        *,
        twilio_url: str | None = None,
        elevenlabs_url: str | None = None,
        stripe_url: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Talk to the control app at ``control_url``.

        Args:
            control_url: the control app's base address.
            twilio_url: the Twilio stand-in's base address (default: through the control app).
            elevenlabs_url: likewise for ElevenLabs.
            stripe_url: likewise for Stripe.
            timeout: seconds allowed per request.
        """
        self.control_url = control_url.rstrip("/")
        self._http = httpx.AsyncClient(timeout=timeout)
        self._mailbox = _Controls(self._http, f"{self.control_url}/mailbox")
        self._control = _Controls(self._http, self.control_url)
        self.twilio = TwilioControls(self._provider("twilio", twilio_url))
        self.elevenlabs = ElevenLabsControls(self._provider("elevenlabs", elevenlabs_url))
        self.stripe = StripeControls(self._provider("stripe", stripe_url))

    def _provider(self, name: str, url: str | None) -> _Controls:
        base = f"{url.rstrip('/')}/_sandbox" if url else f"{self.control_url}/{name}/_sandbox"
        return _Controls(self._http, base)

    async def __aenter__(self) -> Self:
        """Use as ``async with``; the connections close on exit."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the connections."""
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def index(self) -> dict[str, Any]:
        """What runs where, with credentials (the control app's JSON index)."""
        index: dict[str, Any] = await self._control.request("GET", "/")
        return index

    async def messages(self, *, to: str | None = None) -> list[Message]:
        """The emails received, newest first; only those to ``to`` when given."""
        params = {"to": to} if to is not None else None
        listed = await self._mailbox.request("GET", "/messages", params=params)
        return [Message.model_validate(item) for item in listed]

    async def message(self, message_id: str) -> Message:
        """One email, its raw source included."""
        return Message.model_validate(await self._mailbox.request("GET", f"/messages/{message_id}"))

    async def wait_for_message(
        self,
        *,
        to: str,
        timeout: float = 10.0,  # noqa: ASYNC109 - the deadline of a poll, not of one await
        where: Callable[[Message], bool] | None = None,
    ) -> Message:
        """The newest email to ``to`` (matching ``where``), waiting for it to arrive.

        Raises:
            TimeoutError: none arrived within ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for message in await self.messages(to=to):
                if where is None or where(message):
                    return message
            if loop.time() > deadline:
                raise TimeoutError(f"no email to {to} within {timeout} s")
            await asyncio.sleep(0.05)

    async def clear_mailbox(self) -> int:
        """Delete every email; return how many there were."""
        answer = await self._mailbox.request("DELETE", "/messages")
        deleted: int = answer["deleted"]
        return deleted
