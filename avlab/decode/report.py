"""Decoding results on disk: ``windows.csv``, ``summary.json``, ``figures/*.svg``, ``report.html``.

:func:`write_results` summarizes (:func:`avlab.decode.summary.summarize`) and writes
the summary with the figures (:mod:`avlab.decode.figures`) and a self-contained
HTML page (inline SVG, no scripts); :func:`print_summary` prints it as rich tables.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel

from avlab._logging import logger
from avlab.decode import metrics
from avlab.decode.cv import EvalResult
from avlab.decode.figures import accuracy_figure, null_figure, subjects_figure, svg_text
from avlab.decode.summary import (
    DecodeSummary,
    MethodSummary,
    NullStats,
    summarize,
)
from avlab.errors import OutputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import Console

__all__ = [
    "DecodeSummary",
    "MethodSummary",
    "NullStats",
    "ReportPaths",
    "print_summary",
    "summarize",
    "write_results",
]


@dataclass
class ReportPaths:
    """Files written by :func:`write_results`."""

    windows_csv: Path
    summary_json: Path
    html: Path
    figures: list[Path] = field(default_factory=list)


# -- HTML ---------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f0f0f0}td{text-align:right}td.l{text-align:left}.bad{color:#b00;font-weight:bold}
.ok{color:#070}.note{color:#555}pre{background:#f6f6f6;padding:0.6em;overflow:auto}"""

_EXPLAIN = """<h2>How to read this</h2><ul>
<li><b>Accuracy</b>: the fraction of decision windows in which the decoder picked the talker
the participant was told to attend. Chance is 50 %.</li>
<li><b>Decision window</b>: how many seconds of EEG (or gaze) one decision uses. Longer
windows are more accurate but slower to follow a switch of attention.</li>
<li><b>Wilson CI</b>: 95 % confidence interval of the accuracy if every window were
independent. <b>p</b>: one-sided binomial test against 50 %. <b>Threshold</b>: the lowest
accuracy that would be significant (p &lt; 0.05) with this many windows.</li>
<li><b>Caveat</b>: windows cut from one trial are correlated, so the Wilson CI and p are
optimistic. The <b>trial bootstrap</b> CI resamples whole trials and is the one to quote.</li>
<li><b>MESD</b> (minimal expected switch duration, Geirnaert et al. 2020): the expected time a
decoder-driven system needs to follow a switch of attention, optimised over the window
length; lower is better. A warning means the optimum lay at the edge of the tested windows.</li>
<li><b>Null control</b>: the same pipeline rerun with the talkers' roles swapped by a coin
flip per trial. It must give 50 % (within 48–52 % over at least 1000 windows); otherwise the
evaluation leaks information and no number here can be trusted.</li>
<li><b>Comparison</b>: exact McNemar test on the windows both methods decided.</li></ul>"""


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int = 0) -> str:
    e = html.escape
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _acc_rows(stats: Sequence[metrics.AccuracyStats], subject: bool = False) -> list[list[str]]:
    e = html.escape
    rows = []
    for s in stats:
        row = [e(f"sub-{s.subject}")] if subject else []
        row += [
            f"{s.window_s:g}",
            str(s.n),
            str(s.n_trials),
            f"{s.accuracy:.3f}",
            f"{s.ci_low:.3f}–{s.ci_high:.3f}",
            f"{_fmt(s.boot_low)}–{_fmt(s.boot_high)}",
            f"{s.p_value:.2g}",
            _fmt(s.chance_threshold),
        ]
        rows.append(row)
    return rows


def _method_html(m: MethodSummary) -> str:
    e = html.escape
    head = ["window (s)", "windows", "trials", "accuracy", "Wilson 95 % CI", "bootstrap CI"]
    head += ["p", "threshold"]
    parts = [
        f"<h2>Method: {e(m.method)}</h2>",
        f'<p class="note">{e(m.cv)} cross-validation, {m.n_subjects} subjects, '
        f"{m.n_trials} trials, {m.elapsed_s:.1f} s.</p>",
        _table(head, _acc_rows(m.windows)),
        "<h3>MESD</h3>",
    ]
    mrows = [
        [
            e(f"sub-{sub}"),
            _fmt(r.mesd_s, ".1f"),
            _fmt(r.tau_s, ".2f"),
            _fmt(r.p),
            e(r.warning or ""),
        ]
        for sub, r in m.mesd.items()
    ]
    p = m.mesd_pooled
    mrows.append(
        ["pooled curve", _fmt(p.mesd_s, ".1f"), _fmt(p.tau_s, ".2f"), _fmt(p.p), e(p.warning or "")]
    )
    parts.append(
        _table(["subject", "MESD (s)", "optimal window (s)", "accuracy", "warning"], mrows, 1)
    )
    parts.append(f"<p>Median MESD over subjects: <b>{_fmt(m.mesd_median_s, '.1f')} s</b></p>")
    parts.append("<h3>Per subject</h3>")
    parts.append(_table(["subject", *head], _acc_rows(m.subjects, subject=True), 1))
    if m.null:
        nrows = []
        for n in m.null:
            cls = {True: "ok", False: "bad"}.get(n.at_chance, "note")  # type: ignore[arg-type]
            flag = f'<span class="{cls}">{html.escape(n.verdict or str(n.at_chance))}</span>'
            nrows.append(
                [
                    "all" if n.window_s is None else f"{n.window_s:g}",
                    str(n.n),
                    str(n.n_reps),
                    f"{n.accuracy:.3f}",
                    f"{n.ci_low:.3f}–{n.ci_high:.3f}",
                    f"{n.rep_min:.3f}–{n.rep_max:.3f}",
                    flag,
                ]
            )
        parts.append("<h3>Null control</h3>")
        parts.append(
            _table(
                [
                    "window (s)",
                    "windows",
                    "shuffles",
                    "accuracy",
                    "Wilson CI",
                    "range over shuffles",
                    "verdict",
                ],
                nrows,
            )
        )
    return "\n".join(parts)


def _html(summary: DecodeSummary, svgs: Mapping[str, str]) -> str:
    e = html.escape
    names = ", ".join(m.method for m in summary.methods)
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>Attention decoding: {e(names)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Attention decoding: {e(names)}</h1>",
        f'<p class="note">Created {e(summary.created)}.</p>',
        _EXPLAIN,
    ]
    for key in ("accuracy_vs_window", "subjects", "null"):
        if key in svgs:
            parts.append(svgs[key])
    for m in summary.methods:
        parts.append(_method_html(m))
    if summary.comparisons:
        rows = [
            [
                e(c.method_a),
                e(c.method_b),
                f"{c.window_s:g}",
                str(c.n),
                f"{c.accuracy_a:.3f}",
                f"{c.accuracy_b:.3f}",
                str(c.a_only),
                str(c.b_only),
                f"{c.p_value:.2g}",
            ]
            for c in summary.comparisons
        ]
        parts.append("<h2>Method comparisons</h2>")
        parts.append(
            _table(
                [
                    "a",
                    "b",
                    "window (s)",
                    "windows",
                    "acc. a",
                    "acc. b",
                    "only a right",
                    "only b right",
                    "p (McNemar)",
                ],
                rows,
                2,
            )
        )
    extra = [k for k in svgs if k not in ("accuracy_vs_window", "subjects", "null")]
    if extra:
        parts.append("<h2>Model figures</h2>")
        for k in extra:
            parts.append(f"<h3>{e(k)}</h3>{svgs[k]}")
    parts.append(
        "<h2>Caveats</h2><ul>" + "".join(f"<li>{e(c)}</li>" for c in summary.caveats) + "</ul>"
    )
    parts.append(f"<h2>Configuration</h2><pre>{e(json.dumps(summary.config, indent=2))}</pre>")
    parts.append(f"<h2>Versions</h2><pre>{e(json.dumps(summary.versions, indent=2))}</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_results(
    results: EvalResult | Sequence[EvalResult],
    out_dir: Path | str,
    *,
    config: BaseModel | Mapping[str, Any] | None = None,
    figures: Mapping[str, Figure | str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    overwrite: bool = False,
) -> ReportPaths:
    """Write windows, summary, figures and the HTML report to ``out_dir``.

    Parameters
    ----------
    results : EvalResult or sequence of EvalResult
        One per method.
    out_dir : Path | str
        Output folder (created).
    config : pydantic model | mapping | None
        Run configuration (stored in ``summary.json`` and the report).
    figures : mapping of str to matplotlib Figure or SVG text | None
        Extra figures (e.g. TRF weights), written as ``figures/<name>.svg``.
    n_boot, seed : int
        Trial bootstrap.
    overwrite : bool
        Replace an existing ``summary.json`` in ``out_dir``.

    Returns
    -------
    ReportPaths

    Raises
    ------
    OutputError
        Results exist and ``overwrite`` is False, or ``out_dir`` cannot be written.
    """
    from avlab.bids._io import atomic_write_bytes

    out = Path(out_dir)
    results = [results] if isinstance(results, EvalResult) else list(results)
    if (out / "summary.json").exists() and not overwrite:
        raise OutputError(f'"{out / "summary.json"}" already exists.', hint="Pass overwrite=True.")
    summary = summarize(results, config=config, n_boot=n_boot, seed=seed)
    allw = pd.concat([r.windows for r in results], ignore_index=True)
    csv = allw.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    paths = ReportPaths(out / "windows.csv", out / "summary.json", out / "report.html")
    atomic_write_bytes(paths.windows_csv, csv.encode("utf-8"))
    atomic_write_bytes(paths.summary_json, (summary.model_dump_json(indent=2) + "\n").encode())
    figs: dict[str, Figure | str] = {
        "accuracy_vs_window": accuracy_figure(summary),
        "subjects": subjects_figure(summary),
    }
    null_fig = null_figure(summary, results)
    if null_fig is not None:
        figs["null"] = null_fig
    for name, fig in (figures or {}).items():
        figs[name] = fig
    svgs = {}
    for name, fig in figs.items():
        svgs[name] = svg_text(fig)
        path = out / "figures" / f"{name}.svg"
        atomic_write_bytes(path, svgs[name].encode("utf-8"))
        paths.figures.append(path)
    atomic_write_bytes(paths.html, _html(summary, svgs).encode("utf-8"))
    for p in (paths.windows_csv, paths.summary_json, *paths.figures, paths.html):
        logger.info("wrote %s", p)
    return paths


def print_summary(summary: DecodeSummary, console: Console) -> None:
    """Print accuracy per method and window, MESD and the null control as rich tables.

    Parameters
    ----------
    summary : DecodeSummary
    console : rich.console.Console
    """
    from rich.table import Table

    for m in summary.methods:
        table = Table(title=f"{m.method} ({m.cv}, {m.n_subjects} subjects, {m.n_trials} trials)")
        for col in ("window", "windows", "accuracy", "Wilson 95% CI", "bootstrap CI", "p"):
            table.add_column(col, justify="right")
        for s in m.windows:
            style = "green" if s.p_value < 0.05 else ""
            table.add_row(
                f"{s.window_s:g} s",
                str(s.n),
                f"[{style}]{s.accuracy:.3f}[/]" if style else f"{s.accuracy:.3f}",
                f"{s.ci_low:.3f}–{s.ci_high:.3f}",
                f"{_fmt(s.boot_low)}–{_fmt(s.boot_high)}",
                f"{s.p_value:.2g}",
            )
        console.print(table)
        console.print(f"MESD: median over subjects {_fmt(m.mesd_median_s, '.1f')} s")
        pooled = next((n for n in m.null if n.window_s is None), None)
        if pooled is not None:
            colour = {True: "green", False: "red"}.get(pooled.at_chance, "yellow")  # type: ignore[arg-type]
            verdict = f"[{colour}]{pooled.verdict}[/]"
            console.print(
                f"Null control: {pooled.accuracy:.3f} over {pooled.n} windows "
                f"({pooled.n_reps} shuffles): {verdict}"
            )
