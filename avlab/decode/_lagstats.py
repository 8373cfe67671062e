"""Additive sufficient statistics for lagged ridge regression (design note §2).

A lagged design matrix ``A`` of a multichannel signal ``x (C, T)`` has one column per
(lag, channel): ``A[t, i*C + c] = x[c, t + shifts[i]]``, zero where ``t + shifts[i]``
falls outside the trial (zero padding, as mtrf and MNE). Ridge regression of targets
``y (K, T)`` on ``A`` with an unpenalized intercept needs only

- ``G = AᵀA`` (F × F, F = L·C), ``m = Aᵀ1``, ``B = Aᵀyᵀ`` (F × K),
- ``n`` (samples), ``s_y = Σ y`` and ``s_yy = Σ y²`` per target.

These sums add over trials and subjects, so a cross-validation fold is *total minus
held-out*, and the held-out Pearson correlation of a prediction ``ŷ = A w + b`` with
each target follows from the held-out trial's statistics without forming ``ŷ``
(:func:`r_from_stats`).

``G`` is built from ``L`` lagged autocorrelation GEMMs ``R_d = x[:, :T-d] x[:, d:]ᵀ`` on
the C-contiguous ``(C, T)`` array (MNE's layout, twice as fast as ``(T, C)`` slices),
minus small running head/tail corrections for the zero padding.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from avlab.decode.base import DecodeError

__all__ = [
    "NestedResult",
    "RidgeSolution",
    "TrialStats",
    "lag_shifts",
    "lagged_predict",
    "loo_scores",
    "nested_loo",
    "r_from_stats",
    "solve",
    "sum_stats",
    "trial_stats",
]


def lag_shifts(tmin: float, tmax: float, sfreq: float) -> np.ndarray:
    """Integer sample shifts ``floor(tmin·sfreq) … ceil(tmax·sfreq)`` (mtrf's rule).

    Parameters
    ----------
    tmin, tmax : float
        First and last lag, s.
    sfreq : float
        Sampling rate, Hz.

    Returns
    -------
    shifts : ndarray of int, shape (n_lags,)
    """
    lo = int(np.floor(tmin * sfreq + 1e-9))
    hi = int(np.ceil(tmax * sfreq - 1e-9))
    if hi < lo:
        raise DecodeError(
            f"tmax ({tmax:g} s) is before tmin ({tmin:g} s).", hint="Give tmin <= tmax."
        )
    return np.arange(lo, hi + 1, dtype=np.int64)


@dataclass
class TrialStats:
    """Sufficient statistics of one trial (or a sum of trials) for lagged ridge.

    Attributes
    ----------
    G : ndarray, shape (n_features, n_features)
        Gram matrix ``AᵀA`` of the lagged design, feature ``i*C + c`` = lag i, channel c.
    m : ndarray, shape (n_features,)
        Column sums ``Aᵀ1``.
    B : ndarray, shape (n_features, n_targets)
        Cross terms ``Aᵀyᵀ`` with each target signal.
    n : int
        Number of samples.
    s_y : ndarray, shape (n_targets,)
        Sum of each target over the samples.
    s_yy : ndarray, shape (n_targets,)
        Sum of squares of each target.
    shifts : ndarray of int, shape (n_lags,)
        Sample shift of each lag block.
    n_channels : int
        Channels of the lagged signal (C).
    """

    G: np.ndarray
    m: np.ndarray
    B: np.ndarray
    n: int
    s_y: np.ndarray
    s_yy: np.ndarray
    shifts: np.ndarray
    n_channels: int

    def _combine(self, other: TrialStats, sign: float) -> TrialStats:
        if self.G.shape != other.G.shape or not np.array_equal(self.shifts, other.shifts):
            raise DecodeError(
                "trial statistics with different lags or channel counts cannot be combined.",
                hint="Compute all trials' statistics with the same channels and lags.",
            )
        return TrialStats(
            G=self.G + sign * other.G,
            m=self.m + sign * other.m,
            B=self.B + sign * other.B,
            n=int(self.n + sign * other.n),
            s_y=self.s_y + sign * other.s_y,
            s_yy=self.s_yy + sign * other.s_yy,
            shifts=self.shifts,
            n_channels=self.n_channels,
        )

    def __add__(self, other: TrialStats) -> TrialStats:
        return self._combine(other, 1.0)

    def __sub__(self, other: TrialStats) -> TrialStats:
        return self._combine(other, -1.0)

    @property
    def n_features(self) -> int:
        """Number of lagged features, ``n_lags · n_channels``."""
        return int(self.G.shape[0])


def sum_stats(stats: Iterable[TrialStats]) -> TrialStats:
    """Sum trial statistics (the training set of a fold)."""
    items = list(stats)
    if not items:
        raise DecodeError("no trials to sum statistics over.", hint="Pass at least one trial.")
    tot = TrialStats(
        G=items[0].G.copy(),
        m=items[0].m.copy(),
        B=items[0].B.copy(),
        n=items[0].n,
        s_y=items[0].s_y.copy(),
        s_yy=items[0].s_yy.copy(),
        shifts=items[0].shifts,
        n_channels=items[0].n_channels,
    )
    for s in items[1:]:
        if s.G.shape != tot.G.shape or not np.array_equal(s.shifts, tot.shifts):
            tot._combine(s, 1.0)  # raises the DecodeError
        tot.G += s.G
        tot.m += s.m
        tot.B += s.B
        tot.n += s.n
        tot.s_y = tot.s_y + s.s_y
        tot.s_yy = tot.s_yy + s.s_yy
    return tot


def trial_stats(x: np.ndarray, targets: np.ndarray, shifts: np.ndarray | int) -> TrialStats:
    """Statistics of one trial's lagged design against its target signals.

    Parameters
    ----------
    x : ndarray, shape (n_channels, n_times)
        Signal to lag (EEG for a backward model, envelope for a forward model).
    targets : ndarray, shape (n_targets, n_times)
        Signals to predict from the lagged ``x``.
    shifts : ndarray of int, shape (n_lags,) | int
        Consecutive sample shifts: feature block i holds ``x[:, t + shifts[i]]``. An int
        ``L`` means shifts ``0 … L-1`` (EEG after the stimulus).

    Returns
    -------
    stats : TrialStats
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(targets, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise DecodeError(
            f"lagged signal {x.shape} and targets {y.shape} do not match.",
            hint="Pass arrays (n_channels, n_times) and (n_targets, n_times) of equal length.",
        )
    sh = np.arange(int(shifts)) if np.isscalar(shifts) else np.asarray(shifts, dtype=np.int64)
    if sh.size == 0 or np.any(np.diff(sh) != 1):
        raise DecodeError("lag shifts must be consecutive integers.", hint="Use lag_shifts().")
    n_ch, n_t = x.shape
    n_lags = sh.size
    s0 = int(sh[0])
    feat = n_lags * n_ch
    if n_t <= max(abs(int(sh[0])), abs(int(sh[-1]))):
        raise DecodeError(
            f"a trial of {n_t} samples is shorter than the lag span.",
            hint="Drop very short trials or shorten the lags.",
        )
    g = np.empty((feat, feat))
    for d in range(n_lags):
        r_d = x[:, : n_t - d] @ x[:, d:].T  # Σ_u x[u] x[u+d]ᵀ over u in [0, T-d)
        # head: Σ x[u] x[u+d]ᵀ over u in [0, s_i) for s_i > 0
        head = x[:, :s0] @ x[:, d : s0 + d].T if s0 > 0 else np.zeros((n_ch, n_ch))
        # tail: Σ x[u] x[u+d]ᵀ over u in [T + s_i, T - d) for s_i + d < 0
        if s0 + d < 0:
            tail = x[:, n_t + s0 : n_t - d] @ x[:, n_t + s0 + d :].T
        else:
            tail = np.zeros((n_ch, n_ch))
        for i in range(n_lags - d):
            s_i = s0 + i
            if i and s_i >= 1:  # add u = s_i - 1 to the head
                head += np.outer(x[:, s_i - 1], x[:, s_i - 1 + d])
            if i and s_i - 1 + d < 0:  # drop u = T + s_i - 1 from the tail
                u = n_t + s_i - 1
                tail -= np.outer(x[:, u], x[:, u + d])
            blk = r_d - head - tail if s_i + d < 0 else r_d - head
            j = i + d
            g[i * n_ch : (i + 1) * n_ch, j * n_ch : (j + 1) * n_ch] = blk
            if d:
                g[j * n_ch : (j + 1) * n_ch, i * n_ch : (i + 1) * n_ch] = blk.T
    csum = np.concatenate([np.zeros((n_ch, 1)), np.cumsum(x, axis=1)], axis=1)  # (C, T+1)
    lo = np.clip(sh, 0, n_t)
    hi = np.clip(n_t + sh, 0, n_t)
    m = (csum[:, hi] - csum[:, lo]).T.reshape(feat)
    b = np.empty((feat, y.shape[0]))
    for i, s in enumerate(sh):
        s = int(s)
        blk = x[:, s:] @ y[:, : n_t - s].T if s >= 0 else x[:, : n_t + s] @ y[:, -s:].T
        b[i * n_ch : (i + 1) * n_ch] = blk
    return TrialStats(
        G=g,
        m=m,
        B=b,
        n=n_t,
        s_y=y.sum(axis=1),
        s_yy=np.einsum("kt,kt->k", y, y),
        shifts=sh,
        n_channels=n_ch,
    )


@dataclass
class RidgeSolution:
    """Weights of a lagged ridge model for one regularization value.

    Attributes
    ----------
    W : ndarray, shape (n_features, n_outputs)
        Weights, feature ``i*C + c`` = lag i, channel c.
    b : ndarray, shape (n_outputs,)
        Intercepts.
    alpha : float
        Regularization relative to the mean eigenvalue ``tr(G_c)/F`` (or NaN when an
        absolute λ was given).
    lam : float
        Absolute ridge parameter λ added to the centred Gram matrix.
    """

    W: np.ndarray
    b: np.ndarray
    alpha: float
    lam: float


def solve(
    stats: TrialStats,
    alphas: Sequence[float],
    *,
    targets: Sequence[int] | None = None,
    absolute: bool = False,
) -> list[RidgeSolution]:
    """Ridge weights with an unpenalized intercept, one solution per regularization value.

    Solves ``(G − m mᵀ/n + λ I) W = B − m s_yᵀ/n``, ``b = (s_y − mᵀ W)/n`` by Cholesky
    (LAPACK ``dpotrf``/``dpotrs``), with ``λ = α · tr(G_c)/F`` so that α does not depend
    on the data scale.

    Parameters
    ----------
    stats : TrialStats
        Summed statistics of the training trials.
    alphas : sequence of float
        Relative regularization values (absolute λ when ``absolute``).
    targets : sequence of int | None
        Target columns to fit (default: all).
    absolute : bool
        Treat ``alphas`` as absolute λ (for comparisons with other tools).

    Returns
    -------
    solutions : list of RidgeSolution
    """
    cols = list(range(stats.B.shape[1])) if targets is None else list(targets)
    n = float(stats.n)
    gc = stats.G - np.outer(stats.m, stats.m) / n
    bc = stats.B[:, cols] - np.outer(stats.m, stats.s_y[cols]) / n
    scale = float(np.trace(gc)) / gc.shape[0]
    out = []
    for a in alphas:
        lam = float(a) if absolute else float(a) * scale
        mat = gc.T.copy(order="F")  # symmetric: the transpose is Fortran-ordered, no f2py copy
        mat.flat[:: mat.shape[0] + 1] += lam
        chol, info = lapack.dpotrf(mat, lower=1, overwrite_a=1, clean=0)
        if info != 0:
            raise DecodeError(
                f"the ridge system is not positive definite (LAPACK info {info}, λ = {lam:g}).",
                hint="Increase the regularization or check for constant/duplicate channels.",
            )
        w, info = lapack.dpotrs(chol, bc, lower=1)
        if info != 0:
            raise DecodeError(f"ridge solve failed (LAPACK info {info}).", hint="Report this.")
        out.append(
            RidgeSolution(
                W=w,
                b=(stats.s_y[cols] - stats.m @ w) / n,
                alpha=float("nan") if absolute else float(a),
                lam=lam,
            )
        )
    return out


def r_from_stats(sol: RidgeSolution, test: TrialStats) -> np.ndarray:
    """Exact Pearson r of each prediction with each target of a held-out trial.

    Uses ``Σŷ = mᵀw + n b``, ``Σŷ² = wᵀGw + 2b mᵀw + n b²``, ``Σŷy = wᵀB + b s_y``.

    Parameters
    ----------
    sol : RidgeSolution
        Trained weights (n_outputs predictions).
    test : TrialStats
        Statistics of the held-out trial(s).

    Returns
    -------
    r : ndarray, shape (n_outputs, n_targets)
        Correlation over all samples of the held-out data (0 where a signal is constant).
    """
    w, b, n = sol.W, sol.b, float(test.n)
    mw = test.m @ w  # (P,)
    s_p = mw + n * b
    s_pp = np.einsum("fp,fp->p", w, test.G @ w) + 2 * b * mw + n * b * b
    s_py = w.T @ test.B + np.outer(b, test.s_y)  # (P, K)
    cov = s_py - np.outer(s_p, test.s_y) / n
    var_p = np.maximum(s_pp - s_p * s_p / n, 0.0)
    var_y = np.maximum(test.s_yy - test.s_y * test.s_y / n, 0.0)
    den = np.sqrt(np.outer(var_p, var_y))
    return np.divide(cov, den, out=np.zeros_like(cov), where=den > 0)


def lagged_predict(x: np.ndarray, W: np.ndarray, b: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Predict the outputs of a lagged linear model: ``ŷ[p, t] = b_p + Σ_i W_iᵀ x[:, t+s_i]``.

    Parameters
    ----------
    x : ndarray, shape (n_channels, n_times)
        Signal to lag.
    W : ndarray, shape (n_lags * n_channels, n_outputs)
        Weights (feature ``i*C + c``).
    b : ndarray, shape (n_outputs,)
        Intercepts.
    shifts : ndarray of int, shape (n_lags,)
        Sample shift of each lag block.

    Returns
    -------
    y_hat : ndarray, shape (n_outputs, n_times)
    """
    x = np.asarray(x, dtype=np.float64)
    n_ch, n_t = x.shape
    if W.shape[0] != n_ch * len(shifts):
        raise DecodeError(
            f"the model expects {W.shape[0] // max(len(shifts), 1)} channels, got {n_ch}.",
            hint="Pass EEG with the channels the model was trained on.",
        )
    out = np.repeat(np.asarray(b, dtype=np.float64)[:, None], n_t, axis=1)
    for i, s in enumerate(shifts):
        s = int(s)
        wi = W[i * n_ch : (i + 1) * n_ch].T  # (P, C)
        if s >= 0:
            out[:, : n_t - s] += wi @ x[:, s:]
        else:
            out[:, -s:] += wi @ x[:, : n_t + s]
    return out


# -- cross-validation on statistics ------------------------------------------------
ScoreFn = Callable[[RidgeSolution, TrialStats], float]


def _units(n_trials: int, groups: Sequence[Hashable] | None) -> list[list[int]]:
    """Trial indices of each fold unit (group), in first-seen order."""
    if groups is None:
        return [[i] for i in range(n_trials)]
    if len(groups) != n_trials:
        raise DecodeError(
            f"{len(groups)} groups given for {n_trials} trials.",
            hint="Pass one group label per trial.",
        )
    order: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        order.setdefault(g, []).append(i)
    return list(order.values())


def _minus(total: TrialStats, parts: Iterable[TrialStats]) -> TrialStats:
    out = total
    for p in parts:
        out = out - p
    return out


def loo_scores(
    stats: Sequence[TrialStats],
    alphas: Sequence[float],
    score: ScoreFn,
    *,
    groups: Sequence[Hashable] | None = None,
    targets: Sequence[int] | None = None,
    absolute: bool = False,
    total: TrialStats | None = None,
) -> np.ndarray:
    """Leave-one-group-out held-out scores of every trial for every regularization value.

    Parameters
    ----------
    stats : sequence of TrialStats
        Per-trial statistics.
    alphas : sequence of float
        Regularization values (see :func:`solve`).
    score : callable
        ``score(solution, held_out_trial_stats) -> float``.
    groups : sequence | None
        Group label per trial; a group is left out as a whole (default: one per trial).
    targets : sequence of int | None
        Target columns to fit (see :func:`solve`).
    absolute : bool
        Treat ``alphas`` as absolute λ.
    total : TrialStats | None
        Precomputed sum of ``stats``.

    Returns
    -------
    scores : ndarray, shape (n_trials, n_alphas)
    """
    units = _units(len(stats), groups)
    if len(units) < 2:
        raise DecodeError(
            "inner cross-validation needs trials from at least 2 groups.",
            hint="Give more training trials, or fix the regularization with alpha=...",
        )
    tot = sum_stats(stats) if total is None else total
    out = np.empty((len(stats), len(alphas)))
    for unit in units:
        sols = solve(
            _minus(tot, (stats[i] for i in unit)), alphas, targets=targets, absolute=absolute
        )
        for i in unit:
            out[i] = [score(s, stats[i]) for s in sols]
    return out


@dataclass
class NestedResult:
    """Outer leave-one-group-out folds with the regularization chosen by inner folds.

    Attributes
    ----------
    alphas : ndarray, shape (n_units,)
        Regularization chosen for each outer fold (unit).
    units : list of list of int
        Trial indices of each outer fold's held-out unit.
    solutions : list of RidgeSolution
        Model of each outer fold, trained on all other units.
    inner : ndarray, shape (n_units, n_alphas)
        Mean inner score of each outer fold per regularization value.
    """

    alphas: np.ndarray
    units: list[list[int]]
    solutions: list[RidgeSolution]
    inner: np.ndarray


def nested_loo(
    stats: Sequence[TrialStats],
    alphas: Sequence[float],
    score: ScoreFn,
    *,
    groups: Sequence[Hashable] | None = None,
    targets: Sequence[int] | None = None,
) -> NestedResult:
    """Nested leave-one-group-out: outer folds, α chosen by inner folds on the rest.

    The inner training set of (outer k, inner j) is "all − {k, j}", the same as for
    (outer j, inner k), so each unordered pair is solved once and scored on both
    held-out units: ``U(U−1)/2`` fold sets instead of ``U(U−1)``.
    """
    units = _units(len(stats), groups)
    n_u = len(units)
    if n_u < 3:
        raise DecodeError(
            "nested cross-validation needs trials from at least 3 groups.",
            hint="Give more trials, or fix the regularization.",
        )
    tot = sum_stats(stats)
    # per_unit[k][j] = scores (n_alphas,) summed over trials of unit j, trained without k, j
    sums = np.zeros((n_u, n_u, len(alphas)))
    for k in range(n_u):
        for j in range(k + 1, n_u):
            sols = solve(
                _minus(tot, (stats[i] for i in units[k] + units[j])), alphas, targets=targets
            )
            for a, s in enumerate(sols):
                sums[k, j, a] = sum(score(s, stats[i]) for i in units[j])
                sums[j, k, a] = sum(score(s, stats[i]) for i in units[k])
    sizes = np.array([len(u) for u in units], dtype=np.float64)
    inner = np.empty((n_u, len(alphas)))
    chosen = np.empty(n_u)
    sols_out = []
    for k in range(n_u):
        others = [j for j in range(n_u) if j != k]
        inner[k] = sums[k, others].sum(axis=0) / sizes[others].sum()
        chosen[k] = alphas[int(np.argmax(inner[k]))]
        train = _minus(tot, (stats[i] for i in units[k]))
        sols_out.append(solve(train, [chosen[k]], targets=targets)[0])
    return NestedResult(alphas=chosen, units=units, solutions=sols_out, inner=inner)
