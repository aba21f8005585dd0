"""Log calls never name a field the standard library keeps for itself.

``logger.info("...", extra={"created": 3})`` raises ``KeyError`` ("Attempt to overwrite 'created'
in LogRecord") the moment the record is made, which only happens when that level is enabled: a
request can work in tests that log at WARNING and fail with a 500 in production at INFO. Every
``extra`` written as a dict literal in our sources is checked here.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    path
    for folder in ("libs", "services", "sandbox")
    for path in (ROOT / folder).rglob("src/**/*.py")
)
RESERVED = frozenset(vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def reserved_fields(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                found += [
                    f"{path.relative_to(ROOT)}:{key.lineno} {key.value!r}"
                    for key in keyword.value.keys
                    if isinstance(key, ast.Constant) and key.value in RESERVED
                ]
    return found


def test_no_log_call_overwrites_a_record_attribute() -> None:
    assert len(SOURCES) > 100, "the sources were not found"
    assert [field for path in SOURCES for field in reserved_fields(path)] == []
