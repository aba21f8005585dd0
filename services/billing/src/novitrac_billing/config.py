"""Settings of the billing service: the shared NOVITRAC_* ones plus its own BILLING_* ones."""

from pydantic_settings import SettingsConfigDict

from novitrac_kit.config import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_")
