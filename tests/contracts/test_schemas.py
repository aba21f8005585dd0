"""The committed event schemas match the models, and no change to a released version breaks it.

The models are compared with every version of the schemas ever committed (so a breaking change is
caught on main, after it landed, as well as before a commit) and with ``HEAD`` or the commit
``NOVITRAC_CONTRACTS_BASE_REF`` names (a CI job on a branch can set it to the target branch).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from novitrac_contracts import EVENTS
from novitrac_contracts.compatibility import BreakingChange, find_catalogue_breaking_changes
from novitrac_contracts.schemas import current_schemas, render, stale_schemas, write_schemas

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = "libs/contracts/schemas"
BASE_REF = os.environ.get("NOVITRAC_CONTRACTS_BASE_REF", "HEAD")
# Event types deliberately retired after every consumer moved to a newer version.
RETIRED: frozenset[str] = frozenset()


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )


def committed_schemas(repo: Path, ref: str, path: str) -> dict[str, Any] | None:
    """The schemas under ``path`` as committed at ``ref``, by name; None without git or the ref."""
    try:
        listing = _git(repo, "ls-tree", "--name-only", f"{ref}:{path}")
    except FileNotFoundError:
        return None
    if listing.returncode != 0:
        if _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode == 0:
            return {}  # the ref exists but has no schemas yet: every schema is new
        return None
    schemas = {}
    for name in listing.stdout.split():
        if name.endswith(".json"):
            shown = _git(repo, "show", f"{ref}:{path}/{name}")
            shown.check_returncode()
            schemas[name.removesuffix(".json")] = json.loads(shown.stdout)
    return schemas


def historical_schemas(repo: Path, path: str) -> list[tuple[str, dict[str, Any]]]:
    """Every distinct version of every schema ever committed under ``path``, as (commit, schemas).

    Commits are grouped so each distinct set of files is read once; empty without git history.
    """
    try:
        commits = _git(repo, "rev-list", "HEAD", "--", path)
    except FileNotFoundError:
        return []
    if commits.returncode != 0:
        return []
    versions: dict[tuple[str, str], tuple[str, Any]] = {}
    for commit in commits.stdout.split():
        listing = _git(repo, "ls-tree", f"{commit}:{path}")
        for line in listing.stdout.splitlines():
            meta, _, name = line.partition("\t")
            blob = meta.split()[2]
            if name.endswith(".json") and (name, blob) not in versions:
                shown = _git(repo, "cat-file", "blob", blob)
                shown.check_returncode()
                versions[(name, blob)] = (commit, json.loads(shown.stdout))
    grouped: dict[str, dict[str, Any]] = {}
    for (name, _), (commit, schema) in versions.items():
        grouped.setdefault(commit, {})[name.removesuffix(".json")] = schema
    return list(grouped.items())


def explain(found: dict[str, list[BreakingChange]]) -> str:
    lines = []
    for name, changes in found.items():
        lines += [f"  {name}: {change}" for change in changes]
        model = EVENTS.get(name)
        if model is not None:
            major = int(name.rsplit(".v", 1)[1])
            lines.append(
                f"    -> leave {model.__name__} ({name}) as it was and add "
                f"{model.__name__}V{major + 1} ({name.rsplit('.v', 1)[0]}.v{major + 1}) beside it"
            )
    return "\n".join(lines)


def test_committed_schemas_match_the_models() -> None:
    stale = stale_schemas(ROOT / SCHEMA_PATH)

    assert not stale, (
        "committed event schemas differ from the models; run `make contracts` and commit "
        f"{SCHEMA_PATH}. Differing files: {', '.join(stale)}"
    )


def test_no_breaking_change_since_the_base_commit() -> None:
    old = committed_schemas(ROOT, BASE_REF, SCHEMA_PATH)
    if old is None:
        pytest.skip(f"git or {BASE_REF} unavailable: nothing to compare the schemas with")

    found = find_catalogue_breaking_changes(old, current_schemas())

    assert not found, (
        f"event contracts changed incompatibly since {BASE_REF}; within a version only optional "
        f"properties may be added. Publish a new version instead:\n{explain(found)}"
    )


def test_no_breaking_change_against_any_committed_version() -> None:
    history = historical_schemas(ROOT, SCHEMA_PATH)
    if not history:
        pytest.skip("no git history of the schemas to compare with")
    current = current_schemas()

    found: dict[str, list[BreakingChange]] = {}
    for _, old in history:
        old = {name: schema for name, schema in old.items() if name not in RETIRED}
        for name, changes in find_catalogue_breaking_changes(old, current).items():
            found.setdefault(name, []).extend(c for c in changes if c not in found.get(name, []))

    assert not found, (
        "event contracts changed incompatibly since a committed version; within a version only "
        f"optional properties may be added. Publish a new version instead:\n{explain(found)}"
    )


class TestAgainstAGitHistory:
    """The same comparison on a throwaway repository whose history we control."""

    @pytest.fixture
    def repo(self, tmp_path: Path) -> Path:
        if _git(tmp_path, "init", "--quiet").returncode != 0:
            pytest.skip("git unavailable")
        return tmp_path

    def commit(self, repo: Path) -> None:
        _git(repo, "add", "--all").check_returncode()
        _git(
            repo,
            "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false",
            "commit", "--quiet", "--message", "schemas",
        ).check_returncode()  # fmt: skip

    def test_unchanged_schemas_pass(self, repo: Path) -> None:
        write_schemas(repo / SCHEMA_PATH)
        self.commit(repo)

        old = committed_schemas(repo, "HEAD", SCHEMA_PATH)

        assert old == current_schemas()
        assert find_catalogue_breaking_changes(old, current_schemas()) == {}

    def test_breaking_changes_since_the_commit_are_found(self, repo: Path) -> None:
        schemas = current_schemas()
        # As if the current model had dropped `price`, and a whole event, since the commit.
        ended = schemas["telephony.call.ended.v1"]
        ended["properties"]["price"] = {"type": "integer"}
        ended["required"].append("price")
        schemas["telephony.call.vanished.v1"] = {"type": "object"}
        (repo / SCHEMA_PATH).mkdir(parents=True)
        for name, schema in schemas.items():
            (repo / SCHEMA_PATH / f"{name}.json").write_text(render(schema))
        self.commit(repo)

        old = committed_schemas(repo, "HEAD", SCHEMA_PATH)
        assert old is not None
        found = find_catalogue_breaking_changes(old, current_schemas())

        assert {name: [str(c) for c in changes] for name, changes in found.items()} == {
            "telephony.call.ended.v1": ["price: property removed"],
            "telephony.call.vanished.v1": [
                "(event): event type telephony.call.vanished.v1 no longer exists"
            ],
        }
        assert "add CallEndedV2 (telephony.call.ended.v2)" in explain(found)

    def test_schemas_new_since_the_commit_are_not_compared(self, repo: Path) -> None:
        (repo / "README").write_text("no schemas yet\n")
        self.commit(repo)

        assert committed_schemas(repo, "HEAD", SCHEMA_PATH) == {}

    def test_a_change_committed_long_ago_is_still_found(self, repo: Path) -> None:
        schemas = current_schemas()
        schemas["telephony.call.ended.v1"]["properties"]["price"] = {"type": "integer"}
        (repo / SCHEMA_PATH).mkdir(parents=True)
        for name, schema in schemas.items():
            (repo / SCHEMA_PATH / f"{name}.json").write_text(render(schema))
        self.commit(repo)
        write_schemas(repo / SCHEMA_PATH)  # the breaking change lands...
        self.commit(repo)
        (repo / "README").write_text("later work\n")  # ...and later commits pile on top
        self.commit(repo)

        history = historical_schemas(repo, SCHEMA_PATH)
        found = [
            str(change)
            for _, old in history
            for changes in find_catalogue_breaking_changes(old, current_schemas()).values()
            for change in changes
        ]

        assert len(history) == 2
        assert found == ["price: property removed"]

    def test_no_commit_yet(self, repo: Path) -> None:
        assert committed_schemas(repo, "HEAD", SCHEMA_PATH) is None

    def test_not_a_repository(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))

        assert committed_schemas(tmp_path, "HEAD", SCHEMA_PATH) is None
