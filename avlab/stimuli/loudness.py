"""Loudness normalization to a target integrated loudness (ITU-R BS.1770).

Integrated loudness is measured with pyloudnorm (K-weighting, 400-ms blocks,
absolute and relative gating). Clips shorter than one 400-ms block cannot be
gated; their loudness is the ungated mean square of the K-weighted signal
(BS.1770's formula without gating), and the result says so. After the gain,
the true peak (4x oversampled) is kept below :data:`PEAK_CEILING_DBFS`; a clip
that needed more attenuation for that is quieter than the target, and
:attr:`Loudness.limited_db` says by how much.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyloudnorm
from pydantic import BaseModel, ConfigDict
from scipy.signal import resample_poly

from avlab._logging import logger

__all__ = [
    "PEAK_CEILING_DBFS",
    "Loudness",
    "measure_loudness",
    "normalize_loudness",
    "true_peak_dbfs",
]

#: Highest true peak allowed after normalization, dBFS.
PEAK_CEILING_DBFS = -1.0
_BLOCK_S = 0.4


class Loudness(BaseModel):
    """How a clip was normalized.

    Attributes
    ----------
    method : {"bs1770", "kweighted-rms"}
        ``bs1770``: gated integrated loudness; ``kweighted-rms``: the clip was
        shorter than 0.4 s, ungated K-weighted mean square instead.
    lufs_before, lufs_after : float
        Measured loudness before and after normalization, LUFS.
    gain_db : float
        Gain applied (the peak limit included), dB.
    limited_db : float
        Extra attenuation applied to keep the true peak under the ceiling, dB
        (0: none needed).
    true_peak_dbfs : float
        True peak after normalization (4x oversampled), dBFS.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["bs1770", "kweighted-rms"]
    lufs_before: float
    lufs_after: float
    gain_db: float
    limited_db: float = 0.0
    true_peak_dbfs: float


def _kweighted_rms_lufs(audio: np.ndarray, srate: int) -> float:
    x = audio.astype(np.float64)
    for f in (
        pyloudnorm.IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, srate, "high_shelf"),
        pyloudnorm.IIRfilter(0.0, 0.5, 38.0, srate, "high_pass"),
    ):
        x = f.apply_filter(x)
    ms = float(np.mean(x**2))
    return -0.691 + 10 * np.log10(ms) if ms > 0 else float("-inf")


def measure_loudness(audio: np.ndarray, srate: int) -> tuple[float, str]:
    """Integrated loudness of a mono clip.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
    srate : int
        Hz.

    Returns
    -------
    lufs : float
        Loudness, LUFS; ``-inf`` for digital silence.
    method : {"bs1770", "kweighted-rms"}
        ``kweighted-rms`` for clips shorter than 0.4 s (no gating possible).
    """
    x = np.asarray(audio, dtype=np.float64)
    if len(x) < _BLOCK_S * srate:
        return _kweighted_rms_lufs(x, srate), "kweighted-rms"
    return float(pyloudnorm.Meter(srate).integrated_loudness(x)), "bs1770"


def true_peak_dbfs(audio: np.ndarray) -> float:
    """Estimate the true peak with 4x oversampling, dBFS (``-inf`` for silence)."""
    peak = float(np.max(np.abs(resample_poly(audio.astype(np.float64), 4, 1)), initial=0.0))
    return 20 * np.log10(peak) if peak > 0 else float("-inf")


def normalize_loudness(
    audio: np.ndarray, srate: int, target_lufs: float, *, name: str = "clip"
) -> tuple[np.ndarray, Loudness]:
    """Scale a clip to a target loudness, keeping its true peak under the ceiling.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
    srate : int
        Hz.
    target_lufs : float
        LUFS, e.g. -23 (EBU R128).
    name : str
        Used in log messages.

    Returns
    -------
    audio : ndarray, shape (n_samples,), float32
    loudness : Loudness

    Raises
    ------
    ValueError
        The clip is digital silence (no loudness to normalize).
    """
    before, method = measure_loudness(audio, srate)
    if not np.isfinite(before):
        raise ValueError(f"{name} is silent: its loudness cannot be normalized")
    if method == "kweighted-rms":
        logger.info(
            "%s is %.2f s long, shorter than a 0.4-s BS.1770 block: loudness from the "
            "ungated K-weighted RMS",
            name,
            len(audio) / srate,
        )
    gain_db = target_lufs - before
    out = audio.astype(np.float64) * 10 ** (gain_db / 20)
    peak = true_peak_dbfs(out)
    limited = max(0.0, peak - PEAK_CEILING_DBFS)
    if limited > 0:
        logger.warning(
            "%s: true peak %.1f dBFS at %.1f LUFS; attenuated by a further %.1f dB "
            "to stay under %.1f dBFS",
            name,
            peak,
            target_lufs,
            limited,
            PEAK_CEILING_DBFS,
        )
        out *= 10 ** (-limited / 20)
        gain_db -= limited
        peak -= limited
    after, _ = measure_loudness(out, srate)
    info = Loudness(
        method=method,  # type: ignore[arg-type]
        lufs_before=round(before, 3),
        lufs_after=round(after, 3),
        gain_db=round(gain_db, 3),
        limited_db=round(limited, 3),
        true_peak_dbfs=round(peak, 3),
    )
    return out.astype(np.float32), info
