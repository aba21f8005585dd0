"""The ``/v1/ws`` endpoint: authentication, then a session of pushes, heartbeats and a lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket

from novitrac_gateway.credentials import AuthUnavailable, Credential, Unauthenticated
from novitrac_gateway.live.hub import (
    CLOSE_FORBIDDEN_ORIGIN,
    CLOSE_RECONNECT,
    CLOSE_SLOW,
    CLOSE_UNAUTHORIZED,
    PONG,
    READY,
    Ending,
    Hub,
    Subscriber,
    reconnect_message,
)
from novitrac_gateway.metrics import WEBSOCKET_MESSAGES_SENT, WEBSOCKETS_OPEN
from novitrac_gateway.state import Gateway, gateway_of

router = APIRouter()

_EVENT_PREFIX = '{"type":"event"'
_SENT_EVENTS = WEBSOCKET_MESSAGES_SENT.labels("event")
_SENT_CONTROL = WEBSOCKET_MESSAGES_SENT.labels("control")
_DISCONNECTED = Ending(None, "disconnected", flush=False)


@router.websocket("/v1/ws")
async def live_socket(websocket: WebSocket) -> None:
    """Push the organisation's events to an authenticated dashboard or integration."""
    gateway = gateway_of(websocket.app)
    settings = gateway.settings
    if not _origin_allowed(gateway, websocket):
        await _refuse(websocket, CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
        return
    address = websocket.client.host if websocket.client else "unknown"
    if not (await gateway.limiter.hit(f"address:{address}", gateway.address_limit)).allowed:
        await _refuse(websocket, CLOSE_SLOW, "too many connections, try again later")
        return

    secret = websocket.query_params.get("access_token")
    resume = websocket.query_params.get("resume")
    by_message = secret is None
    if by_message:
        await websocket.accept()
        secret, resume = await _first_message(websocket, settings.ws_auth_timeout, resume)
        if secret is None:
            await _close(websocket, CLOSE_UNAUTHORIZED, "authentication required")
            return
    try:
        if secret is None:
            raise Unauthenticated
        credential = await gateway.authenticator.authenticate(secret)
    except Unauthenticated:
        await _refuse(websocket, CLOSE_UNAUTHORIZED, "authentication required", by_message)
        return
    except AuthUnavailable:
        await _refuse(websocket, CLOSE_SLOW, "authentication unavailable", by_message)
        return

    subscriber = Subscriber(
        org_id=credential.identity.org_id,
        user_id=credential.identity.user_id,
        api_key_id=credential.api_key_id,
        capacity=settings.ws_send_queue,
        next_ping=asyncio.get_running_loop().time() + settings.ws_heartbeat_interval,
    )
    if by_message:
        subscriber.offer(READY, force=True)
    # Joined before the handshake completes: once connected, the client misses nothing.
    gateway.hub.join(subscriber, resume)
    WEBSOCKETS_OPEN.inc()
    try:
        if not by_message:
            await websocket.accept()
        await _session(websocket, subscriber, gateway, credential)
    finally:
        gateway.hub.leave(subscriber)
        WEBSOCKETS_OPEN.dec()


async def _session(
    websocket: WebSocket, subscriber: Subscriber, gateway: Gateway, credential: Credential
) -> None:
    settings = gateway.settings
    # Spread out so that sockets opened together do not all reconnect together.
    lifetime = min(
        settings.ws_max_lifetime * random.uniform(0.9, 1.0), credential.expires_at - time.time()
    )
    # Heartbeats are the hub's (one loop for every socket); a socket has its writer, its reader
    # and a timer, which keeps what each open socket holds, and the garbage it makes, small.
    expiry = asyncio.get_running_loop().call_later(
        max(0.0, lifetime), _expire, subscriber, gateway.hub
    )
    tasks = [
        asyncio.create_task(_pump(websocket, subscriber)),
        asyncio.create_task(_listen(websocket, subscriber)),
    ]
    try:
        await subscriber.ended.wait()
    finally:
        expiry.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    ending = subscriber.ending
    if ending is not None and ending.code is not None:
        await _close(websocket, ending.code, ending.reason)


async def _pump(websocket: WebSocket, subscriber: Subscriber) -> None:
    """The socket's only writer: sends what is queued, in order."""
    try:
        while True:
            await subscriber.wakeup.wait()
            subscriber.wakeup.clear()
            events = control = 0
            try:
                while subscriber.queue:
                    message = subscriber.queue.popleft()
                    await websocket.send({"type": "websocket.send", "text": message})
                    if message.startswith(_EVENT_PREFIX):
                        events += 1
                    else:
                        control += 1
            finally:
                if events:
                    _SENT_EVENTS.inc(events)
                if control:
                    _SENT_CONTROL.inc(control)
            if subscriber.ending is not None:
                subscriber.ended.set()
                return
    except Exception:
        subscriber.end(_DISCONNECTED)
        subscriber.ended.set()


async def _listen(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Reads what the client sends: pongs, and pings it expects a pong for."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            kind = _kind(message.get("text"))
            if kind == "pong":
                subscriber.pong_due = None
            elif kind == "ping":
                subscriber.offer(PONG)
    except Exception:
        pass
    subscriber.end(_DISCONNECTED)


def _expire(subscriber: Subscriber, hub: Hub) -> None:
    """At the end of the socket's life, asks the client to reconnect, then closes."""
    subscriber.offer(reconnect_message(hub.resume_point(subscriber)), force=True)
    subscriber.end(Ending(CLOSE_RECONNECT, "lifetime", flush=True))


async def _first_message(
    websocket: WebSocket, wait: float, resume: str | None
) -> tuple[str | None, str | None]:
    """The token of a first message ``{"type": "auth", "token": ..., "resume"?: ...}``."""
    try:
        async with asyncio.timeout(wait):
            message = await websocket.receive()
    except TimeoutError:
        return None, resume
    try:
        body = json.loads(message.get("text") or "")
    except ValueError:
        return None, resume
    if not isinstance(body, dict) or body.get("type") != "auth":
        return None, resume
    token, given = body.get("token"), body.get("resume")
    return (
        token if isinstance(token, str) and token else None,
        given if isinstance(given, str) else resume,
    )


def _kind(text: str | None) -> object:
    if not text or len(text) > 1024:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None


def _origin_allowed(gateway: Gateway, websocket: WebSocket) -> bool:
    """Browsers send an Origin: it must be a dashboard origin, or the gateway's own."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    if gateway.cors.allows(origin.rstrip("/").encode()):
        return True
    return urlsplit(origin).netloc == websocket.headers.get("host")


async def _refuse(websocket: WebSocket, code: int, reason: str, accepted: bool = False) -> None:
    if not accepted:
        await websocket.accept()
    await _close(websocket, code, reason)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    # A stalled peer cannot take the close frame either; uvicorn drops the connection after.
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await websocket.close(code, reason)
