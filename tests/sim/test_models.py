"""Signal models of the simulated lab (no LSL): determinism, TRF, gaze, camera."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avlab.sim import decode_frame_index, render_frame
from avlab.sim.blinks import Blinks
from avlab.sim.config import EEGConfig, SimConfig, TrialConfig
from avlab.sim.eeg import EEGModel
from avlab.sim.gaze import FACE_HALF_PX, FACES, GazeModel
from avlab.sim.schedule import make_schedule
from avlab.sim.speech import SpeechSynth

FS = 250.0
TRIALS = TrialConfig(trial_s=25.0, iti_s=1.0, cue_s=0.5, switch_prob=1.0)


def _world(seed: int, duration: float = 80.0):
    sch = make_schedule(TRIALS, seed=seed, duration_s=duration)
    return sch, SpeechSynth(sch, seed=seed), Blinks(seed=seed)


def _eeg(seed: int, snr_db: float, duration: float = 80.0, no_trf: bool = False, **kw):
    sch, sp, bl = _world(seed, duration)
    cfg = EEGConfig(n_channels=8, srate=FS, snr_db=snr_db, **kw)
    model = EEGModel(cfg, speech=sp, schedule=sch, blinks=bl, seed=seed)
    if no_trf:
        model.trf_gain = 0.0
    tau = np.arange(int(duration * FS)) / FS
    x = np.concatenate([model.block(tau[i : i + 8]) for i in range(0, tau.size, 8)])
    return sch, sp, model, tau, x


def test_models_are_deterministic() -> None:
    a = _eeg(3, 0.0, duration=6.0)[4]
    b = _eeg(3, 0.0, duration=6.0)[4]
    c = _eeg(4, 0.0, duration=6.0)[4]
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    tau = np.arange(4800) / 48000 + 2.0
    assert np.array_equal(_world(3)[1].audio(tau), _world(3)[1].audio(tau))
    g1 = GazeModel(*_world(3)[::2], seed=3).block(np.arange(400) / 200)
    g2 = GazeModel(*_world(3)[::2], seed=3).block(np.arange(400) / 200)
    assert np.array_equal(g1, g2)


def test_audio_envelope_is_trf_input() -> None:
    sch, sp, _ = _world(1)
    tau = np.arange(int(4 * 48000)) / 48000 + 3.0  # inside trial 1
    audio = sp.audio(tau)
    assert audio.dtype == np.float32 and audio.shape == (tau.size, 2)
    for k in range(2):
        env = sp.envelope(k, tau)
        # 20 ms RMS of the audio follows the envelope (carrier RMS = envelope)
        rms = np.sqrt(np.mean(audio[:, k].reshape(-1, 960) ** 2, axis=1))
        env_b = env.reshape(-1, 960).mean(axis=1)
        assert np.corrcoef(rms, env_b)[0, 1] > 0.97
    assert np.all(sp.audio(np.arange(480) / 48000 + 0.1) == 0)  # before the first trial


def _trf_corr(sch, sp, model, tau, x) -> tuple[float, float]:
    """Correlation of the TRF-weighted channel sum with each talker's predicted response."""
    chan = x @ model.trf_pattern
    att = sch.attended(tau)
    env = np.stack([sp.envelope(k, tau) for k in range(2)], axis=1)
    pred = np.stack([np.convolve(env[:, k], model.trf)[: tau.size] for k in range(2)], axis=1)
    ok = att >= 0
    p_att = np.where(att == 0, pred[:, 0], pred[:, 1])[ok]
    p_un = np.where(att == 0, pred[:, 1], pred[:, 0])[ok]
    return np.corrcoef(chan[ok], p_att)[0, 1], np.corrcoef(chan[ok], p_un)[0, 1]


def test_eeg_tracks_attended_talker_and_snr() -> None:
    hi = _trf_corr(*_eeg(2, 0.0, blink_uv=0.0))
    lo = _trf_corr(*_eeg(2, -15.0, blink_uv=0.0))
    assert hi[0] > 0.5 and hi[0] > 2 * hi[1]
    assert lo[0] > lo[1]
    assert hi[0] > 2 * lo[0]


def test_eeg_snr_matches_definition() -> None:
    sch, sp, model, tau, x = _eeg(5, -5.0, blink_uv=0.0)
    background = _eeg(5, -5.0, blink_uv=0.0, no_trf=True)[4]  # same noise, no response
    ok = sch.speech_gate(tau) > 0.5
    bg_p = np.mean(background[ok].astype(float) ** 2)
    resp_p = np.mean((x[ok] - background[ok]).astype(float) ** 2)
    # the response power uses the other seed's calibration: allow 3 dB
    assert abs(10 * np.log10(resp_p / bg_p) - -5.0) < 3.0


def test_gaze_on_attended_face() -> None:
    sch, _, bl = _world(7, 60.0)
    gaze = GazeModel(sch, bl, seed=7)
    tau = np.arange(int(60 * 200)) / 200
    g = np.concatenate([gaze.block(tau[i : i + 8]) for i in range(0, tau.size, 8)])
    assert g.shape == (tau.size, 5)
    att = sch.attended(tau)
    changes = sch.spans[:, 0]
    settled = np.min(np.abs(tau[:, None] - changes[None, :]), axis=1) > 0.35
    for talker in (0, 1):
        m = (att == talker) & settled
        assert m.sum() > 1000
        d = np.abs(g[m, :2] - FACES[talker])
        inside = (d[:, 0] < FACE_HALF_PX[0]) & (d[:, 1] < FACE_HALF_PX[1])
        assert inside.mean() > 0.97
    assert 2.0 < g[:, 2].mean() < 6.0 and set(np.unique(g[:, 4])) <= {0.0, 1.0}
    assert g[:, 4].sum() > 0  # some blinks in a minute


def test_schedule_markers_and_spans() -> None:
    sch = make_schedule(TRIALS, seed=1, duration_s=80.0)
    assert len(sch.trials) == 3
    events = [json.loads(v)["event"] for _, v in sch.markers]
    assert events.count("trial_start") == 3 and events.count("switch") == 3
    times = [t for t, _ in sch.markers]
    assert times == sorted(times)
    spans, markers = sch.to_truth(100.0)
    assert spans[0].t_start == pytest.approx(100.0 + sch.trials[0, 0])


def test_camera_frames_roundtrip() -> None:
    for i in (0, 29, 30 * 3600):
        img = render_frame(i, width=320, height=240)
        assert img.shape == (240, 320, 3) and img.dtype == np.uint8
        assert decode_frame_index(img) == i


def test_config_rejects_fractional_host_offset() -> None:
    with pytest.raises(ValueError, match="whole number"):
        SimConfig(host_offset_s=1.5)
    with pytest.raises(ValueError, match="extra"):
        SimConfig(bogus=1)
