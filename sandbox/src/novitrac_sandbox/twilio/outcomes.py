"""How the phone at the far end of a call behaves: whether it answers, after how long, its script.

The :class:`Switchboard` decides for each new outbound call: first any behaviours queued for "the
next call" (in order), then the behaviour set for the dialled number, then the default (answer
after a short ring, stay silent, never hang up by itself).
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from novitrac_sandbox.phone import Digits, PhoneScript, Utterance

Outcome = Literal["answer", "busy", "no-answer", "failed", "machine"]


@dataclass(frozen=True)
class PhoneBehaviour:
    """What the called phone does.

    Attributes:
        outcome: ``answer`` (a human), ``machine`` (voicemail: answered, AMD reports a machine),
            ``busy``, ``no-answer`` (rings until the caller's ``Timeout``) or ``failed``.
        ring_seconds: how long it rings before answering (or before ``busy``).
        script: what the person does once the call is answered.
    """

    outcome: Outcome = "answer"
    ring_seconds: float = 0.2
    script: PhoneScript = field(default_factory=PhoneScript)

    def to_json(self) -> dict[str, Any]:
        """The behaviour as the control API shows it (the same shape it accepts)."""
        return asdict(self)


@dataclass
class Switchboard:
    """The behaviours the sandbox's phones will follow."""

    upcoming: deque[PhoneBehaviour] = field(default_factory=deque)
    by_number: dict[str, PhoneBehaviour] = field(default_factory=dict)
    default: PhoneBehaviour = field(default_factory=PhoneBehaviour)

    def behaviour_for(self, number: str) -> PhoneBehaviour:
        """The behaviour of the next call to ``number`` (consumes one "next call" entry)."""
        if self.upcoming:
            return self.upcoming.popleft()
        return self.by_number.get(number, self.default)


class UtteranceIn(BaseModel):
    """A scripted utterance, as the control API receives it."""

    text: str
    at: float = Field(ge=0)
    duration: float = Field(default=1.0, gt=0)


class DigitsIn(BaseModel):
    """Scripted key presses, as the control API receives them."""

    digits: str = Field(pattern=r"^[0-9*#wW]+$")
    at: float = Field(ge=0)


class ScriptIn(BaseModel):
    """A :class:`PhoneScript`, as the control API receives it."""

    utterances: list[UtteranceIn] = []
    digits: list[DigitsIn] = []
    hang_up_after: float | None = Field(default=None, gt=0)

    def to_script(self) -> PhoneScript:
        """The script itself."""
        return PhoneScript(
            utterances=tuple(
                Utterance(text=u.text, at=u.at, duration=u.duration)
                for u in sorted(self.utterances, key=lambda u: u.at)
            ),
            digits=tuple(
                Digits(digits=d.digits, at=d.at) for d in sorted(self.digits, key=lambda d: d.at)
            ),
            hang_up_after=self.hang_up_after,
        )


class BehaviourIn(BaseModel):
    """A :class:`PhoneBehaviour`, as the control API receives it."""

    outcome: Outcome = "answer"
    ring_seconds: float = Field(default=0.2, ge=0)
    script: ScriptIn = ScriptIn()

    def to_behaviour(self) -> PhoneBehaviour:
        """The behaviour itself."""
        return PhoneBehaviour(
            outcome=self.outcome, ring_seconds=self.ring_seconds, script=self.script.to_script()
        )
