"""Running a participant session: pre-flight, recorder, presenter, simulated lab."""

from __future__ import annotations

from avlab.run.check import CheckReport, CheckRow
from avlab.run.models import PreflightError, RunIncompleteError, RunOptions, RunResult
from avlab.run.runner import run_session

__all__ = [
    "CheckReport",
    "CheckRow",
    "PreflightError",
    "RunIncompleteError",
    "RunOptions",
    "RunResult",
    "run_session",
]
