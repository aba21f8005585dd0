"""What telephony's routes share: its running parts, and Twilio's signed webhook bodies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from novitrac_kit.bus import EventBus
from novitrac_kit.errors import Forbidden
from novitrac_kit.runtime import ServiceContext, get_context
from novitrac_telephony.config import Settings
from novitrac_telephony.twilio_adapter import SignatureChecker, TwilioGateway


@dataclass(frozen=True)
class Telephony:
    """The running service's parts that routes need beyond the kit's."""

    settings: Settings
    twilio: TwilioGateway
    signatures: SignatureChecker
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus


_running: dict[int, Telephony] = {}


@contextmanager
def registered(context: ServiceContext, telephony: Telephony) -> Iterator[None]:
    """Make ``telephony`` the parts of the app running ``context`` while the block runs."""
    _running[id(context)] = telephony
    try:
        yield
    finally:
        _running.pop(id(context), None)


async def get_telephony(context: Annotated[ServiceContext, Depends(get_context)]) -> Telephony:
    """The running service's parts."""
    return _running[id(context)]


TelephonyDep = Annotated[Telephony, Depends(get_telephony)]


@dataclass(frozen=True)
class TwilioForm:
    """A webhook's form fields, once its signature has been checked."""

    pairs: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or None."""
        return next((value for key, value in self.pairs if key == name), None)


async def signed_form(request: Request, telephony: TelephonyDep) -> TwilioForm:
    """The form Twilio posted; 403 unless ``X-Twilio-Signature`` signs it.

    The signed URL is ``TELEPHONY_PUBLIC_URL`` + path + query, never the Host header: behind the
    gateway, the address Twilio called is the public one.
    """
    body = (await request.body()).decode("utf-8", errors="replace")
    pairs = parse_qsl(body, keep_blank_values=True)
    url = telephony.settings.webhook_url(request.url.path)
    if request.url.query:
        url = f"{url}?{request.url.query}"
    signature = request.headers.get("x-twilio-signature", "")
    if not signature or not telephony.signatures.valid(url, pairs, signature):
        raise Forbidden("the request is not signed by Twilio")
    return TwilioForm(pairs)


SignedFormDep = Annotated[TwilioForm, Depends(signed_form)]
