"""The telephony service's definition, found by `novitrac` through its entry point."""

from pathlib import Path

from novitrac_kit.service import Database, Service
from novitrac_telephony.config import Settings
from novitrac_telephony.db import inbox, metadata, outbox

service = Service(
    name="telephony",
    title="Novitrac telephony",
    settings=Settings,
    port=8002,
    database=Database(
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        outbox=outbox,
        inbox=inbox,
    ),
)
