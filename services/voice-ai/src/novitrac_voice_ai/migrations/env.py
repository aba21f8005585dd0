from novitrac_kit.migrations import run_migrations
from novitrac_voice_ai.db import metadata

run_migrations(metadata)
