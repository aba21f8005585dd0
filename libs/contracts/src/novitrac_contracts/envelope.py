"""The envelope every message on the bus travels in, and the base class of event payloads.

The field set follows CloudEvents (``id``, ``type``, ``time``, ``source``) so tracing tools and
people recognise it; ``type`` is also the routing key.
"""

from __future__ import annotations

import builtins
import re
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+\.v[1-9][0-9]*$")
"""``<domain>.<entity>.<past-tense verb>.v<major>``, e.g. ``telephony.call.ended.v1``."""

LIVE_SIGNAL_PATTERN = re.compile(r"^live(\.[a-z][a-z_]*)+$")
"""``live.<entity>.<what>``, e.g. ``live.transcript.line``; live signals carry no version."""


class Event(BaseModel):
    """Base class of every event payload (the envelope's ``data``).

    Subclasses set ``event_type`` and carry a docstring saying when they are emitted. Payloads are
    frozen and ignore fields they do not know, so a producer may add an optional field without
    breaking consumers that have not upgraded.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]


E = TypeVar("E", bound=Event)


class Envelope(BaseModel):
    """One message on the bus: metadata plus the event payload as plain JSON data.

    ``data`` stays a dict here so that the bus can route and dead-letter messages whose payload it
    cannot (or may not) interpret; consumers turn it into the typed event with :meth:`payload`.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: UUID = Field(default_factory=uuid4, description="Unique per message; the dedup key.")
    type: str = Field(description="Event type, also the routing key.")
    occurred_at: AwareDatetime = Field(
        default_factory=lambda: datetime.now(UTC), description="When the fact happened (UTC)."
    )
    producer: str = Field(description="Name of the service that emitted the event.")
    correlation_id: str | None = Field(
        default=None, description="Ties together every message caused by one request or call."
    )
    org_id: UUID | None = Field(
        default=None, description="The organisation the event concerns, when it concerns one."
    )
    data: dict[str, Any] = Field(default_factory=dict, description="The event payload.")

    @field_validator("type")
    @classmethod
    def _type_is_well_formed(cls, value: str) -> str:
        if not (EVENT_TYPE_PATTERN.match(value) or LIVE_SIGNAL_PATTERN.match(value)):
            raise ValueError(f"malformed event type {value!r}")
        return value

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        producer: str,
        org_id: UUID | None = None,
        correlation_id: str | None = None,
    ) -> Self:
        """Put a typed event into a new envelope with a fresh id and the current time.

        Args:
            event: the payload.
            producer: name of the emitting service.
            org_id: the organisation concerned; taken from the event's own ``org_id`` field when
                omitted.
            correlation_id: ties the message to the request or call that caused it.

        Raises:
            ValueError: ``org_id`` differs from the event's own ``org_id``, which would route the
                message to the wrong organisation.
        """
        own_org_id = getattr(event, "org_id", None)
        if isinstance(own_org_id, UUID):
            if org_id is not None and org_id != own_org_id:
                raise ValueError(
                    f"envelope org_id {org_id} differs from the event's org_id {own_org_id}"
                )
            org_id = own_org_id
        return cls(
            type=event.event_type,
            producer=producer,
            org_id=org_id,
            correlation_id=correlation_id,
            data=event.model_dump(mode="json"),
        )

    def payload(self, model: builtins.type[E]) -> E:
        """The typed event in ``data``.

        Args:
            model: the event class the consumer expects; its ``event_type`` must be this
                envelope's ``type``.

        Raises:
            ValueError: ``model`` is the class of another event type.
            pydantic.ValidationError: ``data`` does not fit ``model``.
        """
        if model.event_type != self.type:
            raise ValueError(f"envelope of type {self.type!r} read as {model.event_type!r}")
        return model.model_validate(self.data)

    def to_json(self) -> bytes:
        """The wire form: UTF-8 JSON."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, body: bytes | str) -> Self:
        """Parse the wire form; raises ``pydantic.ValidationError`` on a malformed envelope."""
        return cls.model_validate_json(body)
