"""Field types shared by the event modules, and the base of models nested inside an event."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

PhoneNumber = Annotated[
    str,
    Field(
        pattern=r"^\+[1-9][0-9]{1,14}$",
        description="Phone number in E.164 form, e.g. +14155550123.",
    ),
]
"""A phone number in E.164 form: ``+``, country code, subscriber number, at most 15 digits."""

EmailAddress = Annotated[
    str,
    Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$", description="Email address."),
]
"""An email address, checked for shape only; auth has validated it before it reaches the bus."""

Currency = Annotated[
    str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code, e.g. USD.")
]
"""An ISO 4217 currency code in upper case."""

Money = Annotated[
    int,
    Strict(),
    Field(description="Amount in the smallest unit of the currency (cents for USD)."),
]
"""An amount of money as an integer in the currency's smallest unit; floats and strings refused."""

Seconds = Annotated[int, Field(ge=0)]
"""A non-negative duration in whole seconds."""


class EventPart(BaseModel):
    """Base class of models nested inside an event payload: frozen, tolerant of unknown fields."""

    model_config = ConfigDict(frozen=True, extra="ignore")
