"""The Twilio stand-in: REST ``2010-04-01`` subset at the root, a call engine, sandbox controls.

Aim the SDK at it with ``client.api.base_url = "http://host:port"`` (and the credentials in
``SandboxConfig.twilio_accounts``). Webhooks, status callbacks and media-stream handshakes are
signed with the account's Auth Token, exactly as Twilio signs them. Media-stream URLs may be
``ws://`` as well as ``wss://`` (the sandbox lives on loopback); a query string is refused (31920)
as Twilio refuses it.

Sandbox controls (JSON; not part of Twilio's API):

- ``GET /_sandbox/calls``: every call, newest first: status, the far phone's outcome, the
  timeline of events, the status callbacks sent, and per media stream what the phone received
  (byte counts, marks and when they were echoed, clears, protocol errors).
- ``GET /_sandbox/calls/{sid}[?audio=true]``: one call, with each received chunk's arrival (ms
  since the stream started) and size; with ``audio`` also the audio received and the audio
  actually heard (not cleared), base64 μ-law.
- ``POST /_sandbox/calls/{sid}/hangup``: the far phone hangs up now.
- ``POST /_sandbox/next-outcome`` ``{"outcome": "answer"|"machine"|"busy"|"no-answer"|"failed",
  "ring_seconds": 0.2, "script": {...}}``: how the next outbound call's phone behaves (queued, one
  per call); ``GET`` lists the queue, ``DELETE`` empties it.
- ``PUT /_sandbox/phones/{number}`` (same body): how calls to ``number`` (and ``<Dial>`` to it)
  behave when nothing is queued; ``DELETE`` forgets it.
- ``POST /_sandbox/inbound`` ``{"from": "+1…", "to": "<owned number>", "script": {...}}``: call an
  owned number; its ``VoiceUrl`` is requested and the call proceeds. Returns the call (201).
- ``POST /_sandbox/sms`` ``{"from", "to", "body"}``: an SMS to an owned number, posted to its
  ``SmsUrl``; ``<Message>`` replies are sent back. Returns the message, webhook status, replies.
- ``GET /_sandbox/messages``, ``GET /_sandbox/numbers``: every message / owned number.

A script is ``{"utterances": [{"text", "at", "duration"}], "digits": [{"digits", "at"}],
"hang_up_after": seconds}``, times in seconds after the answer.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from novitrac_sandbox.config import SandboxConfig
from novitrac_sandbox.phone import PhoneBook
from novitrac_sandbox.twilio.control import control_router
from novitrac_sandbox.twilio.engine import CallEngine
from novitrac_sandbox.twilio.errors import TwilioApiError, not_found
from novitrac_sandbox.twilio.messaging import MessageCenter
from novitrac_sandbox.twilio.outcomes import Switchboard
from novitrac_sandbox.twilio.resources import TwilioStore
from novitrac_sandbox.twilio.rest_calls import calls_router
from novitrac_sandbox.twilio.rest_messages import messages_router
from novitrac_sandbox.twilio.rest_numbers import numbers_router
from novitrac_sandbox.twilio.webhooks import WebhookSender


@dataclass
class TwilioSandbox:
    """The parts of a running Twilio stand-in, for in-process inspection (``app.state.twilio``)."""

    store: TwilioStore
    switchboard: Switchboard
    engine: CallEngine
    messages: MessageCenter


_frozen = False


def _freeze_long_lived_objects() -> None:
    # Everything loaded by now lives as long as the process. Frozen (once per process), it is
    # left out of full garbage collections, which otherwise stall the 20 ms media clock of every
    # call for 100 ms and more.
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True


def create_app(config: SandboxConfig, phones: PhoneBook) -> FastAPI:
    """The Twilio stand-in as an ASGI app; calls in progress are hung up when it shuts down."""
    accounts = dict(config.twilio_accounts)
    client = httpx.AsyncClient(timeout=httpx.Timeout(15.0), follow_redirects=False)
    sender = WebhookSender(client)
    store = TwilioStore()
    switchboard = Switchboard()
    engine = CallEngine(store=store, phones=phones, switchboard=switchboard, sender=sender)
    center = MessageCenter(store=store, sender=sender)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        _freeze_long_lived_objects()
        try:
            yield
        finally:
            await engine.close()
            await center.close()
            await client.aclose()

    app = FastAPI(title="Twilio sandbox", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.twilio = TwilioSandbox(store, switchboard, engine, center)
    app.include_router(numbers_router(store, accounts))
    app.include_router(calls_router(engine, accounts))
    app.include_router(messages_router(center, accounts))
    app.include_router(control_router(engine, center, accounts))

    @app.exception_handler(TwilioApiError)
    async def twilio_error(_: Request, error: TwilioApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/_sandbox"):
            return await http_exception_handler(request, error)
        if error.status_code == 404:
            return await twilio_error(request, not_found(request.url.path))
        if error.status_code == 405:
            return await twilio_error(request, TwilioApiError(405, 20004, "Method not allowed"))
        return await http_exception_handler(request, error)

    return app
