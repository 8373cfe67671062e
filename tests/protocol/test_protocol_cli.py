"""``avlab protocol`` commands: output and exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import avlab.cli.protocol  # noqa: F401  (registers the sub-app)
from avlab.cli import app, main

runner = CliRunner()


def test_validate_ok() -> None:
    res = runner.invoke(app, ["protocol", "validate", "competing-talkers", "conversation"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("OK competing-talkers: 8 trials, ~")
    assert lines[1].startswith("OK conversation: 4 trials, ~")


def test_validate_bad_exits_8_with_one_line_per_issue(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "protocol:\n  name: bad\nblocks:\n  - id: b\n    trials:\n"
        "      - kind: conversation\n        duraton_s: 60\n"
    )
    res = runner.invoke(app, ["protocol", "validate", str(bad), "conversation"])
    assert res.exit_code == 8
    lines = res.output.splitlines()
    assert lines[0] == (
        f"{bad}:7: blocks[0].trials[0].duraton_s: unknown key 'duraton_s' "
        "(did you mean 'duration_s'?). Fix: rename it to 'duration_s'"
    )
    assert lines[1].startswith("OK conversation")
    res = runner.invoke(app, ["protocol", "validate", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 8
    assert "does not exist" in res.output


def test_show_table_and_json() -> None:
    res = runner.invoke(
        app, ["protocol", "show", "competing-talkers", "--participant", "sub-02", "-s", "01"]
    )
    assert res.exit_code == 0, res.output
    assert "sub-02 session 01" in res.output and "group 1" in res.output
    assert "amy:right" in res.output and "ben:left" in res.output
    res = runner.invoke(app, ["protocol", "show", "av-speech-in-noise", "--json"])
    plan = json.loads(res.output)
    assert len(plan["trials"]) == 32 and plan["participant"] == "sub-01"


def test_schema_and_list(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    res = runner.invoke(app, ["protocol", "schema", "--out", str(out)])
    assert res.exit_code == 0
    assert json.loads(out.read_text())["title"] == "avlab protocol"
    res = runner.invoke(app, ["protocol", "list"])
    for name in ("competing-talkers", "attention-switch", "av-speech-in-noise", "conversation"):
        assert name in res.output


def test_unknown_protocol_is_one_red_line_exit_8(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["avlab", "protocol", "show", "nope"])
    with pytest.raises(SystemExit) as exc_info:
        main()
    assert exc_info.value.code == 8
    err = capsys.readouterr().err
    assert "unknown protocol 'nope'; available:" in err and "Fix:" in err
