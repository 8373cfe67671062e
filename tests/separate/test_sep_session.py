"""Finding and placing a run's microphone recording (errors name the files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avlab.separate.inference import SeparateError
from avlab.separate.session import _cut, _read_audio, _run_audio

STEM = "sub-01_ses-01"


def _rec(beh: Path, label: str, start: float = 0.5, eff: float | None = None) -> Path:
    beh.mkdir(parents=True, exist_ok=True)
    path = beh / f"{STEM}_task-ct_run-01_recording-{label}_audio.flac"
    sf.write(path, np.full((16000, 2), 0.1), 16000)
    side = {"StartTime": start, "AmplitudeScale": 0.5, "SamplingFrequency": 16000}
    if eff is not None:
        side["SamplingFrequencyEffective"] = eff
    path.with_suffix(".json").write_text(json.dumps(side))
    return path


def test_microphone_and_talkers_are_found(tmp_path: Path) -> None:
    _rec(tmp_path / "beh", "microphone")
    _rec(tmp_path / "beh", "talkers")
    mic, ref = _run_audio(tmp_path, STEM, "ct", "01", None)
    assert ref is not None and mic.start == 0.5
    assert mic.data.max() == pytest.approx(0.2, abs=1e-4)  # AmplitudeScale undone


def test_a_real_microphone_label_is_used_when_it_is_the_only_one(tmp_path: Path) -> None:
    _rec(tmp_path / "beh", "earmic")
    mic, ref = _run_audio(tmp_path, STEM, "ct", "01", None)
    assert ref is None and mic.data.shape == (16000, 2)


def test_two_candidates_need_a_label(tmp_path: Path) -> None:
    _rec(tmp_path / "beh", "lapel")
    _rec(tmp_path / "beh", "room")
    with pytest.raises(SeparateError, match="more than one microphone.*lapel, room"):
        _run_audio(tmp_path, STEM, "ct", "01", None)
    assert _run_audio(tmp_path, STEM, "ct", "01", "room")[0].start == 0.5
    with pytest.raises(SeparateError, match="no microphone recording"):
        _run_audio(tmp_path, STEM, "other", "01", None)


def test_missing_start_time_is_named(tmp_path: Path) -> None:
    path = _rec(tmp_path / "beh", "microphone")
    path.with_suffix(".json").write_text("{}")
    with pytest.raises(SeparateError, match="no StartTime"):
        _read_audio(path)


def test_cut_uses_the_effective_rate(tmp_path: Path) -> None:
    a = _read_audio(_rec(tmp_path / "beh", "microphone", start=0.0, eff=16016.0))
    a.data = np.arange(16000, dtype=float)[:, None] * np.ones((1, 2))
    # 0.5 s on the EEG time line is sample 8008 of a clock running 0.1 % fast (not 8000)
    seg = _cut(a, 0.5, 0.001)
    assert seg[0, 0] == 8008.0 and seg.shape == (16, 2)
    assert np.all(_cut(a, -1.0, 0.5) == 0.0)  # before the recording: zeros
