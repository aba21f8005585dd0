"""The `notifications` schema: every table the notifications service owns."""

from novitrac_kit.db import service_metadata
from novitrac_kit.inbox import inbox_table
from novitrac_kit.outbox import outbox_table

metadata = service_metadata("notifications")
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
