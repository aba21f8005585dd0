"""Settings of the gateway service: the shared NOVITRAC_* ones plus its own GATEWAY_* ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from novitrac_kit.config import ServiceSettings


class Settings(ServiceSettings):
    """The gateway's settings (``GATEWAY_<FIELD>``).

    Attributes:
        auth_url: base URL of auth (and likewise each other service's ``*_url``).
        cors_origins: the dashboard origins allowed to call the API from a browser,
            comma-separated (``https://app.example.com``).
        org_rate_limit: requests per second per organisation, with bursts of
            ``org_rate_burst``; ``address_*`` per client address, ``webhook_*`` per address
            on ``/webhooks/``.
        max_body_bytes: the largest request body forwarded (413 beyond);
            ``import_max_body_bytes`` for ``POST /v1/contacts/import`` alone (up to 10,000
            rows or 5,000,000 CSV characters in one body).
        upstream_connect_timeout: seconds to connect to a service (503 beyond);
            ``upstream_timeout`` seconds for any one read or write (504 beyond).
        api_key_cache_seconds: how long an exchanged API key is remembered (at most 60, never
            past its token's expiry), for at most ``api_key_cache_size`` keys. Verified access
            tokens are remembered by the kit's verifier.
        openapi_refresh_seconds: age at which a service's OpenAPI document is fetched again.
        ws_auth_timeout: seconds a socket has to send its first ``auth`` message.
        ws_heartbeat_interval: seconds between pings; a socket that has not answered one
            within ``ws_heartbeat_timeout`` is closed.
        ws_max_lifetime: seconds a socket lives before it is asked to reconnect.
        ws_send_queue: messages that may wait for a socket before it is dropped as too slow.
        ws_resume_window_minutes: how far back a reconnecting socket may resume, keeping at
            most ``ws_resume_buffer`` events per organisation.
        dashboard_dir: the directory of the web dashboard's static files, served at ``/``
            (``GATEWAY_DASHBOARD_DIR``). None (the default) looks for ``web/index.html`` in the
            folders above the installed package: the repository's ``web/`` in a source checkout,
            ``/app/web`` in the images the repository's Dockerfile builds (a container that puts
            the files elsewhere sets ``GATEWAY_DASHBOARD_DIR=/that/dir``). Without a directory
            holding ``index.html`` the gateway serves no dashboard (404).
    """

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", extra="ignore", hide_input_in_errors=True
    )

    # The gateway keeps nothing durable: unlike every other service it needs no database.
    database_url: SecretStr | None = Field(  # type: ignore[assignment]
        None, validation_alias="NOVITRAC_DATABASE_URL"
    )

    auth_url: str = "http://127.0.0.1:8001"
    telephony_url: str = "http://127.0.0.1:8002"
    voice_ai_url: str = "http://127.0.0.1:8003"
    billing_url: str = "http://127.0.0.1:8004"
    notifications_url: str = "http://127.0.0.1:8005"

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    org_rate_limit: float = Field(100.0, gt=0)
    org_rate_burst: int = Field(200, ge=1)
    address_rate_limit: float = Field(50.0, gt=0)
    address_rate_burst: int = Field(100, ge=1)
    # Providers call webhooks from a few addresses at a much higher rate than any one user.
    webhook_rate_limit: float = Field(500.0, gt=0)
    webhook_rate_burst: int = Field(1000, ge=1)

    max_body_bytes: int = Field(1024 * 1024, ge=1)
    import_max_body_bytes: int = Field(8 * 1024 * 1024, ge=1)
    upstream_connect_timeout: float = Field(3.0, gt=0)
    upstream_timeout: float = Field(30.0, gt=0)
    upstream_max_connections: int = Field(200, ge=1)
    # Below uvicorn's 5 s keep-alive, so the gateway never reuses a connection the service closes.
    upstream_keepalive_expiry: float = Field(4.0, ge=0)

    api_key_cache_size: int = Field(10_000, ge=0)
    api_key_cache_seconds: float = Field(60.0, ge=0, le=60)
    auth_timeout: float = Field(5.0, gt=0)

    openapi_refresh_seconds: float = Field(300.0, gt=0)

    ws_auth_timeout: float = Field(5.0, gt=0)
    ws_heartbeat_interval: float = Field(20.0, gt=0)
    ws_heartbeat_timeout: float = Field(20.0, gt=0)
    ws_max_lifetime: float = Field(3600.0, gt=0)
    ws_send_queue: int = Field(256, ge=1)
    ws_resume_window_minutes: float = Field(5.0, ge=0)
    ws_resume_buffer: int = Field(1000, ge=0)

    dashboard_dir: Path | None = None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    def upstream_urls(self) -> dict[str, str]:
        """Each upstream service's base URL, by service name."""
        return {
            "auth": self.auth_url,
            "telephony": self.telephony_url,
            "voice-ai": self.voice_ai_url,
            "billing": self.billing_url,
            "notifications": self.notifications_url,
        }
