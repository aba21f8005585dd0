from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from novitrac_contracts import Envelope
from novitrac_contracts.auth import OtpPurpose, OtpRequested
from novitrac_contracts.billing import BalanceChanged
from novitrac_contracts.live import LiveCallStatus
from novitrac_contracts.telephony import CallStatus, CallStatusChanged

ORG = UUID("00000000-0000-4000-8000-000000000001")


def status_changed(org_id: UUID = ORG) -> CallStatusChanged:
    return CallStatusChanged(call_id=uuid4(), org_id=org_id, status=CallStatus.RINGING, sequence=2)


class TestWrap:
    def test_fills_the_metadata(self) -> None:
        envelope = Envelope.wrap(status_changed(), producer="telephony", correlation_id="req-1")

        assert envelope.type == "telephony.call.status_changed.v1"
        assert envelope.producer == "telephony"
        assert envelope.correlation_id == "req-1"
        assert envelope.occurred_at.tzinfo is not None
        assert envelope.data["status"] == "ringing"

    def test_every_envelope_has_its_own_id(self) -> None:
        event = status_changed()

        assert Envelope.wrap(event, producer="t").id != Envelope.wrap(event, producer="t").id

    def test_takes_the_organisation_from_the_event(self) -> None:
        assert Envelope.wrap(status_changed(), producer="telephony").org_id == ORG

    def test_refuses_an_organisation_other_than_the_event_s(self) -> None:
        with pytest.raises(ValueError, match="differs from the event's org_id"):
            Envelope.wrap(status_changed(), producer="telephony", org_id=uuid4())

    def test_event_without_an_organisation(self) -> None:
        otp = OtpRequested(
            email="ada@example.com",
            purpose=OtpPurpose.SIGNUP,
            code="123456",
            expires_at=datetime(2026, 1, 1, tzinfo=UTC),
        )

        assert Envelope.wrap(otp, producer="auth").org_id is None


class TestWire:
    def test_round_trips_through_json(self) -> None:
        event = status_changed()
        sent = Envelope.wrap(event, producer="telephony", correlation_id="c")

        received = Envelope.from_json(sent.to_json())

        assert received == sent
        assert received.payload(CallStatusChanged) == event

    def test_live_signal_round_trips(self) -> None:
        signal = LiveCallStatus(
            call_id=uuid4(), org_id=ORG, status=CallStatus.IN_PROGRESS, sequence=3
        )

        received = Envelope.from_json(Envelope.wrap(signal, producer="telephony").to_json())

        assert received.payload(LiveCallStatus) == signal

    def test_ignores_unknown_envelope_fields(self) -> None:
        wire = json.loads(Envelope.wrap(status_changed(), producer="telephony").to_json())
        wire["specversion"] = "1.0"

        received = Envelope.from_json(json.dumps(wire))

        assert "specversion" not in received.model_dump()
        assert received.payload(CallStatusChanged).sequence == 2

    def test_ignores_unknown_data_fields(self) -> None:
        envelope = Envelope.wrap(status_changed(), producer="telephony")
        newer = envelope.model_copy(update={"data": {**envelope.data, "answered_by": "human"}})

        event: CallStatusChanged = newer.payload(CallStatusChanged)

        assert event.status is CallStatus.RINGING
        assert not hasattr(event, "answered_by")

    @pytest.mark.parametrize(
        "event_type",
        [
            "telephony.call.ended",
            "Telephony.call.ended.v1",
            "call.v1",
            "live",
            "telephony.call.ended.v0",
        ],
    )
    def test_refuses_a_malformed_type(self, event_type: str) -> None:
        with pytest.raises(ValidationError, match="malformed event type"):
            Envelope(type=event_type, producer="x")

    def test_refuses_a_malformed_envelope(self) -> None:
        with pytest.raises(ValidationError, match="producer"):
            Envelope.from_json(b'{"type": "telephony.call.ended.v1"}')

    def test_refuses_a_naive_time(self) -> None:
        with pytest.raises(ValidationError, match="occurred_at"):
            Envelope(type="telephony.call.ended.v1", producer="x", occurred_at=datetime(2026, 1, 1))


class TestPayload:
    def test_refuses_the_wrong_model(self) -> None:
        envelope = Envelope.wrap(status_changed(), producer="telephony")

        with pytest.raises(ValueError, match=r"read as 'billing\.balance\.changed\.v1'"):
            envelope.payload(BalanceChanged)

    def test_refuses_bad_data(self) -> None:
        envelope = Envelope(
            type="telephony.call.status_changed.v1",
            producer="telephony",
            data={"call_id": "not-a-uuid", "org_id": str(ORG), "status": "ringing", "sequence": 1},
        )

        with pytest.raises(ValidationError, match="call_id"):
            envelope.payload(CallStatusChanged)

    def test_refuses_missing_data(self) -> None:
        envelope = Envelope(type="telephony.call.status_changed.v1", producer="telephony")

        with pytest.raises(ValidationError, match="call_id"):
            envelope.payload(CallStatusChanged)
