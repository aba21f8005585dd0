"""The Twilio half of the sandbox controls (``/_sandbox/...``): see :mod:`.app` for the routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from novitrac_sandbox.twilio.calls import CallInstructions, TwimlSource
from novitrac_sandbox.twilio.engine import CallEngine
from novitrac_sandbox.twilio.messaging import MessageCenter
from novitrac_sandbox.twilio.outcomes import BehaviourIn, PhoneBehaviour, ScriptIn
from novitrac_sandbox.twilio.resources import Call, PhoneNumber, new_sid

E164_PATTERN = r"^\+[1-9]\d{1,14}$"


class InboundCallIn(BaseModel):
    """A call from ``from_`` (a virtual phone following ``script``) to an owned number ``to``."""

    from_: str = Field(alias="from", pattern=E164_PATTERN)
    to: str = Field(pattern=E164_PATTERN)
    script: ScriptIn = ScriptIn()


class InboundSmsIn(BaseModel):
    """An SMS from ``from_`` to an owned number ``to``."""

    from_: str = Field(alias="from", pattern=E164_PATTERN)
    to: str = Field(pattern=E164_PATTERN)
    body: str = Field(min_length=1, max_length=1600)


def control_router(
    engine: CallEngine, center: MessageCenter, accounts: dict[str, str]
) -> APIRouter:
    """The ``/_sandbox`` routes for calls, phone behaviours, inbound calls and SMS."""
    router = APIRouter(prefix="/_sandbox")
    store, switchboard = engine.store, engine.switchboard

    def owned_number(phone_number: str) -> PhoneNumber:
        number = store.number_by_phone(phone_number)
        if number is None:
            raise HTTPException(404, f"No account owns {phone_number}")
        return number

    @router.get("/calls")
    async def list_calls() -> dict[str, Any]:
        return {"calls": [run.to_json(detail=False) for run in reversed(engine.runs.values())]}

    @router.get("/calls/{sid}")
    async def get_call(sid: str, audio: bool = False) -> dict[str, Any]:
        run = engine.runs.get(sid)
        if run is None:
            raise HTTPException(404, f"No call {sid}")
        return run.to_json(audio=audio)

    @router.post("/calls/{sid}/hangup")
    async def phone_hangs_up(sid: str) -> dict[str, Any]:
        run = engine.runs.get(sid)
        if run is None:
            raise HTTPException(404, f"No call {sid}")
        run.hang_up("phone")
        await engine.settle(run)
        return run.to_json()

    @router.get("/next-outcome")
    async def upcoming() -> dict[str, Any]:
        return {"upcoming": [behaviour.to_json() for behaviour in switchboard.upcoming]}

    @router.post("/next-outcome")
    async def queue_outcome(behaviour: BehaviourIn) -> dict[str, Any]:
        switchboard.upcoming.append(behaviour.to_behaviour())
        return {"queued": len(switchboard.upcoming)}

    @router.delete("/next-outcome")
    async def clear_outcomes() -> dict[str, Any]:
        switchboard.upcoming.clear()
        return {"queued": 0}

    @router.put("/phones/{number}")
    async def set_phone(number: str, behaviour: BehaviourIn) -> dict[str, Any]:
        switchboard.by_number[number] = behaviour.to_behaviour()
        return {"number": number, "outcome": behaviour.outcome}

    @router.delete("/phones/{number}")
    async def forget_phone(number: str) -> dict[str, Any]:
        switchboard.by_number.pop(number, None)
        return {"number": number}

    @router.get("/numbers")
    async def list_numbers() -> dict[str, Any]:
        return {"numbers": [number.to_json() for number in store.numbers.values()]}

    @router.post("/inbound", status_code=201)
    async def inbound_call(request: InboundCallIn) -> dict[str, Any]:
        number = owned_number(request.to)
        if not number.voice_url:
            raise HTTPException(409, f"{number.phone_number} has no VoiceUrl")
        call = Call(
            sid=new_sid("CA"),
            account_sid=number.account_sid,
            to=number.phone_number,
            from_=request.from_,
            direction="inbound",
            phone_number_sid=number.sid,
        )
        call.set_status("ringing")
        instructions = CallInstructions(
            source=TwimlSource(url=number.voice_url, method=number.voice_method),
            status_callback=number.status_callback or None,
            status_callback_method=number.status_callback_method,
        )
        behaviour = PhoneBehaviour(ring_seconds=0, script=request.script.to_script())
        run = engine.start(call, instructions, behaviour, accounts[number.account_sid])
        return run.to_json()

    @router.post("/sms", status_code=201)
    async def inbound_sms(request: InboundSmsIn) -> dict[str, Any]:
        number = owned_number(request.to)
        return await center.receive(
            from_=request.from_,
            number=number,
            body=request.body,
            auth_token=accounts[number.account_sid],
        )

    @router.get("/messages")
    async def list_messages() -> dict[str, Any]:
        return {"messages": [m.to_json() for m in reversed(store.messages.values())]}

    return router
