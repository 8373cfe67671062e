"""Clock synchronization: offsets, drift and jitter onto one session timeline.

Pure numpy/scipy, no I/O. The conventions follow :mod:`avlab._format`:
``recorder time = source time + offset``, and offsets are collected at
recorder time. The clock fit here uses the **source** clock as its abscissa
(``offset(t_src) = a + b * (t_src - t_ref)``), so that a sample's recorder time
is simply ``t_src + offset(t_src)``; measurement times are converted with
``t_src = t_rec - offset`` before fitting. For a linearly drifting clock the
offset is exactly linear in either clock, so nothing is lost by this choice.

Steps for a stream (:func:`align_stream`):

1. :func:`fit_clock`: robust line through the clock offsets. Initial estimate by
   Theil-Sen (median of pairwise slopes, breakdown point 29 %: spikes of
   ``time_correction`` after a busy network or a suspended host cannot drag it),
   then a few iterations of reweighted least squares with Tukey's biweight
   (c = 4.685 robust standard deviations). Theil-Sen alone is robust but
   inefficient for Gaussian noise; the biweight refinement reaches ~95 % of the
   efficiency of least squares while giving outliers weight zero (a redescending
   influence function, unlike Huber's, which still lets a 1 s spike pull).
2. Map every stamp onto the recorder clock.
3. :func:`dejitter` (regular streams only): piecewise linear fit of time against
   sample index, a new segment at every recorded gap and at every jump of the
   stamps well beyond the jitter. By default all segments share one slope (the
   device's true rate does not change when it restarts), with one intercept per
   segment; this keeps short segments after a restart as accurate as the long
   ones. Where residuals beyond 6 robust SDs exist, the fit is reweighted with
   Tukey's biweight, so late chunks (scheduling hiccups of an arrival-stamping
   driver) do not bend it; otherwise it stays least squares (efficient).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats

from avlab._logging import logger

__all__ = [
    "AlignedTimes",
    "ClockFit",
    "DejitterResult",
    "SyncQuality",
    "align_stream",
    "dejitter",
    "fit_clock",
]

_TUKEY_C = 4.685
_MAD_TO_SD = 1.4826
_THEIL_SEN_MAX = 1500


@dataclass(frozen=True)
class ClockFit:
    """A fitted clock offset ``offset(t) = intercept + slope * (t - t_ref)``.

    Attributes
    ----------
    intercept : float
        Offset at ``t_ref``, in seconds.
    slope : float
        Drift of the offset, in seconds per second (``1e-6`` is 1 ppm).
    t_ref : float
        Reference time on the source clock, in seconds.
    n : int
        Number of offsets the fit used (before down-weighting outliers).
    n_outliers : int
        Offsets given zero weight.
    residual_rms_ms, residual_mad_ms : float
        RMS and robust standard deviation (1.4826 MAD) of the residuals of the
        inliers, in milliseconds; NaN with fewer than 3 offsets.
    method : str
        ``"robust"``, ``"ols"``, ``"constant"`` (one offset) or ``"none"``
        (no offsets: offset 0 assumed).
    """

    intercept: float
    slope: float
    t_ref: float
    n: int
    n_outliers: int = 0
    residual_rms_ms: float = float("nan")
    residual_mad_ms: float = float("nan")
    method: str = "robust"

    @property
    def drift_ppm(self) -> float:
        """Drift of the offset in parts per million."""
        return self.slope * 1e6

    @property
    def has_offsets(self) -> bool:
        """Whether any clock offset was measured (False: offset 0 assumed)."""
        return self.n > 0

    def offset(self, t_src: np.ndarray | float) -> np.ndarray:
        """Offset at source times, in seconds.

        Parameters
        ----------
        t_src : ndarray, shape (n,) | float
            Times on the source clock, in seconds.

        Returns
        -------
        offset : ndarray, shape (n,)
        """
        return self.intercept + self.slope * (np.asarray(t_src, dtype=np.float64) - self.t_ref)

    def to_recorder(self, t_src: np.ndarray | float) -> np.ndarray:
        """Map source times onto the recorder clock, ``t_src + offset(t_src)``."""
        t_src = np.asarray(t_src, dtype=np.float64)
        return t_src + self.offset(t_src)


@dataclass(frozen=True)
class DejitterResult:
    """Smooth sample times of a regular stream.

    Attributes
    ----------
    times : ndarray, shape (n_samples,)
        Fitted times in seconds (same clock as the input stamps).
    segment_starts : ndarray, shape (n_segments,)
        Index of the first sample of each segment.
    segment_rates : ndarray, shape (n_segments,)
        Effective rate of each segment in Hz (NaN for one-sample segments).
    effective_srate : float
        Rate in Hz over all segments (the shared slope, or the sample-weighted
        mean of the segment rates); NaN when it cannot be estimated.
    residual_rms_ms, residual_max_ms : float
        RMS and maximum of ``|stamps - times|`` in milliseconds.
    n_outliers : int
        Samples given zero weight by the robust fit.
    """

    times: np.ndarray
    segment_starts: np.ndarray
    segment_rates: np.ndarray
    effective_srate: float
    residual_rms_ms: float
    residual_max_ms: float
    n_outliers: int = 0

    @property
    def n_segments(self) -> int:
        """Number of segments."""
        return int(self.segment_starts.size)


class SyncQuality(BaseModel):
    """How well one stream was put on the recorder's clock.

    Times in milliseconds, rates in Hz, drift in ppm; NaN where not applicable.
    """

    model_config = ConfigDict(extra="forbid")

    clock_method: str
    n_offsets: int
    offset_median_s: float
    offset_spread_ms: float
    offset_residual_rms_ms: float
    offset_residual_mad_ms: float
    offset_outliers: int
    drift_ppm: float
    dejittered: bool
    dejitter_residual_rms_ms: float
    dejitter_residual_max_ms: float
    nominal_srate: float
    effective_srate: float
    n_segments: int


@dataclass(frozen=True)
class AlignedTimes:
    """Sample times of a stream on the recorder's clock.

    Attributes
    ----------
    times : ndarray, shape (n_samples,)
        Aligned times in seconds on the recorder clock.
    clock : ClockFit
        The clock fit used.
    dejitter : DejitterResult | None
        The jitter removal, for regular streams.
    quality : SyncQuality
        Summary numbers.
    """

    times: np.ndarray
    clock: ClockFit
    dejitter: DejitterResult | None
    quality: SyncQuality = field(repr=False)


def _tukey_weights(resid: np.ndarray, scale: float) -> np.ndarray:
    if not np.isfinite(scale) or scale <= 0:
        return np.ones_like(resid)
    u = resid / (_TUKEY_C * scale)
    w = (1.0 - u * u) ** 2
    w[np.abs(u) >= 1.0] = 0.0
    return w


def _robust_scale(resid: np.ndarray, floor: float) -> float:
    # About zero, not the median: weights are computed for residuals about the fit.
    mad = float(np.median(np.abs(resid))) * _MAD_TO_SD
    return max(mad, floor)


def fit_clock(
    offset_times: np.ndarray,
    offsets: np.ndarray,
    *,
    method: str = "robust",
    n_iter: int = 10,
) -> ClockFit:
    """Fit offset and drift of a source clock.

    Parameters
    ----------
    offset_times : ndarray, shape (n_offsets,)
        Times of the measurements, in seconds, on the clock the fit is to be
        evaluated on (the source clock in :func:`align_stream`).
    offsets : ndarray, shape (n_offsets,)
        Measured offsets (recorder minus source), in seconds.
    method : ``"robust"`` | ``"ols"``
        Theil-Sen then Tukey-biweight reweighting (default), or least squares.
    n_iter : int
        Reweighting iterations of the robust fit.

    Returns
    -------
    fit : ClockFit
        With 0 offsets: offset 0, ``method="none"``; with 1: a constant.
    """
    if method not in ("robust", "ols"):
        raise ValueError(f"method must be 'robust' or 'ols', got {method!r}")
    t = np.asarray(offset_times, dtype=np.float64).ravel()
    y = np.asarray(offsets, dtype=np.float64).ravel()
    if t.shape != y.shape:
        raise ValueError(f"offset_times {t.shape} and offsets {y.shape} differ in shape")
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    if t.size == 0:
        return ClockFit(0.0, 0.0, 0.0, n=0, method="none")
    if t.size == 1 or np.ptp(t) == 0:
        return ClockFit(float(np.median(y)), 0.0, float(t[0]), n=int(t.size), method="constant")
    t_ref = float(np.median(t))
    x = t - t_ref
    if method == "ols" or t.size == 2:
        slope, intercept = np.polyfit(x, y, 1)
        w = np.ones_like(x)
    else:
        idx = np.arange(t.size)
        if t.size > _THEIL_SEN_MAX:  # pairwise slopes grow as n^2: thin evenly
            idx = np.linspace(0, t.size - 1, _THEIL_SEN_MAX).astype(np.int64)
        ts = stats.theilslopes(y[idx], x[idx])
        slope = float(ts.slope)
        intercept = float(np.median(y - slope * x))  # robust, unlike median(y) - slope*median(x)
        w = np.ones_like(x)
        for _ in range(n_iter):
            resid = y - (intercept + slope * x)
            scale = _robust_scale(resid[w > 0] if np.any(w > 0) else resid, 1e-7)
            w = _tukey_weights(resid, scale)
            if np.count_nonzero(w) < 2:
                w = np.ones_like(x)
                break
            sw = w.sum()
            xm, ym = (w * x).sum() / sw, (w * y).sum() / sw
            sxx = (w * (x - xm) ** 2).sum()
            new_slope = (w * (x - xm) * (y - ym)).sum() / sxx if sxx > 0 else 0.0
            new_intercept = ym - new_slope * xm
            done = abs(new_slope - slope) < 1e-12 and abs(new_intercept - intercept) < 1e-9
            slope, intercept = float(new_slope), float(new_intercept)
            if done:
                break
    resid = y - (intercept + slope * x)
    inl = w > 0
    n_out = int(np.count_nonzero(~inl))
    rms = mad = float("nan")
    if t.size >= 3:
        r = resid[inl]
        rms = float(np.sqrt(np.mean(r**2))) * 1e3
        mad = _robust_scale(r, 0.0) * 1e3
    if n_out:
        logger.debug("clock fit: %d of %d offsets down-weighted as outliers", n_out, t.size)
    return ClockFit(
        float(intercept),
        float(slope),
        t_ref,
        n=int(t.size),
        n_outliers=n_out,
        residual_rms_ms=rms,
        residual_mad_ms=mad,
        method=method,
    )


def _find_breaks(stamps: np.ndarray, period: float, jump_periods: float) -> np.ndarray:
    """Return indices where a new segment starts because the stamps jump."""
    d = np.diff(stamps)
    dev = d - period
    # Chunked stamps are exactly regular inside a chunk: estimate the jitter of
    # the differences from the ones that deviate at all.
    moving = dev[np.abs(dev) > 1e-4 * period]
    sd = _robust_scale(moving, 0.0) if moving.size >= 10 else 0.0
    thresh = max(jump_periods * period, 8.0 * sd)
    return np.flatnonzero(np.abs(dev) > thresh) + 1


def dejitter(
    stamps: np.ndarray,
    nominal_srate: float,
    *,
    breaks: np.ndarray | list[int] | None = None,
    jump_periods: float = 5.0,
    shared_rate: bool = True,
    n_iter: int = 4,
) -> DejitterResult:
    """Remove jitter from the stamps of a regular-rate stream.

    Parameters
    ----------
    stamps : ndarray, shape (n_samples,)
        Time stamps in seconds, in sample order.
    nominal_srate : float
        Nominal rate in Hz (> 0).
    breaks : array of int | None
        Sample indices where a new segment starts (recorded gaps: the index
        where data resumed).
    jump_periods : float
        A jump of the stamps larger than this many nominal periods (and than 8
        robust standard deviations of the stamp differences) starts a segment.
    shared_rate : bool
        Fit one rate for all segments (default) or one per segment.
    n_iter : int
        Reweighting iterations (Tukey biweight).

    Returns
    -------
    result : DejitterResult
    """
    y = np.asarray(stamps, dtype=np.float64).ravel()
    n = y.size
    if nominal_srate <= 0:
        raise ValueError(f"nominal_srate must be > 0 to dejitter, got {nominal_srate}")
    if n == 0:
        e = np.zeros(0)
        return DejitterResult(e, np.zeros(0, np.int64), e, float("nan"), 0.0, 0.0)
    period = 1.0 / nominal_srate
    starts = set(_find_breaks(y, period, jump_periods).tolist()) if n > 1 else set()
    if breaks is not None:
        starts |= {int(b) for b in np.asarray(breaks).ravel() if 0 < int(b) < n}
    seg_starts = np.array(sorted({0} | starts), dtype=np.int64)
    seg = np.zeros(n, dtype=np.int64)
    seg[seg_starts[1:]] = 1
    seg = np.cumsum(seg)
    n_seg = seg_starts.size
    counts = np.bincount(seg, minlength=n_seg).astype(np.float64)
    x = np.arange(n, dtype=np.float64) - seg_starts[seg]  # index within segment
    y0 = y[seg_starts]
    yc = y - y0[seg]  # small numbers: no cancellation at large clock values
    w = np.ones(n)
    slopes = np.full(n_seg, period)
    inter = np.zeros(n_seg)
    for it in range(n_iter + 1):
        sw = np.bincount(seg, w, n_seg)
        safe = np.where(sw > 0, sw, 1.0)
        xm = np.bincount(seg, w * x, n_seg) / safe
        ym = np.bincount(seg, w * yc, n_seg) / safe
        dx = x - xm[seg]
        sxy = np.bincount(seg, w * dx * (yc - ym[seg]), n_seg)
        sxx = np.bincount(seg, w * dx * dx, n_seg)
        fit_slope = sxx > 0
        if shared_rate and np.any(fit_slope):
            slopes[:] = sxy[fit_slope].sum() / sxx[fit_slope].sum()
        else:
            slopes = np.where(fit_slope, sxy / np.where(fit_slope, sxx, 1.0), period)
        inter = ym - slopes * xm
        resid = yc - (inter[seg] + slopes[seg] * x)
        if it == n_iter or n < 3:
            break
        scale = _robust_scale(resid, 1e-3 * period)
        if it == 0 and np.max(np.abs(resid)) <= 6.0 * scale:
            break  # no outliers: least squares is the efficient estimate
        w = _tukey_weights(resid, scale)
    times = y0[seg] + inter[seg] + slopes[seg] * x
    r = y - times
    rates = np.where(counts > 1, 1.0 / slopes, np.nan)
    if shared_rate and np.any(counts > 1):
        eff = float(1.0 / slopes[0])
    elif np.any(counts > 1):
        eff = float(np.average(rates[counts > 1], weights=counts[counts > 1] - 1))
    else:
        eff = float("nan")
    return DejitterResult(
        times=times,
        segment_starts=seg_starts,
        segment_rates=rates,
        effective_srate=eff,
        residual_rms_ms=float(np.sqrt(np.mean(r**2))) * 1e3,
        residual_max_ms=float(np.max(np.abs(r))) * 1e3,
        n_outliers=int(np.count_nonzero(w == 0)),
    )


def align_stream(
    stamps: np.ndarray,
    clock_offsets: np.ndarray,
    nominal_srate: float,
    gaps: np.ndarray | None = None,
    *,
    clock_method: str = "lsl_time_correction",
    dejitter_regular: bool = True,
) -> AlignedTimes:
    """Put a stream's samples on the recorder's clock.

    Parameters
    ----------
    stamps : ndarray, shape (n_samples,)
        Source time stamps in seconds, as recorded.
    clock_offsets : ndarray, shape (n_offsets, 2)
        ``[recorder time, offset]`` rows in seconds (see :mod:`avlab._format`).
    nominal_srate : float
        Nominal rate in Hz; 0 for irregular streams (no dejittering).
    gaps : ndarray, shape (n_gaps, 4) | None
        Recorded gaps; column 0 is the sample index where data resumed.
    clock_method : str
        How the offsets were measured, copied into the quality report.
    dejitter_regular : bool
        Dejitter regular-rate streams (default True).

    Returns
    -------
    aligned : AlignedTimes
    """
    stamps = np.asarray(stamps, dtype=np.float64).ravel()
    co = np.asarray(clock_offsets, dtype=np.float64).reshape(-1, 2)
    t_src = co[:, 0] - co[:, 1]  # measurement times on the source clock
    clock = fit_clock(t_src, co[:, 1])
    times = clock.to_recorder(stamps)
    dj: DejitterResult | None = None
    if dejitter_regular and nominal_srate > 0 and stamps.size >= 2:
        breaks = None
        if gaps is not None and np.size(gaps):
            breaks = np.asarray(gaps, dtype=np.float64).reshape(-1, 4)[:, 0].astype(np.int64)
        dj = dejitter(times, nominal_srate, breaks=breaks)
        times = dj.times
    nan = float("nan")
    quality = SyncQuality(
        clock_method=clock_method,
        n_offsets=int(co.shape[0]),
        offset_median_s=float(np.median(co[:, 1])) if co.size else nan,
        offset_spread_ms=float(np.ptp(co[:, 1])) * 1e3 if co.size else nan,
        offset_residual_rms_ms=clock.residual_rms_ms,
        offset_residual_mad_ms=clock.residual_mad_ms,
        offset_outliers=clock.n_outliers,
        drift_ppm=clock.drift_ppm if clock.n >= 2 else nan,
        dejittered=dj is not None,
        dejitter_residual_rms_ms=dj.residual_rms_ms if dj else nan,
        dejitter_residual_max_ms=dj.residual_max_ms if dj else nan,
        nominal_srate=float(nominal_srate),
        effective_srate=dj.effective_srate if dj else _irregular_rate(times),
        n_segments=dj.n_segments if dj else int(stamps.size > 0),
    )
    return AlignedTimes(times=times, clock=clock, dejitter=dj, quality=quality)


def _irregular_rate(times: np.ndarray) -> float:
    if times.size < 2 or np.ptp(times) <= 0:
        return float("nan")
    return float((times.size - 1) / np.ptp(times))
