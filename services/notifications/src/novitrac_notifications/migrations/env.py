from novitrac_kit.migrations import run_migrations
from novitrac_notifications.db import metadata

run_migrations(metadata)
