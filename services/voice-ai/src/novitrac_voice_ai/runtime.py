"""What a running voice-ai app holds besides the kit's context: key pool, adapters, workers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

import httpx
from fastapi import Depends, Request, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from novitrac_kit.bus import EventBus
from novitrac_kit.metrics import gauge
from novitrac_kit.runtime import ServiceContext
from novitrac_voice_ai.config import Settings
from novitrac_voice_ai.keys import KeyPool
from novitrac_voice_ai.provider import ElevenLabs
from novitrac_voice_ai.reconcile import Reconciler
from novitrac_voice_ai.sync import AgentSync


@dataclass
class VoiceRuntime:
    """One app's voice-ai machinery.

    Attributes:
        settings: the service's settings.
        sessions: the media bridges' session factory (a pool of their own).
        bus: where live transcript lines go.
        pool: the ElevenLabs key pool (this process's leases).
        provider: the ElevenLabs adapter.
        telephony: HTTP client for telephony's internal routes.
        sync: the agent sync loop.
        reconciler: the analysis reconciliation loop.
        bridges: the media bridges running now (every open media stream, admitted or not).
        admitted: how many of them were admitted and hold a call (:attr:`Settings.max_calls`
            bounds it).
        draining: the process is stopping: new streams are refused, live ones carry on.
    """

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    pool: KeyPool
    provider: ElevenLabs
    telephony: httpx.AsyncClient
    sync: AgentSync
    reconciler: Reconciler
    bridges: set[asyncio.Task[None]] = field(default_factory=set)
    admitted: int = 0
    draining: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def track(self, bridge: asyncio.Task[None]) -> None:
        """Count a media stream's task as live until :meth:`untrack`."""
        self.bridges.add(bridge)
        self.idle.clear()
        BRIDGES_LIVE.inc()

    def untrack(self, bridge: asyncio.Task[None]) -> None:
        """The stream's task is over."""
        if bridge in self.bridges:
            self.bridges.discard(bridge)
            BRIDGES_LIVE.dec()
        if not self.bridges:
            self.idle.set()

    def at_capacity(self) -> bool:
        """True while this process carries as many admitted calls as it may.

        The one capacity rule: admission refuses and readiness fails on the same count.
        """
        return self.admitted >= self.settings.max_calls


BRIDGES_LIVE = gauge(
    "novitrac_voice_bridges_live",
    "Media bridges (Twilio media streams) open in this process, admitted or being admitted.",
)


_RUNTIMES: dict[int, VoiceRuntime] = {}


def register(context: ServiceContext, runtime: VoiceRuntime) -> None:
    """Make ``runtime`` the one of the app running with ``context``."""
    _RUNTIMES[id(context)] = runtime


def unregister(context: ServiceContext) -> None:
    """Forget the runtime of a stopped app."""
    _RUNTIMES.pop(id(context), None)


def of_context(context: ServiceContext) -> VoiceRuntime:
    """The runtime of the app running with ``context``."""
    return _RUNTIMES[id(context)]


async def get_runtime(request: Request) -> VoiceRuntime:
    """The runtime of the app serving ``request``."""
    return of_context(request.app.state.context)


def websocket_runtime(websocket: WebSocket) -> VoiceRuntime:
    """The runtime of the app serving ``websocket``."""
    return of_context(websocket.app.state.context)


RuntimeDep = Annotated[VoiceRuntime, Depends(get_runtime)]
