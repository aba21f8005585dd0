"""One voice-ai process for the tests that kill it: settings from the environment, no broker."""

from __future__ import annotations

import uvicorn

from novitrac_kit.bus.memory import InProcessBus
from novitrac_kit.config import load_settings
from novitrac_kit.runtime import create_app
from novitrac_voice_ai.config import Settings
from novitrac_voice_ai.main import service

if __name__ == "__main__":
    settings = load_settings(Settings)
    app = create_app(service, settings=settings, bus=InProcessBus(), owns_bus=True)
    uvicorn.run(app, host="127.0.0.1", port=settings.http_port or 0, log_level="warning")
