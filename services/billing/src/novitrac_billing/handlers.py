"""The events billing consumes: organisations to open accounts for, calls to charge."""

from __future__ import annotations

from novitrac_billing import accounts, charging
from novitrac_contracts.auth import OrgCreated
from novitrac_contracts.telephony import CallEnded
from novitrac_kit.handlers import EventHandlers, HandlerContext

handlers = EventHandlers()


@handlers.on(OrgCreated)
async def open_account(event: OrgCreated, ctx: HandlerContext) -> None:
    """Open the new organisation's account with its trial credit."""
    await accounts.open_account(ctx.session, event)


@handlers.on(CallEnded)
async def charge_call(event: CallEnded, ctx: HandlerContext) -> None:
    """Charge the call once, at the rate of the plan in force when it started."""
    await charging.charge_call(
        ctx.session, event, correlation_id=ctx.envelope.correlation_id or str(event.call_id)
    )
