"""BIDS → decoding trials (avlab.decode.data), on simulated datasets with known truth.

One subject is simulated offline (16-channel EEG at 250 Hz, -10 dB, seed 1) with two
competing-talkers trials and one attention-switch trial, converted with
``avlab bids convert`` (screen geometry given, so screen gaze is written), and
loaded once. Asserted: trial count, lengths = min(duration) x 64 Hz, sample
alignment, envelopes against the simulator's own TRF input (r >= 0.9 in 1-9 Hz),
the EEG following the attended talker at lag 0 of the simulator's kernel, gaze on
the attended face, switch segmentation, skipped runs, channel intersection and
the errors. Stimuli come from the session-wide ``stimuli_cache`` (built on first
use: about 2 minutes cold, when no other test built them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy import signal

from avlab.bids.convert import ConvertOptions, convert_sessions
from avlab.decode.base import DecodeError
from avlab.decode.config import Preprocessing
from avlab.decode.data import DecodeData, load_bids_trials
from avlab.sim.config import AudioConfig, EEGConfig, SimConfig
from avlab.sim.eeg import trf_kernel
from avlab.sim.offline import simulate_session

SFREQ = 64.0
CT, AS = "competingtalkers", "attentionswitch"
EEG_DIR = Path("sub-01") / "ses-01" / "eeg"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, stimuli_cache: Path) -> Path:
    """sub-01: 2 competing-talkers trials and 1 attention-switch trial, as BIDS."""
    tmp = tmp_path_factory.mktemp("decode-data")
    cfg = SimConfig(seed=1, eeg=EEGConfig(n_channels=16, srate=250.0, snr_db=-10.0),
                    audio=AudioConfig(enabled=False))  # fmt: skip
    folders = [
        simulate_session(
            protocol,
            tmp / "sessions",
            stimuli_dir=stimuli_cache / protocol,
            max_trials=n,
            config=cfg,
            seed=1,
        )  # fmt: skip
        for protocol, n in (("competing-talkers", 2), ("attention-switch", 1))
    ]
    bids = tmp / "bids"
    opts = ConvertOptions(bids_root=bids, screen_size_m=(0.531, 0.299), screen_distance_m=0.65)
    convert_sessions(folders, opts, progress=False)
    return bids


@pytest.fixture(scope="module")
def data(root: Path) -> DecodeData:
    return load_bids_trials(root)


def _events(root: Path, task: str) -> pd.DataFrame:
    path = root / EEG_DIR / f"sub-01_ses-01_task-{task}_run-01_events.tsv"
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)


def _of(data: DecodeData, task: str) -> list:
    return [t for t in data.trials if t.extra["task"] == task]


def _sim_envelope(wav: Path) -> tuple[np.ndarray, float]:
    """The simulator's TRF input (avlab.sim.participant.Paradigm): |hilbert| at 48 kHz,
    30 Hz low-pass, linear, sampled at 1 kHz."""
    x, fs = sf.read(wav, dtype="float64", always_2d=True)
    env = np.abs(signal.hilbert(x.mean(axis=1)))
    env = signal.sosfiltfilt(signal.butter(4, 30.0, fs=fs, output="sos"), env)
    return env[:: int(fs) // 1000], 1000.0


def _band(x: np.ndarray) -> np.ndarray:
    pad = np.zeros(int(4 * SFREQ))  # silence around, as the EEG heard it
    y = mne.filter.filter_data(np.r_[pad, x, pad], SFREQ, 1.0, 9.0, verbose="ERROR")
    return y[pad.size : pad.size + x.size]


def _response_r(eeg: np.ndarray, env: np.ndarray, lag: int) -> float:
    """Mean |r| over channels between the EEG and the simulator's kernel response, shifted."""
    _, h = trf_kernel(SFREQ)
    pred = np.roll(np.convolve(env, h)[: env.size], lag)[8:-8]
    return float(np.mean([abs(np.corrcoef(ch[8:-8], pred)[0, 1]) for ch in eeg]))


def test_trials_lengths_and_records(root: Path, data: DecodeData) -> None:
    ct = _of(data, CT)
    assert [(t.trial, t.segment) for t in ct] == [(1, 0), (2, 0)]
    assert data.skipped == [] and data.subjects == ["01"]
    ev = _events(root, CT)
    for t in ct:
        rows = ev[(ev.trial_type == "speech") & (ev.trial == t.trial)]
        assert abs(t.n_times - rows.duration.min() * SFREQ) <= 1  # both talkers speak
        assert t.onset_s == round(rows.onset.iloc[0] * SFREQ) / SFREQ
        target = rows[rows.role == "target"].iloc[0]
        assert (t.talkers[0], t.stim_files[0]) == (target.talker, target.stim_file)
        assert t.group == "+".join(sorted(rows.stim_file))
        assert t.eeg.shape == (16, t.n_times) and t.envelopes.shape == (2, t.n_times)
        assert t.eeg.flags.c_contiguous and t.sfreq == SFREQ and t.ch_names == data.ch_names
        assert np.abs(t.eeg.mean(axis=1)).max() < 1e-12 * np.abs(t.eeg).max()
        assert 1e-7 < t.eeg.std() < 1e-3  # volts
    assert len(data.ch_names) == 16 and "Fz" in data.ch_names
    info = data.infos["01"]
    assert info["ch_names"] == data.ch_names and info["sfreq"] == SFREQ
    pos = np.array([ch["loc"][:3] for ch in info["chs"]])
    assert np.all(np.isfinite(pos)) and np.all(np.linalg.norm(pos, axis=1) > 0.01)  # topomaps


def test_envelopes_match_simulator_input(root: Path, data: DecodeData) -> None:
    ev = _events(root, CT)
    for t in _of(data, CT):
        rows = ev[(ev.trial_type == "speech") & (ev.trial == t.trial)]
        for k in range(2):
            onset = float(rows[rows.stim_file == t.stim_files[k]].onset.iloc[0])
            fine, rate = _sim_envelope(root / "stimuli" / t.stim_files[k])
            tau = t.onset_s - onset + np.arange(t.n_times) / SFREQ  # stimulus time per sample
            truth = _band(np.interp(tau, np.arange(fine.size) / rate, fine))
            r = [np.corrcoef(np.roll(t.envelopes[k], lag)[4:-4], truth[4:-4])[0, 1]
                 for lag in (-1, 0, 1)]  # fmt: skip
            assert r[1] >= 0.9, r  # 0.94 (design note: 0.945)
            assert r[1] > max(r[0], r[2]) + 0.03  # aligned to the sample


def test_eeg_follows_attended_talker_at_lag_zero(data: DecodeData) -> None:
    for t in _of(data, CT):
        r_att = {lag: _response_r(t.eeg, t.envelopes[0], lag) for lag in (-2, -1, 0, 1, 2)}
        assert max(r_att, key=r_att.get) == 0, r_att
        assert r_att[0] > 0.4  # 0.50-0.56
        assert _response_r(t.eeg, t.envelopes[1], 0) < 0.5 * r_att[0]  # 0.12-0.18


def test_gaze_on_attended_face(data: DecodeData) -> None:
    for t in data.trials:
        assert t.gaze is not None and t.gaze.shape == (2, t.n_times)
        ok = np.isfinite(t.gaze)
        assert np.all(ok[0] == ok[1]) and 0.8 < ok[0].mean() < 1.0  # blinks are NaN
        assert np.all((t.gaze[ok] >= 0) & (t.gaze[ok] <= 1))
        assert np.nanmean(t.gaze[0]) > 0.95 and np.nanmean(t.gaze[1]) < 0.02


def test_attention_switch_segments(root: Path, data: DecodeData) -> None:
    seg = _of(data, AS)
    assert [(t.trial, t.segment) for t in seg] == [(1, 0), (1, 1)]
    a, b = seg
    ev = _events(root, AS)
    rows = ev[(ev.trial_type == "speech") & (ev.trial == 1)]
    switch = float(ev[ev.trial_type == "switch"].onset.iloc[0])
    assert a.group == b.group and a.talkers == b.talkers[::-1]
    assert a.talkers[0] == rows[rows.role == "target"].talker.iloc[0]
    assert b.talkers[0] == ev[ev.trial_type == "switch"].attended_talker.iloc[0]
    assert a.onset_s + a.duration_s == round(switch * SFREQ) / SFREQ
    assert b.onset_s - (a.onset_s + a.duration_s) == 16 / SFREQ  # 0.25 s dropped
    n_total = int(np.floor(rows.duration.min() * SFREQ + 1e-6))
    assert a.n_times + b.n_times == n_total - 16
    for t in seg:  # EEG and gaze follow the attended talker of each segment
        assert _response_r(t.eeg, t.envelopes[0], 0) > 2 * _response_r(t.eeg, t.envelopes[1], 0)
        assert np.nanmean(t.gaze[0]) > 0.95
    # no guard: the segments tile the trial; the envelopes are the same samples
    whole = load_bids_trials(root, task=AS, switch_guard_s=0.0)
    a0, b0 = whole.trials
    assert a0.n_times + b0.n_times == n_total
    np.testing.assert_array_equal(b0.envelopes[:, 16:], b.envelopes)
    np.testing.assert_array_equal(a0.envelopes, a.envelopes)


def _copy(root: Path, dst: Path, tasks: tuple[str, ...] = (CT,)) -> Path:
    """A light copy of the dataset (runs of ``tasks``; stimuli linked, not copied)."""
    for f in root.iterdir():
        if f.is_file():
            shutil.copy(f, dst / f.name)
    (dst / "stimuli").symlink_to(root / "stimuli", target_is_directory=True)
    (dst / EEG_DIR).mkdir(parents=True)
    for f in (root / EEG_DIR).iterdir():
        if "_task-" not in f.name or any(f"_task-{t}_" in f.name for t in tasks):
            shutil.copy(f, dst / EEG_DIR / f.name)
    return dst


def test_selection_progress_and_skips(root: Path, tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    ct = load_bids_trials(root, subjects=["sub-01"], task=CT, progress=lambda *a: calls.append(a))
    assert {t.extra["task"] for t in ct.trials} == {CT} and calls == [("load", 1, 1)]
    # a run with one talker per trial (speech in noise) is skipped, with the reason;
    # a run without screen gaze gets no gaze
    dst = _copy(root, tmp_path)
    d = dst / EEG_DIR
    for f in list(d.glob(f"*task-{CT}_*")):
        shutil.copy(f, d / f.name.replace(f"task-{CT}", "task-sin"))
    ev = pd.read_csv(d / "sub-01_ses-01_task-sin_run-01_events.tsv", sep="\t", dtype=str)
    ev[ev.role != "masker"].to_csv(d / "sub-01_ses-01_task-sin_run-01_events.tsv", sep="\t",
                                   index=False)  # fmt: skip
    for f in d.glob(f"*task-{CT}_*eye1screen*"):
        f.unlink()
    out = load_bids_trials(dst)
    assert [(t.extra["task"], t.trial) for t in out.trials] == [(CT, 1), (CT, 2)]
    assert all(t.gaze is None for t in out.trials)
    (skip,) = out.skipped
    assert skip.path == f"{EEG_DIR.as_posix()}/sub-01_ses-01_task-sin_run-01_events.tsv"
    assert skip.trial is None and "need one target and one masker" in skip.reason
    assert str(skip).startswith(f"{skip.path}: no two-talker trial (1 speech row(s)")


def test_channel_sets_are_intersected(root: Path, data: DecodeData, tmp_path: Path) -> None:
    dst = _copy(root, tmp_path, (CT, AS))
    chans = dst / EEG_DIR / f"sub-01_ses-01_task-{CT}_run-01_channels.tsv"
    tab = pd.read_csv(chans, sep="\t", dtype=str, keep_default_na=False)
    tab.loc[tab.name == "Fz", "status"] = "bad"
    tab.to_csv(chans, sep="\t", index=False)
    out = load_bids_trials(dst)
    assert out.ch_names == [c for c in data.ch_names if c != "Fz"]
    assert out.dropped_channels == {"01": ["Fz"]}
    assert out.infos["01"]["ch_names"] == out.ch_names
    assert all(t.eeg.shape[0] == 15 and t.ch_names == out.ch_names for t in out.trials)
    # the attention-switch run lost Fz only by the intersection: same rows as before
    i = data.ch_names.index("Cz")
    before = _of(data, AS)[0].eeg[i]
    after = _of(out, AS)[0].eeg[out.ch_names.index("Cz")]
    np.testing.assert_array_equal(before, after)


def test_errors(root: Path, tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="is not a BIDS dataset"):
        load_bids_trials(tmp_path)
    with pytest.raises(DecodeError, match=r"subject\(s\) 99 not in .* \(has: 01\)"):
        load_bids_trials(root, subjects=["99"])
    with pytest.raises(DecodeError, match=r"no EEG run .* for task 'nothing'"):
        load_bids_trials(root, task="nothing")
    with pytest.raises(DecodeError, match=r"reference channel\(s\) M1 not among"):
        load_bids_trials(root, task=CT, preprocessing=Preprocessing(reference=["M1"]))
    (tmp_path / "missing").mkdir()
    dst = _copy(root, tmp_path / "missing")
    events = dst / EEG_DIR / f"sub-01_ses-01_task-{CT}_run-01_events.tsv"
    ev = pd.read_csv(events, sep="\t", dtype=str, keep_default_na=False)
    ev.loc[ev.role == "masker", "stim_file"] = "competing-talkers/missing.wav"
    ev.to_csv(events, sep="\t", index=False)
    with pytest.raises(DecodeError, match=r"trial 1: stim_file 'competing-talkers/missing.wav'"):
        load_bids_trials(dst)
