"""Settings of the notifications service: shared NOVITRAC_* ones plus its own NOTIFICATIONS_*."""

from email.utils import formataddr

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from novitrac_kit.config import ServiceSettings


class Settings(ServiceSettings):
    """The notifications service's own settings (``NOTIFICATIONS_<FIELD>``).

    The SMTP defaults point at the development sandbox's sink; a real provider sets the host,
    port, credentials and ``SMTP_STARTTLS`` (port 587) or ``SMTP_TLS`` (port 465).

    ``SECRET_ENCRYPTION_KEY`` (required, 16 characters or more) seals the webhook endpoints' signing
    secrets at rest; changing it makes the stored secrets unusable (rotate each endpoint's secret).

    Webhooks: ``WEBHOOK_RETRY_SCHEDULE`` (a JSON list of seconds) is the wait after each failed
    attempt; ``WEBHOOK_TIMEOUT`` bounds one attempt; ``WEBHOOK_MAX_CONSECUTIVE_FAILURES`` failed
    attempts in a row disable an endpoint; ``WEBHOOK_CONCURRENCY`` attempts run at once per
    replica, at most ``WEBHOOK_ENDPOINT_CONCURRENCY`` of them to any one endpoint.
    """

    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_")

    secret_encryption_key: SecretStr = Field(min_length=16)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(2525, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_timeout: float = Field(15.0, gt=0)
    mail_from_address: str = Field("no-reply@novitrac.local", pattern=r"^[^@\s]+@[^@\s]+$")
    mail_from_name: str = "Novitrac"
    dashboard_url: str = "http://127.0.0.1:8000"
    delivery_max_attempts: int = Field(8, ge=1)
    # Attempt n waits about base * 2**(n-1) seconds (half of it jittered): 8 attempts span ~4 min.
    delivery_backoff_base: float = Field(2.0, gt=0)
    delivery_backoff_max: float = Field(600.0, gt=0)
    delivery_batch_size: int = Field(20, ge=1)
    delivery_poll_interval: float = Field(1.0, gt=0)
    # Webhooks: the wait after each failed attempt, in seconds; one attempt more than there are
    # waits, then the delivery is failed. The default spans about 24 hours in 18 attempts.
    webhook_retry_schedule: list[float] = Field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0] + [7200.0] * 11,
        min_length=1,
    )
    webhook_timeout: float = Field(10.0, gt=0)
    webhook_max_consecutive_failures: int = Field(50, ge=1)
    webhook_concurrency: int = Field(32, ge=1)
    webhook_endpoint_concurrency: int = Field(4, ge=1)
    webhook_poll_interval: float = Field(1.0, gt=0)

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _waits_are_positive(cls, value: list[float]) -> list[float]:
        if any(wait <= 0 for wait in value):
            raise ValueError("every wait must be more than 0 seconds")
        return value

    @model_validator(mode="after")
    def _one_tls_mode(self) -> "Settings":
        if self.smtp_starttls and self.smtp_tls:
            raise ValueError("set NOTIFICATIONS_SMTP_STARTTLS or NOTIFICATIONS_SMTP_TLS, not both")
        return self

    @property
    def mail_from(self) -> str:
        """The ``From`` header: ``Novitrac <no-reply@novitrac.local>``."""
        return formataddr((self.mail_from_name, self.mail_from_address))
