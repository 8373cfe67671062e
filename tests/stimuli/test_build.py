"""Speech from every engine, loudness, talker videos and noise of a built set."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import butter, sosfiltfilt, welch

from avlab.stimuli import LEAD_S, StimulusSet, measure_loudness
from avlab.stimuli.tts import TRIM_MARGIN_S

N_WORDS = 14  # words in conftest.TEXT


@pytest.mark.parametrize(
    ("stim_id", "wpm_low", "wpm_high"),
    [("amy-u1", 120, 220), ("ben-u1", 110, 210), ("cal-u1", 110, 220)],
)
def test_engine_speech_has_plausible_duration(
    built: StimulusSet, stim_id: str, wpm_low: float, wpm_high: float
) -> None:
    s = built.get(stim_id)
    audio, srate = sf.read(s.wav, dtype="float64")
    assert srate == 48000 and s.srate == 48000 and audio.ndim == 1
    assert len(audio) == s.n_samples
    assert s.duration_s == pytest.approx(len(audio) / 48000, abs=1e-6)
    speech_s = s.duration_s - 2 * TRIM_MARGIN_S
    wpm = N_WORDS / speech_s * 60
    assert wpm_low < wpm < wpm_high, f"{stim_id}: {s.duration_s:.2f} s, {wpm:.0f} wpm"
    # trimmed: exactly the margin of silence, then sound
    margin = int(TRIM_MARGIN_S * srate)
    hop = srate // 100
    assert np.max(np.abs(audio[: margin - hop])) < 0.01
    assert np.sqrt(np.mean(audio[margin : margin + 10 * hop] ** 2)) > 0.003
    assert s.engine_version not in ("", "unknown")


def test_voices_differ(built: StimulusSet) -> None:
    # Same text, different engines/voices: different durations and spectra.
    durs = [built.get(i).duration_s for i in ("amy-u1", "ben-u1", "cal-u1")]
    assert len({round(d, 2) for d in durs}) == 3
    cents = []
    for i in ("amy-u1", "ben-u1", "cal-u1"):
        x, sr = sf.read(built.get(i).wav)
        f, p = welch(x, fs=sr, nperseg=4096)
        cents.append(float(np.sum(f * p) / np.sum(p)))
    assert max(cents) - min(cents) > 100, cents


def test_recorded_file_is_resampled_not_trimmed(built: StimulusSet) -> None:
    s = built.get("rec-s1")
    assert s.engine_version.startswith("soundfile")
    assert s.source is not None and s.source.endswith("spk1_snt1.wav")
    assert s.duration_s == pytest.approx(2.87, abs=0.001)  # 16-kHz original, same length
    assert s.video is None and s.n_frames is None


def test_loudness_within_half_lu_of_target(built: StimulusSet) -> None:
    meter = pyloudnorm.Meter(48000)
    for s in built.stimuli:
        x, sr = sf.read(s.wav, dtype="float64")
        if s.loudness.method == "bs1770":
            measured = meter.integrated_loudness(x)
        else:
            measured, _ = measure_loudness(x, sr)
        assert abs(measured + 23.0) < 0.5, (s.stim_id, measured)
        assert abs(s.lufs + 23.0) < 0.5
        assert s.gain_db == pytest.approx(s.lufs - s.loudness.lufs_before, abs=0.05)
        assert s.loudness.limited_db == 0.0 and s.loudness.true_peak_dbfs < -1.0
    for kind in ("speech-shaped", "babble", "white"):
        x, sr = sf.read(built.noise(kind), dtype="float64")
        assert len(x) == 60 * 48000
        assert abs(meter.integrated_loudness(x) + 23.0) < 0.5, kind


def test_short_clip_falls_back_to_kweighted_rms(built: StimulusSet) -> None:
    s = built.get("rec-short")
    assert s.duration_s == pytest.approx(0.3, abs=1e-3)
    assert s.loudness.method == "kweighted-rms"
    x, sr = sf.read(s.wav, dtype="float64")
    assert measure_loudness(x, sr) == (pytest.approx(-23.0, abs=0.05), "kweighted-rms")
    # On a stationary signal the ungated short-clip value equals BS.1770's gated one.
    tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)
    short, method = measure_loudness(tone[:14400], 48000)  # 0.3 s
    assert method == "kweighted-rms"
    gated = pyloudnorm.Meter(48000).integrated_loudness(tone)
    assert short == pytest.approx(gated, abs=0.1)
    assert short == pytest.approx(10 * np.log10(0.005) - 0.691, abs=0.1)  # ms of the sine


def _envelope_at_frames(x: np.ndarray, sr: int, n: int, fps: float) -> np.ndarray:
    sos = butter(2, 10.0, fs=sr, output="sos")  # rectified + low-pass < 10 Hz
    env = sosfiltfilt(sos, np.abs(x))
    return np.interp(np.arange(n) / fps + LEAD_S, np.arange(len(x)) / sr, env, right=0.0)


@pytest.mark.parametrize("stim_id", ["amy-u1", "ben-u1"])
def test_video_frames_follow_the_envelope(built: StimulusSet, stim_id: str) -> None:
    s = built.get(stim_id)
    assert s.video is not None and s.mouth is not None and s.fps == 25.0
    assert s.n_frames == math.ceil(s.duration_s * 25.0)
    cap = cv2.VideoCapture(str(s.video))
    assert cap.isOpened()
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == s.n_frames
    assert frames[0].shape == (360, 360, 3)
    opening = np.load(s.mouth)
    assert opening.shape == (s.n_frames,) and 0 <= opening.min() and opening.max() <= 1
    x, sr = sf.read(s.wav, dtype="float64")
    env = _envelope_at_frames(x, sr, s.n_frames, 25.0)
    r_env = np.corrcoef(opening, env)[0, 1]
    assert r_env > 0.8, r_env
    # The pixels carry it: inner-mouth coloured pixels (BGR 40, 30, 90) per frame.
    roi = np.stack([f[190:270, 120:240] for f in frames]).astype(np.int32)
    inner = (np.abs(roi - np.array([40, 30, 90])).sum(axis=3) < 45).sum(axis=(1, 2))
    r_pix = np.corrcoef(inner, opening)[0, 1]
    assert r_pix > 0.9, r_pix
    # The lead is real: the mouth matches the envelope best ~LEAD_S early.
    lags = np.arange(-4, 5)
    full = sosfiltfilt(butter(2, 10.0, fs=sr, output="sos"), np.abs(x))
    rs = [np.corrcoef(opening, np.interp(np.arange(s.n_frames) / 25 + k / 100,
                                         np.arange(len(x)) / sr, full, right=0.0))[0, 1]
          for k in lags * 4]  # fmt: skip
    assert lags[int(np.argmax(rs))] * 0.04 == pytest.approx(LEAD_S, abs=0.045)
    assert all(b >= 0 for b in s.blinks_s) and s.lead_s == LEAD_S


def test_faces_differ(built: StimulusSet) -> None:
    def first(stim_id: str) -> np.ndarray:
        cap = cv2.VideoCapture(str(built.get(stim_id).video))
        ok, frame = cap.read()
        cap.release()
        assert ok
        return frame.astype(np.float64)

    assert np.mean(np.abs(first("amy-u1") - first("ben-u1"))) > 20


def test_noise(built: StimulusSet) -> None:
    info = built.noise_info("babble")
    assert info.duration_s == 60.0 and len(info.sources) == 5
    assert built.noise("noise-white") == built.noise("white")
    # speech-shaped noise has the speech's long-term spectrum (log-PSD correlation)
    speech = [sf.read(s.wav)[0] for s in built.stimuli if len(s.wav.name) > 0]
    f, p_speech = welch(np.concatenate(speech), fs=48000, nperseg=4096)
    _, p_noise = welch(sf.read(built.noise("speech-shaped"))[0], fs=48000, nperseg=4096)
    _, p_white = welch(sf.read(built.noise("white"))[0], fs=48000, nperseg=4096)
    band = (f > 100) & (f < 8000)
    r_ssn = np.corrcoef(np.log(p_speech[band]), np.log(p_noise[band]))[0, 1]
    r_white = np.corrcoef(np.log(p_speech[band]), np.log(p_white[band]))[0, 1]
    assert r_ssn > 0.9 and r_white < 0.5, (r_ssn, r_white)
    with pytest.raises(KeyError, match="no 'pink' noise"):
        built.noise("pink")
