"""The decoding summary: accuracy with intervals, MESD, the null control, comparisons.

:func:`summarize` turns the window rows of one or more :class:`~avlab.decode.cv.EvalResult`
into a :class:`DecodeSummary` (accuracy with CIs per method and window length, per
subject, MESD, the null control, paired method comparisons). ``summary.json`` is
this model; :mod:`avlab.decode.report` writes it with the figures and the HTML page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from avlab._logging import logger
from avlab.decode import metrics
from avlab.decode.cv import EvalResult

__all__ = ["CAVEATS", "NULL_BAND", "NULL_MIN_N", "DecodeSummary", "MethodSummary", "NullStats",
           "summarize"]  # fmt: skip

#: The null control passes when its pooled accuracy lies in this band over ≥ NULL_MIN_N windows.
NULL_BAND = (0.48, 0.52)
NULL_MIN_N = 1000
CAVEATS = (
    "Wilson confidence intervals and binomial p-values treat decision windows as "
    "independent. Windows of one trial are correlated, so these intervals are too "
    "narrow; the trial-bootstrap interval (whole trials resampled) is the honest one.",
    "Folds never put windows of one trial, or trials sharing a stimulus, on both sides.",
)


class NullStats(BaseModel):
    """Label-shuffle null control of one method (one window length, or all pooled).

    Attributes
    ----------
    method : str
    window_s : float | None
        Window length, s; None when pooled over all lengths.
    n : int
        Windows over all repetitions.
    n_reps : int
    accuracy : float
        Pooled null accuracy (should be 0.5).
    ci_low, ci_high : float
        Wilson 95 % CI (windows treated as independent).
    rep_min, rep_max, rep_sd : float
        Spread of the per-repetition accuracies.
    at_chance : bool | None
        Accuracy within :data:`NULL_BAND`; None when fewer than :data:`NULL_MIN_N` windows,
        or when outside the band but within 1.96 cluster-robust SE of 0.5 (inconclusive).
    verdict : str
        "at chance", "NOT at chance", "too few windows" or "inconclusive (...)".
    cluster_se : float
        Standard error of ``accuracy`` with (shuffle, trial) clusters, whose windows are
        correlated.
    n_clusters : int
        Number of (shuffle, trial) clusters.
    """

    method: str
    window_s: float | None
    n: int
    n_reps: int
    accuracy: float
    ci_low: float
    ci_high: float
    rep_min: float
    rep_max: float
    rep_sd: float
    at_chance: bool | None
    verdict: str = ""
    cluster_se: float = 0.0
    n_clusters: int = 0


class MethodSummary(BaseModel):
    """All numbers of one method.

    Attributes
    ----------
    method, cv : str
    n_subjects, n_trials : int
    elapsed_s : float
        Wall time of the evaluation, s.
    windows : list of AccuracyStats
        Pooled over subjects, one per window length.
    subjects : list of AccuracyStats
        One per subject and window length.
    mesd : dict of str to MesdResult
        Per subject (from that subject's accuracy curve).
    mesd_median_s : float | None
        Median of the subjects' MESD, s (None if no subject has one).
    mesd_pooled : MesdResult
        From the pooled accuracy curve.
    null : list of NullStats
        Per window length, then pooled (``window_s`` None); empty without null runs.
    """

    method: str
    cv: str
    n_subjects: int
    n_trials: int
    elapsed_s: float
    windows: list[metrics.AccuracyStats]
    subjects: list[metrics.AccuracyStats]
    mesd: dict[str, metrics.MesdResult]
    mesd_median_s: float | None
    mesd_pooled: metrics.MesdResult
    null: list[NullStats] = Field(default_factory=list)


class DecodeSummary(BaseModel):
    """Content of ``summary.json``.

    Attributes
    ----------
    created : str
        ISO 8601 UTC.
    methods : list of MethodSummary
    comparisons : list of PairedComparison
        Exact McNemar tests between every pair of methods, per window length.
    config : dict
        The run's configuration as given.
    versions : dict of str to str
        avlab, mne, numpy, scipy, scikit-learn, torch ("not installed" if absent).
    caveats : list of str
    """

    created: str
    methods: list[MethodSummary]
    comparisons: list[metrics.PairedComparison] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    caveats: list[str] = Field(default_factory=lambda: list(CAVEATS))


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("avlab", "mne", "numpy", "scipy", "scikit-learn", "pandas", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _config_dict(config: BaseModel | Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    raw = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
    return json.loads(json.dumps(raw, default=str))


def _null_stats(method: str, null: pd.DataFrame) -> list[NullStats]:
    out = []
    groups = [(float(w), g) for w, g in null.groupby("window_s", sort=True)]
    for w, g in [*groups, (None, null)]:
        n, k = len(g), int(g["correct"].sum())
        reps = g.groupby("null_rep")["correct"].mean().to_numpy(float)
        _, lo, hi = metrics.binomial_stats(k, n)
        acc = k / n
        # windows of one trial (within one shuffle) are correlated: a cluster-robust SE
        cl = g.groupby(["null_rep", "subject", "session", "run", "trial"])["correct"]
        kc, nc = cl.sum().to_numpy(float), cl.size().to_numpy(float)
        se = float(np.sqrt(np.sum((kc - acc * nc) ** 2)) / n) if n else 0.0
        if n < NULL_MIN_N:
            ok, verdict = None, "too few windows"
        elif NULL_BAND[0] <= acc <= NULL_BAND[1]:
            ok, verdict = True, "at chance"
        elif abs(acc - 0.5) <= 1.96 * se:
            ok, verdict = None, "inconclusive (too few trials x shuffles; add --null-shuffles)"
        else:
            ok, verdict = False, "NOT at chance"
        out.append(
            NullStats(
                method=method,
                window_s=w,
                n=n,
                n_reps=len(reps),
                accuracy=acc,
                ci_low=lo,
                ci_high=hi,
                rep_min=float(reps.min()),
                rep_max=float(reps.max()),
                rep_sd=float(reps.std(ddof=1)) if len(reps) > 1 else 0.0,
                at_chance=ok,
                verdict=verdict,
                cluster_se=se,
                n_clusters=len(kc),
            )
        )
        if ok is False:
            logger.warning(
                "%s: null control at %.3f over %d windows (%s), outside %.2f–%.2f",
                method,
                acc,
                n,
                "all windows" if w is None else f"{w:g}-s windows",
                *NULL_BAND,
            )
    return out


def summarize(
    results: EvalResult | Sequence[EvalResult],
    *,
    config: BaseModel | Mapping[str, Any] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> DecodeSummary:
    """Compute every reported number from evaluation results.

    Parameters
    ----------
    results : EvalResult or sequence of EvalResult
        One per method.
    config : pydantic model | mapping | None
        Run configuration, stored as given.
    n_boot : int
        Trial-bootstrap samples.
    seed : int
        Bootstrap seed.

    Returns
    -------
    DecodeSummary
    """
    results = [results] if isinstance(results, EvalResult) else list(results)
    methods = []
    for res in results:
        real = res.real
        pooled = metrics.accuracy_stats(real, n_boot=n_boot, seed=seed)
        per_sub = metrics.accuracy_stats(real, per_subject=True, n_boot=n_boot, seed=seed)
        mesd_sub = {}
        for sub in sorted(real["subject"].unique()):
            rows = [s for s in per_sub if s.subject == sub]
            mesd_sub[str(sub)] = metrics.mesd(
                [s.window_s for s in rows],
                [s.accuracy for s in rows],
                label=f"sub-{sub} {res.method}",
            )
        vals = [m.mesd_s for m in mesd_sub.values() if m.mesd_s is not None]
        methods.append(
            MethodSummary(
                method=res.method,
                cv=res.cv,
                n_subjects=int(real["subject"].nunique()),
                n_trials=int(real.groupby(list(metrics.TRIAL_KEY)).ngroups),
                elapsed_s=float(res.elapsed_s),
                windows=pooled,
                subjects=per_sub,
                mesd=mesd_sub,
                mesd_median_s=float(np.median(vals)) if vals else None,
                mesd_pooled=metrics.mesd(
                    [s.window_s for s in pooled],
                    [s.accuracy for s in pooled],
                    label=f"pooled {res.method}",
                ),
                null=_null_stats(res.method, res.null) if not res.null.empty else [],
            )
        )
    comparisons = []
    if len(results) > 1:
        allw = pd.concat([r.real for r in results], ignore_index=True)
        for i, a in enumerate(results):
            for b in results[i + 1 :]:
                comparisons.extend(metrics.compare_methods(allw, a.method, b.method))
    caveats = list(CAVEATS)
    if any(r.cv == "loso" for r in results):
        caveats.append(
            "Leave-one-subject-out: other subjects' trials that played the same stimuli "
            "stay in training unless stimulus_disjoint was set; a decoder that sees the "
            "envelopes (CNN, CCA) could learn which talker of a stimulus was attended."
        )
    if any(r.cv == "applied" for r in results):
        caveats.append("A saved model was applied without refitting: no cross-validation.")
    return DecodeSummary(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        methods=methods,
        comparisons=comparisons,
        config=_config_dict(config),
        versions=_versions(),
        caveats=caveats,
    )
