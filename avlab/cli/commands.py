"""Imports every command module so that each registers on the app."""

from __future__ import annotations

from avlab.cli import demo, devices, inspect, record, sim, xdf  # noqa: F401
from avlab.cli import app  # noqa: F401  (re-exported for `typer avlab.cli.commands utils docs`)
