"""What every attention decoder shares: the trial record, decision windows, the estimator API.

The decoders are scikit-learn style estimators on plain arrays, so data avlab did
not record (the DTU and KU Leuven AAD sets ship as MATLAB files) can be used
directly. One call convention for all of them:

``fit(eeg, attended, unattended=None, *, gaze=None, groups=None, prepared=None)``
    ``eeg`` is a list of per-trial arrays ``(n_channels, n_times)``; ``attended``
    and ``unattended`` are lists of per-trial envelopes ``(n_times,)`` at the same
    rate. ``gaze`` (gaze decoders) is a list of ``(2, n_times)`` arrays: the
    fraction of gaze on the attended (row 0) and the unattended (row 1) talker's
    face. ``groups`` labels trials that must stay on one side of any inner
    cross-validation split (trials sharing stimuli). ``prepared`` takes what
    :meth:`AttentionDecoder.prepare` returned for these trials, so cross-validation
    computes per-trial statistics once.
``decision_function(eeg, env_a, env_b, *, window_s, gaze=None)``
    For each trial, one score per non-overlapping decision window of ``window_s``
    seconds from the trial start: positive means talker *a* is attended. ``gaze``
    rows are then (talker a, talker b).
``predict`` / ``score``
    0 for talker a, 1 for talker b; ``score`` is the accuracy when *a* is the
    attended talker.

A decoder that ignores EEG (the gaze decoder) accepts ``eeg=None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from avlab.errors import AvlabError

__all__ = [
    "AttentionDecoder",
    "DecodeError",
    "ModelMismatchError",
    "Trial",
    "n_windows",
    "window_bounds",
    "window_corr",
]


class DecodeError(AvlabError, ValueError):
    """Data or options cannot be decoded (no trials, wrong shapes, missing envelopes)."""

    exit_code = 15


class ModelMismatchError(AvlabError, ValueError):
    """A saved model does not fit the data it is applied to (channels, rate, preprocessing)."""

    exit_code = 16


@dataclass
class Trial:
    """One stretch of a run with two talkers and a constant attended talker.

    A trial of an attention-switch run is split at each switch into segments; all
    segments keep the trial's ``trial`` number and ``group``, so cross-validation
    never puts two segments of one trial on opposite sides.

    Attributes
    ----------
    eeg : ndarray, shape (n_channels, n_times)
        Preprocessed EEG, volts, at ``sfreq``; channel means removed.
    envelopes : ndarray, shape (2, n_times)
        Speech envelopes (arbitrary units) of the attended (row 0) and the
        unattended (row 1) talker, band-passed like the EEG.
    sfreq : float
        Sampling rate of ``eeg``, ``envelopes`` and ``gaze``, Hz.
    subject : str
        BIDS subject label (without ``sub-``).
    trial : int
        Trial number in the run (from ``events.tsv``).
    group : str
        Fold group: trials that share a stimulus file share a group.
    ch_names : list of str
        EEG channel names, in row order.
    gaze : ndarray, shape (2, n_times) | None
        Fraction of valid gaze samples on the attended (row 0) and unattended
        (row 1) talker's face, 0–1; NaN where the eye tracker had no valid sample.
        None when the run has no screen-mapped gaze.
    session : str
        BIDS session label.
    run : str
        BIDS run label.
    segment : int
        Segment number within the trial (0 unless the trial has switches).
    onset_s : float
        Start of this stretch on the EEG file's time line, s.
    talkers : tuple of str
        Talker names (attended, unattended).
    stim_files : tuple of str
        Stimulus files (attended, unattended), relative to ``stimuli/``.
    """

    eeg: np.ndarray
    envelopes: np.ndarray
    sfreq: float
    subject: str
    trial: int
    group: str
    ch_names: list[str]
    gaze: np.ndarray | None = None
    session: str = ""
    run: str = ""
    segment: int = 0
    onset_s: float = 0.0
    talkers: tuple[str, str] = ("", "")
    stim_files: tuple[str, str] = ("", "")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_times(self) -> int:
        """Number of samples."""
        return int(self.eeg.shape[1])

    @property
    def duration_s(self) -> float:
        """Length, s."""
        return self.n_times / self.sfreq

    def swapped(self) -> Trial:
        """Return this trial with the talkers' roles exchanged (the null control uses it)."""
        return Trial(
            eeg=self.eeg,
            envelopes=self.envelopes[::-1].copy(),
            sfreq=self.sfreq,
            subject=self.subject,
            trial=self.trial,
            group=self.group,
            ch_names=self.ch_names,
            gaze=None if self.gaze is None else self.gaze[::-1].copy(),
            session=self.session,
            run=self.run,
            segment=self.segment,
            onset_s=self.onset_s,
            talkers=(self.talkers[1], self.talkers[0]),
            stim_files=(self.stim_files[1], self.stim_files[0]),
            extra=dict(self.extra),
        )


def n_windows(n_times: int, sfreq: float, window_s: float) -> int:
    """Count the whole non-overlapping windows of ``window_s`` s in ``n_times`` samples."""
    width = int(round(window_s * sfreq))
    return 0 if width < 2 else n_times // width


def window_bounds(n_times: int, sfreq: float, window_s: float) -> np.ndarray:
    """Sample bounds of the decision windows of one trial.

    Windows are non-overlapping, start at the first sample, and the remainder
    shorter than one window is dropped.

    Parameters
    ----------
    n_times : int
        Trial length, samples.
    sfreq : float
        Sampling rate, Hz.
    window_s : float
        Window length, s.

    Returns
    -------
    bounds : ndarray of int, shape (n_windows, 2)
        Start (inclusive) and stop (exclusive) sample of each window.
    """
    width = int(round(window_s * sfreq))
    n = n_windows(n_times, sfreq, window_s)
    starts = np.arange(n, dtype=np.int64) * width
    return np.stack([starts, starts + width], axis=1)


def window_corr(x: np.ndarray, y: np.ndarray, sfreq: float, window_s: float) -> np.ndarray:
    """Pearson correlation of two signals in each decision window.

    Parameters
    ----------
    x, y : ndarray, shape (n_times,)
        Signals at ``sfreq``.
    sfreq : float
        Sampling rate, Hz.
    window_s : float
        Window length, s.

    Returns
    -------
    r : ndarray, shape (n_windows,)
        Correlation per window; 0 where either signal is constant in the window.
    """
    width = int(round(window_s * sfreq))
    n = n_windows(len(x), sfreq, window_s)
    if n == 0:
        return np.zeros(0)
    xw = np.asarray(x[: n * width], dtype=np.float64).reshape(n, width)
    yw = np.asarray(y[: n * width], dtype=np.float64).reshape(n, width)
    xw = xw - xw.mean(axis=1, keepdims=True)
    yw = yw - yw.mean(axis=1, keepdims=True)
    den = np.sqrt((xw * xw).sum(axis=1) * (yw * yw).sum(axis=1))
    num = (xw * yw).sum(axis=1)
    return np.divide(num, den, out=np.zeros(n), where=den > 0)


class AttentionDecoder(BaseEstimator):
    """Base class: the fit / decision_function / predict / score contract (module docstring).

    Subclasses implement :meth:`fit` and :meth:`decision_function`, and for saving
    :meth:`_state_arrays` / :meth:`_set_state_arrays`. ``__init__`` only stores its
    keyword arguments (scikit-learn's rule), so ``get_params``/``set_params``/
    ``sklearn.base.clone`` work.
    """

    #: Whether the decoder reads EEG, gaze or both (checked by the evaluation).
    uses_eeg: bool = True
    uses_gaze: bool = False

    def prepare(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray] | None = None,
        *,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[Any] | None:
        """Per-trial work that does not depend on the training set (default: none).

        Cross-validation calls this once on all trials and passes the entries of
        the training trials to :meth:`fit` as ``prepared``.
        """
        return None

    def fit(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray] | None = None,
        *,
        gaze: Sequence[np.ndarray] | None = None,
        groups: Sequence[str] | None = None,
        prepared: Sequence[Any] | None = None,
    ) -> AttentionDecoder:
        """Train on whole trials (see the module docstring); returns ``self``."""
        raise NotImplementedError

    def decision_function(
        self,
        eeg: Sequence[np.ndarray] | None,
        env_a: Sequence[np.ndarray],
        env_b: Sequence[np.ndarray],
        *,
        window_s: float,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """Score per decision window and trial; positive means talker a is attended."""
        raise NotImplementedError

    def predict(
        self,
        eeg: Sequence[np.ndarray] | None,
        env_a: Sequence[np.ndarray],
        env_b: Sequence[np.ndarray],
        *,
        window_s: float,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """Decided talker per window and trial: 0 = talker a, 1 = talker b.

        Returns
        -------
        labels : list of ndarray of int, shape (n_windows,)
        """
        scores = self.decision_function(eeg, env_a, env_b, window_s=window_s, gaze=gaze)
        return [(s <= 0).astype(np.int64) for s in scores]

    def score(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray],
        *,
        window_s: float = 10.0,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> float:
        """Fraction of decision windows in which the attended talker is chosen.

        A window scoring exactly 0 (no evidence either way) counts as wrong.
        """
        scores = self.decision_function(eeg, attended, unattended, window_s=window_s, gaze=gaze)
        allw = np.concatenate([np.asarray(s, dtype=np.float64) for s in scores] or [np.zeros(0)])
        if allw.size == 0:
            raise DecodeError(
                f"no decision window of {window_s:g} s fits in the trials given.",
                hint="Use a shorter window or longer trials.",
            )
        return float(np.mean(allw > 0))

    # -- saving (avlab.decode.io) ------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        """Fitted state as named numeric arrays (saved without pickle)."""
        raise NotImplementedError

    def _set_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`_state_arrays` returned."""
        raise NotImplementedError
