"""``avlab stimuli build`` and ``avlab stimuli verify`` as a user runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from avlab.stimuli import StimulusSet

# Registers the stimuli commands even before avlab.cli.commands imports them.
CLI = [sys.executable, "-c", "import avlab.cli.stimuli; from avlab.cli import main; main()"]
SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech"

PROTOCOL = """\
protocol:
  name: tiny-stim
talkers:
  - id: amy
    voice: {engine: espeak-ng, name: en-us+f3}
    face: warm
    side: left
    utterances:
      - {id: u1, text: one two three four five six}
  - id: ben
    voice: {engine: flite, name: kal}
    side: right
    utterances:
      - {id: u2, file: speech/spk1_snt2.wav}
blocks:
  - id: b1
    trials:
      - talkers: [{talker: amy, say: u1}, {talker: ben, say: u2}]
        attend: amy
"""


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_build_then_verify(tmp_path: Path) -> None:
    proto_dir = tmp_path / "protocols"
    (proto_dir / "speech").mkdir(parents=True)
    shutil.copy(SPEECH / "spk1_snt2.wav", proto_dir / "speech")
    (proto_dir / "tiny-stim.yaml").write_text(PROTOCOL)
    res = run("stimuli", "build", "tiny-stim", "--jobs", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "stimuli" / "tiny-stim"  # default: ./stimuli/<protocol name>
    assert "amy-u1" in res.stdout and "ben-u2" in res.stdout
    stimuli = StimulusSet.load(out)
    assert stimuli.ids == ["amy-u1", "ben-u2"]
    assert stimuli.get("amy-u1").video is not None  # attended talkers are shown
    assert stimuli.get("ben-u2").source == str(proto_dir / "speech" / "spk1_snt2.wav")
    res = run("stimuli", "verify", str(out), cwd=tmp_path)
    assert res.returncode == 0 and "ok: 2 stimuli and 3 noises" in res.stdout, res.stdout
    (out / "amy-u1.wav").write_bytes(b"RIFF")
    res = run("stimuli", "verify", str(out), cwd=tmp_path)
    assert res.returncode == 6
    assert f"{out / 'amy-u1.wav'}: SHA-256 mismatch" in res.stdout
    assert "1 file(s)" in res.stderr and "Fix:" in res.stderr
    res = run("stimuli", "build", "protocols/tiny-stim.yaml", "--out", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert StimulusSet.load(out).verify() == []


def test_unknown_voice_is_reported(tmp_path: Path) -> None:
    # The protocol check catches it first (file:line: field); no traceback, no output.
    bad = PROTOCOL.replace("name: kal", "name: nosuch")
    (tmp_path / "bad.yaml").write_text(bad.replace("file: speech/spk1_snt2.wav", "text: hi"))
    res = run("stimuli", "build", str(tmp_path / "bad.yaml"), cwd=tmp_path)
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("error: "), res.stderr
    assert "bad.yaml:11: talkers[1].voice.name" in res.stderr and "nosuch" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "stimuli").exists()
