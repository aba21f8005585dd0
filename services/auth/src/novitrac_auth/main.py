"""The auth service's definition, found by `novitrac` through its entry point."""

from pathlib import Path

from novitrac_auth.config import Settings
from novitrac_auth.db import inbox, metadata, outbox
from novitrac_kit.service import Database, Service

service = Service(
    name="auth",
    title="Novitrac auth",
    settings=Settings,
    port=8001,
    database=Database(
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        outbox=outbox,
        inbox=inbox,
    ),
)
