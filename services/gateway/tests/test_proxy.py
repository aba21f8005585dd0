"""Requests through the gateway reach the right service, streamed, with their answers intact."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from opentelemetry import trace

from novitrac_gateway.metrics import UPSTREAM_ERRORS
from novitrac_kit.telemetry import configure_tracing, instrument_httpx
from novitrac_kit.testing.tokens import TokenIssuer

from .conftest import UNLIMITED, Platform, PlatformFactory, start_platform

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform() -> AsyncIterator[Platform]:
    async with start_platform(TokenIssuer(), **UNLIMITED) as started:
        yield started


ROUTES = [
    ("GET", "/v1/auth/me", "auth"),
    ("GET", "/.well-known/jwks.json", "auth"),
    ("GET", "/v1/calls", "telephony"),
    ("GET", "/v1/calls/123/transcript", "telephony"),
    ("GET", "/v1/campaigns", "telephony"),
    ("POST", "/v1/contacts/import", "telephony"),
    ("DELETE", "/v1/do-not-call/+14155550100", "telephony"),
    ("POST", "/v1/numbers/search", "telephony"),
    ("POST", "/v1/sms", "telephony"),
    ("GET", "/v1/agents/abc", "voice-ai"),
    ("GET", "/v1/conversations", "voice-ai"),
    ("POST", "/v1/billing/checkout", "billing"),
    ("GET", "/v1/notifications", "notifications"),
    ("GET", "/v1/webhook-endpoints", "notifications"),
    ("POST", "/v1/webhook-endpoints/abc/test", "notifications"),
    ("POST", "/webhooks/twilio/voice", "telephony"),
    ("POST", "/webhooks/elevenlabs", "voice-ai"),
    ("POST", "/webhooks/stripe", "billing"),
]


class TestRouting:
    async def test_each_prefix_reaches_its_service(self, platform: Platform) -> None:
        headers = platform.auth(platform.token())
        for method, path, expected in ROUTES:
            response = await platform.client.request(method, path, headers=headers, json={})
            assert response.status_code in (200, 201), path
            seen = response.json()
            assert (seen["service"], seen["method"], seen["path"]) == (expected, method, path)

    async def test_unknown_route_is_404(self, platform: Platform) -> None:
        forwarded = len(platform.upstream.requests)
        headers = platform.auth(platform.token())
        # "/" is the dashboard's page (test_dashboard.py).
        for path in ["/v1/nothing", "/v1/callsx", "/v1/auth", "/v1/calls/%2E%2E/auth/me"]:
            response = await platform.client.get(path, headers=headers)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"
        assert len(platform.upstream.requests) == forwarded

    async def test_status_and_error_body_pass_through(self, platform: Platform) -> None:
        response = await platform.client.post(
            "/v1/calls/42/conflict", headers=platform.auth(platform.token())
        )
        assert response.status_code == 409
        assert response.json() == {"error": {"code": "conflict", "message": "this call has ended"}}
        assert response.headers["x-upstream"] == "1"

    async def test_query_and_body_arrive_unchanged(self, platform: Platform) -> None:
        body = bytes(range(256)) * 40
        response = await platform.client.put(
            "/v1/agents/7?b=2&a=%20x",
            content=body,
            headers={**platform.auth(platform.token()), "content-type": "application/octet-stream"},
        )
        seen = response.json()
        assert seen["query"] == "b=2&a=%20x"
        assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()


class TestStreaming:
    async def test_response_is_streamed(self, platform: Platform) -> None:
        headers = platform.auth(platform.token())
        async with platform.client.stream("GET", "/v1/calls/1/stream-down", headers=headers) as r:
            chunks = r.aiter_raw()
            # The service sends its second chunk only once this one has come through.
            first = await anext(chunks)
            platform.upstream.release.set()
            rest = b"".join([chunk async for chunk in chunks])
        assert first == b"first chunk\n"
        assert rest == b"second chunk\n"

    async def test_request_body_is_streamed(self, platform: Platform) -> None:
        upstream = platform.upstream

        async def body() -> AsyncIterator[bytes]:
            yield b"part one;"
            # The service has the first part before the client sends the second.
            await asyncio.wait_for(upstream.first_chunk.wait(), 20)
            yield b"part two"

        response = await platform.client.post(
            "/v1/calls/1/stream-up", content=body(), headers=platform.auth(platform.token())
        )
        assert response.status_code == 200
        assert response.json()["body"] == "part one;part two"

    async def test_client_leaving_mid_body_is_not_a_service_failure(
        self, platform: Platform
    ) -> None:
        forwarded = len(platform.upstream.requests)
        failures = _upstream_errors()
        host, _, port = platform.url.removeprefix("http://").partition(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST /v1/calls/1/echo HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {platform.token()}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".encode()
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        await asyncio.sleep(0.3)
        # Nothing reached the service as a whole request, and nothing was counted against it.
        assert len(platform.upstream.requests) == forwarded
        assert _upstream_errors() == failures


def _upstream_errors() -> float:
    return sum(
        sample.value
        for metric in UPSTREAM_ERRORS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


class TestForwardedHeaders:
    async def test_request_id_is_kept_and_echoed(self, platform: Platform) -> None:
        response = await platform.client.get(
            "/v1/calls",
            headers={**platform.auth(platform.token()), "X-Request-Id": "req-123.abc"},
        )
        assert response.headers["x-request-id"] == "req-123.abc"
        assert response.json()["headers"]["x-request-id"] == "req-123.abc"

    async def test_malformed_request_id_is_replaced(self, platform: Platform) -> None:
        response = await platform.client.get(
            "/v1/calls", headers={**platform.auth(platform.token()), "X-Request-Id": "a b\tc"}
        )
        request_id = response.headers["x-request-id"]
        assert request_id != "a b\tc"
        assert response.json()["headers"]["x-request-id"] == request_id

    async def test_request_id_on_gateway_answers(self, platform: Platform) -> None:
        response = await platform.client.get("/v1/calls", headers={"X-Request-Id": "r-1"})
        assert response.status_code == 401
        assert response.headers["x-request-id"] == "r-1"

    async def test_forwarded_for_replaces_the_clients(self, platform: Platform) -> None:
        response = await platform.client.get(
            "/v1/calls",
            headers={
                **platform.auth(platform.token()),
                "X-Forwarded-Host": "evil.example",
                "Connection": "keep-alive, X-Secret-Hop",
                "X-Secret-Hop": "hop",
            },
        )
        seen = response.json()["headers"]
        assert seen["x-forwarded-for"] == "127.0.0.1"
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-forwarded-host"] == platform.url.removeprefix("http://")
        assert "x-secret-hop" not in seen

    async def test_trace_context_propagates(self, platform: Platform) -> None:
        configure_tracing("gateway-tests", otlp_endpoint=None)
        instrument_httpx()
        with trace.get_tracer("tests").start_as_current_span("client") as span:
            response = await platform.client.get(
                "/v1/calls", headers=platform.auth(platform.token())
            )
        context = span.get_span_context()
        _, trace_id, parent_id, _ = response.json()["headers"]["traceparent"].split("-")
        # The service continues the client's trace, under the gateway's own span.
        assert trace_id == f"{context.trace_id:032x}"
        assert parent_id != f"{context.span_id:016x}"


class TestWebhooks:
    async def test_bytes_url_and_host_are_untouched(self, platform: Platform) -> None:
        body = b"CallSid=CA1&CallStatus=completed&Digits=%2B1+2"
        path = "/webhooks/twilio/status/abc%2Fdef?call_id=9&sig=a%2Bb%3D"
        response = await platform.client.post(
            path,
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": "c2lnbmF0dXJl",
                "Host": "api.novitrac.example",
            },
        )
        assert response.status_code == 201
        seen = response.json()
        assert seen["raw_path"] == "/telephony/webhooks/twilio/status/abc%2Fdef"
        assert seen["query"] == "call_id=9&sig=a%2Bb%3D"
        assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert seen["headers"]["host"] == "api.novitrac.example"
        assert seen["headers"]["x-forwarded-host"] == "api.novitrac.example"
        assert seen["headers"]["x-twilio-signature"] == "c2lnbmF0dXJl"
        assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"

    async def test_nothing_is_added_to_a_bare_request(self, platform: Platform) -> None:
        host, _, port = platform.url.removeprefix("http://").partition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /webhooks/stripe?x=%7E HTTP/1.1\r\nHost: hooks.example\r\n"
            b'Stripe-Signature: t=1,v1=ab\r\nContent-Length: 5\r\n\r\n{"a"}'
        )
        head, _, rest = (await reader.readuntil(b"\r\n\r\n")).partition(b"\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in rest.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        seen = json.loads(await reader.readexactly(length))
        writer.close()
        assert head.startswith(b"HTTP/1.1 201")
        assert seen["query"] == "x=%7E"
        assert seen["body_length"] == 5
        # The client's headers and the gateway's own, and nothing an HTTP client adds by itself.
        assert set(seen["headers"]) - {"traceparent"} == {
            "host",
            "stripe-signature",
            "content-length",
            "x-request-id",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
        }


class TestUpstreamFailures:
    async def test_service_down_is_503(self, make_platform: PlatformFactory) -> None:
        async with make_platform(down=("billing",)) as platform:
            response = await platform.client.get(
                "/v1/billing/balance", headers=platform.auth(platform.token())
            )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "service_unavailable"

    async def test_service_too_slow_is_504(self, make_platform: PlatformFactory) -> None:
        async with make_platform(upstream_timeout=0.2) as platform:
            response = await platform.client.get(
                "/v1/calls/1/slow", headers=platform.auth(platform.token())
            )
            platform.upstream.unblock.set()
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "gateway_timeout"

    async def test_public_route_needs_no_credential(self, platform: Platform) -> None:
        response = await platform.client.post(
            "/v1/auth/login",
            json={"email": "a@b.c", "password": "x"},
            headers={"Authorization": "Bearer not-a-jwt"},
        )
        assert response.status_code == 201
        # Forwarded untouched: auth decides what a token on its public routes means.
        assert response.json()["headers"]["authorization"] == "Bearer not-a-jwt"


async def test_health_of_the_gateway(platform: Platform) -> None:
    assert (await platform.client.get("/healthz")).status_code == 200
    response = await platform.client.get("/metrics")
    assert "novitrac_gateway_websockets_open" in response.text
