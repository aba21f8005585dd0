"""The control app: one place to see what the sandbox runs and to steer it.

Routes (on ``config.control_port``):

* ``GET /`` — with ``Accept: text/html`` a page (providers, credentials, each provider's state from
  its ``/_sandbox`` routes, the latest mail); otherwise, or with ``?format=json``, the JSON index
  of :func:`describe`.
* ``GET /healthz`` — ``{"status": "ok"}``.
* ``/mailbox/...`` — the mailbox API and page (see :mod:`novitrac_sandbox.smtp.app`).
* ``/{provider}/_sandbox/{path}`` (any method) — forwarded to that provider's own
  ``/_sandbox/{path}`` route in process (query, body and status kept), so a client needs only this
  address.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from html import escape
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from novitrac_sandbox.config import SandboxConfig
from novitrac_sandbox.smtp import app as mailbox_app
from novitrac_sandbox.smtp.mailbox import Mailbox

_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding"}
_PREVIEW_LIMIT = 4000
_PAGE_MESSAGES = 10


def provider_port(config: SandboxConfig, provider: str) -> int:
    """The port ``provider`` (``twilio``, ``elevenlabs``, ``stripe``) listens on."""
    port: int = getattr(config, f"{provider}_port")
    return port


def credentials(config: SandboxConfig, provider: str) -> dict[str, str]:
    """What a client of ``provider`` configures to talk to the sandbox and check its webhooks."""
    if provider == "twilio":
        account_sid, auth_token = next(iter(config.twilio_accounts.items()))
        return {"account_sid": account_sid, "auth_token": auth_token}
    if provider == "elevenlabs":
        return {
            "api_key": min(config.elevenlabs_api_keys),
            "webhook_secret": config.elevenlabs_webhook_secret,
        }
    if provider == "stripe":
        return {
            "secret_key": min(config.stripe_secret_keys),
            "webhook_secret": config.stripe_webhook_secret,
        }
    return {}


def describe(
    config: SandboxConfig, providers: list[str], *, host: str | None = None
) -> dict[str, Any]:
    """What runs where: each provider's base URL, control routes and credentials, SMTP, mailbox.

    Args:
        config: the sandbox's configuration.
        providers: the providers being served.
        host: the host name to advertise (default: ``config.host``; the control app passes the
            one the request used, so the index is right from inside a container network too).
    """
    host = host or config.host
    control = f"http://{host}:{config.control_port}"
    return {
        "control": control,
        "mailbox": f"{control}/mailbox/messages",
        "providers": {
            name: {
                "base_url": f"http://{host}:{provider_port(config, name)}",
                "control": f"{control}/{name}/_sandbox",
                "credentials": credentials(config, name),
            }
            for name in providers
        },
        "smtp": {"host": host, "port": config.smtp_port, "credentials": "any", "tls": False},
    }


def create_app(
    config: SandboxConfig, mailbox: Mailbox, providers: Mapping[str, FastAPI]
) -> FastAPI:
    """The control app over the sandbox's mailbox and the provider apps being served."""
    app = FastAPI(title="Novitrac sandbox", docs_url="/docs", redoc_url=None)
    app.mount("/mailbox", mailbox_app.create_app(config, mailbox))

    def client(name: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=providers[name], raise_app_exceptions=False)
        base_url = f"http://{config.host}:{provider_port(config, name)}"
        return httpx.AsyncClient(transport=transport, base_url=base_url, timeout=30.0)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_model=None)
    async def index(request: Request) -> Response:
        described = describe(config, list(providers), host=request.url.hostname)
        wants_html = "text/html" in request.headers.get("accept", "")
        if not wants_html or request.query_params.get("format") == "json":
            return JSONResponse(described)
        states = {name: await _previews(client(name), providers[name]) for name in providers}
        return HTMLResponse(_render_page(described, providers, states, mailbox))

    @app.api_route(
        "/{provider}/_sandbox/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def forward(provider: str, path: str, request: Request) -> Response:
        if provider not in providers:
            return JSONResponse(
                {"detail": f"no provider {provider}; running: {', '.join(providers)}"},
                status_code=404,
            )
        headers = {
            key: value
            for key, value in request.headers.items()
            if key.lower() not in _HOP_BY_HOP | {"host"}
        }
        async with client(provider) as http:
            answer = await http.request(
                request.method,
                f"/_sandbox/{path}",
                params=request.url.query,
                content=await request.body(),
                headers=headers,
            )
        return Response(
            answer.content,
            status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP},
        )

    return app


def control_routes(app: FastAPI) -> list[tuple[str, str, str]]:
    """``(method, path, description)`` of every ``/_sandbox`` route in a provider app's OpenAPI."""
    routes: list[tuple[str, str, str]] = []
    for path, operations in app.openapi().get("paths", {}).items():
        if path.startswith("/_sandbox"):
            for method, operation in operations.items():
                description = operation.get("description", "").strip().split("\n", 1)[0]
                routes.append((method.upper(), path, description))
    return routes


async def _previews(http: httpx.AsyncClient, app: FastAPI) -> dict[str, str]:
    """The JSON state behind each parameterless ``GET /_sandbox`` route, pretty-printed."""
    previews = {}
    async with http:
        for method, path, _ in control_routes(app):
            if method != "GET" or "{" in path:
                continue
            try:
                answer = await http.get(path, timeout=2.0)
            except httpx.HTTPError:
                continue
            if answer.is_success and answer.headers.get("content-type", "").startswith(
                "application/json"
            ):
                text = json.dumps(answer.json(), indent=2)
                if len(text) > _PREVIEW_LIMIT:
                    text = text[:_PREVIEW_LIMIT] + "\n…"
                previews[path] = text
    return previews


_PATH_PARAMETER = re.compile(r"\{(\w+)\}")

_FORMS_SCRIPT = """
document.querySelectorAll("form.control").forEach((form) => {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let path = form.dataset.path;
    for (const input of form.querySelectorAll("input")) {
      path = path.replace("{" + input.name + "}", encodeURIComponent(input.value));
    }
    const init = { method: form.dataset.method, headers: {} };
    const body = form.querySelector("textarea");
    if (body && body.value.trim()) {
      init.body = body.value;
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, init);
    form.querySelector("output").textContent = response.status + " " + (await response.text());
  });
});
"""


def _render_route(provider: str, method: str, path: str, description: str) -> str:
    """A plain link for a parameterless GET; otherwise a small form that sends the request."""
    about = f" — {escape(description)}" if description else ""
    forwarded = escape(f"/{provider}{path}")
    if method == "GET" and "{" not in path:
        return f'<li><a href="{forwarded}"><code>GET {escape(path)}</code></a>{about}</li>'
    inputs = "".join(
        f'<input name="{escape(parameter)}" placeholder="{escape(parameter)}" required> '
        for parameter in _PATH_PARAMETER.findall(path)
    )
    body = (
        '<textarea rows="1" cols="40" placeholder="JSON body (optional)"></textarea> '
        if method in {"POST", "PUT", "PATCH"}
        else ""
    )
    return (
        f'<li><form class="control" data-method="{method}" data-path="{forwarded}">'
        f"<code>{method} {escape(path)}</code>{about}<br>{inputs}{body}"
        f"<button>Send</button> <output></output></form></li>"
    )


def _render_page(
    described: dict[str, Any],
    providers: Mapping[str, FastAPI],
    states: dict[str, dict[str, str]],
    mailbox: Mailbox,
) -> str:
    sections = []
    for name, info in described["providers"].items():
        creds = "".join(
            f"<tr><th>{escape(key)}</th><td><code>{escape(value)}</code></td></tr>"
            for key, value in info["credentials"].items()
        )
        routes = "".join(
            _render_route(name, method, path, description)
            for method, path, description in control_routes(providers[name])
        )
        previews = "".join(
            f"<details open><summary><code>{escape(path)}</code></summary>"
            f"<pre>{escape(text)}</pre></details>"
            for path, text in states.get(name, {}).items()
        )
        sections.append(
            f"""<section><h2>{escape(name)}</h2>
<p>Base URL <a href="{escape(info["base_url"])}"><code>{escape(info["base_url"])}</code></a></p>
<table>{creds}</table>
<h3>Controls</h3><ul>{routes or "<li>none</li>"}</ul>{previews}</section>"""
        )
    smtp = described["smtp"]
    mail = "".join(
        f"<li>{message.received_at:%H:%M:%S} <strong>{escape(message.subject)}</strong> "
        f"to {escape(', '.join(message.recipients))}</li>"
        for message in mailbox.messages()[:_PAGE_MESSAGES]
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Novitrac sandbox</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; max-width: 64rem; }}
section {{ border-top: 1px solid #ddd; }} th {{ text-align: left; padding-right: 1rem; }}
pre {{ background: #f6f6f6; padding: .75rem; overflow: auto; max-height: 24rem; }}
form.control {{ margin: .25rem 0; }} output {{ font-family: monospace; white-space: pre-wrap; }}
</style></head><body>
<h1>Novitrac sandbox</h1>
<p>Local stand-ins for Twilio, ElevenLabs, Stripe and SMTP.
<a href="/?format=json">JSON index</a> ·
<a href="/docs">API</a></p>
{"".join(sections)}
<section><h2>Mailbox</h2>
<p>SMTP on <code>{escape(smtp["host"])}:{smtp["port"]}</code>, any credentials, no TLS.
<a href="/mailbox/">All messages</a></p>
<ul>{mail or "<li>No messages yet.</li>"}</ul></section>
<script>{_FORMS_SCRIPT}</script>
</body></html>
"""
