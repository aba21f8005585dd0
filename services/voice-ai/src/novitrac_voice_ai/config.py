"""Settings of the voice-ai service: the shared NOVITRAC_* ones plus its own VOICE_* ones."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from novitrac_kit.config import ServiceSettings


class Settings(ServiceSettings):
    """The voice-ai service's settings (``VOICE_*``).

    Attributes:
        elevenlabs_api_base: ElevenLabs' REST base (``VOICE_ELEVENLABS_API_BASE``); the signed
            conversation URLs it hands out say where the WebSocket is.
        elevenlabs_api_keys: comma-separated ElevenLabs API keys that seed the key pool at
            start-up (``VOICE_ELEVENLABS_API_KEYS``); the first one also owns the agents.
        elevenlabs_key_concurrency: simultaneous conversations allowed per key
            (``VOICE_ELEVENLABS_KEY_CONCURRENCY``), across every replica.
        elevenlabs_webhook_secret: HMAC secret of the post-call webhook
            (``VOICE_ELEVENLABS_WEBHOOK_SECRET``).
        key_encryption_key: the secret the pool's keys are encrypted with at rest
            (``VOICE_KEY_ENCRYPTION_KEY``).
        stream_token_secret: HS256 secret of telephony's stream tokens
            (``VOICE_STREAM_TOKEN_SECRET``, the same value as ``TELEPHONY_STREAM_TOKEN_SECRET``).
        twilio_auth_token: signs Twilio's media-stream handshake (``VOICE_TWILIO_AUTH_TOKEN``).
        media_stream_url: the ``<Stream url>`` telephony puts in its TwiML, exactly as written
            there (``VOICE_MEDIA_STREAM_URL``): the handshake signature covers it.
        telephony_url: telephony's internal base address (``VOICE_TELEPHONY_URL``).
        lease_ttl: seconds a key lease lives without a heartbeat (``VOICE_LEASE_TTL``); a killed
            process's leases lapse after it.
        sync_initial_backoff: first wait before retrying a failed agent sync, doubling after
            each failure (``VOICE_SYNC_INITIAL_BACKOFF``).
        sync_max_backoff: ceiling on that wait (``VOICE_SYNC_MAX_BACKOFF``).
        reconcile_after: seconds after a conversation ends before its analysis is fetched from
            the conversations API when no webhook came (``VOICE_RECONCILE_AFTER``).
        reconcile_interval: seconds between reconciliation and sync sweeps
            (``VOICE_RECONCILE_INTERVAL``).
        provider_timeout: seconds allowed per ElevenLabs or telephony request
            (``VOICE_PROVIDER_TIMEOUT``).
        start_timeout: seconds the bridge waits for Twilio's ``start`` (``VOICE_START_TIMEOUT``).
        bridge_pool_size: database connections kept for the media bridges' admissions and
            endings, beside the service's own pool (``VOICE_BRIDGE_POOL_SIZE``).
    """

    model_config = SettingsConfigDict(env_prefix="VOICE_")

    elevenlabs_api_base: str = "https://api.elevenlabs.io"
    elevenlabs_api_keys: SecretStr
    elevenlabs_key_concurrency: int = Field(10, ge=1, le=10_000)
    elevenlabs_webhook_secret: SecretStr
    key_encryption_key: SecretStr
    stream_token_secret: SecretStr
    twilio_auth_token: SecretStr
    media_stream_url: str = "ws://127.0.0.1:8003/media/stream"
    telephony_url: str = "http://127.0.0.1:8002"
    lease_ttl: float = Field(30.0, gt=0)
    sync_initial_backoff: float = Field(1.0, gt=0)
    sync_max_backoff: float = Field(300.0, gt=0)
    reconcile_after: float = Field(120.0, ge=0)
    reconcile_interval: float = Field(10.0, gt=0)
    provider_timeout: float = Field(10.0, gt=0)
    start_timeout: float = Field(10.0, gt=0)
    bridge_pool_size: int = Field(20, ge=1, le=100)
    max_calls: int = Field(200, ge=1, le=100_000)
    drain_timeout: float = Field(900.0, ge=0)

    def api_keys(self) -> list[str]:
        """The configured ElevenLabs keys, in order, blanks dropped."""
        raw = self.elevenlabs_api_keys.get_secret_value()
        return [key.strip() for key in raw.split(",") if key.strip()]
