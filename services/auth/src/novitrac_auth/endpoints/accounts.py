"""Account routes: the public ones (sign-up, verification, login, tokens, password reset) and the
caller's own (me, organisations, switch, password change)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from novitrac_auth import accounts, organizations, sessions
from novitrac_auth.deps import (
    MemberDep,
    RequestInfoDep,
    SettingsDep,
    WritingMemberDep,
    keeping_writes,
    verifier_of,
    verify_bearer,
)
from novitrac_auth.reading import read_connection
from novitrac_auth.schemas import (
    Accepted,
    EmailRequest,
    LoginRequest,
    Me,
    OrganizationOut,
    PasswordChangeRequest,
    PasswordResetRequest,
    RefreshRequest,
    SignupAccepted,
    SignupRequest,
    SwitchRequest,
    TokenPair,
    VerifyRequest,
    errors,
)
from novitrac_kit.runtime import ContextDep, SessionDep
from novitrac_kit.tokens import bearer

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/signup", status_code=status.HTTP_202_ACCEPTED, response_model=SignupAccepted)
async def sign_up(
    body: SignupRequest, session: SessionDep, settings: SettingsDep, info: RequestInfoDep
) -> SignupAccepted:
    """Create an account and its organisation; a code to verify the address is emailed.

    The answer is the same whether or not the address already has an account.
    """
    await accounts.sign_up(session, settings, info, body)
    return SignupAccepted(email=body.email)


@router.post("/verify", response_model=TokenPair, responses=errors(400, 403))
async def verify(
    body: VerifyRequest, context: ContextDep, settings: SettingsDep, info: RequestInfoDep
) -> TokenPair:
    """Confirm the address with the emailed code: the account is activated and logged in."""
    async with keeping_writes(context) as session:
        return await accounts.verify(session, settings, info, email=body.email, code=body.code)


@router.post(
    "/verify/resend",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=errors(429),
)
async def resend(
    body: EmailRequest, session: SessionDep, settings: SettingsDep, info: RequestInfoDep
) -> Accepted:
    """Send a new verification code (at most one a minute)."""
    await accounts.resend(session, settings, info, body.email)
    return Accepted()


@router.post("/login", response_model=TokenPair, responses=errors(401, 403, 404, 429))
async def log_in(
    body: LoginRequest, context: ContextDep, settings: SettingsDep, info: RequestInfoDep
) -> TokenPair:
    """Log in with email and password, to the given organisation or the first one joined."""
    async with keeping_writes(context) as session:
        return await accounts.log_in(
            session, settings, info, email=body.email, password=body.password, org_id=body.org_id
        )


@router.post("/refresh", response_model=TokenPair, responses=errors(401))
async def refresh(
    body: RefreshRequest, context: ContextDep, settings: SettingsDep, info: RequestInfoDep
) -> TokenPair:
    """Trade a refresh token for a new pair; a refresh token works once."""
    async with keeping_writes(context) as session:
        return await sessions.rotate(session, settings, info, body.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def log_out(body: RefreshRequest, session: SessionDep) -> Response:
    """End the session the refresh token belongs to (an unknown token changes nothing)."""
    found = await sessions.family_of(session, body.refresh_token)
    if found is not None:
        await sessions.revoke_family(session, found[0])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/password/forgot", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def forgot_password(
    body: EmailRequest, session: SessionDep, settings: SettingsDep, info: RequestInfoDep
) -> Accepted:
    """Email a password-reset code, if the address has an account (the answer does not say)."""
    await accounts.forgot_password(session, settings, info, body.email)
    return Accepted()


@router.post(
    "/password/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(400),
)
async def reset_password(
    body: PasswordResetRequest, context: ContextDep, settings: SettingsDep, info: RequestInfoDep
) -> Response:
    """Set a new password with the emailed code; every session of the account ends."""
    async with keeping_writes(context) as session:
        await accounts.reset_password(
            session,
            settings,
            info,
            email=body.email,
            code=body.code,
            new_password=body.new_password,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password/change",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 403),
)
async def change_password(
    body: PasswordChangeRequest,
    member: WritingMemberDep,
    session: SessionDep,
    settings: SettingsDep,
    info: RequestInfoDep,
) -> Response:
    """Change the password (the current one is needed); every other session ends."""
    await accounts.change_password(
        session,
        settings,
        info,
        user_id=member.user_id,
        org_id=member.org_id,
        current_session=member.session_id,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Every dashboard page load asks this: the route resolves no dependencies (the bearer token is read
# and verified here, and documented as the other routes' is), reads on a connection outside any
# transaction, and renders the already validated answer once instead of validating it again.
@router.get(
    "/me",
    response_model=Me,
    responses=errors(401, 403),
    openapi_extra={"security": [{bearer.scheme_name: []}]},
)
async def me(request: Request) -> Response:
    """The caller, the organisation their token acts for, their role, and all their orgs."""
    identity = await verify_bearer(verifier_of(request), await bearer(request))
    engine = request.app.state.context.engine
    if engine is None:
        raise RuntimeError("the auth service needs its database")
    async with read_connection(engine) as connection:
        found = await organizations.me(connection, identity)
    return Response(found.model_dump_json(), media_type="application/json")


@router.get("/organizations", response_model=list[OrganizationOut], responses=errors(401, 403))
async def my_organizations(member: MemberDep, session: SessionDep) -> list[OrganizationOut]:
    """Every organisation the caller belongs to, with their role in each."""
    return await organizations.organizations_of(session, member.user_id)


@router.post("/switch", response_model=TokenPair, responses=errors(401, 403, 404))
async def switch(
    body: SwitchRequest,
    member: WritingMemberDep,
    session: SessionDep,
    settings: SettingsDep,
    info: RequestInfoDep,
) -> TokenPair:
    """Tokens for another organisation the caller belongs to."""
    return await organizations.switch(session, settings, info, member, body.org_id)
