"""The gateway service's definition, found by `novitrac` through its entry point."""

from novitrac_gateway.config import Settings
from novitrac_kit.service import Service

service = Service(name="gateway", title="Novitrac API gateway", settings=Settings, port=8000)
