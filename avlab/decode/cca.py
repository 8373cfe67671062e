"""CCA attention decoder (de Cheveigné et al. 2018): canonical components of EEG and envelope.

Regularized canonical correlation analysis between the lagged EEG (``tmin … tmax``
after the stimulus, as the backward model) and the lagged attended envelope
(``env_tmin … env_tmax`` before the EEG sample), computed from additive per-trial
statistics (:mod:`avlab.decode._lagstats`): ``Cxx = Gxx_c + λx I``, ``Cyy = Gyy_c + λy I``,
``Cxy``; whitening by Cholesky factors, then ``svd(Lx⁻¹ Cxy Ly⁻ᵀ)`` keeps the first
``n_components`` component pairs.

Per decision window the features are ``Δρ_k = ρ(u_k, v_k(a)) − ρ(u_k, v_k(b))``: the
Pearson correlation of EEG component ``k`` with envelope component ``k`` of talker *a*
minus that of talker *b*. A logistic regression **without intercept** weighs them, so
the score is antisymmetric in the talkers (swapping *a* and *b* flips its sign). It is
trained on features of *inner out-of-sample* windows: each group of training trials
(``groups``; one trial per group when None) is left out in turn, the CCA is refitted on
the rest, and the held-out trials are cut into windows of ``train_window_s`` s (default
5 s), in both talker orders. With a single training group there is no inner split: the
weights are then the training canonical correlations, and a warning says so.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import cholesky, solve_triangular
from sklearn.linear_model import LogisticRegression

from avlab._logging import logger
from avlab.decode._lagstats import TrialStats, lag_shifts, lagged_predict, sum_stats, trial_stats
from avlab.decode.base import AttentionDecoder, DecodeError, window_corr
from avlab.decode.linear import check_trials

__all__ = ["CCADecoder", "CCATrial"]


@dataclass
class CCATrial:
    """What :meth:`CCADecoder.prepare` keeps per trial.

    Attributes
    ----------
    xs : TrialStats
        Lagged EEG Gram (``G``), column sums (``m``) and cross terms with the lagged
        attended envelope (``B``, one target per envelope lag; ``s_y`` its sums).
    ys : TrialStats
        Lagged attended envelope Gram (``G``) and column sums (``m``).
    eeg : ndarray, shape (n_channels, n_times)
    attended, unattended : ndarray, shape (n_times,)
        The trial's signals (references), for the inner out-of-sample windows.
    """

    xs: TrialStats
    ys: TrialStats
    eeg: np.ndarray
    attended: np.ndarray
    unattended: np.ndarray | None


def _lagged_rows(env: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """``out[i, t] = env[t + shifts[i]]``, zero outside the trial; shape (n_lags, n_times)."""
    n_t = env.size
    out = np.zeros((len(shifts), n_t))
    for i, s in enumerate(shifts):
        s = int(s)
        if s >= 0:
            out[i, : n_t - s] = env[s:]
        else:
            out[i, -s:] = env[: n_t + s]
    return out


def _units(n: int, groups: Sequence[Hashable] | None) -> list[list[int]]:
    if groups is None:
        return [[i] for i in range(n)]
    if len(groups) != n:
        raise DecodeError(
            f"{len(groups)} groups given for {n} trials.", hint="Pass one group per trial."
        )
    out: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        out.setdefault(g, []).append(i)
    return list(out.values())


class CCADecoder(AttentionDecoder):
    """Canonical correlation decoder: which talker's envelope components match the EEG's.

    Parameters
    ----------
    tmin, tmax : float
        Lags of the EEG after the stimulus, s (default 0–250 ms).
    env_tmin, env_tmax : float
        Lags of the envelope before the EEG sample, s (default 0–500 ms).
    n_components : int
        Canonical component pairs kept (K).
    reg : float
        Ridge added to both covariance matrices, relative to their mean eigenvalue.
    sfreq : float
        Sampling rate of EEG and envelopes, Hz.
    C : float
        Inverse L2 strength of the logistic regression on the window features.
    train_window_s : float
        Length of the inner out-of-sample windows the logistic regression is trained
        on, s.

    Attributes
    ----------
    x_weights_ : ndarray, shape (n_lags * n_channels, n_components)
        EEG canonical weights, feature ``i*C + c`` = EEG lag i, channel c.
    y_weights_ : ndarray, shape (n_env_lags, n_components)
        Envelope canonical weights, in ascending-shift order (descending lag).
    canonical_corr_ : ndarray, shape (n_components,)
        Training canonical correlations (regularized).
    coef_ : ndarray, shape (n_components,)
        Logistic-regression weights of the features ``Δρ_k``.
    n_inner_windows_ : int
        Inner windows (per talker order) the weights were trained on (0: fallback).
    """

    def __init__(
        self,
        *,
        tmin: float = 0.0,
        tmax: float = 0.25,
        env_tmin: float = 0.0,
        env_tmax: float = 0.5,
        n_components: int = 3,
        reg: float = 1e-3,
        sfreq: float = 64.0,
        C: float = 1.0,
        train_window_s: float = 5.0,
    ) -> None:
        self.tmin = tmin
        self.tmax = tmax
        self.env_tmin = env_tmin
        self.env_tmax = env_tmax
        self.n_components = n_components
        self.reg = reg
        self.sfreq = sfreq
        self.C = C
        self.train_window_s = train_window_s

    # -- lags ------------------------------------------------------------------------
    def _x_shifts(self) -> np.ndarray:
        return lag_shifts(self.tmin, self.tmax, self.sfreq)

    def _y_shifts(self) -> np.ndarray:
        # block i holds env[t + shift_i] = env[t − lag]: ascending shifts
        return -lag_shifts(self.env_tmin, self.env_tmax, self.sfreq)[::-1]

    # -- statistics ------------------------------------------------------------------
    def prepare(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray] | None = None,
        *,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[CCATrial]:
        """Per-trial CCA statistics (computed once; folds subtract them).

        Returns
        -------
        prepared : list of CCATrial
        """
        e, a, u = check_trials(eeg, attended, unattended)
        sx, sy = self._x_shifts(), self._y_shifts()
        out = []
        for i, x in enumerate(e):
            ylag = _lagged_rows(a[i], sy)
            out.append(
                CCATrial(
                    xs=trial_stats(x, ylag, sx),
                    ys=trial_stats(a[i][None], a[i][None], sy),
                    eeg=x,
                    attended=a[i],
                    unattended=None if u is None else u[i],
                )
            )
        return out

    def _solve(self, xs: TrialStats, ys: TrialStats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Regularized CCA from summed statistics: (Wx, Wy, canonical correlations)."""
        n = float(xs.n)
        cxx = xs.G - np.outer(xs.m, xs.m) / n
        cyy = ys.G - np.outer(ys.m, ys.m) / n
        cxy = xs.B - np.outer(xs.m, xs.s_y) / n
        for c in (cxx, cyy):
            c.flat[:: c.shape[0] + 1] += float(self.reg) * np.trace(c) / c.shape[0]
        try:
            lx = cholesky(cxx, lower=True, check_finite=False)
            ly = cholesky(cyy, lower=True, check_finite=False)
        except np.linalg.LinAlgError as exc:
            raise DecodeError(
                f"the CCA covariance is not positive definite ({exc}).",
                hint="Increase reg, or check for constant or duplicate channels.",
            ) from exc
        mid = solve_triangular(lx, cxy, lower=True, check_finite=False)
        mid = solve_triangular(ly, mid.T, lower=True, check_finite=False).T  # Lx⁻¹ Cxy Ly⁻ᵀ
        uu, ss, vt = np.linalg.svd(mid, full_matrices=False)
        k = max(1, min(int(self.n_components), ss.size))
        wx = solve_triangular(lx.T, uu[:, :k], lower=False, check_finite=False)
        wy = solve_triangular(ly.T, vt[:k].T, lower=False, check_finite=False)
        return wx, wy, ss[:k]

    def _features(
        self,
        wx: np.ndarray,
        wy: np.ndarray,
        eeg: np.ndarray,
        env_a: np.ndarray,
        env_b: np.ndarray,
        window_s: float,
    ) -> np.ndarray:
        """``Δρ_k`` per window, shape (n_windows, n_components)."""
        k = wx.shape[1]
        zero = np.zeros(k)
        u = lagged_predict(eeg, wx, zero, self._x_shifts())
        va = lagged_predict(env_a[None], wy, zero, self._y_shifts())
        vb = lagged_predict(env_b[None], wy, zero, self._y_shifts())
        fs = float(self.sfreq)
        cols = [
            window_corr(u[j], va[j], fs, window_s) - window_corr(u[j], vb[j], fs, window_s)
            for j in range(k)
        ]
        return np.stack(cols, axis=1)

    # -- estimator API ---------------------------------------------------------------
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
        """Fit the CCA on all trials and the window classifier on inner held-out windows.

        Parameters
        ----------
        eeg : list of ndarray, shape (n_channels, n_times)
            EEG per trial (unused when ``prepared`` is given).
        attended, unattended : list of ndarray, shape (n_times,)
            Envelopes per trial. The CCA uses the attended one; the inner windows need
            both (without ``unattended`` the classifier falls back to fixed weights).
        gaze : ignored
        groups : list of str | None
            Trials sharing a label stay together in the inner folds.
        prepared : list of CCATrial | None
            What :meth:`prepare` returned for these trials.

        Returns
        -------
        self : CCADecoder
        """
        trials = list(prepared) if prepared is not None else self.prepare(eeg, attended, unattended)
        if not trials or not all(isinstance(t, CCATrial) for t in trials):
            raise DecodeError(
                "prepared must be the list CCADecoder.prepare() returned.",
                hint="Call prepare() with the same decoder settings.",
            )
        if not np.array_equal(trials[0].xs.shifts, self._x_shifts()) or not np.array_equal(
            trials[0].ys.shifts, self._y_shifts()
        ):
            raise DecodeError(
                "prepared statistics were computed with other lags.",
                hint="Call prepare() again after changing the lags or sfreq.",
            )
        tot_x = sum_stats(t.xs for t in trials)
        tot_y = sum_stats(t.ys for t in trials)
        self.x_weights_, self.y_weights_, self.canonical_corr_ = self._solve(tot_x, tot_y)
        self.n_channels_ = trials[0].xs.n_channels
        feats = self._inner_features(trials, groups, tot_x, tot_y)
        if feats is None or feats.shape[0] == 0:
            logger.warning(
                "CCADecoder: no inner held-out windows (one training group, trials shorter "
                "than %g s, or no unattended envelope); weighting the components by their "
                "canonical correlations.",
                self.train_window_s,
            )
            self.coef_ = self.canonical_corr_.copy()
            self.n_inner_windows_ = 0
            return self
        x = np.concatenate([feats, -feats])  # both talker orders: label 1 = talker a
        y = np.concatenate([np.ones(len(feats)), np.zeros(len(feats))])
        clf = LogisticRegression(C=float(self.C), fit_intercept=False, max_iter=1000)
        clf.fit(x, y)
        self.coef_ = clf.coef_.ravel().astype(np.float64)
        self.n_inner_windows_ = int(len(feats))
        return self

    def _inner_features(
        self,
        trials: list[CCATrial],
        groups: Sequence[str] | None,
        tot_x: TrialStats,
        tot_y: TrialStats,
    ) -> np.ndarray | None:
        """Features of the inner held-out windows (attended = talker a), or None."""
        units = _units(len(trials), groups)
        if len(units) < 2 or any(t.unattended is None for t in trials):
            return None
        rows = []
        for unit in units:
            xs, ys = tot_x, tot_y
            for i in unit:
                xs, ys = xs - trials[i].xs, ys - trials[i].ys
            wx, wy, _ = self._solve(xs, ys)
            for i in unit:
                t = trials[i]
                assert t.unattended is not None
                rows.append(
                    self._features(wx, wy, t.eeg, t.attended, t.unattended, self.train_window_s)
                )
        return np.concatenate(rows) if rows else None

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise DecodeError("the decoder is not fitted.", hint="Call fit() first.")

    def decision_function(
        self,
        eeg: Sequence[np.ndarray] | None,
        env_a: Sequence[np.ndarray],
        env_b: Sequence[np.ndarray],
        *,
        window_s: float,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """``Σ_k coef_k · Δρ_k`` per decision window of ``window_s`` s, per trial."""
        self._check_fitted()
        e, a, b = check_trials(eeg, env_a, env_b)
        assert b is not None
        if e[0].shape[0] != self.n_channels_:
            raise DecodeError(
                f"the model expects {self.n_channels_} channels, got {e[0].shape[0]}.",
                hint="Pass EEG with the channels the model was trained on.",
            )
        return [
            self._features(self.x_weights_, self.y_weights_, x, a[i], b[i], window_s) @ self.coef_
            for i, x in enumerate(e)
        ]

    # -- saving ----------------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {
            "x_weights": self.x_weights_,
            "y_weights": self.y_weights_,
            "canonical_corr": self.canonical_corr_,
            "coef": self.coef_,
            "n_inner_windows": np.array([self.n_inner_windows_]),
        }

    def _set_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        wx = np.asarray(arrays["x_weights"], dtype=np.float64)
        wy = np.asarray(arrays["y_weights"], dtype=np.float64)
        n_x, n_y = len(self._x_shifts()), len(self._y_shifts())
        if wx.ndim != 2 or wx.shape[0] % n_x or wy.shape[0] != n_y:
            raise DecodeError(
                f"saved CCA weights {wx.shape}/{wy.shape} do not fit the lag settings "
                f"({n_x} EEG lags, {n_y} envelope lags).",
                hint="Load the model with the parameters it was saved with.",
            )
        self.x_weights_ = wx
        self.y_weights_ = wy
        self.canonical_corr_ = np.asarray(arrays["canonical_corr"], dtype=np.float64)
        self.coef_ = np.asarray(arrays["coef"], dtype=np.float64)
        self.n_inner_windows_ = int(np.asarray(arrays["n_inner_windows"]).ravel()[0])
        self.n_channels_ = wx.shape[0] // n_x
