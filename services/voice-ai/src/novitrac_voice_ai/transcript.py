"""A call's transcript as the bridge hears it, each line also sent live to the screens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.live import LiveTranscriptLine
from novitrac_contracts.voice import Speaker
from novitrac_voice_ai.agents import PRODUCER
from novitrac_voice_ai.conversations import HeardLine
from novitrac_voice_ai.streamauth import StreamGrant


class LiveTranscript:
    """The lines heard so far; every new or corrected line goes out as ``live.transcript.line``.

    Args:
        grant: the call the lines belong to.
        publish: sends a live signal without waiting (the bridge's background task).
    """

    def __init__(self, grant: StreamGrant, publish: Callable[[Envelope], None]) -> None:
        self._grant = grant
        self._publish = publish
        self.lines: list[HeardLine] = []
        self._line_of_event: dict[int, int] = {}

    def heard(self, speaker: Speaker, text: Any, event_id: Any, offset_s: float) -> None:
        """A new line (ignored when it has no text)."""
        if not isinstance(text, str) or not text:
            return
        index = len(self.lines)
        self.lines.append(HeardLine(speaker, text, max(offset_s, 0.0)))
        if isinstance(event_id, int):
            self._line_of_event[event_id] = index
        self._announce(index)

    def corrected(self, event_id: Any, text: Any) -> None:
        """The agent's correction of what it said in event ``event_id``."""
        index = self._line_of_event.get(event_id) if isinstance(event_id, int) else None
        if index is None or not isinstance(text, str):
            return
        line = self.lines[index]
        self.lines[index] = HeardLine(line.speaker, text, line.offset_s)
        self._announce(index)

    def _announce(self, index: int) -> None:
        line = self.lines[index]
        signal = LiveTranscriptLine(
            call_id=self._grant.call_id,
            org_id=self._grant.org_id,
            index=index,
            speaker=line.speaker,
            text=line.text,
        )
        self._publish(
            Envelope.wrap(signal, producer=PRODUCER, correlation_id=str(self._grant.call_id))
        )
