"""``avlab decode``: which talker is attended, from EEG, gaze or both, on a BIDS dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avlab.cli import app

__all__ = ["decode_command"]

_METHODS = ("linear", "trf", "cca", "cnn", "gaze", "fusion")


def _floats(text: str, what: str, n: int | None = None) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"{what} must be numbers separated by commas") from None
    if not values or (n is not None and len(values) != n):
        raise typer.BadParameter(f"{what} needs {n or 'at least one'} comma-separated numbers")
    return values


def _methods(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    if names == ["all"]:
        return list(_METHODS)
    bad = [m for m in names if m not in _METHODS]
    if bad or not names:
        raise typer.BadParameter(
            f"unknown method {', '.join(bad) or '(none)'}; choose from {', '.join(_METHODS)} "
            "or all (several: linear,gaze,fusion)"
        )
    return names


@app.command("decode")
def decode_command(
    bids_root: Annotated[Path, typer.Argument(help="The BIDS dataset (avlab bids convert).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for results, figures, report.")],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="linear (backward model), trf (forward model), cca, cnn, gaze, fusion; "
            "several separated by commas, or all.",
        ),
    ] = "linear",
    subjects: Annotated[
        str | None, typer.Option("--subjects", help="Subjects, e.g. 01,02 (default: all).")
    ] = None,
    task: Annotated[str | None, typer.Option("--task", help="Task label (default: all).")] = None,
    windows: Annotated[
        str, typer.Option("--windows", help="Decision windows, s.")
    ] = "1,2,5,10,20,30",
    cv: Annotated[
        str,
        typer.Option(
            "--cv", help="loto: leave one trial out per subject; loso: leave one subject out."
        ),
    ] = "loto",
    stimulus_disjoint: Annotated[
        bool,
        typer.Option(
            "--stimulus-disjoint",
            help="loso: also keep out of training the other subjects' trials that played "
            "the held-out subject's stimuli.",
        ),
    ] = False,
    envelope: Annotated[
        str, typer.Option("--envelope", help="Speech envelope: hilbert or gammatone.")
    ] = "hilbert",
    band: Annotated[str, typer.Option("--band", help="EEG/envelope band-pass, Hz.")] = "1,9",
    sfreq: Annotated[float, typer.Option("--sfreq", help="Rate for decoding, Hz.")] = 64.0,
    reference: Annotated[
        str, typer.Option("--reference", help="average, or channels e.g. TP9,TP10.")
    ] = "average",
    null_shuffles: Annotated[
        int,
        typer.Option(
            "--null-shuffles", min=0, help="Repeats of the whole evaluation with shuffled labels."
        ),
    ] = 1,
    cnn_epochs: Annotated[
        int, typer.Option("--cnn-epochs", min=1, help="Most training epochs of the CNN.")
    ] = 15,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Same seed, same results.")] = 0,
    n_jobs: Annotated[int, typer.Option("--n-jobs", min=1, help="Worker processes.")] = 1,
    save_model: Annotated[
        Path | None,
        typer.Option("--save-model", help="Also train on all trials and save the model(s) here."),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Apply a saved model (no training) instead of --method."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Decode the attended talker with leakage-free cross-validation; write results and report."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from avlab.decode.config import EnvelopeConfig, Preprocessing
    from avlab.decode.pipeline import DecodeOptions, decode_dataset, print_outcome

    if cv not in ("loto", "loso"):
        raise typer.BadParameter("--cv must be loto or loso")
    if envelope not in ("hilbert", "gammatone"):
        raise typer.BadParameter("--envelope must be hilbert or gammatone")
    lo, hi = _floats(band, "--band", 2)
    ref: str | list[str] = (
        "average" if reference == "average" else [c.strip() for c in reference.split(",")]
    )
    options = DecodeOptions(
        methods=_methods(method),  # type: ignore[arg-type]
        subjects=[s.strip() for s in subjects.split(",")] if subjects else None,
        task=task,
        windows=_floats(windows, "--windows"),
        cv=cv,  # type: ignore[arg-type]
        stimulus_disjoint=stimulus_disjoint,
        preprocessing=Preprocessing(l_freq=lo, h_freq=hi, sfreq=sfreq, reference=ref),
        envelope=EnvelopeConfig(method=envelope),  # type: ignore[arg-type]
        null_shuffles=null_shuffles,
        cnn_epochs=cnn_epochs,
        seed=seed,
        n_jobs=n_jobs,
        save_model=save_model,
        model=model,
    )
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, disable=quiet, transient=True) as bar:
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        outcome = decode_dataset(bids_root, out, options, progress=on_progress)
    print_outcome(outcome, Console())
    typer.echo(f"report: {outcome.report_html}")
