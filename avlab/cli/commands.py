"""Imports every command module so that each registers on the app.

``app`` is re-exported so that ``typer avlab.cli.commands utils docs`` (``make
docs``) finds the fully registered application.
"""

from __future__ import annotations

from avlab.cli import (
    app,
    bids,
    decode,
    demo,
    devices,
    inspect,
    protocol,
    record,
    run,
    separate,
    sim,
    simulate,
    stimuli,
    xdf,
)

__all__ = [
    "app",
    "bids",
    "decode",
    "demo",
    "devices",
    "inspect",
    "protocol",
    "record",
    "run",
    "separate",
    "sim",
    "simulate",
    "stimuli",
    "xdf",
]
