"""Decoding accuracy with its uncertainty, and the minimal expected switch duration (MESD).

Accuracy per decision window length comes with a Wilson 95 % CI and a one-sided
binomial test against 50 %. Windows of one trial are correlated, so the binomial CI
is optimistic; :func:`bootstrap_ci` resamples whole trials instead.

MESD (Geirnaert, Francart & Bertrand 2020, *IEEE TBME* 67(9)) is reimplemented here
from the paper's equations (design note §4); the authors' toolbox is not used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy import stats

from avlab._logging import logger

__all__ = [
    "TRIAL_KEY",
    "AccuracyStats",
    "MesdResult",
    "PairedComparison",
    "accuracy_stats",
    "binomial_stats",
    "bootstrap_ci",
    "chance_threshold",
    "compare_methods",
    "esd",
    "hitting_times",
    "mesd",
    "n_states",
]

#: Columns identifying one trial (the bootstrap's resampling unit).
TRIAL_KEY: tuple[str, ...] = ("subject", "session", "run", "trial")


class AccuracyStats(BaseModel):
    """Accuracy of one method at one window length (one subject or pooled).

    Attributes
    ----------
    method : str
    window_s : float
        Decision window length, s.
    subject : str | None
        ``None`` when pooled over subjects.
    n : int
        Decision windows.
    n_correct : int
    n_trials : int
        Distinct trials the windows come from.
    accuracy : float
        ``n_correct / n``.
    ci_low, ci_high : float
        Wilson 95 % CI of the accuracy (windows treated as independent).
    boot_low, boot_high : float | None
        95 % percentile CI from resampling whole trials; None with one trial.
    p_value : float
        One-sided binomial test of accuracy > 0.5.
    chance_threshold : float | None
        Smallest accuracy k/n with p < 0.05 for this n; None when no k reaches it.
    """

    method: str
    window_s: float
    subject: str | None = None
    n: int
    n_correct: int
    n_trials: int
    accuracy: float
    ci_low: float
    ci_high: float
    boot_low: float | None = None
    boot_high: float | None = None
    p_value: float
    chance_threshold: float | None = None


def binomial_stats(k: int, n: int, *, confidence: float = 0.95) -> tuple[float, float, float]:
    """One-sided binomial p against 0.5 and the Wilson CI of ``k`` successes in ``n``.

    Returns
    -------
    p_value, ci_low, ci_high : float
    """
    bt = stats.binomtest(int(k), int(n), 0.5, alternative="greater")
    # the CI must be two-sided; binomtest's own CI follows `alternative`
    ci = stats.binomtest(int(k), int(n), 0.5).proportion_ci(confidence, method="wilson")
    return float(bt.pvalue), float(ci.low), float(ci.high)


def chance_threshold(n: int, alpha: float = 0.05) -> float | None:
    """Smallest accuracy ``k/n`` whose one-sided binomial p against 0.5 is below ``alpha``."""
    if n <= 0:
        return None
    ks = np.arange(n + 1)
    p = stats.binom.sf(ks - 1, n, 0.5)  # P(X >= k)
    ok = np.flatnonzero(p < alpha)
    return float(ks[ok[0]] / n) if ok.size else None


def bootstrap_ci(
    k: np.ndarray,
    n: np.ndarray,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile CI of pooled accuracy, resampling whole trials with replacement.

    Parameters
    ----------
    k, n : ndarray of int, shape (n_trials,)
        Correct and total windows per trial.
    n_boot : int
        Bootstrap samples.
    confidence : float
    seed : int

    Returns
    -------
    (low, high) or None
        None with fewer than two trials.
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if k.size < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, k.size, size=(n_boot, k.size))
    acc = k[idx].sum(axis=1) / np.maximum(n[idx].sum(axis=1), 1.0)
    q = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(acc, [q, 1.0 - q])
    return float(lo), float(hi)


def accuracy_stats(
    windows: pd.DataFrame,
    *,
    per_subject: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[AccuracyStats]:
    """Accuracy per method × window length (× subject), with CIs and binomial tests.

    Parameters
    ----------
    windows : pandas.DataFrame
        Window rows (:data:`avlab.decode.cv.WINDOW_COLUMNS`); pass only one
        ``null_rep``'s rows (or the pooled null rows) at a time.
    per_subject : bool
        One row per subject instead of pooled.
    n_boot : int
        Trial-bootstrap samples (0 = no bootstrap).
    seed : int
        Bootstrap seed.

    Returns
    -------
    list of AccuracyStats
        Sorted by method, (subject,) window length.
    """
    keys = ["method", "subject", "window_s"] if per_subject else ["method", "window_s"]
    out = []
    for key, g in windows.groupby(keys, sort=True):
        key = dict(zip(keys, key, strict=True))
        n, k = len(g), int(g["correct"].sum())
        per_trial = g.groupby(list(TRIAL_KEY) + ["null_rep"], sort=True)["correct"].agg(
            ["sum", "count"]
        )
        boot = (
            bootstrap_ci(
                per_trial["sum"].to_numpy(), per_trial["count"].to_numpy(), n_boot=n_boot, seed=seed
            )
            if n_boot > 0
            else None
        )
        p, lo, hi = binomial_stats(k, n)
        out.append(
            AccuracyStats(
                method=str(key["method"]),
                window_s=float(key["window_s"]),
                subject=str(key["subject"]) if per_subject else None,
                n=n,
                n_correct=k,
                n_trials=len(per_trial),
                accuracy=k / n,
                ci_low=lo,
                ci_high=hi,
                boot_low=None if boot is None else boot[0],
                boot_high=None if boot is None else boot[1],
                p_value=p,
                chance_threshold=chance_threshold(n),
            )
        )
    return out


# -- MESD ---------------------------------------------------------------------------
class MesdResult(BaseModel):
    """Minimal expected switch duration of one accuracy curve.

    Attributes
    ----------
    mesd_s : float | None
        MESD, s; None when no window length is above chance.
    tau_s : float | None
        Optimal decision window length, s.
    p : float | None
        Interpolated accuracy at ``tau_s``.
    n_states : int | None
        States of the optimal Markov chain.
    warning : str | None
        Why the value is uncertain (optimum at an end of the measured range, or
        fewer than two window lengths above chance).
    """

    mesd_s: float | None = None
    tau_s: float | None = None
    p: float | None = None
    n_states: int | None = None
    warning: str | None = None


_P_MAX = 1.0 - 1e-9  # a perfect accuracy makes r infinite; the ESD limit is reached here


def n_states(
    p: float, *, n_min: int = 5, p0: float = 0.8, c: float = 0.65, n_max: int = 100_000
) -> int:
    """Return the number of states N of the optimal chain for window accuracy ``p`` (> 0.5).

    N is the smallest N ≥ ``n_min`` with ``(k̄ − 1)/(N − 1) ≥ c``, where
    ``k̄ = floor(log(r^N (1 − p0) + p0)/log r + 1)`` and ``r = p/(1 − p)``.
    """
    p = min(float(p), _P_MAX)
    if p <= 0.5:
        raise ValueError(f"p={p} must be above 0.5")
    log_r = np.log(p) - np.log1p(-p)
    lo, size = n_min, 64
    while lo <= n_max:  # search in growing chunks: N is small unless p is near 0.5
        big = np.arange(lo, min(lo + size, n_max + 1), dtype=np.float64)
        # log(r^N (1-p0) + p0), without overflow
        num = np.logaddexp(big * log_r + np.log1p(-p0), np.log(p0))
        kbar = np.floor(num / log_r + 1.0)
        ok = np.flatnonzero((kbar - 1.0) / (big - 1.0) >= c)
        if ok.size:
            return int(big[ok[0]])
        lo, size = lo + size, size * 4
    return n_max


def hitting_times(p: float, k: int) -> np.ndarray:
    """Mean number of decisions to reach state ``k`` from states ``1 … k−1``.

    Birth–death chain: up one state with probability ``p``, down with ``1 − p``,
    reflecting at state 1. Closed form
    ``h_i = (k − i)/(2p − 1) + p (r^−k − r^−i)/(2p − 1)²`` with ``r = p/(1 − p)``.

    Returns
    -------
    h : ndarray, shape (k − 1,)
    """
    p = min(float(p), _P_MAX)
    r = p / (1.0 - p)
    i = np.arange(1, k, dtype=np.float64)
    return (k - i) / (2 * p - 1) + p * (r ** -float(k) - r**-i) / (2 * p - 1) ** 2


def esd(
    tau_s: float, p: float, *, n_min: int = 5, p0: float = 0.8, c: float = 0.65
) -> tuple[float, int]:
    """Compute the expected switch duration for decision window ``tau_s`` and accuracy ``p``.

    Returns
    -------
    esd_s : float
        Expected time (s) from a switch to reaching the target state
        ``k_c = ceil(c (N − 1) + 1)``, starting from the stationary distribution
        mirrored below ``k_c`` (``π_i ∝ r^−i``); ``inf`` for ``p ≤ 0.5``.
    n : int
        Number of states N.
    """
    if p <= 0.5:
        return float("inf"), 0
    n = n_states(p, n_min=n_min, p0=p0, c=c)
    pc = min(float(p), _P_MAX)
    r = pc / (1.0 - pc)
    k = int(np.ceil(c * (n - 1) + 1))
    i = np.arange(1, k, dtype=np.float64)
    w = r ** -(i - 1.0)  # ∝ r^-i, scaled so the first term is 1 (no underflow)
    h = hitting_times(p, k)
    return float(tau_s * np.sum(w * h) / np.sum(w)), n


def mesd(
    window_s: Sequence[float],
    accuracy: Sequence[float],
    *,
    n_tau: int = 1000,
    n_min: int = 5,
    p0: float = 0.8,
    c: float = 0.65,
    label: str = "",
) -> MesdResult:
    """Minimal expected switch duration over an interpolated accuracy curve.

    Window lengths with accuracy ≤ 0.5 are dropped; the rest are linearly
    interpolated on ``n_tau`` lengths between the shortest and the longest, and the
    minimum of :func:`esd` is returned. A minimum at an end of that range is
    flagged (the true optimum may lie outside the measured lengths).

    Parameters
    ----------
    window_s : sequence of float
        Decision window lengths, s.
    accuracy : sequence of float
        Accuracy at each length.
    n_tau : int
        Interpolation points.
    n_min, p0, c : int, float, float
        Chain parameters of the paper (minimum states 5, confidence 0.8, target
        fraction 0.65).
    label : str
        Name used in the logged warning (e.g. ``"sub-01 linear"``).

    Returns
    -------
    MesdResult
    """
    taus = np.asarray(window_s, dtype=np.float64)
    ps = np.asarray(accuracy, dtype=np.float64)
    keep = np.isfinite(ps) & (ps > 0.5)
    where = f"{label}: " if label else ""
    if not keep.any():
        msg = "no window length above chance; MESD is undefined"
        logger.warning("%s%s", where, msg)
        return MesdResult(warning=msg)
    taus, ps = taus[keep], ps[keep]
    order = np.argsort(taus)
    taus, ps = taus[order], ps[order]
    grid = np.linspace(taus[0], taus[-1], n_tau) if taus.size > 1 else taus
    pp = np.interp(grid, taus, ps)
    cache: dict[float, tuple[float, int]] = {}
    vals = np.empty(grid.size)
    ns = np.zeros(grid.size, dtype=np.int64)
    for j, (t, p) in enumerate(zip(grid, pp, strict=True)):
        if p not in cache:
            cache[p] = esd(1.0, p, n_min=n_min, p0=p0, c=c)
        vals[j] = t * cache[p][0]
        ns[j] = cache[p][1]
    j = int(np.argmin(vals))
    warning = None
    if taus.size < 2:
        warning = f"only one window length ({taus[0]:g} s) above chance; MESD is a rough bound"
    elif j == 0 or j == grid.size - 1:
        end = "shortest" if j == 0 else "longest"
        warning = (
            f"MESD optimum at the {end} window length ({grid[j]:g} s); "
            "the true optimum may lie outside the measured range"
        )
    if warning:
        logger.warning("%s%s", where, warning)
    return MesdResult(
        mesd_s=float(vals[j]),
        tau_s=float(grid[j]),
        p=float(pp[j]),
        n_states=int(ns[j]),
        warning=warning,
    )


# -- paired comparison ----------------------------------------------------------------
class PairedComparison(BaseModel):
    """Exact McNemar test of two methods on the same decision windows.

    Attributes
    ----------
    method_a, method_b : str
    window_s : float
    n : int
        Windows scored by both methods.
    accuracy_a, accuracy_b : float
    a_only, b_only : int
        Windows only ``a`` (only ``b``) got right (the discordant pairs).
    p_value : float
        Two-sided binomial test of ``a_only`` in ``a_only + b_only`` against 0.5
        (1.0 when there is no discordant pair).
    """

    method_a: str
    method_b: str
    window_s: float
    n: int
    accuracy_a: float
    accuracy_b: float
    a_only: int
    b_only: int
    p_value: float


_PAIR_KEY = ["subject", "session", "run", "trial", "segment", "window_s", "start_s"]


def compare_methods(windows: pd.DataFrame, method_a: str, method_b: str) -> list[PairedComparison]:
    """Compare two methods window by window (real labels only), per window length.

    Parameters
    ----------
    windows : pandas.DataFrame
        Window rows of both methods.
    method_a, method_b : str

    Returns
    -------
    list of PairedComparison
        One per window length both methods scored.
    """
    real = windows[windows["null_rep"] < 0]
    a = real[real["method"] == method_a][[*_PAIR_KEY, "correct"]]
    b = real[real["method"] == method_b][[*_PAIR_KEY, "correct"]]
    both = a.merge(b, on=_PAIR_KEY, suffixes=("_a", "_b"))
    out = []
    for w, g in both.groupby("window_s", sort=True):
        ca, cb = g["correct_a"].to_numpy(bool), g["correct_b"].to_numpy(bool)
        a_only, b_only = int(np.sum(ca & ~cb)), int(np.sum(~ca & cb))
        p = 1.0 if a_only + b_only == 0 else stats.binomtest(a_only, a_only + b_only).pvalue
        out.append(
            PairedComparison(
                method_a=method_a,
                method_b=method_b,
                window_s=float(w),
                n=len(g),
                accuracy_a=float(ca.mean()),
                accuracy_b=float(cb.mean()),
                a_only=a_only,
                b_only=b_only,
                p_value=float(p),
            )
        )
    return out
