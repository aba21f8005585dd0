"""Service settings, read from the environment.

Every service shares the infrastructure settings of :class:`ServiceSettings`, always read from
``NOVITRAC_*`` variables (plus the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``), and adds its own
under its own prefix::

    class Settings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="BILLING_")

        stripe_secret_key: SecretStr  # BILLING_STRIPE_SECRET_KEY, required

Secrets are ``SecretStr`` with no default, so a missing one stops the service at start and the
value never appears in a repr, a log line or an error message.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    AliasPath,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_AUTH_JWKS_URL = "http://127.0.0.1:8001/.well-known/jwks.json"
DEFAULT_JWT_ISSUER = "novitrac-auth"
DEFAULT_JWT_AUDIENCE = "novitrac"
INTERNAL_TOKEN_MIN_LENGTH = 32

PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "secret", "password", "placeholder", "todo", "xxx"}
)

Environment = Literal["development", "test", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["json", "console"]

SettingsT = TypeVar("SettingsT", bound="ServiceSettings")


class SettingsError(Exception):
    """The environment does not hold a valid configuration; the process should not start.

    The message names every offending environment variable and what is wrong with it, never
    the value it holds.

    Attributes:
        problems: one line per offending variable.
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)


class ServiceSettings(BaseSettings):
    """The settings every service shares; subclass it with the service's own ``env_prefix``.

    Attributes:
        database_url: PostgreSQL URL (``NOVITRAC_DATABASE_URL``), required.
        amqp_url: RabbitMQ URL (``NOVITRAC_AMQP_URL``), required.
        environment: ``development``, ``test`` or ``production`` (``NOVITRAC_ENVIRONMENT``).
        log_level: root log level (``NOVITRAC_LOG_LEVEL``).
        log_format: ``json`` lines or human ``console`` lines (``NOVITRAC_LOG_FORMAT``).
        otel_exporter_otlp_endpoint: OTLP/HTTP collector (``OTEL_EXPORTER_OTLP_ENDPOINT``);
            None records no spans (trace ids still reach logs and outgoing headers).
        otel_sample_ratio: share of new traces recorded, 0 to 1 (``NOVITRAC_OTEL_SAMPLE_RATIO``).
        http_host: listen address (``NOVITRAC_HTTP_HOST``).
        http_port: listen port (``NOVITRAC_HTTP_PORT``); None lets the service pick its own.
        auth_jwks_url: where auth publishes its signing keys (``NOVITRAC_AUTH_JWKS_URL``).
        jwt_issuer: the ``iss`` access tokens must carry (``NOVITRAC_JWT_ISSUER``).
        jwt_audience: the ``aud`` access tokens must carry (``NOVITRAC_JWT_AUDIENCE``).
        ready_max_loop_lag: seconds of event-loop lag above which ``/readyz`` answers 503
            (check ``event_loop``): the replica is short of CPU and new work should go elsewhere
            (``NOVITRAC_READY_MAX_LOOP_LAG``); None (the default) leaves lag out of readiness.
        internal_token: the secret every service shares to call another's ``/internal/...``
            routes (``NOVITRAC_INTERNAL_TOKEN``), required, at least 32 characters: callers send
            it as ``Authorization: Bearer <token>`` (see :mod:`novitrac_kit.internal`).
    """

    model_config = SettingsConfigDict(
        env_prefix="NOVITRAC_",
        extra="ignore",
        hide_input_in_errors=True,
    )

    database_url: SecretStr = Field(validation_alias="NOVITRAC_DATABASE_URL")
    amqp_url: SecretStr = Field(validation_alias="NOVITRAC_AMQP_URL")
    environment: Environment = Field("development", validation_alias="NOVITRAC_ENVIRONMENT")
    log_level: LogLevel = Field("INFO", validation_alias="NOVITRAC_LOG_LEVEL")
    log_format: LogFormat = Field("json", validation_alias="NOVITRAC_LOG_FORMAT")
    otel_exporter_otlp_endpoint: str | None = Field(
        None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    otel_sample_ratio: float = Field(
        1.0, ge=0.0, le=1.0, validation_alias="NOVITRAC_OTEL_SAMPLE_RATIO"
    )
    http_host: str = Field("127.0.0.1", validation_alias="NOVITRAC_HTTP_HOST")
    http_port: int | None = Field(None, ge=1, le=65535, validation_alias="NOVITRAC_HTTP_PORT")
    auth_jwks_url: str = Field(DEFAULT_AUTH_JWKS_URL, validation_alias="NOVITRAC_AUTH_JWKS_URL")
    jwt_issuer: str = Field(DEFAULT_JWT_ISSUER, validation_alias="NOVITRAC_JWT_ISSUER")
    jwt_audience: str = Field(DEFAULT_JWT_AUDIENCE, validation_alias="NOVITRAC_JWT_AUDIENCE")
    ready_max_loop_lag: float | None = Field(
        None, gt=0, validation_alias="NOVITRAC_READY_MAX_LOOP_LAG"
    )
    internal_token: SecretStr = Field(validation_alias="NOVITRAC_INTERNAL_TOKEN")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("internal_token")
    @classmethod
    def _long_internal_token(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().strip()) < INTERNAL_TOKEN_MIN_LENGTH:
            raise ValueError(
                f"must be at least {INTERNAL_TOKEN_MIN_LENGTH} characters "
                "(generate one with `openssl rand -hex 32`)"
            )
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment == "development":
            return self
        offending = [
            self.env_name(name)
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SecretStr)
            and _is_placeholder(value.get_secret_value())
        ]
        if offending:
            raise ValueError(
                f"{', '.join(offending)}: placeholder secret refused outside development"
            )
        return self

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable a field is read from.

        Args:
            field: the field's name (``stripe_secret_key``).

        Returns:
            The variable's name as an operator would set it (``BILLING_STRIPE_SECRET_KEY``).
        """
        info = cls.model_fields[field]
        alias = info.validation_alias or info.alias
        if isinstance(alias, str):
            return alias.upper()
        if isinstance(alias, AliasChoices):
            first = alias.choices[0]
            if isinstance(first, str):
                return first.upper()
        if isinstance(alias, (AliasChoices, AliasPath)):
            return field.upper()
        prefix = cls.model_config.get("env_prefix") or ""
        return f"{prefix}{field}".upper()


def load_settings(cls: type[SettingsT], **values: Any) -> SettingsT:
    """Build a service's settings from the environment.

    Args:
        cls: the service's settings class.
        **values: values that take precedence over the environment, by field name (the
            development mode's embedded database URL, for instance).

    Returns:
        The validated settings.

    Raises:
        SettingsError: a variable is missing or invalid, or a secret is a placeholder outside
            development; the message names each variable, never its value.
    """
    by_alias = {_init_key(cls, key): value for key, value in values.items()}
    try:
        return cls(**by_alias)
    except ValidationError as error:
        problems = tuple(_describe(cls, detail) for detail in error.errors(include_input=False))
        raise SettingsError(
            f"invalid configuration for {cls.__module__}.{cls.__qualname__}:\n  "
            + "\n  ".join(problems),
            problems,
        ) from None


def _init_key(cls: type[ServiceSettings], key: str) -> str:
    info = cls.model_fields.get(key)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return key


def _describe(cls: type[ServiceSettings], detail: Any) -> str:
    loc = detail.get("loc") or ()
    message = str(detail.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    if not loc:
        return message
    head = str(loc[0])
    name = cls.env_name(head) if head in cls.model_fields else head.upper()
    if detail.get("type") == "missing":
        return f"{name} is required but not set"
    return f"{name}: {message}"


def _is_placeholder(secret: str) -> bool:
    candidates = [secret]
    if "://" in secret:
        try:
            password = urlsplit(secret).password
        except ValueError:
            password = None
        if password is not None:
            candidates.append(password)
    return any(candidate.strip().lower() in PLACEHOLDER_SECRETS for candidate in candidates)
