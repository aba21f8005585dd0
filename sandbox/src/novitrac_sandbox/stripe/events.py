"""``/v1/events``: every event the account emitted, newest first, filterable by ``type``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from novitrac_sandbox.stripe.http import AccountDep, RawParams, read, respond
from novitrac_sandbox.stripe.store import LIST_PARAMS, page

router = APIRouter()


@router.get("/v1/events/{event_id}")
async def retrieve_event(event_id: str, account: AccountDep, values: RawParams) -> JSONResponse:
    """Retrieve an event."""
    params = read(values)
    return respond(account, account.events.get(event_id), params)


@router.get("/v1/events")
async def list_events(account: AccountDep, values: RawParams) -> JSONResponse:
    """List events, newest first; ``type`` may end in ``*`` (``invoice.*``)."""
    params = read(values, *LIST_PARAMS, "type", "types", "created", "delivery_success")
    wanted = params.strings("types")
    single = params.string("type")
    if single is not None:
        wanted.append(single)

    def matches(event_type: str) -> bool:
        return not wanted or any(
            event_type.startswith(w[:-1]) if w.endswith("*") else event_type == w for w in wanted
        )

    found = account.events.newest_first(lambda event: matches(event["type"]))
    return respond(account, page(found, params, "/v1/events"), params)
