"""Linear attention decoders: backward (stimulus reconstruction) and forward (TRF) ridge.

Both are ridge regressions on lagged signals with an unpenalized intercept and zero
padding at the trial ends (as mtrf and MNE's ``ReceptiveField``). The regularization
``alpha`` is relative to the mean eigenvalue of the centred Gram matrix (``λ = α ·
tr(G_c)/F``), and is chosen by an inner leave-one-group-out cross-validation on the
training trials, computed from additive per-trial statistics
(:mod:`avlab.decode._lagstats`): one pass over each trial's samples, then every fold
is a subtraction and every held-out correlation a few dot products.

To reproduce mtrf (``TRF(direction=-1)``, covariances averaged over trials, ridge
``λ_mtrf/(1/fs)``) give ``λ_ours = n_train_trials · fs · λ_mtrf`` as an absolute λ
(:func:`avlab.decode._lagstats.solve` with ``absolute=True``). Trials are expected
demeaned per channel (:class:`avlab.decode.base.Trial` is); only then do the three
tools agree to 1e-3, since MNE fills lags with the mean instead of zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from avlab._logging import logger
from avlab.decode._lagstats import (
    RidgeSolution,
    TrialStats,
    lag_shifts,
    lagged_predict,
    loo_scores,
    r_from_stats,
    solve,
    sum_stats,
    trial_stats,
)
from avlab.decode.base import AttentionDecoder, DecodeError, window_corr

__all__ = ["BackwardDecoder", "ForwardTRF", "check_trials", "plot_trf"]

DEFAULT_ALPHAS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def check_trials(
    eeg: Sequence[np.ndarray] | None,
    attended: Sequence[np.ndarray],
    unattended: Sequence[np.ndarray] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray] | None]:
    """Validate per-trial EEG ``(n_channels, n_times)`` and envelopes ``(n_times,)``.

    Returns
    -------
    eeg, attended, unattended : lists of float64 arrays
    """
    if eeg is None:
        raise DecodeError("this decoder needs EEG (eeg=None given).", hint="Pass EEG trials.")
    e = [np.asarray(x, dtype=np.float64) for x in eeg]
    a = [np.asarray(x, dtype=np.float64).ravel() for x in attended]
    u = (
        None
        if unattended is None
        else [np.asarray(x, dtype=np.float64).ravel() for x in unattended]
    )
    if not e:
        raise DecodeError("no trials given.", hint="Pass at least one trial.")
    if len(a) != len(e) or (u is not None and len(u) != len(e)):
        raise DecodeError(
            f"{len(e)} EEG trials but {len(a)} attended"
            + ("" if u is None else f" and {len(u)} unattended")
            + " envelopes.",
            hint="Pass one envelope per trial for each talker.",
        )
    n_ch = e[0].shape[0] if e[0].ndim == 2 else -1
    for i, x in enumerate(e):
        if x.ndim != 2 or x.shape[0] != n_ch:
            raise DecodeError(
                f"EEG trial {i} has shape {x.shape}; expected ({n_ch}, n_times).",
                hint="Pass arrays (n_channels, n_times) with the same channels in every trial.",
            )
        if a[i].size != x.shape[1] or (u is not None and u[i].size != x.shape[1]):
            raise DecodeError(
                f"trial {i}: EEG has {x.shape[1]} samples, the envelopes "
                f"{a[i].size}" + ("" if u is None else f"/{u[i].size}") + ".",
                hint="Cut EEG and envelopes to the same span at the same rate.",
            )
        if not np.all(np.isfinite(x)):
            raise DecodeError(f"EEG trial {i} contains NaN or inf.", hint="Clean the EEG first.")
    return e, a, u


def _check_inner(inner_cv: str) -> None:
    if inner_cv != "loto":
        raise DecodeError(f"inner_cv={inner_cv!r} is not supported.", hint="Use inner_cv='loto'.")


class _LaggedRidge(AttentionDecoder):
    """Shared fitting of the lagged ridge decoders (α selection, state)."""

    def _shifts(self) -> np.ndarray:
        raise NotImplementedError

    def _select_and_fit(
        self,
        stats: list[TrialStats],
        groups: Sequence[Any] | None,
        targets: list[int],
        score: Any,
    ) -> tuple[RidgeSolution, TrialStats]:
        """Choose α (inner leave-one-group-out) and fit on all trials."""
        _check_inner(self.inner_cv)
        total = sum_stats(stats)
        n_units = len(set(groups)) if groups is not None else len(stats)
        if self.alpha is not None:
            alpha = float(self.alpha)
            self.inner_scores_ = np.full(len(self.alphas), np.nan)
        elif n_units < 2:
            # one training group: no inner split possible; the middle of the grid, said aloud
            alpha = float(sorted(self.alphas)[len(self.alphas) // 2])
            self.inner_scores_ = np.full(len(self.alphas), np.nan)
            logger.warning(
                "%s: only one training group, so the regularization cannot be chosen by "
                "cross-validation; using alpha=%g.",
                type(self).__name__,
                alpha,
            )
        else:
            alphas = [float(a) for a in self.alphas]
            per_trial = loo_scores(
                stats, alphas, score, groups=groups, targets=targets, total=total
            )
            self.inner_scores_ = per_trial.mean(axis=0)
            alpha = alphas[int(np.argmax(self.inner_scores_))]
            logger.debug("inner scores %s -> alpha %g", np.round(self.inner_scores_, 4), alpha)
        self.alpha_ = alpha
        return solve(total, [alpha], targets=targets)[0], total


class BackwardDecoder(_LaggedRidge):
    """Backward model: reconstruct the attended envelope from lagged EEG, by ridge.

    The reconstruction ``ŷ(t) = b + Σ_τ Σ_c w(τ, c) eeg(c, t + τ)`` uses EEG from
    ``tmin`` to ``tmax`` after each envelope sample. Per decision window, the score is
    ``r(ŷ, env_a) − r(ŷ, env_b)`` (Pearson r within the window).

    Parameters
    ----------
    tmin, tmax : float
        Lags of the EEG after the stimulus, s (default 0–250 ms).
    sfreq : float
        Sampling rate of EEG and envelopes, Hz.
    alphas : sequence of float
        Regularization grid, relative to the mean eigenvalue of the lagged EEG covariance.
    alpha : float | None
        Fixed regularization; skips the inner selection.
    inner_cv : {"loto"}
        Inner cross-validation for α: leave one group (``groups`` of ``fit``; one trial
        per group when None) out; α maximises the mean held-out r with the attended
        envelope over the training trials.

    Attributes
    ----------
    coef_ : ndarray, shape (n_lags, n_channels)
        Decoder weights.
    intercept_ : float
        Intercept.
    alpha_ : float
        Regularization used.
    times_ : ndarray, shape (n_lags,)
        Lag of each row of ``coef_``, s (EEG after the stimulus).
    inner_scores_ : ndarray, shape (n_alphas,)
        Mean inner held-out r(attended) per ``alphas`` entry (NaN with a fixed α).
    patterns_ : ndarray, shape (n_lags, n_channels)
        Forward-model (Haufe) patterns ``G_c w / (wᵀ G_c w)``, the covariance of the
        lagged EEG with the reconstruction.
    """

    def __init__(
        self,
        *,
        tmin: float = 0.0,
        tmax: float = 0.25,
        sfreq: float = 64.0,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        alpha: float | None = None,
        inner_cv: str = "loto",
    ) -> None:
        self.tmin = tmin
        self.tmax = tmax
        self.sfreq = sfreq
        self.alphas = alphas
        self.alpha = alpha
        self.inner_cv = inner_cv

    def _shifts(self) -> np.ndarray:
        return lag_shifts(self.tmin, self.tmax, self.sfreq)

    def prepare(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray] | None = None,
        *,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[TrialStats]:
        """Per-trial statistics of the lagged EEG against (attended, unattended).

        Returns
        -------
        stats : list of TrialStats
            One per trial; targets are the attended and (when given) unattended envelope.
        """
        e, a, u = check_trials(eeg, attended, unattended)
        sh = self._shifts()
        out = []
        for i, x in enumerate(e):
            y = a[i][None] if u is None else np.stack([a[i], u[i]])
            out.append(trial_stats(x, y, sh))
        return out

    def fit(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray] | None = None,
        *,
        gaze: Sequence[np.ndarray] | None = None,
        groups: Sequence[str] | None = None,
        prepared: Sequence[Any] | None = None,
    ) -> BackwardDecoder:
        """Choose α by inner cross-validation, then fit on all given trials.

        Parameters
        ----------
        eeg : list of ndarray, shape (n_channels, n_times)
            EEG per trial (unused when ``prepared`` is given).
        attended, unattended : list of ndarray, shape (n_times,)
            Envelopes per trial; only the attended one trains the model.
        gaze : ignored
        groups : list of str | None
            Trials sharing a label stay together in the inner folds.
        prepared : list of TrialStats | None
            What :meth:`prepare` returned for these trials.

        Returns
        -------
        self : BackwardDecoder
        """
        stats = list(prepared) if prepared is not None else self.prepare(eeg, attended, unattended)
        if not stats or not all(isinstance(s, TrialStats) for s in stats):
            raise DecodeError(
                "prepared must be the list BackwardDecoder.prepare() returned.",
                hint="Call prepare() with the same decoder settings.",
            )
        sh = self._shifts()
        if not np.array_equal(stats[0].shifts, sh):
            raise DecodeError(
                "prepared statistics were computed with other lags.",
                hint="Call prepare() again after changing tmin/tmax/sfreq.",
            )
        sol, total = self._select_and_fit(
            stats, groups, [0], lambda s, t: float(r_from_stats(s, t)[0, 0])
        )
        n_ch = stats[0].n_channels
        w = sol.W[:, 0]
        self.coef_ = w.reshape(len(sh), n_ch).copy()
        self.intercept_ = float(sol.b[0])
        self.times_ = sh / float(self.sfreq)
        gc = total.G - np.outer(total.m, total.m) / total.n
        gw = gc @ w
        den = float(w @ gw)
        self.patterns_ = (gw / den if den > 0 else np.zeros_like(gw)).reshape(len(sh), n_ch)
        self.n_channels_ = n_ch
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise DecodeError("the decoder is not fitted.", hint="Call fit() first.")

    def predict_envelope(self, eeg: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Reconstruct the attended envelope from EEG.

        Parameters
        ----------
        eeg : list of ndarray, shape (n_channels, n_times)

        Returns
        -------
        envelopes : list of ndarray, shape (n_times,)
        """
        self._check_fitted()
        w = self.coef_.reshape(-1, 1)
        b = np.array([self.intercept_])
        sh = self._shifts()
        return [lagged_predict(np.asarray(x, dtype=np.float64), w, b, sh)[0] for x in eeg]

    def decision_function(
        self,
        eeg: Sequence[np.ndarray] | None,
        env_a: Sequence[np.ndarray],
        env_b: Sequence[np.ndarray],
        *,
        window_s: float,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """``r(ŷ, env_a) − r(ŷ, env_b)`` per decision window of ``window_s`` s, per trial."""
        e, a, b = check_trials(eeg, env_a, env_b)
        assert b is not None
        fs = float(self.sfreq)
        return [
            window_corr(y, a[i], fs, window_s) - window_corr(y, b[i], fs, window_s)
            for i, y in enumerate(self.predict_envelope(e))
        ]

    def _state_arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {
            "coef": self.coef_,
            "intercept": np.array([self.intercept_]),
            "alpha": np.array([self.alpha_]),
            "times": self.times_,
            "inner_scores": self.inner_scores_,
            "patterns": self.patterns_,
        }

    def _set_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        coef = np.asarray(arrays["coef"], dtype=np.float64)
        if coef.shape[0] != len(self._shifts()):
            raise DecodeError(
                f"saved weights have {coef.shape[0]} lags, the settings give "
                f"{len(self._shifts())}.",
                hint="Load the model with the parameters it was saved with.",
            )
        self.coef_ = coef
        self.intercept_ = float(np.asarray(arrays["intercept"]).ravel()[0])
        self.alpha_ = float(np.asarray(arrays["alpha"]).ravel()[0])
        self.times_ = np.asarray(arrays["times"], dtype=np.float64)
        self.inner_scores_ = np.asarray(arrays["inner_scores"], dtype=np.float64)
        self.patterns_ = np.asarray(arrays["patterns"], dtype=np.float64)
        self.n_channels_ = int(coef.shape[1])


class ForwardTRF(_LaggedRidge):
    """Forward model (temporal response function): EEG predicted from the envelope, by ridge.

    ``eeg(c, t) ≈ b_c + Σ_τ w(c, τ) env(t − τ)`` for lags ``tmin … tmax``; one ridge
    for all channels, α chosen by inner leave-one-group-out on the mean over channels
    of the held-out r. As a decoder it predicts the EEG from each talker's envelope
    and, per decision window, scores ``mean_c r(pred_a, eeg) − mean_c r(pred_b, eeg)``.

    Parameters
    ----------
    tmin, tmax : float
        Lags of the response after the stimulus, s (default −100 … 400 ms).
    sfreq : float
        Sampling rate of EEG and envelopes, Hz.
    alphas : sequence of float
        Regularization grid, relative to the mean eigenvalue of the lagged envelope
        covariance.
    alpha : float | None
        Fixed regularization; skips the inner selection.
    inner_cv : {"loto"}
        Inner cross-validation for α (leave one group out).

    Attributes
    ----------
    coef_ : ndarray, shape (n_channels, n_lags)
        Response weights (EEG units per envelope unit), lag order of ``times_``.
    intercept_ : ndarray, shape (n_channels,)
    times_ : ndarray, shape (n_lags,)
        Lags, s.
    alpha_ : float
    inner_scores_ : ndarray, shape (n_alphas,)
    """

    def __init__(
        self,
        *,
        tmin: float = -0.1,
        tmax: float = 0.4,
        sfreq: float = 64.0,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        alpha: float | None = None,
        inner_cv: str = "loto",
    ) -> None:
        self.tmin = tmin
        self.tmax = tmax
        self.sfreq = sfreq
        self.alphas = alphas
        self.alpha = alpha
        self.inner_cv = inner_cv

    def _lags(self) -> np.ndarray:
        return lag_shifts(self.tmin, self.tmax, self.sfreq)

    def _shifts(self) -> np.ndarray:
        # the design's block i holds env[t + shift_i] = env[t - lag]: ascending shifts
        return -self._lags()[::-1]

    def prepare(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray] | None = None,
        *,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[TrialStats]:
        """Per-trial statistics of the lagged attended envelope against every EEG channel."""
        e, a, _ = check_trials(eeg, attended, None)
        sh = self._shifts()
        return [trial_stats(a[i][None], x, sh) for i, x in enumerate(e)]

    def fit(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray] | None = None,
        *,
        gaze: Sequence[np.ndarray] | None = None,
        groups: Sequence[str] | None = None,
        prepared: Sequence[Any] | None = None,
    ) -> ForwardTRF:
        """Choose α by inner cross-validation, then fit the response on all trials.

        Parameters
        ----------
        eeg : list of ndarray, shape (n_channels, n_times)
        attended : list of ndarray, shape (n_times,)
            The envelope the response is modelled to (the attended talker's).
        unattended : ignored
        gaze : ignored
        groups : list of str | None
            Trials sharing a label stay together in the inner folds.
        prepared : list of TrialStats | None
            What :meth:`prepare` returned for these trials.

        Returns
        -------
        self : ForwardTRF
        """
        stats = list(prepared) if prepared is not None else self.prepare(eeg, attended)
        if not stats or not all(isinstance(s, TrialStats) for s in stats):
            raise DecodeError(
                "prepared must be the list ForwardTRF.prepare() returned.",
                hint="Call prepare() with the same decoder settings.",
            )
        n_ch = stats[0].B.shape[1]

        def score(sol: RidgeSolution, test: TrialStats) -> float:
            return float(np.mean(np.diag(r_from_stats(sol, test))))

        sol, _ = self._select_and_fit(stats, groups, list(range(n_ch)), score)
        # W: (n_lags, n_channels) in ascending-shift order = descending lag
        self.coef_ = sol.W[::-1].T.copy()
        self.intercept_ = np.asarray(sol.b, dtype=np.float64).copy()
        self.times_ = self._lags() / float(self.sfreq)
        self.n_channels_ = n_ch
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise DecodeError("the TRF is not fitted.", hint="Call fit() first.")

    def predict_eeg(self, envelopes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Predict the EEG from envelopes.

        Parameters
        ----------
        envelopes : list of ndarray, shape (n_times,)

        Returns
        -------
        eeg : list of ndarray, shape (n_channels, n_times)
        """
        self._check_fitted()
        w = self.coef_.T[::-1]  # back to ascending-shift rows, (n_lags, n_channels)
        sh = self._shifts()
        return [
            lagged_predict(np.asarray(x, dtype=np.float64).ravel()[None], w, self.intercept_, sh)
            for x in envelopes
        ]

    def decision_function(
        self,
        eeg: Sequence[np.ndarray] | None,
        env_a: Sequence[np.ndarray],
        env_b: Sequence[np.ndarray],
        *,
        window_s: float,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """Mean over channels of r(predicted from a, EEG) − r(predicted from b, EEG) per window."""
        e, a, b = check_trials(eeg, env_a, env_b)
        assert b is not None
        fs = float(self.sfreq)
        out = []
        for x, pa, pb in zip(e, self.predict_eeg(a), self.predict_eeg(b), strict=True):
            ra = np.mean([window_corr(pa[c], x[c], fs, window_s) for c in range(x.shape[0])], 0)
            rb = np.mean([window_corr(pb[c], x[c], fs, window_s) for c in range(x.shape[0])], 0)
            out.append(np.asarray(ra - rb, dtype=np.float64))
        return out

    def _state_arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {
            "coef": self.coef_,
            "intercept": self.intercept_,
            "alpha": np.array([self.alpha_]),
            "times": self.times_,
            "inner_scores": self.inner_scores_,
        }

    def _set_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        coef = np.asarray(arrays["coef"], dtype=np.float64)
        if coef.ndim != 2 or coef.shape[1] != len(self._lags()):
            raise DecodeError(
                f"saved weights have shape {coef.shape}; the settings give "
                f"{len(self._lags())} lags.",
                hint="Load the model with the parameters it was saved with.",
            )
        self.coef_ = coef
        self.intercept_ = np.asarray(arrays["intercept"], dtype=np.float64)
        self.alpha_ = float(np.asarray(arrays["alpha"]).ravel()[0])
        self.times_ = np.asarray(arrays["times"], dtype=np.float64)
        self.inner_scores_ = np.asarray(arrays["inner_scores"], dtype=np.float64)
        self.n_channels_ = int(coef.shape[0])


def plot_trf(
    trf: ForwardTRF,
    ch_names: Sequence[str],
    *,
    montage_info: Any = None,
    scale: float = 1e6,
    unit: str = "µV",
) -> Any:
    """Plot a forward model: weights over time (each channel, and GFP) and scalp maps.

    Parameters
    ----------
    trf : ForwardTRF
        Fitted model.
    ch_names : sequence of str
        Channel names in the rows of ``trf.coef_``.
    montage_info : mne.Info | None
        Info with electrode positions; when given (and it has positions for the
        channels), topomaps are drawn at the two largest GFP peaks between 30 and
        350 ms.
    scale : float
        Factor applied to the weights for display (1e6: volts to µV).
    unit : str
        Unit of the scaled weights.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    coef = np.asarray(trf.coef_, dtype=np.float64) * scale
    t_ms = np.asarray(trf.times_) * 1000.0
    gfp = coef.std(axis=0)
    inside = np.flatnonzero((t_ms >= 30) & (t_ms <= 350))
    order = inside[np.argsort(gfp[inside])[::-1]] if inside.size else np.array([], int)
    peaks: list[int] = []
    for i in order:  # two largest, at least 50 ms apart
        if all(abs(t_ms[i] - t_ms[j]) >= 50 for j in peaks):
            peaks.append(int(i))
        if len(peaks) == 2:
            break
    info = _info_for(montage_info, ch_names)
    n_maps = len(sorted(peaks)) if info is not None else 0
    fig = Figure(figsize=(6.4 + 2.2 * n_maps, 3.8), layout="constrained")
    axes = fig.subplots(1, 1 + n_maps, width_ratios=[3] + [1] * n_maps, squeeze=False)[0]
    ax = axes[0]
    ax.plot(t_ms, coef.T, color="0.6", lw=0.6)
    ax.plot(t_ms, gfp, color="C3", lw=2.2, label="GFP (SD over channels)")
    ax.axvline(0, color="k", lw=0.8)
    ax.axhline(0, color="k", lw=0.5)
    for i in peaks:
        ax.axvline(t_ms[i], color="C0", ls="--", lw=0.8)
    ax.set_xlabel("lag after the speech envelope (ms)")
    ax.set_ylabel(f"weight ({unit} per envelope unit)")
    ax.set_title("Forward model (TRF) of the attended talker")
    ax.legend(loc="upper right", fontsize="small")
    if info is not None:
        import mne

        lim = float(np.abs(coef[:, peaks]).max()) if peaks else 1.0
        for ax_map, i in zip(axes[1:], sorted(peaks), strict=True):
            mne.viz.plot_topomap(coef[:, i], info, axes=ax_map, show=False, vlim=(-lim, lim),
                                 contours=4)  # fmt: skip
            ax_map.set_title(f"{t_ms[i]:.0f} ms")
    return fig


def _info_for(info: Any, ch_names: Sequence[str]) -> Any:
    """``info`` restricted to ``ch_names`` in order, or None without usable positions."""
    if info is None:
        return None
    import mne

    try:
        picks = [info.ch_names.index(c) for c in ch_names]
    except ValueError:
        logger.info("TRF figure: the montage lacks some channels; no scalp maps.")
        return None
    sub = mne.pick_info(info, picks)
    pos = np.array([ch["loc"][:3] for ch in sub["chs"]])
    if not np.all(np.isfinite(pos)) or np.allclose(pos, 0):
        logger.info("TRF figure: no electrode positions; no scalp maps.")
        return None
    return sub
