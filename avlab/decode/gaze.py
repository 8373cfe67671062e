"""Gaze decoder: the attended talker is the one whose face the eyes are on.

No training: per decision window, the score is the mean fraction of valid gaze
on talker *a*'s face minus that on talker *b*'s face. The per-sample fractions
(``(2, n_times)`` arrays, NaN where the eye tracker had no valid sample) come
from :mod:`avlab.decode.data`; see :mod:`avlab.decode.base` for the call
convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from avlab.decode.base import AttentionDecoder, DecodeError, n_windows

__all__ = ["GazeDecoder", "TIE_SCORE", "gaze_window_scores"]

#: Magnitude of the score given to a tie (no evidence either way), far below any real
#: score (a real nonzero score is at least about 1 / window samples).
TIE_SCORE = 1e-9


def _check_gaze(
    gaze: Sequence[np.ndarray] | None, n_trials: int | None, what: str
) -> list[np.ndarray]:
    """Validate per-trial gaze arrays, shape (2, n_times), values in [0, 1] or NaN."""
    if gaze is None:
        raise DecodeError(
            f"GazeDecoder.{what} got no gaze.",
            hint="Pass gaze=[(2, n_times) arrays] (fraction of gaze on each talker's face).",
        )
    out = [np.asarray(g, dtype=np.float64) for g in gaze]
    if n_trials is not None and len(out) != n_trials:
        raise DecodeError(
            f"GazeDecoder.{what}: {len(out)} gaze arrays for {n_trials} trials.",
            hint="Give one gaze array per trial.",
        )
    if not out:
        raise DecodeError(f"GazeDecoder.{what}: no trials.", hint="Pass at least one trial.")
    for i, g in enumerate(out):
        if g.ndim != 2 or g.shape[0] != 2:
            raise DecodeError(
                f"GazeDecoder.{what}: gaze of trial {i} has shape {g.shape}, not (2, n_times).",
                hint="Row 0 = talker a (attended), row 1 = talker b; one column per sample.",
            )
        fin = g[np.isfinite(g)]
        if fin.size and (fin.min() < 0.0 or fin.max() > 1.0):
            raise DecodeError(
                f"GazeDecoder.{what}: gaze of trial {i} has values outside 0–1 "
                f"({fin.min():g} to {fin.max():g}).",
                hint="Gaze rows are fractions of valid samples on each face (NaN = no sample).",
            )
    return out


def gaze_window_scores(
    gaze: np.ndarray, sfreq: float, window_s: float, *, tie_key: Sequence[int] = (0, 0)
) -> np.ndarray:
    """Gaze score of each decision window of one trial.

    Parameters
    ----------
    gaze : ndarray, shape (2, n_times)
        Fraction of valid gaze on talker a's (row 0) and talker b's (row 1) face,
        0–1, NaN where the eye tracker had no valid sample.
    sfreq : float
        Sampling rate, Hz.
    window_s : float
        Decision window length, s.
    tie_key : sequence of int
        Seed material for tie breaking, e.g. ``(random_state, trial_index)``.

    Returns
    -------
    scores : ndarray, shape (n_windows,)
        Mean of ``a − b`` over the samples valid in both rows (NaN ignored).
        A window with no evidence (score exactly 0: gaze on neither face, equal time
        on both, or no valid sample) gets ``±TIE_SCORE``, the sign drawn from a
        generator seeded by ``(*tie_key, window width, window index)``, so ties count
        as right half of the time on average and every rerun gives the same answer.
    """
    width = int(round(window_s * sfreq))
    n = n_windows(gaze.shape[1], sfreq, window_s)
    if n == 0:
        return np.zeros(0)
    d = (gaze[0, : n * width] - gaze[1, : n * width]).reshape(n, width)
    valid = np.isfinite(d)
    count = valid.sum(axis=1)
    total = np.where(valid, d, 0.0).sum(axis=1)
    scores = np.divide(total, count, out=np.zeros(n), where=count > 0)
    ties = np.flatnonzero(scores == 0.0)
    if ties.size:
        key = [int(k) for k in tie_key] + [width]
        rng = np.random.default_rng(np.random.SeedSequence(key))
        signs = rng.integers(0, 2, size=n) * 2 - 1  # one sign per window index
        scores[ties] = TIE_SCORE * signs[ties]
    return scores


class GazeDecoder(AttentionDecoder):
    """Decide the attended talker from where the eyes are (no EEG, no training).

    Score per window = mean fraction of valid gaze on talker a's face − on talker
    b's face (samples without a valid gaze sample are ignored). Positive means
    talker a. Ties are broken by a tiny seeded ±score (see :func:`gaze_window_scores`).

    Parameters
    ----------
    sfreq : float
        Sampling rate of the gaze arrays, Hz.
    random_state : int
        Seed of the tie breaking; the sign of a tied window depends only on
        ``(random_state, trial index in the call, window width, window index)``.

    Attributes
    ----------
    fitted_ : bool
        True after :meth:`fit` (the decoder learns nothing).
    """

    uses_eeg = False
    uses_gaze = True

    def __init__(self, *, sfreq: float = 64.0, random_state: int = 0) -> None:
        self.sfreq = sfreq
        self.random_state = random_state

    def fit(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray] | None = None,
        *,
        gaze: Sequence[np.ndarray] | None = None,
        groups: Sequence[str] | None = None,
        prepared: Sequence[Any] | None = None,
    ) -> GazeDecoder:
        """Check the gaze arrays; nothing is learned.

        Parameters
        ----------
        eeg : list of ndarray | None
            Ignored.
        attended : list of ndarray, shape (n_times,)
            Attended envelopes; only their count is checked.
        unattended : list of ndarray | None
            Ignored.
        gaze : list of ndarray, shape (2, n_times)
            Fraction of gaze on the attended (row 0) and unattended (row 1) face.
        groups, prepared
            Ignored.

        Returns
        -------
        self : GazeDecoder
        """
        _check_gaze(gaze, len(attended), "fit")
        self.fitted_ = True
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
        """Gaze score per decision window and trial; positive means talker a.

        Parameters
        ----------
        eeg : list of ndarray | None
            Ignored.
        env_a, env_b : list of ndarray, shape (n_times,)
            Envelopes of talkers a and b; only their count is checked.
        window_s : float
            Decision window length, s.
        gaze : list of ndarray, shape (2, n_times)
            Fraction of gaze on talker a's (row 0) and b's (row 1) face.

        Returns
        -------
        scores : list of ndarray, shape (n_windows,)
        """
        arrs = _check_gaze(gaze, len(env_a), "decision_function")
        seed = int(self.random_state)
        return [
            gaze_window_scores(g, float(self.sfreq), window_s, tie_key=(seed, i))
            for i, g in enumerate(arrs)
        ]

    def _state_arrays(self) -> dict[str, np.ndarray]:
        """Nothing is learned: an empty state."""
        return {}

    def _set_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Mark the decoder as fitted (there is no state)."""
        self.fitted_ = True
