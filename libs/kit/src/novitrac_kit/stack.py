"""``novitrac stack``: every service as its own process against a real PostgreSQL and RabbitMQ.

This is how production runs (one process per service, the RabbitMQ transport), on one machine:
the database is created when missing, migrations are applied, then each service is started with
``novitrac run`` beside the provider sandbox (``novitrac sandbox``, its webhooks sent through the
gateway), and their output is prefixed with their names. The services get the same wiring as in
development mode (sandbox addresses and credentials, development secrets) for every variable the
environment does not set, so real providers are a matter of setting their variables. Ctrl-C stops
them all; so does the death of any one of them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from novitrac_kit import migrations
from novitrac_kit.bus.rabbitmq import RabbitBus
from novitrac_kit.devmode import GATEWAY_PORT, development_environment
from novitrac_kit.dsn import asyncpg_url
from novitrac_kit.service import DevelopmentSite, Service, declare_queues

HOST = "127.0.0.1"


async def ensure_database(url: str) -> None:
    """Create the database ``url`` names when it does not exist yet."""
    parts = urlsplit(asyncpg_url(url))
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    connection = await asyncpg.connect(admin)
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def run_stack(
    services: list[Service], *, database_url: str, amqp_url: str, with_sandbox: bool = True
) -> int:
    """Migrate, start every service, and wait; returns the exit code for the command."""
    asyncio.run(ensure_database(database_url))
    asyncio.run(_declare_queues(services, amqp_url))
    for service in services:
        if service.database is not None:
            migrations.upgrade(service.database.migrations, database_url)
    site = DevelopmentSite(host=HOST, port_offset=0, data_dir=Path(".novitrac"))
    environment = {
        **development_environment(services, site),
        **os.environ,
        "NOVITRAC_DATABASE_URL": database_url,
        "NOVITRAC_AMQP_URL": amqp_url,
    }
    commands = {service.name: ["run", service.name] for service in services}
    if with_sandbox:
        gateway = site.url(GATEWAY_PORT)
        commands["sandbox"] = [
            "sandbox",
            "--stripe-webhook-url",
            f"{gateway}/webhooks/stripe",
            "--elevenlabs-webhook-url",
            f"{gateway}/webhooks/elevenlabs",
        ]
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "novitrac_kit.cli", *command],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, command in commands.items()
    }
    width = max(len(name) for name in processes)
    for name, process in processes.items():
        threading.Thread(target=_relay, args=(name.ljust(width), process), daemon=True).start()
        if name != "sandbox":
            print(f"{name.ljust(width)} | http://{HOST}:{_port(services, name)}")  # noqa: T201

    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    while not stopping.wait(0.5):
        if any(process.poll() is not None for process in processes.values()):
            break
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    failed = 0
    for name, process in processes.items():
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if code not in (0, -signal.SIGTERM):
            print(f"{name} exited with {code}")  # noqa: T201
            failed = 1
    return failed


async def _declare_queues(services: list[Service], amqp_url: str) -> None:
    async with RabbitBus(amqp_url, connection_name="novitrac-stack") as bus:
        await declare_queues(bus, services)


def _port(services: list[Service], name: str) -> int:
    return next(service.port for service in services if service.name == name)


def _relay(prefix: str, process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(f"{prefix} | {line}")
        sys.stdout.flush()
