"""Settings of the voice-ai service: the shared NOVITRAC_* ones plus its own VOICE_AI_* ones."""

from pydantic_settings import SettingsConfigDict

from novitrac_kit.config import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOICE_AI_")
