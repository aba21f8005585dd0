"""What a user can choose to receive: email categories and in-app categories.

Security emails (sign-up and password-reset codes, invitations) are always sent: without them no
one could sign up, recover an account or join a team.
"""

from enum import StrEnum


class EmailCategory(StrEnum):
    """The kinds of email a user receives."""

    SECURITY = "security"
    TEAM = "team"
    BILLING = "billing"
    CALLS = "calls"


class InAppCategory(StrEnum):
    """The kinds of in-app notification; a notification's ``kind`` starts with one."""

    TEAM = "team"
    BILLING = "billing"
    CALLS = "calls"


REQUIRED_EMAIL_CATEGORIES = frozenset({EmailCategory.SECURITY})
"""Categories no preference can turn off."""


def in_app_category(kind: str) -> InAppCategory:
    """The category of an in-app notification kind: its first dotted word (``team.member_joined``).

    Raises:
        ValueError: the kind belongs to no known category.
    """
    return InAppCategory(kind.partition(".")[0])
