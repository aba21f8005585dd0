"""The workspace shares one virtualenv, so nothing stops one package importing another: these do.

* contracts depend on pydantic and the standard library only;
* the kit never imports a service or the sandbox (it finds them through entry points);
* a service never imports another service or the sandbox: what it needs of another service
  arrives as events or over HTTP;
* the providers' SDKs are imported only by the modules that adapt them.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "src").is_dir())
PROVIDER_SDKS = {"twilio", "elevenlabs", "stripe", "aiosmtplib"}


def package_dir(member: Path) -> Path:
    (package,) = [p for p in (member / "src").iterdir() if p.is_dir() and p.name != "__pycache__"]
    return package


def imported_modules(package: Path) -> Iterator[tuple[Path, str]]:
    """Every absolute module a package's source imports, with the file that imports it."""
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path, node.module


def top_level(module: str) -> str:
    return module.split(".", 1)[0]


def test_contracts_depend_on_pydantic_and_the_standard_library_only() -> None:
    allowed = set(sys.stdlib_module_names) | {"pydantic", "pydantic_core", "novitrac_contracts"}
    package = package_dir(ROOT / "libs" / "contracts")

    foreign = sorted(
        f"{path.relative_to(ROOT)} imports {module}"
        for path, module in imported_modules(package)
        if top_level(module) not in allowed
    )

    assert foreign == []


def test_the_kit_imports_no_service_and_starts_the_sandbox_only_from_its_commands() -> None:
    package = package_dir(ROOT / "libs" / "kit")
    sandbox_starters = {"cli.py", "devmode.py"}

    forbidden = sorted(
        f"{path.relative_to(ROOT)} imports {module}"
        for path, module in imported_modules(package)
        if top_level(module).startswith("novitrac_")
        and top_level(module) not in {"novitrac_kit", "novitrac_contracts"}
        and not (top_level(module) == "novitrac_sandbox" and path.name in sandbox_starters)
    )

    assert forbidden == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service: str) -> None:
    package = package_dir(ROOT / "services" / service)
    own = package.name

    forbidden = sorted(
        f"{path.relative_to(ROOT)} imports {module}"
        for path, module in imported_modules(package)
        if top_level(module).startswith("novitrac_")
        and top_level(module) not in {own, "novitrac_kit", "novitrac_contracts"}
    )

    assert forbidden == []


@pytest.mark.parametrize("service", SERVICES)
def test_provider_sdks_are_imported_by_adapter_modules_only(service: str) -> None:
    package = package_dir(ROOT / "services" / service)

    importers: dict[str, set[str]] = {}
    for path, module in imported_modules(package):
        if top_level(module) in PROVIDER_SDKS:
            importers.setdefault(top_level(module), set()).add(path.name)

    scattered = {sdk: files for sdk, files in importers.items() if len(files) > 1}
    assert scattered == {}, "each provider SDK belongs to one adapter module per service"
