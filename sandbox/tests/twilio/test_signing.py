"""``X-Twilio-Signature`` as the SDK's ``RequestValidator`` checks it, for POST and GET webhooks."""

from __future__ import annotations

from typing import Any

import httpx
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from novitrac_sandbox.config import SANDBOX_AUTH_TOKEN
from novitrac_sandbox.twilio.signing import twilio_signature

validator = RequestValidator(SANDBOX_AUTH_TOKEN)


class MultiValues(dict[str, list[str]]):
    """A form with repeated keys, as Django's QueryDict presents it to the validator."""

    def getlist(self, name: str) -> list[str]:
        return self[name]


def test_signatures_agree_with_the_sdks_validator() -> None:
    url = "https://app.example:8443/twilio/status?tenant=t1"
    params = [("To", "+14155550100"), ("Events", "ringing"), ("Events", "answered"), ("A", "")]
    signature = twilio_signature(SANDBOX_AUTH_TOKEN, url, params)
    form = MultiValues({"To": ["+14155550100"], "Events": ["ringing", "answered"], "A": [""]})
    assert signature == validator.compute_signature(url, form)
    assert validator.validate(url, form, signature)
    assert validator.validate(url, {"To": "+14155550100", "A": ""}, signature) is False
    assert twilio_signature("another-token", url, params) != signature


async def test_a_get_voice_webhook_is_signed_over_its_full_url(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient, wait_for: Any
) -> None:
    await client.incoming_phone_numbers(number.sid).update_async(voice_method="GET")
    await control.post(
        "/_sandbox/inbound", json={"from": "+14155550177", "to": number.phone_number}
    )
    await wait_for(lambda: len(application.hits_to("/voice")) == 1)
    hit = application.hits_to("/voice")[0]
    assert hit.method == "GET"
    assert "CallSid=CA" in hit.url
    assert validator.validate(hit.url, {}, hit.signature)
    assert not validator.validate(hit.url.replace("inbound", "outbound"), {}, hit.signature)
