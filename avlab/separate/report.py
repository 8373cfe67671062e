"""Tables, figures and the HTML report of ``avlab separate run`` on a dataset.

Written to the output folder:

- ``windows.csv``: one row per decision window (truth, EEG and gaze choices, the
  decoder's verdict on clean envelopes);
- ``trials.csv``: one row per trial and signal (mixture, steered-…) with SI-SDR,
  SI-SDRi, STOI, ESTOI, PESQ and SRMR against the attended talker;
- ``summary.json``: accuracy per window length and mean scores;
- ``figures/steering.svg`` (accuracy against window length) and
  ``figures/scores.svg`` (scores per signal);
- ``report.html``: all of it with plain-language explanations.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from avlab.separate.session import SteerResult

__all__ = ["print_result", "write_report"]

_METRICS = (
    ("si_sdr_db", "SI-SDR (dB)"),
    ("si_sdri_db", "SI-SDRi (dB)"),
    ("stoi", "STOI"),
    ("estoi", "ESTOI"),
    ("pesq", "PESQ"),
    ("srmr", "SRMR"),
)


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def _steering_figure(result: SteerResult) -> Any:
    from matplotlib.figure import Figure

    acc = result.accuracy()
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    w = np.array([a["window_s"] for a in acc])
    for key, label, style in (
        ("eeg_decoder_clean", "EEG decoder, clean envelopes", "--"),
        ("eeg_steering", "EEG steering, separated talkers", "-"),
        ("gaze_steering", "gaze steering", "-"),
    ):
        y = np.array([a.get(key, np.nan) for a in acc])
        if np.isfinite(y).any():
            ax.plot(w, y, style, marker="o", label=label)
    ax.axhline(1.0, color="0.6", lw=1, label="ground truth (upper bound)")
    ax.axhline(0.5, color="0.4", lw=1, ls=":")
    ax.set_xscale("log")
    ax.set_xticks(w, [f"{x:g}" for x in w])
    ax.set_xlabel("decision window (s)")
    ax.set_ylabel("share of windows with the attended talker kept")
    ax.set_ylim(0.0, 1.05)
    ax.set_title("Steering accuracy against window length", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _scores_figure(result: SteerResult) -> Any:
    from matplotlib.figure import Figure

    means = result.mean_scores()
    names = list(means)
    fig = Figure(figsize=(8.0, 3.2), layout="constrained")
    shown = [(k, lab) for k, lab in _METRICS if k != "si_sdri_db"]
    for i, (key, label) in enumerate(shown):
        ax = fig.add_subplot(1, len(shown), i + 1)
        vals = [means[n].get(key, math.nan) for n in names]
        ax.bar(range(len(names)), vals, color=["0.6"] + ["C0"] * (len(names) - 1))
        ax.set_xticks(
            range(len(names)), [n.replace("steered-", "") for n in names], rotation=45, fontsize=7
        )
        ax.set_title(label, fontsize=9)
    fig.suptitle("Attended talker: mixture against steered output (mean over trials)", fontsize=10)
    return fig


def _fmt(x: Any, spec: str = ".3f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return format(x, spec) if isinstance(x, float) else str(x)


def write_report(result: SteerResult, out: Path, *, source: str) -> Path:
    """Write tables, figures and ``report.html``; return the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    with open(out / "windows.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        cols = [
            "subject",
            "run",
            "trial",
            "segment",
            "window_s",
            "start_s",
            "truth",
            "eeg_choice",
            "decoder_correct",
            "gaze_choice",
        ]
        w.writerow(cols)
        for row in result.windows:
            w.writerow(["" if getattr(row, c) is None else getattr(row, c) for c in cols])
    with open(out / "trials.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "subject",
                "run",
                "trial",
                "segment",
                "duration_s",
                "signal",
                *[k for k, _ in _METRICS],
            ]
        )
        for t in result.trials:
            for sig, m in t.scores.items():
                w.writerow(
                    [
                        t.subject,
                        t.run,
                        t.trial,
                        t.segment,
                        f"{t.duration_s:.3f}",
                        sig,
                        *[_fmt(m.get(k), ".4f") for k, _ in _METRICS],
                    ]
                )
    summary = {
        "source": source,
        "mode": result.mode,
        "steer": result.steer,
        "accuracy": result.accuracy(),
        "mean_scores": result.mean_scores(),
        "skipped": result.skipped,
        "n_trials": len(result.trials),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, allow_nan=True))
    svgs = {"steering": _svg(_steering_figure(result))}
    if result.mean_scores():
        svgs["scores"] = _svg(_scores_figure(result))
    for name, text in svgs.items():
        (out / "figures" / f"{name}.svg").write_text(text)
    path = out / "report.html"
    path.write_text(_html(result, summary, svgs, source))
    return path


def _html(result: SteerResult, summary: dict[str, Any], svgs: dict[str, str], source: str) -> str:
    acc_rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{_fmt(a.get(k), spec)}</td>"
            for k, spec in (
                ("window_s", "g"),
                ("n_windows", "d"),
                ("eeg_decoder_clean", ".3f"),
                ("eeg_steering", ".3f"),
                ("gaze_steering", ".3f"),
            )
        )
        + "</tr>"
        for a in summary["accuracy"]
    )
    means = summary["mean_scores"]
    score_rows = "".join(
        f"<tr><td>{html.escape(sig)}</td>"
        + "".join(f"<td>{_fmt(m.get(k), '.2f')}</td>" for k, _ in _METRICS)
        + "</tr>"
        for sig, m in means.items()
    )
    skipped = "".join(f"<li>{html.escape(s)}</li>" for s in result.skipped) or "<li>none</li>"
    figs = "".join(f"<figure>{s}</figure>" for s in svgs.values())
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>avlab separate: {html.escape(source)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:2px 8px;text-align:right}}
figure svg{{max-width:100%;height:auto}}</style></head><body>
<h1>Attention-steered separation</h1>
<p>Input: <code>{html.escape(source)}</code>; network: <b>{html.escape(result.mode)}</b>;
{len(result.trials)} trials. The participant's microphone was separated into two talkers;
per decision window one was kept, chosen from the EEG (the envelope a decoder trained on
the participant's other trials reconstructs), from gaze (the side of the face looked at,
matched with each separated talker's left/right microphone level) or from the ground
truth (the upper bound).</p>
<h2>Steering accuracy</h2>
<p>Share of windows in which the attended talker was kept. "EEG decoder, clean" is the
same decoder judged with the clean stimulus envelopes on the same windows: the gap to
"EEG steering" is what separation costs the decision.</p>
<table><tr><th>window (s)</th><th>windows</th><th>EEG decoder, clean</th>
<th>EEG steering</th><th>gaze steering</th></tr>{acc_rows}</table>
<h2>What the listener gets</h2>
<p>Scores of each signal against the attended talker's own recording (mean over trials).
SI-SDR/SI-SDRi: signal-to-distortion ratio, dB (higher is better); STOI/ESTOI: predicted
intelligibility, 0–1; PESQ: predicted quality, 1–4.6 (wide-band); SRMR: reference-free
modulation-energy ratio, higher means less reverberant and noisy. The separated audio
is band-limited to 4 kHz (the network runs at 8 kHz), which caps PESQ.</p>
<table><tr><th>signal</th>{"".join(f"<th>{h}</th>" for _, h in _METRICS)}</tr>
{score_rows}</table>
{figs}
<h2>Not steered</h2><ul>{skipped}</ul>
</body></html>"""


def print_result(result: SteerResult, console: Console) -> None:
    """Print steering accuracy and mean scores as two tables."""
    t = Table(title="Steering accuracy (share of windows keeping the attended talker)")
    for h in ("window s", "windows", "EEG decoder (clean)", "EEG steering", "gaze steering"):
        t.add_column(h, justify="right")
    for a in result.accuracy():
        t.add_row(
            _fmt(a["window_s"], "g"),
            _fmt(int(a["n_windows"]), "d"),
            _fmt(a.get("eeg_decoder_clean")),
            _fmt(a.get("eeg_steering")),
            _fmt(a.get("gaze_steering")),
        )
    console.print(t)
    means = result.mean_scores()
    if means:
        s = Table(title="Attended talker: mean scores over trials")
        s.add_column("signal")
        for _, h in _METRICS:
            s.add_column(h, justify="right")
        for sig, m in means.items():
            s.add_row(sig, *[_fmt(m.get(k), ".2f") for k, _ in _METRICS])
        console.print(s)
