"""Every service's migrations build its schema from nothing, and match its models."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from novitrac_kit import migrations
from novitrac_kit.dsn import asyncpg_url
from novitrac_kit.service import Service, discover

SERVICES_WITH_SCHEMA = [s for s in discover().values() if s.database is not None]


def test_every_service_with_data_is_discovered() -> None:
    assert {s.name for s in discover().values()} >= {
        "gateway",
        "auth",
        "telephony",
        "voice-ai",
        "billing",
        "notifications",
    }
    assert {s.database.schema for s in SERVICES_WITH_SCHEMA if s.database} == {
        "auth",
        "telephony",
        "voice",
        "billing",
        "notifications",
    }


@pytest.mark.parametrize("service", SERVICES_WITH_SCHEMA, ids=lambda s: s.name)
async def test_migrates_to_head_in_its_own_schema(service: Service, database_url: str) -> None:
    database = service.database
    assert database is not None
    schema = database.schema

    await asyncio.to_thread(migrations.upgrade, database.migrations, database_url)
    # Applying again is a no-op, as a restarted migration job expects.
    await asyncio.to_thread(migrations.upgrade, database.migrations, database_url)

    connection = await asyncpg.connect(asyncpg_url(database_url))
    try:
        schemas = {
            row["table_schema"]
            for row in await connection.fetch(
                "SELECT DISTINCT table_schema FROM information_schema.tables"
                " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
        }
        version = await connection.fetchval(f'SELECT version_num FROM "{schema}".alembic_version')
    finally:
        await connection.close()
    assert schemas == {schema}, "a service's migrations touch its own schema only"
    assert version

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync,
                        opts={
                            "include_schemas": True,
                            "version_table_schema": schema,
                            "include_object": lambda obj, name, type_, reflected, other: (
                                type_ != "table" or getattr(obj, "schema", None) == schema
                            ),
                        },
                    ),
                    database.metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == [], f"{service.name}: models and migrations differ; run make revision"
