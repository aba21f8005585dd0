"""Schemathesis over a running service's own OpenAPI document: does it answer as documented?

Every operation is called with generated requests, valid and invalid; each answer must be no 5xx,
carry a status, content type and headers the document declares, and match the declared schema.
The client is blocking: call :func:`exercise` in a worker thread while the service serves on the
test's event loop (``await asyncio.to_thread(exercise, url, headers)``).
"""

from __future__ import annotations

from typing import Any

import hypothesis
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
PROBES = frozenset({"/metrics", "/healthz", "/readyz"})


def exercise(url: str, headers: dict[str, str], *, examples: int = 8) -> list[str]:
    """Call every operation of ``{url}/openapi.json`` but the probes; raise at the first failure.

    Args:
        url: the service's base URL.
        headers: sent with every request (a bearer token, or nothing for an anonymous caller).
        examples: generated requests per operation (derandomized, so runs repeat).

    Returns:
        The operations exercised, as ``"METHOD /path"``.
    """
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    exercised = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        if operation.path in PROBES:
            continue

        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=operation.as_strategy())
        def run(case: schemathesis.Case[Any]) -> None:
            response = case.call(base_url=url, headers=headers, timeout=30)
            case.validate_response(response, checks=CHECKS)

        run()
        exercised.append(f"{operation.method.upper()} {operation.path}")
    return exercised
