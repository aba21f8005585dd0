"""The composed sandbox: every server on its port; the control app's index, page and forwarding."""

from __future__ import annotations

import asyncio
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage

import aiosmtplib
import httpx
import pytest
from fastapi import FastAPI, Request

from novitrac_kit.testing.servers import free_port, running
from novitrac_sandbox import control
from novitrac_sandbox.config import SANDBOX_ACCOUNT_SID, SANDBOX_STRIPE_SECRET_KEY, SandboxConfig
from novitrac_sandbox.main import offset_config
from novitrac_sandbox.sandbox import PROVIDERS, Sandbox, SandboxError
from novitrac_sandbox.smtp.mailbox import Mailbox


def free_config() -> SandboxConfig:
    return SandboxConfig(
        control_port=free_port(),
        twilio_port=free_port(),
        elevenlabs_port=free_port(),
        stripe_port=free_port(),
        smtp_port=free_port(),
    )


@pytest.fixture
async def served() -> AsyncIterator[Sandbox]:
    async with Sandbox(free_config()).running() as sandbox:
        yield sandbox


async def test_every_server_answers_on_its_own_port(served: Sandbox) -> None:
    config = served.config
    async with httpx.AsyncClient() as http:
        index = (await http.get(config.url(config.control_port))).json()
        for name, port, _ in served.apps():
            answer = await http.get(f"{config.url(port)}/_sandbox/does-not-exist")
            assert answer.status_code < 500, name
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@x.test", "b@x.test", "Hello"
    message.set_content("hi")
    await aiosmtplib.send(message, hostname=config.host, port=config.smtp_port)

    assert set(index["providers"]) == set(served.providers) <= set(PROVIDERS)
    assert [m.subject for m in served.mailbox.messages(to="b@x.test")] == ["Hello"]


async def test_the_index_says_where_everything_is_and_which_credentials_to_use(
    served: Sandbox,
) -> None:
    config = served.config
    async with httpx.AsyncClient() as http:
        answer = await http.get(
            config.url(config.control_port), headers={"Accept": "application/json"}
        )
    index = answer.json()

    assert index["control"] == config.url(config.control_port)
    assert index["mailbox"] == f"{config.url(config.control_port)}/mailbox/messages"
    assert index["smtp"]["port"] == config.smtp_port
    for name, info in index["providers"].items():
        assert info["base_url"] == config.url(control.provider_port(config, name))
        assert info["control"] == f"{config.url(config.control_port)}/{name}/_sandbox"
    if "twilio" in index["providers"]:
        assert index["providers"]["twilio"]["credentials"]["account_sid"] == SANDBOX_ACCOUNT_SID
    if "stripe" in index["providers"]:
        credentials = index["providers"]["stripe"]["credentials"]
        assert credentials["secret_key"] == SANDBOX_STRIPE_SECRET_KEY


async def test_the_page_shows_providers_and_the_latest_mail(served: Sandbox) -> None:
    config = served.config
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@x.test", "new@x.test", "Code 314159"
    message.set_content("Your code is 314159")
    await aiosmtplib.send(message, hostname=config.host, port=config.smtp_port)

    async with httpx.AsyncClient() as http:
        page = await http.get(config.url(config.control_port), headers={"Accept": "text/html"})
        mailbox = await http.get(f"{config.url(config.control_port)}/mailbox/")

    assert page.headers["content-type"].startswith("text/html")
    assert "Code 314159" in page.text
    for name in served.providers:
        assert f"<h2>{name}</h2>" in page.text
    assert "Your code is 314159" in mailbox.text


@pytest.mark.parametrize("server", ["control", "smtp"])
async def test_a_taken_port_is_reported_by_name_and_nothing_is_left_running(server: str) -> None:
    config = free_config()
    port = config.control_port if server == "control" else config.smtp_port
    with socket.socket() as squatter:
        squatter.bind((config.host, port))
        squatter.listen()
        sandbox = Sandbox(config)

        with pytest.raises(SandboxError, match=f"{server}: cannot listen on .*:{port}"):
            await sandbox.serve()

    assert not sandbox.smtp.running
    assert port_is_free(config.host, config.twilio_port), "the other ports were released"


async def test_ctrl_c_during_start_up_stops_cleanly() -> None:
    sandbox = Sandbox(free_config())
    serving = asyncio.create_task(sandbox.serve(on_ready=lambda: pytest.fail("not ready")))
    await asyncio.sleep(0)

    sandbox.shutdown()
    await serving

    assert not sandbox.smtp.running


def toy_provider() -> FastAPI:
    """A stand-in provider with sandbox controls, to show the control app's forwarding."""
    app = FastAPI()
    calls: list[dict[str, str]] = []

    @app.get("/_sandbox/calls")
    async def list_calls(status: str | None = None) -> list[dict[str, str]]:
        return [c for c in calls if status is None or c["status"] == status]

    @app.post("/_sandbox/calls", status_code=201)
    async def place_call(request: Request) -> dict[str, str]:
        body = await request.json()
        call = {"from": body["from"], "status": "ringing", "host": request.url.netloc}
        calls.append(call)
        return call

    return app


TOY_CONFIG = SandboxConfig(twilio_port=free_port())


@pytest.fixture
async def control_url() -> AsyncIterator[str]:
    app = control.create_app(TOY_CONFIG, Mailbox(), {"twilio": toy_provider()})
    async with running(app) as url:
        yield url


async def test_provider_controls_are_forwarded_with_body_query_and_status(
    control_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=control_url) as http:
        placed = await http.post("/twilio/_sandbox/calls", json={"from": "+15550001"})
        ringing = await http.get("/twilio/_sandbox/calls", params={"status": "ringing"})
        ended = await http.get("/twilio/_sandbox/calls", params={"status": "completed"})
        missing = await http.get("/twilio/_sandbox/nothing-here")
        unknown = await http.get("/acme/_sandbox/calls")
        page = await http.get("/", headers={"Accept": "text/html"})

    assert placed.status_code == 201
    assert placed.json()["from"] == "+15550001"
    assert placed.json()["host"] == f"{TOY_CONFIG.host}:{TOY_CONFIG.twilio_port}", (
        "the provider builds its links from its own address"
    )
    assert [c["from"] for c in ringing.json()] == ["+15550001"]
    assert ended.json() == []
    assert missing.status_code == 404
    assert unknown.status_code == 404
    assert "no provider acme" in unknown.json()["detail"]
    assert '<a href="/twilio/_sandbox/calls"><code>GET /_sandbox/calls</code></a>' in page.text
    assert 'data-method="POST" data-path="/twilio/_sandbox/calls"' in page.text, "a form to steer"
    assert "+15550001" in page.text, "the page previews each provider's state"


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def free_offset() -> int:
    """A port offset at which every default sandbox port is free."""
    defaults = SandboxConfig()
    ports = [defaults.control_port, defaults.twilio_port, defaults.elevenlabs_port]
    ports += [defaults.stripe_port, defaults.smtp_port]
    for offset in range(20000, 40000, 97):
        if all(port_is_free("127.0.0.1", port + offset) for port in ports):
            return offset
    raise AssertionError("no free port offset")


def novitrac_sandbox(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "novitrac_kit.cli", "sandbox", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_command_serves_until_ctrl_c_and_says_where_everything_is() -> None:
    offset = free_offset()
    config = offset_config(SandboxConfig(), port_offset=offset)
    process = novitrac_sandbox("--port-offset", str(offset))
    try:
        index = wait_for(f"{config.url(config.control_port)}/?format=json").json()
        with smtplib.SMTP(config.host, config.smtp_port, timeout=10) as smtp:
            smtp.sendmail("a@x.test", ["ops@x.test"], b"Subject: Up\r\n\r\nThe sandbox is up.\r\n")
        mail = httpx.get(f"{index['mailbox']}?to=ops@x.test", timeout=5).json()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)

    assert process.returncode == 0, output
    assert [m["subject"] for m in mail] == ["Up"]
    assert "Novitrac sandbox is running" in output
    assert f"http://127.0.0.1:{config.control_port}" in output
    for name, info in index["providers"].items():
        assert info["base_url"] in output, name
        for value in info["credentials"].values():
            assert value in output, name
    assert f"127.0.0.1:{config.smtp_port}" in output
    assert "novitrac sandbox: stopped" in output
    assert "Traceback" not in output


def test_the_command_names_a_taken_port() -> None:
    offset = free_offset()
    config = offset_config(SandboxConfig(), port_offset=offset)
    with socket.socket() as squatter:
        squatter.bind((config.host, config.control_port))
        squatter.listen()
        process = novitrac_sandbox("--port-offset", str(offset))
        output, _ = process.communicate(timeout=30)

    assert process.returncode == 2, output
    assert f"control: cannot listen on 127.0.0.1:{config.control_port}" in output
    assert "Traceback" not in output, output


def wait_for(url: str, *, deadline: float = 30.0) -> httpx.Response:
    end = time.monotonic() + deadline
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)
