from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from novitrac_contracts import (
    EVENT_TYPE_PATTERN,
    EVENTS,
    LIVE_SIGNAL_PATTERN,
    LIVE_SIGNALS,
    Envelope,
    Event,
    UnknownEventType,
    event_class,
)
from novitrac_contracts.telephony import CallEnded

ALL = [*EVENTS.values(), *LIVE_SIGNALS.values()]
by_type = pytest.mark.parametrize("model", ALL, ids=lambda model: model.event_type)

Example = Callable[[type[BaseModel]], dict[str, Any]]


def _subclasses(cls: type[Event]) -> set[type[Event]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


class TestCatalogue:
    def test_every_event_class_is_catalogued(self) -> None:
        declared = {
            model
            for model in _subclasses(Event)
            if model.__module__.startswith("novitrac_contracts.")
        }

        assert declared == set(ALL)

    def test_types_are_unique(self) -> None:
        assert len({model.event_type for model in ALL}) == len(ALL)

    def test_domain_events_and_live_signals_are_apart(self) -> None:
        assert all(EVENT_TYPE_PATTERN.match(t) for t in EVENTS)
        assert all(LIVE_SIGNAL_PATTERN.match(t) for t in LIVE_SIGNALS)

    @by_type
    def test_type_is_its_key(self, model: type[Event]) -> None:
        assert event_class(model.event_type) is model

    @by_type
    def test_type_names_the_domain_of_its_module(self, model: type[Event]) -> None:
        assert model.event_type.split(".")[0] == model.__module__.rsplit(".", 1)[1]

    def test_unknown_type(self) -> None:
        with pytest.raises(KeyError) as raised:
            event_class("telephony.call.ended.v9")

        assert isinstance(raised.value, UnknownEventType)
        assert "unknown event type 'telephony.call.ended.v9'" in str(raised.value)


class TestEventClass:
    @by_type
    def test_docstring_says_when_it_is_emitted(self, model: type[Event]) -> None:
        doc = model.__doc__ or ""

        assert doc.startswith("Emitted when ")
        assert "\n" not in doc.strip()

    @by_type
    def test_frozen(self, model: type[Event], example: Example) -> None:
        event = model.model_validate(example(model))
        field = next(iter(model.model_fields))

        with pytest.raises(ValidationError, match="frozen"):
            setattr(event, field, getattr(event, field))

    @by_type
    def test_ignores_unknown_fields(self, model: type[Event], example: Example) -> None:
        event = model.model_validate({**example(model), "added_in_a_later_release": [1, 2]})

        assert "added_in_a_later_release" not in event.model_dump()

    @by_type
    def test_round_trips_through_an_envelope(self, model: type[Event], example: Example) -> None:
        event = model.model_validate(example(model))

        received = Envelope.from_json(Envelope.wrap(event, producer="test").to_json())

        assert received.type == model.event_type
        assert received.payload(model) == event

    @by_type
    def test_refuses_a_missing_required_field(self, model: type[Event], example: Example) -> None:
        payload = example(model)
        required = [name for name, field in model.model_fields.items() if field.is_required()]
        del payload[required[0]]

        with pytest.raises(ValidationError, match=required[0]):
            model.model_validate(payload)

    def test_fields_carry_a_description_where_the_name_is_not_enough(self) -> None:
        assert CallEnded.model_fields["duration_s"].description
