"""Speech-to-reverberation modulation energy ratio (SRMR), a non-intrusive quality score.

SRMR needs no clean reference: it compares the energy of the slow modulations
of the speech envelope (4-20 Hz, syllables and phonemes) with that of the fast
ones (> 20 Hz), which reverberation and noise fill in. Clean speech scores
high; reverberant or noisy speech scores lower.

This is the formulation of Falk, Zheng & Chan (2010) as implemented by the
SRMR toolbox and SRMRpy (its default, "slow" variant, without energy
normalization unless ``norm=True``):

1. resample to 16 kHz;
2. 23 fourth-order gammatone filters (Slaney's cascade of four second-order
   sections, unit gain at the centre), centre frequencies ERB-spaced from
   125 Hz up to 8 kHz (Glasberg & Moore ERB: ``cf / 9.26449 + 24.7`` Hz);
3. Hilbert envelope of each channel, kept at 16 kHz;
4. 8 second-order band-pass modulation filters, Q = 2, centres log-spaced
   from 4 to 128 Hz;
5. energies in Hamming windows of 256 ms with a 64-ms hop (zero-padded as
   SRMRpy does, ``ceil(n / hop)`` frames), averaged over frames: ``E[k, j]``
   for acoustic channel ``k`` and modulation band ``j``;
6. ``SRMR = sum(E[:, 0:4]) / sum(E[:, 4:K*])``, where ``K*`` (5 to 8) is the
   adaptive upper band: the ERB of the acoustic channel below which 90 % of the
   envelope energy lies is compared with the lower 3-dB cut-offs of bands 5-8
   (``adaptive=False`` gives the simpler fixed form, ``K* = 8``).

No voice-activity detection is applied (SRMRpy's default), so long silences
lower the score slightly.

References
----------
T. H. Falk, C. Zheng and W.-Y. Chan, "A non-intrusive quality and
intelligibility measure of reverberant and dereverberated speech," IEEE
Trans. Audio, Speech, Lang. Process. 18(7), 1766-1774, 2010.
J. F. Santos, M. Senoussaoui and T. H. Falk, "An improved non-intrusive
intelligibility metric for noisy and reverberant speech," IWAENC 2014
(the SRMR toolbox).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.signal import fftconvolve, hilbert, lfilter, sosfilt, sosfreqz

from avlab.separate._audio import resample

__all__ = ["SRMR_RATE", "modulation_energy", "srmr"]

SRMR_RATE = 16000
"""Rate SRMR is computed at, Hz."""

_EAR_Q = 9.26449  # Glasberg & Moore
_MIN_BW = 24.7  # Hz
_N_ACOUSTIC = 23
_LOW_FREQ = 125.0  # Hz
_N_MOD = 8
_MOD_LOW, _MOD_HIGH = 4.0, 128.0  # Hz
_MOD_Q = 2.0
_WIN_S, _HOP_S = 0.256, 0.064


def _erb_space(low: float, high: float, n: int) -> np.ndarray:
    """Centre frequencies ERB-spaced from ``low`` up to (excluding) ``high``, ascending, Hz."""
    c = _EAR_Q * _MIN_BW
    k = np.arange(1, n + 1)
    cf = -c + np.exp(k * (np.log(low + c) - np.log(high + c)) / n) * (high + c)
    return cf[::-1]


def _erb(cf: np.ndarray) -> np.ndarray:
    """Equivalent rectangular bandwidth of channels centred at ``cf``, Hz."""
    return cf / _EAR_Q + _MIN_BW


@lru_cache(maxsize=4)
def _gammatone_sos(srate: int) -> tuple[np.ndarray, np.ndarray]:
    """Slaney's 4th-order gammatone filters as second-order sections.

    Returns
    -------
    sos : ndarray, shape (n_channels, 4, 6)
    cfs : ndarray, shape (n_channels,)
        Centre frequencies, ascending, Hz.
    """
    cfs = _erb_space(_LOW_FREQ, srate / 2, _N_ACOUSTIC)
    t = 1.0 / srate
    sos = np.zeros((cfs.size, 4, 6))
    for i, cf in enumerate(cfs):
        b = 1.019 * 2 * np.pi * _erb(cf)
        arg = 2 * np.pi * cf * t
        cos_e, sin_e = np.cos(arg) / np.exp(b * t), np.sin(arg) / np.exp(b * t)
        a = [1.0, -2 * cos_e, np.exp(-2 * b * t)]
        for j, s in enumerate(
            (
                math.sqrt(3 + 2**1.5),
                -math.sqrt(3 + 2**1.5),
                math.sqrt(3 - 2**1.5),
                -math.sqrt(3 - 2**1.5),
            )
        ):
            sos[i, j] = [t, -(t * cos_e + s * t * sin_e), 0.0, *a]
        _, h = sosfreqz(sos[i], worN=[cf], fs=srate)
        sos[i, 0, :3] /= abs(h[0])  # unit gain at the centre frequency
    return sos, cfs


def _modulation_filters(srate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Second-order band-pass modulation filters (Q = 2).

    Returns
    -------
    coefs : ndarray, shape (8, 2, 3)
        ``b`` and ``a`` of each filter.
    cfs : ndarray, shape (8,)
        Centre frequencies, Hz.
    lower : ndarray, shape (8,)
        Lower 3-dB cut-offs, Hz.
    """
    cfs = _MOD_LOW * (_MOD_HIGH / _MOD_LOW) ** (np.arange(_N_MOD) / (_N_MOD - 1))
    w0 = np.tan(np.pi * cfs / srate)
    bw = w0 / _MOD_Q
    coefs = np.zeros((_N_MOD, 2, 3))
    coefs[:, 0] = np.stack([bw, np.zeros_like(bw), -bw], axis=1)
    coefs[:, 1] = np.stack([1 + bw + w0**2, 2 * w0**2 - 2, 1 - bw + w0**2], axis=1)
    lower = cfs - bw * srate / (2 * np.pi)
    return coefs, cfs, lower


def _frame_energy(x: np.ndarray, win: int, hop: int) -> np.ndarray:
    """Hamming-windowed energy of frames, shape (..., n_frames), SRMRpy's 'delay' padding."""
    n = x.shape[-1]
    n_frames = max(1, math.ceil(n / hop))
    total = (n_frames - 1) * hop + win
    pad = [(0, 0)] * (x.ndim - 1) + [(win - hop, max(0, total - n - (win - hop)))]
    xp = np.pad(x, pad) ** 2
    w2 = np.hamming(win) ** 2
    if win % hop == 0:
        # a frame is win/hop whole hops: project each hop-long block on each quarter
        # of the squared window (one matrix product), then add along the diagonal
        q = win // hop
        blocks = xp[..., : (n_frames - 1 + q) * hop].reshape(*xp.shape[:-1], -1, hop)
        proj = blocks @ w2.reshape(q, hop).T  # (..., n_blocks, q)
        return sum(proj[..., j : j + n_frames, j] for j in range(q))
    full = fftconvolve(xp, w2[::-1].reshape((1,) * (x.ndim - 1) + (-1,)), mode="valid", axes=-1)
    return np.maximum(full[..., ::hop][..., :n_frames], 0.0)


def modulation_energy(
    x: np.ndarray, srate: int, *, norm: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Average modulation energy per acoustic channel and modulation band.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Mono signal.
    srate : int
        Its rate, Hz (resampled to 16 kHz).
    norm : bool
        Clamp per-frame energies to [0.001, 1] x the peak of their mean over
        acoustic channels before averaging over frames.

    Returns
    -------
    energy : ndarray, shape (23, 8)
        Mean energy per frame (arbitrary units), acoustic channels ascending.
    acoustic_cfs : ndarray, shape (23,)
        Gammatone centre frequencies, Hz.
    """
    x = np.asarray(x, dtype=np.float64)
    x = resample(x, srate, SRMR_RATE)
    sos, cfs = _gammatone_sos(SRMR_RATE)
    env = np.abs(hilbert(np.stack([sosfilt(s, x) for s in sos]), axis=-1))
    coefs, _, _ = _modulation_filters(SRMR_RATE)
    win, hop = math.ceil(_WIN_S * SRMR_RATE), math.ceil(_HOP_S * SRMR_RATE)
    frames = np.stack(
        [_frame_energy(lfilter(b, a, env, axis=-1), win, hop) for b, a in coefs], axis=1
    )  # (23, 8, n_frames)
    if norm:
        peak = float(np.max(frames.mean(axis=0)))
        frames = np.clip(frames, 0.001 * peak, peak)
    return frames.mean(axis=-1), cfs


def srmr(x: np.ndarray, srate: int, *, adaptive: bool = True, norm: bool = False) -> float:
    """Speech-to-reverberation modulation energy ratio of a mono signal.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Speech, any rate (resampled to 16 kHz); at least a few hundred ms.
    srate : int
        Its rate, Hz.
    adaptive : bool
        Bound the upper modulation bands by the signal's 90 % bandwidth
        (Falk et al. 2010, the toolbox default); ``False``: all of bands 5-8.
    norm : bool
        Clamp per-frame modulation energies to [0.001, 1] x their peak before
        averaging (the toolbox's ``norm`` option).

    Returns
    -------
    ratio : float
        SRMR (linear ratio, not dB). Clean read speech scores roughly 5-15;
        reverberant or noisy speech lower. NaN for a silent signal.

    Raises
    ------
    ValueError
        ``x`` is not one-dimensional, or holds NaN or infinite samples.

    References
    ----------
    T. H. Falk, C. Zheng and W.-Y. Chan, IEEE TASLP 18(7), 1766-1774, 2010.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"srmr() takes a mono signal; got shape {x.shape}. Pick one channel.")
    if not np.all(np.isfinite(x)):
        raise ValueError("srmr(): the signal holds NaN or infinite samples; replace them.")
    if x.size == 0 or not np.any(x):
        return float("nan")
    energy, cfs = modulation_energy(x, srate, norm=norm)
    k_star = _N_MOD
    if adaptive:
        per_channel = energy.sum(axis=1)
        cum = np.cumsum(per_channel) / per_channel.sum()
        bw = _erb(cfs)[int(np.argmax(cum > 0.9))]
        lower = _modulation_filters(SRMR_RATE)[2]
        k_star = 5 + int(np.sum(bw > lower[5:]))
    return float(energy[:, :4].sum() / energy[:, 4:k_star].sum())
