"""HTTP request and response models of the auth service."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from novitrac_kit.errors import error_responses
from novitrac_kit.tokens import Role

MAX_EMAIL_LENGTH = 320
MIN_PASSWORD_LENGTH = 8


_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")


def _text(value: str) -> str:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _normalise_email(value: str) -> str:
    value = _text(value).strip().lower()
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(value):
        raise ValueError("not a valid email address")
    return value


def _plain_text(value: str) -> str:
    value = _text(value).strip()
    if not value:
        raise ValueError("must not be blank")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError("must not contain control characters")
    return value


Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=MAX_EMAIL_LENGTH,
        pattern=r"^[^@\s\x00]+@[^@\s\x00]+$",
        description="Email address (compared case-insensitively).",
        examples=["ada@example.com"],
    ),
    AfterValidator(_normalise_email),
]
Password = Annotated[
    str,
    Field(min_length=MIN_PASSWORD_LENGTH, max_length=256, description="At least 8 characters."),
    AfterValidator(_text),
]
AnyPassword = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_text)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_plain_text)]
Code = Annotated[str, Field(pattern=r"^[0-9]{6}$", description="The six-digit code sent by email.")]
Opaque = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_text)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupRequest(_Body):
    email: Email
    password: Password
    name: Name
    organization_name: Name


class SignupAccepted(BaseModel):
    email: str
    status: Literal["verification_required"] = "verification_required"


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"


class VerifyRequest(_Body):
    email: Email
    code: Code


class EmailRequest(_Body):
    email: Email


class LoginRequest(_Body):
    email: Email
    password: AnyPassword
    org_id: UUID | None = Field(None, description="The organisation to log in to.")


class RefreshRequest(_Body):
    refresh_token: Opaque


class PasswordResetRequest(_Body):
    email: Email
    code: Code
    new_password: Password


class PasswordChangeRequest(_Body):
    current_password: AnyPassword
    new_password: Password


class SwitchRequest(_Body):
    org_id: UUID


class TokenPair(BaseModel):
    """An access token and the refresh token that renews it."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds the access token lives.")
    refresh_token: str
    refresh_expires_in: int = Field(description="Seconds the refresh token lives.")
    user_id: UUID
    org_id: UUID
    role: Role


class UserOut(BaseModel):
    id: UUID
    email: str
    name: str
    verified_at: datetime | None


class OrganizationOut(BaseModel):
    id: UUID
    name: str
    role: Role


class Me(BaseModel):
    user: UserOut
    organization: OrganizationOut = Field(description="The organisation the token acts for.")
    role: Role
    organizations: list[OrganizationOut]


class MemberOut(BaseModel):
    user_id: UUID
    email: str
    name: str
    role: Role
    joined_at: datetime


class RoleChange(_Body):
    role: Role


class InvitationRequest(_Body):
    email: Email
    role: Role = "member"


class InvitationOut(BaseModel):
    id: UUID
    email: str
    role: Role
    status: Literal["pending", "accepted", "revoked", "expired"]
    expires_at: datetime
    created_at: datetime
    invited_by: UUID | None


class InvitationAccept(_Body):
    code: Opaque
    name: Name | None = Field(None, description="Required when the invitee has no account.")
    password: AnyPassword | None = Field(
        None,
        description=(
            "A new user's password, or an existing user's current one when they send no "
            "bearer token."
        ),
    )


class ApiKeyRequest(_Body):
    name: Name
    scope: Literal["full", "read_only"] = "full"


class ApiKeyOut(BaseModel):
    id: UUID
    name: str
    prefix: str
    scope: Literal["full", "read_only"]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself: shown this once, never again.")


class ApiKeyExchangeRequest(_Body):
    key: Opaque


class ApiKeyExchange(BaseModel):
    access_token: str
    expires_in: int
    org_id: UUID
    api_key_id: UUID
    scope: Literal["full", "read"]


class AuditEntry(BaseModel):
    id: int
    action: str
    actor_user_id: UUID | None
    actor_api_key_id: UUID | None
    target_type: str | None
    target_id: str | None
    client_address: str | None
    user_agent: str | None
    details: dict[str, Any]
    at: datetime


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: int | None = Field(description="Pass as `before` for the next (older) page.")


class Jwks(BaseModel):
    keys: list[dict[str, Any]]


class SigningKeyRotated(BaseModel):
    kid: str


_DESCRIPTIONS = {
    400: "The code or invitation is not valid",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    409: "Conflicts with the current state",
    429: "Too many requests",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry documenting the error statuses a route can answer."""
    return error_responses(_DESCRIPTIONS, *statuses)
