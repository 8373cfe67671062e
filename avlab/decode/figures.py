"""Figures of a decoding summary (matplotlib, Agg, deterministic SVG).

Accuracy against window length per method with confidence intervals and the
chance threshold; per-subject bars; the null distribution.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from avlab.decode.cv import EvalResult
from avlab.decode.summary import DecodeSummary, MethodSummary

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["accuracy_figure", "null_figure", "subjects_figure", "svg_text"]


# -- -----------------------------------------------------------------------
def _new_figure(w: float = 6.4, h: float = 4.0) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


def accuracy_figure(summary: DecodeSummary) -> Figure:
    """Accuracy against window length per method, with 95 % CIs and the chance threshold."""
    fig = _new_figure()
    ax = fig.add_subplot()
    for m in summary.methods:
        w = np.array([s.window_s for s in m.windows])
        acc = np.array([s.accuracy for s in m.windows])
        err = np.array([[a - s.ci_low, s.ci_high - a] for a, s in zip(acc, m.windows, strict=True)])
        line = ax.errorbar(w, acc, yerr=err.T, marker="o", capsize=3, label=m.method)
        blo = [s.boot_low if s.boot_low is not None else np.nan for s in m.windows]
        bhi = [s.boot_high if s.boot_high is not None else np.nan for s in m.windows]
        ax.fill_between(w, blo, bhi, color=line.lines[0].get_color(), alpha=0.15, lw=0)
        thr = [s.chance_threshold if s.chance_threshold is not None else np.nan for s in m.windows]
        ax.plot(w, thr, ls=":", color=line.lines[0].get_color(), lw=1)
    ax.axhline(0.5, color="0.4", lw=1)
    ax.set_xscale("log")
    ticks = sorted({s.window_s for m in summary.methods for s in m.windows})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xlabel("decision window (s)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0.3, 1.02)
    ax.set_title(
        "Accuracy against decision window\n(bars: Wilson 95 % CI; band: trial-bootstrap CI; "
        "dotted: significance threshold)",
        fontsize=10,
    )
    ax.legend(loc="lower right")
    return fig


def _ref_window(m: MethodSummary) -> float:
    ws = [s.window_s for s in m.windows]
    return 10.0 if 10.0 in ws else float(ws[len(ws) // 2])


def subjects_figure(summary: DecodeSummary) -> Figure:
    """Accuracy per subject and method at the reference window (10 s or nearest)."""
    subs = sorted({s.subject or "" for m in summary.methods for s in m.subjects})
    fig = _new_figure(max(4.0, 0.5 * len(subs) * len(summary.methods) + 2), 3.6)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(summary.methods))
    for j, m in enumerate(summary.methods):
        ref = _ref_window(m)
        rows = {s.subject: s for s in m.subjects if s.window_s == ref}
        x = np.arange(len(subs)) + j * width
        acc = [rows[s].accuracy if s in rows else np.nan for s in subs]
        lo = [rows[s].accuracy - rows[s].ci_low if s in rows else 0 for s in subs]
        hi = [rows[s].ci_high - rows[s].accuracy if s in rows else 0 for s in subs]
        ax.bar(x, acc, width, yerr=[lo, hi], capsize=2, label=f"{m.method} ({ref:g} s)")
    ax.axhline(0.5, color="0.4", lw=1)
    ax.set_xticks(np.arange(len(subs)) + 0.4 - width / 2, [f"sub-{s}" for s in subs])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy per subject (Wilson 95 % CI)")
    ax.legend(loc="lower right")
    return fig


def null_figure(summary: DecodeSummary, results: Sequence[EvalResult]) -> Figure | None:
    """Null-control accuracy per repetition against the real accuracy; None without nulls."""
    with_null = [(m, r) for m, r in zip(summary.methods, results, strict=True) if m.null]
    if not with_null:
        return None
    fig = _new_figure(6.4, 3.2)
    ax = fig.add_subplot()
    for m, r in with_null:
        ref = _ref_window(m)
        null = r.null[r.null["window_s"] == ref]
        reps = null.groupby(["null_rep", "subject"])["correct"].mean().to_numpy(float)
        bins = np.linspace(0, 1, 41)
        hist = ax.hist(reps, bins=bins, alpha=0.5, label=f"{m.method} null ({ref:g} s)")
        real = next(s.accuracy for s in m.windows if s.window_s == ref)
        ax.axvline(real, color=hist[2][0].get_facecolor(), lw=2, ls="--")
    ax.axvline(0.5, color="0.4", lw=1)
    ax.set_xlabel("accuracy per subject and shuffle (dashed: real labels)")
    ax.set_ylabel("count")
    ax.set_title("Null control: talker labels shuffled per trial, pipeline refitted")
    ax.legend()
    return fig


def svg_text(fig: Figure | str) -> str:
    """Render a figure as deterministic SVG text (no date, fixed ids)."""
    if isinstance(fig, str):
        text = fig
    else:
        import matplotlib

        buf = io.StringIO()
        with matplotlib.rc_context({"svg.hashsalt": "avlab", "svg.fonttype": "none"}):
            fig.savefig(buf, format="svg", metadata={"Date": None})
        text = buf.getvalue()
    i = text.find("<svg")
    return text[i:] if i >= 0 else text
