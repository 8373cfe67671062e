"""CCA attention decoder (de Cheveigné et al. 2018), from additive per-trial statistics.

Regularized canonical correlation analysis between the lagged EEG (``tmin``–``tmax``,
default 0–250 ms after the stimulus) and the lagged attended envelope (0–``env_tmax``,
default 0–500 ms before the EEG sample). Both covariances and the cross-covariance
come from :func:`avlab.decode._lagstats.trial_stats` with the lagged envelope rows as
the targets, so they add over trials like the linear decoders' statistics.

Decision: in each window, the correlation ``ρ_k`` of the k-th EEG component with the
k-th component of each talker's envelope gives the features ``ρ_a,k − ρ_b,k``
(k = 1…K); a logistic regression without intercept weighs them into a score.

**Classifier training (documented choice).** The classifier is trained on
non-overlapping windows of ``train_window_s`` s cut from the *training* trials, with
the CCA also fitted on them, each window entered once as is (label a) and once with
the sign flipped (label b), so the score is antisymmetric in the talkers. Those
features are in-sample for the CCA, so their magnitudes are optimistic; the classifier
only learns the relative weight of the components and no test trial enters any step,
so the held-out evaluation stays leakage-free. The regularization is fixed
(``alpha_x``, ``alpha_y``, relative to the mean eigenvalue), not cross-validated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import cholesky, solve_triangular, svd
from sklearn.linear_model import LogisticRegression

from avlab.decode._lagstats import TrialStats, lag_shifts, lagged_predict, trial_stats
from avlab.decode.base import AttentionDecoder, DecodeError
from avlab.decode.linear import check_trials

__all__ = ["CCADecoder", "CCAStats"]


@dataclass
class CCAStats:
    """Per-trial statistics for CCA: lagged EEG × lagged envelope, and the envelope Gram.

    Attributes
    ----------
    xy : TrialStats
        Lagged EEG against the lagged attended envelope rows (targets).
    yy : ndarray, shape (n_env_lags, n_env_lags)
        Gram matrix of the lagged attended envelope.
    """

    xy: TrialStats
    yy: np.ndarray

    def __add__(self, other: CCAStats) -> CCAStats:
        return CCAStats(xy=self.xy + other.xy, yy=self.yy + other.yy)


def _lag_env(env: np.ndarray, n_lags: int) -> np.ndarray:
    """Rows ``env(t − l)`` for l = 0 … n_lags−1, zero before the trial; (n_lags, n_times)."""
    out = np.zeros((n_lags, env.size))
    for lag in range(n_lags):
        out[lag, lag:] = env[: env.size - lag]
    return out


def _window_rows_corr(x: np.ndarray, y: np.ndarray, width: int) -> np.ndarray:
    """Per-row, per-window Pearson r of x and y (K, T) → (n_windows, K)."""
    k, n_t = x.shape
    n = n_t // width if width >= 2 else 0
    if n == 0:
        return np.zeros((0, k))
    xw = x[:, : n * width].reshape(k, n, width)
    yw = y[:, : n * width].reshape(k, n, width)
    xw = xw - xw.mean(axis=2, keepdims=True)
    yw = yw - yw.mean(axis=2, keepdims=True)
    den = np.sqrt((xw * xw).sum(axis=2) * (yw * yw).sum(axis=2))
    return np.divide((xw * yw).sum(axis=2), den, out=np.zeros((k, n)), where=den > 0).T


class CCADecoder(AttentionDecoder):
    """Regularized CCA between lagged EEG and lagged envelope, with a window classifier.

    Parameters
    ----------
    tmin, tmax : float
        EEG lags after the stimulus, s.
    env_tmax : float
        Envelope lags 0 … ``env_tmax`` s (envelope before the EEG sample).
    sfreq : float
        Sampling rate, Hz.
    n_components : int
        Canonical component pairs kept (K).
    alpha_x, alpha_y : float
        Ridge on the EEG and envelope covariances, relative to their mean eigenvalue.
    train_window_s : float
        Window length of the classifier's training windows, s.
    C : float
        Inverse regularization of the logistic regression.

    Attributes
    ----------
    wx_ : ndarray, shape (n_eeg_features, n_components)
        EEG canonical weights (feature ``lag*C + channel``).
    wy_ : ndarray, shape (n_env_lags, n_components)
        Envelope canonical weights.
    canonical_corr_ : ndarray, shape (n_components,)
        Training canonical correlations.
    clf_coef_ : ndarray, shape (n_components,)
        Logistic-regression weights of the features ``ρ_a,k − ρ_b,k``.
    """

    def __init__(
        self,
        *,
        tmin: float = 0.0,
        tmax: float = 0.25,
        env_tmax: float = 0.5,
        sfreq: float = 64.0,
        n_components: int = 3,
        alpha_x: float = 1e-2,
        alpha_y: float = 1e-2,
        train_window_s: float = 5.0,
        C: float = 1.0,
    ) -> None:
        self.tmin = tmin
        self.tmax = tmax
        self.env_tmax = env_tmax
        self.sfreq = sfreq
        self.n_components = n_components
        self.alpha_x = alpha_x
        self.alpha_y = alpha_y
        self.train_window_s = train_window_s
        self.C = C

    def _n_env_lags(self) -> int:
        return len(lag_shifts(0.0, self.env_tmax, self.sfreq))

    def prepare(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray] | None = None,
        *,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[CCAStats]:
        """Per-trial CCA statistics of the lagged EEG and lagged attended envelope."""
        e, a, _ = check_trials(eeg, attended, None)
        sh = lag_shifts(self.tmin, self.tmax, self.sfreq)
        out = []
        for x, env in zip(e, a, strict=True):
            ly = _lag_env(env, self._n_env_lags())
            out.append(CCAStats(xy=trial_stats(x, ly, sh), yy=ly @ ly.T))
        return out

    def _components(
        self, eeg: list[np.ndarray], env: list[np.ndarray]
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        sh = lag_shifts(self.tmin, self.tmax, self.sfreq)
        k = self.wx_.shape[1]
        zx = [lagged_predict(x, self.wx_, np.zeros(k), sh) for x in eeg]
        zy = [self.wy_.T @ _lag_env(y, self.wy_.shape[0]) for y in env]
        return zx, zy

    def _features(
        self,
        eeg: list[np.ndarray],
        env_a: list[np.ndarray],
        env_b: list[np.ndarray],
        window_s: float,
    ) -> list[np.ndarray]:
        width = int(round(window_s * float(self.sfreq)))
        zx, za = self._components(eeg, env_a)
        _, zb = self._components(eeg, env_b)
        return [
            _window_rows_corr(x, ya, width) - _window_rows_corr(x, yb, width)
            for x, ya, yb in zip(zx, za, zb, strict=True)
        ]

    def fit(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray] | None = None,
        *,
        gaze: Sequence[np.ndarray] | None = None,
        groups: Sequence[str] | None = None,
        prepared: Sequence[Any] | None = None,
    ) -> CCADecoder:
        """Fit the CCA on all trials, then the classifier on their windows (see module).

        ``unattended`` is required: the classifier's features contrast the talkers.
        """
        e, a, u = check_trials(eeg, attended, unattended)
        if u is None:
            raise DecodeError(
                "CCADecoder.fit needs the unattended envelopes.",
                hint="Pass unattended=[...] (one envelope per trial).",
            )
        stats = list(prepared) if prepared is not None else self.prepare(e, a)
        if not stats or not all(isinstance(s, CCAStats) for s in stats):
            raise DecodeError(
                "prepared must be the list CCADecoder.prepare() returned.",
                hint="Call prepare() with the same decoder settings.",
            )
        tot = stats[0]
        for s in stats[1:]:
            tot = tot + s
        st, n = tot.xy, float(tot.xy.n)
        cxx = st.G - np.outer(st.m, st.m) / n
        cyy = tot.yy - np.outer(st.s_y, st.s_y) / n
        cxy = st.B - np.outer(st.m, st.s_y) / n
        cxx[np.diag_indices_from(cxx)] += self.alpha_x * np.trace(cxx) / cxx.shape[0]
        cyy[np.diag_indices_from(cyy)] += self.alpha_y * np.trace(cyy) / cyy.shape[0]
        lx = cholesky(cxx, lower=True)
        ly = cholesky(cyy, lower=True)
        m = solve_triangular(lx, solve_triangular(ly, cxy.T, lower=True).T, lower=True)
        uu, ss, vt = svd(m, full_matrices=False)
        k = int(min(self.n_components, ss.size))
        if k < 1:
            raise DecodeError("n_components must be >= 1.", hint="Use n_components=3.")
        self.wx_ = solve_triangular(lx, uu[:, :k], lower=True, trans="T")
        self.wy_ = solve_triangular(ly, vt[:k].T, lower=True, trans="T")
        self.canonical_corr_ = ss[:k].copy()
        feats = np.concatenate(self._features(e, a, u, float(self.train_window_s)))
        if feats.shape[0] == 0:
            raise DecodeError(
                f"no training window of {self.train_window_s:g} s fits in the trials.",
                hint="Lower train_window_s.",
            )
        xs = np.concatenate([feats, -feats])
        ys = np.r_[np.ones(len(feats)), np.zeros(len(feats))]
        clf = LogisticRegression(fit_intercept=False, C=float(self.C)).fit(xs, ys)
        self.clf_coef_ = clf.coef_.ravel().copy()
        return self

    def decision_function(
        self,
        eeg: Sequence[np.ndarray] | None,
        env_a: Sequence[np.ndarray],
        env_b: Sequence[np.ndarray],
        *,
        window_s: float,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """Logistic score of the features ``ρ_a,k − ρ_b,k`` per window, per trial."""
        if not hasattr(self, "wx_"):
            raise DecodeError("the CCA decoder is not fitted.", hint="Call fit() first.")
        e, a, b = check_trials(eeg, env_a, env_b)
        assert b is not None
        return [f @ self.clf_coef_ for f in self._features(e, a, b, window_s)]

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {
            "wx": self.wx_,
            "wy": self.wy_,
            "canonical_corr": self.canonical_corr_,
            "clf_coef": self.clf_coef_,
        }

    def _set_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        wy = np.asarray(arrays["wy"], dtype=np.float64)
        if wy.shape[0] != self._n_env_lags():
            raise DecodeError(
                f"saved envelope weights have {wy.shape[0]} lags, the settings give "
                f"{self._n_env_lags()}.",
                hint="Load the model with the parameters it was saved with.",
            )
        self.wx_ = np.asarray(arrays["wx"], dtype=np.float64)
        self.wy_ = wy
        self.canonical_corr_ = np.asarray(arrays["canonical_corr"], dtype=np.float64)
        self.clf_coef_ = np.asarray(arrays["clf_coef"], dtype=np.float64)
