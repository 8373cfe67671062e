"""``avlab decode`` end to end: a simulated two-subject BIDS dataset through the command.

Two subjects, three competing-talkers trials each (16 channels at 250 Hz, −10 dB,
gaze on the attended face 70 % of the time), converted with screen geometry. The
command runs as a user would (a subprocess), so exit codes and the one-line errors
are what is tested. Asserted: the outputs exist and agree with each other
(windows.csv against summary.json), accuracy of the linear decoder and of gaze on
data with a known answer, the null control is present, a saved model applies to
the data with identical scores, and bad input gives exit 15/16 with a named field.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avlab.bids.convert import ConvertOptions, convert_sessions
from avlab.sim.config import AudioConfig, EEGConfig, GazeConfig, SimConfig
from avlab.sim.offline import simulate_session


def _avlab(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "avlab", *args], capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, stimuli_cache: Path) -> Path:
    tmp = tmp_path_factory.mktemp("decode-cli")
    folders = []
    for k in (1, 2):
        cfg = SimConfig(seed=k, eeg=EEGConfig(n_channels=16, srate=250.0, snr_db=-10.0),
                        gaze=GazeConfig(look_attended=0.7),
                        audio=AudioConfig(enabled=False))  # fmt: skip
        folders.append(simulate_session(
            "competing-talkers", tmp / "sessions", participant=f"0{k}",
            stimuli_dir=stimuli_cache / "competing-talkers", max_trials=3, config=cfg, seed=k,
        ))  # fmt: skip
    bids = tmp / "bids"
    opts = ConvertOptions(bids_root=bids, screen_size_m=(0.531, 0.299), screen_distance_m=0.65)
    convert_sessions(folders, opts, progress=False)
    return bids


@pytest.fixture(scope="module")
def decoded(root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("decode-cli-out")
    out, models = tmp / "out", tmp / "models"
    res = _avlab("decode", str(root), "--method", "linear,gaze,fusion", "--out", str(out),
                 "--windows", "2,5,10", "--null-shuffles", "2", "--save-model", str(models),
                 "-q")  # fmt: skip
    assert res.returncode == 0, res.stderr
    return out, models


def test_outputs_agree(decoded: tuple[Path, Path]) -> None:
    out, _ = decoded
    for name in ("report.html", "summary.json", "windows.csv"):
        assert (out / name).is_file()
    assert (out / "figures" / "accuracy_vs_window.svg").is_file()
    assert (out / "figures" / "trf.svg").is_file()
    summary = json.loads((out / "summary.json").read_text())
    windows = pd.read_csv(out / "windows.csv")
    real = windows[windows.null_rep < 0]
    assert set(real.method) == {"linear", "gaze", "fusion"}
    assert set(windows[windows.null_rep >= 0].null_rep) == {0, 1}
    for m in summary["methods"]:
        for acc in m["windows"]:
            rows = real[(real.method == m["method"]) & (real.window_s == acc["window_s"])]
            assert acc["n"] == len(rows)
            assert acc["accuracy"] == pytest.approx(rows.correct.mean())
    # 2 subjects x 3 trials of about 33 s: 3 windows of 10 s per trial
    n10 = real[(real.method == "linear") & (real.window_s == 10)]
    assert len(n10) == 18


def test_accuracy_known_answer(decoded: tuple[Path, Path]) -> None:
    out, _ = decoded
    real = pd.read_csv(out / "windows.csv").query("null_rep < 0")
    acc = real.groupby(["method", "window_s"]).correct.mean()
    assert acc["linear", 10.0] >= 0.8, acc  # -10 dB: clearly decodable from 2 training trials
    assert acc["gaze", 10.0] >= 0.8  # 70 % of the time on the attended face
    assert acc["gaze", 2.0] < acc["gaze", 10.0]  # glances hurt short windows more


def test_simulated_gaze_share(root: Path) -> None:
    from avlab.decode.data import load_bids_trials

    data = load_bids_trials(root)
    assert len(data.trials) == 6 and all(t.gaze is not None for t in data.trials)
    share = np.nanmean(np.concatenate([t.gaze for t in data.trials], axis=1), axis=1)
    assert share[0] == pytest.approx(0.7, abs=0.1)  # --look-attended 0.7: time on the face
    assert share[0] + share[1] > 0.9  # the rest is on the other face (blinks excluded)


def test_saved_model_applies(decoded: tuple[Path, Path], root: Path, tmp_path: Path) -> None:
    out, models = decoded
    meta = json.loads((models / "linear" / "model.json").read_text())
    assert meta["metadata"]["ch_names"] and meta["metadata"]["preprocessing"]["sfreq"] == 64.0
    res = _avlab("decode", str(root), "--model", str(models / "linear"), "--out",
                 str(tmp_path / "applied"), "--windows", "5", "-q")  # fmt: skip
    assert res.returncode == 0, res.stderr
    applied = pd.read_csv(tmp_path / "applied" / "windows.csv")
    assert set(applied.fold) == {"applied"} and set(applied.window_s) == {5.0}
    assert len(applied) >= 36  # 6 trials of 32-36 s: 6 or 7 windows each
    # trained on these very trials: near perfect, and no null rows
    assert applied.correct.mean() >= 0.9 and (applied.null_rep < 0).all()


def test_model_mismatch_exit_16(decoded: tuple[Path, Path], root: Path, tmp_path: Path) -> None:
    _, models = decoded
    bad = tmp_path / "bad"
    bad.mkdir()
    meta = json.loads((models / "linear" / "model.json").read_text())
    meta["metadata"]["ch_names"] = list(reversed(meta["metadata"]["ch_names"]))
    (bad / "model.json").write_text(json.dumps(meta))
    (bad / "model.npz").write_bytes((models / "linear" / "model.npz").read_bytes())
    res = _avlab("decode", str(root), "--model", str(bad), "--out", str(tmp_path / "o"))
    assert res.returncode == 16
    assert "channel" in res.stderr and "Traceback" not in res.stderr


def test_not_bids_exit_15(tmp_path: Path) -> None:
    res = _avlab("decode", str(tmp_path), "--out", str(tmp_path / "o"))
    assert res.returncode == 15
    assert str(tmp_path) in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2


def test_bad_method_exit_2(tmp_path: Path) -> None:
    res = _avlab("decode", str(tmp_path), "--out", str(tmp_path / "o"), "--method", "magic")
    assert res.returncode == 2 and "magic" in res.stderr
