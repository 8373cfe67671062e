"""``avlab bids``: convert sessions to BIDS, validate a dataset, report what it holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from avlab.cli import app

__all__ = ["bids_app"]

bids_app = typer.Typer(
    name="bids",
    help="Convert session folders into a BIDS dataset, validate it, report on it.",
    no_args_is_help=True,
)
app.add_typer(bids_app, name="bids")


def _pair(text: str | None, what: str) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        w, h = (float(x) for x in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{what} must be two numbers in metres, e.g. 0.53,0.30") from None
    return (w, h)


@bids_app.command("convert")
def convert_command(
    sessions: Annotated[list[Path], typer.Argument(help="Session folders (avlab run/record).")],
    bids_root: Annotated[Path, typer.Option("--bids-root", help="The BIDS dataset folder.")],
    task: Annotated[
        str | None, typer.Option("--task", help="Task label (default: from the protocol).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="EEG format: BrainVision or EDF.")
    ] = "BrainVision",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace runs whose data or options changed.")
    ] = False,
    deidentify: Annotated[
        bool,
        typer.Option(
            "--deidentify", help="Pseudonyms, shifted dates; the key goes to sourcedata/avlab/."
        ),
    ] = False,
    templates: Annotated[
        Path | None,
        typer.Option("--templates", help="Folder with your README, CHANGES, lab.json, ..."),
    ] = None,
    line_freq: Annotated[
        float | None, typer.Option("--line-freq", help="Power-line frequency, Hz.")
    ] = None,
    screen_size: Annotated[
        str | None, typer.Option("--screen-size", help="Screen width,height in metres.")
    ] = None,
    screen_distance: Annotated[
        float | None, typer.Option("--screen-distance", help="Eye to screen, metres.")
    ] = None,
    stimuli: Annotated[
        Path | None, typer.Option("--stimuli", help="Stimuli folder if it moved.")
    ] = None,
) -> None:
    """Convert session folders into BIDS (EEG, events, eye tracking, audio, video, stimuli)."""
    from avlab.bids.convert import ConvertOptions, convert_sessions

    if fmt not in ("BrainVision", "EDF"):
        raise typer.BadParameter("--format must be BrainVision or EDF")
    options = ConvertOptions(
        bids_root=bids_root, task=task, format=fmt, overwrite=overwrite, deidentify=deidentify,  # type: ignore[arg-type]
        templates=templates, line_freq_hz=line_freq,
        screen_size_m=_pair(screen_size, "--screen-size"), screen_distance_m=screen_distance,
        stimuli_dir=stimuli,
    )  # fmt: skip
    result = convert_sessions(sessions, options)
    table = Table(title=f"BIDS dataset {result.root}")
    for col in ("session folder", "run", "status", "files", "duration s", "took s"):
        table.add_column(col, justify="right" if col[0] in "fdt" else "left")
    for r in result.runs:
        stem = f"sub-{r.subject}_ses-{r.session}_task-{r.task}_run-{r.run}"
        style = {"unchanged": "dim", "overwritten": "yellow"}.get(r.status, "green")
        table.add_row(r.folder.name, stem, f"[{style}]{r.status}[/]", str(r.n_files),
                      f"{r.duration_s:.1f}", f"{r.wall_s:.1f}")  # fmt: skip
    Console().print(table)
    typer.echo(f"next: avlab bids validate {result.root}")


@bids_app.command("validate")
def validate_command(
    root: Annotated[Path, typer.Argument(help="The BIDS dataset folder.")],
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ignore_warnings: Annotated[
        bool, typer.Option("--ignore-warnings", help="Only errors.")
    ] = False,
    no_official: Annotated[
        bool, typer.Option("--no-official", help="Skip the official validator (avlab's only).")
    ] = False,
) -> None:
    """Run the official BIDS validator and avlab's cross-modal checks; exit 12 on errors."""
    from avlab.bids.models import BidsValidationError
    from avlab.bids.validate import print_report, validate_dataset

    if not root.is_dir():
        raise typer.BadParameter(f"{root} is not a folder")
    report = validate_dataset(root, official=not no_official, ignore_warnings=ignore_warnings)
    if json_:
        typer.echo(report.to_json())
    else:
        print_report(report, Console())
    if report.n_errors:
        raise BidsValidationError(
            f"{root}: {report.n_errors} errors, {report.n_warnings} warnings.",
            hint="Each error above names the file and the fix.",
        )


@bids_app.command("report")
def report_command(
    root: Annotated[Path, typer.Argument(help="The BIDS dataset folder.")],
    html: Annotated[
        Path | None,
        typer.Option("--html", help="HTML page to write (default: ROOT-report.html beside it)."),
    ] = None,
) -> None:
    """Subjects, sessions, runs, durations and missing modalities: a table and an HTML page."""
    from avlab.bids.report import dataset_report, print_dataset_report, write_html

    if not root.is_dir():
        raise typer.BadParameter(f"{root} is not a folder")
    rep = dataset_report(root)
    print_dataset_report(rep, Console())
    out = write_html(rep, html or root.parent / f"{root.name}-report.html")
    typer.echo(f"HTML report: {out}")
