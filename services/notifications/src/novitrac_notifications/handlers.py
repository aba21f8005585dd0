"""The events notifications consumes: auth's codes, invitations and who is who; billing news;
and every event an organisation's webhook endpoints may receive (:mod:`.webhooks`)."""

from __future__ import annotations

import math
from urllib.parse import urlencode

from novitrac_contracts.auth import (
    MemberInvited,
    MemberJoined,
    MemberRemoved,
    MemberRoleChanged,
    OrgCreated,
    OtpPurpose,
    OtpRequested,
    Role,
    UserRegistered,
)
from novitrac_contracts.billing import (
    AccountReinstated,
    AccountSuspended,
    BalanceRanLow,
    PaymentFailed,
    PaymentSucceeded,
    PlanChanged,
)
from novitrac_contracts.envelope import Event
from novitrac_kit.handlers import EventHandlers, HandlerContext
from novitrac_notifications import (
    billing_notices,
    directory,
    emails,
    feed,
    preferences,
    templates,
    webhooks,
)

handlers = EventHandlers()

TEAM_PATH = "/settings/team"


@handlers.on(OtpRequested)
async def email_code(event: OtpRequested, ctx: HandlerContext) -> None:
    """Queue the sign-up or password-reset code for its recipient."""
    if event.purpose is OtpPurpose.SIGNUP:
        template, page = templates.SIGNUP_CODE, "/verify"
    else:
        template, page = templates.PASSWORD_RESET_CODE, "/reset-password"
    lifetime = (event.expires_at - ctx.envelope.occurred_at).total_seconds()
    await emails.queue(
        ctx.session,
        template=template.name,
        to=event.email,
        variables={
            "code": event.code,
            "expires_in_minutes": max(1, math.ceil(lifetime / 60)),
            "path": f"{page}?{urlencode({'email': event.email})}",
        },
        caused_by=ctx.envelope.id,
        org_id=ctx.envelope.org_id,
        user_id=event.user_id,
    )


@handlers.on(MemberInvited)
async def email_invitation(event: MemberInvited, ctx: HandlerContext) -> None:
    """Queue the invitation email, with its code and a link to accept it."""
    await directory.save_organization(ctx.session, org_id=event.org_id, name=event.org_name)
    await emails.queue(
        ctx.session,
        template=templates.INVITATION.name,
        to=event.email,
        variables={
            "org_name": event.org_name,
            "role": event.role.value,
            "code": event.code,
            "expires_at": event.expires_at.strftime("%d %B %Y at %H:%M UTC"),
            "path": f"/invitations/accept?{urlencode({'code': event.code})}",
        },
        caused_by=ctx.envelope.id,
        org_id=event.org_id,
    )


@handlers.on(UserRegistered)
async def remember_user(event: UserRegistered, ctx: HandlerContext) -> None:
    """Record a new user, the organisation they own, and their default preferences."""
    await directory.save_recipient(ctx.session, user_id=event.user_id, email=event.email)
    await directory.save_membership(
        ctx.session, org_id=event.org_id, user_id=event.user_id, role=Role.OWNER.value
    )
    await preferences.ensure_defaults(ctx.session, user_id=event.user_id)


@handlers.on(OrgCreated)
async def remember_organization(event: OrgCreated, ctx: HandlerContext) -> None:
    """Record a new organisation and its owner."""
    await directory.save_organization(ctx.session, org_id=event.org_id, name=event.name)
    await directory.save_recipient(
        ctx.session, user_id=event.owner_user_id, email=event.owner_email
    )
    await directory.save_membership(
        ctx.session, org_id=event.org_id, user_id=event.owner_user_id, role=Role.OWNER.value
    )
    await preferences.ensure_defaults(ctx.session, user_id=event.owner_user_id)


@handlers.on(MemberJoined)
async def welcome_member(event: MemberJoined, ctx: HandlerContext) -> None:
    """Record the membership and tell the organisation's owners and admins who joined."""
    session = ctx.session
    await directory.save_recipient(session, user_id=event.user_id, email=event.email)
    await directory.save_membership(
        session, org_id=event.org_id, user_id=event.user_id, role=event.role.value
    )
    await preferences.ensure_defaults(session, user_id=event.user_id)
    org_name = await directory.organization_name(session, org_id=event.org_id)
    org_label = org_name or "your organisation"
    for manager in await directory.managers(session, org_id=event.org_id):
        if manager.user_id == event.user_id:
            continue
        await feed.add(
            session,
            org_id=event.org_id,
            user_id=manager.user_id,
            kind="team.member_joined",
            title=f"{event.email} joined as {event.role.value}",
            body=f"{event.email} joined {org_label} as {event.role.value}.",
            link=TEAM_PATH,
            caused_by=ctx.envelope.id,
            correlation_id=ctx.envelope.correlation_id,
        )
        await emails.queue(
            session,
            template=templates.MEMBER_JOINED.name,
            to=manager.email,
            variables={
                "member": event.email,
                "org_name": org_label,
                "role": event.role.value,
                "path": TEAM_PATH,
            },
            caused_by=ctx.envelope.id,
            org_id=event.org_id,
            user_id=manager.user_id,
        )


@handlers.on(MemberRoleChanged)
async def change_role(event: MemberRoleChanged, ctx: HandlerContext) -> None:
    """Keep the member's new role."""
    await directory.save_membership(
        ctx.session, org_id=event.org_id, user_id=event.user_id, role=event.role.value
    )


@handlers.on(MemberRemoved)
async def remove_member(event: MemberRemoved, ctx: HandlerContext) -> None:
    """Forget the membership."""
    await directory.remove_membership(ctx.session, org_id=event.org_id, user_id=event.user_id)


@handlers.on(BalanceRanLow)
async def tell_balance_low(event: BalanceRanLow, ctx: HandlerContext) -> None:
    """Tell owners and admins the balance ran low, with a link to top up."""
    await billing_notices.tell_managers(
        ctx, org_id=event.org_id, notice_for=lambda org: billing_notices.balance_low(event, org)
    )


@handlers.on(PaymentFailed)
async def tell_payment_failed(event: PaymentFailed, ctx: HandlerContext) -> None:
    """Tell owners and admins a payment failed, why, and when the grace period ends."""
    await billing_notices.tell_managers(
        ctx, org_id=event.org_id, notice_for=lambda org: billing_notices.payment_failed(event, org)
    )


@handlers.on(AccountSuspended)
async def tell_suspended(event: AccountSuspended, ctx: HandlerContext) -> None:
    """Tell owners and admins the account is suspended, why, and how to reinstate it."""
    await billing_notices.tell_managers(
        ctx,
        org_id=event.org_id,
        notice_for=lambda org: billing_notices.account_suspended(event, org),
    )


@handlers.on(AccountReinstated)
async def tell_reinstated(event: AccountReinstated, ctx: HandlerContext) -> None:
    """Tell owners and admins calls may start again."""
    await billing_notices.tell_managers(
        ctx,
        org_id=event.org_id,
        notice_for=lambda org: billing_notices.account_reinstated(event, org),
    )


@handlers.on(PaymentSucceeded)
async def send_receipt(event: PaymentSucceeded, ctx: HandlerContext) -> None:
    """Tell owners and admins a payment arrived, and email them the receipt."""
    paid_at = ctx.envelope.occurred_at
    await billing_notices.tell_managers(
        ctx,
        org_id=event.org_id,
        notice_for=lambda org: billing_notices.payment_received(event, org, paid_at=paid_at),
    )


@handlers.on(PlanChanged)
async def tell_plan_changed(event: PlanChanged, ctx: HandlerContext) -> None:
    """Tell owners and admins which plan, with which limits, is now in force.

    Not the plan an account opens with: that was never a change anyone made.
    """
    if event.opening:
        return
    await billing_notices.tell_managers(
        ctx, org_id=event.org_id, notice_for=lambda org: billing_notices.plan_changed(event, org)
    )


async def queue_webhooks(event: Event, ctx: HandlerContext) -> None:
    """Queue the event for the webhook endpoints of its organisation that want it.

    Registered for every type in :data:`webhooks.WEBHOOK_EVENTS`, after any other handler of the
    type; each of those events names its organisation, and only that one's endpoints get it.
    """
    org_id = getattr(event, "org_id", None) or ctx.envelope.org_id
    if org_id is None:
        return
    await webhooks.enqueue_event(ctx.session, ctx.envelope, org_id=org_id)


for _model in webhooks.WEBHOOK_EVENTS:
    handlers.on(_model)(queue_webhooks)
