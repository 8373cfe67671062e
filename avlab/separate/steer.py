"""Steering: which separated talker to keep, from EEG, gaze or the ground truth.

The network returns the talkers in an arbitrary order. For every decision
window of a trial, one of them is chosen:

- **EEG** (:func:`eeg_choices`): a backward decoder trained on *other* trials
  reconstructs the attended envelope from the EEG; the separated talker whose
  envelope (computed exactly like the decoder's stimulus envelopes) correlates
  best with the reconstruction in the window is kept. The same reconstruction
  against the *clean* stimulus envelopes gives the decoder's own accuracy on the
  same windows (:func:`decoder_correct`), so the cost of steering on separated
  rather than clean speech is measured window by window.
- **Gaze** (:func:`gaze_choices`): the face looked at most in the window gives a
  side (left or right of the screen centre); each separated talker's side comes
  from the recording itself, as the level difference between the left and right
  microphone (:func:`output_sides`), so no reference signal is used.
- **Truth** (:func:`truth_labels`): the separated talker whose envelope matches
  the attended stimulus over the whole trial: the upper bound, and the label the
  other two are scored against.

:func:`stitch` builds the steered signal from per-window choices with short
raised-cosine cross-fades at switches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "decoder_correct",
    "eeg_choices",
    "gaze_choices",
    "output_envelopes",
    "output_sides",
    "stitch",
    "truth_labels",
    "window_pearson",
]


def window_pearson(x: np.ndarray, y: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Pearson r of ``x`` and ``y`` in each window ``bounds`` (n_windows, 2); 0 if flat."""
    out = np.zeros(len(bounds))
    for i, (a, b) in enumerate(bounds):
        xa, ya = x[a:b] - x[a:b].mean(), y[a:b] - y[a:b].mean()
        den = np.sqrt((xa * xa).sum() * (ya * ya).sum())
        out[i] = (xa * ya).sum() / den if den > 0 else 0.0
    return out


def output_envelopes(
    talkers: np.ndarray,
    srate: float,
    n_times: int,
    sfreq: float,
    envelope: object,
    preprocessing: object,
    *,
    start_offset_s: float = 0.0,
) -> np.ndarray:
    """Envelopes of separated talkers at the EEG rate, band-passed like the EEG.

    Parameters
    ----------
    talkers : ndarray, shape (n_src, n_samples)
        Separated audio; the trial's first EEG sample is at ``start_offset_s``
        (audio before it keeps the band-pass filter's start-up out of the trial).
    srate : float
        Audio rate, Hz.
    n_times : int
        Samples wanted at ``sfreq``.
    sfreq : float
        EEG rate, Hz.
    envelope : avlab.decode.config.EnvelopeConfig
    preprocessing : avlab.decode.config.Preprocessing

    Returns
    -------
    envelopes : ndarray, shape (n_src, n_times)
    """
    from avlab.decode.envelope import speech_envelope

    out = np.zeros((talkers.shape[0], n_times))
    for k, y in enumerate(talkers):
        e = speech_envelope(
            y, srate, sfreq, envelope,  # type: ignore[arg-type]
            start_offset_s=start_offset_s, preprocessing=preprocessing,  # type: ignore[arg-type]
        )  # fmt: skip
        m = min(n_times, e.size)
        out[k, :m] = e[:m]
    return out


def truth_labels(out_env: np.ndarray, clean_env: np.ndarray) -> int:
    """Index of the separated talker that is the attended one.

    Parameters
    ----------
    out_env : ndarray, shape (2, n_times)
        Envelopes of the separated talkers.
    clean_env : ndarray, shape (2, n_times)
        Envelopes of the attended (row 0) and unattended (row 1) stimuli.

    Returns
    -------
    k : int
        The output assigned to the attended talker (the assignment maximising the
        summed whole-trial correlation).
    """
    r = np.corrcoef(np.vstack([out_env, clean_env]))[:2, 2:]
    r = np.nan_to_num(r)
    return 0 if r[0, 0] + r[1, 1] >= r[0, 1] + r[1, 0] else 1


def eeg_choices(recon: np.ndarray, out_env: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Per window, the separated talker whose envelope follows the EEG reconstruction.

    Parameters
    ----------
    recon : ndarray, shape (n_times,)
        Envelope reconstructed from EEG by a decoder trained on other trials.
    out_env : ndarray, shape (n_src, n_times)
    bounds : ndarray of int, shape (n_windows, 2)

    Returns
    -------
    choices : ndarray of int, shape (n_windows,)
    """
    r = np.stack([window_pearson(recon, e, bounds) for e in out_env])
    return np.argmax(r, axis=0)


def decoder_correct(recon: np.ndarray, clean_env: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Per window, whether the reconstruction follows the attended *clean* envelope better.

    Returns
    -------
    correct : ndarray of bool, shape (n_windows,)
    """
    ra = window_pearson(recon, clean_env[0], bounds)
    ru = window_pearson(recon, clean_env[1], bounds)
    return ra > ru


def output_sides(talkers: np.ndarray, mics: np.ndarray) -> np.ndarray:
    """Side of each separated talker from the left/right microphone level difference.

    Each microphone channel is projected on each separated talker (least-squares
    gain); the talker is on the left when its gain at the left microphone
    (channel 0) exceeds that at the right one (channel 1).

    Parameters
    ----------
    talkers : ndarray, shape (n_src, n)
    mics : ndarray, shape (2, n)
        Left and right microphone.

    Returns
    -------
    level_diff_db : ndarray, shape (n_src,)
        Left minus right gain, dB: positive means left.
    """
    out = np.zeros(talkers.shape[0])
    for k, s in enumerate(talkers):
        p = float(s @ s) + 1e-20
        g = [abs(float(m @ s)) / p for m in mics]
        out[k] = 20 * np.log10((g[0] + 1e-20) / (g[1] + 1e-20))
    return out


def gaze_choices(
    gaze: np.ndarray,
    on_left: Sequence[bool],
    level_diff_db: np.ndarray,
    bounds: np.ndarray,
) -> np.ndarray:
    """Per window, the separated talker on the side of the face looked at most.

    Parameters
    ----------
    gaze : ndarray, shape (2, n_times)
        Fraction of gaze on the attended (row 0) and unattended (row 1) face.
    on_left : (bool, bool)
        Whether the attended and the unattended talker's face is left of the
        screen centre (``face_x < 0`` in ``events.tsv``).
    level_diff_db : ndarray, shape (n_src,)
        From :func:`output_sides`.
    bounds : ndarray of int, shape (n_windows, 2)

    Returns
    -------
    choices : ndarray of int, shape (n_windows,)
        -1 where the gaze was on neither face in the window.
    """
    left_output = int(np.argmax(level_diff_db))
    out = np.full(len(bounds), -1)
    for i, (a, b) in enumerate(bounds):
        g = np.nan_to_num(gaze[:, a:b]).sum(axis=1)
        if g.sum() <= 0:
            continue
        looked = int(np.argmax(g))  # 0: the attended face, 1: the other
        out[i] = left_output if on_left[looked] else 1 - left_output
    return out


def stitch(talkers: np.ndarray, choices: np.ndarray, window: int, fade: int) -> np.ndarray:
    """Build the steered signal: per window the chosen talker, cross-faded at switches.

    Parameters
    ----------
    talkers : ndarray, shape (n_src, n)
    choices : ndarray of int, shape (n_windows,)
        -1 keeps the previous choice (0 at the start).
    window : int
        Window length, samples.
    fade : int
        Cross-fade length, samples.

    Returns
    -------
    steered : ndarray, shape (n,)
    """
    n = talkers.shape[1]
    sel = np.zeros(n, dtype=int)
    last = 0
    for i, c in enumerate(choices):
        last = int(c) if c >= 0 else last
        sel[i * window : (i + 1) * window] = last
    if len(choices) * window < n:
        sel[len(choices) * window :] = last
    w = np.zeros((talkers.shape[0], n))
    w[sel, np.arange(n)] = 1.0
    if fade > 1:
        kern = np.hanning(fade)
        kern /= kern.sum()
        h = fade // 2
        w = np.stack(
            [np.convolve(np.pad(row, (h, fade - 1 - h), mode="edge"), kern, "valid") for row in w]
        )
    return (w * talkers).sum(axis=0)
