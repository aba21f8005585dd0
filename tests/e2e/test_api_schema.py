"""Schemathesis against the gateway's aggregated OpenAPI document, over real sockets.

Every auth operation is called with generated requests (valid and invalid), anonymously and as a
signed-in owner; each response must be no 5xx, carry a status the document declares, and match
the schema declared for it. The calls run in a worker thread (schemathesis' client is blocking)
while the platform serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import Platform
from .test_journey import sign_up

EXAMPLES_PER_OPERATION = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def exercise(spec: dict[str, Any], base_url: str, token: str) -> list[str]:
    """Call every ``/v1/auth`` operation with generated cases; the failures, one line each."""
    schema = schemathesis.openapi.from_dict(spec)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the document has an invalid operation: {result}"
        if result.ok().path.startswith("/v1/auth"):
            operations.append(result.ok())
    assert operations, "the aggregated document holds no auth operation"
    return [
        failure
        for operation in operations
        for failure in exercise_operation(operation, base_url, token)
    ]


def exercise_operation(
    operation: APIOperation[Any, Any, Any, Any], base_url: str, token: str
) -> list[str]:
    """Generated cases of one operation, anonymously and as the owner; the failures."""
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def call(case: Any) -> None:
        for headers in ({}, {"Authorization": f"Bearer {token}"}):
            response = case.call(base_url=base_url, headers=headers)
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as failure:  # every kind of check failure is kept
                failures.append(f"{operation.label}: {type(failure).__name__}: {failure}")

    call()
    return failures


async def test_auth_routes_through_the_gateway_hold_to_their_documented_contract(
    platform: Platform,
) -> None:
    owner = await sign_up(platform, "fuzz@example.com", "Fuzzing Ltd")
    async with platform.client() as http:
        response = await http.get("/v1/openapi.json")
        assert response.status_code == 200
        spec = response.json()

    failures = await asyncio.to_thread(exercise, spec, platform.gateway, owner.access_token)

    assert failures == []
