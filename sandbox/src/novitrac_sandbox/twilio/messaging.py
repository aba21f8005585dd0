"""SMS: outbound messages go queued → sent → delivered, with their status callbacks.

Inbound ones are posted to the receiving number's ``SmsUrl``; ``<Message>`` replies in its TwiML
are sent back.
"""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ElementTree
from typing import Any

from novitrac_sandbox.twilio.resources import (
    API_VERSION,
    Message,
    PhoneNumber,
    TwilioStore,
    new_sid,
)
from novitrac_sandbox.twilio.webhooks import WebhookSender

STEP_SECONDS = 0.05


class MessageCenter:
    """Moves messages along and talks to the application's SMS webhooks."""

    def __init__(self, *, store: TwilioStore, sender: WebhookSender) -> None:
        self.store = store
        self.sender = sender
        self._tasks: set[asyncio.Task[None]] = set()

    def send(
        self,
        message: Message,
        *,
        auth_token: str,
        status_callback: str | None = None,
        status_callback_method: str = "POST",
    ) -> None:
        """Deliver an outbound ``message`` in the background, reporting each step if asked."""
        self.store.messages[message.sid] = message
        task = asyncio.create_task(
            self._deliver(message, auth_token, status_callback, status_callback_method)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, message: Message, auth_token: str, callback: str | None, method: str
    ) -> None:
        for status in ("sent", "delivered"):
            await asyncio.sleep(STEP_SECONDS)
            message.set_status(status)
            if callback:
                await self.sender.send(
                    url=callback,
                    params=[
                        ("AccountSid", message.account_sid),
                        ("ApiVersion", API_VERSION),
                        ("From", message.from_),
                        ("MessageSid", message.sid),
                        ("MessageStatus", status),
                        ("SmsSid", message.sid),
                        ("SmsStatus", status),
                        ("To", message.to),
                    ],
                    auth_token=auth_token,
                    method=method,
                )

    async def receive(
        self, *, from_: str, number: PhoneNumber, body: str, auth_token: str
    ) -> dict[str, Any]:
        """An SMS from ``from_`` arrives on ``number``: request its ``SmsUrl``, send any replies.

        Returns:
            the inbound message, the webhook's HTTP status and the replies sent.
        """
        message = Message(
            sid=new_sid("SM"),
            account_sid=number.account_sid,
            to=number.phone_number,
            from_=from_,
            body=body,
            direction="inbound",
            status="received",
        )
        message.set_status("received")
        self.store.messages[message.sid] = message
        outcome: dict[str, Any] = {"message": message.to_json(), "http_status": None, "replies": []}
        if not number.sms_url:
            return outcome
        response = await self.sender.send(
            url=number.sms_url,
            params=[
                ("AccountSid", message.account_sid),
                ("ApiVersion", API_VERSION),
                ("Body", body),
                ("From", from_),
                ("MessageSid", message.sid),
                ("NumMedia", "0"),
                ("NumSegments", "1"),
                ("SmsMessageSid", message.sid),
                ("SmsSid", message.sid),
                ("SmsStatus", "received"),
                ("To", number.phone_number),
            ],
            auth_token=auth_token,
            method=number.sms_method,
        )
        if response is None:
            return outcome
        outcome["http_status"] = response.status_code
        replies: list[str] = []
        with contextlib.suppress(ElementTree.ParseError):
            root = ElementTree.fromstring(response.text)
            replies = [
                "".join(element.itertext()).strip() for element in root if element.tag == "Message"
            ]
        for text in replies:
            reply = Message(
                sid=new_sid("SM"),
                account_sid=number.account_sid,
                to=from_,
                from_=number.phone_number,
                body=text,
                direction="outbound-reply",
                status="queued",
            )
            self.send(reply, auth_token=auth_token)
            outcome["replies"].append(reply.to_json())
        return outcome

    async def close(self) -> None:
        """Stop delivering."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
