"""The caller of an authenticated route, as the domain logic sees them."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from novitrac_kit.tokens import Identity, Role


@dataclass(frozen=True)
class Member:
    """A user acting in an organisation, with their current role (read from the database)."""

    identity: Identity
    user_id: UUID
    org_id: UUID
    role: Role

    @property
    def session_id(self) -> UUID | None:
        """The refresh-token family the access token was issued in."""
        sid = self.identity.claims.get("sid")
        try:
            return None if sid is None else UUID(str(sid))
        except ValueError:
            return None
