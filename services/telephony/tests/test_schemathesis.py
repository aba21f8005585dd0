"""Property-based requests from telephony's own OpenAPI document: no 5xx, answers as documented."""

from __future__ import annotations

import asyncio
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

from .conftest import Platform

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 8


def _fuzz(url: str, headers: dict[str, str], examples: int) -> list[str]:
    """Run every operation of the document; returns the operations exercised."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    exercised = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        if operation.path in {"/metrics", "/healthz", "/readyz"}:
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


async def test_the_api_keeps_its_documented_promises(platform: Platform) -> None:
    org = await platform.org(phone_numbers=3)
    agent_id = await platform.agent(org)
    await platform.number(org, agent_id=agent_id)

    exercised = await asyncio.to_thread(_fuzz, platform.url, org.headers, EXAMPLES_PER_OPERATION)
    anonymous = await asyncio.to_thread(_fuzz, platform.url, {}, 2)

    assert {"POST /v1/calls", "GET /v1/calls/{call_id}", "POST /v1/numbers", "POST /v1/sms"} <= set(
        exercised
    )
    assert len(exercised) >= 15
    assert anonymous == exercised
