"""The CLI as a user meets it: help, version, and errors as one red line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import avlab

AVLAB = [sys.executable, "-m", "avlab"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AVLAB, *args], capture_output=True, text=True, timeout=60)


def test_version_and_help() -> None:
    res = run("--version")
    assert res.returncode == 0
    assert res.stdout.strip() == f"avlab {avlab.__version__}"
    res = run("--help")
    assert res.returncode == 0
    for command in ("sim", "record", "recover", "inspect", "devices", "import-xdf", "demo"):
        assert command in res.stdout


def test_missing_session_is_one_line_with_fix(tmp_path: Path) -> None:
    res = run("inspect", str(tmp_path / "nope"))
    assert res.returncode == 6
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    assert str(tmp_path / "nope") in lines[0]
    assert "Fix:" in lines[0]
    assert "Traceback" not in res.stderr


def test_record_into_missing_directory(tmp_path: Path) -> None:
    res = run("record", str(tmp_path / "missing"), "--duration", "1")
    assert res.returncode == 5
    assert "does not exist" in res.stderr
    assert "Traceback" not in res.stderr


def test_unknown_command_is_a_usage_error() -> None:
    res = run("bogus")
    assert res.returncode == 2
