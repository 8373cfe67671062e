"""Resampling and loading shared by the separation modules (one place for both)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

__all__ = ["load_mono", "resample"]


def resample(x: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """Resample along the last axis with a polyphase filter (rates rounded to whole Hz).

    Parameters
    ----------
    x : ndarray, shape (..., n)
    rate_in, rate_out : float
        Sampling rates, Hz.

    Returns
    -------
    y : ndarray, shape (..., n * rate_out / rate_in)
        ``x`` itself when the rates are equal.
    """
    a, b = int(round(rate_in)), int(round(rate_out))
    if a == b:
        return x
    g = math.gcd(a, b)
    return resample_poly(x, b // g, a // g, axis=-1)


def load_mono(path: Path, srate: int) -> np.ndarray:
    """Read an audio file, average its channels and resample it to ``srate``, float32."""
    y, fs = sf.read(path, dtype="float32", always_2d=True)
    return resample(y.mean(axis=1), fs, srate).astype(np.float32)
