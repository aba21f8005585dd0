"""The billing service running for real: migrated PostgreSQL, the sandbox's Stripe on a socket
(driven by the real ``stripe`` SDK, posting signed webhooks to billing's socket), the in-process
bus, and tokens verified against a JWKS server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from novitrac_billing.config import Settings
from novitrac_billing.db import accounts, inbox, ledger_entries, outbox
from novitrac_billing.main import service
from novitrac_contracts.auth import OrgCreated
from novitrac_contracts.envelope import Envelope, Event
from novitrac_contracts.telephony import CallDirection, CallEnded, CallStatus
from novitrac_kit import db, migrations
from novitrac_kit.bus import Delivery
from novitrac_kit.bus.memory import InProcessBus
from novitrac_kit.config import load_settings
from novitrac_kit.dsn import sqlalchemy_url
from novitrac_kit.runtime import create_app
from novitrac_kit.testing.internal import INTERNAL_TOKEN
from novitrac_kit.testing.servers import free_port, running
from novitrac_kit.testing.tokens import JwksServer, TokenIssuer
from novitrac_kit.testing.waiting import eventually
from novitrac_kit.tokens import Role
from novitrac_sandbox.config import (
    SANDBOX_STRIPE_SECRET_KEY,
    SANDBOX_STRIPE_WEBHOOK_SECRET,
    SandboxConfig,
)
from novitrac_sandbox.phone import PhoneBook
from novitrac_sandbox.stripe.app import create_app as create_stripe_app

MIGRATIONS = Path(service.database.migrations if service.database else ".")
FAST_RETRIES = (0.05, 0.1, 0.2)


async def _admin(server_database_url: str, statement: str) -> None:
    admin = await asyncpg.connect(server_database_url)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def template_database(server_database_url: str) -> Iterator[str]:
    """A database migrated to head once per run; each test gets a copy of it.

    The copies are dropped together at the end of the run (dropping one takes a checkpoint).
    """
    name = f"novitrac_billing_template_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server_database_url, f'CREATE DATABASE "{name}"'))
    base, _, _ = server_database_url.rpartition("/")
    migrations.upgrade(MIGRATIONS, f"{base}/{name}")
    yield name
    for copy in [*_COPIES, name]:
        asyncio.run(_admin(server_database_url, f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)'))


_COPIES: list[str] = []


async def copy_database(server_database_url: str, template: str, prefix: str) -> str:
    """A new database copied from ``template`` (``postgresql+asyncpg://``), dropped at the end."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _admin(server_database_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    _COPIES.append(name)
    base, _, _ = server_database_url.rpartition("/")
    return sqlalchemy_url(f"{base}/{name}")


@pytest.fixture(scope="module")
def billing_database(server_database_url: str, template_database: str) -> str:
    """A migrated database of billing's own for a test module (``postgresql+asyncpg://``).

    Tests share it the way organisations share production: each works with organisations of its
    own and looks only at them.
    """
    return asyncio.run(copy_database(server_database_url, template_database, "novitrac_billing"))


@dataclass
class Billing:
    """The running service and what a test needs to drive and observe it."""

    client: httpx.AsyncClient
    stripe_url: str
    control: httpx.AsyncClient
    bus: InProcessBus
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    issuer: TokenIssuer
    settings: Settings
    url: str
    jwks_url: str

    def token(
        self, org_id: uuid.UUID, *, role: Role | None = "owner", api_key: bool = False
    ) -> str:
        """A user's (or an API key's) access token for ``org_id``."""
        if api_key:
            return self.issuer.issue(org_id=org_id, subject=f"apikey:{uuid.uuid4()}")
        return self.issuer.issue(org_id=org_id, user_id=uuid.uuid4(), role=role)

    def auth(self, org_id: uuid.UUID, **kwargs: Any) -> dict[str, str]:
        """Authorization headers for ``org_id``."""
        return {"Authorization": f"Bearer {self.token(org_id, **kwargs)}"}

    async def deliver(self, event: Event | Envelope, *, producer: str = "tests") -> Envelope:
        """Hand one delivery to billing's handlers, as its queue consumer does."""
        envelope = event if isinstance(event, Envelope) else Envelope.wrap(event, producer=producer)
        subscription = service.handlers.subscription(
            queue=service.name, sessions=self.sessions, inbox=inbox
        )
        await subscription.handler(Delivery(envelope))
        return envelope

    async def open_org(self, org_id: uuid.UUID | None = None) -> uuid.UUID:
        """An organisation created by auth, and its billing account opened."""
        org_id = org_id or uuid.uuid4()
        await self.deliver(
            OrgCreated(
                org_id=org_id,
                name=f"Org {org_id.hex[:6]}",
                owner_user_id=uuid.uuid4(),
                owner_email=f"owner-{org_id.hex[:6]}@example.com",
            ),
            producer="auth",
        )
        return org_id

    async def end_call(
        self,
        org_id: uuid.UUID,
        duration_s: int,
        *,
        call_id: uuid.UUID | None = None,
        direction: CallDirection = CallDirection.OUTBOUND,
        started_at: datetime | None = None,
    ) -> uuid.UUID:
        """Telephony's ``telephony.call.ended.v1`` for a call of ``duration_s`` seconds."""
        event = call_ended(
            org_id, duration_s, call_id=call_id, direction=direction, started_at=started_at
        )
        await self.deliver(event, producer="telephony")
        return event.call_id

    async def account(self, org_id: uuid.UUID) -> dict[str, Any]:
        """``GET /v1/billing/account`` as the organisation's owner."""
        response = await self.client.get("/v1/billing/account", headers=self.auth(org_id))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def balance(self, org_id: uuid.UUID) -> int:
        """The organisation's balance."""
        return int((await self.account(org_id))["balance"])

    async def emitted(
        self, event_type: str, org_id: uuid.UUID | None = None
    ) -> list[dict[str, Any]]:
        """The payloads billing wrote to its outbox of one type (of one organisation), in order."""
        query = sa.select(outbox.c.envelope).where(outbox.c.type == event_type)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query.order_by(outbox.c.created_at))).scalars().all()
        return [
            row["data"]
            for row in rows
            if org_id is None or row["data"].get("org_id") == str(org_id)
        ]

    async def checkout(self, org_id: uuid.UUID, **body: Any) -> dict[str, Any]:
        """``POST /v1/billing/checkout``; the created session."""
        response = await self.client.post(
            "/v1/billing/checkout", json=body, headers=self.auth(org_id)
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def pay(self, session_id: str, *, declined: bool = False) -> httpx.Response:
        """The shopper pays on the sandbox's hosted page."""
        return await self.control.post(
            f"/_sandbox/checkout/sessions/{session_id}/pay", json={"declined": declined}
        )

    async def wait_for_balance(self, org_id: uuid.UUID, expected: int) -> None:
        """Wait until the webhooks have brought the balance to ``expected``."""

        async def reached() -> bool:
            return await self.balance(org_id) == expected

        await eventually(reached)

    async def webhooks_settled(self) -> None:
        """Wait until every event the sandbox emitted was acknowledged by billing."""

        async def settled() -> bool:
            events = (await self.control.get("/_sandbox/events")).json()["data"]
            deliveries = (await self.control.get("/_sandbox/deliveries")).json()["data"]
            done = {d["event_id"] for d in deliveries if d["succeeded"]}
            return all(event["id"] in done for event in events)

        await eventually(settled)

    async def check_ledger(self, org_id: uuid.UUID) -> int:
        """Assert the ledger balances for ``org_id``; returns the balance."""
        return await check_ledger(self.engine, org_id)


def call_ended(
    org_id: uuid.UUID,
    duration_s: int,
    *,
    call_id: uuid.UUID | None = None,
    direction: CallDirection = CallDirection.OUTBOUND,
    started_at: datetime | None = None,
) -> CallEnded:
    """A ``telephony.call.ended.v1`` payload."""
    started = started_at or datetime.now(UTC) - timedelta(seconds=duration_s)
    return CallEnded(
        call_id=call_id or uuid.uuid4(),
        org_id=org_id,
        agent_id=uuid.UUID(int=1),
        phone_number_id=uuid.UUID(int=2),
        direction=direction,
        status=CallStatus.COMPLETED if duration_s else CallStatus.NO_ANSWER,
        duration_s=duration_s,
        started_at=started if duration_s else None,
        ended_at=started + timedelta(seconds=duration_s),
    )


async def check_ledger(engine: AsyncEngine, org_id: uuid.UUID) -> int:
    """The ledger's invariants for one organisation: credits minus debits of its credit account
    equal the running balance and the last entry's balance_after; sequences have no gaps."""
    async with engine.connect() as connection:
        account = (
            await connection.execute(
                sa.select(accounts.c.balance, accounts.c.sequence).where(
                    accounts.c.org_id == org_id
                )
            )
        ).one()
        entries = (
            await connection.execute(
                sa.select(ledger_entries)
                .where(ledger_entries.c.org_id == org_id)
                .order_by(ledger_entries.c.sequence)
            )
        ).all()
    credits = sum(e.amount for e in entries if e.credit_account == "customer_credit")
    debits = sum(e.amount for e in entries if e.debit_account == "customer_credit")
    assert all(e.amount > 0 and e.debit_account != e.credit_account for e in entries)
    assert credits - debits == account.balance
    if entries:
        assert entries[-1].balance_after == account.balance
        running = 0
        for entry in entries:
            running += entry.amount if entry.credit_account == "customer_credit" else -entry.amount
            assert entry.balance_after == running
    return int(account.balance)


@asynccontextmanager
async def serve_billing(
    database_url: str, *, stripe_url: str, jwks_url: str, issuer: TokenIssuer, port: int
) -> AsyncIterator[Billing]:
    """Billing on ``port`` with its own database and in-process bus."""
    billing_url = f"http://127.0.0.1:{port}"
    bus = InProcessBus()
    engine = db.create_engine(database_url, application_name="billing-tests")
    settings = load_settings(
        Settings,
        database_url=database_url,
        amqp_url="memory://",
        auth_jwks_url=jwks_url,
        jwt_issuer=issuer.issuer,
        jwt_audience=issuer.audience,
        stripe_api_base=stripe_url,
        stripe_secret_key=SANDBOX_STRIPE_SECRET_KEY,
        stripe_webhook_secret=SANDBOX_STRIPE_WEBHOOK_SECRET,
        maintenance_interval=0.2,
        environment="test",
        internal_token=INTERNAL_TOKEN,
    )
    await bus.start()
    app = create_app(service, settings=settings, bus=bus, owns_bus=False)
    try:
        async with (
            running(app, port=port),
            httpx.AsyncClient(base_url=billing_url, timeout=30) as client,
            httpx.AsyncClient(base_url=stripe_url, timeout=30) as control,
        ):
            yield Billing(
                client=client,
                stripe_url=stripe_url,
                control=control,
                bus=bus,
                engine=engine,
                sessions=db.create_session_factory(engine),
                issuer=issuer,
                settings=settings,
                url=billing_url,
                jwks_url=jwks_url,
            )
    finally:
        await bus.close()
        await engine.dispose()


@pytest.fixture
async def billing(billing_database: str) -> AsyncIterator[Billing]:
    """Billing on a real socket, with the Stripe sandbox posting its webhooks to it."""
    port = free_port()
    sandbox = create_stripe_app(
        SandboxConfig(stripe_webhook_url=f"http://127.0.0.1:{port}/webhooks/stripe"),
        PhoneBook(),
        webhook_retry_delays=FAST_RETRIES,
    )
    issuer = TokenIssuer()
    with JwksServer(issuer) as jwks:
        async with (
            running(sandbox) as stripe_url,
            serve_billing(
                billing_database, stripe_url=stripe_url, jwks_url=jwks.url, issuer=issuer, port=port
            ) as running_billing,
        ):
            yield running_billing
