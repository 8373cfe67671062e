"""``avlab demo``: run the pipeline on the simulated lab."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avlab.cli import app

__all__ = ["demo"]


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Argument(help="Folder for the demo's output.")] = Path("demo-out"),
    duration: Annotated[float, typer.Option(help="Recording length in seconds.")] = 60.0,
    host_offset: Annotated[
        int, typer.Option(help="Clock offset of the simulated remote host, s (0: none).")
    ] = 37,
    seed: Annotated[int, typer.Option(help="Seed of the simulated lab.")] = 1,
) -> None:
    """Simulate a lab, record it, inspect it and score the sync against the truth."""
    from avlab.demo import run_demo

    run_demo(out, duration_s=duration, host_offset_s=host_offset, seed=seed)
