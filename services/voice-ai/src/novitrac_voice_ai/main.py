"""The voice-ai service's definition, found by `novitrac` through its entry point.

Stopping (the first SIGTERM under ``novitrac run``) drains: ``/readyz`` answers 503, new media
streams are refused (``draining``) and the process waits for its live calls to end, at most
``VOICE_DRAIN_TIMEOUT`` seconds, before shutting down; calls still live then are cut, stored and
their leases returned. ``/readyz`` also answers 503 while the process carries ``VOICE_MAX_CALLS``
calls (check ``capacity``).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from novitrac_kit import db
from novitrac_kit.internal import InternalAuth
from novitrac_kit.runtime import ServiceContext
from novitrac_kit.service import Database, DevelopmentSite, Service
from novitrac_voice_ai import runtime
from novitrac_voice_ai.config import Settings
from novitrac_voice_ai.db import inbox, metadata, outbox
from novitrac_voice_ai.endpoints import router
from novitrac_voice_ai.keys import KeyPool, key_sealer
from novitrac_voice_ai.provider import ElevenLabs
from novitrac_voice_ai.reconcile import Reconciler
from novitrac_voice_ai.sync import AgentSync

logger = logging.getLogger(__name__)

# The sandbox's fixed, public credentials (novitrac_sandbox.config), copied: services may not
# import the sandbox.
SANDBOX_AUTH_TOKEN = "sandbox-twilio-auth-token"
SANDBOX_ELEVENLABS_API_KEY = "sk_sandbox_elevenlabs"
SANDBOX_ELEVENLABS_WEBHOOK_SECRET = "wsec_sandbox_elevenlabs"


def development_environment(site: DevelopmentSite) -> Mapping[str, str]:
    """What ``novitrac dev`` sets for voice-ai: the sandbox, telephony, development secrets."""
    return {
        "VOICE_ELEVENLABS_API_BASE": site.url(8102),
        "VOICE_ELEVENLABS_API_KEYS": SANDBOX_ELEVENLABS_API_KEY,
        "VOICE_ELEVENLABS_WEBHOOK_SECRET": SANDBOX_ELEVENLABS_WEBHOOK_SECRET,
        "VOICE_TWILIO_AUTH_TOKEN": SANDBOX_AUTH_TOKEN,
        "VOICE_KEY_ENCRYPTION_KEY": "development-key-encryption-key",
        "VOICE_STREAM_TOKEN_SECRET": "development-only-stream-token-secret",
        "VOICE_MEDIA_STREAM_URL": f"ws://{site.host}:{site.port(8003)}/media/stream",
        "VOICE_TELEPHONY_URL": site.url(8002),
        "VOICE_RECONCILE_AFTER": "30",
    }


@asynccontextmanager
async def lifespan(context: ServiceContext) -> AsyncIterator[None]:
    """Seed the key pool, then run the lease heartbeat, the agent sync and reconciliation."""
    settings = context.settings
    if not isinstance(settings, Settings):
        raise TypeError("the voice-ai service needs its own Settings")
    if context.engine is None or context.sessions is None:
        raise RuntimeError("the voice-ai service needs its database")
    provider = ElevenLabs(settings.elevenlabs_api_base, timeout=settings.provider_timeout)
    # The bridges' own connections: a burst of calls starting must not queue behind (or starve)
    # the API, the outbox relay and the workers.
    bridge_engine = db.create_engine(
        settings.database_url.get_secret_value(),
        application_name="voice-ai.bridge",
        pool_size=settings.bridge_pool_size,
    )
    pool = KeyPool(
        bridge_engine,
        key_sealer(settings.key_encryption_key.get_secret_value()),
        ttl=settings.lease_ttl,
    )
    await pool.seed(settings.api_keys(), max_concurrency=settings.elevenlabs_key_concurrency)
    # Telephony's routes for voice-ai are /internal ones: every request carries the token.
    telephony = httpx.AsyncClient(
        timeout=settings.provider_timeout, auth=InternalAuth(settings.internal_token)
    )
    voice = runtime.VoiceRuntime(
        settings=settings,
        sessions=db.create_session_factory(bridge_engine),
        bus=context.bus,
        pool=pool,
        provider=provider,
        telephony=telephony,
        sync=AgentSync(
            context.sessions,
            provider,
            pool,
            initial_backoff=settings.sync_initial_backoff,
            max_backoff=settings.sync_max_backoff,
            interval=settings.reconcile_interval,
        ),
        reconciler=Reconciler(
            context.sessions,
            provider,
            pool,
            after=settings.reconcile_after,
            interval=settings.reconcile_interval,
            lease_ttl=settings.lease_ttl,
        ),
    )
    runtime.register(context, voice)
    await pool.start()
    await voice.sync.start()
    await voice.reconciler.start()
    try:
        yield
    finally:
        await voice.reconciler.stop()
        await voice.sync.stop()
        for bridge in list(voice.bridges):
            bridge.cancel()
        if voice.bridges:
            await asyncio.wait(set(voice.bridges), timeout=10)
        await pool.stop()
        await telephony.aclose()
        await provider.aclose()
        await bridge_engine.dispose()
        runtime.unregister(context)


async def drain(context: ServiceContext) -> None:
    """Refuse new calls and wait until no bridge is live, at most ``VOICE_DRAIN_TIMEOUT``."""
    voice = runtime.of_context(context)
    voice.draining = True
    logger.info(
        "voice.drain.started",
        extra={"live": len(voice.bridges), "timeout_s": voice.settings.drain_timeout},
    )
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(voice.settings.drain_timeout):
            await voice.idle.wait()
    logger.info("voice.drain.ended", extra={"still_live": len(voice.bridges)})


async def has_capacity(context: ServiceContext) -> bool:
    """Readiness: False while the process carries ``VOICE_MAX_CALLS`` calls."""
    return not runtime.of_context(context).at_capacity()


service = Service(
    name="voice-ai",
    title="Novitrac voice AI",
    settings=Settings,
    port=8003,
    database=Database(
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        outbox=outbox,
        inbox=inbox,
    ),
    routers=[router],
    lifespan=lifespan,
    development_environment=development_environment,
    readiness={"capacity": has_capacity},
    drain=drain,
    # With 200 calls in progress a full collection stops every call's audio for 50-130 ms (seen
    # on a 2-vCPU machine): ten times rarer, while cyclic garbage still goes in younger ones.
    full_collection_every=100,
)
