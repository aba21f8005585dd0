"""Turn a :class:`~novitrac_kit.service.Service` into a running FastAPI application.

The app's lifespan opens the service's database engine, subscribes its event handlers, runs its
outbox relay and its own lifespan, and serves ``/healthz``, ``/readyz`` and ``/metrics``. Request
handlers get a session in a transaction from :data:`SessionDep`; they never commit themselves.
"""

from __future__ import annotations

import logging
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
from novitrac_kit.health import health_router
from novitrac_kit.metrics import instrument_metrics, metrics_router
from novitrac_kit.outbox import OutboxRelay
from novitrac_kit.service import Service
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
            context = ServiceContext(service, settings, bus, engine, sessions, verifier)
            app.state.context = context

            database = service.database
            if database is not None and engine is not None and sessions is not None:
                if database.outbox is not None:
                    relay = OutboxRelay(engine, database.outbox, bus)
                    await relay.start()
                    stack.push_async_callback(relay.stop)
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

    app = FastAPI(title=service.title, lifespan=lifespan)

    async def database_ready() -> bool:
        engine = app.state.context.engine
        return engine is not None and await db.ping(engine)

    checks = {"bus": bus.is_ready}
    if service.database is not None:
        checks["database"] = database_ready
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
