"""The SMTP adapter: the only module that talks to a mail server (and imports ``aiosmtplib``).

:class:`SmtpMailer` sends one :class:`OutgoingEmail` per connection and sorts what can go wrong
into :class:`MailRejected` (the server refused the message or its recipient for good: a 5xx
reply to ``RCPT`` or ``DATA``) and :class:`MailNotSent` (anything worth trying again: the server
is unreachable, slow, busy, answers 4xx, or refuses our credentials or sender).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from uuid import UUID

import aiosmtplib

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingEmail:
    """One email to one recipient.

    Attributes:
        delivery_id: the delivery it belongs to; its ``Message-ID`` is derived from it, so a
            message sent again after a crash carries the same id as the first copy.
        to: the recipient's address.
        subject: the subject line.
        text: the plain-text part.
        html: the HTML part.
    """

    delivery_id: UUID
    to: str
    subject: str
    text: str
    html: str


class MailNotSent(Exception):
    """The email was not sent this time; trying again later may work."""


class MailRejected(Exception):
    """The server refused the email for good (a permanent 5xx reply); sending again won't help."""


class SmtpMailer:
    """Sends email through one SMTP server.

    Args:
        host: the server.
        port: its port.
        sender: the ``From`` header, ``Name <address>``.
        sender_address: the envelope sender and the domain of Message-IDs.
        username: the login, if the server wants one.
        password: its password.
        start_tls: upgrade the connection with STARTTLS (submission on port 587).
        use_tls: connect over TLS from the start (port 465).
        timeout: seconds allowed for each step of the conversation.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        sender_address: str,
        username: str | None = None,
        password: str | None = None,
        start_tls: bool = False,
        use_tls: bool = False,
        timeout: float = 15.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._sender_address = sender_address
        self._domain = sender_address.rpartition("@")[2]
        self._username = username
        self._password = password
        self._start_tls = start_tls
        self._use_tls = use_tls
        self._timeout = timeout

    def message_id(self, delivery_id: UUID) -> str:
        """The Message-ID of the delivery's email: ``<delivery id@sender domain>``."""
        return f"<{delivery_id}@{self._domain}>"

    def build(self, email: OutgoingEmail) -> EmailMessage:
        """The MIME message: text part, then the HTML alternative."""
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = self.message_id(email.delivery_id)
        message["X-Novitrac-Delivery"] = str(email.delivery_id)
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        return message

    async def send(self, email: OutgoingEmail) -> None:
        """Send ``email``.

        Raises:
            MailRejected: the server refused the recipient or the message with a 5xx reply.
            MailNotSent: any other failure.
        """
        try:
            await aiosmtplib.send(
                self.build(email),
                sender=self._sender_address,
                recipients=[email.to],
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                start_tls=self._start_tls,
                use_tls=self._use_tls,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            refusals = error.recipients
            if refusals and all(_permanent(refusal.code) for refusal in refusals):
                raise MailRejected(_describe(refusals[0])) from error
            raise MailNotSent(_describe(refusals[0]) if refusals else str(error)) from error
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as error:
            if _permanent(error.code):
                raise MailRejected(_describe(error)) from error
            raise MailNotSent(_describe(error)) from error
        except aiosmtplib.SMTPResponseException as error:
            raise MailNotSent(_describe(error)) from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise MailNotSent(str(error) or repr(error)) from error


def _permanent(code: int) -> bool:
    return 500 <= code < 600


def _describe(error: aiosmtplib.SMTPResponseException) -> str:
    return f"{error.code} {error.message}".strip()
