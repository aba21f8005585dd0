"""Agents through the API: kept per organisation, synced to ElevenLabs, announced in full."""

from __future__ import annotations

import uuid
from typing import Any

from elevenlabs.client import AsyncElevenLabs
from voice_harness import PROMPT, Harness, start_harness

from novitrac_kit.testing.servers import free_port, running
from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.config import SANDBOX_ELEVENLABS_API_KEY, SandboxConfig
from novitrac_sandbox.elevenlabs.app import create_app as create_elevenlabs
from novitrac_sandbox.phone import PhoneScript


async def test_an_agent_is_created_synced_changed_and_deleted(harness: Harness) -> None:
    url = f"{harness.voice.url}/v1/agents"
    created = await harness.http.post(
        url,
        headers=harness.headers(),
        json={
            "name": "Bookings",
            "prompt": PROMPT + "\nGreet {{customer_name}}.",
            "first_message": "Hi {{customer_name}}",
            "language": "de",
            "max_duration_s": 300,
            "machine_detection": "leave_message",
            "voicemail_message": "Please call us back.",
            "transfer_number": "+14155550123",
            "allowed_overrides": ["first_message", "voice"],
            "variables": {"customer_name": "there"},
        },
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["sync_status"] == "pending"
    assert agent["revision"] == 1

    synced = await harness.wait_agent(agent["id"], "synced")
    client = AsyncElevenLabs(api_key=SANDBOX_ELEVENLABS_API_KEY, base_url=harness.elevenlabs_url)
    (remote,) = (await client.conversational_ai.agents.list()).agents
    config = (await client.conversational_ai.agents.get(remote.agent_id)).model_dump()
    conversation = config["conversation_config"]
    assert conversation["tts"]["agent_output_audio_format"] == "ulaw_8000"
    assert conversation["asr"]["user_input_audio_format"] == "ulaw_8000"
    assert conversation["agent"]["language"] == "de"
    assert conversation["conversation"]["max_duration_seconds"] == 300
    overrides = config["platform_settings"]["overrides"]["conversation_config_override"]
    assert overrides["agent"]["first_message"] is True
    assert overrides["tts"]["voice_id"] is True
    assert overrides["agent"]["prompt"]["prompt"] is False

    changed = await harness.http.patch(
        f"{url}/{agent['id']}",
        headers=harness.headers(),
        json={"name": "Bookings desk", "transfer_number": None},
    )
    assert changed.status_code == 200
    assert changed.json()["sync_status"] == "pending"
    assert changed.json()["transfer_number"] is None
    resynced = await harness.wait_agent(agent["id"], "synced")
    assert resynced["revision"] > synced["revision"] > agent["revision"]
    assert (await client.conversational_ai.agents.get(remote.agent_id)).name == "Bookings desk"

    listed = await harness.http.get(url, headers=harness.headers())
    assert [item["id"] for item in listed.json()["items"]] == [agent["id"]]

    deleted = await harness.http.delete(f"{url}/{agent['id']}", headers=harness.headers())
    assert deleted.status_code == 204
    gone = await harness.http.get(f"{url}/{agent['id']}", headers=harness.headers())
    assert gone.status_code == 404

    updates = await harness.events("voice.agent.updated.v1")
    revisions = [event["revision"] for event in updates]
    assert revisions == sorted(revisions)
    assert len(set(revisions)) == len(revisions), "every event a higher revision"
    assert [event["sync_status"] for event in updates] == ["pending", "synced"] * 2
    assert updates[0]["machine_detection"] == "leave_message"
    assert updates[0]["transfer_number"] == "+14155550123"
    assert updates[-1]["transfer_number"] is None
    assert await harness.events("voice.agent.deleted.v1") == [
        {"agent_id": agent["id"], "org_id": str(harness.telephony.org_id)}
    ]

    async def removed_at_elevenlabs() -> bool:
        listed = await client.conversational_ai.agents.list()
        return not listed.agents

    await eventually(removed_at_elevenlabs)


async def test_another_organisations_agent_is_not_found(harness: Harness) -> None:
    agent = await harness.create_agent()
    other = harness.headers(uuid.uuid4())
    url = f"{harness.voice.url}/v1/agents/{agent['id']}"

    assert (await harness.http.get(url, headers=other)).status_code == 404
    patched = await harness.http.patch(url, headers=other, json={"name": "mine now"})
    assert patched.status_code == 404
    assert (await harness.http.delete(url, headers=other)).status_code == 404
    listed = await harness.http.get(f"{harness.voice.url}/v1/agents", headers=other)
    assert listed.json()["items"] == []
    conversations = await harness.http.get(f"{harness.voice.url}/v1/conversations", headers=other)
    assert conversations.json()["items"] == []
    assert (await harness.http.get(url, headers=harness.headers())).json()["name"] == "Front desk"


async def test_writes_need_a_full_credential_and_valid_input(harness: Harness) -> None:
    url = f"{harness.voice.url}/v1/agents"
    body: dict[str, Any] = {"name": "Desk", "prompt": "Be kind."}

    anonymous = await harness.http.post(url, json=body)
    read_only = await harness.http.post(url, json=body, headers=harness.headers(scope="read"))
    invalid = await harness.http.post(
        url, json={**body, "transfer_number": "0155 1234"}, headers=harness.headers()
    )
    reserved = await harness.http.post(
        url, json={**body, "variables": {"system__call_sid": "x"}}, headers=harness.headers()
    )

    assert anonymous.status_code == 401
    assert read_only.status_code == 403
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "transfer_number"]
    assert reserved.status_code == 422
    assert (await harness.http.get(url, headers=harness.headers())).json()["items"] == []
    assert await harness.events("voice.agent.updated.v1") == []


async def test_a_failed_sync_is_shown_refuses_calls_and_is_retried(database_url: str) -> None:
    port = free_port()
    async with start_harness(
        database_url, elevenlabs_api_base=f"http://127.0.0.1:{port}", sync_max_backoff=0.5
    ) as harness:
        await _sync_fails_then_recovers(harness, port)


async def _sync_fails_then_recovers(harness: Harness, port: int) -> None:
    agent = await harness.create_agent_pending()

    failed = await harness.wait_agent(agent["id"], "failed")
    assert "unreachable" in failed["sync_error"]
    assert failed["next_sync_at"] is not None

    harness.telephony.agent_id = uuid.UUID(agent["id"])
    sid = await harness.call(PhoneScript(hang_up_after=30))
    record = await harness.finished_call(sid)
    assert record["hangup_reason"] is None, "the bridge refused the call at once"
    assert record["streams"][0]["received_bytes"] == 0

    config = SandboxConfig()
    await harness.stack.enter_async_context(
        running(create_elevenlabs(config, harness.phones), port=port)
    )
    recovered = await harness.wait_agent(agent["id"], "synced")
    assert recovered["sync_error"] is None
    statuses = [e["sync_status"] for e in await harness.events("voice.agent.updated.v1")]
    assert statuses == ["pending", "failed", "synced"]
