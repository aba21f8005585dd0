"""Settings of the telephony service: the shared NOVITRAC_* ones plus its own TELEPHONY_* ones."""

from pydantic_settings import SettingsConfigDict

from novitrac_kit.config import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TELEPHONY_")
