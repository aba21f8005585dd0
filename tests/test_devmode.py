"""`novitrac dev` as a newcomer runs it: one command, every service up, data kept on restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from novitrac_kit.devmode import GATEWAY_PORT
from novitrac_kit.service import discover

PORT_OFFSET = 300  # away from a developer's own `make dev`
STARTUP_DEADLINE = 120.0
SANDBOX_CONTROL_PORT = 8100


class DevProcess:
    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOVITRAC_")}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "novitrac_kit.cli",
                "dev",
                "--data-dir",
                str(data_dir),
                "--port-offset",
                str(PORT_OFFSET),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []

    def wait_until_running(self) -> str:
        """Read the output up to the banner; return the database URL it prints."""
        assert self.process.stdout is not None
        end = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < end:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                break
            self.output.append(line)
            if match := re.match(r"\s+database:\s+(\S+)", line):
                return match.group(1)
        raise AssertionError("novitrac dev did not start:\n" + "".join(self.output))

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        rest, _ = self.process.communicate(timeout=60)
        return "".join(self.output) + rest


async def test_dev_mode_serves_every_service_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = DevProcess(data_dir)
    try:
        database_url = first.wait_until_running()
        async with httpx.AsyncClient(timeout=5) as client:
            for service in discover().values():
                base = f"http://127.0.0.1:{service.port + PORT_OFFSET}"
                assert (await client.get(f"{base}/healthz")).status_code == 200, service.name
                ready = await client.get(f"{base}/readyz")
                assert ready.status_code == 200, (service.name, ready.text)
            sandbox = await client.get(
                f"http://127.0.0.1:{SANDBOX_CONTROL_PORT + PORT_OFFSET}/",
                headers={"Accept": "application/json"},
            )
            assert sandbox.status_code == 200
            assert {"twilio", "elevenlabs", "stripe"} <= set(sandbox.json()["providers"])
            dashboard_url = f"http://127.0.0.1:{GATEWAY_PORT + PORT_OFFSET}/"
            assert any(line.split() == ["dashboard", dashboard_url] for line in first.output), (
                "the banner names the dashboard"
            )
            dashboard = await client.get(dashboard_url)
            assert dashboard.status_code == 200
            assert '<script type="module"' in dashboard.text
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(
                "INSERT INTO billing.inbox (source, message_id) VALUES ('devmode-test', 'kept')"
            )
        finally:
            await connection.close()
    finally:
        output = first.stop()
    assert first.process.returncode == 0, output
    assert "stopped; data kept" in output

    second = DevProcess(data_dir)
    try:
        database_url = second.wait_until_running()
        connection = await asyncpg.connect(database_url)
        try:
            kept = await connection.fetchval(
                "SELECT count(*) FROM billing.inbox WHERE source = 'devmode-test'"
            )
        finally:
            await connection.close()
    finally:
        output = second.stop()
    assert kept == 1
    assert second.process.returncode == 0, output
