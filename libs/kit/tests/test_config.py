from __future__ import annotations

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from novitrac_kit.config import ServiceSettings, SettingsError, load_settings

DATABASE_URL = "postgresql://billing:s3cr3t-db-pw@db.internal:5432/novitrac"
AMQP_URL = "amqp://billing:s3cr3t-mq-pw@mq.internal:5672/"
STRIPE_KEY = "sk_live_51Hs3cr3tStr1peKey"
INTERNAL_TOKEN = "s3cr3t-internal-token-0123456789abcdef"


class BillingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_")

    stripe_secret_key: SecretStr
    max_concurrent_calls: int = 5


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment holding exactly the variables each test sets."""
    for field in BillingSettings.model_fields:
        monkeypatch.delenv(BillingSettings.env_name(field), raising=False)
    for stray in ("BILLING_DATABASE_URL", "NOVITRAC_MAX_CONCURRENT_CALLS"):
        monkeypatch.delenv(stray, raising=False)
    return monkeypatch


@pytest.fixture
def complete_env(env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    env.setenv("NOVITRAC_DATABASE_URL", DATABASE_URL)
    env.setenv("NOVITRAC_AMQP_URL", AMQP_URL)
    env.setenv("BILLING_STRIPE_SECRET_KEY", STRIPE_KEY)
    env.setenv("NOVITRAC_INTERNAL_TOKEN", INTERNAL_TOKEN)
    return env


def assert_no_secret(text: str) -> None:
    for secret in ("s3cr3t-db-pw", "s3cr3t-mq-pw", STRIPE_KEY, INTERNAL_TOKEN):
        assert secret not in text


class TestLoadSettings:
    def test_valid(self, complete_env: pytest.MonkeyPatch) -> None:
        complete_env.setenv("NOVITRAC_LOG_LEVEL", "debug")
        complete_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")

        settings = load_settings(BillingSettings)

        assert settings.database_url.get_secret_value() == DATABASE_URL
        assert settings.amqp_url.get_secret_value() == AMQP_URL
        assert settings.stripe_secret_key.get_secret_value() == STRIPE_KEY
        assert settings.environment == "development"
        assert settings.log_level == "DEBUG"
        assert settings.log_format == "json"
        assert settings.otel_exporter_otlp_endpoint == "http://collector:4318"
        assert settings.auth_jwks_url.endswith("/.well-known/jwks.json")
        assert settings.internal_token.get_secret_value() == INTERNAL_TOKEN

    def test_missing_variables_are_each_named(self, env: pytest.MonkeyPatch) -> None:
        env.setenv("NOVITRAC_AMQP_URL", AMQP_URL)

        with pytest.raises(SettingsError) as raised:
            load_settings(BillingSettings)

        message = str(raised.value)
        assert "NOVITRAC_DATABASE_URL is required but not set" in message
        assert "BILLING_STRIPE_SECRET_KEY is required but not set" in message
        assert "NOVITRAC_INTERNAL_TOKEN is required but not set" in message
        assert "NOVITRAC_AMQP_URL" not in message
        assert len(raised.value.problems) == 3

    def test_service_prefix_applies_to_own_fields_only(
        self, complete_env: pytest.MonkeyPatch
    ) -> None:
        complete_env.setenv("BILLING_MAX_CONCURRENT_CALLS", "12")
        complete_env.setenv("NOVITRAC_MAX_CONCURRENT_CALLS", "99")
        complete_env.setenv("BILLING_DATABASE_URL", "postgresql://elsewhere/db")

        settings = load_settings(BillingSettings)

        assert settings.max_concurrent_calls == 12
        assert settings.database_url.get_secret_value() == DATABASE_URL

    def test_invalid_value_names_variable_not_value(self, complete_env: pytest.MonkeyPatch) -> None:
        complete_env.setenv("BILLING_MAX_CONCURRENT_CALLS", "hunter2-not-a-number")
        complete_env.setenv("NOVITRAC_ENVIRONMENT", "staging-hunter2")

        with pytest.raises(SettingsError) as raised:
            load_settings(BillingSettings)

        message = str(raised.value)
        assert "BILLING_MAX_CONCURRENT_CALLS:" in message
        assert "NOVITRAC_ENVIRONMENT:" in message
        assert "hunter2" not in message
        assert_no_secret(message)

    def test_error_hides_its_cause(self, env: pytest.MonkeyPatch) -> None:
        env.setenv("NOVITRAC_DATABASE_URL", DATABASE_URL)

        with pytest.raises(SettingsError) as raised:
            load_settings(BillingSettings)

        assert raised.value.__cause__ is None
        assert raised.value.__suppress_context__

    def test_secrets_hidden_in_repr_and_str(self, complete_env: pytest.MonkeyPatch) -> None:
        settings = load_settings(BillingSettings)

        assert_no_secret(repr(settings))
        assert_no_secret(str(settings))
        assert_no_secret(str(settings.model_dump()))

    def test_values_override_environment_by_field_name(
        self, complete_env: pytest.MonkeyPatch
    ) -> None:
        settings = load_settings(
            BillingSettings, database_url="postgresql://dev@127.0.0.1/dev", max_concurrent_calls=1
        )

        assert settings.database_url.get_secret_value() == "postgresql://dev@127.0.0.1/dev"
        assert settings.max_concurrent_calls == 1

    def test_sample_ratio_out_of_range(self, complete_env: pytest.MonkeyPatch) -> None:
        complete_env.setenv("NOVITRAC_OTEL_SAMPLE_RATIO", "1.5")

        with pytest.raises(SettingsError, match="NOVITRAC_OTEL_SAMPLE_RATIO"):
            load_settings(BillingSettings)


class TestPlaceholderSecrets:
    @pytest.mark.parametrize("placeholder", ["changeme", "secret", "", "  ChangeMe "])
    def test_refused_in_production(
        self, complete_env: pytest.MonkeyPatch, placeholder: str
    ) -> None:
        complete_env.setenv("NOVITRAC_ENVIRONMENT", "production")
        complete_env.setenv("BILLING_STRIPE_SECRET_KEY", placeholder)

        with pytest.raises(SettingsError) as raised:
            load_settings(BillingSettings)

        message = str(raised.value)
        assert "BILLING_STRIPE_SECRET_KEY" in message
        assert "placeholder" in message
        assert_no_secret(message)

    def test_placeholder_password_inside_url_refused(
        self, complete_env: pytest.MonkeyPatch
    ) -> None:
        complete_env.setenv("NOVITRAC_ENVIRONMENT", "test")
        complete_env.setenv("NOVITRAC_DATABASE_URL", "postgresql://billing:changeme@db/novitrac")

        with pytest.raises(SettingsError, match="NOVITRAC_DATABASE_URL"):
            load_settings(BillingSettings)

    def test_allowed_in_development(self, complete_env: pytest.MonkeyPatch) -> None:
        complete_env.setenv("BILLING_STRIPE_SECRET_KEY", "changeme")

        settings = load_settings(BillingSettings)

        assert settings.stripe_secret_key.get_secret_value() == "changeme"

    def test_real_secrets_accepted_in_production(self, complete_env: pytest.MonkeyPatch) -> None:
        complete_env.setenv("NOVITRAC_ENVIRONMENT", "production")

        settings = load_settings(BillingSettings)

        assert settings.environment == "production"


class TestInternalToken:
    @pytest.mark.parametrize("environment", ["development", "test", "production"])
    def test_required_everywhere(self, complete_env: pytest.MonkeyPatch, environment: str) -> None:
        complete_env.setenv("NOVITRAC_ENVIRONMENT", environment)
        complete_env.delenv("NOVITRAC_INTERNAL_TOKEN")

        with pytest.raises(SettingsError) as raised:
            load_settings(BillingSettings)

        assert raised.value.problems == ("NOVITRAC_INTERNAL_TOKEN is required but not set",)

    @pytest.mark.parametrize("environment", ["development", "production"])
    @pytest.mark.parametrize(
        "token",
        ["", "changeme", "  secret  ", "s3cr3t-short-token", "s3cr3t-" + "x" * 24, " " * 40],
        ids=["empty", "placeholder", "padded placeholder", "short", "31 characters", "blank"],
    )
    def test_short_or_placeholder_tokens_are_refused(
        self, complete_env: pytest.MonkeyPatch, environment: str, token: str
    ) -> None:
        complete_env.setenv("NOVITRAC_ENVIRONMENT", environment)
        complete_env.setenv("NOVITRAC_INTERNAL_TOKEN", token)

        with pytest.raises(SettingsError) as raised:
            load_settings(BillingSettings)

        [problem] = raised.value.problems
        assert problem.startswith("NOVITRAC_INTERNAL_TOKEN: must be at least 32 characters")
        message = str(raised.value)
        assert_no_secret(message)
        if token.strip():
            assert token.strip() not in message

    def test_a_long_token_is_accepted_and_hidden(self, complete_env: pytest.MonkeyPatch) -> None:
        complete_env.setenv("NOVITRAC_ENVIRONMENT", "production")
        complete_env.setenv("NOVITRAC_INTERNAL_TOKEN", "s3cr3t-" + "x" * 25)

        settings = load_settings(BillingSettings)

        assert settings.internal_token.get_secret_value() == "s3cr3t-" + "x" * 25
        assert "s3cr3t" not in repr(settings)


class TestEnvName:
    def test_shared_field_keeps_novitrac_name(self) -> None:
        assert BillingSettings.env_name("database_url") == "NOVITRAC_DATABASE_URL"
        assert BillingSettings.env_name("otel_exporter_otlp_endpoint") == (
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )

    def test_own_field_takes_service_prefix(self) -> None:
        assert BillingSettings.env_name("stripe_secret_key") == "BILLING_STRIPE_SECRET_KEY"
