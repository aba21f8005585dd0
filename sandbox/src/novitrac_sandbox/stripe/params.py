"""Typed reading of decoded request params, refusing what Stripe refuses.

Every failure names the parameter in Stripe's bracket syntax (``line_items[0][quantity]``), the way
Stripe's own errors do.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from novitrac_sandbox.stripe.errors import StripeError, invalid, missing, unknown

ALWAYS_ALLOWED = frozenset({"expand"})


class Params:
    """The params of one request (or one nested object of it).

    Args:
        values: the decoded params.
        allowed: the names this endpoint takes; any other name is refused.
        prefix: where these params sit in the request (``""`` at the top level).
    """

    def __init__(self, values: Any, *, allowed: Iterable[str], prefix: str = "") -> None:
        if not isinstance(values, dict):
            raise invalid(prefix or "body", f"Invalid object: {prefix} must be a hash.")
        self.values: dict[str, Any] = values
        self.prefix = prefix
        names = set(allowed) | (ALWAYS_ALLOWED if not prefix else set())
        for name in values:
            if name not in names:
                raise unknown(self.name(name))

    def name(self, key: str) -> str:
        """The bracket-syntax name of ``key`` in the request."""
        return f"{self.prefix}[{key}]" if self.prefix else key

    def has(self, key: str) -> bool:
        """Whether ``key`` was sent."""
        return key in self.values

    def string(self, key: str, *, required: bool = False) -> str | None:
        """A string param; ``required`` refuses an absent or empty one."""
        value = self.values.get(key)
        if value is None or value == "":
            if required:
                raise missing(self.name(key))
            return None
        if not isinstance(value, str):
            raise invalid(self.name(key), f"Invalid string: {self.name(key)} must be a string.")
        return value

    def need(self, key: str) -> str:
        """A required string param."""
        value = self.string(key, required=True)
        assert value is not None
        return value

    def choice(self, key: str, options: Iterable[str], *, required: bool = False) -> str | None:
        """A string param that must be one of ``options``."""
        value = self.string(key, required=required)
        allowed = list(options)
        if value is not None and value not in allowed:
            raise StripeError(
                400,
                f"Invalid {self.name(key)}: must be one of {', '.join(allowed)}",
                code="parameter_invalid_string",
                param=self.name(key),
            )
        return value

    def integer(
        self, key: str, *, required: bool = False, minimum: int | None = None
    ) -> int | None:
        """An integer param."""
        text = self.string(key, required=required)
        if text is None:
            return None
        try:
            value = int(text)
        except ValueError:
            raise StripeError(
                400,
                f"Invalid integer: {text}",
                code="parameter_invalid_integer",
                param=self.name(key),
            ) from None
        if minimum is not None and value < minimum:
            raise StripeError(
                400,
                f"Invalid {self.name(key)}: must be at least {minimum}",
                code="parameter_invalid_integer",
                param=self.name(key),
            )
        return value

    def decimal(self, key: str, *, required: bool = False) -> Decimal | None:
        """A decimal number param (``unit_amount_decimal``, a meter event's value)."""
        text = self.string(key, required=required)
        if text is None:
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise StripeError(
                400, f"Invalid decimal: {text}", code="parameter_invalid", param=self.name(key)
            ) from None
        if not value.is_finite():
            raise StripeError(
                400, f"Invalid decimal: {text}", code="parameter_invalid", param=self.name(key)
            )
        return value

    def boolean(self, key: str) -> bool | None:
        """A boolean param (``true`` or ``false``)."""
        text = self.string(key)
        if text is None:
            return None
        if text not in ("true", "false"):
            raise StripeError(
                400,
                f"Invalid boolean: {text}",
                code="parameter_invalid",
                param=self.name(key),
            )
        return text == "true"

    def metadata(self, key: str = "metadata") -> dict[str, str] | None:
        """A flat string map (``metadata[k]=v``); an empty value means "unset this key"."""
        value = self.values.get(key)
        if value is None:
            return None
        if value == "":
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise invalid(
                self.name(key), f"Invalid hash: {self.name(key)} must map keys to strings."
            )
        return dict(value)

    def nested(self, key: str, allowed: Iterable[str], *, required: bool = False) -> Params | None:
        """A nested object param (``recurring[interval]``)."""
        value = self.values.get(key)
        if value is None:
            if required:
                raise missing(self.name(key))
            return None
        return Params(value, allowed=allowed, prefix=self.name(key))

    def items(self, key: str, allowed: Iterable[str], *, required: bool = False) -> list[Params]:
        """A list of objects (``line_items[0][price]``)."""
        value = self.values.get(key)
        if value is None or value == []:
            if required:
                raise missing(self.name(key))
            return []
        if not isinstance(value, list):
            raise invalid(self.name(key), f"Invalid array: {self.name(key)} must be an array.")
        names = list(allowed)
        return [
            Params(item, allowed=names, prefix=f"{self.name(key)}[{index}]")
            for index, item in enumerate(value)
        ]

    def strings(self, key: str) -> list[str]:
        """A list of strings (``expand[]``)."""
        value = self.values.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise invalid(self.name(key), f"Invalid array: {self.name(key)} must list strings.")
        return list(value)


def merge_metadata(current: dict[str, str], update: dict[str, str] | None) -> dict[str, str]:
    """Stripe's metadata update: set the given keys, drop the ones set to ``""``, keep the rest."""
    if update is None:
        return current
    if not update:
        return {}
    merged = {**current, **update}
    return {key: value for key, value in merged.items() if value != ""}
