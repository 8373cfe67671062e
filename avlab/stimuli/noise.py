"""Background noises made from the built speech (and white noise).

- ``speech-shaped``: Gaussian noise with the long-term average spectrum of all
  built speech (Welch, 4096-point segments), random phase.
- ``babble``: :data:`BABBLE_TALKERS` utterances, each looped to the noise's
  duration from a different random start, summed.
- ``white``: Gaussian white noise.

All are :data:`NOISE_DURATION_S` long, seeded (the same speech gives the same
noise), faded in and out over 10 ms, and normalized by the caller like speech.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.signal import welch

__all__ = [
    "BABBLE_TALKERS",
    "NOISE_DURATION_S",
    "babble_noise",
    "speech_shaped_noise",
    "white_noise",
]

#: Length of every generated noise, s.
NOISE_DURATION_S = 60.0
#: Utterances summed into babble.
BABBLE_TALKERS = 6
_FADE_S = 0.01


def _fade(x: np.ndarray, srate: int) -> np.ndarray:
    n = min(len(x) // 2, int(_FADE_S * srate))
    if n > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _n(srate: int, duration_s: float) -> int:
    return int(round(duration_s * srate))


def white_noise(srate: int, *, duration_s: float = NOISE_DURATION_S, seed: int = 0) -> np.ndarray:
    """Gaussian white noise.

    Parameters
    ----------
    srate : int
        Hz.
    duration_s : float
        s.
    seed : int

    Returns
    -------
    noise : ndarray, shape (round(duration_s * srate),), float32
        Unit variance scaled to 0.1 (normalize afterwards).
    """
    rng = np.random.default_rng(seed)
    return _fade(0.1 * rng.standard_normal(_n(srate, duration_s)), srate).astype(np.float32)


def speech_shaped_noise(
    speech: Iterable[np.ndarray], srate: int, *, duration_s: float = NOISE_DURATION_S, seed: int = 1
) -> np.ndarray:
    """Noise with the long-term average spectrum of the given speech.

    Parameters
    ----------
    speech : iterable of ndarray, each shape (n_samples,)
        Utterances (at least one longer than 4096 samples); consumed one at
        a time, so a generator keeps memory low.
    srate : int
        Hz.
    duration_s : float
        s.
    seed : int

    Returns
    -------
    noise : ndarray, shape (round(duration_s * srate),), float32
    """
    nperseg = 4096
    f = np.fft.rfftfreq(nperseg, 1 / srate)
    total, psd = 0, np.zeros(len(f))
    for utt in speech:  # length-weighted mean of the utterances' spectra
        x = np.asarray(utt, dtype=np.float64)
        if len(x) < nperseg:
            continue
        _, p = welch(x, fs=srate, nperseg=nperseg)
        psd += p * len(x)
        total += len(x)
    if total == 0:
        raise ValueError("speech-shaped noise needs at least one utterance of 4096 samples")
    psd /= total
    n = _n(srate, duration_s)
    freqs = np.fft.rfftfreq(n, 1 / srate)
    mag = np.sqrt(np.interp(freqs, f, psd))
    rng = np.random.default_rng(seed)
    phase = np.exp(2j * np.pi * rng.random(len(freqs)))
    x = np.fft.irfft(mag * phase, n=n)
    x *= 0.1 / max(float(np.std(x)), 1e-12)
    return _fade(x, srate).astype(np.float32)


def babble_noise(
    speech: list[np.ndarray],
    srate: int,
    *,
    duration_s: float = NOISE_DURATION_S,
    n_talkers: int = BABBLE_TALKERS,
    seed: int = 2,
) -> np.ndarray:
    """Multi-talker babble: utterances looped from random starts and summed.

    Parameters
    ----------
    speech : list of ndarray, each shape (n_samples,)
        Utterances (at least one); fewer than ``n_talkers`` are reused with
        other start points.
    srate : int
        Hz.
    duration_s : float
        s.
    n_talkers : int
        Utterances summed.
    seed : int

    Returns
    -------
    noise : ndarray, shape (round(duration_s * srate),), float32
    """
    if not speech:
        raise ValueError("babble needs at least one utterance")
    n = _n(srate, duration_s)
    rng = np.random.default_rng(seed)
    out = np.zeros(n)
    for i in range(n_talkers):
        utt = np.asarray(speech[i % len(speech)], dtype=np.float64)
        utt = utt / max(float(np.sqrt(np.mean(utt**2))), 1e-12)
        start = int(rng.integers(0, len(utt)))
        reps = int(np.ceil((n + start) / len(utt)))
        out += np.tile(utt, reps)[start : start + n]
    out *= 0.1 / max(float(np.std(out)), 1e-12)
    return _fade(out, srate).astype(np.float32)
