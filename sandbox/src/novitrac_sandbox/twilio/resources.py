"""The Twilio resources the sandbox keeps (numbers, calls, messages) and their REST JSON.

Each resource renders exactly the fields of Twilio's OpenAPI schema (snake_case, RFC 2822 dates,
numbers as strings where Twilio sends strings), so the official SDK reads them unchanged.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

API_VERSION = "2010-04-01"
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def new_sid(prefix: str) -> str:
    """A fresh SID: the two-letter type prefix and 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def rfc2822(moment: datetime | None) -> str | None:
    """``Tue, 16 Jul 2024 12:00:00 +0000``, Twilio's date format (None stays None)."""
    return None if moment is None else format_datetime(moment.astimezone(UTC))


def formatted(number: str) -> str:
    """A number formatted for display: ``(415) 555-0100`` in North America, E.164 elsewhere."""
    if number.startswith("+1") and len(number) == 12:
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


def account_uri(account_sid: str) -> str:
    """The path of an account's resources, without a trailing slash."""
    return f"/{API_VERSION}/Accounts/{account_sid}"


@dataclass
class PhoneNumber:
    """An IncomingPhoneNumber: a number the account owns, with the webhooks it calls."""

    sid: str
    account_sid: str
    phone_number: str
    friendly_name: str
    voice_url: str | None = None
    voice_method: str = "POST"
    voice_fallback_url: str | None = None
    voice_fallback_method: str = "POST"
    sms_url: str = ""
    sms_method: str = "POST"
    sms_fallback_url: str = ""
    sms_fallback_method: str = "POST"
    status_callback: str = ""
    status_callback_method: str = "POST"
    date_created: datetime = field(default_factory=utcnow)
    date_updated: datetime = field(default_factory=utcnow)

    @property
    def uri(self) -> str:
        """The resource's own path."""
        return f"{account_uri(self.account_sid)}/IncomingPhoneNumbers/{self.sid}.json"

    def to_json(self) -> dict[str, Any]:
        """The IncomingPhoneNumber resource as the REST API returns it."""
        return {
            "account_sid": self.account_sid,
            "address_sid": None,
            "address_requirements": "none",
            "api_version": API_VERSION,
            "beta": False,
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "friendly_name": self.friendly_name,
            "identity_sid": None,
            "phone_number": self.phone_number,
            "origin": "twilio",
            "sid": self.sid,
            "sms_application_sid": None,
            "sms_fallback_method": self.sms_fallback_method,
            "sms_fallback_url": self.sms_fallback_url,
            "sms_method": self.sms_method,
            "sms_url": self.sms_url,
            "status_callback": self.status_callback,
            "status_callback_method": self.status_callback_method,
            "trunk_sid": None,
            "uri": self.uri,
            "voice_receive_mode": "voice",
            "voice_application_sid": None,
            "voice_caller_id_lookup": False,
            "voice_fallback_method": self.voice_fallback_method,
            "voice_fallback_url": self.voice_fallback_url,
            "voice_method": self.voice_method,
            "voice_url": self.voice_url,
            "emergency_status": "Inactive",
            "emergency_address_sid": None,
            "emergency_address_status": "unregistered",
            "bundle_sid": None,
            "status": "in-use",
            "type": "local",
        }


@dataclass
class Call:
    """A Call resource: who called whom, its status and timing."""

    sid: str
    account_sid: str
    to: str
    from_: str
    direction: str
    status: str = "queued"
    phone_number_sid: str | None = None
    parent_call_sid: str | None = None
    answered_by: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    date_created: datetime = field(default_factory=utcnow)
    date_updated: datetime = field(default_factory=utcnow)

    @property
    def uri(self) -> str:
        """The resource's own path."""
        return f"{account_uri(self.account_sid)}/Calls/{self.sid}.json"

    @property
    def is_final(self) -> bool:
        """The call has ended (completed, busy, failed, no-answer or canceled)."""
        return self.status in FINAL_CALL_STATUSES

    @property
    def duration(self) -> int | None:
        """Whole seconds from answer to end, once the call has ended (0 if never answered)."""
        if self.end_time is None:
            return None
        if self.start_time is None:
            return 0
        return round((self.end_time - self.start_time).total_seconds())

    def set_status(self, status: str) -> None:
        """Move to ``status``, stamping the answer and end times."""
        now = utcnow()
        self.status = status
        self.date_updated = now
        if status == "in-progress" and self.start_time is None:
            self.start_time = now
        if status in FINAL_CALL_STATUSES and self.end_time is None:
            self.end_time = now

    def to_json(self) -> dict[str, Any]:
        """The Call resource as the REST API returns it."""
        base = f"{account_uri(self.account_sid)}/Calls/{self.sid}"
        subresources = (
            ("notifications", "Notifications"),
            ("recordings", "Recordings"),
            ("payments", "Payments"),
            ("events", "Events"),
            ("siprec", "Siprec"),
            ("streams", "Streams"),
            ("transcriptions", "Transcriptions"),
            ("user_defined_message_subscriptions", "UserDefinedMessageSubscriptions"),
            ("user_defined_messages", "UserDefinedMessages"),
        )
        duration = self.duration
        return {
            "sid": self.sid,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "parent_call_sid": self.parent_call_sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "to_formatted": formatted(self.to),
            "from": self.from_,
            "from_formatted": formatted(self.from_),
            "phone_number_sid": self.phone_number_sid,
            "status": self.status,
            "start_time": rfc2822(self.start_time),
            "end_time": rfc2822(self.end_time),
            "duration": None if duration is None else str(duration),
            "price": None,
            "price_unit": "USD",
            "direction": self.direction,
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": self.uri,
            "subresource_uris": {key: f"{base}/{name}.json" for key, name in subresources},
        }


@dataclass
class Message:
    """A Message resource: an SMS sent by the account or received on one of its numbers."""

    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    direction: str
    status: str
    messaging_service_sid: str | None = None
    num_media: int = 0
    date_sent: datetime | None = None
    date_created: datetime = field(default_factory=utcnow)
    date_updated: datetime = field(default_factory=utcnow)

    @property
    def uri(self) -> str:
        """The resource's own path."""
        return f"{account_uri(self.account_sid)}/Messages/{self.sid}.json"

    def set_status(self, status: str) -> None:
        """Move to ``status`` (``sent`` stamps ``date_sent``)."""
        now = utcnow()
        self.status = status
        self.date_updated = now
        if status in {"sent", "received"} and self.date_sent is None:
            self.date_sent = now

    def to_json(self) -> dict[str, Any]:
        """The Message resource as the REST API returns it."""
        base = f"{account_uri(self.account_sid)}/Messages/{self.sid}"
        return {
            "body": self.body,
            "num_segments": str(max(1, -(-len(self.body) // 160))),
            "direction": self.direction,
            "from": self.from_,
            "to": self.to,
            "date_updated": rfc2822(self.date_updated),
            "price": None,
            "error_message": None,
            "uri": self.uri,
            "account_sid": self.account_sid,
            "num_media": str(self.num_media),
            "status": self.status,
            "messaging_service_sid": self.messaging_service_sid,
            "sid": self.sid,
            "date_sent": rfc2822(self.date_sent),
            "date_created": rfc2822(self.date_created),
            "error_code": None,
            "price_unit": "USD",
            "api_version": API_VERSION,
            "subresource_uris": {
                "media": f"{base}/Media.json",
                "feedback": f"{base}/Feedback.json",
            },
        }


@dataclass
class TwilioStore:
    """Every account's numbers, calls and messages, in creation order."""

    numbers: dict[str, PhoneNumber] = field(default_factory=dict)
    calls: dict[str, Call] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)

    def number_by_phone(self, phone_number: str) -> PhoneNumber | None:
        """The owned number ``phone_number`` (E.164), in whichever account owns it."""
        return next((n for n in self.numbers.values() if n.phone_number == phone_number), None)
