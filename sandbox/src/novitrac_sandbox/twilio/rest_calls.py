"""Calls: create (the engine puts them through), fetch, list, update (hang up, cancel, redirect)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request

from novitrac_sandbox.twilio.calls import CALL_PROGRESS_EVENTS, CallInstructions, TwimlSource
from novitrac_sandbox.twilio.engine import CallEngine
from novitrac_sandbox.twilio.errors import invalid, not_found
from novitrac_sandbox.twilio.resources import API_VERSION, Call, new_sid
from novitrac_sandbox.twilio.rest import E164, Form, authenticate, page_of, read_form, require_e164
from novitrac_sandbox.twilio.rest_numbers import check_method, check_url

_ACCOUNT = f"/{API_VERSION}/Accounts/{{account_sid}}"
_CLIENT_OR_SIP = re.compile(r"^(client:[\w.-]+|sip:\S+@\S+)$")


def _seconds(form: Form, name: str, default: float, highest: float) -> float:
    value = form.get(name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise invalid(20001, f"{name} must be a number of seconds") from None
    if not 0 < seconds <= highest:
        raise invalid(20001, f"{name} must be between 1 and {highest:g}")
    return seconds


def _source(form: Form) -> TwimlSource | None:
    twiml = form.get("Twiml")
    url = form.get("Url")
    method = check_method(form.get("Method") or "POST")
    if twiml:
        return TwimlSource(twiml=twiml)
    if url:
        return TwimlSource(url=check_url(url), method=method)
    return None


def instructions_from(form: Form) -> CallInstructions:
    """The call's instructions from a create request.

    Raises:
        TwilioApiError: 21205 without a TwiML source, 20001 for a bad option.
    """
    if form.get("ApplicationSid"):
        raise invalid(20001, "ApplicationSid is not supported by the sandbox; use Url or Twiml")
    source = _source(form)
    if source is None:
        raise invalid(21205, "Url parameter is required")
    events = frozenset(form.all("StatusCallbackEvent")) or frozenset({"completed"})
    unknown = events - set(CALL_PROGRESS_EVENTS)
    if unknown:
        raise invalid(20001, f"StatusCallbackEvent must be among {CALL_PROGRESS_EVENTS}")
    detection = form.get("MachineDetection")
    if detection not in {None, "Enable", "DetectMessageEnd"}:
        raise invalid(20001, "MachineDetection must be Enable or DetectMessageEnd")
    return CallInstructions(
        source=source,
        status_callback=check_url(form.get("StatusCallback") or "") or None,
        status_callback_method=check_method(form.get("StatusCallbackMethod") or "POST"),
        status_callback_events=events,
        timeout=_seconds(form, "Timeout", 60.0, 600.0),
        time_limit=_seconds(form, "TimeLimit", 14400.0, 86400.0),
        machine_detection=detection,
        async_amd=(form.get("AsyncAmd") or "").lower() == "true",
        async_amd_status_callback=check_url(form.get("AsyncAmdStatusCallback") or "") or None,
        async_amd_status_callback_method=check_method(
            form.get("AsyncAmdStatusCallbackMethod") or "POST"
        ),
    )


def calls_router(engine: CallEngine, accounts: Mapping[str, str]) -> APIRouter:
    """The call routes, putting calls through ``engine``."""
    router = APIRouter()
    store = engine.store

    def owned(account_sid: str, sid: str, request: Request) -> Call:
        call = store.calls.get(sid)
        if call is None or call.account_sid != account_sid:
            raise not_found(request.url.path)
        return call

    @router.post(_ACCOUNT + "/Calls.json", status_code=201)
    async def create_call(account_sid: str, request: Request) -> dict[str, Any]:
        token = authenticate(request, account_sid, accounts)
        form = await read_form(request)
        to = form.get("To")
        if not to:
            raise invalid(21201, "No 'To' number is specified")
        if not (E164.match(to) or _CLIENT_OR_SIP.match(to)):
            raise invalid(21211, f"Invalid 'To' Phone Number: {to}")
        from_ = require_e164(
            form.get("From"),
            missing=(21213, "No 'From' number is specified"),
            bad=(21212, "Invalid 'From' Phone Number: {value}"),
        )
        number = store.number_by_phone(from_)
        if number is None or number.account_sid != account_sid:
            raise invalid(
                21210,
                f"The source phone number provided, {from_}, is not yet verified for your "
                "account. You may only make calls from phone numbers that you've verified or "
                "purchased from Twilio.",
            )
        instructions = instructions_from(form)
        call = Call(
            sid=new_sid("CA"), account_sid=account_sid, to=to, from_=from_, direction="outbound-api"
        )
        behaviour = engine.switchboard.behaviour_for(to)
        engine.start(call, instructions, behaviour, token)
        return call.to_json()

    @router.get(_ACCOUNT + "/Calls.json")
    async def list_calls(account_sid: str, request: Request) -> dict[str, Any]:
        authenticate(request, account_sid, accounts)
        query = request.query_params
        wanted = {
            "to": query.get("To"),
            "from_": query.get("From"),
            "status": query.get("Status"),
            "parent_call_sid": query.get("ParentCallSid"),
        }
        records = [
            call.to_json()
            for call in reversed(store.calls.values())
            if call.account_sid == account_sid
            and all(v is None or getattr(call, k) == v for k, v in wanted.items())
        ]
        return page_of(request, "calls", records)

    @router.get(_ACCOUNT + "/Calls/{sid}.json")
    async def fetch_call(account_sid: str, sid: str, request: Request) -> dict[str, Any]:
        authenticate(request, account_sid, accounts)
        return owned(account_sid, sid, request).to_json()

    @router.post(_ACCOUNT + "/Calls/{sid}.json")
    async def update_call(account_sid: str, sid: str, request: Request) -> dict[str, Any]:
        authenticate(request, account_sid, accounts)
        call = owned(account_sid, sid, request)
        form = await read_form(request)
        run = engine.runs.get(call.sid)
        status = form.get("Status")
        source = _source(form)
        if status not in {None, "completed", "canceled"}:
            raise invalid(20001, "Status must be completed or canceled")
        if status is None and source is None:
            raise invalid(20001, "Nothing to update: give Status, Url or Twiml")
        if call.is_final or run is None:
            raise invalid(21220, "Call is not in-progress. Cannot redirect.")
        if status == "completed" or (status == "canceled" and call.status != "in-progress"):
            run.hang_up("api")
            await engine.settle(run)
        elif source is not None:
            if call.status == "in-progress":
                run.redirect(source)
            else:
                run.instructions.source = source
        return call.to_json()

    return router
