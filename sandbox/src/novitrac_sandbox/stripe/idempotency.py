"""``Idempotency-Key`` on ``POST /v1/…``: a repeated key replays the first answer.

The first request with a key runs; if it got as far as doing something (a 2xx, or a 402 decline)
its answer is kept and every later request with the same key and the same params gets that answer
again, marked ``Idempotent-Replayed: true``. The same key with other params (or another path) is
refused with a 400 ``idempotency_error``; while the first request is still running, a second one
gets a 409 ``idempotency_key_in_use``. Keys are scoped to the API key that sent them and kept for
the life of the sandbox (Stripe keeps them at least 24 hours).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from novitrac_sandbox.stripe.errors import StripeError


@dataclass
class _Answer:
    fingerprint: tuple[str, tuple[tuple[str, str], ...]]
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


class IdempotencyMiddleware:
    """ASGI middleware replaying POSTs that carry an ``Idempotency-Key`` already seen."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._answers: dict[tuple[bytes, bytes], _Answer] = {}
        self._running: set[tuple[bytes, bytes]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key")
        if not key:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        scoped = (headers.get(b"authorization", b""), key)
        fingerprint = (
            scope["path"],
            tuple(sorted(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))),
        )
        if scoped in self._running:
            await _send_error(
                send,
                StripeError(
                    409,
                    "There is currently another in-progress request using this Idempotent Key "
                    "(that probably means you submitted twice, and the other request is still "
                    "going through). Please retry this request later.",
                    code="idempotency_key_in_use",
                ),
            )
            return
        kept = self._answers.get(scoped)
        if kept is not None:
            if kept.fingerprint != fingerprint:
                await _send_error(
                    send,
                    StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key.decode()}' "
                        "if you meant to execute a different request.",
                        type="idempotency_error",
                    ),
                )
                return
            await _send(
                send, kept.status, [*kept.headers, (b"idempotent-replayed", b"true")], kept.body
            )
            return
        answer = _Answer(fingerprint)
        self._running.add(scoped)
        try:
            await self.app(scope, _replay(body), _capturing(send, answer))
        finally:
            self._running.discard(scoped)
        if 200 <= answer.status < 300 or answer.status == 402:
            self._answers[scoped] = answer


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _capturing(send: Send, answer: _Answer) -> Send:
    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = [
                (name, value)
                for name, value in message.get("headers", [])
                if name.lower() != b"content-length"
            ]
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")
        await send(message)

    return capture


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, error: StripeError) -> None:
    body = json.dumps(error.body()).encode()
    await _send(send, error.status, [(b"content-type", b"application/json")], body)
