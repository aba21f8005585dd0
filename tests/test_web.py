"""The dashboard's own tests (``web/tests``, Node's built-in runner), as part of ``make test``.

Node is not a Python dependency: where it is missing the test is skipped with a message, except
under CI (``CI=true``), where it fails, as a missing server does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[1] / "web"


def test_the_dashboard_modules_pass_their_tests() -> None:
    node = shutil.which("node")
    if node is None:
        message = "node is not installed: the dashboard's tests (web/tests) cannot run"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI requires it)", pytrace=False)
        pytest.skip(message)
    finished = subprocess.run(
        [node, "--test", "tests/"], cwd=WEB, capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stdout[-6000:] + finished.stderr[-2000:]
