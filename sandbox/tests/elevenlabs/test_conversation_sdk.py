"""A whole phone-style conversation held by the SDK's own ``Conversation`` against the sandbox."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from elevenlabs.client import AsyncElevenLabs, ElevenLabs
from elevenlabs.conversational_ai.conversation import (
    AudioInterface,
    Conversation,
    ConversationInitiationData,
    DisconnectionDetails,
)
from elevenlabs.core.api_error import ApiError

from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.config import SANDBOX_ELEVENLABS_API_KEY, SANDBOX_ELEVENLABS_WEBHOOK_SECRET
from novitrac_sandbox.elevenlabs import audio
from novitrac_sandbox.phone import PhoneBook, PhoneScript, Utterance

FRAME = 160
GREETING = "Hello, how can I help?"
PROMPT = 'when "price" say "It costs ten euros"\nwhen "bye" say "Goodbye" end_call'


class ScriptedCaller(AudioInterface):
    """Plays a caller's μ-law audio in real time, 20 ms at a time, and keeps what it hears."""

    def __init__(self, recording: bytes) -> None:
        self.recording = recording
        self.heard = bytearray()
        self.interruptions = 0
        self._stopped = threading.Event()

    def start(self, input_callback: Callable[[bytes], None]) -> None:
        def feed() -> None:
            silence = audio.silence(FRAME / 8000, "ulaw_8000")
            frames = (
                self.recording[offset : offset + FRAME]
                for offset in range(0, len(self.recording), FRAME)
            )
            for frame in frames:
                if self._stopped.wait(0.02):
                    return
                input_callback(frame)
            while not self._stopped.wait(0.02):
                input_callback(silence)

        threading.Thread(target=feed, daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def output(self, audio: bytes) -> None:
        self.heard += audio

    def interrupt(self) -> None:
        self.interruptions += 1


def caller_audio(script: PhoneScript, seconds: float) -> bytes:
    """What the scripted caller sends: silence, with speech where the script says they talk."""
    timeline = bytearray(audio.silence(seconds, "ulaw_8000"))
    for utterance in script.utterances:
        start = int(utterance.at * 8000)
        words = "a" * round(utterance.duration / audio.SECONDS_PER_CHARACTER)
        burst = audio.synthesize(words, "ulaw_8000")
        timeline[start : start + len(burst)] = burst
    return bytes(timeline)


async def test_the_sdk_conversation_holds_a_call_from_greeting_to_hang_up(
    client: AsyncElevenLabs, base_url: str, phones: PhoneBook, sink: Any
) -> None:
    script = PhoneScript(
        utterances=(
            Utterance("what is the price", at=2.0, duration=0.8),
            Utterance("bye now", at=4.8, duration=0.5),
        )
    )
    phones.register("CA" + "7" * 32, script)
    created = await client.conversational_ai.agents.create(
        conversation_config={
            "agent": {"first_message": GREETING, "prompt": {"prompt": PROMPT}},
            "tts": {"agent_output_audio_format": "ulaw_8000"},
            "asr": {"user_input_audio_format": "ulaw_8000"},
        },
        platform_settings={"auth": {"enable_auth": True}},
    )

    caller = ScriptedCaller(caller_audio(script, 7.0))
    responses: list[str] = []
    transcripts: list[str] = []
    endings: list[DisconnectionDetails] = []
    conversation = Conversation(
        ElevenLabs(api_key=SANDBOX_ELEVENLABS_API_KEY, base_url=base_url),
        created.agent_id,
        requires_auth=True,
        audio_interface=caller,
        config=ConversationInitiationData(dynamic_variables={"system__call_sid": "CA" + "7" * 32}),
        callback_agent_response=responses.append,
        callback_user_transcript=transcripts.append,
        callback_disconnect=endings.append,
    )
    await asyncio.to_thread(conversation.start_session)

    async def ended() -> bool:
        return bool(endings)

    await eventually(ended, within=30)
    conversation_id = await asyncio.to_thread(conversation.wait_for_session_end)

    assert responses == [GREETING, "It costs ten euros", "Goodbye"]
    assert transcripts == ["what is the price", "bye now"]
    assert endings[0].reason == "agent"
    assert endings[0].close_code == 1000
    assert caller.interruptions == 0
    spoken = sum(len(audio.synthesize(text, "ulaw_8000")) for text in responses)
    assert len(caller.heard) == spoken, "every word of every reply reached the caller"

    assert conversation_id is not None
    record = await client.conversational_ai.conversations.get(conversation_id)
    assert record.status == "done"
    assert [(turn.role, turn.message) for turn in record.transcript] == [
        ("agent", GREETING),
        ("user", "what is the price"),
        ("agent", "It costs ten euros"),
        ("user", "bye now"),
        ("agent", "Goodbye"),
    ]
    assert record.metadata.call_duration_secs >= 5
    assert record.metadata.termination_reason == "end_call tool was called."
    assert record.analysis is not None
    assert record.analysis.call_successful == "success"
    assert record.conversation_initiation_client_data is not None
    assert record.conversation_initiation_client_data.dynamic_variables == {
        "system__call_sid": "CA" + "7" * 32
    }

    listed = await client.conversational_ai.conversations.list(agent_id=created.agent_id)
    assert [summary.conversation_id for summary in listed.conversations] == [conversation_id]
    assert listed.conversations[0].call_duration_secs == record.metadata.call_duration_secs


async def test_the_post_call_webhook_is_signed_and_carries_the_outcome(
    client: AsyncElevenLabs, base_url: str, sink: Any
) -> None:
    created = await client.conversational_ai.agents.create(
        conversation_config={"agent": {"prompt": {"prompt": 'when "bye" end_call'}}}
    )
    conversation = Conversation(
        ElevenLabs(api_key=SANDBOX_ELEVENLABS_API_KEY, base_url=base_url),
        created.agent_id,
        requires_auth=False,
    )
    await asyncio.to_thread(conversation.start_session)
    await asyncio.sleep(0.3)
    await asyncio.to_thread(conversation.send_user_message, "hello")
    await asyncio.sleep(0.3)
    await asyncio.to_thread(conversation.send_user_message, "bye")
    conversation_id = await asyncio.to_thread(conversation.wait_for_session_end)

    received = sink.received

    async def delivered() -> bool:
        return bool(received)

    await eventually(delivered)
    body, headers = received[0]
    event = client.webhooks.construct_event(
        rawBody=body,
        sig_header=headers["elevenlabs-signature"],
        secret=SANDBOX_ELEVENLABS_WEBHOOK_SECRET,
    )
    assert event["type"] == "post_call_transcription"
    data = event["data"]
    assert data["conversation_id"] == conversation_id
    assert data["agent_id"] == created.agent_id
    assert data["status"] == "done"
    assert [turn["message"] for turn in data["transcript"] if turn["role"] == "user"] == [
        "hello",
        "bye",
    ]
    assert data["transcript"][1]["message"] == "You said: hello"
    assert isinstance(data["metadata"]["call_duration_secs"], int)
    assert data["metadata"]["cost"] >= 0
    assert data["analysis"]["call_successful"] == "success"

    with pytest.raises(ApiError):
        client.webhooks.construct_event(
            rawBody=body.replace("hello", "HELLO"),
            sig_header=headers["elevenlabs-signature"],
            secret=SANDBOX_ELEVENLABS_WEBHOOK_SECRET,
        )
