"""Finding earlier runs of a participant's session and what they completed.

A run's folder holds ``run.json`` (protocol, participant, session, status) and
the presenter's ``trials.jsonl`` (one line per trial as it finished). Resuming
re-plans the session (the plan is deterministic for the participant, session
and seed) and leaves out every trial completed in any earlier run.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from avlab._logging import logger
from avlab.protocol.plan import SessionPlan
from avlab.run.models import RUN_FILE, TRIALS_FILE, RunRecord, TrialRecord

__all__ = ["completed_trials", "previous_runs", "read_trials"]


def read_trials(folder: Path) -> list[TrialRecord]:
    """Trials recorded in a run folder's ``trials.jsonl`` (a torn last line is skipped).

    Parameters
    ----------
    folder : Path
        Session folder.

    Returns
    -------
    trials : list of TrialRecord
    """
    path = Path(folder) / TRIALS_FILE
    out: list[TrialRecord] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(TrialRecord.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            logger.warning("%s:%d: unreadable trial record skipped (%s)", path, n, exc)
    return out


def previous_runs(out_dir: Path, plan: SessionPlan) -> list[Path]:
    """Earlier run folders in ``out_dir`` of the same protocol, participant and session.

    Parameters
    ----------
    out_dir : Path
    plan : SessionPlan

    Returns
    -------
    folders : list of Path
        Oldest first.
    """
    found = []
    for run_file in sorted(Path(out_dir).glob(f"*/{RUN_FILE}")):
        try:
            rec = RunRecord.model_validate_json(run_file.read_text())
        except (OSError, ValidationError):
            continue
        if (rec.protocol, rec.participant, rec.session) == (
            plan.protocol,
            plan.participant,
            plan.session,
        ) and rec.status != "starting":
            found.append((rec.started, run_file.parent))
    return [f for _, f in sorted(found)]


def completed_trials(folders: list[Path]) -> set[int]:
    """Return the indices of the trials completed in any of ``folders``."""
    return {t.index for f in folders for t in read_trials(f) if t.status == "completed"}
