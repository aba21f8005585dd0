"""Serve an ASGI app on a real loopback socket for the length of a test."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from novitrac_kit.serving import SharedSignalServer, bind


@contextlib.asynccontextmanager
async def running(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn (lifespan included) and yield its base URL, ``http://host:port``.

    With ``port=0`` the operating system picks a free port.
    """
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, ws_ping_interval=None, ws_per_message_deflate=False
    )
    server = SharedSignalServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped during start-up")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for servers that must be told their port up front)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
