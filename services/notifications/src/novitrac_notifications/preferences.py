"""Per-user preferences: which email and in-app categories a user receives (all, by default)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_notifications.categories import (
    REQUIRED_EMAIL_CATEGORIES,
    EmailCategory,
    InAppCategory,
)
from novitrac_notifications.db import preferences


@dataclass(frozen=True)
class Preferences:
    """What a user turned off; everything else is on."""

    email_off: frozenset[str] = frozenset()
    in_app_off: frozenset[str] = frozenset()

    def wants_email(self, category: EmailCategory) -> bool:
        """Whether an email of ``category`` goes out (a required category always does)."""
        return category in REQUIRED_EMAIL_CATEGORIES or category not in self.email_off

    def wants_in_app(self, category: InAppCategory) -> bool:
        """Whether an in-app notification of ``category`` is added to the feed."""
        return category not in self.in_app_off

    def email(self) -> dict[EmailCategory, bool]:
        """Every email category with whether it is on."""
        return {category: self.wants_email(category) for category in EmailCategory}

    def in_app(self) -> dict[InAppCategory, bool]:
        """Every in-app category with whether it is on."""
        return {category: self.wants_in_app(category) for category in InAppCategory}


async def ensure_defaults(session: AsyncSession, *, user_id: UUID) -> None:
    """Give a newly known user the default preferences (everything on), if they have none."""
    await session.execute(insert(preferences).values(user_id=user_id).on_conflict_do_nothing())


async def get(session: AsyncSession, *, user_id: UUID) -> Preferences:
    """The user's preferences (the defaults when none are stored)."""
    row = (
        await session.execute(
            select(preferences.c.email_off, preferences.c.in_app_off).where(
                preferences.c.user_id == user_id
            )
        )
    ).first()
    if row is None:
        return Preferences()
    return Preferences(frozenset(row.email_off), frozenset(row.in_app_off))


async def update(
    session: AsyncSession,
    *,
    user_id: UUID,
    email: Mapping[EmailCategory, bool],
    in_app: Mapping[InAppCategory, bool],
) -> Preferences:
    """Turn the given categories on or off, leaving the others as they are.

    Raises:
        ValueError: a required email category is turned off.
    """
    if any(not on and category in REQUIRED_EMAIL_CATEGORIES for category, on in email.items()):
        raise ValueError("security emails cannot be turned off")
    # Lock the row (or its absence, through the insert) so concurrent updates don't lose changes.
    await ensure_defaults(session, user_id=user_id)
    current = (
        await session.execute(
            select(preferences.c.email_off, preferences.c.in_app_off)
            .where(preferences.c.user_id == user_id)
            .with_for_update()
        )
    ).one()
    email_off = _apply(set(current.email_off), email)
    in_app_off = _apply(set(current.in_app_off), in_app)
    await session.execute(
        preferences.update()
        .where(preferences.c.user_id == user_id)
        .values(email_off=sorted(email_off), in_app_off=sorted(in_app_off), updated_at=func.now())
    )
    return Preferences(frozenset(email_off), frozenset(in_app_off))


def _apply(
    off: set[str], changes: Mapping[EmailCategory, bool] | Mapping[InAppCategory, bool]
) -> set[str]:
    for category, on in changes.items():
        if on:
            off.discard(category.value)
        else:
            off.add(category.value)
    return off
