"""The mailbox's HTTP API and page, so a developer sees the emails the platform sent.

Routes (also mounted by the control app under ``/mailbox``):

* ``GET /`` — an HTML page listing the messages, newest first, with their text bodies.
* ``GET /messages?to=ADDRESS`` — the messages as JSON (without ``raw``), newest first; ``to``
  keeps those whose envelope recipients include the address (case-insensitive).
* ``GET /messages/{id}`` — one message, ``raw`` included; 404 when unknown.
* ``GET /messages/{id}/html`` — its HTML body, served sandboxed; 404 when it has none.
* ``DELETE /messages`` — empty the mailbox: ``{"deleted": N}``.
"""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from novitrac_sandbox.config import SandboxConfig
from novitrac_sandbox.smtp.mailbox import Mailbox, Message


def create_app(config: SandboxConfig, mailbox: Mailbox) -> FastAPI:
    """The mailbox API and page over ``mailbox``, fed by the SMTP sink on ``config.smtp_port``."""
    app = FastAPI(title="Novitrac sandbox mailbox", docs_url="/docs", redoc_url=None)

    def find(message_id: str) -> Message:
        message = mailbox.get(message_id)
        if message is None:
            raise HTTPException(status_code=404, detail=f"no message {message_id}")
        return message

    @app.get(
        "/messages",
        response_model=list[Message],
        response_model_exclude={"__all__": {"raw"}},
    )
    async def list_messages(
        to: Annotated[str | None, Query(description="only messages to this address")] = None,
    ) -> list[Message]:
        return mailbox.messages(to=to)

    @app.get("/messages/{message_id}", response_model=Message, name="message")
    async def get_message(message_id: str) -> Message:
        return find(message_id)

    @app.get("/messages/{message_id}/html", response_class=HTMLResponse, name="message_html")
    async def get_message_html(message_id: str) -> HTMLResponse:
        html = find(message_id).html
        if html is None:
            raise HTTPException(status_code=404, detail=f"message {message_id} has no HTML body")
        return HTMLResponse(html, headers={"Content-Security-Policy": "sandbox"})

    @app.delete("/messages")
    async def clear_messages() -> dict[str, int]:
        return {"deleted": mailbox.clear()}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request, to: str | None = None) -> HTMLResponse:
        return HTMLResponse(render_page(request, config, mailbox.messages(to=to)))

    return app


def render_page(request: Request, config: SandboxConfig, messages: list[Message]) -> str:
    """The mailbox page: one folded entry per message, its text body inside."""
    rows = "\n".join(_render_message(request, message) for message in messages) or (
        "<p>No messages yet.</p>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sandbox mailbox</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; max-width: 60rem; }}
details {{ border-bottom: 1px solid #ddd; padding: .5rem 0; }}
summary {{ cursor: pointer; }} .meta {{ color: #666; font-size: .9em; }}
pre {{ white-space: pre-wrap; background: #f6f6f6; padding: .75rem; }}
</style></head><body>
<h1>Sandbox mailbox</h1>
<p class="meta">SMTP on {escape(config.host)}:{config.smtp_port} (any credentials, no TLS);
{len(messages)} message(s), newest first.
<a href="{escape(str(request.url_for("list_messages")))}">JSON</a></p>
{rows}
</body></html>
"""


def _render_message(request: Request, message: Message) -> str:
    received = message.received_at.strftime("%H:%M:%S")
    links = [f'<a href="{escape(str(request.url_for("message", message_id=message.id)))}">JSON</a>']
    if message.html is not None:
        html_url = request.url_for("message_html", message_id=message.id)
        links.append(f'<a href="{escape(str(html_url))}">HTML</a>')
    body = message.text if message.text is not None else "(no text part)"
    return f"""<details>
<summary><strong>{escape(message.subject or "(no subject)")}</strong>
<span class="meta">to {escape(", ".join(message.recipients))} from {escape(message.sender)}
at {received}</span></summary>
<p class="meta">{" · ".join(links)}</p>
<pre>{escape(body)}</pre>
</details>"""
