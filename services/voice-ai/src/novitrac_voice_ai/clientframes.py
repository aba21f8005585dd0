"""Client text frames written straight to an open ``websockets`` connection's transport.

Every caller frame of every call becomes one such frame to ElevenLabs (50 a second per call), so
the per-frame work of ``websockets``' general framing (a frame object, its checks, a ``BytesIO``, a
``getrandom`` system call for each mask) is worth skipping. The frame is the same RFC 6455 client
frame: FIN and the text opcode, the masked length, a random mask, the masked payload. Masks are
cut from random bytes read in blocks, so the operating system's generator is asked once per 1,024
frames instead of once per frame. Control frames, closing and reading stay with ``websockets``.
"""

from __future__ import annotations

import os
import struct

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the C extension ships in websockets' wheels
    from websockets.utils import apply_mask

_TEXT_FINAL = 0x81
_MASKED = 0x80
_MASK_BLOCK = 4096


class _Masks:
    """Four random bytes at a time, from a block refilled by ``os.urandom``."""

    def __init__(self) -> None:
        self._block = b""
        self._offset = _MASK_BLOCK

    def next(self) -> bytes:
        if self._offset >= len(self._block):
            self._block = os.urandom(_MASK_BLOCK)
            self._offset = 0
        mask = self._block[self._offset : self._offset + 4]
        self._offset += 4
        return mask


_masks = _Masks()


def text_frame(data: bytes) -> bytes:
    """``data`` (UTF-8 text) as one masked, final client text frame."""
    length = len(data)
    if length < 126:
        head = struct.pack("!BB", _TEXT_FINAL, _MASKED | length)
    elif length < 65536:
        head = struct.pack("!BBH", _TEXT_FINAL, _MASKED | 126, length)
    else:
        head = struct.pack("!BBQ", _TEXT_FINAL, _MASKED | 127, length)
    mask = _masks.next()
    return head + mask + apply_mask(data, mask)


def send_text_now(connection: ClientConnection, text: str) -> bool:
    """Write ``text`` as one frame at once, without a coroutine; False when the socket is not open.

    Only for connections without extensions (no compression) and never between the fragments of
    a message, which the bridge does not send.
    """
    if connection.protocol.state is not State.OPEN:
        return False
    connection.transport.write(text_frame(text.encode()))
    return True
