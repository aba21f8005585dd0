from novitrac_kit.migrations import run_migrations
from novitrac_telephony.db import metadata

run_migrations(metadata)
