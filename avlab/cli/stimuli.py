"""``avlab stimuli``: build the stimuli of a protocol, verify a stimulus folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from avlab.cli import app

__all__ = ["stimuli_app"]

stimuli_app = typer.Typer(
    name="stimuli",
    help="Build a protocol's speech, talker videos and noises; verify them.",
    no_args_is_help=True,
)
app.add_typer(stimuli_app, name="stimuli")


@stimuli_app.command("build")
def build_command(
    protocol: Annotated[str, typer.Argument(help="Protocol name or file.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output folder [default: stimuli/<protocol name>]."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild unchanged stimuli too.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=32, help="Built at once.")] = 2,
) -> None:
    """Synthesize speech, render talker videos and make noises for a protocol."""
    from avlab.stimuli import build_protocol_stimuli

    result = build_protocol_stimuli(protocol, out, force=force, jobs=jobs)
    n_built = len(result.rebuilt)
    t = Table(
        title=f"stimuli in {result.folder}",
        title_justify="left",
        caption=f"{n_built} built, {len(result) + len(result.manifest.noise) - n_built} unchanged",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for col in ("id", "talker", "engine", "s", "LUFS", "gain dB", "frames"):
        right = col in ("s", "LUFS", "gain dB", "frames")
        t.add_column(col, justify="right" if right else "left", no_wrap=col == "id")
    for s in result.stimuli:
        t.add_row(s.stim_id, s.talker, "file" if s.source else s.voice.engine,
                  f"{s.duration_s:.2f}", f"{s.lufs:.1f}", f"{s.gain_db:+.1f}",
                  str(s.n_frames or ""))  # fmt: skip
    for n in result.manifest.noise:
        t.add_row(f"noise-{n.kind}", "", "noise", f"{n.duration_s:.2f}", f"{n.lufs:.1f}",
                  f"{n.gain_db:+.1f}", "")  # fmt: skip
    Console(highlight=False).print(t)


@stimuli_app.command("verify")
def verify_command(
    folder: Annotated[Path, typer.Argument(help="A built stimulus folder.")],
) -> None:
    """Check every stimulus file against the SHA-256 in stimuli.json."""
    from avlab.errors import SessionError
    from avlab.stimuli import StimulusSet

    stimuli = StimulusSet.load(folder, verify=False)
    problems = stimuli.verify()
    console = Console(highlight=False, soft_wrap=True)
    for p in problems:
        console.print(f"[red]{p}[/red]")
    if problems:
        raise SessionError(
            f"{len(problems)} file(s) in {folder} do not match stimuli.json.",
            "rebuild them: avlab stimuli build PROTOCOL --out " + str(folder),
        )
    console.print(
        f"ok: {len(stimuli)} stimuli and {len(stimuli.manifest.noise)} noises in {folder} "
        "match stimuli.json."
    )
