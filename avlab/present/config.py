"""What the presenter is told to do (``PresenterConfig``) and how it ends (exit codes)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EXIT_ABORTED",
    "EXIT_COMPLETE",
    "EXIT_ERROR",
    "EXIT_SIGNAL",
    "PresentResult",
    "PresenterConfig",
]

EXIT_COMPLETE = 0
EXIT_ERROR = 1
EXIT_ABORTED = 10  # Esc
EXIT_SIGNAL = 11  # SIGTERM/SIGINT


class PresenterConfig(BaseModel):
    """Everything ``python -m avlab.present CONFIG.json`` needs.

    Attributes
    ----------
    plan_file : Path
        The session plan (``plan.json``, a :class:`~avlab.protocol.plan.SessionPlan`).
    stimuli_dir : Path
        Built stimuli (``stimuli.json`` with ``<stim_id>.wav/.mp4``).
    out_dir : Path
        Where ``trials.jsonl``, ``stimulus_log.jsonl`` and ``presenter.jsonl`` go.
    marker_name, source_id : str
        LSL marker stream name and source id.
    fullscreen : bool
    size : tuple of int
        Window size in pixels (windowed mode).
    screen : int
        Screen index.
    refresh_hz : float
        Frame rate the presenter paces itself to when the display has no
        vertical blanking (a virtual screen flips as fast as it is asked).
    audio_backend : {"auto", "ptb", "sounddevice"}
    audio_device : str | None
        Output device (index or part of its name); None: the default.
    audio_latency_s : float
        Audio is scheduled this far ahead of the flip it is locked to, s; more
        than the output buffer plus a callback period (else the onset is late,
        still reported at its true time).
    audio_buffer_s : float
        Output buffer asked of the sound card (sounddevice backend), s. On
        PulseAudio with 2 busy cores 0.02 underran often and 0.05 now and
        then (an underrun shifts the rest of the sound: counted per trial).
    responder : {"keyboard", "auto"}
        ``auto``: a simulated participant answers (``accuracy``, ``seed``).
    accuracy : float
        Probability that the auto responder answers right.
    rt_median_s : float
        Auto responder: median reaction time, s (log-normal).
    rt_sigma : float
        Auto responder: sigma of the log reaction time.
    seed : int
    trials : list of int | None
        Trial indices to run (None: all), in plan order.
    handshake : bool
        Print a ``ready`` JSON line and wait for ``go`` on stdin before the first trial.
    photodiode : bool
        Draw a photodiode patch (top centre) that is white on every marked flip.
    rush : bool
        Run the drawing thread at real-time priority (PsychoPy ``core.rush``:
        SCHED_RR on Linux; needs root, CAP_SYS_NICE or an rtprio limit, else
        logged and ignored).
    """

    model_config = ConfigDict(extra="forbid")

    plan_file: Path
    stimuli_dir: Path
    out_dir: Path
    marker_name: str = "avlab-Presenter"
    source_id: str = ""
    fullscreen: bool = False
    size: tuple[int, int] = (1280, 720)
    screen: int = 0
    refresh_hz: float = Field(default=60.0, gt=0)
    audio_backend: Literal["auto", "ptb", "sounddevice"] = "auto"
    audio_device: str | None = None
    audio_latency_s: float = Field(default=0.25, ge=0.02, le=1.0)
    audio_buffer_s: float = Field(default=0.1, ge=0.005, le=0.5)
    responder: Literal["keyboard", "auto"] = "keyboard"
    accuracy: float = Field(default=0.8, ge=0.0, le=1.0)
    rt_median_s: float = Field(default=1.2, gt=0.05, le=10.0)
    rt_sigma: float = Field(default=0.3, ge=0.0, le=2.0)
    seed: int = 0
    trials: list[int] | None = None
    handshake: bool = False
    photodiode: bool = True
    rush: bool = True


class PresentResult(BaseModel):
    """How a presenter run ended.

    Attributes
    ----------
    exit_code : int
        0 complete, 10 Esc, 11 SIGTERM/SIGINT (see the ``EXIT_*`` constants).
    status : {"complete", "aborted"}
    reason : str | None
        Abort reason (``"escape"``, ``"signal"``), None when complete.
    completed : list of int
        Indices of the trials run to the end, in order.
    aborted_trial : int | None
        Index of the trial cut short, if any.
    n_markers : int
        Markers pushed.
    dropped_frames : int
        Frames later than 1.5 refresh periods over the whole run.
    out_dir : Path
    """

    model_config = ConfigDict(extra="forbid")

    exit_code: int
    status: Literal["complete", "aborted"]
    reason: str | None = None
    completed: list[int] = Field(default_factory=list)
    aborted_trial: int | None = None
    n_markers: int = 0
    dropped_frames: int = 0
    out_dir: Path
