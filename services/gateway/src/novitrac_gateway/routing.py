"""Which service a public path belongs to, and which requests need no credential."""

from __future__ import annotations

from dataclasses import dataclass

AUTH = "auth"
TELEPHONY = "telephony"
VOICE_AI = "voice-ai"
BILLING = "billing"
NOTIFICATIONS = "notifications"
SERVICES = (AUTH, TELEPHONY, VOICE_AI, BILLING, NOTIFICATIONS)


@dataclass(frozen=True)
class Prefix:
    """A path prefix owned by one service.

    Attributes:
        path: the prefix, without a trailing slash.
        service: the owning service.
        children_only: the prefix itself is not a route, only paths below it (``/v1/auth/*``).
    """

    path: str
    service: str
    children_only: bool = False

    def matches(self, path: str) -> bool:
        """Whether ``path`` is the prefix itself (unless children only) or lies below it."""
        if path == self.path:
            return not self.children_only
        return path.startswith(self.path + "/")


PREFIXES = (
    Prefix("/v1/auth", AUTH, children_only=True),
    Prefix("/.well-known/jwks.json", AUTH),
    Prefix("/v1/calls", TELEPHONY),
    Prefix("/v1/campaigns", TELEPHONY),
    Prefix("/v1/contacts", TELEPHONY),
    Prefix("/v1/do-not-call", TELEPHONY),
    Prefix("/v1/numbers", TELEPHONY),
    Prefix("/v1/sms", TELEPHONY),
    Prefix("/webhooks/twilio", TELEPHONY, children_only=True),
    Prefix("/v1/agents", VOICE_AI),
    Prefix("/v1/conversations", VOICE_AI),
    Prefix("/webhooks/elevenlabs", VOICE_AI),
    Prefix("/v1/billing", BILLING, children_only=True),
    Prefix("/webhooks/stripe", BILLING),
    Prefix("/v1/notifications", NOTIFICATIONS),
    Prefix("/v1/webhook-endpoints", NOTIFICATIONS),
)

PUBLIC_POSTS = frozenset(
    {
        "/v1/auth/signup",
        "/v1/auth/verify",
        "/v1/auth/verify/resend",
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/auth/password/forgot",
        "/v1/auth/password/reset",
        "/v1/auth/invitations/accept",
    }
)
WEBHOOKS = "/webhooks/"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def prefix_for(path: str) -> Prefix | None:
    """The prefix ``path`` lies under, or None when no service serves it (or it is unsafe)."""
    if not is_clean(path):
        return None
    for prefix in PREFIXES:
        if prefix.matches(path):
            return prefix
    return None


def service_for(path: str) -> str | None:
    """The service that serves ``path``, or None when no service does (or the path is unsafe)."""
    prefix = prefix_for(path)
    return None if prefix is None else prefix.service


def is_public(method: str, path: str) -> bool:
    """Whether a request reaches its service without a credential checked by the gateway."""
    if path.startswith(WEBHOOKS):
        return True
    if method == "GET" and path == "/.well-known/jwks.json":
        return True
    return method == "POST" and path in PUBLIC_POSTS


def is_webhook(path: str) -> bool:
    """Whether ``path`` is a provider's webhook."""
    return path.startswith(WEBHOOKS)


def is_clean(path: str) -> bool:
    """Whether ``path`` is absolute and has no ``.`` or ``..`` segment a service could resolve."""
    if not path.startswith("/"):
        return False
    return all(segment not in (".", "..") for segment in path.split("/"))
