"""The container files stay in step with the workspace (no Docker engine here to build them)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from novitrac_kit.service import Service, discover

ROOT = Path(__file__).resolve().parents[1]
SERVICES = list(discover().values())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services: dict[str, Any] = loaded["services"]
    return services


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_service_runs_from_its_own_image(compose: dict[str, Any], service: Service) -> None:
    container = compose[service.name]

    assert container["command"] == ["run", service.name]
    assert container["build"]["args"]["PACKAGE"] == f"novitrac-{service.name}"
    assert f"{service.port}:{service.port}" in container["ports"]
    assert {"NOVITRAC_DATABASE_URL", "NOVITRAC_AMQP_URL", "NOVITRAC_INTERNAL_TOKEN"} <= set(
        container["environment"]
    )


@pytest.mark.parametrize("service", [s for s in SERVICES if s.database], ids=lambda s: s.name)
def test_a_service_with_a_schema_starts_after_its_migration(
    compose: dict[str, Any], service: Service
) -> None:
    migration = compose[f"{service.name}-migrate"]

    assert migration["command"] == ["migrate", service.name]
    assert migration["image"] == compose[service.name]["image"]
    assert compose[service.name]["depends_on"][f"{service.name}-migrate"] == {
        "condition": "service_completed_successfully"
    }


def test_the_image_build_copies_every_workspace_member() -> None:
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    dockerfile = (ROOT / "Dockerfile").read_text()

    missing = [
        member
        for member in workspace["members"]
        if f"COPY {member}/pyproject.toml {member}/" not in dockerfile
    ]

    assert missing == [], "uv sync in the image needs every member's pyproject.toml"
