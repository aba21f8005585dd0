"""The caller's voice: G.711 μ-law frames made from a :class:`PhoneScript`.

Silence is μ-law ``0xFF`` (zero amplitude); a scripted utterance is a two-tone signal loud enough
for any energy-based voice detector. Samples are indexed from the answer of the call, so the audio
is continuous across frames and a frame's content depends only on its position in the call.
"""

from __future__ import annotations

import base64
import math

from novitrac_sandbox.phone import PhoneScript

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160
SILENCE = 0xFF

_BIAS = 0x84
_CLIP = 32635


def ulaw_encode(sample: int) -> int:
    """One 16-bit linear PCM sample as a G.711 μ-law byte."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), _CLIP) + _BIAS
    exponent = max(magnitude.bit_length() - 8, 0)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ulaw_decode(byte: int) -> int:
    """One G.711 μ-law byte as a 16-bit linear PCM sample."""
    byte = ~byte & 0xFF
    magnitude = (((byte & 0x0F) << 3) + _BIAS) << ((byte >> 4) & 0x07)
    return _BIAS - magnitude if byte & 0x80 else magnitude - _BIAS


def _speech_second() -> bytes:
    # Whole-hertz tones repeat exactly every second, so the buffer loops without a click.
    return bytes(
        ulaw_encode(
            int(
                6000 * math.sin(2 * math.pi * 300 * n / SAMPLE_RATE)
                + 4000 * math.sin(2 * math.pi * 710 * n / SAMPLE_RATE)
            )
        )
        for n in range(SAMPLE_RATE)
    )


SPEECH = _speech_second()
SILENT_FRAME = bytes([SILENCE]) * FRAME_SAMPLES
_SILENT_FRAME_BASE64 = base64.b64encode(SILENT_FRAME).decode()
_SPEECH_BASE64: dict[int, str] = {}


class CallerVoice:
    """The audio the phone sends, frame by frame, for a script."""

    def __init__(self, script: PhoneScript) -> None:
        self._spans = [
            (round(u.at * SAMPLE_RATE), round((u.at + u.duration) * SAMPLE_RATE))
            for u in script.utterances
        ]

    def encoded_frame(self, first_sample: int) -> str:
        """:meth:`frame` in base64, as a media message carries it."""
        middle = first_sample + FRAME_SAMPLES // 2
        if not any(start <= middle < end for start, end in self._spans):
            return _SILENT_FRAME_BASE64
        offset = first_sample % SAMPLE_RATE
        encoded = _SPEECH_BASE64.get(offset)
        if encoded is None:
            encoded = _SPEECH_BASE64[offset] = base64.b64encode(self.frame(first_sample)).decode()
        return encoded

    def frame(self, first_sample: int) -> bytes:
        """The 20 ms frame starting ``first_sample`` samples after the answer."""
        middle = first_sample + FRAME_SAMPLES // 2
        if not any(start <= middle < end for start, end in self._spans):
            return SILENT_FRAME
        offset = first_sample % SAMPLE_RATE
        chunk = SPEECH[offset : offset + FRAME_SAMPLES]
        return chunk + SPEECH[: FRAME_SAMPLES - len(chunk)]


def energy(frame: bytes) -> float:
    """The RMS amplitude of a μ-law frame, on the 16-bit scale (silence is 0)."""
    if not frame:
        return 0.0
    return math.sqrt(sum(ulaw_decode(b) ** 2 for b in frame) / len(frame))
