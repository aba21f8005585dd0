"""The billing service's definition, found by `novitrac` through its entry point."""

from pathlib import Path

from novitrac_billing.config import Settings
from novitrac_billing.db import inbox, metadata, outbox
from novitrac_kit.service import Database, Service

service = Service(
    name="billing",
    title="Novitrac billing",
    settings=Settings,
    port=8004,
    database=Database(
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        outbox=outbox,
        inbox=inbox,
    ),
)
