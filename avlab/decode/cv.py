"""Leakage-free cross-validation of attention decoders, and the label-shuffle null control.

Folds are built from whole *units*: the trials of one subject that are linked by a
shared trial number (segments of an attention-switch trial) or a shared ``group``
(trials that reuse a stimulus). A unit is never on both sides of a split; this is
checked in code, not only by construction.

``loto``
    Within each subject, leave one unit out; train on the subject's other units.
``loso``
    Leave one subject out; train on all trials of all other subjects. The other
    subjects may have heard the same stimuli (as in the literature's LOSO) unless
    ``stimulus_disjoint=True`` drops those trials from training.

``prepare`` (per-trial statistics) runs once per task on the trials the task
touches: per subject and repetition for loto, on all trials per repetition for loso.

The null control (design note §4) reruns the whole pipeline, hyper-parameter
selection included, under the same folds after swapping the talkers' roles in each
trial with an i.i.d. seeded fair coin. The coin is drawn per *trial* (``subject,
session, run, trial``): segments of one trial flip together, so a switch stays a
switch and the null has the clustering of the real test. Any coin that is
independent of the training side gives an unbiased 50 %; a coin per trial keeps the
variance honest, whereas a coin per stimulus group would flip unrelated trials
together, and *balanced* relabelling (exactly half swapped) is biased below 50 %
under leave-one-out (the training majority is always opposite to the held-out label).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import clone

from avlab._logging import logger
from avlab.decode.base import AttentionDecoder, DecodeError, Trial
from avlab.decode.folds import Fold, make_folds, null_flips, trial_key, units_of

__all__ = [
    "DEFAULT_WINDOWS_S",
    "WINDOW_COLUMNS",
    "EvalResult",
    "Fold",
    "evaluate",
    "make_folds",
    "null_flips",
    "score_trials",
    "trial_key",
]

DEFAULT_WINDOWS_S: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0)
#: Columns of :attr:`EvalResult.windows`, in order.
WINDOW_COLUMNS: tuple[str, ...] = (
    "method",
    "null_rep",
    "fold",
    "subject",
    "session",
    "run",
    "trial",
    "segment",
    "group",
    "window_s",
    "start_s",
    "score",
    "correct",
)

ProgressCallback = Callable[[int, int], None]


@dataclass
class EvalResult:
    """Window-level outcome of :func:`evaluate`.

    Attributes
    ----------
    method : str
        Label of the decoder (``"linear"``, ``"cnn"``, ...).
    cv : str
        ``"loto"`` or ``"loso"``.
    windows : pandas.DataFrame
        One row per decision window, columns :data:`WINDOW_COLUMNS`: ``score``
        (positive = attended talker chosen), ``correct`` (``score > 0``),
        ``start_s`` (window start from the segment start, s), ``null_rep`` (−1 for
        the real labels, 0… for the null repetitions).
    folds : list of Fold
    windows_s : tuple of float
        Window lengths evaluated, s.
    null_shuffles : int
    seed : int
    elapsed_s : float
        Wall time of the evaluation, s.
    models : dict of str to AttentionDecoder
        Fitted decoder per fold name (real labels only), when ``keep_models``.
    """

    method: str
    cv: str
    windows: pd.DataFrame
    folds: list[Fold]
    windows_s: tuple[float, ...]
    null_shuffles: int
    seed: int
    elapsed_s: float = 0.0
    models: dict[str, AttentionDecoder] = field(default_factory=dict)

    @property
    def real(self) -> pd.DataFrame:
        """Windows with the real labels (``null_rep == -1``)."""
        return self.windows[self.windows["null_rep"] < 0]

    @property
    def null(self) -> pd.DataFrame:
        """Windows of the null repetitions."""
        return self.windows[self.windows["null_rep"] >= 0]


# -- the work of one task (runs in a worker process when n_jobs > 1) ----------------
_WORKER: dict[str, Any] = {}


def _mp_context() -> multiprocessing.context.BaseContext | None:
    """Return the worker start method: fork, unless torch is loaded.

    Forking a process whose OpenMP pool has run can deadlock the child, so with
    torch the workers start from a clean fork server (decoder and trials are
    pickled once per worker).
    """
    if "torch" in sys.modules and "forkserver" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("forkserver")
    return None


def _init_worker(trials: Sequence[Trial], decoder: AttentionDecoder) -> None:
    from threadpoolctl import threadpool_limits

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # for libraries (torch) first imported in this worker
    _WORKER["limits"] = threadpool_limits(1)  # keep a reference: the limit lasts while held
    if "torch" in sys.modules:  # torch keeps its own intra-op pool
        sys.modules["torch"].set_num_threads(1)
    _WORKER["trials"] = trials
    _WORKER["decoder"] = decoder


def _arrays(trials: Sequence[Trial], decoder: AttentionDecoder) -> dict[str, Any]:
    eeg = [t.eeg for t in trials] if decoder.uses_eeg else None
    gaze = None
    if decoder.uses_gaze:
        missing = [t for t in trials if t.gaze is None]
        if missing:
            t = missing[0]
            raise DecodeError(
                f"sub-{t.subject} run {t.run or '-'} trial {t.trial}: no screen-mapped gaze, "
                f"which {type(decoder).__name__} needs.",
                hint="Use an EEG method, or convert the run with its eye-tracker screen mapping.",
            )
        gaze = [t.gaze for t in trials]
    return {
        "eeg": eeg,
        "attended": [t.envelopes[0] for t in trials],
        "unattended": [t.envelopes[1] for t in trials],
        "gaze": gaze,
    }


def _run_task(
    rep: int,
    fold_ids: Sequence[int],
    folds: Sequence[Fold],
    flips: np.ndarray | None,
    windows_s: Sequence[float],
    keep_models: bool,
    trials: Sequence[Trial] | None = None,
    decoder: AttentionDecoder | None = None,
    units: Sequence[str] = (),
    cache: dict[str, Any] | None = None,
) -> tuple[list[dict[str, np.ndarray]], dict[str, AttentionDecoder]]:
    """Fit and test the folds ``fold_ids`` for one repetition (−1 = real labels).

    ``trials``/``decoder``/``cache`` are None in a worker process (set by
    :func:`_init_worker`). ``cache`` keeps the last task's prepared trials, so the
    loso folds of one repetition call ``prepare`` once.
    """
    trials = _WORKER["trials"] if trials is None else trials
    decoder = _WORKER["decoder"] if decoder is None else decoder
    cache = _WORKER.setdefault("cache", {}) if cache is None else cache
    needed = sorted({int(i) for k in fold_ids for i in (*folds[k].train, *folds[k].test)})
    local = {g: j for j, g in enumerate(needed)}
    key = (rep, tuple(needed))
    if cache.get("key") == key:
        sub, arrs, prepared = cache["value"]
    else:
        cache.clear()  # free the previous repetition's statistics first
        sub = [trials[g].swapped() if flips is not None and flips[g] else trials[g] for g in needed]
        arrs = _arrays(sub, decoder)
        # per-trial work, done once for every trial this task touches (base.py contract)
        prepared = decoder.prepare(
            arrs["eeg"], arrs["attended"], arrs["unattended"], gaze=arrs["gaze"]
        )
        cache.update(key=key, value=(sub, arrs, prepared))
    rows: list[dict[str, np.ndarray]] = []
    models: dict[str, AttentionDecoder] = {}

    def pick(name: str, idx: Sequence[int]) -> Any:
        v = arrs[name]
        return None if v is None else [v[j] for j in idx]

    for k in fold_ids:
        fold = folds[k]
        tr = [local[int(i)] for i in fold.train]
        te = [local[int(i)] for i in fold.test]
        model = clone(decoder)
        model.fit(
            pick("eeg", tr),
            pick("attended", tr),
            pick("unattended", tr),
            gaze=pick("gaze", tr),
            groups=[units[int(i)] for i in fold.train],
            prepared=None if prepared is None else [prepared[j] for j in tr],
        )
        if keep_models and rep < 0:
            models[fold.name] = model
        rows.extend(_window_rows(model, [sub[j] for j in te], windows_s, rep=rep, fold=fold.name))
    return rows, models


def _window_rows(
    model: AttentionDecoder,
    trials: Sequence[Trial],
    windows_s: Sequence[float],
    *,
    rep: int,
    fold: str,
) -> list[dict[str, np.ndarray]]:
    """Score trials; one column chunk (name → array over windows) per trial and length."""
    arrs = _arrays(trials, model)
    out: list[dict[str, np.ndarray]] = []
    for w in windows_s:
        scores = model.decision_function(
            arrs["eeg"], arrs["attended"], arrs["unattended"], window_s=float(w), gaze=arrs["gaze"]
        )
        for t, s in zip(trials, scores, strict=True):
            s = np.asarray(s, dtype=np.float64)
            n = s.size
            width = int(round(float(w) * t.sfreq))
            text = {"fold": fold, "subject": t.subject, "session": t.session, "run": t.run}
            out.append(
                {
                    "null_rep": np.full(n, rep, dtype=np.int64),
                    **{k: np.full(n, v, dtype=object) for k, v in text.items()},
                    "trial": np.full(n, int(t.trial), dtype=np.int64),
                    "segment": np.full(n, int(t.segment), dtype=np.int64),
                    "group": np.full(n, t.group, dtype=object),
                    "window_s": np.full(n, float(w)),
                    "start_s": np.arange(n) * width / t.sfreq,
                    "score": s,
                    "correct": s > 0,
                }
            )
    return out


def _frame(chunks: Sequence[dict[str, np.ndarray]], method: str) -> pd.DataFrame:
    cols = [c for c in WINDOW_COLUMNS if c != "method"]
    if chunks:
        df = pd.DataFrame({c: np.concatenate([ch[c] for ch in chunks]) for c in cols})
    else:
        df = pd.DataFrame({c: [] for c in cols})
    df.insert(0, "method", method)
    df = df.sort_values(
        ["null_rep", "subject", "session", "run", "trial", "segment", "window_s", "start_s"],
        kind="stable",
    ).reset_index(drop=True)
    return df[list(WINDOW_COLUMNS)]


def score_trials(
    decoder: AttentionDecoder,
    trials: Sequence[Trial],
    *,
    method: str,
    windows: Sequence[float] = DEFAULT_WINDOWS_S,
    fold: str = "applied",
) -> EvalResult:
    """Score trials with an already fitted decoder (e.g. a saved model), no training.

    Parameters
    ----------
    decoder : AttentionDecoder
        Fitted decoder.
    trials : sequence of Trial
    method : str
        Label of the window rows.
    windows : sequence of float
        Decision window lengths, s.
    fold : str
        Written to the ``fold`` column.

    Returns
    -------
    EvalResult
        ``cv="applied"``, no folds, no null rows.
    """
    t0 = time.perf_counter()
    windows_s = tuple(sorted({float(w) for w in windows}))
    rows = _window_rows(decoder, list(trials), windows_s, rep=-1, fold=fold)
    return EvalResult(
        method=method,
        cv="applied",
        windows=_frame(rows, method),
        folds=[],
        windows_s=windows_s,
        null_shuffles=0,
        seed=0,
        elapsed_s=time.perf_counter() - t0,
    )


def evaluate(
    trials: Sequence[Trial],
    decoder: AttentionDecoder,
    *,
    method: str,
    cv: Literal["loto", "loso"] = "loto",
    windows: Sequence[float] = DEFAULT_WINDOWS_S,
    null_shuffles: int = 0,
    seed: int = 0,
    n_jobs: int = 1,
    keep_models: bool = False,
    stimulus_disjoint: bool = False,
    progress: ProgressCallback | None = None,
) -> EvalResult:
    """Cross-validate a decoder on whole trials, at several decision-window lengths.

    For every fold the decoder is cloned, fitted on the training trials and scored
    on the held-out ones; talker *a* is the attended talker, so a window is correct
    when its score is positive. With ``null_shuffles = R`` the whole pipeline is
    rerun R times on trials whose talkers are swapped by a seeded coin per trial
    (module docstring).

    Parameters
    ----------
    trials : sequence of Trial
        All trials (segments) of the subjects to evaluate.
    decoder : AttentionDecoder
        Unfitted template; cloned per fold (its seed parameters are kept).
    method : str
        Label written to every window row.
    cv : {"loto", "loso"}
        Fold scheme (:func:`make_folds`).
    windows : sequence of float
        Decision window lengths, s.
    null_shuffles : int
        Number of null repetitions R (0 = none).
    seed : int
        Seed of the null coins.
    n_jobs : int
        Worker processes. Tasks are (repetition, subject) for loto and
        (repetition, fold) for loso; each worker uses one BLAS thread. The result
        does not depend on ``n_jobs``.
    keep_models : bool
        Keep the fitted decoder of each fold (real labels) in the result.
    stimulus_disjoint : bool
        loso only: keep the held-out subject's stimuli out of training
        (:func:`make_folds`).
    progress : callable (done, total) | None
        Called after each finished task.

    Returns
    -------
    EvalResult

    Raises
    ------
    DecodeError
        No trials, no folds, no window fits, or the decoder lacks an input.
    """
    t0 = time.perf_counter()
    windows_s = tuple(sorted({float(w) for w in windows}))
    if not windows_s or min(windows_s) <= 0:
        raise DecodeError(f"window lengths {windows!r} are invalid.", hint="Give positive s.")
    if null_shuffles < 0:
        raise DecodeError(f"null_shuffles={null_shuffles} is negative.", hint="Use 0 or more.")
    trials = list(trials)
    folds = make_folds(trials, cv, stimulus_disjoint=stimulus_disjoint)
    units = units_of(trials)
    if decoder.uses_gaze:
        _arrays(trials, decoder)  # fail early when a trial has no gaze
    # task = (rep, folds): one subject's folds (loto) or one fold (loso)
    chunks: list[list[int]] = []
    if cv == "loto":
        by_sub: dict[str | None, list[int]] = {}
        for k, f in enumerate(folds):
            by_sub.setdefault(f.subject, []).append(k)
        chunks = list(by_sub.values())
    else:
        chunks = [[k] for k in range(len(folds))]
    reps = [-1, *range(int(null_shuffles))]
    flips = {r: (None if r < 0 else null_flips(trials, seed, r)) for r in reps}
    tasks = [(r, c) for r in reps for c in chunks]
    results: dict[int, tuple[list[dict[str, np.ndarray]], dict[str, AttentionDecoder]]] = {}
    logger.info(
        "%s: %s over %d folds, %d windows, %d null repetitions, %d jobs",
        method,
        cv,
        len(folds),
        len(windows_s),
        null_shuffles,
        n_jobs,
    )
    if n_jobs <= 1 or len(tasks) == 1:
        from threadpoolctl import threadpool_limits

        cache: dict[str, Any] = {}
        # one BLAS thread, as in the workers: the ridge systems (a few hundred to a few
        # thousand unknowns) solve 2-4x faster single-threaded, more so on a busy machine
        with threadpool_limits(1):
            for i, (r, c) in enumerate(tasks):
                results[i] = _run_task(
                    r, c, folds, flips[r], windows_s, keep_models, trials, decoder, units, cache
                )
                if progress is not None:
                    progress(i + 1, len(tasks))
    else:
        with ProcessPoolExecutor(
            max_workers=n_jobs,
            mp_context=_mp_context(),
            initializer=_init_worker,
            initargs=(trials, decoder),
        ) as pool:
            futs = {
                pool.submit(
                    _run_task, r, c, folds, flips[r], windows_s, keep_models, None, None, units
                ): i
                for i, (r, c) in enumerate(tasks)
            }
            try:
                for done, fut in enumerate(as_completed(futs), start=1):
                    results[futs[fut]] = fut.result()
                    if progress is not None:
                        progress(done, len(tasks))
            except BaseException:  # a failed fold (or Ctrl-C): do not run the rest
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    rows: list[dict[str, np.ndarray]] = []
    models: dict[str, AttentionDecoder] = {}
    for i in range(len(tasks)):
        rows.extend(results[i][0])
        models.update(results[i][1])
    if not any(ch["null_rep"].size and ch["null_rep"][0] < 0 for ch in rows):
        raise DecodeError(
            f"no decision window of {min(windows_s):g} s fits in any trial.",
            hint="Use shorter windows.",
        )
    return EvalResult(
        method=method,
        cv=cv,
        windows=_frame(rows, method),
        folds=folds,
        windows_s=windows_s,
        null_shuffles=int(null_shuffles),
        seed=int(seed),
        elapsed_s=time.perf_counter() - t0,
        models=models,
    )
