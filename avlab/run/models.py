"""Options and results of ``avlab run`` (pydantic: they cross the CLI boundary)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from avlab.errors import AvlabError

__all__ = [
    "PreflightError",
    "RunIncompleteError",
    "RunOptions",
    "RunRecord",
    "RunResult",
    "TrialRecord",
]

#: Name of the run's own record in the session folder.
RUN_FILE = "run.json"
PLAN_FILE = "plan.json"
PROTOCOL_FILE = "protocol.yaml"
TRIALS_FILE = "trials.jsonl"
STIMULI_MANIFEST = "stimuli.json"


class PreflightError(AvlabError):
    """The pre-flight check failed; nothing was recorded."""

    exit_code = 10


class RunIncompleteError(AvlabError):
    """The run stopped early (Esc, Ctrl-C, a crash); what was recorded is kept."""

    exit_code = 9


class RunOptions(BaseModel):
    """Everything ``avlab run`` needs.

    Attributes
    ----------
    protocol : str
        Protocol name (``competing-talkers``) or YAML file.
    participant, session : str
        Labels; the participant's number picks the counterbalancing group.
    out_dir : Path
        Existing folder; the session folder is created in it.
    simulate : bool
        Run against the simulated lab (simulated participant, all streams).
    resume : bool
        Continue the newest incomplete run of this participant and session.
    max_trials : int | None
        Run at most this many of the (remaining) trials (piloting, demo).
    stimuli_dir : Path | None
        Built stimuli; default ``stimuli/<protocol>`` in the current folder,
        built when missing.
    headless : bool | None
        Use a private virtual screen and null sound card (None: when
        simulating without a DISPLAY).
    accuracy : float
        Simulated participant's probability of a right answer.
    marker_stream : str
        LSL name of the presenter's marker stream.
    sim_prefix : str
        Prefix of the simulated lab's stream names.
    host_offset_s : int
        Simulated lab on "another host": its clock this many seconds ahead (root).
    cameras, microphones : dict of str to str
        Real runs: protocol device name -> OpenCV source / sounddevice input.
    neon_address : str | None
        Real runs: the Neon Companion's ``host[:port]`` (None: discover).
    neon_relay : bool
        Relay the Neon's gaze into LSL (when the Companion app's LSL output is off).
    """

    model_config = ConfigDict(extra="forbid")

    protocol: str
    participant: str
    session: str = "01"
    out_dir: Path
    simulate: bool = False
    resume: bool = False
    max_trials: int | None = Field(default=None, ge=1)
    stimuli_dir: Path | None = None
    headless: bool | None = None
    fullscreen: bool = False
    audio_backend: Literal["auto", "ptb", "sounddevice"] = "auto"
    audio_device: str | None = None
    accuracy: float = Field(default=0.8, ge=0.0, le=1.0)
    seed: int | None = None
    marker_stream: str = "avlab-Presenter"
    sim_prefix: str = "sim-"
    host_offset_s: int = Field(default=0, ge=0)
    eeg_channels: int = Field(default=32, ge=8, le=256)
    eeg_rate: float = Field(default=500.0, ge=250, le=2048)
    snr_db: float | None = None
    skip_check: bool = False
    wait_s: float = Field(default=10.0, gt=0)
    cameras: dict[str, str] = Field(default_factory=dict)
    microphones: dict[str, str] = Field(default_factory=dict)
    neon_address: str | None = None
    neon_relay: bool = False


class TrialRecord(BaseModel):
    """What the run keeps of a trial from the presenter's ``trials.jsonl``."""

    model_config = ConfigDict(extra="allow")

    index: int
    status: str = "completed"


class RunRecord(BaseModel):
    """``run.json``: how this run went (written at start, updated at the end)."""

    model_config = ConfigDict(extra="forbid")

    avlab_version: str
    protocol: str
    protocol_file: str
    participant: str
    session: str
    simulate: bool
    status: Literal["starting", "running", "complete", "incomplete"]
    reason: str = ""
    started: str
    ended: str = ""
    trials_planned: list[int] = Field(default_factory=list)
    trials_done: list[int] = Field(default_factory=list)
    resumes: list[str] = Field(default_factory=list)
    stimuli_dir: str = ""
    presenter_exit: int | None = None
    presenter: dict[str, str | float | int | bool | None] = Field(default_factory=dict)


class RunResult(BaseModel):
    """What ``avlab run`` returns."""

    model_config = ConfigDict(extra="forbid")

    folder: Path
    status: Literal["complete", "incomplete"]
    reason: str = ""
    trials_done: int
    trials_planned: int
    samples_lost: dict[str, int] = Field(default_factory=dict)
