"""Errors of the auth service beyond the kit's generic ones."""

from novitrac_kit.errors import DomainError, Forbidden


class InvalidCode(DomainError):
    """The one-time code is wrong, or no code is waiting for this address."""

    code = "invalid_code"


class CodeExpired(DomainError):
    """The one-time code is past its validity: a new one must be requested."""

    code = "code_expired"


class CodeExhausted(DomainError):
    """Too many wrong guesses burnt the one-time code: a new one must be requested."""

    code = "code_exhausted"


class InvalidInvitation(DomainError):
    """The invitation code is unknown, expired, revoked or already used."""

    code = "invalid_invitation"


class EmailNotVerified(Forbidden):
    """The password is right but the email address was never confirmed."""

    code = "email_not_verified"


class UserTokenRequired(Forbidden):
    """The route acts for a person; an API key's token cannot use it."""

    code = "user_token_required"
