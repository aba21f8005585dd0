"""Settings of the notifications service: shared NOVITRAC_* ones plus its own NOTIFICATIONS_*."""

from pydantic_settings import SettingsConfigDict

from novitrac_kit.config import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_")
