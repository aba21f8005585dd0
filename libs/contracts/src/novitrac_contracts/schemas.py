"""The JSON Schema of every event, committed under ``libs/contracts/schemas/``.

``python -m novitrac_contracts.schemas`` rewrites the files from the models (what ``make contracts``
runs); with ``--check`` it changes nothing and exits 1 when a file is missing, stale or left over.
One file per event type (``telephony.call.ended.v1.json``) plus ``envelope.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from novitrac_contracts.catalogue import EVENTS, LIVE_SIGNALS
from novitrac_contracts.envelope import Envelope, Event

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
"""``libs/contracts/schemas`` in a source checkout."""

ENVELOPE_SCHEMA_NAME = "envelope"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a model as it is committed.

    Args:
        model: an event class or the envelope.

    Returns:
        pydantic's validation schema with the dialect and, for an event, its type string
        (``x-event-type``).
    """
    schema: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT}
    if issubclass(model, Event):
        schema["x-event-type"] = model.event_type
    schema.update(model.model_json_schema())
    return schema


def current_schemas() -> dict[str, dict[str, Any]]:
    """The schema of the envelope and of every event and live signal, by name (the type string)."""
    schemas = {ENVELOPE_SCHEMA_NAME: schema_of(Envelope)}
    for event_type, model in sorted({**EVENTS, **LIVE_SIGNALS}.items()):
        schemas[event_type] = schema_of(model)
    return schemas


def render(schema: Any) -> str:
    """The committed text of a schema: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _expected_files() -> dict[str, str]:
    return {f"{name}.json": render(schema) for name, schema in current_schemas().items()}


def stale_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of the files in ``directory`` that differ from the models.

    Args:
        directory: where the schemas are committed.

    Returns:
        Sorted file names that are missing, out of date, or belong to no event any more.
    """
    expected = _expected_files()
    present = {path.name for path in directory.glob("*.json")} if directory.is_dir() else set()
    stale = {
        name
        for name, text in expected.items()
        if name not in present or (directory / name).read_text(encoding="utf-8") != text
    }
    return sorted(stale | (present - expected.keys()))


def write_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Make ``directory`` hold exactly the current schemas.

    Args:
        directory: where the schemas are committed; created when missing.

    Returns:
        Sorted names of the files written or deleted.
    """
    changed = stale_schemas(directory)
    expected = _expected_files()
    directory.mkdir(parents=True, exist_ok=True)
    for name in changed:
        path = directory / name
        if name in expected:
            path.write_text(expected[name], encoding="utf-8")
        else:
            path.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m novitrac_contracts.schemas",
        description="Regenerate the committed JSON Schemas of the Novitrac events.",
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if any file is stale"
    )
    parser.add_argument(
        "--dir", type=Path, default=SCHEMA_DIR, help=f"schema directory (default: {SCHEMA_DIR})"
    )
    args = parser.parse_args(argv)
    directory: Path = args.dir
    if args.check:
        stale = stale_schemas(directory)
        for name in stale:
            sys.stderr.write(f"stale: {directory / name}\n")
        if stale:
            sys.stderr.write("event schemas differ from the models: run `make contracts`\n")
            return 1
        return 0
    for name in write_schemas(directory):
        sys.stdout.write(f"updated: {directory / name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
