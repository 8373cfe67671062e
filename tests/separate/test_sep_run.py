"""``avlab separate run`` / ``eval`` end to end, as a user runs them (subprocesses).

A simulated two-participant BIDS dataset (3 competing-talkers trials each, 16 EEG
channels at 250 Hz and −10 dB SNR, gaze on the attended face 80 % of the time, a
microphone at each ear) is separated with the shipped non-causal network and
steered by EEG, gaze and truth. Asserted: the tables agree with each other, the
steering accuracies against the known answer, what separation does to the attended
talker (SI-SDRi against the simulator's clean talker channel), and the errors.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avlab.bids.convert import ConvertOptions, convert_sessions
from avlab.sim.config import AudioConfig, EEGConfig, GazeConfig, SimConfig
from avlab.sim.offline import simulate_session

SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech"


def _avlab(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "avlab", *args], capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, stimuli_cache: Path) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("separate-run")
    folders = []
    for k in (1, 2):
        cfg = SimConfig(seed=k, eeg=EEGConfig(n_channels=16, srate=250.0, snr_db=-10.0),
                        gaze=GazeConfig(look_attended=0.8),
                        audio=AudioConfig(mic_channels=2))  # fmt: skip
        folders.append(simulate_session(
            "competing-talkers", tmp / "sessions", participant=f"0{k}",
            stimuli_dir=stimuli_cache / "competing-talkers", max_trials=3, config=cfg, seed=k,
        ))  # fmt: skip
    bids = tmp / "bids"
    opts = ConvertOptions(bids_root=bids, screen_size_m=(0.531, 0.299), screen_distance_m=0.65)
    convert_sessions(folders, opts, progress=False)
    return bids, folders[0]


@pytest.fixture(scope="module")
def steered(dataset: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("separate-out") / "run"
    res = _avlab("separate", "run", str(dataset[0]), "--out", str(out), "--steer",
                 "eeg,gaze,truth", "--windows", "5,10", "--no-pesq", "--score-seconds", "5",
                 "--all-audio", "-q")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "Steering accuracy" in res.stdout
    return out


def test_tables_agree_and_steering_is_right(steered: Path) -> None:
    summary = json.loads((steered / "summary.json").read_text())
    assert summary["n_trials"] == 6 and summary["skipped"] == []
    with open(steered / "windows.csv") as fh:
        rows = list(csv.DictReader(fh))
    for acc in summary["accuracy"]:
        sel = [r for r in rows if float(r["window_s"]) == acc["window_s"]]
        assert acc["n_windows"] == len(sel)
        eeg = np.mean([r["eeg_choice"] == r["truth"] for r in sel])
        assert acc["eeg_steering"] == pytest.approx(eeg)
    ten = next(a for a in summary["accuracy"] if a["window_s"] == 10)
    # trials of about 33 s: 3 windows of 10 s each, 6 trials
    assert ten["n_windows"] == 18
    # the decoder is near perfect at -10 dB; steering on separated talkers follows it
    assert ten["eeg_decoder_clean"] >= 0.9
    assert ten["eeg_steering"] >= 0.8
    # gaze on the attended face 80 % of the time: the majority in a 10-s window
    assert ten["gaze_steering"] >= 0.8
    means = summary["mean_scores"]
    assert set(means) == {"mixture", "steered-eeg", "steered-gaze", "steered-truth"}
    assert means["mixture"]["si_sdri_db"] == pytest.approx(0.0, abs=1e-9)
    assert means["steered-truth"]["si_sdri_db"] >= 6.0
    assert means["steered-truth"]["stoi"] > means["mixture"]["stoi"]
    html = (steered / "report.html").read_text()
    assert "Steering accuracy" in html and "<svg" in html
    audio = sorted(p.name for p in (steered / "audio").iterdir())
    assert len(audio) == 6 * 6  # 3 steered + mixture + 2 talkers per trial
    y, fs = sf.read(steered / "audio" / audio[0])
    assert fs == 16000 and np.abs(y).max() <= 1.0


def test_session_folder_is_converted_first(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "from-session"
    res = _avlab(
        "separate",
        "run",
        str(dataset[1]),
        "--out",
        str(out),
        "--steer",
        "truth",
        "--windows",
        "10",
        "--no-audio",
        "--no-pesq",
        "--score-seconds",
        "3",
        "-q",
    )
    assert res.returncode == 0, res.stderr
    assert (out / "bids" / "dataset_description.json").is_file()
    assert json.loads((out / "summary.json").read_text())["n_trials"] == 3


def _mixture(tmp: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    a, fs = sf.read(SPEECH / "spk1_snt1.wav")
    b, _ = sf.read(SPEECH / "spk2_snt1.wav")
    n = min(a.size, b.size)
    path = tmp / "mix.wav"
    sf.write(path, 0.4 * (a[:n] + b[:n]), fs)
    return path, a[:n], b[:n]


def test_wav_writes_every_talker(tmp_path: Path) -> None:
    path, a, b = _mixture(tmp_path)
    res = _avlab("separate", "run", str(path), "--out", str(tmp_path / "o"))
    assert res.returncode == 0, res.stderr
    out = [sf.read(tmp_path / "o" / f"mix_talker{k}.wav") for k in (1, 2)]
    assert all(fs == 16000 and y.size == a.size for y, fs in out)
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["rtf"] > 0 and len(summary["srmr_talkers"]) == 2


def test_wav_streamed_like_a_hearing_aid(tmp_path: Path) -> None:
    """--stream-ms: block by block through the causal network, the same talkers as offline."""
    path, a, _ = _mixture(tmp_path)
    res = _avlab("separate", "run", str(path), "--out", str(tmp_path / "s"), "--mode", "causal",
                 "--stream-ms", "6")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "streamed in 6-ms blocks (onnx): latency 10 ms" in res.stdout
    st = json.loads((tmp_path / "s" / "summary.json").read_text())["stream"]
    assert st["block_ms"] == 6.0 and st["latency_ms"] == 10.0 and st["engine"] == "onnx"
    assert st["n_blocks"] == -(-a.size // 2 // 48)  # 8 kHz, 48-sample blocks
    assert 0 < st["rtf"] and 0 <= st["deadline_misses"] <= st["n_blocks"]
    res = _avlab("separate", "run", str(path), "--out", str(tmp_path / "w"), "--mode", "causal")
    assert res.returncode == 0, res.stderr
    for k in (1, 2):
        streamed, fs = sf.read(tmp_path / "s" / f"mix_talker{k}.wav")
        whole, _ = sf.read(tmp_path / "w" / f"mix_talker{k}.wav")
        assert fs == 16000 and streamed.size == whole.size == a.size
        # equal up to the input scaling of the whole-signal path (norms' epsilon)
        assert np.corrcoef(streamed, whole)[0, 1] > 0.999
    res = _avlab("separate", "run", str(path), "--out", str(tmp_path / "x"), "--mode", "causal",
                 "--stream-ms", "5")  # fmt: skip
    assert res.returncode == 17 and "not a whole number of the causal network's 2-ms hops" in (
        res.stderr
    )
    res = _avlab("separate", "run", str(path), "--out", str(tmp_path / "x2"), "--mode", "causal",
                 "--stream-ms", "nan")  # fmt: skip
    assert res.returncode == 17 and "--stream-ms must be a positive number of ms" in res.stderr
    res = _avlab("separate", "run", str(path), "--out", str(tmp_path / "y"), "--stream-ms", "6")
    assert res.returncode == 17 and "needs the causal network; --mode is noncausal" in res.stderr
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset_description.json").write_text("{}")
    res = _avlab("separate", "run", str(tmp_path / "ds"), "--out", str(tmp_path / "z"),
                 "--mode", "causal", "--stream-ms", "6")  # fmt: skip
    assert res.returncode == 17 and "streams an audio file; " in res.stderr
    assert "is a BIDS dataset" in res.stderr
    assert "Traceback" not in res.stderr


def test_errors_name_the_problem(tmp_path: Path) -> None:
    path, _, _ = _mixture(tmp_path)
    res = _avlab("separate", "run", str(path), "--out", str(tmp_path / "a"), "--steer", "eeg")
    assert res.returncode == 17 and "needs EEG or gaze" in res.stderr
    res = _avlab("separate", "run", str(tmp_path / "nope.wav"), "--out", str(tmp_path / "b"))
    assert res.returncode == 17 and "does not exist" in res.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    res = _avlab("separate", "run", str(path), "--out", str(tmp_path / "full"))
    assert res.returncode == 5 and "not empty" in res.stderr
    res = _avlab("separate", "run", str(path), "--out", str(tmp_path / "c"), "--steer", "ear")
    assert res.returncode == 2
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    res = _avlab("separate", "run", str(bad), "--out", str(tmp_path / "d"))
    assert res.returncode == 17 and "bad.wav" in res.stderr
    assert "Traceback" not in res.stderr


def test_eval_scores_a_folder(tmp_path: Path) -> None:
    _, a, b = _mixture(tmp_path)
    d = tmp_path / "mixes"
    d.mkdir()
    for i, (x, y) in enumerate([(a, b), (b[::-1], a)], start=1):
        sf.write(d / f"mixture_{i}.wav", 0.4 * (x + y), 16000)
        sf.write(d / f"source1_{i}.wav", 0.4 * x, 16000)
        sf.write(d / f"source2_{i}.wav", 0.4 * y, 16000)
    res = _avlab("separate", "eval", str(d), "--mode", "causal", "-q")
    assert res.returncode == 0, res.stderr
    with open(d / "eval-causal" / "scores.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    assert "SI-SDRi" in res.stdout
