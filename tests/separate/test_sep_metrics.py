"""Separation metrics: SI-SDR, permutation, STOI, PESQ and SRMR on real speech.

Reference values:

- PESQ: the pesq package's README gives, for its audio/speech.wav and
  audio/speech_bab_0dB.wav (shared/data/speech/pesq_speech*.wav), wide-band
  1.0832337141036987 and narrow-band 1.6072081327438354 (both at 16 kHz).
- SRMR: computed when written with a transcription of SRMRpy's default
  ("slow", norm=False) path on the gammatone package's Slaney filters
  (gammatone 1.0.3): spk1_snt1 8.691002359382244, spk2_snt1 9.519441622785681,
  spk1_snt1 with norm=True 5.518909941079158. Our own gammatone cascade agrees
  to ~1e-12 relative.
- SRMR measured on this data: clean 8.69 / 9.52 (spk1_snt1 / spk2_snt1), the
  same convolved with rir1.wav 2.35 / 3.26, plus white noise at 0 dB SNR
  1.89 / 1.75.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import fftconvolve, resample_poly

from avlab.separate.metrics import (
    SI_SDR_LIMIT_DB,
    best_permutation,
    pesq_score,
    score_separation,
    si_sdr,
    si_sdri,
    srmr,
    stoi,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SPEECH = DATA / "speech"


def _wav(path: Path) -> np.ndarray:
    x, sr = sf.read(path, dtype="float64")
    assert sr == 16000
    return x


@pytest.fixture(scope="module")
def talkers() -> tuple[np.ndarray, np.ndarray]:
    a, b = _wav(SPEECH / "spk1_snt1.wav"), _wav(SPEECH / "spk2_snt1.wav")
    n = min(a.size, b.size)
    return a[:n], b[:n]


# --- SI-SDR -------------------------------------------------------------------


def test_si_sdr_scale_and_offset_invariant(talkers):
    s1, s2 = talkers
    est = s1 + 0.3 * s2
    base = si_sdr(est, s1)
    assert si_sdr(est * 3.7, s1) == pytest.approx(base, abs=1e-9)
    assert si_sdr(est, s1 * 0.01) == pytest.approx(base, abs=1e-9)
    assert si_sdr(est + 0.25, s1) == pytest.approx(base, abs=1e-9)  # zero-mean first


@pytest.mark.parametrize("snr_db", [10.0, 0.0, -5.0])
def test_si_sdr_known_value_orthogonal_noise(talkers, snr_db):
    ref = talkers[0] - talkers[0].mean()
    noise = np.random.default_rng(1).standard_normal(ref.size)
    noise -= noise.mean()
    noise -= np.dot(noise, ref) / np.dot(ref, ref) * ref  # orthogonal, zero-mean
    noise *= np.sqrt(np.dot(ref, ref) / np.dot(noise, noise) / 10 ** (snr_db / 10))
    assert si_sdr(ref + noise, ref) == pytest.approx(snr_db, abs=0.01)
    assert si_sdr(2.5 * (ref + noise), ref) == pytest.approx(snr_db, abs=0.01)


def test_si_sdr_matches_correlation_formula():
    # SI-SDR = 10 log10(rho^2 / (1 - rho^2)), rho the Pearson correlation (Le Roux 2019)
    rng = np.random.default_rng(2)
    for _ in range(5):
        ref = rng.standard_normal(4000) + 0.3
        est = 0.7 * ref + rng.standard_normal(4000) * rng.uniform(0.1, 2)
        rho = np.corrcoef(est, ref)[0, 1]
        assert si_sdr(est, ref) == pytest.approx(10 * np.log10(rho**2 / (1 - rho**2)), abs=1e-9)


def test_si_sdr_limits_and_errors(talkers):
    s1, _ = talkers
    assert si_sdr(s1, s1) == SI_SDR_LIMIT_DB == 100.0  # exact estimate: clipped, not inf
    assert si_sdr(np.zeros_like(s1), s1) == -100.0  # silent estimate
    with pytest.raises(ValueError, match="reference is silent"):
        si_sdr(s1, np.zeros_like(s1))
    with pytest.raises(ValueError, match=r"shapes \(10,\) and \(11,\)"):
        si_sdr(np.ones(10), np.ones(11))


def test_si_sdri(talkers):
    s1, s2 = talkers
    mix = s1 + s2
    assert si_sdri(mix, s1, mix) == 0.0
    est = s1 + 0.1 * s2
    assert si_sdri(est, s1, mix) == pytest.approx(si_sdr(est, s1) - si_sdr(mix, s1), abs=1e-12)
    assert si_sdri(est, s1, mix) > 15.0  # 0.1 leak: about +20 dB vs 0 dB


def test_best_permutation():
    rng = np.random.default_rng(3)
    refs = rng.standard_normal((3, 2000))
    est = refs[[2, 0, 1]] * [[2.0], [0.5], [1.0]] + 0.3 * rng.standard_normal((3, 2000))
    assert best_permutation(est, refs) == (1, 2, 0)
    assert best_permutation(refs[:2], refs[:2]) == (0, 1)
    assert best_permutation(refs[[1, 0]], refs[:2]) == (1, 0)
    with pytest.raises(ValueError, match="both be"):
        best_permutation(refs[:2], refs)


# --- STOI, PESQ ----------------------------------------------------------------


def test_stoi_clean_is_one_and_noise_lowers_it():
    ref, deg = _wav(SPEECH / "pesq_speech.wav"), _wav(SPEECH / "pesq_speech_bab_0dB.wav")
    assert stoi(ref, ref, 16000) == pytest.approx(1.0, abs=1e-6)
    assert stoi(ref, ref, 16000, extended=True) == pytest.approx(1.0, abs=1e-6)
    assert stoi(3.0 * ref, ref, 16000) == pytest.approx(1.0, abs=1e-6)  # level-independent
    s, e = stoi(deg, ref, 16000), stoi(deg, ref, 16000, extended=True)
    assert 0.55 < s < 0.8  # measured 0.674
    assert 0.3 < e < s  # measured 0.390
    assert np.isnan(stoi(np.zeros_like(ref), ref, 16000))


def test_stoi_nan_on_too_little_speech(caplog):
    ref = _wav(SPEECH / "spk1_snt1.wav")[4000:7200]  # 0.2 s: pystoi would return 1e-5
    with caplog.at_level(logging.WARNING, logger="avlab"):
        assert np.isnan(stoi(ref, ref, 16000))
    assert "STOI needs about 0.4 s" in caplog.text


def test_pesq_matches_the_package_readme():
    ref, deg = _wav(SPEECH / "pesq_speech.wav"), _wav(SPEECH / "pesq_speech_bab_0dB.wav")
    assert pesq_score(deg, ref, 16000) == pytest.approx(1.0832337141036987, abs=1e-6)
    assert pesq_score(deg, ref, 16000, mode="nb") == pytest.approx(1.6072081327438354, abs=1e-6)
    assert pesq_score(ref, ref, 16000) > 4.4  # measured 4.644
    # other rates are resampled to 16 kHz (wb): 48 kHz gives 1.084 for 1.083
    up = resample_poly(np.stack([ref, deg]), 3, 1, axis=1)
    assert pesq_score(up[1], up[0], 48000) == pytest.approx(1.0832, abs=0.02)


def test_pesq_nan_on_short_or_silent_input(caplog):
    ref = _wav(SPEECH / "pesq_speech.wav")
    with caplog.at_level(logging.WARNING, logger="avlab"):
        assert np.isnan(pesq_score(ref[:2000], ref[:2000], 16000))  # 0.125 s
        assert "at least 0.25 s" in caplog.text
        assert np.isnan(pesq_score(ref[:4000], ref[:4000], 16000))  # only silence there
        assert "No utterances" in caplog.text
        assert np.isnan(pesq_score(ref[:8000], np.zeros(8000), 16000))


# --- SRMR ---------------------------------------------------------------------


def test_srmr_agrees_with_srmrpy_formulation():
    x1, x2 = _wav(SPEECH / "spk1_snt1.wav"), _wav(SPEECH / "spk2_snt1.wav")
    assert srmr(x1, 16000) == pytest.approx(8.691002359382244, rel=1e-6)
    assert srmr(x2, 16000) == pytest.approx(9.519441622785681, rel=1e-6)
    assert srmr(x1, 16000, norm=True) == pytest.approx(5.518909941079158, rel=1e-6)


def test_srmr_drops_with_reverberation_and_noise():
    rir = _wav(DATA / "rir" / "rir1.wav")
    rng = np.random.default_rng(0)
    for name in ("spk1_snt1", "spk2_snt1"):
        x = _wav(SPEECH / f"{name}.wav")
        clean = srmr(x, 16000)
        reverb = srmr(fftconvolve(x, rir)[: x.size], 16000)
        noise = rng.standard_normal(x.size)
        noisy = srmr(x + noise * np.sqrt(np.sum(x**2) / np.sum(noise**2)), 16000)
        assert 2.0 < clean < 20.0 and np.isfinite(clean)
        assert reverb < 0.5 * clean  # measured 2.35 / 3.26 vs 8.69 / 9.52
        assert noisy < 0.5 * clean  # measured 1.89 / 1.75
        assert srmr(3.0 * x, 16000) == pytest.approx(clean, rel=1e-9)  # level-independent


def test_srmr_other_rate_and_errors():
    x = _wav(SPEECH / "spk1_snt1.wav")
    at8k = srmr(resample_poly(x, 1, 2), 8000)  # upsampled to 16 kHz, no energy above 4 kHz
    assert at8k == pytest.approx(8.69, rel=0.15)  # measured 7.88
    assert np.isnan(srmr(np.zeros(16000), 16000))
    with pytest.raises(ValueError, match="mono signal"):
        srmr(np.zeros((2, 100)), 16000)
    with pytest.raises(ValueError, match="NaN"):
        srmr(np.array([0.0, np.nan]), 16000)


# --- score_separation -------------------------------------------------------------


def test_score_separation_aligns_the_talkers(talkers):
    s1, s2 = talkers
    mix = s1 + s2
    refs = np.stack([s1, s2])
    est = np.stack([s2 + 0.05 * s1, 2.0 * s1])  # swapped, scaled
    scores = score_separation(est, refs, mix, 16000)
    assert scores.permutation == (1, 0)
    t1, t2 = scores.talkers
    assert (t1.estimate, t2.estimate) == (1, 0)
    assert t1.si_sdr_db == 100.0
    assert t1.si_sdri_db == pytest.approx(100.0 - si_sdr(mix, s1), abs=1e-9)
    assert t2.si_sdr_db == pytest.approx(si_sdr(est[0], s2), abs=1e-12)
    assert t1.mix_si_sdr_db == pytest.approx(si_sdr(mix, s1), abs=1e-12)
    assert t1.stoi == pytest.approx(1.0, abs=1e-6) and t1.pesq > 4.4
    assert t1.mix_pesq < t1.pesq and t1.mix_stoi < t1.stoi
    assert scores.mix_srmr == pytest.approx(srmr(mix, 16000), rel=1e-12)
    assert t2.srmr == pytest.approx(srmr(est[0], 16000), rel=1e-12)
    with pytest.raises(ValueError, match="score_separation"):
        score_separation(est[:, :-1], refs, mix, 16000)
