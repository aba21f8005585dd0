from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from novitrac_contracts import EVENTS, LIVE_SIGNALS
from novitrac_contracts.schemas import (
    current_schemas,
    main,
    render,
    schema_of,
    stale_schemas,
    write_schemas,
)
from novitrac_contracts.telephony import CallEnded


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "schemas"
    write_schemas(directory)
    return directory


class TestCurrentSchemas:
    def test_one_per_event_and_live_signal_and_the_envelope(self) -> None:
        assert set(current_schemas()) == {*EVENTS, *LIVE_SIGNALS, "envelope"}

    def test_event_schema_names_its_type_and_when_it_is_emitted(self) -> None:
        schema = schema_of(CallEnded)

        assert schema["x-event-type"] == "telephony.call.ended.v1"
        assert schema["description"].startswith("Emitted when")
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


class TestRender:
    def test_stable_text(self) -> None:
        text = render({"b": [2, 1], "a": {"é": True}})

        assert text == '{\n  "a": {\n    "é": true\n  },\n  "b": [\n    2,\n    1\n  ]\n}\n'

    def test_same_models_same_bytes(self) -> None:
        assert render(current_schemas()) == render(current_schemas())


class TestWriteAndCheck:
    def test_written_files_are_current(self, schema_dir: Path) -> None:
        files = sorted(path.name for path in schema_dir.iterdir())

        assert files == sorted(f"{name}.json" for name in current_schemas())
        assert stale_schemas(schema_dir) == []
        assert json.loads((schema_dir / "telephony.call.ended.v1.json").read_text()) == schema_of(
            CallEnded
        )

    def test_edited_missing_and_left_over_files_are_stale(self, schema_dir: Path) -> None:
        (schema_dir / "telephony.call.ended.v1.json").write_text("{}\n")
        (schema_dir / "envelope.json").unlink()
        (schema_dir / "telephony.call.vanished.v1.json").write_text("{}\n")

        assert stale_schemas(schema_dir) == [
            "envelope.json",
            "telephony.call.ended.v1.json",
            "telephony.call.vanished.v1.json",
        ]

    def test_write_brings_the_directory_up_to_date(self, schema_dir: Path) -> None:
        (schema_dir / "telephony.call.ended.v1.json").write_text("{}\n")
        (schema_dir / "telephony.call.vanished.v1.json").write_text("{}\n")

        changed = write_schemas(schema_dir)

        assert changed == ["telephony.call.ended.v1.json", "telephony.call.vanished.v1.json"]
        assert not (schema_dir / "telephony.call.vanished.v1.json").exists()
        assert stale_schemas(schema_dir) == []
        assert write_schemas(schema_dir) == []

    def test_missing_directory_is_all_stale(self, tmp_path: Path) -> None:
        assert len(stale_schemas(tmp_path / "absent")) == len(current_schemas())


class TestCommandLine:
    def test_check_fails_on_a_stale_file_and_write_fixes_it(
        self, schema_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (schema_dir / "telephony.call.ended.v1.json").write_text("{}\n")

        assert main(["--check", "--dir", str(schema_dir)]) == 1
        assert "telephony.call.ended.v1.json" in capsys.readouterr().err
        assert main(["--dir", str(schema_dir)]) == 0
        assert main(["--check", "--dir", str(schema_dir)]) == 0

    def test_runs_as_a_module(self, schema_dir: Path) -> None:
        (schema_dir / "envelope.json").unlink()
        command = [sys.executable, "-m", "novitrac_contracts.schemas", "--dir", str(schema_dir)]

        check = subprocess.run([*command, "--check"], capture_output=True, text=True, check=False)
        write = subprocess.run(command, capture_output=True, text=True, check=False)

        assert check.returncode == 1
        assert "run `make contracts`" in check.stderr
        assert write.returncode == 0
        assert "envelope.json" in write.stdout
        assert (schema_dir / "envelope.json").exists()
