"""Members and invitations of the caller's organisation."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from novitrac_auth import invitations, organizations
from novitrac_auth.deps import (
    AdminDep,
    OptionalIdentityDep,
    ReadingOrganizationDep,
    RequestInfoDep,
    SettingsDep,
    WritingAdminDep,
    WritingMemberDep,
)
from novitrac_auth.schemas import (
    InvitationAccept,
    InvitationOut,
    InvitationRequest,
    MemberOut,
    RoleChange,
    TokenPair,
    errors,
)
from novitrac_kit.runtime import SessionDep

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.get("/members", response_model=list[MemberOut], responses=errors(401, 403))
async def list_members(org_id: ReadingOrganizationDep, session: SessionDep) -> list[MemberOut]:
    """The members of the caller's organisation (API keys may read them too)."""
    return await organizations.members(session, org_id)


@router.patch("/members/{user_id}", response_model=MemberOut, responses=errors(401, 403, 404, 409))
async def change_role(
    user_id: UUID,
    body: RoleChange,
    admin: WritingAdminDep,
    session: SessionDep,
    info: RequestInfoDep,
) -> MemberOut:
    """Give a member another role (only an owner makes or unmakes owners)."""
    return await organizations.change_role(session, info, admin, user_id, body.role)


@router.delete(
    "/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 403, 404, 409),
)
async def remove_member(
    user_id: UUID, member: WritingMemberDep, session: SessionDep, info: RequestInfoDep
) -> Response:
    """Remove a member (owners and admins), or leave (anyone, with their own id)."""
    await organizations.remove(session, info, member, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/invitations",
    status_code=status.HTTP_201_CREATED,
    response_model=InvitationOut,
    responses=errors(401, 403, 409),
)
async def invite(
    body: InvitationRequest,
    admin: WritingAdminDep,
    session: SessionDep,
    settings: SettingsDep,
    info: RequestInfoDep,
) -> InvitationOut:
    """Invite an address; the code is emailed to it."""
    return await invitations.invite(
        session, settings, info, admin, email=body.email, role=body.role
    )


@router.get("/invitations", response_model=list[InvitationOut], responses=errors(401, 403))
async def list_invitations(admin: AdminDep, session: SessionDep) -> list[InvitationOut]:
    """The organisation's invitations, newest first."""
    return await invitations.listed(session, admin.org_id)


@router.delete(
    "/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 403, 404),
)
async def revoke_invitation(
    invitation_id: UUID, admin: WritingAdminDep, session: SessionDep, info: RequestInfoDep
) -> Response:
    """Revoke a pending invitation."""
    await invitations.revoke(session, info, admin, invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/invitations/accept", response_model=TokenPair, responses=errors(400, 401, 409))
async def accept_invitation(
    body: InvitationAccept,
    identity: OptionalIdentityDep,
    session: SessionDep,
    settings: SettingsDep,
    info: RequestInfoDep,
) -> TokenPair:
    """Join the organisation with the emailed code and log in there.

    A new user gives a name and a password; an existing one sends their bearer token or password.
    """
    return await invitations.accept(session, settings, info, body, identity)
