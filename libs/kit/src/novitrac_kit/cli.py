"""The ``novitrac`` command: run the platform in one process, run one service, migrate, and more."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from novitrac_kit.config import SettingsError
from novitrac_kit.service import Service, discover
from novitrac_kit.serving import ServingError

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``novitrac`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    services = discover()
    try:
        result: int = args.command(args, services)
    except (SettingsError, ServingError) as error:
        print(f"novitrac: {error}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="novitrac", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev", help="the whole platform in one process, with an embedded PostgreSQL"
    )
    dev.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("NOVITRAC_DATA_DIR", ".novitrac")),
        help="where the embedded database keeps its data (default: .novitrac)",
    )
    dev.add_argument("--host", default="127.0.0.1", help="address every service listens on")
    dev.add_argument(
        "--port-offset",
        type=int,
        default=int(os.environ.get("NOVITRAC_DEV_PORT_OFFSET", "0")),
        help="added to every service's port, to run beside another copy",
    )
    dev.set_defaults(command=_dev)

    run = commands.add_parser(
        "run", help="one service as its own process (NOVITRAC_DATABASE_URL, NOVITRAC_AMQP_URL)"
    )
    run.add_argument("service", help="the service to run")
    run.add_argument("--host", default=None, help="listen address (default: settings)")
    run.add_argument("--port", type=int, default=None, help="listen port (default: settings)")
    run.set_defaults(command=_run)

    migrate = commands.add_parser(
        "migrate", help="apply migrations (every service, or those named)"
    )
    migrate.add_argument("services", nargs="*", help="services to migrate (default: all)")
    migrate.add_argument("--database-url", default=None, help="default: NOVITRAC_DATABASE_URL")
    migrate.set_defaults(command=_migrate)

    revision = commands.add_parser(
        "revision", help="autogenerate a migration for one service from its models"
    )
    revision.add_argument("service")
    revision.add_argument("-m", "--message", required=True)
    revision.add_argument("--database-url", default=None, help="default: NOVITRAC_DATABASE_URL")
    revision.set_defaults(command=_revision)

    outbox = commands.add_parser(
        "outbox", help="events a service's outbox relay parked after the broker refused them"
    )
    outbox_actions = outbox.add_subparsers(required=True, metavar="ACTION")
    parked = outbox_actions.add_parser(
        "parked", help="list a service's parked events (id, type, created, refusals, last error)"
    )
    parked.add_argument("service")
    parked.add_argument("--database-url", default=None, help="default: NOVITRAC_DATABASE_URL")
    parked.set_defaults(command=_outbox_parked)
    retry = outbox_actions.add_parser(
        "retry", help="release parked events: the relay publishes them again, oldest first"
    )
    retry.add_argument("service")
    retry.add_argument(
        "--id",
        dest="ids",
        type=uuid.UUID,
        nargs="+",
        action="extend",
        metavar="UUID",
        help="the events to release (default: every parked event)",
    )
    retry.add_argument("--database-url", default=None, help="default: NOVITRAC_DATABASE_URL")
    retry.set_defaults(command=_outbox_retry)

    stack = commands.add_parser(
        "stack", help="every service as its own process against a real PostgreSQL and RabbitMQ"
    )
    stack.add_argument(
        "--database-url",
        default=os.environ.get(
            "NOVITRAC_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/novitrac"
        ),
    )
    stack.add_argument(
        "--amqp-url",
        default=os.environ.get("NOVITRAC_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    stack.set_defaults(command=_stack)

    sandbox = commands.add_parser(
        "sandbox", help="local stand-ins for Twilio, ElevenLabs, Stripe and SMTP until Ctrl-C"
    )
    sandbox.add_argument(
        "--host",
        default=os.environ.get("NOVITRAC_SANDBOX_HOST", "127.0.0.1"),
        help="address every stand-in listens on and advertises (default: 127.0.0.1)",
    )
    sandbox.add_argument(
        "--port-offset",
        type=int,
        default=int(os.environ.get("NOVITRAC_SANDBOX_PORT_OFFSET", "0")),
        help="added to every port (control 8100, twilio 8101, elevenlabs 8102, stripe 8103, "
        "smtp 2525)",
    )
    sandbox.add_argument(
        "--stripe-webhook-url",
        default=os.environ.get("NOVITRAC_SANDBOX_STRIPE_WEBHOOK_URL"),
        help="where Stripe events are posted (default: not sent)",
    )
    sandbox.add_argument(
        "--elevenlabs-webhook-url",
        default=os.environ.get("NOVITRAC_SANDBOX_ELEVENLABS_WEBHOOK_URL"),
        help="where ElevenLabs post-call webhooks are posted (default: not sent)",
    )
    sandbox.set_defaults(command=_sandbox)

    services = commands.add_parser("services", help="list the installed services and their ports")
    services.set_defaults(command=_list)
    return parser


def _pick(services: dict[str, Service], names: Sequence[str]) -> list[Service]:
    unknown = sorted(set(names) - set(services))
    if unknown:
        raise SystemExit(
            f"novitrac: unknown service {', '.join(unknown)}; installed: {', '.join(services)}"
        )
    return [services[name] for name in names] if names else list(services.values())


def _database_url(given: str | None) -> str:
    url = given or os.environ.get("NOVITRAC_DATABASE_URL")
    if not url:
        raise SettingsError("NOVITRAC_DATABASE_URL is not set (or pass --database-url)")
    return url


def _dev(args: argparse.Namespace, services: dict[str, Service]) -> int:
    from novitrac_kit.devmode import run_dev

    asyncio.run(
        run_dev(
            list(services.values()),
            data_dir=args.data_dir,
            host=args.host,
            port_offset=args.port_offset,
        )
    )
    return 0


def _run(args: argparse.Namespace, services: dict[str, Service]) -> int:
    from novitrac_kit.process import run_service

    (service,) = _pick(services, [args.service])
    run_service(service, host=args.host, port=args.port)
    return 0


def _migrate(args: argparse.Namespace, services: dict[str, Service]) -> int:
    from novitrac_kit import migrations

    url = _database_url(args.database_url)
    for service in _pick(services, args.services):
        if service.database is not None:
            migrations.upgrade(service.database.migrations, url)
            print(f"{service.name}: schema {service.database.schema} at head")  # noqa: T201
    return 0


def _revision(args: argparse.Namespace, services: dict[str, Service]) -> int:
    from novitrac_kit import migrations

    (service,) = _pick(services, [args.service])
    if service.database is None:
        raise SystemExit(f"novitrac: {service.name} has no database")
    migrations.revision(service.database.migrations, _database_url(args.database_url), args.message)
    return 0


def _outbox_parked(args: argparse.Namespace, services: dict[str, Service]) -> int:
    from novitrac_kit.outbox import parked_events

    (service,) = _pick(services, [args.service])
    table = _outbox_table(service)
    events = _with_engine(args.database_url, service, lambda engine: parked_events(engine, table))
    if not events:
        print(f"{service.name}: no parked events")  # noqa: T201
        return 0
    print("ID\tTYPE\tCREATED AT\tREFUSALS\tLAST ERROR")  # noqa: T201
    for event in events:
        created_at = event.created_at.isoformat(timespec="seconds")
        error = " ".join((event.last_error or "").split())
        print(f"{event.id}\t{event.type}\t{created_at}\t{event.refusals}\t{error}")  # noqa: T201
    return 0


def _outbox_retry(args: argparse.Namespace, services: dict[str, Service]) -> int:
    from novitrac_kit.outbox import release_parked

    (service,) = _pick(services, [args.service])
    table = _outbox_table(service)
    ids: list[uuid.UUID] | None = args.ids
    released = _with_engine(
        args.database_url, service, lambda engine: release_parked(engine, table, ids)
    )
    for event_id in released:
        print(event_id)  # noqa: T201
    print(f"{service.name}: {len(released)} parked events released")  # noqa: T201
    not_parked = [event_id for event_id in ids or () if event_id not in released]
    for event_id in not_parked:
        print(f"novitrac: {event_id} is not a parked event of {service.name}", file=sys.stderr)  # noqa: T201
    return 1 if not_parked else 0


def _outbox_table(service: Service) -> Table:
    if service.database is None or service.database.outbox is None:
        raise SystemExit(f"novitrac: {service.name} has no outbox")
    return service.database.outbox


def _with_engine(
    database_url: str | None, service: Service, work: Callable[[AsyncEngine], Awaitable[T]]
) -> T:
    """Run ``work`` with an engine on the service's database, disposed of afterwards."""
    from novitrac_kit import db

    url = _database_url(database_url)

    async def run() -> T:
        engine = db.create_engine(url, application_name=f"{service.name}.cli", pool_size=1)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _stack(args: argparse.Namespace, services: dict[str, Service]) -> int:
    from novitrac_kit.stack import run_stack

    return run_stack(
        list(services.values()), database_url=args.database_url, amqp_url=args.amqp_url
    )


def _sandbox(args: argparse.Namespace, services: dict[str, Service]) -> int:
    try:
        from novitrac_sandbox.config import SandboxConfig
        from novitrac_sandbox.main import offset_config, run
    except ModuleNotFoundError as error:
        if error.name != "novitrac_sandbox":
            raise
        raise SystemExit(
            "novitrac sandbox needs the novitrac-sandbox package: "
            "`uv sync` (or `pip install novitrac-sandbox`)"
        ) from error
    config = offset_config(
        SandboxConfig(),
        host=args.host,
        port_offset=args.port_offset,
        stripe_webhook_url=args.stripe_webhook_url,
        elevenlabs_webhook_url=args.elevenlabs_webhook_url,
    )
    return run(config)


def _list(args: argparse.Namespace, services: dict[str, Service]) -> int:
    for service in services.values():
        schema = service.database.schema if service.database else "-"
        print(f"{service.name:<15} port {service.port:<6} schema {schema}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
