"""Alembic, one tree per service, each confined to the service's own schema.

A service's ``migrations/env.py`` is two lines: import its ``MetaData`` and call
:func:`run_migrations`. The version table lives in the service's schema, autogenerate only sees
that schema, and the schema is created before the first revision runs. :func:`upgrade` and
:func:`revision` drive a tree from code (``novitrac migrate`` and ``novitrac revision``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from novitrac_kit.dsn import sqlalchemy_url

FILE_TEMPLATE = "%%(year)d-%%(month).2d-%%(day).2d-%%(hour).2d%%(minute).2d_%%(slug)s"


def alembic_config(migrations: Path, database_url: str) -> Config:
    """An in-memory Alembic configuration for one service's migration tree."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("file_template", FILE_TEMPLATE)
    config.set_main_option("timezone", "UTC")
    config.set_section_option("post_write_hooks", "hooks", "ruff_fix, ruff_format")
    config.set_section_option("post_write_hooks", "ruff_fix.type", "module")
    config.set_section_option("post_write_hooks", "ruff_fix.module", "ruff")
    config.set_section_option(
        "post_write_hooks", "ruff_fix.options", "check --fix --quiet REVISION_SCRIPT_FILENAME"
    )
    config.set_section_option("post_write_hooks", "ruff_format.type", "module")
    config.set_section_option("post_write_hooks", "ruff_format.module", "ruff")
    config.set_section_option(
        "post_write_hooks", "ruff_format.options", "format --quiet REVISION_SCRIPT_FILENAME"
    )
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(migrations: Path, database_url: str, revision: str = "head") -> None:
    """Apply a service's migrations up to ``revision``. Blocking: call it off the event loop."""
    command.upgrade(alembic_config(migrations, database_url), revision)


def revision(migrations: Path, database_url: str, message: str) -> None:
    """Autogenerate a new revision from the difference between the models and the database."""
    command.revision(alembic_config(migrations, database_url), message=message, autogenerate=True)


def run_migrations(metadata: MetaData) -> None:
    """The body of a service's ``env.py``: run its migrations inside its own schema."""
    schema = metadata.schema
    if schema is None:
        raise ValueError("a service's MetaData must name its schema")
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise ValueError("sqlalchemy.url is not set")

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        return type_ != "table" or getattr(obj, "schema", None) == schema

    options: dict[str, Any] = {
        "target_metadata": metadata,
        "version_table_schema": schema,
        "include_schemas": True,
        "include_object": include_object,
        "compare_type": True,
    }

    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    def migrate(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.commit()
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(
            url, connect_args={"server_settings": {"application_name": f"{schema}.migrate"}}
        )
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
        finally:
            await engine.dispose()

    asyncio.run(run())
