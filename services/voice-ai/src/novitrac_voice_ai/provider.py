"""The ElevenLabs adapter: the only module that imports the ``elevenlabs`` SDK.

REST calls (agents, signed conversation URLs, conversations) go through the official SDK aimed at
``VOICE_ELEVENLABS_API_BASE``, one client per API key of the pool over one shared HTTP client.
The post-call webhook's signature is checked here too, in constant time and with a tolerance both
ways (the SDK's ``construct_event`` compares with ``!=`` and accepts any future timestamp).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError

WEBHOOK_TOLERANCE_SECONDS = 30 * 60
WEBHOOK_FUTURE_SECONDS = 5 * 60


class ProviderError(Exception):
    """ElevenLabs refused a request or could not be reached; the message says which and why.

    Attributes:
        status: the HTTP status ElevenLabs answered, or None when it could not be reached.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InvalidWebhook(Exception):
    """A post-call webhook whose signature, timestamp or body cannot be accepted."""


class ElevenLabs:
    """ElevenLabs' REST API through the official SDK.

    Args:
        base_url: the API's base address (the sandbox's in development).
        timeout: seconds per request.
    """

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(timeout=timeout)
        self._clients: dict[str, AsyncElevenLabs] = {}

    async def aclose(self) -> None:
        """Close the shared HTTP client."""
        await self._http.aclose()

    def _client(self, api_key: str) -> AsyncElevenLabs:
        client = self._clients.get(api_key)
        if client is None:
            client = AsyncElevenLabs(
                api_key=api_key, base_url=self._base_url, httpx_client=self._http
            )
            self._clients[api_key] = client
        return client

    async def create_agent(self, api_key: str, definition: dict[str, Any]) -> str:
        """Create an agent from ``definition`` (name, conversation_config, platform_settings).

        Returns:
            The new agent's ElevenLabs id.
        """
        try:
            created = await self._client(api_key).conversational_ai.agents.create(**definition)
        except Exception as error:
            raise _provider_error("create agent", error) from error
        return str(created.agent_id)

    async def update_agent(self, api_key: str, agent_id: str, definition: dict[str, Any]) -> None:
        """Replace the agent's configuration with ``definition``."""
        try:
            await self._client(api_key).conversational_ai.agents.update(agent_id, **definition)
        except Exception as error:
            raise _provider_error("update agent", error) from error

    async def delete_agent(self, api_key: str, agent_id: str) -> None:
        """Delete the agent; one that is already gone counts as deleted."""
        try:
            await self._client(api_key).conversational_ai.agents.delete(agent_id)
        except ApiError as error:
            if error.status_code != 404:
                raise _provider_error("delete agent", error) from error
        except Exception as error:
            raise _provider_error("delete agent", error) from error

    async def signed_url(self, api_key: str, agent_id: str) -> str:
        """A signed conversation WebSocket URL for the agent, on behalf of ``api_key``.

        A pooled connection the server closed meanwhile is retried once on a fresh one.
        """
        conversations = self._client(api_key).conversational_ai.conversations
        for attempt in (1, 2):
            try:
                signed = await conversations.get_signed_url(agent_id=agent_id)
            except httpx.TransportError as error:
                if attempt == 2:
                    raise _provider_error("get signed url", error) from error
                continue
            except Exception as error:
                raise _provider_error("get signed url", error) from error
            return str(signed.signed_url)
        raise AssertionError("unreachable")

    async def conversation(self, api_key: str, conversation_id: str) -> dict[str, Any] | None:
        """A conversation as the conversations API returns it, or None when it is unknown."""
        try:
            found = await self._client(api_key).conversational_ai.conversations.get(conversation_id)
        except ApiError as error:
            if error.status_code == 404:
                return None
            raise _provider_error("get conversation", error) from error
        except Exception as error:
            raise _provider_error("get conversation", error) from error
        dumped: dict[str, Any] = found.model_dump(mode="json")
        return dumped


def _provider_error(action: str, error: Exception) -> ProviderError:
    if isinstance(error, ApiError):
        detail = error.body
        if isinstance(detail, dict):
            detail = detail.get("detail", detail)
        return ProviderError(
            f"ElevenLabs refused to {action}: HTTP {error.status_code} {detail}",
            error.status_code,
        )
    if isinstance(error, httpx.HTTPError):
        return ProviderError(f"ElevenLabs unreachable ({action}): {error!r}")
    return ProviderError(f"ElevenLabs failed to {action}: {error!r}")


def verify_webhook(
    body: bytes, signature_header: str | None, secret: str, *, now: float | None = None
) -> dict[str, Any]:
    """The parsed post-call event, once ``ElevenLabs-Signature`` proves it came from ElevenLabs.

    Args:
        body: the raw request body, exactly as received.
        signature_header: ``t=<unix>,v0=<hex HMAC-SHA256 of "<t>.<body>">``.
        secret: the webhook secret.
        now: the current unix time (tests).

    Raises:
        InvalidWebhook: no or a wrong signature, a timestamp outside the tolerance, or a body
            that is not a JSON object.
    """
    if not signature_header:
        raise InvalidWebhook("missing ElevenLabs-Signature")
    parts = dict(item.split("=", 1) for item in signature_header.split(",") if "=" in item)
    stamp, given = parts.get("t"), parts.get("v0")
    if not stamp or not given or not stamp.isdigit():
        raise InvalidWebhook("malformed ElevenLabs-Signature")
    current = time.time() if now is None else now
    if not -WEBHOOK_FUTURE_SECONDS <= current - int(stamp) <= WEBHOOK_TOLERANCE_SECONDS:
        raise InvalidWebhook("timestamp outside the tolerance")
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise InvalidWebhook("signature does not match")
    try:
        event = json.loads(body)
    except ValueError:
        raise InvalidWebhook("body is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidWebhook("body is not a JSON object")
    return event
