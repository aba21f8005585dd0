"""One OpenAPI document for the whole public API, merged from every service's own.

Each service's ``/openapi.json`` is fetched in the background at start-up and again once it is
stale; a service that is down keeps its last document (or none) until it answers. Only the public
``/v1/...`` paths that the gateway routes to that service are kept. Schema names that two
services define differently are prefixed with the service's name. The gateway's security schemes
and the answers it gives itself (401, 403, 413, 429, 502, 503, 504) are added to each operation.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html

from novitrac_gateway import routing
from novitrac_gateway.edge import DOCS_CSP, SECURITY_HEADERS
from novitrac_gateway.upstreams import Upstreams

logger = logging.getLogger(__name__)

Document = dict[str, Any]

_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=5.0)

SCHEMA_PREFIX = "#/components/schemas/"
ERROR_SCHEMA = "GatewayError"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyHeader": []}]
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from /v1/auth/login, or an API key (nvk_...).",
    },
    "apiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key (nvk_...) created at /v1/auth/api-keys.",
    },
}
_ERROR = {"content": {"application/json": {"schema": {"$ref": SCHEMA_PREFIX + ERROR_SCHEMA}}}}
_RATE_HEADERS = {
    "RateLimit-Limit": {"schema": {"type": "integer"}},
    "RateLimit-Remaining": {"schema": {"type": "integer"}},
    "RateLimit-Reset": {"schema": {"type": "integer"}},
}
GATEWAY_RESPONSES: dict[str, Document] = {
    "401": {"description": "Missing or invalid credential.", **_ERROR},
    "403": {"description": "The credential is read-only.", **_ERROR},
    "413": {"description": "The request body is too large.", **_ERROR},
    "429": {
        "description": "Too many requests; retry after Retry-After seconds.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}, **_RATE_HEADERS},
        **_ERROR,
    },
    "502": {"description": "The service failed to answer.", **_ERROR},
    "503": {"description": "The service is unavailable.", **_ERROR},
    "504": {"description": "The service did not answer in time.", **_ERROR},
}
_PUBLIC_OMITS = ("401", "403")
ERROR_SCHEMA_BODY: Document = {
    "type": "object",
    "title": ERROR_SCHEMA,
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}

DESCRIPTION = """\
The Novitrac public API: every service behind one gateway.

**Authentication.** Send `Authorization: Bearer <access token>` (from `/v1/auth/login`) or an API
key as `Authorization: Bearer nvk_...` or `X-API-Key: nvk_...`. Read-only keys get 403 on writes.
Requests are rate-limited per organisation and per client address (429 with `Retry-After` and
`RateLimit-*` headers); bodies are limited in size (413).

**Live events: `GET /v1/ws` (WebSocket).** Authenticate with `?access_token=<token or API key>`,
or send `{"type": "auth", "token": "..."}` as the first message within a few seconds (answered by
`{"type": "ready"}`). A bad token closes the socket with code 4401. The server then pushes every
event of the token's organisation as `{"type": "event", "event": <envelope>, "resume": "<token>"}`
(in-app notifications only to their user). It sends `{"type": "ping"}` regularly and expects
`{"type": "pong"}`; a silent client is closed (4002). A client that falls behind is closed with
1013. At the end of a connection's lifetime the server sends `{"type": "reconnect", "resume":
"<token>"}` and closes with 4000. Reconnect with `?resume=<token>` to receive the events missed
in the last minutes, or `{"type": "resume_failed"}` when they can no longer be told; events may
then arrive twice, so deduplicate by `event.id`.
"""


class OpenApiAggregator:
    """Keeps each upstream's document and the merged one.

    Args:
        upstreams: the services to ask.
        max_age: seconds after which a document is fetched again.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        upstreams: Upstreams,
        *,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._upstreams = upstreams
        self._max_age = max_age
        self._clock = clock
        self._documents: dict[str, Document] = {}
        self._fetched_at: float | None = None
        self._merged: bytes | None = None
        self._refresh: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Fetch every document in the background."""
        self._refresh_soon()

    async def aclose(self) -> None:
        """Stop a fetch under way."""
        if self._refresh is not None:
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)

    async def document(self, wait: float) -> bytes:
        """The merged document as JSON; waits up to ``wait`` seconds for a first fetch."""
        if self._fetched_at is None and self._refresh is not None:
            await asyncio.wait({self._refresh}, timeout=wait)
        elif self._fetched_at is not None and self._clock() - self._fetched_at >= self._max_age:
            self._refresh_soon()
        if self._merged is None:
            self._merged = json.dumps(merge(self._documents)).encode()
        return self._merged

    def _refresh_soon(self) -> None:
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._fetch_all())

    async def _fetch_all(self) -> None:
        results = await asyncio.gather(
            *(self._fetch(upstream.name) for upstream in self._upstreams)
        )
        changed = False
        for name, document in results:
            if document is not None and self._documents.get(name) != document:
                self._documents[name] = document
                changed = True
        if changed:
            self._merged = None
        self._fetched_at = self._clock()

    async def _fetch(self, name: str) -> tuple[str, Document | None]:
        upstream = self._upstreams[name]
        try:
            async with upstream.session.get(
                upstream.url(b"/openapi.json", b""),
                headers={"accept": "application/json"},
                allow_redirects=False,
                timeout=_FETCH_TIMEOUT,
            ) as response:
                response.raise_for_status()
                document = json.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            logger.warning(
                "gateway.openapi.fetch_failed",
                extra={"upstream": name, "error": type(error).__name__},
            )
            return name, None
        return name, document if isinstance(document, dict) else None


def merge(documents: dict[str, Document]) -> Document:
    """The public document made of each service's document, by service name."""
    renames = _renames(documents)
    paths: Document = {}
    schemas: Document = {ERROR_SCHEMA: ERROR_SCHEMA_BODY}
    for service in sorted(documents):
        document = documents[service]
        rename = renames.get(service, {})
        for name, schema in (document.get("components", {}).get("schemas") or {}).items():
            schemas[rename.get(name, name)] = _rewrite(schema, rename)
        for path, item in (document.get("paths") or {}).items():
            if not path.startswith("/v1/") or routing.service_for(_template(path)) != service:
                continue
            paths[path] = _operations(path, _rewrite(item, rename))
    return {
        "openapi": "3.1.0",
        "info": {"title": "Novitrac API", "version": "1", "description": DESCRIPTION},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": SECURITY_SCHEMES,
        },
        "security": SECURITY,
    }


def _renames(documents: dict[str, Document]) -> dict[str, dict[str, str]]:
    """For each service, its schema names that clash with another service's different schema."""
    definitions: dict[str, list[tuple[str, Any]]] = {}
    for service, document in documents.items():
        for name, schema in (document.get("components", {}).get("schemas") or {}).items():
            definitions.setdefault(name, []).append((service, schema))
    renames: dict[str, dict[str, str]] = {}
    for name, found in definitions.items():
        distinct = {json.dumps(schema, sort_keys=True) for _, schema in found}
        if len(distinct) > 1 or name == ERROR_SCHEMA:
            for service, _ in found:
                prefix = "".join(part.capitalize() for part in service.split("-"))
                renames.setdefault(service, {})[name] = f"{prefix}{name}"
    return renames


def _rewrite(node: Any, rename: dict[str, str]) -> Any:
    if isinstance(node, dict):
        result = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(SCHEMA_PREFIX):
                name = value[len(SCHEMA_PREFIX) :]
                result[key] = SCHEMA_PREFIX + rename.get(name, name)
            else:
                result[key] = _rewrite(value, rename)
        return result
    if isinstance(node, list):
        return [_rewrite(value, rename) for value in node]
    return node


def _operations(path: str, item: Document) -> Document:
    item = copy.deepcopy(item)
    concrete = _template(path)
    for method in METHODS:
        operation = item.get(method)
        if not isinstance(operation, dict):
            continue
        public = routing.is_public(method.upper(), concrete)
        operation["security"] = [] if public else SECURITY
        responses = operation.setdefault("responses", {})
        for status, response in GATEWAY_RESPONSES.items():
            if public and status in _PUBLIC_OMITS:
                continue
            responses.setdefault(status, response)
    return item


def _template(path: str) -> str:
    """A concrete path standing for a templated one (``{call_id}`` becomes ``x``)."""
    parts = ["x" if part.startswith("{") else part for part in path.split("/")]
    return "/".join(parts)


def router(documents: Callable[[Request], OpenApiAggregator]) -> APIRouter:
    """``/v1/openapi.json`` and Swagger UI at ``/docs``."""
    api = APIRouter()
    headers = {key.decode(): value.decode() for key, value in SECURITY_HEADERS}

    @api.get("/v1/openapi.json", include_in_schema=False)
    async def openapi_document(request: Request) -> Response:
        body = await documents(request).document(wait=5.0)
        return Response(body, media_type="application/json", headers=headers)

    @api.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        page = get_swagger_ui_html(openapi_url="/v1/openapi.json", title="Novitrac API")
        page.headers.update({**headers, "content-security-policy": DOCS_CSP.decode()})
        return page

    return api
