"""The `novitrac` command as an operator uses it: in a subprocess, against the real servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from novitrac_kit.dsn import asyncpg_url
from novitrac_kit.testing.internal import INTERNAL_TOKEN


def novitrac(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "novitrac_kit.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else dict(os.environ),
    )


def clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVITRAC_")}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, *, deadline: float = 30.0) -> httpx.Response:
    end = time.monotonic() + deadline
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def test_lists_the_services() -> None:
    result = novitrac("services")
    assert result.returncode == 0
    for name in ("gateway", "auth", "telephony", "voice-ai", "billing", "notifications"):
        assert name in result.stdout


def test_run_stops_at_start_naming_the_missing_variable() -> None:
    result = novitrac("run", "billing", env=clean_environment())
    assert result.returncode == 2
    assert "NOVITRAC_DATABASE_URL" in result.stderr
    assert "NOVITRAC_AMQP_URL" in result.stderr
    assert "NOVITRAC_INTERNAL_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_service_is_refused() -> None:
    result = novitrac("run", "nonesuch", env=clean_environment())
    assert result.returncode != 0
    assert "unknown service nonesuch" in result.stderr


def test_migrate_then_run_one_service_against_postgres_and_rabbitmq(
    database_url: str, amqp_url: str
) -> None:
    plain_url = asyncpg_url(database_url)
    migrated = novitrac(
        "migrate", "notifications", env=clean_environment(NOVITRAC_DATABASE_URL=plain_url)
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "notifications: schema notifications at head" in migrated.stdout

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "novitrac_kit.cli", "run", "notifications", "--port", str(port)],
        env=clean_environment(
            NOVITRAC_DATABASE_URL=plain_url,
            NOVITRAC_AMQP_URL=amqp_url,
            NOVITRAC_INTERNAL_TOKEN=INTERNAL_TOKEN,
            NOTIFICATIONS_SECRET_ENCRYPTION_KEY="test-only-secret-encryption-key",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for(f"http://127.0.0.1:{port}/healthz").status_code == 200
        ready = wait_for(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 200, ready.text
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert "novitrac_http_requests_total" in metrics.text
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    # uvicorn re-raises SIGTERM once shut down, so the exit status says which signal stopped it.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert '"event": "service.stopped"' in output, "shut down gracefully, lifespan completed"


@pytest.mark.parametrize("command", ["migrate", "revision billing -m x"])
def test_database_commands_need_a_database_url(command: str) -> None:
    result = novitrac(*command.split(), env=clean_environment())
    assert result.returncode == 2
    assert "NOVITRAC_DATABASE_URL" in result.stderr
