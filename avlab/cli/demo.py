"""``avlab demo``: run the pipeline on the simulated lab."""

from __future__ import annotations

from pathlib import Path

import typer

from avlab.cli import app


@app.command("demo")
def demo(
    out: Path = typer.Argument(Path("demo-out"), help="Folder for the demo's output."),
    duration: float = typer.Option(60.0, help="Recording length in seconds."),
    host_offset: float = typer.Option(37.0, help="Clock offset of the simulated remote host (s)."),
    seed: int = typer.Option(1, help="Seed of the simulated lab."),
) -> None:
    """Simulate a lab, record it, inspect it and score the sync against the truth."""
    from avlab.demo import run_demo

    run_demo(out, duration_s=duration, host_offset_s=host_offset, seed=seed)
