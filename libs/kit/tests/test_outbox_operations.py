"""Operating a service's outbox: the parking migration, and ``novitrac outbox parked|retry``.

Against the real PostgreSQL, with real services' schemas migrated, and the command run as an
operator runs it: in a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from novitrac_contracts.envelope import Envelope
from novitrac_kit import migrations, outbox
from novitrac_kit.dsn import asyncpg_url
from novitrac_kit.service import Service, discover

pytestmark = pytest.mark.postgres

SERVICES_WITH_OUTBOX = [
    s for s in discover().values() if s.database is not None and s.database.outbox is not None
]


def novitrac(*args: str, database_url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVITRAC_")}
    if database_url is not None:
        env["NOVITRAC_DATABASE_URL"] = asyncpg_url(database_url)
    return subprocess.run(
        [sys.executable, "-m", "novitrac_kit.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def run_novitrac(*args: str, database_url: str | None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(novitrac, *args, database_url=database_url)


async def outbox_indexes(engine: AsyncEngine, schema: str) -> dict[str, str]:
    """The outbox's own indexes by name, their definitions with the schema name left out."""
    async with engine.connect() as connection:
        result = await connection.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = :schema AND tablename = 'outbox'"
                " AND indexname LIKE 'ix_outbox_%'"
            ),
            {"schema": schema},
        )
        return {name: definition.replace(f" {schema}.", " ") for name, definition in result}


async def outbox_columns(engine: AsyncEngine, schema: str) -> set[str]:
    async with engine.connect() as connection:
        result = await connection.scalars(
            text(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = :schema AND table_name = 'outbox'"
            ),
            {"schema": schema},
        )
        return set(result)


@pytest.mark.parametrize("service", SERVICES_WITH_OUTBOX, ids=lambda s: s.name)
async def test_the_parking_migration_builds_what_the_relay_uses_and_reverts(
    service: Service, database_url: str, engine: AsyncEngine
) -> None:
    database = service.database
    assert database is not None
    await asyncio.to_thread(migrations.upgrade, database.migrations, database_url)
    reference = MetaData(schema="reference")
    outbox.outbox_table(reference)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE SCHEMA reference"))
        await connection.run_sync(reference.create_all)

    assert await outbox_indexes(engine, database.schema) == await outbox_indexes(
        engine, "reference"
    )
    assert {"refusals", "parked_at"} <= await outbox_columns(engine, database.schema)

    config = migrations.alembic_config(database.migrations, database_url)
    # To the revision before parking, whatever later migrations the service has gained since.
    [parking] = [
        script
        for script in ScriptDirectory.from_config(config).walk_revisions()
        if script.path.endswith("_outbox_parking.py")
    ]
    assert isinstance(parking.down_revision, str)
    await asyncio.to_thread(command.downgrade, config, parking.down_revision)

    assert set(await outbox_indexes(engine, database.schema)) == {"ix_outbox_unpublished"}
    assert not {"refusals", "parked_at"} & await outbox_columns(engine, database.schema)

    await asyncio.to_thread(migrations.upgrade, database.migrations, database_url)

    assert set(await outbox_indexes(engine, database.schema)) == {
        "ix_outbox_pending",
        "ix_outbox_parked",
    }


async def test_lists_the_parked_events_and_releases_them(
    database_url: str, engine: AsyncEngine
) -> None:
    service = discover()["notifications"]
    assert service.database is not None
    table = service.database.outbox
    assert table is not None
    await asyncio.to_thread(migrations.upgrade, service.database.migrations, database_url)
    first, second, pending = uuid4(), uuid4(), uuid4()
    written = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    async with engine.begin() as connection:
        for n, (event_id, parked) in enumerate(((first, True), (second, True), (pending, False))):
            envelope = Envelope(id=event_id, type="notifications.tested.v1", producer="tests")
            await connection.execute(
                insert(table).values(
                    id=event_id,
                    type=envelope.type,
                    envelope=envelope.model_dump(mode="json"),
                    created_at=written + timedelta(minutes=n),
                    refusals=5 if parked else 0,
                    parked_at=written + timedelta(hours=1) if parked else None,
                    last_error="'notifications.tested.v1' on 'novitrac.events' not confirmed:\n"
                    "DeliveryError: Basic.Nack",
                )
            )

    listed = await run_novitrac("outbox", "parked", "notifications", database_url=database_url)

    assert listed.returncode == 0, listed.stderr
    header, *lines = listed.stdout.splitlines()
    assert header.split("\t") == ["ID", "TYPE", "CREATED AT", "REFUSALS", "LAST ERROR"]
    assert [line.split("\t") for line in lines] == [
        [
            str(event_id),
            "notifications.tested.v1",
            (written + timedelta(minutes=n)).isoformat(timespec="seconds"),
            "5",
            "'notifications.tested.v1' on 'novitrac.events' not confirmed: "
            "DeliveryError: Basic.Nack",
        ]
        for n, event_id in enumerate((first, second))
    ]

    released = await run_novitrac(
        "outbox", "retry", "notifications", "--id", str(first), database_url=database_url
    )

    assert released.returncode == 0, released.stderr
    assert str(first) in released.stdout
    assert await parked_state(engine, table) == {
        first: (False, 0),
        second: (True, 5),
        pending: (False, 0),
    }

    partly = await run_novitrac(
        "outbox",
        "retry",
        "notifications",
        "--id",
        str(pending),
        str(second),
        database_url=database_url,
    )

    assert partly.returncode == 1
    assert str(second) in partly.stdout
    assert f"{pending} is not a parked event of notifications" in partly.stderr
    assert await parked_state(engine, table) == {
        first: (False, 0),
        second: (False, 0),
        pending: (False, 0),
    }

    listed = await run_novitrac("outbox", "parked", "notifications", database_url=database_url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "notifications: no parked events"


async def test_retry_without_ids_releases_every_parked_event(
    database_url: str, engine: AsyncEngine
) -> None:
    service = discover()["auth"]
    assert service.database is not None
    table = service.database.outbox
    assert table is not None
    await asyncio.to_thread(migrations.upgrade, service.database.migrations, database_url)
    parked = [uuid4() for _ in range(3)]
    async with engine.begin() as connection:
        for event_id in parked:
            envelope = Envelope(id=event_id, type="auth.tested.v1", producer="tests")
            await connection.execute(
                insert(table).values(
                    id=event_id,
                    type=envelope.type,
                    envelope=envelope.model_dump(mode="json"),
                    refusals=5,
                    parked_at=datetime.now(UTC),
                    last_error="refused",
                )
            )

    released = await run_novitrac("outbox", "retry", "auth", database_url=database_url)

    assert released.returncode == 0, released.stderr
    assert sorted(released.stdout.splitlines()[:-1]) == sorted(map(str, parked))
    assert released.stdout.splitlines()[-1] == "auth: 3 parked events released"
    assert await parked_state(engine, table) == dict.fromkeys(parked, (False, 0))


async def test_a_service_without_an_outbox_is_named() -> None:
    result = await run_novitrac(
        "outbox", "parked", "gateway", database_url="postgresql://nowhere/none"
    )

    assert result.returncode != 0
    assert "gateway has no outbox" in result.stderr


async def test_needs_a_database_url() -> None:
    result = await run_novitrac("outbox", "retry", "auth", database_url=None)

    assert result.returncode == 2
    assert "NOVITRAC_DATABASE_URL" in result.stderr


async def parked_state(engine: AsyncEngine, table: Table) -> dict[UUID, tuple[bool, int]]:
    """Per event: whether it is parked, and its refusal count."""
    async with engine.connect() as connection:
        result = await connection.execute(
            select(table.c.id, table.c.parked_at.is_not(None), table.c.refusals)
        )
        return {event_id: (parked, refusals) for event_id, parked, refusals in result}
