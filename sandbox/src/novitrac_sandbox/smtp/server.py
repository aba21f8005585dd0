"""The SMTP server: accepts every message for every recipient and keeps it in a :class:`Mailbox`.

It takes any ``AUTH PLAIN``/``LOGIN`` credentials over plain text, so a service configured with a
username and password for its real mail provider delivers here unchanged. It offers no STARTTLS:
``aiosmtplib.send(start_tls=None)`` then stays on plain text.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from novitrac_sandbox.smtp.mailbox import Mailbox, parse_message

logger = logging.getLogger(__name__)


class MailboxHandler:
    """The aiosmtpd handler that parses each message and adds it to a mailbox."""

    def __init__(self, mailbox: Mailbox) -> None:
        """Deliver into ``mailbox``."""
        self.mailbox = mailbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Keep the message of a completed transaction."""
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8")
        message = parse_message(
            content, mail_from=envelope.mail_from or "", recipients=list(envelope.rcpt_tos)
        )
        self.mailbox.add(message)
        logger.info(
            "sandbox.smtp.received", extra={"to": message.recipients, "subject": message.subject}
        )
        return "250 OK"


def _accept_any_credentials(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    return AuthResult(success=True)


class SmtpSink:
    """An SMTP server on ``host:port`` running in its own thread, delivering into ``mailbox``."""

    def __init__(self, mailbox: Mailbox, *, host: str, port: int) -> None:
        """Prepare the server; nothing listens until :meth:`start`."""
        self.mailbox = mailbox
        self.host = host
        self.port = port
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._controller is not None

    def start(self) -> None:
        """Listen (blocking until the server accepts connections); a no-op if already running.

        Raises:
            OSError: the port is taken (found at once, not after aiosmtpd's start-up timeout).
        """
        if self._controller is not None:
            return
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((self.host, self.port))
        controller = Controller(
            MailboxHandler(self.mailbox),
            hostname=self.host,
            port=self.port,
            ready_timeout=10.0,
            enable_SMTPUTF8=True,
            authenticator=_accept_any_credentials,
            auth_require_tls=False,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening (blocking until the thread ends); a no-op if not running."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
