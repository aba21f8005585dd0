"""Request dependencies: settings, request details, the caller's identity and role.

Every dependency is a coroutine, even those that await nothing: FastAPI runs a plain function
dependency on a worker thread, a hop that costs more than most of what these do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_auth import sessions as auth_sessions
from novitrac_auth.audit import RequestInfo
from novitrac_auth.caller import Member
from novitrac_auth.config import Settings
from novitrac_auth.errors import UserTokenRequired
from novitrac_auth.signing import local_verifier
from novitrac_kit import db
from novitrac_kit.errors import DomainError, Forbidden, Unauthorized
from novitrac_kit.runtime import ContextDep, ServiceContext, SessionDep
from novitrac_kit.tokens import Identity, InvalidToken, JwksVerifier, KeysUnavailable, bearer

_USER_AGENT_LIMIT = 512


def _settings(context: ServiceContext) -> Settings:
    settings = context.settings
    if not isinstance(settings, Settings):
        raise TypeError("the auth service runs with novitrac_auth.config.Settings")
    return settings


async def get_settings(context: ContextDep) -> Settings:
    """The auth service's settings."""
    return _settings(context)


async def get_request_info(request: Request) -> RequestInfo:
    """Where the request came from (the gateway's ``X-Forwarded-For``, last entry, wins)."""
    forwarded = request.headers.get("x-forwarded-for")
    address = None
    if forwarded:
        address = forwarded.split(",")[-1].strip()[:64] or None
    if address is None and request.client is not None:
        address = request.client.host
    user_agent = request.headers.get("user-agent")
    request_id = request.headers.get("x-request-id")
    return RequestInfo(
        client_address=address,
        user_agent=user_agent[:_USER_AGENT_LIMIT] if user_agent else None,
        request_id=request_id[:128] if request_id else None,
    )


SettingsDep = Annotated[Settings, Depends(get_settings)]
RequestInfoDep = Annotated[RequestInfo, Depends(get_request_info)]


def verifier_of(request: Request) -> JwksVerifier:
    """The verifier of auth's own tokens (created on first use, then kept by the app)."""
    verifier: JwksVerifier | None = getattr(request.app.state, "auth_verifier", None)
    if verifier is None:
        context: ServiceContext = request.app.state.context
        if context.sessions is None:
            raise RuntimeError("the auth service needs its database")
        verifier = local_verifier(context.sessions, _settings(context))
        request.app.state.auth_verifier = verifier
    return verifier


async def _verifier(request: Request) -> JwksVerifier:
    return verifier_of(request)


async def verify_bearer(
    verifier: JwksVerifier, credentials: HTTPAuthorizationCredentials | None
) -> Identity:
    """The identity of a bearer token; 401 saying nothing more when there is none or it is bad."""
    if credentials is None:
        raise Unauthorized("authentication required", headers={"WWW-Authenticate": "Bearer"})
    try:
        return await verifier.verify(credentials.credentials)
    except (InvalidToken, KeysUnavailable):
        raise Unauthorized(
            "authentication required", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None


async def get_identity(
    verifier: Annotated[JwksVerifier, Depends(_verifier)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Identity:
    """Any valid access token: a user's or an API key's."""
    return await verify_bearer(verifier, credentials)


async def get_optional_identity(
    verifier: Annotated[JwksVerifier, Depends(_verifier)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Identity | None:
    """The bearer token's identity when one is sent (it must then be valid), else None."""
    return None if credentials is None else await verify_bearer(verifier, credentials)


IdentityDep = Annotated[Identity, Depends(get_identity)]
OptionalIdentityDep = Annotated[Identity | None, Depends(get_optional_identity)]


async def _member(identity: Identity, session: AsyncSession, *, write: bool) -> Member:
    if write and not identity.can_write:
        raise Forbidden("this credential is read-only")
    if identity.user_id is None:
        raise UserTokenRequired("this route needs a user's token, not an API key's")
    role = await auth_sessions.role_in(session, user_id=identity.user_id, org_id=identity.org_id)
    if role is None:
        raise Forbidden("you are no longer a member of this organisation")
    return Member(identity, identity.user_id, identity.org_id, role)


async def get_member(identity: IdentityDep, session: SessionDep) -> Member:
    """A user of the token's organisation (reading)."""
    return await _member(identity, session, write=False)


async def get_reading_organization(identity: IdentityDep, session: SessionDep) -> UUID:
    """The organisation a user of it, or one of its API keys, reads (API keys need no user)."""
    if identity.user_id is None:
        return identity.org_id
    return (await _member(identity, session, write=False)).org_id


async def get_writing_member(identity: IdentityDep, session: SessionDep) -> Member:
    """A user of the token's organisation, changing something."""
    return await _member(identity, session, write=True)


async def get_admin(identity: IdentityDep, session: SessionDep) -> Member:
    """An owner or admin of the token's organisation (403 for members and API keys)."""
    member = await _member(identity, session, write=False)
    if member.role not in ("owner", "admin"):
        raise Forbidden("only owners and admins may do this")
    return member


async def get_writing_admin(identity: IdentityDep, session: SessionDep) -> Member:
    """An owner or admin of the token's organisation, changing something."""
    member = await _member(identity, session, write=True)
    if member.role not in ("owner", "admin"):
        raise Forbidden("only owners and admins may do this")
    return member


MemberDep = Annotated[Member, Depends(get_member)]
ReadingOrganizationDep = Annotated[UUID, Depends(get_reading_organization)]
WritingMemberDep = Annotated[Member, Depends(get_writing_member)]
AdminDep = Annotated[Member, Depends(get_admin)]
WritingAdminDep = Annotated[Member, Depends(get_writing_admin)]


@asynccontextmanager
async def keeping_writes(context: ContextDep) -> AsyncIterator[AsyncSession]:
    """A transaction that commits even when the block raises a :class:`DomainError`.

    For refusals that must leave a trace: a failed login's counter and audit entry, a wrong
    code's attempt, a reused refresh token's revoked family. The error still reaches the caller.
    """
    if context.sessions is None:
        raise RuntimeError("the auth service needs its database")
    refused: DomainError | None = None
    async with db.transaction(context.sessions) as session:
        try:
            yield session
        except DomainError as error:
            refused = error
    if refused is not None:
        raise refused
