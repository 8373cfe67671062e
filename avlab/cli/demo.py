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
    trials: Annotated[
        int, typer.Option(min=0, help="Trials of the simulated participant session (0: none).")
    ] = 2,
) -> None:
    """Record the simulated lab, then run a simulated participant session; inspect both."""
    from avlab.demo import run_demo

    run_demo(out, duration_s=duration, host_offset_s=host_offset, seed=seed, trials=trials)
