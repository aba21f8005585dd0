"""The telephony service's definition, found by `novitrac` through its entry point."""

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from novitrac_kit.runtime import ServiceContext
from novitrac_kit.service import Database, DevelopmentSite, Service
from novitrac_telephony import reconciler
from novitrac_telephony.campaigns import CampaignRunner
from novitrac_telephony.config import Settings
from novitrac_telephony.db import inbox, metadata, outbox
from novitrac_telephony.deps import Telephony, registered
from novitrac_telephony.endpoints import (
    calls,
    campaigns,
    contacts,
    internal,
    numbers,
    sms,
    webhooks,
)
from novitrac_telephony.handlers import handlers
from novitrac_telephony.twilio_adapter import SignatureChecker, TwilioGateway

# The sandbox's fixed, public credentials (novitrac_sandbox.config), copied: services never
# import the sandbox.
SANDBOX_ACCOUNT_SID = "AC" + "5a" * 16
SANDBOX_AUTH_TOKEN = "sandbox-twilio-auth-token"


@asynccontextmanager
async def lifespan(context: ServiceContext) -> AsyncIterator[None]:
    """Open the Twilio client; reconcile quiet calls and run campaigns while the service runs."""
    settings = context.settings
    if context.sessions is None or not isinstance(settings, Settings):
        raise RuntimeError("the telephony service needs its database and its own settings")
    twilio = TwilioGateway(settings)
    telephony = Telephony(
        settings=settings,
        twilio=twilio,
        signatures=SignatureChecker(settings.twilio_auth_token.get_secret_value()),
        sessions=context.sessions,
        bus=context.bus,
    )
    try:
        with registered(context, telephony):
            reconciling = asyncio.create_task(reconciler.keep_reconciling(telephony))
            campaign_runner = CampaignRunner(telephony)
            campaign_runner.start()
            try:
                yield
            finally:
                await campaign_runner.stop()
                await reconciler.stop(reconciling)
    finally:
        await twilio.aclose()


def development_environment(site: DevelopmentSite) -> Mapping[str, str]:
    """Development mode: Twilio is the sandbox, webhooks come through the gateway."""
    return {
        "TELEPHONY_TWILIO_API_BASE": site.url(8101),
        "TELEPHONY_TWILIO_ACCOUNT_SID": SANDBOX_ACCOUNT_SID,
        "TELEPHONY_TWILIO_AUTH_TOKEN": SANDBOX_AUTH_TOKEN,
        "TELEPHONY_PUBLIC_URL": site.url(8000),
        "TELEPHONY_MEDIA_STREAM_URL": f"ws://{site.host}:{site.port(8003)}/media/stream",
        "TELEPHONY_STREAM_TOKEN_SECRET": "development-only-stream-token-secret",
    }


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
    routers=[
        calls.router,
        campaigns.router,
        contacts.router,
        contacts.do_not_call_router,
        numbers.router,
        sms.router,
        webhooks.router,
        internal.router,
    ],
    handlers=handlers,
    lifespan=lifespan,
    development_environment=development_environment,
)
