"""The notifications service's definition, found by `novitrac` through its entry point."""

from pathlib import Path

from novitrac_kit.service import Database, Service
from novitrac_notifications.config import Settings
from novitrac_notifications.db import inbox, metadata, outbox

service = Service(
    name="notifications",
    title="Novitrac notifications",
    settings=Settings,
    port=8005,
    database=Database(
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        outbox=outbox,
        inbox=inbox,
    ),
)
