"""Messages: create (SMS from an owned number), fetch, list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request

from novitrac_sandbox.twilio.errors import invalid, not_found
from novitrac_sandbox.twilio.messaging import MessageCenter
from novitrac_sandbox.twilio.resources import API_VERSION, Message, new_sid
from novitrac_sandbox.twilio.rest import authenticate, page_of, read_form, require_e164
from novitrac_sandbox.twilio.rest_numbers import check_method, check_url

_ACCOUNT = f"/{API_VERSION}/Accounts/{{account_sid}}"
MAX_BODY = 1600


def messages_router(center: MessageCenter, accounts: Mapping[str, str]) -> APIRouter:
    """The message routes, sending through ``center``."""
    router = APIRouter()
    store = center.store

    @router.post(_ACCOUNT + "/Messages.json", status_code=201)
    async def create_message(account_sid: str, request: Request) -> dict[str, Any]:
        token = authenticate(request, account_sid, accounts)
        form = await read_form(request)
        to = require_e164(
            form.get("To"),
            missing=(21604, "A 'To' phone number is required."),
            bad=(21211, "The 'To' number {value} is not a valid phone number."),
        )
        service = form.get("MessagingServiceSid")
        from_ = form.get("From")
        if from_ is None and service is None:
            raise invalid(21603, "A 'From' phone number is required.")
        if from_ is not None:
            number = store.number_by_phone(from_)
            if number is None or number.account_sid != account_sid:
                raise invalid(
                    21606,
                    f"The From phone number {from_} is not a valid, SMS-capable inbound phone "
                    "number or short code for your account.",
                )
        body = form.get("Body") or ""
        media = form.all("MediaUrl")
        if not body and not media:
            raise invalid(21602, "Message body is required.")
        if len(body) > MAX_BODY:
            raise invalid(21617, "The concatenated message body exceeds the 1600 character limit.")
        message = Message(
            sid=new_sid("SM"),
            account_sid=account_sid,
            to=to,
            from_=from_ or "",
            body=body,
            direction="outbound-api",
            status="queued",
            messaging_service_sid=service,
            num_media=len(media),
        )
        center.send(
            message,
            auth_token=token,
            status_callback=check_url(form.get("StatusCallback") or "") or None,
            status_callback_method=check_method(form.get("StatusCallbackMethod") or "POST"),
        )
        return message.to_json()

    @router.get(_ACCOUNT + "/Messages.json")
    async def list_messages(account_sid: str, request: Request) -> dict[str, Any]:
        authenticate(request, account_sid, accounts)
        to, from_ = request.query_params.get("To"), request.query_params.get("From")
        records = [
            message.to_json()
            for message in reversed(store.messages.values())
            if message.account_sid == account_sid
            and (to is None or message.to == to)
            and (from_ is None or message.from_ == from_)
        ]
        return page_of(request, "messages", records)

    @router.get(_ACCOUNT + "/Messages/{sid}.json")
    async def fetch_message(account_sid: str, sid: str, request: Request) -> dict[str, Any]:
        authenticate(request, account_sid, accounts)
        message = store.messages.get(sid)
        if message is None or message.account_sid != account_sid:
            raise not_found(request.url.path)
        return message.to_json()

    return router
