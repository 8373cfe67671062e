"""``avlab inspect SESSION [--json]``: what a session holds and how well it is synced."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avlab.cli import app

__all__ = ["inspect"]


@app.command("inspect")
def inspect(
    session: Annotated[Path, typer.Argument(help="Session folder (or its session.h5).")],
    json_: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON to stdout.")
    ] = False,
) -> None:
    """Show streams, rates, samples lost, gaps, clock offsets and sync error."""
    from avlab.session.summary import print_summary, summarize

    summary = summarize(session)
    if json_:
        typer.echo(summary.model_dump_json(indent=2))
    else:
        print_summary(summary)
