"""The hosted checkout page: a session's ``url`` on the sandbox itself.

``GET /checkout/{id}`` shows Pay, Pay with a declined card and Cancel buttons.
``POST /checkout/{id}/pay`` completes the session (``card=declined``: Stripe's 402
``card_declined``, the session stays open); ``POST /checkout/{id}/cancel`` expires it. Both answer
JSON (the session), or, for a browser (``Accept: text/html``), redirect to ``success_url`` /
``cancel_url`` with ``{CHECKOUT_SESSION_ID}`` filled in.
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from novitrac_sandbox.stripe.account import Account
from novitrac_sandbox.stripe.checkout import expire, pay
from novitrac_sandbox.stripe.errors import StripeError
from novitrac_sandbox.stripe.http import AccountDep
from novitrac_sandbox.stripe.store import Object

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Sandbox checkout</title>
<style>body{{font-family:sans-serif;max-width:32em;margin:3em auto}}button{{margin:.3em}}</style>
</head><body>
<h1>Sandbox checkout</h1>
<p>{mode}: <strong>{amount}</strong> &middot; session <code>{session_id}</code>
&middot; {status}</p>
<ul>{lines}</ul>
<form method="post" action="/checkout/{session_id}/pay"><button>Pay</button></form>
<form method="post" action="/checkout/{session_id}/pay">
<input type="hidden" name="card" value="declined"><button>Pay with a declined card</button></form>
<form method="post" action="/checkout/{session_id}/cancel"><button>Cancel</button></form>
<p>{message}</p>
</body></html>"""


def render_page(account: Account, session: Object, message: str = "") -> str:
    """The hosted page of ``session``."""
    lines = "".join(
        f"<li>{html.escape(str(line['description']))} &times; {line['quantity'] or 'usage'}: "
        f"{line['amount_total'] / 100:.2f} {html.escape(line['currency'].upper())}</li>"
        for line in account.session_details[session["id"]].line_items
    )
    return _PAGE.format(
        mode=html.escape(session["mode"]),
        amount=f"{(session['amount_total'] or 0) / 100:.2f} {(session['currency'] or '').upper()}",
        session_id=html.escape(session["id"]),
        status=html.escape(session["status"]),
        lines=lines,
        message=html.escape(message),
    )


router = APIRouter()


@router.get("/checkout/{session_id}", response_class=HTMLResponse)
async def checkout_page(session_id: str, account: AccountDep) -> HTMLResponse:
    """The hosted checkout page."""
    session = account.sessions.find(session_id)
    if session is None:
        return HTMLResponse("<h1>Unknown checkout session</h1>", status_code=404)
    return HTMLResponse(render_page(account, session))


@router.post("/checkout/{session_id}/pay")
async def pay_session(
    session_id: str,
    request: Request,
    account: AccountDep,
    card: Annotated[str | None, Form()] = None,
) -> Response:
    """Pay the session (``card=declined`` to be declined)."""
    session = account.sessions.get(session_id)
    try:
        pay(account, session, declined=card == "declined")
    except StripeError as exc:
        if _wants_html(request):
            return HTMLResponse(render_page(account, session, exc.message), status_code=exc.status)
        raise
    return _answer(request, session, session["success_url"])


@router.post("/checkout/{session_id}/cancel")
async def cancel_session(session_id: str, request: Request, account: AccountDep) -> Response:
    """The shopper cancels: the session expires."""
    session = account.sessions.get(session_id)
    expire(account, session)
    return _answer(request, session, session["cancel_url"])


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _answer(request: Request, session: Object, target: str | None) -> Response:
    if _wants_html(request):
        if target:
            return RedirectResponse(
                target.replace("{CHECKOUT_SESSION_ID}", session["id"]), status_code=303
            )
        return HTMLResponse(f"<h1>Checkout {html.escape(session['status'])}</h1>")
    return JSONResponse(session)
