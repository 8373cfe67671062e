"""Configuration of the simulated lab (one pydantic model, YAML-friendly).

Every quantity has a unit in its name or description; defaults give a modest
lab (32-channel EEG at 500 Hz, Neon-like gaze, two talkers, microphone,
camera frame times, markers) that runs in real time on a laptop core.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from avlab.errors import AvlabError

__all__ = [
    "AudioConfig",
    "CameraConfig",
    "EEGConfig",
    "FaultConfig",
    "GazeConfig",
    "MarkerConfig",
    "ParadigmConfig",
    "SimConfig",
    "TrialConfig",
    "load_sim_config",
]

Stamping = Literal["source", "arrival", "device"]
StreamKind = Literal["EEG", "Gaze", "Markers", "Talkers", "Microphone", "Camera"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EEGConfig(_Model):
    """Simulated EEG amplifier."""

    enabled: bool = True
    n_channels: int = Field(default=32, ge=8, le=256)
    srate: float = Field(default=500.0, ge=250.0, le=2048.0, description="nominal rate, Hz")
    chunk_s: float = Field(default=0.032, gt=0, le=0.2, description="push interval, s")
    snr_db: float = Field(
        default=-10.0,
        description="power of the speech-evoked (TRF) response over the power of the "
        "background (1/f + alpha + sensor noise, blinks excluded), both averaged "
        "over channels, in dB",
    )
    unattended_gain: float = Field(default=0.3, ge=0, description="unattended TRF / attended")
    alpha_uv: float = Field(default=8.0, ge=0, description="alpha RMS at its peak channel, µV")
    background_uv: float = Field(default=10.0, ge=0, description="1/f RMS per channel, µV")
    sensor_noise_uv: float = Field(default=2.0, ge=0, description="white noise RMS, µV")
    blink_uv: float = Field(default=120.0, ge=0, description="blink peak at Fp1/Fp2, µV")
    stamping: Stamping = "arrival"
    rate_ppm: float = Field(default=50.0, ge=-1000, le=1000)
    jitter_sd_s: float = Field(default=0.001, ge=0)
    latency_s: float = Field(default=0.0, ge=0)


class GazeConfig(_Model):
    """Simulated Neon-like eye tracker with its own clock and a time-echo server."""

    enabled: bool = True
    srate: float = Field(default=200.0, gt=0)
    chunk_s: float = Field(default=0.04, gt=0, le=0.5)
    stamping: Stamping = "device"
    device_offset_s: float = Field(
        default=1.7e9, description="device clock at recorder time 0 (Unix-epoch-like), s"
    )
    drift_ppm: float = Field(default=20.0, ge=-1000, le=1000)
    echo_host: str = "127.0.0.1"
    echo_port: int = Field(default=0, ge=0, le=65535, description="0: any free port")
    blink_rate_hz: float = Field(default=0.25, ge=0)
    look_attended: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="share of trial time the gaze is on the attended talker's face; the rest "
        "are glances of 0.4-1.5 s at the other talker's face (1: always attended)",
    )


class AudioConfig(_Model):
    """Two talkers and the microphone mixture."""

    enabled: bool = True
    srate: float = Field(default=48000.0, gt=0)
    chunk_s: float = Field(default=0.02, gt=0, le=0.2)
    mic_channels: int = Field(default=1, ge=1, le=2)
    mic_noise_db: float = Field(default=-40.0, description="room noise re talker level, dB")
    f0_hz: tuple[float, float] = (115.0, 205.0)
    talker_wavs: tuple[Path, Path] | None = None
    stamping: Stamping = "source"
    rate_ppm: float = 0.0


class CameraConfig(_Model):
    """A scene camera: 30 fps frame-time stream; frames come from ``render_frame``."""

    enabled: bool = True
    fps: float = Field(default=30.0, gt=0)
    width: int = Field(default=320, ge=32)
    height: int = Field(default=240, ge=32)
    stamping: Stamping = "source"


class MarkerConfig(_Model):
    """Event markers (irregular string stream, JSON values)."""

    enabled: bool = True


class TrialConfig(_Model):
    """Attention schedule: cued trials, optional switch mid-trial."""

    n_trials: int | None = Field(
        default=None, ge=0, description="None: as many as fit in the duration (100 if unbounded)"
    )
    trial_s: float = Field(default=40.0, gt=0)
    iti_s: float = Field(default=3.0, ge=0, description="silence between trials, s")
    cue_s: float = Field(default=1.0, ge=0, description="cue before the talkers start, s")
    first_s: float = Field(default=0.5, ge=0, description="first cue after the start, s")
    switch_prob: float = Field(default=0.5, ge=0, le=1)


class FaultConfig(_Model):
    """A fault to inject: the stream stalls, or its outlet is destroyed and re-created."""

    stream: StreamKind
    kind: Literal["stall", "restart"]
    at_s: float = Field(ge=0, description="seconds after the lab start")
    duration_s: float = Field(gt=0)


class ParadigmConfig(_Model):
    """Paradigm mode: the simulated participant follows a real presentation."""

    marker_stream: str = Field(description="LSL name of the presenter's marker stream")
    stimuli_dir: Path = Field(description="folder of the built stimuli (<stim_id>.wav)")
    emit_delay_s: float = Field(
        default=0.15, ge=0.05, le=1.0, description="streams lag true time by this much, s"
    )
    wait_s: float = Field(default=60.0, gt=0, description="wait for the marker stream, s")


class SimConfig(_Model):
    """Everything the simulated lab needs; deterministic under ``seed``."""

    seed: int = Field(default=0, ge=0)
    duration_s: float | None = Field(default=None, gt=0, description="None: until stopped")
    prefix: str = Field(default="", description="prepended to every stream name")
    run_id: str | None = Field(default=None, description="None: a fresh random id")
    truth_path: Path | None = Field(default=None, description="None: a temporary folder")
    host_offset_s: float = Field(
        default=0.0, ge=0, description="run in a time namespace N s ahead (integer, root)"
    )
    eeg: EEGConfig = Field(default_factory=EEGConfig)
    gaze: GazeConfig = Field(default_factory=GazeConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    markers: MarkerConfig = Field(default_factory=MarkerConfig)
    trials: TrialConfig = Field(default_factory=TrialConfig)
    faults: list[FaultConfig] = Field(default_factory=list)
    paradigm: ParadigmConfig | None = Field(
        default=None, description="follow a presenter's markers instead of drawing trials"
    )
    restart_wait_s: float = Field(
        default=10.0, ge=0, description="after a restart, wait up to this long for consumers"
    )

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        if self.host_offset_s != int(self.host_offset_s):
            raise ValueError(
                f"host_offset_s={self.host_offset_s} must be a whole number of seconds "
                "(unshare --monotonic takes integers)"
            )
        for f in self.faults:
            if f.stream == "Markers":
                raise ValueError("faults on the Markers stream are not supported")
        return self


def load_sim_config(path: Path) -> SimConfig:
    """Read a :class:`SimConfig` from a YAML or JSON file.

    Parameters
    ----------
    path : Path
        ``.yaml``/``.yml`` or ``.json`` file.

    Returns
    -------
    config : SimConfig
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise AvlabError(
            f"cannot read simulator config {path}: {exc.strerror}.", "Check the path."
        ) from exc
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        return SimConfig.model_validate(raw or {})
    except (ValidationError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise AvlabError(
            f"invalid simulator config {path}: {exc}",
            "Fix the fields named above; see `avlab sim --help` and SimConfig.",
        ) from exc
