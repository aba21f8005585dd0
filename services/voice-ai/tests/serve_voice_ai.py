"""One voice-ai process for the tests that kill or stop it: settings from the environment.

No broker. Served as ``novitrac run`` serves it (:func:`novitrac_kit.process.serve`): the first
SIGTERM drains.
"""

from __future__ import annotations

from novitrac_kit.bus.memory import InProcessBus
from novitrac_kit.config import load_settings
from novitrac_kit.process import serve
from novitrac_kit.runtime import create_app
from novitrac_voice_ai.config import Settings
from novitrac_voice_ai.main import service

if __name__ == "__main__":
    settings = load_settings(Settings)
    app = create_app(service, settings=settings, bus=InProcessBus(), owns_bus=True)
    serve(app, service, host="127.0.0.1", port=settings.http_port or 0, log_level="warning")
