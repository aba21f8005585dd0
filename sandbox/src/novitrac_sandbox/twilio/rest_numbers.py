"""Phone numbers: the ``AvailablePhoneNumbers`` local search and ``IncomingPhoneNumbers``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response

from novitrac_sandbox.twilio.errors import invalid, not_found
from novitrac_sandbox.twilio.resources import (
    API_VERSION,
    PhoneNumber,
    TwilioStore,
    formatted,
    new_sid,
    utcnow,
)
from novitrac_sandbox.twilio.rest import E164, Form, authenticate, page_of, read_form

_ACCOUNT = f"/{API_VERSION}/Accounts/{{account_sid}}"

# Numbers in ranges reserved for fiction, so a sandbox number never rings a real phone.
_COUNTRIES: dict[str, tuple[str, str, str, str]] = {
    # country: (prefix, default area code, exchange, region)
    "US": ("+1", "415", "555", "CA"),
    "CA": ("+1", "604", "555", "BC"),
    "GB": ("+44", "7700", "900", "London"),
}

_NUMBER_SETTINGS = {
    "FriendlyName": "friendly_name",
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "VoiceFallbackUrl": "voice_fallback_url",
    "VoiceFallbackMethod": "voice_fallback_method",
    "SmsUrl": "sms_url",
    "SmsMethod": "sms_method",
    "SmsFallbackUrl": "sms_fallback_url",
    "SmsFallbackMethod": "sms_fallback_method",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
}


def check_url(value: str) -> str:
    """``value`` if empty or an absolute http(s) URL, else error 21205."""
    parts = urlsplit(value)
    if value and (parts.scheme not in {"http", "https"} or not parts.netloc):
        raise invalid(21205, f"Url is not a valid URL: {value}")
    return value


def check_method(value: str) -> str:
    """``GET`` or ``POST`` (any case), else a 400."""
    if value.upper() not in {"GET", "POST"}:
        raise invalid(20001, f"Method must be GET or POST, not {value}")
    return value.upper()


def candidates(country: str, area_code: str | None) -> Iterator[str]:
    """Numbers of ``country`` (in its fictional range) a search may offer, in order."""
    prefix, default_area, exchange, _ = _COUNTRIES[country]
    area = area_code or default_area
    for line in range(100, 200):
        digits = 4 if prefix == "+1" else 3
        yield f"{prefix}{area}{exchange}{line:0{digits}d}"


def apply_settings(number: PhoneNumber, form: Form) -> None:
    """Copy the webhook settings present in ``form`` onto ``number``."""
    for param, attribute in _NUMBER_SETTINGS.items():
        value = form.get(param)
        if value is None:
            continue
        if param.endswith("Url") or param == "StatusCallback":
            value = check_url(value)
        elif param.endswith("Method"):
            value = check_method(value)
        setattr(number, attribute, value)
    number.date_updated = utcnow()


def numbers_router(store: TwilioStore, accounts: Mapping[str, str]) -> APIRouter:
    """The phone-number routes over ``store``, for the accounts (SID -> Auth Token) given."""
    router = APIRouter()

    def owned(account_sid: str, sid: str, request: Request) -> PhoneNumber:
        number = store.numbers.get(sid)
        if number is None or number.account_sid != account_sid:
            raise not_found(request.url.path)
        return number

    @router.get(_ACCOUNT + "/AvailablePhoneNumbers/{country}/Local.json")
    async def search_local(account_sid: str, country: str, request: Request) -> dict[str, Any]:
        authenticate(request, account_sid, accounts)
        if country not in _COUNTRIES:
            raise not_found(request.url.path)
        query = request.query_params
        contains = "".join(ch for ch in query.get("Contains", "") if ch.isdigit())
        size = int(query["PageSize"]) if query.get("PageSize", "").isdigit() else 30
        taken = {n.phone_number for n in store.numbers.values()}
        _, _, _, region = _COUNTRIES[country]
        found = [
            number
            for number in candidates(country, query.get("AreaCode"))
            if number not in taken and contains in number
        ][:size]
        return {
            "available_phone_numbers": [
                {
                    "friendly_name": formatted(number),
                    "phone_number": number,
                    "lata": None,
                    "locality": None,
                    "rate_center": None,
                    "latitude": None,
                    "longitude": None,
                    "region": region,
                    "postal_code": None,
                    "iso_country": country,
                    "address_requirements": "none",
                    "beta": False,
                    "capabilities": {"mms": True, "sms": True, "voice": True},
                }
                for number in found
            ],
            "uri": request.url.path,
        }

    @router.post(_ACCOUNT + "/IncomingPhoneNumbers.json", status_code=201)
    async def buy(account_sid: str, request: Request) -> dict[str, Any]:
        authenticate(request, account_sid, accounts)
        form = await read_form(request)
        wanted = form.get("PhoneNumber")
        taken = {n.phone_number for n in store.numbers.values()}
        if wanted is None:
            area = form.get("AreaCode")
            if not area:
                raise invalid(21421, "A 'PhoneNumber' or 'AreaCode' is required")
            wanted = next((n for n in candidates("US", area) if n not in taken), None)
            if wanted is None:
                raise invalid(21452, f"No phone numbers found in area code {area}")
        if not E164.match(wanted):
            raise invalid(21421, f"PhoneNumber is invalid: {wanted}")
        if wanted in taken:
            raise invalid(21422, f"PhoneNumber {wanted} is not available")
        number = PhoneNumber(
            sid=new_sid("PN"),
            account_sid=account_sid,
            phone_number=wanted,
            friendly_name=formatted(wanted),
        )
        apply_settings(number, form)
        store.numbers[number.sid] = number
        return number.to_json()

    @router.get(_ACCOUNT + "/IncomingPhoneNumbers.json")
    async def list_numbers(account_sid: str, request: Request) -> dict[str, Any]:
        authenticate(request, account_sid, accounts)
        phone_number = request.query_params.get("PhoneNumber")
        friendly_name = request.query_params.get("FriendlyName")
        records = [
            n.to_json()
            for n in store.numbers.values()
            if n.account_sid == account_sid
            and (phone_number is None or n.phone_number == phone_number)
            and (friendly_name is None or n.friendly_name == friendly_name)
        ]
        return page_of(request, "incoming_phone_numbers", records)

    @router.get(_ACCOUNT + "/IncomingPhoneNumbers/{sid}.json")
    async def fetch_number(account_sid: str, sid: str, request: Request) -> dict[str, Any]:
        authenticate(request, account_sid, accounts)
        return owned(account_sid, sid, request).to_json()

    @router.post(_ACCOUNT + "/IncomingPhoneNumbers/{sid}.json")
    async def update_number(account_sid: str, sid: str, request: Request) -> dict[str, Any]:
        authenticate(request, account_sid, accounts)
        number = owned(account_sid, sid, request)
        apply_settings(number, await read_form(request))
        return number.to_json()

    @router.delete(_ACCOUNT + "/IncomingPhoneNumbers/{sid}.json", status_code=204)
    async def release(account_sid: str, sid: str, request: Request) -> Response:
        authenticate(request, account_sid, accounts)
        number = owned(account_sid, sid, request)
        del store.numbers[number.sid]
        return Response(status_code=204)

    return router
