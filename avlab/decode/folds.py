"""Cross-validation folds that never put a trial, or trials sharing a stimulus, on both sides.

Folds are built from whole *units*: the trials of one subject that are linked by a
shared trial number (segments of an attention-switch trial) or a shared ``group``
(trials that reuse a stimulus). A unit is never on both sides of a split; this is
checked in code, not only by construction. The null control's coin flips
(:func:`null_flips`) are drawn here too (see :mod:`avlab.decode.cv`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from avlab._logging import logger
from avlab.decode.base import DecodeError, Trial

__all__ = ["Fold", "make_folds", "null_flips", "trial_key", "units_of"]


def trial_key(t: Trial) -> tuple[str, str, str, int]:
    """Identify a trial across its segments: ``(subject, session, run, trial)``."""
    return (t.subject, t.session, t.run, int(t.trial))


@dataclass(frozen=True)
class Fold:
    """One train/test split.

    Attributes
    ----------
    name : str
        ``sub-01/unit-03`` (loto) or ``sub-01`` (loso).
    subject : str | None
        Subject whose trials are tested (``None`` for a fold spanning subjects).
    train, test : ndarray of int
        Indices into the trial list.
    """

    name: str
    subject: str | None
    train: np.ndarray
    test: np.ndarray


def units_of(trials: Sequence[Trial]) -> list[str]:
    """Label each trial with its unit: trials of one subject linked by trial key or group."""
    parent = list(range(len(trials)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple, int] = {}
    for i, t in enumerate(trials):
        for key in (("trial", *trial_key(t)), ("group", t.subject, t.group)):
            j = first.setdefault(key, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = [find(i) for i in range(len(trials))]
    # number units per subject in order of first appearance, so names are stable
    names: dict[int, str] = {}
    count: dict[str, int] = {}
    for i, r in enumerate(roots):
        if r not in names:
            sub = trials[i].subject
            count[sub] = count.get(sub, 0) + 1
            names[r] = f"sub-{sub}/unit-{count[sub]:02d}"
    return [names[r] for r in roots]


def _check_disjoint(trials: Sequence[Trial], fold: Fold, units: Sequence[str]) -> None:
    tr_keys = {trial_key(trials[i]) for i in fold.train}
    te_keys = {trial_key(trials[i]) for i in fold.test}
    tr_units = {units[i] for i in fold.train}
    te_units = {units[i] for i in fold.test}
    both = (tr_keys & te_keys) or (tr_units & te_units)
    if both:  # a bug in the fold logic, never the user's fault
        raise RuntimeError(f"fold {fold.name}: {sorted(both)[:3]} on both sides of the split")


def _stimulus(t: Trial) -> frozenset[str] | str:
    """Stimulus identity, comparable across subjects: the stimulus files, else the group."""
    files = frozenset(f for f in t.stim_files if f)
    return files if files else t.group


def make_folds(
    trials: Sequence[Trial],
    cv: Literal["loto", "loso"] = "loto",
    *,
    stimulus_disjoint: bool = False,
) -> list[Fold]:
    """Split trials into cross-validation folds that never share a trial or stimulus group.

    Parameters
    ----------
    trials : sequence of Trial
        All trials (segments) to evaluate.
    cv : {"loto", "loso"}
        Leave one trial unit out within each subject, or leave one subject out.
    stimulus_disjoint : bool
        loso only: also drop from training the other subjects' trials that played
        a stimulus of the held-out subject (``stim_files``, else ``group``), so a
        decoder cannot learn the attended talker of a stimulus from other people.
        Needs a design in which subjects heard different stimuli.

    Returns
    -------
    list of Fold
        Sorted by subject, then unit. Subjects with a single unit (loto) or a
        dataset with a single subject (loso) give no folds and are logged.

    Raises
    ------
    DecodeError
        Unknown ``cv`` or no fold can be formed.
    """
    if cv not in ("loto", "loso"):
        raise DecodeError(f"unknown cross-validation {cv!r}.", hint="Use 'loto' or 'loso'.")
    if not trials:
        raise DecodeError("no trials to cross-validate.", hint="Check the subjects selected.")
    units = units_of(trials)
    subjects = sorted({t.subject for t in trials})
    idx_of = {s: np.array([i for i, t in enumerate(trials) if t.subject == s]) for s in subjects}
    folds: list[Fold] = []
    if cv == "loso":
        for s in subjects:
            test = idx_of[s]
            heard = {_stimulus(trials[i]) for i in test}
            train = np.array(
                [
                    i
                    for i, t in enumerate(trials)
                    if t.subject != s and not (stimulus_disjoint and _stimulus(t) in heard)
                ],
                dtype=np.int64,
            )
            if train.size:
                folds.append(Fold(f"sub-{s}", s, train, test))
            else:
                logger.warning("sub-%s: no training trial left; no loso fold", s)
    else:
        for s in subjects:
            mine = idx_of[s]
            names = sorted({units[i] for i in mine})
            if len(names) < 2:
                logger.warning("sub-%s: one trial unit only; no leave-one-out fold", s)
                continue
            for u in names:
                test = np.array([i for i in mine if units[i] == u], dtype=np.int64)
                train = np.array([i for i in mine if units[i] != u], dtype=np.int64)
                folds.append(Fold(u, s, train, test))
    if not folds:
        hint = "Add subjects." if cv == "loso" else "Each subject needs two trial groups."
        raise DecodeError(f"no {cv} fold can be formed from {len(trials)} trials.", hint=hint)
    for f in folds:
        _check_disjoint(trials, f, units)
        if cv == "loso" and stimulus_disjoint:
            heard = {_stimulus(trials[i]) for i in f.test}
            if any(_stimulus(trials[i]) in heard for i in f.train):
                raise RuntimeError(f"fold {f.name}: a held-out stimulus is in training")
    return folds


def null_flips(trials: Sequence[Trial], seed: int, rep: int) -> np.ndarray:
    """Fair i.i.d. coin per trial (segments flip together) for null repetition ``rep``.

    Returns
    -------
    flips : ndarray of bool, shape (n_trials,)
        True where the talkers' roles are swapped.
    """
    keys = sorted({trial_key(t) for t in trials})
    coins = np.random.default_rng([int(seed), int(rep)]).random(len(keys)) < 0.5
    by_key = dict(zip(keys, coins, strict=True))
    return np.array([bool(by_key[trial_key(t)]) for t in trials], dtype=bool)
