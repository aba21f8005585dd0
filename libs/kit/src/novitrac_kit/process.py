"""``novitrac run <service>``: one service as its own process, as containers and Kubernetes do.

The first SIGTERM or SIGINT drains a service that declares how
(:attr:`~novitrac_kit.service.Service.drain`): ``/readyz`` answers 503 at once (check
``accepting``) so no new work is routed to it, the drain runs while everything in progress is
served as usual, then the process shuts down as it would have and exits 0. A second signal during
the drain shuts down at once. A service without a drain shuts down on the first signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from novitrac_kit.bus.rabbitmq import RabbitBus
from novitrac_kit.config import load_settings
from novitrac_kit.runtime import create_app, drain
from novitrac_kit.service import Service
from novitrac_kit.telemetry import configure_logging, configure_tracing, instrument_httpx

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first exit signal runs ``drain`` before shutting down.

    Args:
        config: uvicorn's configuration.
        drain: what to await before shutting down; None behaves as plain uvicorn.
    """

    def __init__(
        self, config: uvicorn.Config, *, drain: Callable[[], Awaitable[None]] | None
    ) -> None:
        super().__init__(config)
        self._drain = drain
        self._drain_requested = False
        self._draining: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What the lifespan set up (connections, clients, caches) lives as long as the process.
        freeze_long_lived_objects()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """The signal handler: the first signal starts the drain, any other exits as usual."""
        loop = self._loop
        if self._drain is None or loop is None or self._drain_requested or self.should_exit:
            if self._drain_requested and loop is not None:
                loop.call_soon_threadsafe(self._stop_drain)
            super().handle_exit(sig, frame)
            return
        # A signal handler must not block: the drain runs on the loop, and ends by asking uvicorn
        # to shut down. The signal is not re-raised afterwards: a drained exit is a clean 0.
        self._drain_requested = True
        loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        assert self._drain is not None
        if not self.should_exit:
            self._draining = asyncio.ensure_future(self._run_drain(self._drain))

    def _stop_drain(self) -> None:
        if self._draining is not None:
            self._draining.cancel()

    async def _run_drain(self, drain: Callable[[], Awaitable[None]]) -> None:
        try:
            await drain()
        except asyncio.CancelledError:
            logger.warning("service.drain.interrupted")
        except Exception:
            logger.exception("service.drain.failed")
        finally:
            self.should_exit = True


def serve(app: FastAPI, service: Service, *, host: str, port: int, **options: Any) -> None:
    """Serve ``app`` (built from ``service``) until a signal, draining first when it says how.

    Args:
        app: the service's app (:func:`~novitrac_kit.runtime.create_app`).
        service: its definition (its :attr:`~novitrac_kit.service.Service.drain`).
        host: the address to listen on.
        port: the port to listen on.
        options: more :class:`uvicorn.Config` options.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        timeout_graceful_shutdown=20,
        # Compressing every frame costs more CPU than the bandwidth it saves on dashboards' small
        # JSON messages and on media frames that do not compress.
        ws_per_message_deflate=False,
        **options,
    )

    async def drain_app() -> None:
        await drain(app)

    server = DrainingServer(config, drain=drain_app if service.drain is not None else None)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(3)


def freeze_long_lived_objects() -> None:
    """Keep everything alive now out of every later garbage collection.

    Modules, settings, clients and pools live as long as the process; left in the collector's
    oldest generation, each full collection walks them all again, and a full collection stops the
    event loop for its whole length (tens of milliseconds with hundreds of calls in progress).
    """
    gc.collect()
    gc.freeze()


def run_service(service: Service, *, host: str | None = None, port: int | None = None) -> None:
    """Serve ``service`` with the RabbitMQ transport until SIGINT or SIGTERM."""
    settings = load_settings(service.settings)
    configure_logging(service.name, level=settings.log_level, fmt=settings.log_format)
    configure_tracing(
        service.name,
        otlp_endpoint=settings.otel_exporter_otlp_endpoint,
        sample_ratio=settings.otel_sample_ratio,
    )
    instrument_httpx()
    bus = RabbitBus(settings.amqp_url.get_secret_value(), connection_name=service.name)
    app = create_app(service, settings=settings, bus=bus, owns_bus=True)
    if service.full_collection_every is not None:
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, service.full_collection_every)
    freeze_long_lived_objects()
    serve(
        app,
        service,
        host=host or settings.http_host,
        port=port or settings.http_port or service.port,
        log_config=None,
        access_log=False,
    )
