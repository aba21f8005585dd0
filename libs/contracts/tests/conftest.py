"""Valid example payloads for any event, derived from its JSON Schema."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from pydantic import BaseModel

from novitrac_contracts.compatibility import resolve_refs

# A value for each pattern the catalogue uses; a new pattern needs an entry here.
PATTERN_EXAMPLES = {
    r"^\+[1-9][0-9]{1,14}$": "+14155550123",
    r"^[A-Z]{3}$": "USD",
    r"^[0-9]{6}$": "123456",
    r"^[^@\s]+@[^@\s]+$": "ada@example.com",
}

Example = Callable[[type[BaseModel]], dict[str, Any]]


def _value(schema: dict[str, Any]) -> Any:
    if "anyOf" in schema:
        return _value(next(s for s in schema["anyOf"] if s.get("type") != "null"))
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {name: _value(prop) for name, prop in schema.get("properties", {}).items()}
    if kind == "array":
        return [_value(schema["items"])]
    if kind == "boolean":
        return True
    if kind == "integer":
        return max(1, schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1)
    if kind == "string":
        if schema.get("format") == "uuid":
            return str(uuid4())
        if schema.get("format") == "date-time":
            return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat()
        if "pattern" in schema:
            return PATTERN_EXAMPLES[schema["pattern"]]
        return "text"
    raise AssertionError(f"no example for schema {schema}")


@pytest.fixture
def example() -> Example:
    """Build a valid payload, every optional field filled, for a model."""

    def build(model: type[BaseModel]) -> dict[str, Any]:
        payload: dict[str, Any] = _value(resolve_refs(model.model_json_schema()))
        return payload

    return build
