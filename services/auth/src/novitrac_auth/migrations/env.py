from novitrac_auth.db import metadata
from novitrac_kit.migrations import run_migrations

run_migrations(metadata)
