"""What the sandbox listens on and the credentials it accepts and signs with.

Every provider has its own port, so each official SDK is aimed at a plain base address exactly as
it would be at the real provider (no path prefixes to rewrite). The credentials are fixed and
public: the sandbox is a local stand-in, never a place for real secrets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SANDBOX_ACCOUNT_SID = "AC" + "5a" * 16
SANDBOX_AUTH_TOKEN = "sandbox-twilio-auth-token"
SANDBOX_ELEVENLABS_API_KEY = "sk_sandbox_elevenlabs"
SANDBOX_ELEVENLABS_WEBHOOK_SECRET = "wsec_sandbox_elevenlabs"
SANDBOX_STRIPE_SECRET_KEY = "sk_test_sandbox"
SANDBOX_STRIPE_WEBHOOK_SECRET = "whsec_sandbox"


@dataclass
class SandboxConfig:
    """Addresses, credentials and knobs of one sandbox.

    Attributes:
        host: the address every server binds to and advertises.
        control_port: the control API and its page (calls, mailbox, checkouts, webhooks).
        twilio_port: Twilio's REST API (``client.api.base_url``).
        elevenlabs_port: ElevenLabs' REST API and conversation WebSocket (``base_url``).
        stripe_port: Stripe's REST API (``base_addresses={"api": ...}``).
        smtp_port: the SMTP sink.
        twilio_accounts: account SID -> auth token accepted by HTTP Basic and used to sign.
        elevenlabs_api_keys: the ``xi-api-key`` values accepted.
        elevenlabs_concurrency: simultaneous conversations allowed per API key.
        elevenlabs_webhook_url: where post-call webhooks go (None: not sent).
        elevenlabs_webhook_secret: HMAC secret of the ``ElevenLabs-Signature`` header.
        stripe_secret_keys: the secret keys accepted.
        stripe_webhook_url: where Stripe events go (None: not sent).
        stripe_webhook_secret: HMAC secret of the ``Stripe-Signature`` header.
        realtime: pace the ElevenLabs agent's audio at real time; tests of logic may speed it up.
            Twilio media streams are always paced at 20 ms a frame, as the real ones are.
    """

    host: str = "127.0.0.1"
    control_port: int = 8100
    twilio_port: int = 8101
    elevenlabs_port: int = 8102
    stripe_port: int = 8103
    smtp_port: int = 2525
    twilio_accounts: dict[str, str] = field(
        default_factory=lambda: {SANDBOX_ACCOUNT_SID: SANDBOX_AUTH_TOKEN}
    )
    elevenlabs_api_keys: frozenset[str] = frozenset({SANDBOX_ELEVENLABS_API_KEY})
    elevenlabs_concurrency: int = 20
    elevenlabs_webhook_url: str | None = None
    elevenlabs_webhook_secret: str = SANDBOX_ELEVENLABS_WEBHOOK_SECRET
    stripe_secret_keys: frozenset[str] = frozenset({SANDBOX_STRIPE_SECRET_KEY})
    stripe_webhook_url: str | None = None
    stripe_webhook_secret: str = SANDBOX_STRIPE_WEBHOOK_SECRET
    realtime: bool = True

    def url(self, port: int, scheme: str = "http") -> str:
        """The base address of the server on ``port``."""
        return f"{scheme}://{self.host}:{port}"
