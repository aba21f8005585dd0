"""The events telephony consumes: agents, billing standing, transcripts and charges."""

from __future__ import annotations

from novitrac_contracts.billing import (
    AccountReinstated,
    AccountSuspended,
    BalanceChanged,
    CallCharged,
    PlanChanged,
)
from novitrac_contracts.voice import (
    AgentDeleted,
    AgentUpdated,
    ConversationAnalyzed,
    ConversationEnded,
)
from novitrac_kit.handlers import EventHandlers, HandlerContext
from novitrac_telephony import accounts, agents, campaigns
from novitrac_telephony.db import calls

handlers = EventHandlers()


@handlers.on(AgentUpdated)
async def agent_updated(event: AgentUpdated, ctx: HandlerContext) -> None:
    """Keep the agent's latest revision."""
    await agents.apply_update(ctx.session, event)


@handlers.on(AgentDeleted)
async def agent_deleted(event: AgentDeleted, ctx: HandlerContext) -> None:
    """Stop using the agent for new calls and numbers."""
    await agents.apply_delete(ctx.session, agent_id=event.agent_id, org_id=event.org_id)


@handlers.on(PlanChanged)
async def plan_changed(event: PlanChanged, ctx: HandlerContext) -> None:
    """Keep the organisation's limits."""
    await accounts.set_plan(
        ctx.session,
        org_id=event.org_id,
        plan_id=event.plan_id,
        currency=event.currency,
        limits=event.limits,
    )


@handlers.on(BalanceChanged)
async def balance_changed(event: BalanceChanged, ctx: HandlerContext) -> None:
    """Keep the organisation's latest balance; campaigns paused for billing resume if it allows."""
    await accounts.set_balance(
        ctx.session, org_id=event.org_id, balance=event.balance, sequence=event.sequence
    )
    await campaigns.resume_if_calls_allowed(ctx.session, org_id=event.org_id)


@handlers.on(AccountSuspended)
async def account_suspended(event: AccountSuspended, ctx: HandlerContext) -> None:
    """No new calls until reinstated."""
    await accounts.set_suspended(
        ctx.session,
        org_id=event.org_id,
        suspended=True,
        balance=event.balance,
        decided_at=ctx.envelope.occurred_at,
    )


@handlers.on(AccountReinstated)
async def account_reinstated(event: AccountReinstated, ctx: HandlerContext) -> None:
    """Calls may start again: campaigns paused for billing resume.

    A reinstatement older than the standing already applied (delivered late or again) changes
    nothing, and resumes nothing.
    """
    applied = await accounts.set_suspended(
        ctx.session,
        org_id=event.org_id,
        suspended=False,
        balance=event.balance,
        decided_at=ctx.envelope.occurred_at,
    )
    if applied:
        await campaigns.resume_paused_for_billing(ctx.session, org_id=event.org_id)


@handlers.on(ConversationEnded)
async def conversation_ended(event: ConversationEnded, ctx: HandlerContext) -> None:
    """Keep the call's transcript (and summary, when the analysis is done)."""
    values: dict[str, object] = {
        "conversation_id": event.conversation_id,
        "transcript": [line.model_dump(mode="json") for line in event.transcript],
    }
    if event.summary is not None:
        values["summary"] = event.summary
    await ctx.session.execute(
        calls.update()
        .where(calls.c.id == event.call_id, calls.c.org_id == event.org_id)
        .values(**values)
    )


@handlers.on(ConversationAnalyzed)
async def conversation_analyzed(event: ConversationAnalyzed, ctx: HandlerContext) -> None:
    """Keep the call's summary."""
    if event.summary is not None:
        await ctx.session.execute(
            calls.update()
            .where(calls.c.id == event.call_id, calls.c.org_id == event.org_id)
            .values(summary=event.summary)
        )


@handlers.on(CallCharged)
async def call_charged(event: CallCharged, ctx: HandlerContext) -> None:
    """Keep what billing charged for the call."""
    await ctx.session.execute(
        calls.update()
        .where(calls.c.id == event.call_id, calls.c.org_id == event.org_id)
        .values(
            cost_amount=event.amount,
            cost_currency=event.currency,
            billed_seconds=event.billed_seconds,
            rate_per_minute=event.rate_per_minute,
        )
    )
