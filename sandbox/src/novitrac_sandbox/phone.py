"""The virtual phones at the far end of simulated calls, shared by the Twilio and ElevenLabs halves.

A call's :class:`PhoneScript` says what the person on the phone does and when (silence, speech
bursts with the words they stand for, digits, hanging up). The Twilio call engine plays it as audio
into the media stream and records what it hears back; the scripted ElevenLabs agent, which only
receives audio, finds caller speech by its energy and reads *what* was said from the same script,
through the :class:`PhoneBook`, keyed by the call SID the bridge passes in the conversation's
dynamic variables (``system__call_sid``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Utterance:
    """The caller says ``text`` from ``at`` seconds after the answer, for ``duration`` seconds."""

    text: str
    at: float
    duration: float = 1.0


@dataclass(frozen=True)
class Digits:
    """The caller presses ``digits`` at ``at`` seconds after answering."""

    digits: str
    at: float


@dataclass(frozen=True)
class PhoneScript:
    """What the callee (outbound) or caller (inbound) does during a call.

    Attributes:
        utterances: speech bursts, in time order.
        digits: key presses, in time order.
        hang_up_after: seconds after answering when the phone hangs up (None: never by itself).
    """

    utterances: tuple[Utterance, ...] = ()
    digits: tuple[Digits, ...] = ()
    hang_up_after: float | None = None


@dataclass
class PhoneBook:
    """The scripts of the calls in progress, by call SID."""

    scripts: dict[str, PhoneScript] = field(default_factory=dict)

    def register(self, call_sid: str, script: PhoneScript) -> None:
        """Make ``script`` the one the phone of ``call_sid`` follows."""
        self.scripts[call_sid] = script

    def forget(self, call_sid: str) -> None:
        """Drop a finished call's script."""
        self.scripts.pop(call_sid, None)

    def utterance_near(self, call_sid: str, seconds_since_answer: float) -> Utterance | None:
        """The scripted utterance of ``call_sid`` under way (or just ended) at that moment."""
        script = self.scripts.get(call_sid)
        if script is None:
            return None
        slack = 0.5
        for utterance in script.utterances:
            if (
                utterance.at - slack
                <= seconds_since_answer
                <= utterance.at + utterance.duration + slack
            ):
                return utterance
        return None
