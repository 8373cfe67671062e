"""Synthetic attention-decoding trials with a known response, for the linear/CCA/agreement tests.

EEG = spatial mixing × (attended envelope convolved with a P1/N1/P2-like kernel over
0–250 ms) + band-limited noise at a given SNR. Envelopes are positive, low-passed
noise (speech-envelope-like); the unattended envelope does not enter the EEG.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal


@dataclass
class SynthData:
    """Simulated trials and the truth they were made from.

    Attributes
    ----------
    eeg : list of ndarray, shape (n_channels, n_times)
        EEG per trial, channel means removed per trial (arbitrary units).
    attended, unattended : list of ndarray, shape (n_times,)
        Envelopes per trial (positive, arbitrary units).
    kernel : ndarray, shape (n_lags,)
        True response to the attended envelope at lags ``lags``.
    lags : ndarray of int, shape (n_lags,)
        Lags of ``kernel``, samples (0 … 250 ms).
    mixing : ndarray, shape (n_channels,)
        Spatial pattern of the response.
    sfreq : float
        Sampling rate, Hz.
    """

    eeg: list[np.ndarray]
    attended: list[np.ndarray]
    unattended: list[np.ndarray]
    kernel: np.ndarray
    lags: np.ndarray
    mixing: np.ndarray
    sfreq: float

    @property
    def times(self) -> np.ndarray:
        """Lags of ``kernel``, s."""
        return self.lags / self.sfreq


def erp_kernel(sfreq: float, tmax: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """P1 (+, 50 ms), N1 (−, 100 ms), P2 (+, 180 ms) Gaussian bumps from 0 to ``tmax`` s.

    Returns
    -------
    lags : ndarray of int, shape (n_lags,)
        Samples.
    kernel : ndarray, shape (n_lags,)
        Unit peak absolute value.
    """
    lags = np.arange(int(np.ceil(tmax * sfreq - 1e-9)) + 1)
    t = lags / sfreq
    k = (
        0.5 * np.exp(-0.5 * ((t - 0.05) / 0.015) ** 2)
        - 1.0 * np.exp(-0.5 * ((t - 0.10) / 0.02) ** 2)
        + 0.7 * np.exp(-0.5 * ((t - 0.18) / 0.03) ** 2)
    )
    return lags, k / np.abs(k).max()


def envelope(rng: np.random.Generator, n_times: int, sfreq: float) -> np.ndarray:
    """Positive, band-limited (< 8 Hz) envelope-like signal of ``n_times`` samples."""
    b, a = signal.butter(2, min(8.0, 0.45 * sfreq), fs=sfreq)
    pad = int(2 * sfreq)
    x = signal.lfilter(b, a, rng.standard_normal(n_times + pad))[pad:]
    return np.abs(x) / np.abs(x).mean()


def make_trials(
    n_trials: int = 6,
    n_channels: int = 8,
    n_times: int = 1280,
    sfreq: float = 64.0,
    snr_db: float = 0.0,
    seed: int = 0,
) -> SynthData:
    """Simulate trials with an envelope-driven response in band-limited noise.

    Parameters
    ----------
    n_trials, n_channels, n_times : int
        Trials, EEG channels, samples per trial.
    sfreq : float
        Sampling rate, Hz.
    snr_db : float
        Power of the response over the power of the noise (summed over channels), dB.
        ``-inf`` gives pure noise.
    seed : int
        Seed of everything random.

    Returns
    -------
    SynthData
    """
    rng = np.random.default_rng(seed)
    lags, kernel = erp_kernel(sfreq)
    mixing = rng.standard_normal(n_channels)
    bn, an = signal.butter(2, [1.0, min(9.0, 0.45 * sfreq)], btype="band", fs=sfreq)
    eeg, att, unatt = [], [], []
    for _ in range(n_trials):
        a = envelope(rng, n_times, sfreq)
        u = envelope(rng, n_times, sfreq)
        resp = np.convolve(a - a.mean(), kernel)[:n_times]
        sig = np.outer(mixing, resp)
        pad = int(2 * sfreq)
        noise = signal.lfilter(bn, an, rng.standard_normal((n_channels, n_times + pad)))[:, pad:]
        if np.isinf(snr_db) and snr_db < 0:
            x = noise
        else:
            gain = np.sqrt(np.mean(sig**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
            x = sig + gain * noise
        eeg.append(x - x.mean(axis=1, keepdims=True))
        att.append(a)
        unatt.append(u)
    return SynthData(
        eeg=eeg,
        attended=att,
        unattended=unatt,
        kernel=kernel,
        lags=lags,
        mixing=mixing,
        sfreq=float(sfreq),
    )
