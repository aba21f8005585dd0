"""The bridge's own client frames are ones a WebSocket server reads back as the text sent."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from novitrac_voice_ai.clientframes import text_frame


def parse(data: bytes) -> Frame:
    """Read ``data`` the way a server reads a client's frame (a mask is required)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=True)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("the frame is incomplete")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 300, 65535, 65536, 200_000])
def test_a_text_frame_of_any_length_reads_back_as_the_text(size: int) -> None:
    text = ("user_audio_chunk é" * (size // 18 + 1))[:size].encode()

    frame = parse(text_frame(text))

    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert frame.data == text


def test_every_frame_has_a_fresh_mask() -> None:
    masks = {text_frame(b"same text")[2:6] for _ in range(3000)}

    assert len(masks) > 2990
