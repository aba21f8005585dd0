from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from novitrac_contracts.billing import BalanceChanged, PaymentSucceeded
from novitrac_contracts.telephony import CallCreated, CallEnded, CallStatus
from novitrac_contracts.voice import ConversationEnded, Speaker

Example = Callable[[type[BaseModel]], dict[str, Any]]


def refused(model: type[Any], payload: dict[str, Any], field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=field):
        model.model_validate({**payload, field: value})


class TestPhoneNumber:
    @pytest.mark.parametrize("number", ["+14155550123", "+442071838750", "+12"])
    def test_e164_accepted(self, example: Example, number: str) -> None:
        call = CallCreated.model_validate({**example(CallCreated), "to_number": number})

        assert call.to_number == number

    @pytest.mark.parametrize(
        "number", ["14155550123", "+0123456", "+1 415 555 0123", "+1234567890123456", "", "+"]
    )
    def test_other_forms_refused(self, example: Example, number: str) -> None:
        refused(CallCreated, example(CallCreated), "to_number", number)


class TestMoney:
    @pytest.mark.parametrize("amount", [12.5, 12.0, "12", True])
    def test_only_integers(self, example: Example, amount: Any) -> None:
        refused(BalanceChanged, example(BalanceChanged), "balance", amount)

    def test_balance_may_be_negative(self, example: Example) -> None:
        event = BalanceChanged.model_validate({**example(BalanceChanged), "balance": -150})

        assert event.balance == -150

    @pytest.mark.parametrize("amount", [0, -100])
    def test_payments_are_positive(self, example: Example, amount: int) -> None:
        refused(PaymentSucceeded, example(PaymentSucceeded), "amount", amount)

    @pytest.mark.parametrize("currency", ["usd", "US", "EURO"])
    def test_currency_is_an_iso_code(self, example: Example, currency: str) -> None:
        refused(BalanceChanged, example(BalanceChanged), "currency", currency)


class TestCallEnded:
    @pytest.mark.parametrize("status", [s for s in CallStatus if s.is_final])
    def test_final_statuses_accepted(self, example: Example, status: CallStatus) -> None:
        assert CallEnded.model_validate({**example(CallEnded), "status": status}).status is status

    @pytest.mark.parametrize("status", ["queued", "ringing", "in-progress", "hung-up"])
    def test_other_statuses_refused(self, example: Example, status: str) -> None:
        refused(CallEnded, example(CallEnded), "status", status)

    def test_naive_times_refused(self, example: Example) -> None:
        refused(CallEnded, example(CallEnded), "ended_at", "2026-01-01T10:00:00")

    def test_negative_duration_refused(self, example: Example) -> None:
        refused(CallEnded, example(CallEnded), "duration_s", -1)

    def test_optional_fields_default_to_none(self, example: Example) -> None:
        payload = example(CallEnded)
        for name in ("answered_by", "ended_reason", "started_at"):
            del payload[name]

        event = CallEnded.model_validate(payload)

        assert (event.answered_by, event.ended_reason, event.started_at) == (None, None, None)


class TestConversationEnded:
    def test_transcript_lines_are_typed(self, example: Example) -> None:
        payload = example(ConversationEnded)
        payload["transcript"] = [
            {"speaker": "agent", "text": "Hello!", "offset_s": 0},
            {"speaker": "caller", "text": "Hi.", "offset_s": 2, "confidence": 0.9},
        ]

        event = ConversationEnded.model_validate(payload)

        assert [line.speaker for line in event.transcript] == [Speaker.AGENT, Speaker.CALLER]

    def test_unknown_speaker_refused(self, example: Example) -> None:
        payload = example(ConversationEnded)
        payload["transcript"] = [{"speaker": "narrator", "text": "...", "offset_s": 0}]

        with pytest.raises(ValidationError, match="speaker"):
            ConversationEnded.model_validate(payload)
