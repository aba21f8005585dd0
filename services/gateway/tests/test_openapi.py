"""One OpenAPI document for the public API, merged from the services' own."""

from __future__ import annotations

from typing import Any

from novitrac_gateway.edge import DOCS_CSP

from .conftest import PlatformFactory


def document(title: str, paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "0.1.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"HTTPBearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def operation(ref: str, security: bool = True) -> dict[str, Any]:
    found: dict[str, Any] = {
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": {"$ref": ref}}},
            }
        }
    }
    if security:
        found["security"] = [{"HTTPBearer": []}]
    return found


VALIDATION = {"type": "object", "properties": {"detail": {"type": "array"}}}
AUTH = document(
    "auth",
    {
        "/v1/auth/login": {"post": operation("#/components/schemas/Status", security=False)},
        "/v1/auth/me": {"get": operation("#/components/schemas/Me")},
        "/internal/api-keys/exchange": {"post": operation("#/components/schemas/Me")},
        "/healthz": {"get": operation("#/components/schemas/Me")},
    },
    {
        "Me": {"type": "object", "properties": {"org_id": {"type": "string"}}},
        "Status": {"type": "object", "properties": {"status": {"type": "string"}}},
        "HTTPValidationError": VALIDATION,
    },
)
TELEPHONY = document(
    "telephony",
    {
        "/v1/calls/{call_id}": {
            "get": operation("#/components/schemas/Call"),
            "delete": operation("#/components/schemas/Status"),
        },
        "/v1/auth/forged": {"get": operation("#/components/schemas/Call")},
    },
    {
        "Call": {"type": "object", "properties": {"id": {"type": "string"}}},
        "Status": {"type": "string", "enum": ["queued", "ringing"]},
        "HTTPValidationError": VALIDATION,
    },
)


async def test_two_services_make_one_document(make_platform: PlatformFactory) -> None:
    async with make_platform(openapi={"auth": AUTH, "telephony": TELEPHONY}) as platform:
        merged = (await platform.client.get("/v1/openapi.json")).json()
        docs = await platform.client.get("/docs")

    # Only public /v1 paths, each from the service the gateway routes it to.
    assert sorted(merged["paths"]) == ["/v1/auth/login", "/v1/auth/me", "/v1/calls/{call_id}"]
    schemas = merged["components"]["schemas"]
    # A clash is renamed per service; what is the same everywhere stays as it is.
    assert {"AuthStatus", "TelephonyStatus", "HTTPValidationError", "Me", "Call"} <= set(schemas)
    assert "Status" not in schemas
    login = merged["paths"]["/v1/auth/login"]["post"]
    assert login["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AuthStatus"
    }
    hang_up = merged["paths"]["/v1/calls/{call_id}"]["delete"]
    assert hang_up["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TelephonyStatus"
    }
    # The gateway's credentials and its own answers.
    assert set(merged["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader"}
    assert login["security"] == []
    assert hang_up["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}]
    for status in ("401", "403", "413", "429", "502", "503", "504"):
        assert status in hang_up["responses"]
    assert "401" not in login["responses"]
    assert "429" in login["responses"]
    error = hang_up["responses"]["429"]["content"]["application/json"]["schema"]["$ref"]
    assert error.removeprefix("#/components/schemas/") in schemas
    assert "/v1/ws" in merged["info"]["description"]

    assert docs.status_code == 200
    assert "url: '/v1/openapi.json'" in docs.text, "the gateway's page, on the gathered document"
    assert docs.headers["content-security-policy"] == DOCS_CSP.decode()


async def test_a_service_down_leaves_the_others(make_platform: PlatformFactory) -> None:
    async with make_platform(down=("telephony", "billing"), openapi={"auth": AUTH}) as platform:
        merged = (await platform.client.get("/v1/openapi.json")).json()
    assert sorted(merged["paths"]) == ["/v1/auth/login", "/v1/auth/me"]
