"""Fixtures of the voice-ai tests; the helpers live in ``voice_harness`` beside this file."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from voice_harness import Harness, start_harness


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    """The sandbox, the telephony stand-in and one voice-ai app, all on real sockets."""
    async with start_harness(database_url) as running_harness:
        yield running_harness
