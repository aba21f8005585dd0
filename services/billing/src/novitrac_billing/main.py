"""The billing service's definition, found by `novitrac` through its entry point."""

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from novitrac_billing import maintenance
from novitrac_billing.config import Settings
from novitrac_billing.db import inbox, metadata, outbox
from novitrac_billing.deps import gateway_for, settings_of
from novitrac_billing.endpoints import internal, router, webhooks
from novitrac_billing.handlers import handlers
from novitrac_kit.runtime import ServiceContext
from novitrac_kit.service import Database, DevelopmentSite, Service

STRIPE_SANDBOX_PORT = 8103
# The sandbox's fixed, public credentials (novitrac_sandbox.config), never real secrets.
SANDBOX_STRIPE_SECRET_KEY = "sk_test_sandbox"
SANDBOX_STRIPE_WEBHOOK_SECRET = "whsec_sandbox"


@asynccontextmanager
async def lifespan(context: ServiceContext) -> AsyncIterator[None]:
    """Run the background work (meter reports, grace periods, due plan changes)."""
    if context.sessions is None:
        raise RuntimeError("billing needs its database")
    settings = settings_of(context)
    stopping = asyncio.Event()
    task = asyncio.create_task(
        maintenance.run(
            context.sessions,
            gateway_for(settings),
            event_name=settings.stripe_meter_event_name,
            interval=settings.maintenance_interval,
            stopping=stopping,
        ),
        name="billing-maintenance",
    )
    try:
        yield
    finally:
        stopping.set()
        await task


def development_environment(site: DevelopmentSite) -> Mapping[str, str]:
    """Stripe is the sandbox's; checkouts come back to the dashboard behind the gateway."""
    return {
        "BILLING_STRIPE_API_BASE": site.url(STRIPE_SANDBOX_PORT),
        "BILLING_STRIPE_SECRET_KEY": SANDBOX_STRIPE_SECRET_KEY,
        "BILLING_STRIPE_WEBHOOK_SECRET": SANDBOX_STRIPE_WEBHOOK_SECRET,
        "BILLING_CHECKOUT_SUCCESS_URL": site.url(8000, "/billing?checkout=success"),
        "BILLING_CHECKOUT_CANCEL_URL": site.url(8000, "/billing?checkout=cancelled"),
    }


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
    routers=[router, webhooks, internal],
    handlers=handlers,
    lifespan=lifespan,
    development_environment=development_environment,
)
