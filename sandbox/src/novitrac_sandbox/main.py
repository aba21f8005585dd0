"""``novitrac sandbox``: every provider stand-in in one process until Ctrl-C.

Also runnable as ``python -m novitrac_sandbox.main`` (the same options).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from dataclasses import replace

from novitrac_sandbox.config import SandboxConfig
from novitrac_sandbox.sandbox import PROVIDERS, Sandbox, SandboxError


def offset_config(
    config: SandboxConfig,
    *,
    host: str | None = None,
    port_offset: int = 0,
    stripe_webhook_url: str | None = None,
    elevenlabs_webhook_url: str | None = None,
) -> SandboxConfig:
    """``config`` with another host, every port moved by ``port_offset``, and webhook targets."""
    return replace(
        config,
        host=host or config.host,
        control_port=config.control_port + port_offset,
        twilio_port=config.twilio_port + port_offset,
        elevenlabs_port=config.elevenlabs_port + port_offset,
        stripe_port=config.stripe_port + port_offset,
        smtp_port=config.smtp_port + port_offset,
        stripe_webhook_url=stripe_webhook_url or config.stripe_webhook_url,
        elevenlabs_webhook_url=elevenlabs_webhook_url or config.elevenlabs_webhook_url,
    )


async def serve(config: SandboxConfig) -> None:
    """Serve a sandbox with ``config`` until SIGINT or SIGTERM, printing where everything is."""
    sandbox = Sandbox(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sandbox.shutdown)
    try:
        await sandbox.serve(on_ready=lambda: print(banner(sandbox), flush=True))  # noqa: T201
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print("novitrac sandbox: stopped", flush=True)  # noqa: T201


def run(config: SandboxConfig) -> int:
    """Serve until Ctrl-C; the process exit status (2 when the sandbox cannot start)."""
    from novitrac_kit.telemetry import configure_logging

    configure_logging(
        "novitrac-sandbox", level=os.environ.get("NOVITRAC_LOG_LEVEL", "INFO"), fmt="console"
    )
    for chatty in ("mail.log", "uvicorn.error"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        asyncio.run(serve(config))
    except SandboxError as error:
        print(f"novitrac sandbox: {error}", file=sys.stderr)  # noqa: T201
        return 2
    return 0


def banner(sandbox: Sandbox) -> str:
    """Where each provider listens and the credentials to give its SDK."""
    described = sandbox.describe()
    lines = ["", "Novitrac sandbox is running (Ctrl-C to stop):"]
    lines.append(f"  {'control':<11} {described['control']}  (page, JSON index, /mailbox)")
    for name, info in described["providers"].items():
        credentials = "  ".join(f"{key}={value}" for key, value in info["credentials"].items())
        lines.append(f"  {name:<11} {info['base_url']}  {credentials}")
    missing = [name for name in PROVIDERS if name not in described["providers"]]
    if missing:
        lines.append(f"  not available yet: {', '.join(missing)}")
    smtp = described["smtp"]
    lines.append(
        f"  {'smtp':<11} {smtp['host']}:{smtp['port']}  any credentials, no TLS; "
        f"mail at {described['control']}/mailbox/"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from novitrac_kit.cli import main

    raise SystemExit(main(["sandbox", *sys.argv[1:]]))
