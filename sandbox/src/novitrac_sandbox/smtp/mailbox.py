"""The messages the SMTP sink received, parsed once on arrival and kept in a bounded mailbox."""

from __future__ import annotations

import email
import email.policy
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_CAPACITY = 1000


class Message(BaseModel):
    """One received email, as the mailbox API returns it.

    Attributes:
        id: the mailbox's identifier of the message.
        received_at: when the sink accepted it (UTC).
        mail_from: the envelope sender (``MAIL FROM``).
        recipients: the envelope recipients (``RCPT TO``), Bcc included.
        sender: the ``From`` header (JSON field ``from``).
        to: the addresses of the ``To`` header.
        cc: the addresses of the ``Cc`` header.
        subject: the ``Subject`` header, decoded.
        text: the ``text/plain`` body (None when the message has none).
        html: the ``text/html`` body (None when the message has none).
        headers: every header as received, in order, decoded.
        raw: the message exactly as transmitted (omitted from listings).
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    id: str
    received_at: datetime
    mail_from: str
    recipients: list[str]
    sender: str = Field(alias="from")
    to: list[str]
    cc: list[str]
    subject: str
    text: str | None
    html: str | None
    headers: list[tuple[str, str]]
    raw: str | None = None

    def is_for(self, address: str) -> bool:
        """Whether ``address`` received this message (envelope recipients, case-insensitive)."""
        wanted = address.strip().lower()
        return any(recipient.lower() == wanted for recipient in self.recipients)


def parse_message(content: bytes, *, mail_from: str, recipients: list[str]) -> Message:
    """Parse the bytes of one SMTP transaction into a :class:`Message`."""
    parsed = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return Message(
        id=uuid.uuid4().hex,
        received_at=datetime.now(UTC),
        mail_from=mail_from,
        recipients=list(recipients),
        sender=str(parsed.get("From", "")),
        to=_addresses(parsed, "To"),
        cc=_addresses(parsed, "Cc"),
        subject=str(parsed.get("Subject", "")),
        text=_body(parsed, "plain"),
        html=_body(parsed, "html"),
        headers=[(name, str(value)) for name, value in parsed.items()],
        raw=content.decode("utf-8", errors="replace"),
    )


def _addresses(message: EmailMessage, header: str) -> list[str]:
    values = [str(value) for value in message.get_all(header, [])]
    return [address for _, address in getaddresses(values) if address]


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    try:
        content = part.get_content()
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else None
    return content if isinstance(content, str) else None


class Mailbox:
    """The last ``capacity`` messages received, newest first; safe to use from several threads.

    The SMTP server runs in its own thread and adds messages while the HTTP API reads them.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        """Keep at most ``capacity`` messages; the oldest are dropped first."""
        self._messages: deque[Message] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def add(self, message: Message) -> None:
        """Keep ``message``, dropping the oldest one when the mailbox is full."""
        with self._lock:
            self._messages.appendleft(message)

    def messages(self, *, to: str | None = None) -> list[Message]:
        """The messages kept, newest first; only those received by ``to`` when given."""
        with self._lock:
            messages = list(self._messages)
        if to is not None:
            messages = [message for message in messages if message.is_for(to)]
        return messages

    def get(self, message_id: str) -> Message | None:
        """The message with that id, if still kept."""
        with self._lock:
            return next((m for m in self._messages if m.id == message_id), None)

    def clear(self) -> int:
        """Forget every message; return how many there were."""
        with self._lock:
            count = len(self._messages)
            self._messages.clear()
            return count

    def __len__(self) -> int:
        """How many messages are kept."""
        with self._lock:
            return len(self._messages)
