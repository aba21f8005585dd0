"""Helpers for the WebSocket tests: events to publish, and a client that reads them."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.live import LiveCallStatus
from novitrac_contracts.notifications import NotificationCreated
from novitrac_contracts.telephony import CallStatus

PATIENCE = 10.0
"""Seconds a test waits for a message before it fails (a safety net, not a measurement)."""


def live_status(org_id: uuid.UUID, sequence: int = 0) -> Envelope:
    signal = LiveCallStatus(
        call_id=uuid.uuid4(), org_id=org_id, status=CallStatus.RINGING, sequence=sequence
    )
    return Envelope.wrap(signal, producer="telephony")


def call_ended(org_id: uuid.UUID | None, **data: Any) -> Envelope:
    return Envelope(
        type="telephony.call.ended.v1",
        producer="telephony",
        org_id=org_id,
        data={"call_id": str(uuid.uuid4()), "status": "completed", **data},
    )


def notification(org_id: uuid.UUID, user_id: uuid.UUID) -> Envelope:
    created = NotificationCreated(
        notification_id=uuid.uuid4(),
        org_id=org_id,
        user_id=user_id,
        kind="billing.balance.low",
        title="Balance low",
        body="Top up soon.",
    )
    return Envelope.wrap(created, producer="notifications")


async def receive(socket: ClientConnection, *, answer_pings: bool = True) -> dict[str, Any]:
    """The next message that is not a ping (pings are answered)."""
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), PATIENCE))
        if message["type"] == "ping" and answer_pings:
            await socket.send(json.dumps({"type": "pong"}))
            continue
        return message


async def event(socket: ClientConnection) -> dict[str, Any]:
    """The next event pushed to ``socket``'s envelope, with its resume token."""
    message = await receive(socket)
    assert message["type"] == "event", message
    return {**message["event"], "resume": message["resume"]}


@asynccontextmanager
async def stalled(url: str) -> AsyncIterator[asyncio.StreamWriter]:
    """A WebSocket client that completes the handshake and then never reads again."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PATIENCE)
    assert response.startswith(b"HTTP/1.1 101"), response
    try:
        yield writer
    finally:
        writer.transport.abort()


async def close_code(socket: ClientConnection) -> int | None:
    """Read until the server closes the socket; the close code it sent (None without one)."""
    try:
        while True:
            await asyncio.wait_for(socket.recv(), PATIENCE)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
