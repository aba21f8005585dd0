"""What a Novitrac service is: a FastAPI app, its event handlers, its schema and its lifespan.

Each service package exposes one :class:`Service` (``novitrac_billing.main:service``) and
registers it under the ``novitrac.services`` entry point group, which is how ``novitrac run``,
``novitrac dev`` and ``novitrac migrate`` find it. A definition reads no settings: the commands
that run it (:mod:`novitrac_kit.process`, :mod:`novitrac_kit.devmode`) load them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter
from sqlalchemy import MetaData, Table
from starlette.middleware import Middleware

from novitrac_kit.bus import EventBus, RetryPolicy
from novitrac_kit.config import ServiceSettings
from novitrac_kit.handlers import EventHandlers

if TYPE_CHECKING:
    from novitrac_kit.runtime import ServiceContext

ENTRY_POINT_GROUP = "novitrac.services"

Lifespan = Callable[["ServiceContext"], AbstractAsyncContextManager[None]]
Readiness = Callable[["ServiceContext"], Awaitable[bool]]
"""A readiness check of the service's own: True while it can take more work."""
Drain = Callable[["ServiceContext"], Awaitable[None]]
"""What a service does between the first SIGTERM and shutting down (see :attr:`Service.drain`)."""


@dataclass(frozen=True)
class DevelopmentSite:
    """Where ``novitrac dev`` runs things, for services that must be told addresses or secrets.

    Attributes:
        host: the loopback address every server listens on.
        port_offset: added to every default port (services and sandbox alike).
        data_dir: the folder development data lives in (survives restarts).
    """

    host: str
    port_offset: int
    data_dir: Path

    def port(self, default: int) -> int:
        """Where a server whose default port is ``default`` listens in this run."""
        return default + self.port_offset

    def url(self, default_port: int, path: str = "") -> str:
        """``http://host:port`` (+ ``path``) of a server whose default port is ``default_port``."""
        return f"http://{self.host}:{self.port(default_port)}{path}"


DevelopmentEnvironment = Callable[[DevelopmentSite], Mapping[str, str]]
"""The environment variables a service needs in development mode (user-set ones win)."""


@dataclass(frozen=True)
class Database:
    """A service's own schema: its tables, its outbox and inbox, and its Alembic migrations.

    Attributes:
        metadata: the schema's ``MetaData`` (its ``schema`` is the service's schema name).
        migrations: the folder holding ``env.py`` and ``versions/``.
        outbox: the service's outbox table, when it publishes domain events.
        inbox: the service's inbox table, when it consumes domain events.
    """

    metadata: MetaData
    migrations: Path
    outbox: Table | None = None
    inbox: Table | None = None

    @property
    def schema(self) -> str:
        """The PostgreSQL schema the service owns."""
        if self.metadata.schema is None:
            raise ValueError("a service's MetaData must name its schema")
        return self.metadata.schema


@dataclass(frozen=True)
class Service:
    """The definition of one deployable service.

    Attributes:
        name: the service's name: its queue, its log and metric label, its ``novitrac run`` name.
        title: a human title for its OpenAPI document.
        settings: its settings class (a :class:`ServiceSettings` subclass with its env prefix).
        port: the port it listens on by default (and in development mode).
        database: its schema, or None for a service that keeps nothing durable.
        routers: its HTTP routes.
        middleware: ASGI middleware around its routes, the first outermost; all of it runs
            inside the kit's request tracing and metrics.
        handlers: the domain events it consumes.
        retry: how its failing event handlers are retried.
        lifespan: extra start-up/shut-down work, given the running :class:`ServiceContext`.
        development_environment: what ``novitrac dev`` must set for it (addresses that move with
            the port offset, development-only secrets).
        readiness: the service's own readiness checks by name (beside ``bus`` and ``database``),
            each given the running context; ``/readyz`` answers 503 while one is False.
        drain: how the service winds down before shutting down, given the running context.
            Under ``novitrac run``, the first SIGTERM or SIGINT makes ``/readyz`` answer 503 at
            once (check ``accepting``), awaits this, then shuts down as usual; a second signal
            shuts down at once. Without it, the first signal shuts down at once.
        full_collection_every: under ``novitrac run``, how many of the collector's middle
            collections may pass before a full one (``gc``'s third threshold, 10 by default). A
            full collection stops the event loop while it walks every object of the process: for
            a service that must answer within milliseconds while holding many connections, a
            larger number makes those stops rarer.
    """

    name: str
    title: str
    settings: type[ServiceSettings]
    port: int
    database: Database | None = None
    routers: Sequence[APIRouter] = ()
    middleware: Sequence[Middleware] = ()
    handlers: EventHandlers = field(default_factory=EventHandlers)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    lifespan: Lifespan | None = None
    development_environment: DevelopmentEnvironment | None = None
    readiness: Mapping[str, Readiness] = field(default_factory=dict)
    drain: Drain | None = None
    full_collection_every: int | None = None

    def __post_init__(self) -> None:
        if self.handlers.event_types and (self.database is None or self.database.inbox is None):
            raise ValueError(f"service {self.name!r} consumes events and needs an inbox table")


def discover() -> dict[str, Service]:
    """Every installed service, by name, in a stable order."""
    found: dict[str, Service] = {}
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        service = point.load()
        if not isinstance(service, Service):
            raise TypeError(f"entry point {point.name!r} is not a novitrac_kit.service.Service")
        found[service.name] = service
    return found


async def declare_queues(bus: EventBus, services: Sequence[Service]) -> None:
    """Declare the queue of every service that consumes events, before any of them publishes.

    Without this, an event published while its consumer has never run would be routed nowhere.
    """
    for service in services:
        if service.handlers.event_types:
            await bus.declare(service.name, service.handlers.event_types)


__all__ = [
    "ENTRY_POINT_GROUP",
    "Database",
    "DevelopmentEnvironment",
    "DevelopmentSite",
    "Drain",
    "Readiness",
    "Service",
    "declare_queues",
    "discover",
]
