"""Settings of the telephony service: the shared NOVITRAC_* ones plus its own TELEPHONY_* ones."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from novitrac_kit.config import ServiceSettings


class Settings(ServiceSettings):
    """The telephony service's own settings, each read from ``TELEPHONY_<NAME>``.

    Attributes:
        twilio_account_sid: the Twilio account (``AC…``) numbers and calls belong to.
        twilio_auth_token: its Auth Token: authenticates API calls and signs webhooks.
        twilio_api_base: where the ``2010-04-01`` API lives; None for Twilio itself (development
            aims it at the sandbox).
        public_url: the address Twilio reaches Novitrac at (the gateway); webhook URLs are built
            from it and signatures are checked against it, never against the Host header.
        media_stream_url: the ``<Stream url>`` of voice-ai's media bridge (no query string).
        stream_token_secret: HS256 secret of the stream token voice-ai checks (shared with
            ``VOICE_STREAM_TOKEN_SECRET``).
        stream_token_ttl: seconds a stream token is valid.
        ring_timeout: seconds an outbound call rings before it is ``no-answer``.
        reservation_timeout: seconds a call slot reserved for a call Twilio never confirmed counts
            against the concurrency limit (a process dying mid-request cannot leak a slot).
        number_country: the country searched for numbers when none is given.
        unavailable_message: what an inbound caller hears when the account may not take calls.
        busy_message: what an inbound caller hears when the account is at its call limit.
        twilio_timeout: seconds allowed for one Twilio API request.
        reconcile_after: seconds without news of an unfinished call after which its status is
            asked of Twilio (again every as many seconds while it stays unfinished), so a lost
            status callback cannot leave a call running forever, uncharged.
        reconcile_interval: seconds between two looks for such calls.
        campaign_tick: seconds between two passes of the campaign runner (claiming due
            recipients of running campaigns and placing their calls).
    """

    model_config = SettingsConfigDict(env_prefix="TELEPHONY_")

    twilio_account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    twilio_auth_token: SecretStr
    twilio_api_base: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    media_stream_url: str = "ws://127.0.0.1:8003/media/stream"
    stream_token_secret: SecretStr = Field(min_length=16)
    stream_token_ttl: int = Field(120, ge=10, le=3600)
    ring_timeout: int = Field(30, ge=1, le=600)
    reservation_timeout: int = Field(60, ge=1)
    number_country: str = Field("US", pattern=r"^[A-Z]{2}$")
    unavailable_message: str = "Sorry, this number cannot take calls right now. Goodbye."
    busy_message: str = "Sorry, all our lines are busy. Please call again later. Goodbye."
    twilio_timeout: float = Field(15.0, gt=0)
    reconcile_after: int = Field(120, ge=1)
    reconcile_interval: float = Field(30.0, gt=0)
    campaign_tick: float = Field(1.0, gt=0)

    def webhook_url(self, path: str) -> str:
        """The public URL of one of telephony's webhook paths (``/webhooks/twilio/...``)."""
        return self.public_url.rstrip("/") + path
