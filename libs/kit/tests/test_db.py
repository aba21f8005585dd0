"""The database plumbing against the real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from novitrac_kit import db

pytestmark = pytest.mark.postgres


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(database_url, application_name="kit-tests.db")
    yield engine
    await engine.dispose()


async def create_schema(engine: AsyncEngine, metadata: MetaData) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{metadata.schema}"'))
        await connection.run_sync(metadata.create_all)


def notes_table(metadata: MetaData) -> Table:
    return Table(
        "notes",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("body", Text, nullable=False),
    )


@pytest.fixture
async def notes(engine: AsyncEngine, unique_name: str) -> Table:
    metadata = db.service_metadata(unique_name)
    table = notes_table(metadata)
    await create_schema(engine, metadata)
    return table


class TestServiceMetadata:
    async def test_tables_live_in_the_schema(self, engine: AsyncEngine, unique_name: str) -> None:
        metadata = db.service_metadata(unique_name)
        notes_table(metadata)
        await create_schema(engine, metadata)

        async with engine.connect() as connection:
            tables = (
                await connection.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"
                    ),
                    {"s": unique_name},
                )
            ).scalars()
            assert set(tables) == {"notes"}

    async def test_constraint_and_index_names(self, engine: AsyncEngine, unique_name: str) -> None:
        metadata = db.service_metadata(unique_name)
        Table(
            "accounts",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("email", Text, unique=True),
            Column("balance", Integer, CheckConstraint("balance >= 0", name="not_negative")),
        )
        Table(
            "payments",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("account_id", ForeignKey("accounts.id")),
            Column("reference", Text, index=True),
        )
        await create_schema(engine, metadata)

        async with engine.connect() as connection:
            constraints = set(
                (
                    await connection.execute(
                        text(
                            "SELECT conname FROM pg_constraint c JOIN pg_namespace n"
                            " ON n.oid = c.connamespace WHERE n.nspname = :s"
                        ),
                        {"s": unique_name},
                    )
                ).scalars()
            )
            indexes = set(
                (
                    await connection.execute(
                        text("SELECT indexname FROM pg_indexes WHERE schemaname = :s"),
                        {"s": unique_name},
                    )
                ).scalars()
            )
        assert constraints == {
            "accounts_pkey",
            "accounts_email_key",
            "accounts_not_negative_check",
            "payments_pkey",
            "payments_account_id_fkey",
        }
        assert "ix_payments_reference" in indexes


class TestCreateEngine:
    async def test_application_name(self, engine: AsyncEngine) -> None:
        async with engine.connect() as connection:
            name = await connection.scalar(text("SELECT current_setting('application_name')"))
        assert name == "kit-tests.db"

    async def test_plain_postgresql_url(self, database_url: str) -> None:
        plain = database_url.replace("postgresql+asyncpg://", "postgresql://")
        engine = db.create_engine(plain, application_name="kit-tests.plain")
        try:
            async with engine.connect() as connection:
                assert await connection.scalar(text("SELECT 1")) == 1
        finally:
            await engine.dispose()


class TestTransaction:
    async def test_commits_on_success(self, engine: AsyncEngine, notes: Table) -> None:
        sessions = db.create_session_factory(engine)
        async with db.transaction(sessions) as session:
            await session.execute(insert(notes).values(body="kept"))

        async with sessions() as session:
            assert (await session.execute(select(notes.c.body))).scalars().all() == ["kept"]

    async def test_rolls_back_on_error(self, engine: AsyncEngine, notes: Table) -> None:
        sessions = db.create_session_factory(engine)

        async def insert_then_fail() -> None:
            async with db.transaction(sessions) as session:
                await session.execute(insert(notes).values(body="lost"))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await insert_then_fail()

        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(notes)) == 0

    async def test_objects_stay_readable_after_commit(
        self, engine: AsyncEngine, unique_name: str
    ) -> None:
        class Base(DeclarativeBase):
            metadata = db.service_metadata(unique_name)

        class Note(Base):
            __tablename__ = "notes"
            id: Mapped[int] = mapped_column(primary_key=True)
            body: Mapped[str]

        await create_schema(engine, Base.metadata)
        sessions = db.create_session_factory(engine)
        async with db.transaction(sessions) as session:
            note = Note(body="hello")
            session.add(note)

        assert (note.id, note.body) == (1, "hello")


class TestDriverConnection:
    async def test_its_statements_roll_back_with_the_transaction_even_first_ones(
        self, engine: AsyncEngine, notes: Table
    ) -> None:
        sessions = db.create_session_factory(engine)

        async def insert_then_fail() -> None:
            async with db.transaction(sessions) as session:
                driver = await db.driver_connection(session)
                await driver.execute(f"INSERT INTO {notes.fullname} (body) VALUES ($1)", "lost")
                await session.execute(insert(notes).values(body="lost too"))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await insert_then_fail()

        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(notes)) == 0

    async def test_its_statements_commit_with_the_transaction(
        self, engine: AsyncEngine, notes: Table
    ) -> None:
        sessions = db.create_session_factory(engine)
        async with db.transaction(sessions) as session:
            await session.execute(insert(notes).values(body="first"))
            driver = await db.driver_connection(session)
            await driver.execute(f"INSERT INTO {notes.fullname} (body) VALUES ($1)", "second")

        async with sessions() as session:
            bodies = (await session.execute(select(notes.c.body).order_by(notes.c.id))).scalars()
            assert bodies.all() == ["first", "second"]


class TestPing:
    async def test_reachable(self, engine: AsyncEngine) -> None:
        assert await db.ping(engine) is True

    async def test_unreachable(self) -> None:
        engine = db.create_engine(
            "postgresql+asyncpg://postgres@127.0.0.1:1/test", application_name="kit-tests.down"
        )
        try:
            assert await db.ping(engine) is False
        finally:
            await engine.dispose()

    async def test_missing_database(self, database_url: str) -> None:
        base, _, _ = database_url.rpartition("/")
        engine = db.create_engine(f"{base}/no_such_database", application_name="kit-tests.down")
        try:
            assert await db.ping(engine) is False
        finally:
            await engine.dispose()
