"""No organisation reaches another's objects: every route that takes an id, found in the spec.

The routes come from the gateway's aggregated OpenAPI document, so a route added later is covered
without touching this file, and a route whose id this file cannot supply fails the test until it
is taught one.
"""

from __future__ import annotations

import re
from typing import Any

from novitrac_kit.testing.waiting import eventually

from .conftest import Platform
from .test_journey import PASSWORD, Account, sign_up

METHODS = ("get", "post", "put", "patch", "delete")
PATH_PARAMETER = re.compile(r"{(\w+)}")


def example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A small value valid against ``schema`` (required properties only)."""
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            return example(schema[combinator][0], components)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: example(properties[name], components) for name in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if schema.get("format") == "email":
        return "someone@example.com"
    return "x" * max(1, schema.get("minLength", 1))


def request_body(operation: dict[str, Any], components: dict[str, Any]) -> Any:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    return example(content["application/json"]["schema"], components)


async def organisation_with_one_of_everything(platform: Platform) -> tuple[Account, dict[str, str]]:
    """Organisation A with a member, a pending invitation, an API key and a notification."""
    owner = await sign_up(platform, "owner-a@example.com", "Organisation A")
    async with platform.client(owner.access_token) as http:
        invited = await http.post(
            "/v1/auth/invitations", json={"email": "member-a@example.com", "role": "member"}
        )
        assert invited.status_code == 201, invited.text
        code = await platform.invitation_code_for("member-a@example.com")
        async with platform.client() as anonymous:
            accepted = await anonymous.post(
                "/v1/auth/invitations/accept",
                json={"code": code, "name": "Member A", "password": PASSWORD},
            )
        assert accepted.status_code == 200, accepted.text
        pending = await http.post(
            "/v1/auth/invitations", json={"email": "pending-a@example.com", "role": "admin"}
        )
        assert pending.status_code == 201, pending.text
        key = await http.post("/v1/auth/api-keys", json={"name": "A's key", "scope": "full"})
        assert key.status_code == 201, key.text
        endpoint = await http.post(
            "/v1/webhook-endpoints", json={"url": "https://hooks.example.com/novitrac"}
        )
        assert endpoint.status_code == 201, endpoint.text
        delivery = await http.post(f"/v1/webhook-endpoints/{endpoint.json()['id']}/test")
        assert delivery.status_code == 202, delivery.text

        notifications: list[dict[str, Any]] = []

        async def notified() -> bool:
            feed = await http.get("/v1/notifications")
            assert feed.status_code == 200, feed.text
            notifications[:] = feed.json()["items"]
            return bool(notifications)

        await eventually(notified)
    ids = {
        "user_id": accepted.json()["user_id"],
        "invitation_id": pending.json()["id"],
        "api_key_id": key.json()["id"],
        "notification_id": notifications[0]["id"],
        "endpoint_id": endpoint.json()["id"],
        "delivery_id": delivery.json()["id"],
        "org_id": owner.org_id,
    }
    return owner, ids


async def test_organisation_b_gets_404_for_every_object_of_organisation_a(
    platform: Platform,
) -> None:
    owner_a, ids = await organisation_with_one_of_everything(platform)
    owner_b = await sign_up(platform, "owner-b@example.com", "Organisation B")
    async with platform.client() as http:
        spec = (await http.get("/v1/openapi.json")).json()
    components = spec.get("components", {}).get("schemas", {})

    unknown: list[str] = []
    leaks: list[str] = []
    tried = 0
    async with platform.client(owner_b.access_token) as http:
        for path, item in spec["paths"].items():
            parameters = PATH_PARAMETER.findall(path)
            if not parameters:
                continue
            if missing := [p for p in parameters if p not in ids]:
                unknown.append(f"{path} ({', '.join(missing)})")
                continue
            url = path.format(**ids)
            for method in METHODS:
                if method not in item:
                    continue
                body = request_body(item[method], components)
                response = await http.request(method.upper(), url, json=body)
                tried += 1
                if response.status_code != 404:
                    leaks.append(f"{method.upper()} {path}: {response.status_code}")

    assert unknown == [], "teach this test an id of organisation A for these routes"
    assert leaks == []
    assert tried >= 5  # members (change, remove), invitation, API key, notification

    async with platform.client(owner_a.access_token) as http:
        members = (await http.get("/v1/auth/members")).json()
        assert ids["user_id"] in {m["user_id"] for m in members}
        keys = (await http.get("/v1/auth/api-keys")).json()
        assert any(k["id"] == ids["api_key_id"] and k["revoked_at"] is None for k in keys)
        invitations = (await http.get("/v1/auth/invitations")).json()
        assert ids["invitation_id"] in {i["id"] for i in invitations}
        feed = (await http.get("/v1/notifications")).json()["items"]
        assert any(n["id"] == ids["notification_id"] and n["read_at"] is None for n in feed)
