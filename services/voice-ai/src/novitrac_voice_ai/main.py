"""The voice-ai service's definition, found by `novitrac` through its entry point."""

from pathlib import Path

from novitrac_kit.service import Database, Service
from novitrac_voice_ai.config import Settings
from novitrac_voice_ai.db import inbox, metadata, outbox

service = Service(
    name="voice-ai",
    title="Novitrac voice AI",
    settings=Settings,
    port=8003,
    database=Database(
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        outbox=outbox,
        inbox=inbox,
    ),
)
