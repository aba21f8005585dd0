"""The audio the scripted agent speaks and hears: codecs, synthetic speech, energy-based detection.

Agents exchange either G.711 μ-law at 8 kHz (``ulaw_8000``) or 16-bit little-endian mono PCM
(``pcm_<rate>``). The sandbox has no voice model: "speech" is a voiced tone whose length is
proportional to the text, loud enough for any energy detector, and caller speech is found the
same way, by the energy of the incoming samples.
"""

from __future__ import annotations

import array
import functools
import math
import sys
from dataclasses import dataclass

SUPPORTED_FORMATS = frozenset(
    {"ulaw_8000", "pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_44100", "pcm_48000"}
)
SECONDS_PER_CHARACTER = 0.06
MIN_SPEECH_SECONDS = 0.2
SPEECH_AMPLITUDE = 8000


class UnsupportedFormat(ValueError):
    """The audio format is not one the agents speak."""


def _ulaw_to_linear(byte: int) -> int:
    byte = ~byte & 0xFF
    sign = byte & 0x80
    exponent = (byte >> 4) & 0x07
    mantissa = byte & 0x0F
    magnitude = ((mantissa << 3) + 0x84) << exponent
    magnitude -= 0x84
    return -magnitude if sign else magnitude


_ULAW_DECODE = tuple(_ulaw_to_linear(value) for value in range(256))
_ULAW_MAGNITUDE = tuple(abs(sample) for sample in _ULAW_DECODE)


def _linear_to_ulaw(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = 7
    for bit in range(7, -1, -1):
        if magnitude & (1 << (bit + 7)):
            exponent = bit
            break
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def sample_rate(audio_format: str) -> int:
    """Samples per second of ``audio_format`` (``ulaw_8000`` -> 8000)."""
    if audio_format not in SUPPORTED_FORMATS:
        raise UnsupportedFormat(audio_format)
    return int(audio_format.rsplit("_", 1)[1])


def bytes_per_second(audio_format: str) -> int:
    """How many bytes one second of ``audio_format`` takes."""
    rate = sample_rate(audio_format)
    return rate if audio_format.startswith("ulaw") else rate * 2


def decode(audio: bytes, audio_format: str) -> list[int]:
    """Linear 16-bit samples of ``audio`` (a trailing odd PCM byte is ignored)."""
    if audio_format.startswith("ulaw"):
        return [_ULAW_DECODE[byte] for byte in audio]
    samples = array.array("h")
    samples.frombytes(audio[: len(audio) - len(audio) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tolist()


@functools.cache
def _ulaw_tables() -> tuple[bytes, bytes]:
    # μ-law keeps 14 bits, so a table over magnitudes >> 2 is exact (one per sign).
    positive = bytes(_linear_to_ulaw(step << 2) for step in range(8193))
    negative = bytes(_linear_to_ulaw(-(step << 2)) for step in range(8193))
    return positive, negative


def encode(samples: list[int], audio_format: str) -> bytes:
    """``samples`` (linear 16-bit) in ``audio_format``."""
    if audio_format.startswith("ulaw"):
        positive, negative = _ulaw_tables()
        return bytes(
            positive[sample >> 2] if sample >= 0 else negative[-(sample >> 2)] for sample in samples
        )
    pcm = array.array("h", samples)
    if sys.byteorder == "big":
        pcm.byteswap()
    return pcm.tobytes()


def speech_seconds(text: str) -> float:
    """How long the synthetic voice takes to say ``text``."""
    return max(MIN_SPEECH_SECONDS, len(text) * SECONDS_PER_CHARACTER)


@functools.cache
def _tone(pitch: int, rate: int) -> list[int]:
    """One second of a voiced tone at ``pitch`` Hz (whole cycles, so it loops seamlessly)."""
    samples = []
    for index in range(rate):
        phase = 2.0 * math.pi * pitch * index / rate
        value = 0.7 * math.sin(phase) + 0.3 * math.sin(3.0 * phase)
        samples.append(int(SPEECH_AMPLITUDE * value))
    return samples


@functools.lru_cache(maxsize=256)
def synthesize(text: str, audio_format: str) -> bytes:
    """Synthetic speech for ``text``: a voiced tone whose pitch changes with each word.

    Agents repeat themselves (every call starts with the same greeting), so results are cached
    to keep synthesis off the event loop's hot path when many calls run at once.
    """
    rate = sample_rate(audio_format)
    total = int(speech_seconds(text) * rate)
    words = text.split() or [text]
    per_word = max(1, total // len(words))
    samples: list[int] = []
    for number, word in enumerate(words):
        count = total - len(samples) if number == len(words) - 1 else per_word
        tone = _tone(140 + 10 * (len(word) % 8), rate)
        samples += (tone * (count // rate + 1))[:count]
    return encode(samples[:total], audio_format)


def silence(seconds: float, audio_format: str) -> bytes:
    """``seconds`` of digital silence in ``audio_format``."""
    return encode([0] * int(seconds * sample_rate(audio_format)), audio_format)


def energy(samples: list[int]) -> float:
    """Mean absolute amplitude of ``samples`` (0 for none)."""
    return sum(abs(sample) for sample in samples) / len(samples) if samples else 0.0


def loudness(audio: bytes, audio_format: str) -> tuple[float, int]:
    """(mean absolute amplitude, sample count) of ``audio``, without decoding μ-law to a list.

    The hot path of every caller chunk: summed in C through a table of magnitudes.
    """
    if audio_format.startswith("ulaw"):
        count = len(audio)
        return (sum(map(_ULAW_MAGNITUDE.__getitem__, audio)) / count if count else 0.0), count
    samples = decode(audio, audio_format)
    return energy(samples), len(samples)


@dataclass(frozen=True)
class SpeechSegment:
    """Caller speech found in the audio, in seconds of audio since the conversation started."""

    start: float
    end: float

    @property
    def middle(self) -> float:
        """The moment halfway through the segment."""
        return (self.start + self.end) / 2


class SpeechDetector:
    """Finds where caller speech starts and ends in a stream of audio chunks, by energy.

    Time is counted in audio, not on the wall clock: a chunk of 20 ms advances it by 20 ms
    whenever it arrives. Speech starts once loud audio lasts ``min_speech`` seconds and ends
    after ``hangover`` seconds of quiet, so short clicks and the gaps between words do not count.
    """

    def __init__(
        self,
        audio_format: str,
        *,
        threshold: float = 500.0,
        min_speech: float = 0.06,
        hangover: float = 0.4,
    ) -> None:
        self._format = audio_format
        self._rate = sample_rate(audio_format)
        self._threshold = threshold
        self._min_speech = min_speech
        self._hangover = hangover
        self._clock = 0.0
        self._loud_since: float | None = None
        self._last_loud = 0.0
        self.speaking = False

    def feed(self, audio: bytes) -> tuple[float | None, SpeechSegment | None]:
        """Take the next chunk; return (speech start, finished segment), each when it occurs."""
        level, count = loudness(audio, self._format)
        begin = self._clock
        self._clock += count / self._rate
        started: float | None = None
        finished: SpeechSegment | None = None
        if level >= self._threshold:
            self._last_loud = self._clock
            if self._loud_since is None:
                self._loud_since = begin
            if not self.speaking and self._clock - self._loud_since >= self._min_speech:
                self.speaking = True
                started = self._loud_since
        else:
            if not self.speaking:
                self._loud_since = None
            elif self._clock - self._last_loud >= self._hangover:
                assert self._loud_since is not None
                finished = SpeechSegment(self._loud_since, self._last_loud)
                self.speaking = False
                self._loud_since = None
        return started, finished

    @property
    def clock(self) -> float:
        """Seconds of audio received so far."""
        return self._clock
