"""The `telephony` schema: every table the telephony service owns."""

from novitrac_kit.db import service_metadata
from novitrac_kit.inbox import inbox_table
from novitrac_kit.outbox import outbox_table

metadata = service_metadata("telephony")
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
