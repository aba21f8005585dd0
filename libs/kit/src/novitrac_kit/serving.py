"""Serve several ASGI apps, each on its own port, in one event loop (dev mode, the sandbox).

Every port is bound before any app starts, so a taken port is reported by the name of what wanted
it and nothing half-starts. Signals are left to the caller, who calls :meth:`AppGroup.shutdown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import uvicorn


class ServingError(Exception):
    """A server could not listen or start; the message names it."""


class SharedSignalServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the caller, so several can share one loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (``port=0``: any free port)."""
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket names its protocol; without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class AppGroup:
    """Named apps served together until :meth:`shutdown` or until one of them stops."""

    def __init__(self, host: str, apps: Sequence[tuple[str, int, Any]]) -> None:
        """Args:
        host: the address every app listens on.
        apps: ``(name, port, app)`` for each app; names appear in errors.
        """
        self.host = host
        self.apps = list(apps)
        self._servers: list[SharedSignalServer] = []
        self._exit_requested = False

    def shutdown(self) -> None:
        """Ask every server to stop; safe to call at any moment, even before :meth:`serve`."""
        self._exit_requested = True
        for server in self._servers:
            server.should_exit = True

    async def serve(self, *, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until :meth:`shutdown` (or one server stops, which stops the others).

        Args:
            on_ready: called once every server accepts connections.

        Raises:
            ServingError: a port is taken, or an app failed to start or crashed.
        """
        sockets: list[socket.socket] = []
        try:
            for name, port, _ in self.apps:
                try:
                    sockets.append(bind(self.host, port))
                except OSError as error:
                    raise ServingError(
                        f"{name}: cannot listen on {self.host}:{port}: {error}"
                    ) from error
            await self._serve(sockets, on_ready)
        finally:
            for sock in sockets:
                sock.close()

    async def _serve(
        self, sockets: list[socket.socket], on_ready: Callable[[], None] | None
    ) -> None:
        self._servers = [
            SharedSignalServer(
                uvicorn.Config(
                    app,
                    log_config=None,
                    access_log=False,
                    ws_ping_interval=None,
                    ws_per_message_deflate=False,
                )
            )
            for _, _, app in self.apps
        ]
        if self._exit_requested:
            return
        tasks = [
            asyncio.create_task(server.serve(sockets=[sock]))
            for server, sock in zip(self._servers, sockets, strict=True)
        ]
        not_started: list[str] = []
        try:
            while not all(server.started for server in self._servers):
                if any(task.done() for task in tasks):
                    if not self._exit_requested:
                        not_started = [
                            name
                            for (name, _, _), server in zip(self.apps, self._servers, strict=True)
                            if not server.started
                        ]
                    break
                await asyncio.sleep(0.02)
            else:
                if on_ready is not None:
                    on_ready()
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.shutdown()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._servers = []
        for task in tasks:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise ServingError(f"a server failed: {error!r}") from error
        if not_started:
            raise ServingError(f"failed to start: {', '.join(not_started)}")
