"""The conversation WebSocket through a raw ``websockets`` client, checked against the contract."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
import websockets
from elevenlabs.client import AsyncElevenLabs
from websockets.asyncio.client import ClientConnection

from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.elevenlabs import audio
from novitrac_sandbox.phone import PhoneBook, PhoneScript, Utterance

ULAW = {
    "tts": {"agent_output_audio_format": "ulaw_8000"},
    "asr": {"user_input_audio_format": "ulaw_8000"},
}
RULES = "\n".join(
    [
        "You are the front desk of a small shop.",
        'when "price" say "It costs ten euros"',
        'when "book" call book_slot {"day": "monday"} say "Booked for monday"',
        'when "bye" say "Goodbye" end_call',
    ]
)


class Line:
    """One raw client connection: sends frames, reads events, checks each against the contract."""

    def __init__(self, ws: ClientConnection, contract: Any) -> None:
        self.ws = ws
        self.contract = contract
        self.received: list[dict[str, Any]] = []
        self.answer_pings = True

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def start(self, **client_data: Any) -> dict[str, Any]:
        """Send the initiation message and return the metadata event."""
        await self.send({"type": "conversation_initiation_client_data", **client_data})
        first = await self.next()
        assert first["type"] == "conversation_initiation_metadata", "metadata comes first"
        event: dict[str, Any] = first["conversation_initiation_metadata_event"]
        return event

    async def play(self, ulaw: bytes, *, realtime: bool = False) -> None:
        """Send caller audio as 20 ms ``user_audio_chunk`` frames (without ``type``)."""
        for offset in range(0, len(ulaw), 160):
            chunk = base64.b64encode(ulaw[offset : offset + 160]).decode()
            await self.send({"user_audio_chunk": chunk})
            await asyncio.sleep(0.02 if realtime else 0)

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(10):
            message: dict[str, Any] = json.loads(await self.ws.recv())
        self.contract.check(message)
        self.received.append(message)
        if message["type"] == "ping" and self.answer_pings:
            await self.send({"type": "pong", "event_id": message["ping_event"]["event_id"]})
        return message

    async def until(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                message = await self.next()
                if message["type"] == kind:
                    return message

    async def closed(self) -> tuple[int | None, str | None]:
        """Read until the server closes; return its close code and reason."""
        try:
            async with asyncio.timeout(10):
                while True:
                    await self.next()
        except websockets.ConnectionClosed:
            pass
        return self.ws.close_code, self.ws.close_reason

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.received if message["type"] == kind]


def speech(seconds: float) -> bytes:
    return audio.synthesize("a" * round(seconds / audio.SECONDS_PER_CHARACTER), "ulaw_8000")


def quiet(seconds: float) -> bytes:
    return audio.silence(seconds, "ulaw_8000")


@pytest.fixture
def socket_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/v1/convai/conversation"


@pytest.fixture
async def lines(socket_url: str, contract: Any) -> Any:
    connections: list[ClientConnection] = []

    async def open_line(agent_id: str = "", url: str | None = None) -> Line:
        ws = await websockets.connect(url or f"{socket_url}?agent_id={agent_id}")
        connections.append(ws)
        return Line(ws, contract)

    yield open_line
    for ws in connections:
        await ws.close()


async def make_agent(client: AsyncElevenLabs, **agent: Any) -> str:
    config = {
        **ULAW,
        "agent": {"prompt": {"prompt": RULES}, **agent.pop("agent", {})},
        "conversation": agent.pop("conversation_config_extra", {}),
    }
    created = await client.conversational_ai.agents.create(conversation_config=config, **agent)
    return str(created.agent_id)


async def control(base_url: str, path: str) -> Any:
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get(path)
        response.raise_for_status()
        return response.json()


async def test_the_agent_greets_in_its_own_format_paced_in_real_time(
    client: AsyncElevenLabs, lines: Any
) -> None:
    greeting = "Hello, this is the front desk."
    agent_id = await make_agent(client, agent={"first_message": greeting})
    line = await lines(agent_id)

    metadata = await line.start()
    assert metadata["agent_output_audio_format"] == "ulaw_8000"
    assert metadata["user_input_audio_format"] == "ulaw_8000"
    assert metadata["conversation_id"].startswith("conv_")

    response = await line.until("agent_response")
    assert response["agent_response_event"]["agent_response"] == greeting
    turn = response["agent_response_event"]["event_id"]
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    spoken = b""
    expected_bytes = len(audio.synthesize(greeting, "ulaw_8000"))
    while len(spoken) < expected_bytes:
        event = (await line.until("audio"))["audio_event"]
        assert event["event_id"] == turn
        spoken += base64.b64decode(event["audio_base_64"])
        arrivals.append(loop.time())
    assert len(spoken) == expected_bytes
    assert audio.energy(audio.decode(spoken, "ulaw_8000")) > 1000
    expected = (len(arrivals) - 1) * 0.1
    assert arrivals[-1] - arrivals[0] >= expected * 0.7, "audio is paced, not dumped at once"


async def test_caller_speech_is_transcribed_from_the_phone_script_and_answered(
    client: AsyncElevenLabs, lines: Any, phones: PhoneBook
) -> None:
    phones.register(
        "CA0001", PhoneScript(utterances=(Utterance("what is the price?", at=1.0, duration=0.8),))
    )
    line = await lines(await make_agent(client))
    await line.start(dynamic_variables={"system__call_sid": "CA0001"})

    await line.play(quiet(1.0) + speech(0.8) + quiet(1.0))

    transcript = await line.until("user_transcript")
    assert transcript["user_transcription_event"]["user_transcript"] == "what is the price?"
    answer = await line.until("agent_response")
    assert answer["agent_response_event"]["agent_response"] == "It costs ten euros"
    assert (
        answer["agent_response_event"]["event_id"]
        > (transcript["user_transcription_event"]["event_id"])
    )
    await line.until("audio")


async def test_without_a_call_sid_the_agent_echoes_unknown_speech(
    client: AsyncElevenLabs, lines: Any
) -> None:
    line = await lines(await make_agent(client))
    await line.start()
    await line.play(quiet(0.3) + speech(0.5))
    typed = base64.b64encode(quiet(0.8)).decode()
    await line.send({"type": "user_audio_chunk", "user_audio_chunk": typed})
    transcript = await line.until("user_transcript")
    assert transcript["user_transcription_event"]["user_transcript"] == "(speech)"
    answer = await line.until("agent_response")
    assert answer["agent_response_event"]["agent_response"] == "You said: (speech)"


async def test_caller_speech_over_the_agent_interrupts_the_rest_of_its_reply(
    client: AsyncElevenLabs, lines: Any, base_url: str
) -> None:
    greeting = "Welcome to the shop, let me tell you about all our offers today."
    line = await lines(await make_agent(client, agent={"first_message": greeting}))
    metadata = await line.start()
    turn = (await line.until("audio"))["audio_event"]["event_id"]

    await line.play(speech(0.3), realtime=True)
    interruption = await line.until("interruption")
    assert interruption["interruption_event"]["event_id"] == turn
    await line.play(quiet(0.8))
    await line.until("agent_response")

    heard = b"".join(
        base64.b64decode(m["audio_event"]["audio_base_64"])
        for m in line.of("audio")
        if m["audio_event"]["event_id"] == turn
    )
    assert len(heard) < 8000 * audio.speech_seconds(greeting) / 2, "the rest was not sent"
    after = line.received.index(interruption)
    assert all(
        m["audio_event"]["event_id"] != turn for m in line.received[after:] if m["type"] == "audio"
    )
    view = await control(base_url, f"/_sandbox/conversations/{metadata['conversation_id']}")
    assert view["transcript"][0]["interrupted"] is True


async def test_pings_count_up_and_a_client_that_stops_answering_is_closed(
    client: AsyncElevenLabs, lines: Any
) -> None:
    line = await lines(await make_agent(client))
    await line.start()
    pings = [await line.until("ping") for _ in range(5)]
    ids = [ping["ping_event"]["event_id"] for ping in pings]
    assert ids == sorted(set(ids))
    assert pings[-1]["ping_event"]["ping_ms"] is not None, "round trip measured from pongs"

    line.answer_pings = False
    code, reason = await line.closed()
    assert code == 1002
    assert "pong" in (reason or "").lower()
    error = line.of("error")[-1]["error_event"]
    assert error["code"] == 1002


async def test_an_override_the_agent_does_not_allow_closes_with_override_error(
    client: AsyncElevenLabs, lines: Any
) -> None:
    strict = await make_agent(client, agent={"first_message": "Hi"})
    line = await lines(strict)
    await line.send(
        {
            "type": "conversation_initiation_client_data",
            "conversation_config_override": {"agent": {"first_message": "Hacked"}},
        }
    )
    code, reason = await line.closed()
    assert code == 1008
    assert reason == "Override for field 'agent.first_message' is not allowed by config."
    assert line.of("error")[0]["error_event"]["error_type"] == "override_error"

    lenient = await make_agent(
        client,
        agent={"first_message": "Hi"},
        platform_settings={
            "overrides": {"conversation_config_override": {"agent": {"first_message": True}}}
        },
    )
    line = await lines(lenient)
    await line.start(
        conversation_config_override={"agent": {"first_message": "Hi {{name}}"}},
        dynamic_variables={"name": "Ada"},
    )
    greeting = await line.until("agent_response")
    assert greeting["agent_response_event"]["agent_response"] == "Hi Ada"


async def test_a_missing_dynamic_variable_is_refused(client: AsyncElevenLabs, lines: Any) -> None:
    line = await lines(await make_agent(client, agent={"first_message": "Hello {{customer}}"}))
    await line.send({"type": "conversation_initiation_client_data", "dynamic_variables": {}})
    code, _ = await line.closed()
    assert code == 1008
    assert line.of("error")[0]["error_event"]["error_type"] == "missing_dynamic_variable"


@pytest.mark.parametrize(
    "frame",
    ['{"type": "dance"}', "not json", '["a", "list"]', '{"user_audio_chunk": "%%%"}'],
)
async def test_a_bad_message_is_an_invalid_message_error_and_the_sandbox_keeps_going(
    client: AsyncElevenLabs, lines: Any, frame: str
) -> None:
    agent_id = await make_agent(client)
    line = await lines(agent_id)
    await line.start()
    await line.ws.send(frame)
    code, _ = await line.closed()
    assert code == 1008
    assert line.of("error")[0]["error_event"]["error_type"] == "invalid_message"

    again = await lines(agent_id)
    assert (await again.start())["conversation_id"]


async def test_text_messages_and_context_are_accepted(
    client: AsyncElevenLabs, lines: Any, base_url: str
) -> None:
    line = await lines(await make_agent(client))
    metadata = await line.start()
    await line.send({"type": "contextual_update", "text": "The caller is a regular."})
    await line.send({"type": "user_activity"})
    await line.send({"type": "user_message", "text": "And the price?"})
    answer = await line.until("agent_response")
    assert answer["agent_response_event"]["agent_response"] == "It costs ten euros"
    view = await control(base_url, f"/_sandbox/conversations/{metadata['conversation_id']}")
    assert view["contextual_updates"] == ["The caller is a regular."]
    assert view["live"] is True


async def test_the_agent_calls_a_client_tool_and_waits_for_its_result(
    client: AsyncElevenLabs, lines: Any, base_url: str
) -> None:
    line = await lines(await make_agent(client))
    metadata = await line.start()
    await line.send({"type": "user_message", "text": "I want to book"})
    call = (await line.until("client_tool_call"))["client_tool_call"]
    assert call["tool_name"] == "book_slot"
    assert call["parameters"] == {"day": "monday"}
    assert not line.of("agent_response"), "the agent waits for the tool"

    await line.send(
        {
            "type": "client_tool_result",
            "tool_call_id": call["tool_call_id"],
            "result": "slot 42",
            "is_error": False,
        }
    )
    answer = await line.until("agent_response")
    assert answer["agent_response_event"]["agent_response"] == "Booked for monday"
    view = await control(base_url, f"/_sandbox/conversations/{metadata['conversation_id']}")
    agent_turn = view["transcript"][-1]
    assert agent_turn["tool_calls"][0]["tool_name"] == "book_slot"
    assert agent_turn["tool_results"][0]["result_value"] == "slot 42"


async def test_the_agent_ends_the_call_after_its_last_words(
    client: AsyncElevenLabs, lines: Any
) -> None:
    line = await lines(await make_agent(client))
    await line.start()
    await line.send({"type": "user_message", "text": "ok bye"})
    code, reason = await line.closed()
    assert (code, reason) == (1000, "end_call")
    goodbye = line.of("agent_response")[-1]["agent_response_event"]
    assert goodbye["agent_response"] == "Goodbye"
    spoken = sum(
        len(base64.b64decode(m["audio_event"]["audio_base_64"]))
        for m in line.of("audio")
        if m["audio_event"]["event_id"] == goodbye["event_id"]
    )
    assert spoken == len(audio.synthesize("Goodbye", "ulaw_8000")), "all of it before closing"


async def test_conversations_beyond_the_concurrency_limit_are_refused(
    client: AsyncElevenLabs, lines: Any, base_url: str
) -> None:
    agent_id = await make_agent(client)
    first, second = await lines(agent_id), await lines(agent_id)
    await first.start()
    await second.start()
    limits = await control(base_url, "/_sandbox/limits")
    assert limits["concurrency_per_api_key"] == 2
    assert list(limits["active"].values()) == [2]

    third = await lines(agent_id)
    code, _ = await third.closed()
    assert code == 1002
    assert third.of("error")[0]["error_event"]["error_type"] == "http_exception"

    await first.ws.close()

    async def freed() -> bool:
        return list((await control(base_url, "/_sandbox/limits"))["active"].values()) == [1]

    await eventually(freed)
    fourth = await lines(agent_id)
    assert (await fourth.start())["conversation_id"]


async def test_signed_urls_admit_private_agents_and_bad_signatures_are_refused(
    client: AsyncElevenLabs, lines: Any, socket_url: str
) -> None:
    private = await make_agent(client, platform_settings={"auth": {"enable_auth": True}})
    refused = await lines(private)
    assert (await refused.closed())[0] == 1008

    forged = await lines(url=f"{socket_url}?agent_id={private}&conversation_signature=forged")
    assert (await forged.closed())[0] == 1008

    signed = await client.conversational_ai.conversations.get_signed_url(agent_id=private)
    line = await lines(url=signed.signed_url)
    assert (await line.start())["conversation_id"]


async def test_an_agent_concurrency_cap_refuses_calls_beyond_it(
    client: AsyncElevenLabs, lines: Any
) -> None:
    capped = await make_agent(
        client, platform_settings={"call_limits": {"agent_concurrency_limit": 1}}
    )
    first = await lines(capped)
    await first.start()
    second = await lines(capped)
    code, reason = await second.closed()
    assert code == 1002
    assert "this agent" in (reason or "")


async def test_an_agent_left_on_its_default_format_reports_and_speaks_pcm(
    client: AsyncElevenLabs, lines: Any
) -> None:
    created = await client.conversational_ai.agents.create(
        conversation_config={"agent": {"first_message": "Hi"}}
    )
    line = await lines(created.agent_id)
    metadata = await line.start()
    assert metadata["agent_output_audio_format"] == "pcm_16000"
    assert metadata["user_input_audio_format"] == "pcm_16000"
    chunk = base64.b64decode((await line.until("audio"))["audio_event"]["audio_base_64"])
    assert len(chunk) == 2 * 16000 // 10, "100 ms of 16-bit samples at 16 kHz"


async def test_a_conversation_longer_than_the_agent_allows_ends_normally(
    client: AsyncElevenLabs, lines: Any, base_url: str
) -> None:
    line = await lines(
        await make_agent(client, conversation_config_extra={"max_duration_seconds": 1})
    )
    metadata = await line.start()
    assert await line.closed() == (1000, "max_duration_exceeded")
    view = await control(base_url, f"/_sandbox/conversations/{metadata['conversation_id']}")
    assert view["metadata"]["termination_reason"] == "max_duration_exceeded"
    assert view["status"] == "done"
