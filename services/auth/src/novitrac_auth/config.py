"""Settings of the auth service: the shared NOVITRAC_* ones plus its own AUTH_* ones."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from novitrac_kit.config import ServiceSettings

DAY = 86_400


class Settings(ServiceSettings):
    """The auth service's own settings, each read from ``AUTH_<NAME>``.

    Attributes:
        key_encryption_key: secret from which the key that encrypts the signing keys at rest (and
            the key that hashes one-time codes) are derived (``AUTH_KEY_ENCRYPTION_KEY``).
        access_token_ttl: seconds a user's access token lives.
        api_key_token_ttl: seconds an access token exchanged for an API key lives.
        token_leeway: clock skew tolerated on token times; a retired signing key stays published
            for ``access_token_ttl + token_leeway`` seconds.
        refresh_token_ttl: seconds a refresh token lives.
        otp_ttl: seconds a one-time code is valid.
        otp_max_attempts: wrong guesses that burn a one-time code.
        otp_resend_cooldown: least seconds between two codes sent to one address.
        invitation_ttl: seconds an invitation is valid.
        argon2_time_cost, argon2_memory_cost, argon2_parallelism: argon2id parameters (OWASP
            defaults: 2 iterations, 19 MiB, 1 lane); tests lower them.
        login_max_failures_per_account: failed logins for one email that lock it.
        login_max_failures_per_address: failed logins from one client address that lock it.
        login_failure_window: seconds over which failed logins are counted.
        login_lockout: seconds a lock lasts.
        api_key_touch_interval: least seconds between two updates of a key's ``last_used_at``.
    """

    model_config = SettingsConfigDict(env_prefix="AUTH_")

    key_encryption_key: SecretStr = Field(min_length=16)
    access_token_ttl: int = Field(900, ge=60, le=3600)
    api_key_token_ttl: int = Field(300, ge=30, le=3600)
    token_leeway: int = Field(30, ge=0, le=300)
    refresh_token_ttl: int = Field(30 * DAY, ge=300)
    otp_ttl: int = Field(600, ge=60)
    otp_max_attempts: int = Field(5, ge=1)
    otp_resend_cooldown: int = Field(60, ge=0)
    invitation_ttl: int = Field(7 * DAY, ge=300)
    argon2_time_cost: int = Field(2, ge=1)
    argon2_memory_cost: int = Field(19_456, ge=8)
    argon2_parallelism: int = Field(1, ge=1)
    login_max_failures_per_account: int = Field(5, ge=1)
    login_max_failures_per_address: int = Field(20, ge=1)
    login_failure_window: int = Field(900, ge=1)
    login_lockout: int = Field(900, ge=1)
    api_key_touch_interval: int = Field(60, ge=0)
