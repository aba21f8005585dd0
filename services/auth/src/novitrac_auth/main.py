"""The auth service's definition, found by `novitrac` through its entry point."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from novitrac_auth import passwords, signing
from novitrac_auth.config import Settings
from novitrac_auth.db import inbox, metadata, outbox
from novitrac_auth.endpoints import accounts, api_keys, internal, organizations
from novitrac_kit import db
from novitrac_kit.runtime import ServiceContext
from novitrac_kit.service import Database, DevelopmentSite, Service


@asynccontextmanager
async def lifespan(context: ServiceContext) -> AsyncIterator[None]:
    """Before the first request: a signing key exists (replicas agree on one), hashing is warm."""
    if context.sessions is None or not isinstance(context.settings, Settings):
        raise RuntimeError("the auth service needs its database and its own settings")
    async with db.transaction(context.sessions) as session:
        await signing.ensure_active_key(session, context.settings)
    await passwords.warm_up(context.settings)
    yield


def development_environment(site: DevelopmentSite) -> dict[str, str]:
    """Development mode's key-encryption secret: fixed, so a restart still reads the stored keys."""
    return {"AUTH_KEY_ENCRYPTION_KEY": "novitrac development key, not a secret"}


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
    routers=[
        accounts.router,
        organizations.router,
        api_keys.router,
        internal.router,
        internal.platform,
    ],
    lifespan=lifespan,
    development_environment=development_environment,
)
