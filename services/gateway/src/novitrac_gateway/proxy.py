"""The reverse proxy: every request the gateway does not answer itself goes through here.

A raw ASGI app rather than a FastAPI route, so bodies stream both ways untouched and the hot path
costs as little as it can: CORS preflight, routing, the address limit, the request size limit,
authentication, the organisation limit, then the request is forwarded with its body streamed, and
the service's answer is streamed back with its status, minus hop-by-hop headers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from opentelemetry.propagate import inject
from starlette.types import ASGIApp, Receive, Scope, Send

from novitrac_gateway import routing
from novitrac_gateway.credentials import AuthUnavailable, Credential, Unauthenticated
from novitrac_gateway.edge import (
    REQUEST_ID,
    SECURITY_HEADERS,
    Headers,
    add_missing,
    header,
    request_id,
    send_error,
)
from novitrac_gateway.metrics import RATE_LIMITED, UPSTREAM_ERRORS
from novitrac_gateway.ratelimit import Decision, tightest
from novitrac_gateway.state import Gateway, gateway_of

logger = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the gateway alone; whatever a client sends under these names is dropped.
_REPLACED_ON_REQUEST = frozenset(
    {
        b"x-request-id",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-real-ip",
        b"forwarded",
    }
)
_REPLACED_ON_RESPONSE = frozenset({b"x-request-id", b"server", b"date"})
_DRAIN_FACTOR = 4
# A response whose declared length is at most this is read whole and sent in one message;
# longer ones, and those of unknown length, are streamed as they arrive.
_WHOLE_RESPONSE_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    """The request body grew past the limit while streaming."""


class ClientGone(Exception):
    """The client disconnected before its request body was read."""


class ProxyFirst:
    """Middleware handing every request under a service's prefix straight to the proxy.

    None of the gateway's own routes lies under a service's prefix, so those requests need no
    routing; they are recorded (metrics, spans) under their prefix, a bounded set of names.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.proxy = Proxy()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            prefix = routing.prefix_for(scope["path"])
            if prefix is not None:
                scope["route"] = prefix
                await self.proxy(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Proxy:
    """The ASGI app serving every path the gateway has no route of its own for."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = gateway_of(scope["app"])
        headers: Headers = scope["headers"]
        origin = header(headers, b"origin")
        own: Headers = [(REQUEST_ID, request_id(header(headers, REQUEST_ID))), *SECURITY_HEADERS]
        method: str = scope["method"]
        path: str = scope["path"]
        if method == "OPTIONS" and header(headers, b"access-control-request-method"):
            await _preflight(send, gateway, origin, own)
            return
        common = [*own, *gateway.cors.response_headers(origin)]

        service = routing.service_for(path)
        if service is None:
            await send_error(send, 404, "not_found", "no such route", common)
            return

        bucket = "webhook" if routing.is_webhook(path) else "address"
        limit = gateway.webhook_limit if bucket == "webhook" else gateway.address_limit
        decisions = [await gateway.limiter.hit(f"{bucket}:{_client_address(scope)}", limit)]
        if not decisions[0].allowed:
            await _too_many(send, bucket, decisions[0], common)
            return

        body_limit = gateway.body_limit(method, path)
        length = header(headers, b"content-length")
        if length is not None:
            if not length.isdigit():
                await send_error(send, 400, "bad_request", "malformed Content-Length", common)
                return
            if int(length) > body_limit:
                await _too_large(send, receive, body_limit, common, drain=int(length))
                return

        credential: Credential | None = None
        if not routing.is_public(method, path):
            credential = await _authenticate(send, gateway, headers, common)
            if credential is None:
                return
            decision = await gateway.limiter.hit(
                f"org:{credential.identity.org_id}", gateway.org_limit
            )
            decisions.append(decision)
            if not decision.allowed:
                await _too_many(send, "org", decision, common)
                return
            if method in routing.WRITE_METHODS and not credential.identity.can_write:
                await send_error(send, 403, "forbidden", "this credential is read-only", common)
                return

        common.extend(tightest(decisions).headers())
        await _forward(gateway, service, scope, receive, send, credential, common, body_limit)


async def _preflight(send: Send, gateway: Gateway, origin: bytes | None, own: Headers) -> None:
    allowed = gateway.cors.preflight_headers(origin)
    if allowed is None:
        await send_error(send, 403, "forbidden", "origin not allowed", own)
        return
    await send({"type": "http.response.start", "status": 204, "headers": [*allowed, *own]})
    await send({"type": "http.response.body", "body": b""})


async def _authenticate(
    send: Send, gateway: Gateway, headers: Headers, common: Headers
) -> Credential | None:
    """The request's checked credential; None once the refusal has been sent."""
    secret = _secret(headers)
    try:
        if secret is None:
            raise Unauthenticated
        return await gateway.authenticator.authenticate(secret)
    except Unauthenticated:
        await send_error(
            send,
            401,
            "unauthorized",
            "authentication required",
            [(b"www-authenticate", b"Bearer"), *common],
        )
    except AuthUnavailable:
        await send_error(
            send,
            503,
            "service_unavailable",
            "authentication is unavailable, try again shortly",
            [(b"retry-after", b"5"), *common],
        )
    return None


async def _forward(
    gateway: Gateway,
    service: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    credential: Credential | None,
    common: Headers,
    body_limit: int,
) -> None:
    upstream = gateway.upstreams[service]
    headers: Headers = scope["headers"]
    outgoing = _request_headers(scope, headers, credential, common[0][1])
    has_body = header(headers, b"transfer-encoding") is not None or (
        header(headers, b"content-length") not in (None, b"0")
    )
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    # aiohttp sends the body from a task of its own and wraps what the body raises in a
    # connection error of its own: why the body stopped is kept here for this function to see.
    stopped = _BodyStop()
    try:
        response = await upstream.session.request(
            scope["method"],
            upstream.url(raw_path, scope.get("query_string", b"")),
            headers=[(_text(key), _text(value)) for key, value in outgoing],
            data=_body(receive, body_limit, stopped) if has_body else None,
            allow_redirects=False,
        )
    except (aiohttp.ClientError, TimeoutError, BodyTooLarge, ClientGone) as error:
        if isinstance(stopped.reason, BodyTooLarge):
            await _too_large(send, receive, body_limit, common, drain=None)
        elif stopped.reason is None:
            await _upstream_failed(send, service, _failure_kind(error), error, common)
        # A client that has gone is owed nothing more.
        return

    try:
        response_headers: Headers = [
            (key.lower(), value)
            for key, value in response.raw_headers
            if key.lower() not in HOP_BY_HOP and key.lower() not in _REPLACED_ON_RESPONSE
        ]
        add_missing(response_headers, common)
        length = response.content_length
        if length is not None and length <= _WHOLE_RESPONSE_BYTES:
            await _send_whole(send, service, response, response_headers, common)
            return
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": response_headers,
            }
        )
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except (aiohttp.ClientError, TimeoutError) as error:
        # The status has gone out: all that is left is to cut the response short.
        UPSTREAM_ERRORS.labels(service, "broken_response").inc()
        logger.warning(
            "gateway.upstream.response_broken",
            extra={"upstream": service, "error": type(error).__name__},
        )
    finally:
        # Back to the pool once read to the end; closed otherwise.
        response.release()


async def _send_whole(
    send: Send,
    service: str,
    response: aiohttp.ClientResponse,
    headers: Headers,
    common: Headers,
) -> None:
    """Read a short response to its end, then send it; a read that fails is the service's."""
    try:
        body = await response.read()
    except (aiohttp.ClientError, TimeoutError) as error:
        await _upstream_failed(send, service, _failure_kind(error), error, common)
        return
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _failure_kind(error: BaseException) -> str:
    """How a request that got no answer from its service failed, as counted and answered."""
    if isinstance(error, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
        return "unavailable"
    if isinstance(error, TimeoutError):
        return "timeout"
    return "bad_gateway"


def _request_headers(
    scope: Scope, headers: Headers, credential: Credential | None, rid: bytes
) -> Headers:
    listed = header(headers, b"connection") or b""
    dropped = (
        HOP_BY_HOP
        | _REPLACED_ON_REQUEST
        | {token.strip().lower() for token in listed.split(b",") if token.strip()}
    )
    if credential is not None:
        dropped |= {b"authorization", b"x-api-key"}
    outgoing = [(key, value) for key, value in headers if key not in dropped]
    if credential is not None:
        outgoing.append((b"authorization", b"Bearer " + credential.token.encode()))
    outgoing.append((REQUEST_ID, rid))
    outgoing.append((b"x-forwarded-for", _client_address(scope).encode()))
    outgoing.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    host = header(headers, b"host")
    if host is not None:
        outgoing.append((b"x-forwarded-host", host))
    carrier: dict[str, str] = {}
    inject(carrier)
    if carrier:
        outgoing = [(key, value) for key, value in outgoing if key.decode() not in carrier]
        outgoing.extend((key.encode(), value.encode()) for key, value in carrier.items())
    return outgoing


class _BodyStop:
    """Why the request body stopped short, if it did."""

    __slots__ = ("reason",)

    def __init__(self) -> None:
        self.reason: BodyTooLarge | ClientGone | None = None


async def _body(receive: Receive, limit: int, stopped: _BodyStop) -> AsyncIterator[bytes]:
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            stopped.reason = ClientGone()
            raise stopped.reason
        chunk: bytes = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            stopped.reason = BodyTooLarge()
            raise stopped.reason
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _text(value: bytes) -> str:
    """A header name or value as text that aiohttp writes back as the same bytes (UTF-8)."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        # Not UTF-8: sent as Latin-1 read as UTF-8, the closest aiohttp can come.
        return value.decode("latin-1")


def _secret(headers: Headers) -> str | None:
    authorization = header(headers, b"authorization")
    if authorization is not None:
        scheme, _, value = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    api_key = header(headers, b"x-api-key")
    if api_key is not None and api_key.strip():
        return api_key.decode("latin-1").strip()
    return None


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _too_many(send: Send, bucket: str, decision: Decision, common: Headers) -> None:
    RATE_LIMITED.labels(bucket).inc()
    await send_error(send, 429, "rate_limited", "too many requests", [*decision.headers(), *common])


async def _too_large(
    send: Send, receive: Receive, limit: int, common: Headers, drain: int | None
) -> None:
    """Refuse the body; read what is left of a not too large one first.

    Closing a connection with unread data in it resets it, and the client would see an error
    instead of the 413; beyond a few times the limit the connection is closed regardless.
    """
    budget = _DRAIN_FACTOR * limit
    drained = drain is None or drain <= budget
    if drained:
        drained = await _drain(receive, budget)
    extra = [] if drained else [(b"connection", b"close")]
    await send_error(
        send,
        413,
        "payload_too_large",
        f"request body over {limit} bytes",
        [*extra, *common],
    )


async def _drain(receive: Receive, budget: int) -> bool:
    while budget >= 0:
        message = await receive()
        if message["type"] != "http.request":
            return False
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return budget >= 0
    return False


async def _upstream_failed(
    send: Send, service: str, kind: str, error: Exception, common: Headers
) -> None:
    UPSTREAM_ERRORS.labels(service, kind).inc()
    logger.warning(
        "gateway.upstream.failed",
        extra={"upstream": service, "kind": kind, "error": type(error).__name__},
    )
    if kind == "timeout":
        status, code, message = 504, "gateway_timeout", f"the {service} service did not answer"
    elif kind == "unavailable":
        status, code, message = 503, "service_unavailable", f"the {service} service is unavailable"
    else:
        status, code, message = 502, "bad_gateway", f"the {service} service failed to answer"
    extra = [(b"retry-after", b"1")] if status == 503 else []
    await send_error(send, status, code, message, [*extra, *common])
