"""Scores of separated speech: SI-SDR, STOI/ESTOI, PESQ and the reference-free SRMR.

- :func:`si_sdr`, :func:`si_sdri`: scale-invariant signal-to-distortion ratio
  (Le Roux et al. 2019) and its improvement over the mixture, dB, clipped to
  +/-:data:`SI_SDR_LIMIT_DB` so that a perfect estimate gives a finite, JSON-safe
  number (100 dB) instead of infinity.
- :func:`stoi`: short-time objective intelligibility (pystoi; ``extended=True``
  for ESTOI).
- :func:`pesq_score`: ITU-T P.862.2 wide-band PESQ (the ``pesq`` package) at
  16 kHz; NaN, with a logged warning, where PESQ cannot run.
- :func:`~avlab.separate.srmr.srmr`: speech-to-reverberation modulation energy
  ratio, needs no reference.
- :func:`score_separation`: all of them for a two-talker separation, after
  aligning the talker order (:func:`best_permutation`).
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from avlab._logging import logger
from avlab.separate._audio import resample as _resample
from avlab.separate.srmr import srmr

__all__ = [
    "SI_SDR_LIMIT_DB",
    "SeparationScores",
    "TalkerScores",
    "best_permutation",
    "pesq_score",
    "score_separation",
    "si_sdr",
    "si_sdri",
    "srmr",
    "stoi",
]

SI_SDR_LIMIT_DB = 100.0
"""SI-SDR is clipped to [-100, 100] dB: a perfect estimate scores 100 dB, a silent one -100 dB."""


def _pair(estimate: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    est = np.asarray(estimate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if est.ndim != 1 or est.shape != ref.shape:
        raise ValueError(
            f"estimate and reference must be 1-D of equal length; got shapes {est.shape} and "
            f"{ref.shape}. Trim both to the same number of samples."
        )
    return est, ref


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio.

    Both signals are made zero-mean; the reference is scaled by the projection
    ``alpha = <e, r> / <r, r>`` and ``SI-SDR = 10 log10(|alpha r|^2 / |e - alpha r|^2)``.

    Parameters
    ----------
    estimate : ndarray, shape (n,)
    reference : ndarray, shape (n,)

    Returns
    -------
    si_sdr : float
        dB, clipped to [-:data:`SI_SDR_LIMIT_DB`, :data:`SI_SDR_LIMIT_DB`]
        (an exact estimate gives +100 dB, a silent or orthogonal one -100 dB).

    Raises
    ------
    ValueError
        Shapes differ, or the reference is silent (SI-SDR undefined).

    References
    ----------
    J. Le Roux, S. Wisdom, H. Erdogan and J. R. Hershey, "SDR - half-baked or
    well done?", ICASSP 2019.
    """
    est, ref = _pair(estimate, reference)
    est = est - est.mean()
    ref = ref - ref.mean()
    ref_energy = float(np.dot(ref, ref))
    if ref_energy == 0.0:
        raise ValueError("si_sdr(): the reference is silent (or constant); SI-SDR is undefined.")
    target = (float(np.dot(est, ref)) / ref_energy) * ref
    t_energy = float(np.dot(target, target))
    noise = est - target
    n_energy = float(np.dot(noise, noise))
    if t_energy == 0.0:  # silent estimate, or orthogonal to the reference
        return -SI_SDR_LIMIT_DB
    if n_energy == 0.0:
        return SI_SDR_LIMIT_DB
    value = 10.0 * math.log10(t_energy / n_energy)
    return float(np.clip(value, -SI_SDR_LIMIT_DB, SI_SDR_LIMIT_DB))


def si_sdri(estimate: np.ndarray, reference: np.ndarray, mixture: np.ndarray) -> float:
    """SI-SDR improvement of an estimate over the mixture it came from.

    Parameters
    ----------
    estimate, reference, mixture : ndarray, shape (n,)

    Returns
    -------
    si_sdri : float
        ``si_sdr(estimate, reference) - si_sdr(mixture, reference)``, dB.
    """
    return si_sdr(estimate, reference) - si_sdr(mixture, reference)


def best_permutation(estimates: np.ndarray, references: np.ndarray) -> tuple[int, ...]:
    """Order of the estimates that best matches the references.

    Parameters
    ----------
    estimates : ndarray, shape (k, n)
    references : ndarray, shape (k, n)

    Returns
    -------
    perm : tuple of int, length k
        ``estimates[perm[i]]`` goes with ``references[i]``; the permutation with
        the highest mean SI-SDR (exhaustive search, k <= 6).

    Raises
    ------
    ValueError
        Shapes differ or are not 2-D, or k > 6.
    """
    est = np.asarray(estimates, dtype=np.float64)
    ref = np.asarray(references, dtype=np.float64)
    if est.ndim != 2 or est.shape != ref.shape:
        raise ValueError(
            f"estimates and references must both be (k, n); got {est.shape} and {ref.shape}."
        )
    k = est.shape[0]
    if k > 6:
        raise ValueError(f"best_permutation() searches all orders; k={k} > 6 is too many.")
    pair = np.array([[si_sdr(est[j], ref[i]) for j in range(k)] for i in range(k)])
    best = max(itertools.permutations(range(k)), key=lambda p: pair[range(k), list(p)].mean())
    return tuple(int(j) for j in best)


def stoi(estimate: np.ndarray, reference: np.ndarray, srate: int, extended: bool = False) -> float:
    """Short-time objective intelligibility (Taal et al. 2011) or its extended form.

    Parameters
    ----------
    estimate, reference : ndarray, shape (n,)
        Processed and clean speech.
    srate : int
        Their rate, Hz (pystoi resamples to 10 kHz).
    extended : bool
        ESTOI (Jensen & Taal 2016) instead of STOI.

    Returns
    -------
    score : float
        About 0-1, higher is more intelligible; NaN, with a logged warning,
        when either signal is silent or holds less than ~0.4 s of speech
        (pystoi's 30-frame minimum, where it would return 1e-5).
    """
    from pystoi import stoi as _stoi

    est, ref = _pair(estimate, reference)
    if not np.any(est) or not np.any(ref):
        logger.warning("STOI of a silent signal is undefined; score NaN.")
        return float("nan")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_stoi(ref, est, int(srate), extended=extended))
    too_short = False
    for w in caught:
        if "Not enough STFT frames" in str(w.message):
            too_short = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if too_short:
        logger.warning(
            "STOI needs about 0.4 s of speech (30 frames) after silence removal; score NaN."
        )
        return float("nan")
    return value


def pesq_score(
    estimate: np.ndarray,
    reference: np.ndarray,
    srate: int,
    *,
    mode: Literal["wb", "nb"] = "wb",
) -> float:
    """Perceptual evaluation of speech quality, MOS-LQO.

    Parameters
    ----------
    estimate, reference : ndarray, shape (n,)
        Degraded and clean speech.
    srate : int
        Their rate, Hz.
    mode : {"wb", "nb"}
        ``"wb"``: wide-band P.862.2 at 16 kHz (resampled with
        :func:`scipy.signal.resample_poly` from any other rate). ``"nb"``:
        narrow-band P.862 at the input rate when it is 8 or 16 kHz, otherwise
        at 8 kHz.

    Returns
    -------
    mos : float
        About 1-4.6 (wb) or 1-4.5 (nb). NaN, with a logged warning, when PESQ
        cannot score the pair: shorter than 0.25 s, no utterance detected, or a
        silent signal.
    """
    from pesq import BufferTooShortError, NoUtterancesError, pesq

    est, ref = _pair(estimate, reference)
    if mode == "wb":
        rate = 16000
    elif mode == "nb":
        rate = int(srate) if int(srate) in (8000, 16000) else 8000
    else:
        raise ValueError(f"pesq_score(): mode must be 'wb' or 'nb', not {mode!r}.")
    est, ref = _resample(est, srate, rate), _resample(ref, srate, rate)
    if not np.any(ref) or not np.all(np.isfinite(est)):
        logger.warning("PESQ: the reference is silent or the estimate not finite; score NaN.")
        return float("nan")
    if ref.size < rate // 4:
        logger.warning("PESQ needs at least 0.25 s; got %.3f s. Score NaN.", ref.size / rate)
        return float("nan")
    try:
        return float(pesq(rate, ref, est, mode))
    except (NoUtterancesError, BufferTooShortError) as exc:
        logger.warning("PESQ cannot score this pair (%s); score NaN.", exc)
        return float("nan")


class TalkerScores(BaseModel):
    """Scores of one separated talker against its reference (and of the mixture)."""

    model_config = ConfigDict(extra="forbid")

    estimate: int
    """Index of the separator output matched to this talker."""
    si_sdr_db: float
    si_sdri_db: float
    stoi: float
    estoi: float
    pesq: float
    """Wide-band PESQ of the estimate; NaN where PESQ cannot run."""
    srmr: float
    """Reference-free SRMR of the estimate."""
    mix_si_sdr_db: float
    mix_stoi: float
    mix_estoi: float
    mix_pesq: float
    """The same scores of the unprocessed mixture against this talker."""


class SeparationScores(BaseModel):
    """Scores of one separated mixture, talkers in the order of the references."""

    model_config = ConfigDict(extra="forbid")

    permutation: tuple[int, ...]
    """``estimates[permutation[i]]`` was scored against ``references[i]``."""
    talkers: list[TalkerScores]
    mix_srmr: float
    """Reference-free SRMR of the mixture."""


def score_separation(
    estimates: np.ndarray,
    references: np.ndarray,
    mixture: np.ndarray,
    srate: int,
) -> SeparationScores:
    """Score separated talkers against their references, in the best order.

    Parameters
    ----------
    estimates : ndarray, shape (n_src, n)
        Separator outputs, any order.
    references : ndarray, shape (n_src, n)
        Clean talkers.
    mixture : ndarray, shape (n,)
        What was separated.
    srate : int
        Rate of all three, Hz.

    Returns
    -------
    scores : SeparationScores
    """
    est = np.asarray(estimates, dtype=np.float64)
    ref = np.asarray(references, dtype=np.float64)
    mix = np.asarray(mixture, dtype=np.float64)
    if mix.ndim != 1 or ref.ndim != 2 or ref.shape[1] != mix.size or est.shape != ref.shape:
        raise ValueError(
            f"score_separation() needs estimates and references (n_src, n) and a mixture (n,); "
            f"got {est.shape}, {ref.shape} and {mix.shape}."
        )
    perm = best_permutation(est, ref)
    mix_srmr = srmr(mix, srate)
    talkers = []
    for i, j in enumerate(perm):
        e, r = est[j], ref[i]
        mix_sdr = si_sdr(mix, r)
        sdr = si_sdr(e, r)
        talkers.append(
            TalkerScores(
                estimate=j,
                si_sdr_db=sdr,
                si_sdri_db=sdr - mix_sdr,
                stoi=stoi(e, r, srate),
                estoi=stoi(e, r, srate, extended=True),
                pesq=pesq_score(e, r, srate),
                srmr=srmr(e, srate) if np.any(e) else float("nan"),
                mix_si_sdr_db=mix_sdr,
                mix_stoi=stoi(mix, r, srate),
                mix_estoi=stoi(mix, r, srate, extended=True),
                mix_pesq=pesq_score(mix, r, srate),
            )
        )
    return SeparationScores(permutation=perm, talkers=talkers, mix_srmr=mix_srmr)
