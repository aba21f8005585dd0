"""What every Stripe REST route shares: reading params, rendering objects, the account."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from novitrac_sandbox.stripe.account import Account, current_account
from novitrac_sandbox.stripe.forms import decode, malformed
from novitrac_sandbox.stripe.params import Params
from novitrac_sandbox.stripe.store import Object

AccountDep = Annotated[Account, Depends(current_account)]


async def raw_params(request: Request) -> dict[str, Any]:
    """The decoded params: the query string of a GET or DELETE, the form body of a POST."""
    if request.method in ("GET", "DELETE"):
        return decode(request.url.query)
    try:
        text = (await request.body()).decode()
    except UnicodeDecodeError:
        raise malformed("the body is not UTF-8") from None
    params = decode(text)
    if request.url.query:
        params = {**decode(request.url.query), **params}
    return params


RawParams = Annotated[dict[str, Any], Depends(raw_params)]


def read(values: dict[str, Any], *allowed: str) -> Params:
    """Top-level params allowing exactly ``allowed`` (and ``expand``)."""
    return Params(values, allowed=allowed)


def respond(account: Account, obj: Object, params: Params, status: int = 200) -> JSONResponse:
    """The JSON answer carrying ``obj``, expanded as ``expand[]`` asks."""
    return JSONResponse(account.store.render(obj, params.strings("expand")), status_code=status)
