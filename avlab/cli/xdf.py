"""``avlab import-xdf``: a LabRecorder XDF file into a session folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avlab.cli import app

__all__ = ["import_xdf_command"]


@app.command("import-xdf")
def import_xdf_command(
    xdf_file: Annotated[Path, typer.Argument(help="The .xdf file.")],
    out_dir: Annotated[
        Path, typer.Argument(help="Existing directory; the session folder goes in it.")
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing session.")
    ] = False,
) -> None:
    """Convert an XDF file (LabRecorder) into an avlab session folder."""
    from avlab.record.xdf import import_xdf

    folder = import_xdf(xdf_file, out_dir, overwrite=overwrite)
    typer.echo(str(folder))
