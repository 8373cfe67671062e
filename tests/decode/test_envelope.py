"""Speech envelopes and the decoding options (avlab.decode.envelope, avlab.decode.config).

Truth is known by construction: noise amplitude-modulated by a slow random signal
has that signal as its envelope. Asserted: both methods recover the modulator in
the EEG band (r >= 0.9), lengths, the sub-sample offset (exact for whole samples),
the band-pass, the file cache, and the pydantic options (defaults, validation,
hashing, JSON round trip). The envelope against the simulator's own TRF input is
checked on real stimuli in test_data.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import mne
import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError
from scipy import signal

from avlab.decode import envelope as envmod
from avlab.decode.base import DecodeError
from avlab.decode.config import EnvelopeConfig, Preprocessing
from avlab.decode.envelope import (
    clear_envelope_cache,
    erb_space,
    speech_envelope,
    stimulus_envelope,
)

FS_AUDIO = 48000
SFREQ = 64.0
DUR_S = 20.0


def _modulated_noise(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Speech-band noise times a slow positive modulator; returns (audio, modulator at 64 Hz)."""
    rng = np.random.default_rng(seed)
    n64 = int(DUR_S * SFREQ)
    slow = signal.sosfiltfilt(
        signal.butter(4, 8.0, fs=SFREQ, output="sos"), rng.standard_normal(n64)
    )
    mod64 = np.exp(1.5 * slow / slow.std())  # positive, speech-like dynamics
    t64 = np.arange(n64) / SFREQ
    t = np.arange(int(DUR_S * FS_AUDIO)) / FS_AUDIO
    mod = np.interp(t, t64, mod64)
    carrier = signal.sosfilt(
        signal.butter(4, [200.0, 3500.0], "bandpass", fs=FS_AUDIO, output="sos"),
        rng.standard_normal(t.size),
    )
    return 0.05 * mod * carrier, mod64


def _band(x: np.ndarray) -> np.ndarray:
    return mne.filter.filter_data(x, SFREQ, 1.0, 9.0, verbose="ERROR")


@pytest.fixture(scope="module")
def noise() -> tuple[np.ndarray, np.ndarray]:
    return _modulated_noise()


@pytest.mark.parametrize("method", ["hilbert", "gammatone"])
def test_recovers_modulator(noise: tuple[np.ndarray, np.ndarray], method: str) -> None:
    audio, mod = noise
    config = EnvelopeConfig(method=method)
    env = speech_envelope(audio, FS_AUDIO, SFREQ, config)
    assert env.shape == (int(DUR_S * SFREQ),)
    # truth: the modulator raised to the compression power, in the band; 1 s from the edges
    core = slice(64, -64)
    r = np.corrcoef(env[core], _band(mod**config.exponent)[core])[0, 1]
    assert r >= 0.98, r  # hilbert 0.999, gammatone 0.992 with this seed
    # the band-pass removed the mean and the drift below 1 Hz
    f, p = signal.welch(env, SFREQ, nperseg=512)
    assert p[f < 0.5].sum() < 0.02 * p.sum()
    assert p[f > 12].sum() < 0.02 * p.sum()


def test_no_band_pass_keeps_positive_envelope(noise: tuple[np.ndarray, np.ndarray]) -> None:
    audio, mod = noise
    no_band = Preprocessing(l_freq=None, h_freq=None)
    raw = speech_envelope(audio, FS_AUDIO, SFREQ, preprocessing=no_band)
    assert raw.min() > -1e-3 * raw.max()  # only the anti-alias filter's ripple below 0
    # 0.3 power law: log envelope is 0.3 x the log modulator (up to a constant)
    core = slice(64, -64)
    slope = np.polyfit(np.log(mod[core]), np.log(np.maximum(raw[core], 1e-9)), 1)[0]
    assert slope == pytest.approx(0.3, abs=0.05)


def test_lengths_channels_and_offsets(noise: tuple[np.ndarray, np.ndarray]) -> None:
    audio, _ = noise
    env0 = speech_envelope(audio, FS_AUDIO, SFREQ)
    stereo = speech_envelope(np.column_stack([audio, audio]), FS_AUDIO, SFREQ)
    np.testing.assert_allclose(stereo, env0, rtol=0, atol=1e-12)
    # output sample j = envelope at start_offset_s + j / sfreq: whole samples are exact
    for k in (1, 3):
        later = speech_envelope(audio, FS_AUDIO, SFREQ, start_offset_s=k / SFREQ)
        np.testing.assert_allclose(later, env0[k:], rtol=0, atol=1e-12 * np.abs(env0).max())
        earlier = speech_envelope(audio, FS_AUDIO, SFREQ, start_offset_s=-k / SFREQ)
        assert earlier.size == env0.size + k
        np.testing.assert_allclose(earlier[k:], env0, rtol=0, atol=1e-12 * np.abs(env0).max())
    # half a sample lands between the neighbours
    half = speech_envelope(audio, FS_AUDIO, SFREQ, start_offset_s=0.5 / SFREQ)
    mid = 0.5 * (env0[:-1] + env0[1:])
    assert np.corrcoef(half[:-1], mid[: half.size - 1])[0, 1] > 0.99
    assert np.corrcoef(half[:-1], env0[: half.size - 1])[0, 1] < 0.99
    # other rates: 44.1 kHz audio, 100 Hz output
    a44 = signal.resample_poly(audio, 147, 160)
    env100 = speech_envelope(a44, 44100, 100.0, preprocessing=Preprocessing(sfreq=100.0))
    assert env100.size == int(np.ceil(a44.size / 44100 * 100))


def test_file_cache(noise: tuple[np.ndarray, np.ndarray], tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    audio, _ = noise
    wav = tmp_path / "talker.wav"
    sf.write(wav, audio, FS_AUDIO, subtype="FLOAT")
    clear_envelope_cache()
    calls: list[str] = []
    real = envmod._fine_envelope

    def counting(x: np.ndarray, fs: float, config: EnvelopeConfig) -> np.ndarray:
        calls.append(config.method)
        return real(x, fs, config)

    monkeypatch.setattr(envmod, "_fine_envelope", counting)
    direct = speech_envelope(audio, FS_AUDIO, SFREQ)
    assert calls == ["hilbert"]
    a = stimulus_envelope(wav, SFREQ)
    np.testing.assert_allclose(a, direct, rtol=0, atol=1e-5 * np.abs(direct).max())  # float32 cache
    b = stimulus_envelope(str(wav), SFREQ, start_offset_s=0.02)  # other offset: same cache entry
    c = stimulus_envelope(wav, 128.0, preprocessing=Preprocessing(sfreq=128.0))  # other rate
    assert calls == ["hilbert", "hilbert"]
    assert b.size == a.size - 1 and c.size == 2 * a.size
    stimulus_envelope(wav, SFREQ, EnvelopeConfig(method="gammatone"))
    assert calls[-1] == "gammatone"
    # a changed file is analysed again
    time.sleep(0.01)
    sf.write(wav, audio[: FS_AUDIO * 5], FS_AUDIO, subtype="FLOAT")
    short = stimulus_envelope(wav, SFREQ)
    assert len(calls) == 4 and short.size == 5 * 64
    clear_envelope_cache()
    stimulus_envelope(wav, SFREQ)
    assert len(calls) == 5


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="nothing.wav not found"):
        stimulus_envelope(tmp_path / "nothing.wav", SFREQ)
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(DecodeError, match="cannot be read as audio"):
        stimulus_envelope(tmp_path / "text.wav", SFREQ)
    with pytest.raises(DecodeError, match=r"audio must have shape"):
        speech_envelope(np.zeros((2, 3, 4)), FS_AUDIO, SFREQ)
    with pytest.raises(DecodeError, match="sampling rates must be > 0"):
        speech_envelope(np.zeros(100), 0.0, SFREQ)


def test_erb_space() -> None:
    fc = erb_space(150.0, 4000.0, 15)
    assert fc[0] == pytest.approx(150.0) and fc[-1] == pytest.approx(4000.0)
    erb = 21.4 * np.log10(1 + 0.00437 * fc)
    np.testing.assert_allclose(np.diff(erb), np.diff(erb)[0], rtol=1e-10)


def test_configs() -> None:
    p, e = Preprocessing(), EnvelopeConfig()
    assert (p.l_freq, p.h_freq, p.reference, p.sfreq) == (1.0, 9.0, "average", 64.0)
    assert (e.method, e.power, e.exponent, e.n_bands, e.f_lo, e.f_hi) == (
        "hilbert", None, 0.3, 15, 150.0, 4000.0)  # fmt: skip
    assert EnvelopeConfig(method="gammatone").exponent == 0.6
    assert EnvelopeConfig(method="gammatone", power=0.5).exponent == 0.5
    # frozen and hashable (cache keys, model files); equal values, equal hashes
    ref = Preprocessing(reference=["Cz", "Fz"])
    assert ref.reference == ("Cz", "Fz")
    assert hash(ref) == hash(Preprocessing(reference=("Cz", "Fz")))
    assert len({p, Preprocessing(), ref}) == 2 and len({e, EnvelopeConfig()}) == 1
    with pytest.raises(ValidationError):
        p.sfreq = 128.0  # type: ignore[misc]
    # exact JSON round trip
    for model in (p, ref, Preprocessing(reference=None, l_freq=None, h_trans_bandwidth=3.0), e,
                  EnvelopeConfig(method="gammatone", power=0.5, n_bands=8)):  # fmt: skip
        text = json.dumps(model.model_dump(mode="json"))
        assert type(model).model_validate(json.loads(text)) == model
    assert p.filter_kwargs()["l_freq"] == 1.0 and p.filter_kwargs()["phase"] == "zero"


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (Preprocessing, {"l_freq": 9.0, "h_freq": 1.0}, "must be below h_freq"),
        (Preprocessing, {"h_freq": 40.0}, "Nyquist"),
        (Preprocessing, {"reference": []}, "at least one channel"),
        (Preprocessing, {"reference": "mastoids"}, "reference"),
        (Preprocessing, {"sfreq": 0}, "sfreq"),
        (Preprocessing, {"l_trans_bandwidth": -1.0}, "l_trans_bandwidth"),
        (Preprocessing, {"lfreq": 1.0}, "Extra inputs are not permitted"),
        (EnvelopeConfig, {"method": "wavelet"}, "method"),
        (EnvelopeConfig, {"f_lo": 5000.0}, "must be below f_hi"),
        (EnvelopeConfig, {"f_hi": 8000.0}, "f_hi"),
        (EnvelopeConfig, {"power": 0.0}, "power"),
        (EnvelopeConfig, {"bands": 3}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors(cls: type, kwargs: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        cls(**kwargs)
