"""The only module that imports ``twilio``: REST calls, TwiML and webhook signatures.

Domain code talks to :class:`TwilioGateway` and the TwiML functions below; provider errors arrive
as :class:`TwilioFailure`. The SDK is aimed at ``TELEPHONY_TWILIO_API_BASE`` when it is set (the
sandbox in development and tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

from novitrac_telephony.config import Settings

STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")


class TwilioFailure(Exception):
    """Twilio refused a request or could not be reached.

    Attributes:
        status: Twilio's HTTP status (None when it was not reached).
        code: Twilio's error code, when it gave one.
    """

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class AvailableNumber:
    """A number Twilio offers for purchase."""

    phone_number: str
    friendly_name: str
    locality: str | None
    region: str | None
    iso_country: str
    voice: bool
    sms: bool


@dataclass(frozen=True)
class OwnedNumber:
    """A number the Twilio account holds."""

    sid: str
    phone_number: str
    friendly_name: str
    voice: bool
    sms: bool


@dataclass(frozen=True)
class NumberWebhooks:
    """Where a number's calls, call progress and texts are sent."""

    voice_url: str
    status_callback: str
    sms_url: str


@dataclass(frozen=True)
class CallProgress:
    """Where Twilio says a call is, for reconciling a call whose callbacks went missing."""

    status: str
    duration_s: int | None
    ended_at: datetime | None
    answered_by: str | None


@dataclass(frozen=True)
class CallPrice:
    """What Twilio charged for a call (None until it has priced it)."""

    price: str | None
    price_unit: str | None


def _capability(capabilities: object, name: str) -> bool:
    if not isinstance(capabilities, Mapping):
        return True
    lowered = {str(key).lower(): value for key, value in capabilities.items()}
    return bool(lowered.get(name, True))


def _owned(record: object) -> OwnedNumber:
    capabilities = getattr(record, "capabilities", None)
    return OwnedNumber(
        sid=str(getattr(record, "sid", "")),
        phone_number=str(getattr(record, "phone_number", "")),
        friendly_name=str(getattr(record, "friendly_name", "") or ""),
        voice=_capability(capabilities, "voice"),
        sms=_capability(capabilities, "sms"),
    )


class TwilioGateway:
    """Twilio's REST API through the official SDK's async client.

    Args:
        settings: the account, its token and the API base.
    """

    def __init__(self, settings: Settings) -> None:
        self._http = AsyncTwilioHttpClient(timeout=settings.twilio_timeout)
        self._client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            http_client=self._http,
        )
        if settings.twilio_api_base:
            self._client.api.base_url = settings.twilio_api_base.rstrip("/")

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.close()

    async def search_numbers(
        self, *, country: str, area_code: str | None, contains: str | None, limit: int
    ) -> list[AvailableNumber]:
        """Local numbers of ``country`` on offer."""
        options: dict[str, object] = {"limit": limit}
        if area_code:
            options["area_code"] = area_code
        if contains:
            options["contains"] = contains
        try:
            records = await self._client.available_phone_numbers(country).local.list_async(
                **options
            )
        except TwilioException as error:
            failure = _failure(error)
            if failure.status == 404:
                return []
            raise failure from error
        return [
            AvailableNumber(
                phone_number=record.phone_number,
                friendly_name=record.friendly_name or record.phone_number,
                locality=record.locality,
                region=record.region,
                iso_country=record.iso_country or country,
                voice=_capability(record.capabilities, "voice"),
                sms=_capability(record.capabilities, "sms"),
            )
            for record in records
        ]

    async def buy_number(
        self, *, phone_number: str | None, area_code: str | None, webhooks: NumberWebhooks
    ) -> OwnedNumber:
        """Buy ``phone_number`` (or any number in ``area_code``) with its webhooks set."""
        options: dict[str, str] = {
            "voice_url": webhooks.voice_url,
            "voice_method": "POST",
            "status_callback": webhooks.status_callback,
            "status_callback_method": "POST",
            "sms_url": webhooks.sms_url,
            "sms_method": "POST",
        }
        if phone_number:
            options["phone_number"] = phone_number
        elif area_code:
            options["area_code"] = area_code
        try:
            record = await self._client.incoming_phone_numbers.create_async(**options)
        except TwilioException as error:
            raise _failure(error) from error
        return _owned(record)

    async def find_number(self, phone_number: str) -> OwnedNumber | None:
        """The number the account already holds, or None."""
        try:
            records = await self._client.incoming_phone_numbers.list_async(
                phone_number=phone_number, limit=1
            )
        except TwilioException as error:
            raise _failure(error) from error
        return _owned(records[0]) if records else None

    async def configure_number(self, sid: str, webhooks: NumberWebhooks) -> None:
        """Point an owned number's webhooks at Novitrac."""
        try:
            await self._client.incoming_phone_numbers(sid).update_async(
                voice_url=webhooks.voice_url,
                voice_method="POST",
                status_callback=webhooks.status_callback,
                status_callback_method="POST",
                sms_url=webhooks.sms_url,
                sms_method="POST",
            )
        except TwilioException as error:
            raise _failure(error) from error

    async def release_number(self, sid: str) -> None:
        """Give a number back to Twilio (already gone counts as done)."""
        try:
            await self._client.incoming_phone_numbers(sid).delete_async()
        except TwilioRestException as error:
            if error.status != 404:
                raise _failure(error) from error
        except TwilioException as error:
            raise _failure(error) from error

    async def create_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        ring_timeout: int,
        time_limit: int,
        machine_detection: str | None,
        recording_callback: str | None,
    ) -> str:
        """Place a call; its SID. Every progress event is reported to ``status_callback``."""
        options: dict[str, object] = {
            "to": to,
            "from_": from_,
            "url": url,
            "method": "POST",
            "status_callback": status_callback,
            "status_callback_method": "POST",
            "status_callback_event": list(STATUS_EVENTS),
            "timeout": ring_timeout,
            "time_limit": time_limit,
        }
        if machine_detection is not None:
            options["machine_detection"] = machine_detection
        if recording_callback is not None:
            options["record"] = True
            options["recording_status_callback"] = recording_callback
        try:
            call = await self._client.calls.create_async(**options)
        except TwilioException as error:
            raise _failure(error) from error
        return str(call.sid)

    async def end_call(self, sid: str, *, answered: bool) -> None:
        """Hang up an answered call, or cancel one still ringing."""
        try:
            await self._client.calls(sid).update_async(
                status="completed" if answered else "canceled"
            )
        except TwilioException as error:
            raise _failure(error) from error

    async def redirect_call(self, sid: str, twiml: str) -> None:
        """Replace a live call's instructions with ``twiml``."""
        try:
            await self._client.calls(sid).update_async(twiml=twiml)
        except TwilioException as error:
            raise _failure(error) from error

    async def call_price(self, sid: str) -> CallPrice:
        """What Twilio says a call cost so far."""
        try:
            call = await self._client.calls(sid).fetch_async()
        except TwilioException as error:
            raise _failure(error) from error
        return CallPrice(price=call.price, price_unit=call.price_unit)

    async def call_progress(self, sid: str) -> CallProgress | None:
        """The call's status as Twilio has it now; None when Twilio does not know the call."""
        try:
            call = await self._client.calls(sid).fetch_async()
        except TwilioRestException as error:
            if error.status == 404:
                return None
            raise _failure(error) from error
        except TwilioException as error:
            raise _failure(error) from error
        duration = str(call.duration or "")
        return CallProgress(
            status=str(call.status or ""),
            duration_s=int(duration) if duration.isdigit() else None,
            ended_at=call.end_time,
            answered_by=call.answered_by,
        )

    async def send_sms(self, *, to: str, from_: str, body: str, status_callback: str) -> str:
        """Send a text; its SID."""
        try:
            message = await self._client.messages.create_async(
                to=to, from_=from_, body=body, status_callback=status_callback
            )
        except TwilioException as error:
            raise _failure(error) from error
        return str(message.sid)


def _failure(error: TwilioException) -> TwilioFailure:
    if isinstance(error, TwilioRestException):
        return TwilioFailure(str(error.msg), status=error.status, code=error.code)
    # Paging errors carry the HTTP response as their second argument.
    response = error.args[1] if len(error.args) > 1 else None
    status = getattr(response, "status_code", None)
    return TwilioFailure(
        str(error.args[0]) if error.args else type(error).__name__,
        status=status if isinstance(status, int) else None,
    )


class SignatureChecker:
    """Checks ``X-Twilio-Signature`` with the account's Auth Token."""

    def __init__(self, auth_token: str) -> None:
        self._validator = RequestValidator(auth_token)

    def valid(self, url: str, params: Sequence[tuple[str, str]], signature: str) -> bool:
        """Whether ``signature`` signs ``url`` with the form ``params`` (repeated keys allowed)."""
        multi: dict[str, list[str]] = {}
        for key, value in params:
            multi.setdefault(key, []).append(value)
        flat = {key: values if len(values) > 1 else values[0] for key, values in multi.items()}
        return bool(self._validator.validate(url, flat, signature))


def stream_twiml(*, url: str, parameters: Mapping[str, str], action: str | None) -> str:
    """``<Connect><Stream>`` to ``url`` with ``<Parameter>``s; ``action`` runs when it closes."""
    response = VoiceResponse()
    connect = Connect(action=action, method="POST") if action else Connect()
    stream = connect.stream(url=url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def say_and_hang_up(message: str) -> str:
    """Say ``message``, then hang up."""
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response)


def hang_up() -> str:
    """Hang up at once."""
    response = VoiceResponse()
    response.hangup()
    return str(response)


def dial(number: str, *, caller_id: str) -> str:
    """Connect the call to ``number``."""
    response = VoiceResponse()
    target = Dial(caller_id=caller_id)
    target.number(number)
    response.append(target)
    return str(response)


def empty() -> str:
    """TwiML that does nothing (an SMS left unanswered)."""
    return str(VoiceResponse())
