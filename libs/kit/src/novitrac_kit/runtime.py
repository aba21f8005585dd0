"""Turn a :class:`~novitrac_kit.service.Service` into a running FastAPI application.

The app's lifespan opens the service's database engine, subscribes its event handlers, runs its
outbox relay, the purge of its inbox, the event-loop lag sampler and its own lifespan, and serves
``/healthz``, ``/readyz`` (not ready as well while the loop lags more than
``NOVITRAC_READY_MAX_LOOP_LAG``, when that is set) and ``/metrics``. Request handlers get a
session in a transaction from :data:`SessionDep`; they never commit themselves.
:func:`drain` runs a service's :attr:`~novitrac_kit.service.Service.drain` (``novitrac run`` calls
it on the first SIGTERM), reporting not ready meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from novitrac_kit import db
from novitrac_kit.bus import EventBus
from novitrac_kit.config import ServiceSettings
from novitrac_kit.errors import Forbidden, install_error_handlers
from novitrac_kit.health import Check, health_router
from novitrac_kit.inbox import InboxPurger
from novitrac_kit.looplag import LoopLag
from novitrac_kit.metrics import instrument_metrics, metrics_router
from novitrac_kit.outbox import OutboxRelay
from novitrac_kit.service import Readiness, Service
from novitrac_kit.telemetry import instrument_app
from novitrac_kit.tokens import Identity, JwksVerifier, authenticate, bearer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceContext:
    """What a running service holds: available to routes as ``request.app.state.context``.

    Attributes:
        service: the service's definition.
        settings: its settings.
        bus: the bus it publishes live signals on and consumes from.
        engine: its database engine, when it has a schema.
        sessions: its session factory, when it has a schema.
        verifier: verifies access tokens against auth's published keys.
        parts: what the service's own lifespan builds for its routes to find (by name).
    """

    service: Service
    settings: ServiceSettings
    bus: EventBus
    engine: AsyncEngine | None
    sessions: async_sessionmaker[AsyncSession] | None
    verifier: JwksVerifier
    parts: dict[str, Any] = field(default_factory=dict)


def create_app(
    service: Service, *, settings: ServiceSettings, bus: EventBus, owns_bus: bool
) -> FastAPI:
    """Build the service's FastAPI application.

    Args:
        service: what to run.
        settings: its settings, already loaded.
        bus: the transport; shared between services in development mode.
        owns_bus: start the bus with the app and close it after (one service per process).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            engine = sessions = None
            if service.database is not None:
                engine = db.create_engine(
                    settings.database_url.get_secret_value(),
                    application_name=f"{service.name}.api",
                )
                stack.push_async_callback(engine.dispose)
                sessions = db.create_session_factory(engine)
            if owns_bus:
                await bus.start()
                stack.push_async_callback(bus.close)
            verifier = JwksVerifier(
                settings.auth_jwks_url, issuer=settings.jwt_issuer, audience=settings.jwt_audience
            )
            stack.push_async_callback(verifier.aclose)
            loop_lag = app.state.loop_lag = LoopLag(service.name)
            loop_lag.start()
            stack.push_async_callback(loop_lag.stop)
            context = ServiceContext(service, settings, bus, engine, sessions, verifier)
            app.state.context = context

            database = service.database
            if database is not None and engine is not None and sessions is not None:
                if database.outbox is not None:
                    relay = OutboxRelay(engine, database.outbox, bus)
                    await relay.start()
                    stack.push_async_callback(relay.stop)
                if database.inbox is not None:
                    purger = InboxPurger(engine, database.inbox)
                    await purger.start()
                    stack.push_async_callback(purger.stop)
                if service.handlers.event_types and database.inbox is not None:
                    await bus.subscribe(
                        service.handlers.subscription(
                            queue=service.name,
                            sessions=sessions,
                            inbox=database.inbox,
                            retry=service.retry,
                        )
                    )
            if service.lifespan is not None:
                await stack.enter_async_context(service.lifespan(context))
            logger.info("service.started", extra={"service": service.name})
            yield
        logger.info("service.stopped", extra={"service": service.name})

    # /openapi.json is what the gateway gathers into the public document; the browsable pages are
    # the gateway's own (/docs, under its CSP), not one per service that would shadow it.
    app = FastAPI(title=service.title, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.draining = False

    async def database_ready() -> bool:
        engine = app.state.context.engine
        return engine is not None and await db.ping(engine)

    checks: dict[str, Check] = {"bus": bus.is_ready}
    if service.database is not None:
        checks["database"] = database_ready
    if service.drain is not None:

        async def accepting() -> bool:
            return not app.state.draining

        checks["accepting"] = accepting
    if settings.ready_max_loop_lag is not None:
        checks["event_loop"] = _responsive(app, service.name, settings.ready_max_loop_lag)
    for name, check in service.readiness.items():
        checks[name] = _bound(app, check)
    app.include_router(health_router(checks))
    app.include_router(metrics_router())
    for router in service.routers:
        app.include_router(router)
    install_error_handlers(app)
    for middleware in reversed(service.middleware):
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    instrument_metrics(app, service=service.name)
    instrument_app(app, service=service.name)
    return app


def _responsive(app: FastAPI, service: str, limit: float) -> Check:
    """Ready while the loop's recent worst lag stays within ``limit`` seconds."""

    async def run() -> bool:
        loop_lag: LoopLag | None = getattr(app.state, "loop_lag", None)
        lag = 0.0 if loop_lag is None else loop_lag.recent
        if lag <= limit:
            return True
        logger.warning(
            "service.overloaded",
            extra={"service": service, "loop_lag_s": round(lag, 3), "limit_s": limit},
        )
        return False

    return run


def _bound(app: FastAPI, check: Readiness) -> Check:
    async def run() -> bool:
        context: ServiceContext | None = getattr(app.state, "context", None)
        return context is not None and await check(context)

    return run


async def drain(app: FastAPI) -> None:
    """Stop taking work and run the service's drain: ``/readyz`` answers 503 from now on.

    Returns once the service's :attr:`~novitrac_kit.service.Service.drain` has (or at once for a
    service without one, or an app that has not started).
    """
    app.state.draining = True
    context: ServiceContext | None = getattr(app.state, "context", None)
    if context is None or context.service.drain is None:
        return
    name = context.service.name
    logger.info("service.draining", extra={"service": name})
    started = time.monotonic()
    await context.service.drain(context)
    logger.info(
        "service.drained",
        extra={"service": name, "duration_s": round(time.monotonic() - started, 3)},
    )


def _context(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


async def get_context(request: Request) -> ServiceContext:
    """The running service's context."""
    # A coroutine: FastAPI runs a plain function dependency on a worker thread.
    return _context(request)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session in a transaction that commits when the request handler returns."""
    sessions = _context(request).sessions
    if sessions is None:
        raise RuntimeError("this service has no database")
    async with db.transaction(sessions) as session:
        yield session


async def get_identity(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Identity:
    """The caller's verified identity (401 without a valid access token)."""
    return await authenticate(_context(request).verifier, credentials)


async def get_writer(identity: Annotated[Identity, Depends(get_identity)]) -> Identity:
    """The caller's identity, when it may change things (403 for a read-only key)."""
    if not identity.can_write:
        raise Forbidden("this credential is read-only")
    return identity


ContextDep = Annotated[ServiceContext, Depends(get_context)]
# scope="function": the transaction commits before the response is sent, so a client never sees a
# success whose commit then failed.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
IdentityDep = Annotated[Identity, Depends(get_identity)]
WriterDep = Annotated[Identity, Depends(get_writer)]
