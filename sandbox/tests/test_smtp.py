"""The SMTP sink and its mailbox API: real SMTP over a socket in, HTTP out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage

import aiosmtplib
import httpx
import pytest

from novitrac_kit.testing.servers import free_port, running
from novitrac_sandbox.config import SandboxConfig
from novitrac_sandbox.smtp.app import create_app
from novitrac_sandbox.smtp.mailbox import Mailbox
from novitrac_sandbox.smtp.server import SmtpSink


@pytest.fixture
def config() -> SandboxConfig:
    return SandboxConfig(smtp_port=free_port())


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox(capacity=5)


@pytest.fixture
def sink(config: SandboxConfig, mailbox: Mailbox) -> Iterator[SmtpSink]:
    sink = SmtpSink(mailbox, host=config.host, port=config.smtp_port)
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def api(
    config: SandboxConfig, mailbox: Mailbox, sink: SmtpSink
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running(create_app(config, mailbox)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        yield client


def plain(to: str, subject: str, body: str, sender: str = "no-reply@novitrac.test") -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


async def deliver(
    config: SandboxConfig,
    message: EmailMessage,
    *,
    recipients: list[str] | None = None,
    username: str | None = None,
    password: str | None = None,
) -> None:
    errors, reply = await aiosmtplib.send(
        message,
        hostname=config.host,
        port=config.smtp_port,
        recipients=recipients,
        username=username,
        password=password,
        start_tls=None,
    )
    assert errors == {}
    assert reply.startswith("OK")


async def test_a_sign_up_code_sent_over_smtp_is_readable_over_http(
    config: SandboxConfig, api: httpx.AsyncClient
) -> None:
    await deliver(config, plain("ada@example.com", "Your code", "Your sign-up code is 482913.\n"))

    listed = (await api.get("/messages", params={"to": "ada@example.com"})).json()

    assert len(listed) == 1
    summary = listed[0]
    assert summary["subject"] == "Your code"
    assert summary["from"] == "no-reply@novitrac.test"
    assert summary["to"] == ["ada@example.com"]
    assert summary["recipients"] == ["ada@example.com"]
    assert summary["mail_from"] == "no-reply@novitrac.test"
    assert "482913" in summary["text"]
    assert summary["html"] is None
    assert "raw" not in summary, "listings stay small"
    full = (await api.get(f"/messages/{summary['id']}")).json()
    assert "Subject: Your code" in full["raw"]
    assert ["Subject", "Your code"] in full["headers"]
    assert full["received_at"].endswith(("Z", "+00:00"))


async def test_multipart_message_keeps_its_text_and_html_parts(
    config: SandboxConfig, api: httpx.AsyncClient
) -> None:
    message = plain("grace@example.com", "Welcome, Grace ✓", "Plain: welcome!")
    message.add_alternative("<p>HTML: <b>welcome</b>!</p>", subtype="html")

    await deliver(config, message)

    (summary,) = (await api.get("/messages")).json()
    assert summary["subject"] == "Welcome, Grace ✓"
    assert summary["text"].strip() == "Plain: welcome!"
    assert summary["html"].strip() == "<p>HTML: <b>welcome</b>!</p>"
    rendered = await api.get(f"/messages/{summary['id']}/html")
    assert rendered.status_code == 200
    assert rendered.headers["content-type"].startswith("text/html")
    assert rendered.headers["content-security-policy"] == "sandbox"
    assert "<b>welcome</b>" in rendered.text


async def test_a_message_to_several_recipients_is_found_by_each(
    config: SandboxConfig, api: httpx.AsyncClient
) -> None:
    message = plain("Ann <ann@example.com>, bob@example.com", "Team invite", "Join us")
    message["Cc"] = "carol@example.com"
    await deliver(
        config,
        message,
        recipients=["ann@example.com", "bob@example.com", "carol@example.com", "dave@example.com"],
    )
    await deliver(config, plain("eve@example.com", "Other", "Not for the team"))

    for address in ("ann@example.com", "BOB@example.com", "carol@example.com", "dave@example.com"):
        listed = (await api.get("/messages", params={"to": address})).json()
        assert [m["subject"] for m in listed] == ["Team invite"], address
    (invite,) = (await api.get("/messages", params={"to": "dave@example.com"})).json()
    assert invite["to"] == ["ann@example.com", "bob@example.com"]
    assert invite["cc"] == ["carol@example.com"]
    assert "dave@example.com" in invite["recipients"], "Bcc recipients come from the envelope"
    assert (await api.get("/messages", params={"to": "zoe@example.com"})).json() == []


async def test_a_body_in_an_unknown_charset_is_kept_readable(
    config: SandboxConfig, api: httpx.AsyncClient
) -> None:
    raw = (
        b"From: a@x.test\r\nTo: jo@example.com\r\nSubject: Odd\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=x-unknown\r\n\r\nCode 161803\r\n"
    )
    async with aiosmtplib.SMTP(hostname=config.host, port=config.smtp_port) as smtp:
        await smtp.sendmail("a@x.test", ["jo@example.com"], raw)

    (message,) = (await api.get("/messages", params={"to": "jo@example.com"})).json()
    assert "Code 161803" in message["text"]


async def test_credentials_are_accepted_so_a_configured_service_delivers_unchanged(
    config: SandboxConfig, api: httpx.AsyncClient
) -> None:
    await deliver(
        config,
        plain("frank@example.com", "Receipt", "Thanks"),
        username="apikey",
        password="whatever",
    )

    assert [m["subject"] for m in (await api.get("/messages")).json()] == ["Receipt"]


async def test_newest_first_and_the_oldest_dropped_beyond_capacity(
    config: SandboxConfig, api: httpx.AsyncClient
) -> None:
    for number in range(7):
        await deliver(config, plain("gus@example.com", f"Message {number}", "."))

    subjects = [m["subject"] for m in (await api.get("/messages")).json()]

    assert subjects == [f"Message {n}" for n in (6, 5, 4, 3, 2)]


async def test_clearing_empties_the_mailbox(config: SandboxConfig, api: httpx.AsyncClient) -> None:
    await deliver(config, plain("hal@example.com", "One", "."))
    await deliver(config, plain("hal@example.com", "Two", "."))

    cleared = await api.delete("/messages")

    assert cleared.json() == {"deleted": 2}
    assert (await api.get("/messages")).json() == []


async def test_unknown_message_is_a_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/messages/nope")

    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


async def test_page_lists_the_messages_with_their_text_escaped(
    config: SandboxConfig, api: httpx.AsyncClient
) -> None:
    await deliver(config, plain("ivy@example.com", "<script>code</script>", "Code: 123456"))

    page = await api.get("/", headers={"Accept": "text/html"})

    assert page.status_code == 200
    assert "Code: 123456" in page.text
    assert "ivy@example.com" in page.text
    assert "&lt;script&gt;code&lt;/script&gt;" in page.text
    assert "<script>" not in page.text


async def test_sink_restarts_on_the_same_port(config: SandboxConfig, sink: SmtpSink) -> None:
    sink.stop()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await aiosmtplib.send(
            plain("x@example.com", "s", "b"), hostname=config.host, port=config.smtp_port, timeout=5
        )

    sink.start()
    await deliver(config, plain("x@example.com", "Back", "."))

    assert [m.subject for m in sink.mailbox.messages()] == ["Back"]
