"""The REST subset through the official SDK: agents, signed URLs, conversations, text-to-speech."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from elevenlabs.client import AsyncElevenLabs, ElevenLabs
from elevenlabs.core.api_error import ApiError

from novitrac_sandbox.config import SANDBOX_ELEVENLABS_API_KEY
from novitrac_sandbox.elevenlabs import audio

TELEPHONY_CONFIG = {
    "agent": {"first_message": "Hello", "prompt": {"prompt": 'when "price" say "Ten euros"'}},
    "tts": {"agent_output_audio_format": "ulaw_8000"},
    "asr": {"user_input_audio_format": "ulaw_8000"},
}


async def test_an_agent_is_created_read_updated_and_deleted(client: AsyncElevenLabs) -> None:
    agents = client.conversational_ai.agents
    created = await agents.create(
        conversation_config=TELEPHONY_CONFIG, name="Front desk", tags=["support"]
    )
    assert created.agent_id.startswith("agent_")

    agent = await agents.get(created.agent_id)
    assert agent.name == "Front desk"
    assert agent.conversation_config.agent.first_message == "Hello"
    assert agent.conversation_config.tts.agent_output_audio_format == "ulaw_8000"
    assert agent.metadata.created_at_unix_secs > 0

    updated = await agents.update(
        created.agent_id, conversation_config={"agent": {"first_message": "Good morning"}}
    )
    assert updated.conversation_config.agent.first_message == "Good morning"
    assert updated.conversation_config.tts.agent_output_audio_format == "ulaw_8000"

    await agents.delete(created.agent_id)
    with pytest.raises(ApiError) as missing:
        await agents.get(created.agent_id)
    assert missing.value.status_code == 404


async def test_agents_are_listed_page_by_page_with_a_cursor(client: AsyncElevenLabs) -> None:
    agents = client.conversational_ai.agents
    ids = [
        (await agents.create(conversation_config={}, name=f"agent {n}")).agent_id for n in range(5)
    ]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await agents.list(page_size=2, cursor=cursor)
        pages += 1
        seen += [agent.agent_id for agent in page.agents]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert seen == list(reversed(ids)), "newest first, each agent exactly once"

    found = await agents.list(search="agent 3")
    assert [agent.agent_id for agent in found.agents] == [ids[3]]


async def test_a_wrong_or_missing_api_key_is_refused_with_elevenlabs_error(base_url: str) -> None:
    wrong = AsyncElevenLabs(api_key="sk_not_a_key", base_url=base_url)
    with pytest.raises(ApiError) as refused:
        await wrong.conversational_ai.agents.list()
    assert refused.value.status_code == 401
    assert refused.value.body == {
        "detail": {"status": "invalid_api_key", "message": "Invalid API key"}
    }

    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get("/v1/convai/agents")
    assert response.status_code == 401
    assert response.json()["detail"]["status"] == "needs_authorization"


async def test_a_body_without_the_required_fields_is_a_validation_error(base_url: str) -> None:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"xi-api-key": SANDBOX_ELEVENLABS_API_KEY}
    ) as http:
        response = await http.post("/v1/convai/agents/create", json={"name": "no config"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "conversation_config"]


async def test_the_signed_url_points_at_the_sandbox_socket(
    client: AsyncElevenLabs, base_url: str
) -> None:
    agent = await client.conversational_ai.agents.create(conversation_config=TELEPHONY_CONFIG)
    signed = await client.conversational_ai.conversations.get_signed_url(agent_id=agent.agent_id)
    address = base_url.removeprefix("http://")
    assert signed.signed_url.startswith(
        f"ws://{address}/v1/convai/conversation?agent_id={agent.agent_id}&conversation_signature="
    )

    with pytest.raises(ApiError) as unknown:
        await client.conversational_ai.conversations.get_signed_url(agent_id="agent_missing")
    assert unknown.value.status_code == 404


async def test_text_to_speech_returns_mulaw_as_long_as_the_text(client: AsyncElevenLabs) -> None:
    async def speak(text: str) -> bytes:
        chunks = client.text_to_speech.convert(
            "voice", text=text, model_id="eleven_flash_v2_5", output_format="ulaw_8000"
        )
        return b"".join([chunk async for chunk in chunks])

    short, long = await speak("Hello there."), await speak("Hello there. " * 4)
    assert len(long) > 3 * len(short)
    assert len(short) == pytest.approx(8000 * audio.speech_seconds("Hello there."), abs=1)
    assert audio.energy(audio.decode(short, "ulaw_8000")) > 1000, "audible, not silence"

    streamed = client.text_to_speech.stream("voice", text="Hi", output_format="ulaw_8000")
    assert len(b"".join([chunk async for chunk in streamed])) > 0


async def test_the_synchronous_client_works_too(base_url: str) -> None:
    client = ElevenLabs(api_key=SANDBOX_ELEVENLABS_API_KEY, base_url=base_url)
    agents = client.conversational_ai.agents
    created = await asyncio.to_thread(agents.create, conversation_config=TELEPHONY_CONFIG)
    fetched = await asyncio.to_thread(agents.get, created.agent_id)
    assert fetched.agent_id == created.agent_id
    with pytest.raises(ApiError) as missing:
        await asyncio.to_thread(client.conversational_ai.conversations.get, "conv_missing")
    assert missing.value.status_code == 404


async def test_an_audio_format_agents_cannot_speak_is_refused(client: AsyncElevenLabs) -> None:
    with pytest.raises(ApiError) as refused:
        await client.conversational_ai.agents.create(
            conversation_config={"tts": {"agent_output_audio_format": "mp3_44100_128"}}
        )
    assert refused.value.status_code == 400
