"""Fusion of attention decoders by stacking (EEG and gaze, or any base decoders).

Each base decoder scores every decision window; a logistic regression per window
length maps the base scores to one fused score. The regression is trained on
*out-of-sample* base scores: an inner leave-one-group-out over the training
trials fits the base decoders without the held-out group and scores that group's
windows, so the fusion weights never see a base decoder's fit to its own data.
The base decoders are then refit on all training trials.

The regression has no intercept and is trained on both talker orders (features
and their negation, labels flipped), so the fused score is antisymmetric in the
talkers whenever the base scores are: no side or talker bias can be learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from avlab._logging import logger
from avlab.decode.base import AttentionDecoder, DecodeError, ModelMismatchError

__all__ = ["FusionDecoder"]


def _pick(seq: Sequence[Any] | None, idx: Sequence[int]) -> list[Any] | None:
    return None if seq is None else [seq[i] for i in idx]


class FusionDecoder(AttentionDecoder):
    """Stacked logistic regression over base decoders' window scores.

    Parameters
    ----------
    decoders : list of AttentionDecoder | None
        Base decoders (unfitted templates, cloned before fitting). None means
        ``[BackwardDecoder(sfreq=sfreq), GazeDecoder(sfreq=sfreq)]``: EEG and gaze.
    windows : tuple of float
        Decision window lengths, s, with one regression each. A window length not
        in this list uses the nearest trained one.
    C : float
        Inverse L2 regularisation of the logistic regressions (scikit-learn's ``C``),
        on base scores divided by their root mean square.
    n_splits : int | None
        Inner folds over the trial groups. None: leave one group out; an int k:
        the sorted groups dealt round-robin into k folds (faster with many groups).
    sfreq : float
        Sampling rate, Hz, given to the default base decoders.

    Attributes
    ----------
    decoders_ : list of AttentionDecoder
        Base decoders fitted on all training trials.
    windows_ : ndarray, shape (n_trained,)
        Window lengths, s, with a fitted regression (those with inner windows).
    coef_ : ndarray, shape (n_trained, n_decoders)
        Fused score = ``scores @ coef_[w]`` on the raw base scores.
    scale_ : ndarray, shape (n_trained, n_decoders)
        Root mean square of each base decoder's inner scores.
    weights_ : ndarray, shape (n_trained, n_decoders)
        ``coef_ * scale_``: weight of each base decoder on a common scale (how much
        EEG vs gaze the fusion uses at each window length).
    n_inner_windows_ : ndarray of int, shape (n_trained,)
        Inner out-of-sample windows each regression was trained on.
    """

    def __init__(
        self,
        *,
        decoders: Sequence[AttentionDecoder] | None = None,
        windows: Sequence[float] = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0),
        C: float = 1.0,
        n_splits: int | None = None,
        sfreq: float = 64.0,
    ) -> None:
        self.decoders = decoders
        self.windows = windows
        self.C = C
        self.n_splits = n_splits
        self.sfreq = sfreq

    # -- base decoders -----------------------------------------------------------
    def _templates(self) -> list[AttentionDecoder]:
        """Unfitted base decoders (clones of ``decoders`` or the defaults)."""
        if self.decoders is None:
            from avlab.decode.gaze import GazeDecoder
            from avlab.decode.linear import BackwardDecoder

            return [BackwardDecoder(sfreq=self.sfreq), GazeDecoder(sfreq=self.sfreq)]
        decs = list(self.decoders)
        if not decs:
            raise DecodeError(
                "FusionDecoder got an empty list of base decoders.",
                hint="Pass decoders=[...] or leave it None (EEG backward model + gaze).",
            )
        return [clone(d) for d in decs]

    @property
    def uses_eeg(self) -> bool:  # type: ignore[override]
        """Whether any base decoder reads EEG."""
        return any(d.uses_eeg for d in self._templates())

    @property
    def uses_gaze(self) -> bool:  # type: ignore[override]
        """Whether any base decoder reads gaze."""
        return any(d.uses_gaze for d in self._templates())

    @staticmethod
    def _inputs(
        dec: AttentionDecoder,
        eeg: Sequence[np.ndarray] | None,
        gaze: Sequence[np.ndarray] | None,
    ) -> tuple[Sequence[np.ndarray] | None, Sequence[np.ndarray] | None]:
        return (eeg if dec.uses_eeg else None), (gaze if dec.uses_gaze else None)

    def prepare(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray] | None = None,
        *,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[Any] | None:
        """Each base decoder's per-trial work, once for all folds.

        Returns
        -------
        prepared : list of tuple
            One entry per trial: a tuple with one entry per base decoder (None
            where that decoder prepares nothing).
        """
        per_dec = []
        for dec in self._templates():
            e, g = self._inputs(dec, eeg, gaze)
            p = dec.prepare(e, attended, unattended, gaze=g)
            per_dec.append([None] * len(attended) if p is None else list(p))
        return [tuple(p[i] for p in per_dec) for i in range(len(attended))]

    def _fit_base(
        self,
        k: int,
        template: AttentionDecoder,
        idx: Sequence[int],
        data: dict[str, Any],
    ) -> AttentionDecoder:
        e, g = self._inputs(template, data["eeg"], data["gaze"])
        prep = [data["prepared"][i][k] for i in idx]
        model = clone(template)
        model.fit(
            _pick(e, idx),
            _pick(data["attended"], idx),
            _pick(data["unattended"], idx),
            gaze=_pick(g, idx),
            groups=_pick(data["groups"], idx),
            prepared=None if all(p is None for p in prep) else prep,
        )
        return model

    def _base_scores(
        self,
        models: Sequence[AttentionDecoder],
        eeg: Sequence[np.ndarray] | None,
        env_a: Sequence[np.ndarray],
        env_b: Sequence[np.ndarray],
        window_s: float,
        gaze: Sequence[np.ndarray] | None,
    ) -> list[np.ndarray]:
        """Scores per trial, shape (n_windows, n_decoders)."""
        cols = []
        for m in models:
            e, g = self._inputs(m, eeg, gaze)
            cols.append(m.decision_function(e, env_a, env_b, window_s=window_s, gaze=g))
        out = []
        for i in range(len(env_a)):
            per = [np.asarray(c[i], dtype=np.float64) for c in cols]
            if len({p.size for p in per}) != 1:
                raise DecodeError(
                    f"FusionDecoder: base decoders give different window counts for trial {i} "
                    f"at {window_s:g} s ({[p.size for p in per]}).",
                    hint="Give every base decoder the same sampling rate (sfreq).",
                )
            out.append(np.stack(per, axis=1) if per[0].size else np.zeros((0, len(per))))
        return out

    # -- fitting -----------------------------------------------------------------
    def fit(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray] | None = None,
        *,
        gaze: Sequence[np.ndarray] | None = None,
        groups: Sequence[str] | None = None,
        prepared: Sequence[Any] | None = None,
    ) -> FusionDecoder:
        """Learn the fusion weights from inner out-of-sample scores, then refit the bases.

        Parameters
        ----------
        eeg : list of ndarray, shape (n_channels, n_times) | None
            EEG per trial (None if no base decoder uses EEG).
        attended, unattended : list of ndarray, shape (n_times,)
            Envelopes of the attended and unattended talker per trial (both needed).
        gaze : list of ndarray, shape (2, n_times) | None
            Gaze fractions per trial (None if no base decoder uses gaze).
        groups : list of str | None
            Trial groups for the inner split (default: each trial its own group).
        prepared : list | None
            What :meth:`prepare` returned for these trials.

        Returns
        -------
        self : FusionDecoder
        """
        n = len(attended)
        if unattended is None or len(unattended) != n:
            raise DecodeError(
                "FusionDecoder.fit needs the unattended envelope of every trial.",
                hint="Pass unattended=[...] with one envelope per trial.",
            )
        groups = [str(i) for i in range(n)] if groups is None else [str(g) for g in groups]
        if len(groups) != n:
            raise DecodeError(
                f"FusionDecoder.fit: {len(groups)} groups for {n} trials.",
                hint="Give one group label per trial.",
            )
        uniq = sorted(set(groups))
        templates = self._templates()
        if prepared is None:
            prepared = self.prepare(eeg, attended, unattended, gaze=gaze)
        data = {
            "eeg": eeg,
            "attended": attended,
            "unattended": unattended,
            "gaze": gaze,
            "groups": groups,
            "prepared": prepared,
        }
        if len(uniq) < 2:
            return self._fit_equal_weights(templates, data, n)
        k_folds = len(uniq) if self.n_splits is None else max(2, min(self.n_splits, len(uniq)))
        fold_of = {g: j % k_folds for j, g in enumerate(uniq)}
        windows = [float(w) for w in self.windows]
        feats: dict[float, list[np.ndarray]] = {w: [] for w in windows}
        for f in range(k_folds):
            test = [i for i in range(n) if fold_of[groups[i]] == f]
            train = [i for i in range(n) if fold_of[groups[i]] != f]
            models = [self._fit_base(k, t, train, data) for k, t in enumerate(templates)]
            for w in windows:
                s = self._base_scores(
                    models,
                    _pick(eeg, test),
                    _pick(attended, test),
                    _pick(unattended, test),
                    w,
                    _pick(gaze, test),
                )
                feats[w].extend(s)
        kept, coefs, scales, counts = [], [], [], []
        for w in windows:
            x = np.concatenate(feats[w], axis=0)
            if x.shape[0] == 0:
                logger.info("fusion: no inner window of %g s; that length is skipped", w)
                continue
            scale = np.sqrt(np.mean(x * x, axis=0))
            scale[scale == 0] = 1.0
            z = x / scale
            lr = LogisticRegression(C=self.C, fit_intercept=False)
            lr.fit(np.concatenate([z, -z]), np.r_[np.ones(len(z)), np.zeros(len(z))])
            kept.append(w)
            coefs.append(lr.coef_[0] / scale)
            scales.append(scale)
            counts.append(x.shape[0])
        if not kept:
            raise DecodeError(
                f"FusionDecoder.fit: no inner decision window of {windows} s fits in the trials.",
                hint="Use shorter windows or longer trials.",
            )
        self.windows_ = np.asarray(kept)
        self.coef_ = np.asarray(coefs)
        self.scale_ = np.asarray(scales)
        self.n_inner_windows_ = np.asarray(counts, dtype=np.int64)
        all_idx = list(range(n))
        self.decoders_ = [self._fit_base(k, t, all_idx, data) for k, t in enumerate(templates)]
        logger.info(
            "fusion weights (%s) per window %s: %s",
            ", ".join(type(t).__name__ for t in templates),
            kept,
            np.round(self.weights_, 3).tolist(),
        )
        return self

    def _fit_equal_weights(self, templates: list[Any], data: dict[str, Any], n: int) -> Any:
        """One training group: no inner split, so equal weights on RMS-scaled scores.

        The scales come from the base decoders' scores on their own training trials
        (no held-out trial is used); the result is said in a warning.
        """
        logger.warning(
            "FusionDecoder: only one training group, so the fusion weights cannot be learnt "
            "out of sample; using equal weights on RMS-scaled base scores."
        )
        all_idx = list(range(n))
        self.decoders_ = [self._fit_base(k, t, all_idx, data) for k, t in enumerate(templates)]
        kept, coefs, scales, counts = [], [], [], []
        for w in (float(x) for x in self.windows):
            x = np.concatenate(
                self._base_scores(
                    self.decoders_,
                    data["eeg"],
                    data["attended"],
                    data["unattended"],
                    w,
                    data["gaze"],
                ),  # fmt: skip
                axis=0,
            )
            if x.shape[0] == 0:
                continue
            scale = np.sqrt(np.mean(x * x, axis=0))
            scale[scale == 0] = 1.0
            kept.append(w)
            coefs.append(1.0 / scale)
            scales.append(scale)
            counts.append(0)
        if not kept:
            raise DecodeError(
                f"FusionDecoder.fit: no decision window of {list(self.windows)} s fits in the "
                "trials.",
                hint="Use shorter windows or longer trials.",
            )
        self.windows_ = np.asarray(kept)
        self.coef_ = np.asarray(coefs)
        self.scale_ = np.asarray(scales)
        self.n_inner_windows_ = np.asarray(counts, dtype=np.int64)
        return self

    @property
    def weights_(self) -> np.ndarray:
        """Weights on RMS-scaled base scores, shape (n_trained, n_decoders)."""
        return self.coef_ * self.scale_

    def decision_function(
        self,
        eeg: Sequence[np.ndarray] | None,
        env_a: Sequence[np.ndarray],
        env_b: Sequence[np.ndarray],
        *,
        window_s: float,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """Fused score per decision window and trial; positive means talker a.

        Parameters
        ----------
        eeg : list of ndarray, shape (n_channels, n_times) | None
        env_a, env_b : list of ndarray, shape (n_times,)
        window_s : float
            Decision window length, s; the regression of the nearest trained length is used.
        gaze : list of ndarray, shape (2, n_times) | None

        Returns
        -------
        scores : list of ndarray, shape (n_windows,)
        """
        j = int(np.argmin(np.abs(self.windows_ - float(window_s))))
        base = self._base_scores(self.decoders_, eeg, env_a, env_b, float(window_s), gaze)
        return [s @ self.coef_[j] for s in base]

    # -- saving --------------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        """Fusion weights and each base decoder's state (prefixed ``base{k}.``)."""
        out = {
            "windows": self.windows_,
            "coef": self.coef_,
            "scale": self.scale_,
            "n_inner_windows": self.n_inner_windows_,
            "base_classes": np.array([type(d).__name__ for d in self.decoders_]),
        }
        for k, d in enumerate(self.decoders_):
            for name, arr in d._state_arrays().items():
                out[f"base{k}.{name}"] = arr
        return out

    def _set_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the base decoders from the parameters and restore every state."""
        templates = self._templates()
        saved = [str(c) for c in np.asarray(arrays["base_classes"]).tolist()]
        have = [type(t).__name__ for t in templates]
        if saved != have:
            raise ModelMismatchError(
                f"saved FusionDecoder has base decoders {saved}, its parameters give {have}.",
                hint="Load the model with the parameters it was saved with.",
            )
        self.windows_ = np.asarray(arrays["windows"], dtype=np.float64)
        self.coef_ = np.asarray(arrays["coef"], dtype=np.float64)
        self.scale_ = np.asarray(arrays["scale"], dtype=np.float64)
        self.n_inner_windows_ = np.asarray(arrays["n_inner_windows"], dtype=np.int64)
        for k, t in enumerate(templates):
            prefix = f"base{k}."
            t._set_state_arrays(
                {n[len(prefix) :]: a for n, a in arrays.items() if n.startswith(prefix)}
            )
        self.decoders_ = templates
