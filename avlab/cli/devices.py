"""``avlab devices``: LSL streams, cameras and audio devices visible here."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from avlab.cli import app

__all__ = ["devices_command"]


@app.command("devices")
def devices_command(
    wait: Annotated[float, typer.Option("--wait", help="Seconds to listen for LSL streams.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """List LSL streams, local cameras and audio devices."""
    from avlab.devices.lsl import list_devices

    report = list_devices(wait_s=wait)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    console = Console()
    t = Table(title=f"LSL streams ({len(report.streams)})", title_justify="left")
    for col in ("name", "type", "channels", "rate (Hz)", "format", "source_id", "host"):
        t.add_column(
            col,
            justify="right" if col in ("channels", "rate (Hz)") else "left",
            overflow="fold",
        )
    for s in report.streams:
        t.add_row(
            s.name,
            s.type,
            str(s.channel_count),
            f"{s.nominal_srate:g}",
            s.channel_format,
            s.source_id,
            s.hostname,
        )
    console.print(t)
    c = Table(title=f"cameras ({len(report.cameras)})", title_justify="left")
    c.add_column("device")
    c.add_column("name")
    for cam in report.cameras:
        c.add_row(cam.path, cam.name)
    console.print(c)
    a = Table(title=f"audio devices ({len(report.audio)})", title_justify="left")
    for col in ("index", "name", "inputs", "outputs", "rate (Hz)"):
        a.add_column(col)
    for d in report.audio:
        a.add_row(
            str(d.index),
            d.name,
            str(d.max_input_channels),
            str(d.max_output_channels),
            f"{d.default_samplerate:g}",
        )
    console.print(a)
