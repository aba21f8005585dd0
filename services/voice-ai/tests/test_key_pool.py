"""The ElevenLabs key pool: encrypted keys, a per-key limit across replicas, leases that lapse."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from voice_harness import MIGRATIONS, Harness

from novitrac_kit import db, migrations
from novitrac_kit.config import ServiceSettings
from novitrac_kit.sealing import Unsealable
from novitrac_kit.testing.internal import INTERNAL_TOKEN
from novitrac_kit.testing.servers import free_port
from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.phone import PhoneScript
from novitrac_voice_ai.config import Settings
from novitrac_voice_ai.keys import KeyPool, PoolFull, key_sealer

SERVE = Path(__file__).parent / "serve_voice_ai.py"


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines on one migrated database: two replicas' worth of connections."""
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, database_url)
    first = db.create_engine(database_url, application_name="voice-a")
    second = db.create_engine(database_url, application_name="voice-b")
    yield first, second
    await first.dispose()
    await second.dispose()


async def test_keys_are_stored_encrypted_and_only_our_secret_opens_them(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    pool = KeyPool(engines[0], key_sealer("the-real-secret"), ttl=30)
    await pool.seed(["sk_secret_key_one"], max_concurrency=1)

    async with engines[0].connect() as connection:
        (sealed,) = (
            await connection.execute(sa.text("SELECT ciphertext FROM voice.elevenlabs_keys"))
        ).scalars()
    assert b"sk_secret_key_one" not in sealed
    assert await pool.first_key() == "sk_secret_key_one"
    with pytest.raises(Unsealable):
        key_sealer("another-secret").open(sealed)


async def test_two_replicas_share_each_keys_limit_least_loaded_first(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    cipher = key_sealer("secret")
    replica_a, replica_b = (KeyPool(engine, cipher, ttl=30) for engine in engines)
    await replica_a.seed(["sk_one", "sk_two"], max_concurrency=2)
    await replica_b.seed(["sk_one", "sk_two"], max_concurrency=2)

    first = await replica_a.acquire(uuid.uuid4())
    second = await replica_b.acquire(uuid.uuid4())
    assert {first.api_key, second.api_key} == {"sk_one", "sk_two"}, "least-loaded first"

    async def attempt(pool: KeyPool) -> str | None:
        try:
            return (await pool.acquire(uuid.uuid4())).api_key
        except PoolFull:
            return None

    results = await asyncio.gather(*(attempt(p) for p in [replica_a, replica_b] * 10))
    taken = [key for key in results if key is not None]
    assert Counter(taken) == {"sk_one": 1, "sk_two": 1}, "exactly the free slots, no more"

    await replica_b.release(first)
    assert (await replica_a.acquire(uuid.uuid4())).api_key == first.api_key


async def test_a_lease_without_heartbeat_lapses_and_frees_its_slot(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    cipher = key_sealer("secret")
    dying = KeyPool(engines[0], cipher, ttl=0.3)
    living = KeyPool(engines[1], cipher, ttl=30)
    await dying.seed(["sk_only"], max_concurrency=1)
    await dying.acquire(uuid.uuid4())
    with pytest.raises(PoolFull):
        await living.acquire(uuid.uuid4())

    async def free_again() -> bool:
        try:
            await living.acquire(uuid.uuid4())
        except PoolFull:
            return False
        return True

    await eventually(free_again)


async def test_the_limit_holds_across_two_voice_ai_apps(harness: Harness) -> None:
    await harness.create_agent()
    first = await harness.start_voice(elevenlabs_key_concurrency=1)
    second = await harness.start_voice(elevenlabs_key_concurrency=1)

    holding = await harness.call(PhoneScript(hang_up_after=2.5), stream_url=first.stream_url)

    async def leased() -> bool:
        return await harness.active_leases() == 1

    await eventually(leased)
    refused = await harness.call(PhoneScript(hang_up_after=30), stream_url=second.stream_url)
    refused_record = await harness.finished_call(refused)
    refused_conversation = await harness.conversation(refused)
    held_record = await harness.finished_call(holding)

    assert refused_record["hangup_reason"] is None, "refused at once, not when the phone gave up"
    (stream,) = refused_record["streams"]
    assert stream["received_bytes"] == 0
    assert refused_conversation["status"] == "failed"
    assert refused_conversation["ended_reason"] == "voice_capacity_exhausted"
    (held,) = held_record["streams"]
    assert held["received_bytes"] > 0, "the first call had its agent"
    assert len(await harness.sandbox.elevenlabs.conversations()) == 1

    async def released() -> bool:
        return await harness.active_leases() == 0

    await eventually(released)


async def test_leases_of_a_killed_bridge_process_lapse(harness: Harness) -> None:
    await harness.create_agent()
    port = free_port()
    settings = harness.settings(port, lease_ttl=1.0, elevenlabs_key_concurrency=1)
    env = {
        **os.environ,
        "NOVITRAC_DATABASE_URL": harness.database_url,
        "NOVITRAC_AMQP_URL": "memory://",
        "NOVITRAC_AUTH_JWKS_URL": harness.jwks_url,
        "NOVITRAC_ENVIRONMENT": "test",
        "NOVITRAC_INTERNAL_TOKEN": INTERNAL_TOKEN,
        "NOVITRAC_HTTP_PORT": str(port),
        "NOVITRAC_LOG_LEVEL": "WARNING",
    }
    for name in voice_fields():
        value = getattr(settings, name)
        secret = getattr(value, "get_secret_value", None)
        env[settings.env_name(name)] = str(secret() if secret else value)
    process = await asyncio.create_subprocess_exec(sys.executable, str(SERVE), env=env)
    try:

        async def serving() -> bool:
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(serving)
        sid = await harness.call(
            PhoneScript(hang_up_after=30), stream_url=f"ws://127.0.0.1:{port}/media/stream"
        )
        holder = f":{process.pid}:"

        async def held_by_the_process() -> bool:
            rows = await harness.rows(
                sa.text("SELECT holder FROM voice.key_slots WHERE holder IS NOT NULL")
            )
            return any(holder in row.holder for row in rows)

        await eventually(held_by_the_process)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        await harness.finished_call(sid)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    async def lapsed() -> bool:
        return await harness.active_leases() == 0

    await eventually(lapsed)
    await harness.start_voice(lease_ttl=1.0)  # a replica that knows how long leases outlive

    async def abandoned_conversation_ended() -> bool:
        rows = await harness.rows(
            sa.text(
                "SELECT status, ended_reason FROM voice.conversations WHERE call_sid = :sid"
            ).bindparams(sid=sid)
        )
        return [(row.status, row.ended_reason) for row in rows] == [("failed", "bridge_lost")]

    await eventually(abandoned_conversation_ended)
    ended = await harness.events("voice.conversation.ended.v1")
    assert len(ended) == 1
    after = await harness.call(PhoneScript(hang_up_after=1.0))
    record = await harness.finished_call(after)
    (stream,) = record["streams"]
    assert stream["received_bytes"] > 0, "the key is usable again: the agent greeted"


def voice_fields() -> list[str]:
    """The settings voice-ai adds to the shared ones (its ``VOICE_*`` variables)."""
    return [name for name in Settings.model_fields if name not in ServiceSettings.model_fields]
