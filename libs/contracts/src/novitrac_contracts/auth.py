"""Events published by the auth service: sign-up, one-time codes, organisations, members, keys."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import AwareDatetime, Field

from novitrac_contracts.common import EmailAddress
from novitrac_contracts.envelope import Event


class Role(StrEnum):
    """A member's role in an organisation."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class OtpPurpose(StrEnum):
    """What a one-time code is for."""

    SIGNUP = "signup"
    PASSWORD_RESET = "password_reset"


class ApiKeyScope(StrEnum):
    """What an API key may do: everything, or only read."""

    FULL = "full"
    READ_ONLY = "read_only"


class UserRegistered(Event):
    """Emitted when someone signs up; the user stays unverified until they confirm their email."""

    event_type: ClassVar[str] = "auth.user.registered.v1"

    user_id: UUID
    org_id: UUID = Field(description="The organisation created at sign-up, owned by the user.")
    email: EmailAddress


class OtpRequested(Event):
    """Emitted when a one-time code is issued and must be emailed to its recipient."""

    event_type: ClassVar[str] = "auth.otp.requested.v1"

    email: EmailAddress
    purpose: OtpPurpose
    code: str = Field(pattern=r"^[0-9]{6}$", description="The six-digit code to send.")
    expires_at: AwareDatetime
    user_id: UUID | None = Field(default=None, description="The user the code is for, if known.")


class OrgCreated(Event):
    """Emitted when an organisation is created, with the user who owns it."""

    event_type: ClassVar[str] = "auth.org.created.v1"

    org_id: UUID
    name: str
    owner_user_id: UUID
    owner_email: EmailAddress


class MemberInvited(Event):
    """Emitted when someone is invited to join an organisation; the invitation must be emailed."""

    event_type: ClassVar[str] = "auth.member.invited.v1"

    invitation_id: UUID
    org_id: UUID
    org_name: str
    email: EmailAddress = Field(description="Where the invitation goes.")
    role: Role = Field(description="The role the invitee gets on accepting.")
    code: str = Field(description="The invitation code the invitee presents to accept.")
    expires_at: AwareDatetime
    invited_by_user_id: UUID


class MemberJoined(Event):
    """Emitted when a user becomes a member of an organisation by accepting an invitation."""

    event_type: ClassVar[str] = "auth.member.joined.v1"

    org_id: UUID
    user_id: UUID
    email: EmailAddress
    role: Role


class MemberRoleChanged(Event):
    """Emitted when a member's role in an organisation changes."""

    event_type: ClassVar[str] = "auth.member.role_changed.v1"

    org_id: UUID
    user_id: UUID
    role: Role
    previous_role: Role
    changed_by_user_id: UUID


class MemberRemoved(Event):
    """Emitted when a member leaves an organisation or is removed from it."""

    event_type: ClassVar[str] = "auth.member.removed.v1"

    org_id: UUID
    user_id: UUID
    removed_by_user_id: UUID = Field(description="Equal to user_id when the member left.")


class ApiKeyCreated(Event):
    """Emitted when an API key is created for an organisation."""

    event_type: ClassVar[str] = "auth.api_key.created.v1"

    api_key_id: UUID
    org_id: UUID
    name: str
    prefix: str = Field(description="The key's first characters, shown to identify it.")
    scope: ApiKeyScope
    created_by_user_id: UUID


class ApiKeyRevoked(Event):
    """Emitted when an API key is revoked; anything caching it must drop it."""

    event_type: ClassVar[str] = "auth.api_key.revoked.v1"

    api_key_id: UUID
    org_id: UUID
    prefix: str = Field(description="The key's first characters, shown to identify it.")
    revoked_by_user_id: UUID
