"""The protocol file: pydantic models of a paradigm as experimenters write it (YAML).

A protocol names its talkers (a voice, a face, a side of the screen and what
each one says), its blocks of trial templates, and how these are randomized
and counterbalanced; :func:`avlab.protocol.plan_session` expands it into a
:class:`avlab.protocol.plan.SessionPlan` for one participant and session.
Every model forbids unknown keys, so that a typo is an error with a line
number, not a silently ignored setting. Times are seconds, levels dB, screen
positions PsychoPy ``height`` units (centre ``(0, 0)``, screen height 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from avlab.protocol.plan import Engine

__all__ = [
    "Block",
    "Breaks",
    "Counterbalance",
    "Cue",
    "DeviceRequirements",
    "DisplayRequirement",
    "Metadata",
    "Noise",
    "Protocol",
    "Question",
    "Randomization",
    "Requirements",
    "StreamRequirement",
    "Switch",
    "Talker",
    "TalkerRef",
    "Timing",
    "TrialTemplate",
    "Utterance",
    "VoiceSpec",
]

_ID = r"^[A-Za-z0-9_-]+$"
Side = Literal["left", "right", "center"]
Response = Literal["none", "choice", "typed", "experimenter"]
Modality = Literal["visual", "auditory", "both"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metadata(_Model):
    """Who wrote the protocol and what it is for."""

    name: str = Field(pattern=_ID, description="Protocol name (letters, digits, - and _).")
    version: str = Field("1.0", description="Version of this protocol file.")
    description: str = Field("", description="What the paradigm measures, in a few sentences.")
    authors: list[str] = Field(default_factory=list, description="Who wrote it.")


class VoiceSpec(_Model):
    """A talker's voice: a speech synthesizer and its voice, or recorded files."""

    engine: Engine = Field(
        "espeak-ng", description="espeak-ng, flite, festival, or file (recorded speech)."
    )
    name: str = Field(
        "",
        description="Engine voice: espeak-ng 'en-us+m3', flite 'slt', festival "
        "'voice_kal_diphone'; empty for engine 'file'.",
    )
    rate: float | None = Field(
        None,
        gt=40,
        lt=400,
        description="Speaking rate, words per minute (espeak-ng -s; flite and festival: "
        "duration stretch).",
    )
    pitch: float | None = Field(None, ge=0, le=99, description="espeak-ng pitch, 0-99.")


class Question(_Model):
    """A question after a trial: multiple choice, or a typed answer without options."""

    text: str = Field(min_length=1, description="The question shown on screen.")
    options: list[str] = Field(
        default_factory=list, description="Answer options (keys 1..n); empty: typed answer."
    )
    correct: int | str | None = Field(
        None,
        description="The right option: its text, or its 0-based index (0 = first option).",
    )


class Utterance(_Model):
    """Something a talker says: a text to synthesize, or a recorded speech file."""

    id: str = Field(pattern=_ID, description="Unique within the talker.")
    text: str = Field("", description="What is said (and the transcript for word scoring).")
    file: str | None = Field(
        None, description="Recorded speech (WAV/FLAC), relative to the protocol file."
    )
    question: Question | None = Field(
        None, description="Comprehension question about this utterance, asked when attended."
    )


class Talker(_Model):
    """A talker: voice, face, place on screen, level and what they say."""

    id: str = Field(pattern=_ID, description="Talker id used by trials.")
    voice: VoiceSpec = Field(default_factory=VoiceSpec)
    face: str = Field("default", description="Face style of the talker video.")
    side: Side = Field("center", description="Screen side (before counterbalancing).")
    position: tuple[float, float] | None = Field(
        None, description="Face centre, height units; default from side: (+-0.45, 0.05)."
    )
    azimuth_deg: float | None = Field(
        None, ge=-90, le=90, description="Audio direction, degrees, negative left; default +-30."
    )
    level_db: float = Field(0.0, ge=-40, le=20, description="Gain over normalized loudness, dB.")
    utterances: list[Utterance] = Field(default_factory=list)


class TalkerRef(_Model):
    """A talker's part in a trial template."""

    talker: str = Field(description="Talker id.")
    say: str | list[str] | None = Field(
        None,
        description="Utterance id, or a list of ids shared out over the template's "
        "conditions (one trial each).",
    )
    side: Side | None = Field(None, description="Override the talker's side.")
    level_db: float | None = Field(None, ge=-40, le=20, description="Override the level, dB.")
    onset_s: float = Field(0.0, ge=0, description="Start after the trial's audio onset, s.")


class Cue(_Model):
    """How the participant is told whom to attend."""

    modality: Modality = Field("both", description="visual, auditory or both.")
    duration_s: float | None = Field(
        None, gt=0, le=30, description="Cue duration, s; default timing.cue_s."
    )
    text: str = Field("", description="Text shown with the cue.")


class Switch(_Model):
    """A mid-trial change of the attended talker."""

    at_s: float = Field(gt=0, description="Time after audio onset, s.")
    to: str = Field(description="Talker id attended after the switch.")


class Noise(_Model):
    """Background noise; a list of SNRs makes one condition per SNR."""

    kind: Literal["speech-shaped", "babble", "white", "file"] = "speech-shaped"
    snr_db: float | list[float] = Field(description="Speech over noise loudness, dB.")
    file: str | None = Field(None, description="Noise recording for kind 'file'.")


class TrialTemplate(_Model):
    """One trial, or a set of trials (lists of SNR / video / utterances), in a block."""

    id: str | None = Field(None, pattern=_ID, description="Optional label.")
    kind: Literal["attend", "speech-in-noise", "conversation"] = "attend"
    talkers: list[TalkerRef] = Field(default_factory=list)
    attend: str | None = Field(None, description="Talker id cued at the start.")
    cue: Cue | None = Field(None, description="Cue; default the block's cue.")
    switch: Switch | None = None
    noise: Noise | None = None
    video: bool | list[bool] = Field(
        True, description="Show talker video; [true, false] makes both conditions."
    )
    duration_s: float | None = Field(
        None, gt=0, description="Trial duration, s; default the longest speech."
    )
    question: Question | None = Field(
        None, description="Question; default the attended utterance's question."
    )
    response: Response | None = Field(None, description="Default: from the question.")
    prompt: str = Field("", description="Conversation topic shown during the trial.")
    repeat: int = Field(1, ge=1, le=100, description="Repeat this template n times.")


class Block(_Model):
    """A block of trials with its instructions."""

    id: str = Field(pattern=_ID)
    instructions: str = Field("", description="Shown before the block's first trial.")
    cue: Cue | None = Field(None, description="Default cue of the block's trials.")
    response: Response | None = Field(None, description="Default response of its trials.")
    trials: list[TrialTemplate] = Field(min_length=1)


class Randomization(_Model):
    """Seeded shuffling; the seed is mixed with participant and session."""

    seed: int = Field(0, ge=0, description="Base seed.")
    shuffle_trials: bool = Field(True, description="Shuffle trials within each block.")
    shuffle_blocks: bool = Field(False, description="Shuffle the block order.")


class Counterbalance(_Model):
    """Counterbalancing across participants.

    A participant's group is ``(n - 1) mod groups`` where ``n`` is the first
    number in the participant label (``sub-07`` -> 7 -> group 6 of 8); labels
    without digits use a stable hash. The group is read as mixed-radix digits:
    bit 0 swaps the sides, the next bit swaps which talker is attended, the
    rest picks the Latin-square row of the block order and the rotation of
    utterance lists over conditions.
    """

    groups: int = Field(1, ge=1, le=1000, description="Number of counterbalancing groups.")
    swap_sides: bool = Field(False, description="Odd groups swap left and right talkers.")
    swap_attended: bool = Field(False, description="Swap the attended and ignored talker.")
    block_order: Literal["fixed", "latin-square"] = "fixed"
    rotate_items: bool = Field(
        False, description="Rotate utterance lists over conditions (Latin square)."
    )


class Timing(_Model):
    """Default timing, s."""

    iti_s: float = Field(1.0, ge=0, le=60, description="Blank after each trial, s.")
    cue_s: float = Field(2.0, gt=0, le=30, description="Cue duration, s.")
    response_timeout_s: float | None = Field(None, gt=0, description="None: wait.")


class Breaks(_Model):
    """Self-paced breaks."""

    every: int | None = Field(None, ge=1, description="A break every n trials.")
    between_blocks: bool = Field(True, description="A break before each new block.")


class StreamRequirement(_Model):
    """An LSL stream ``avlab check`` must find."""

    type: str = Field(min_length=1, description="Stream type: EEG, Gaze, Markers, Audio...")
    name: str | None = Field(None, description="Exact stream name, if it matters.")
    min_srate_hz: float | None = Field(None, ge=0, description="Lowest nominal rate, Hz.")
    max_srate_hz: float | None = Field(None, ge=0, description="Highest nominal rate, Hz.")
    channels: int | None = Field(None, ge=1, description="Minimum channel count.")
    optional: bool = Field(False, description="Missing: a warning, not a failure.")


class DeviceRequirements(_Model):
    """Devices the session uses besides LSL streams."""

    neon: bool = Field(False, description="A Pupil Labs Neon is used.")
    cameras: list[str] = Field(default_factory=list, description="Camera names.")
    microphones: list[str] = Field(default_factory=list, description="Microphone names.")


class DisplayRequirement(_Model):
    """The presentation screen."""

    refresh_hz: float = Field(60.0, gt=0, le=500, description="Expected refresh rate, Hz.")
    fullscreen: bool = True
    size: tuple[int, int] = Field((1920, 1080), description="Window size, pixels.")


class Requirements(_Model):
    """What ``avlab check`` verifies before a run."""

    streams: list[StreamRequirement] = Field(default_factory=list)
    devices: DeviceRequirements = Field(default_factory=DeviceRequirements)
    display: DisplayRequirement = Field(default_factory=DisplayRequirement)


class Protocol(_Model):
    """A paradigm: talkers, blocks of trials, randomization and requirements."""

    protocol: Metadata
    talkers: list[Talker] = Field(default_factory=list)
    blocks: list[Block] = Field(min_length=1)
    randomization: Randomization = Field(default_factory=Randomization)
    counterbalance: Counterbalance = Field(default_factory=Counterbalance)
    timing: Timing = Field(default_factory=Timing)
    breaks: Breaks = Field(default_factory=Breaks)
    turn_keys: dict[str, str] = Field(
        default_factory=dict,
        description="Conversation: key -> speaker; the presenter marks a turn on each press.",
    )
    requirements: Requirements = Field(default_factory=Requirements)
    _path: Path | None = PrivateAttr(None)
    _sha256: str = PrivateAttr("")

    @property
    def path(self) -> Path | None:
        """The file it was loaded from (None when built in code)."""
        return self._path

    @property
    def sha256(self) -> str:
        """SHA-256 of the file it was loaded from, hex ("" when built in code)."""
        return self._sha256

    @property
    def name(self) -> str:
        """The protocol name."""
        return self.protocol.name

    def talker(self, talker_id: str) -> Talker:
        """Return the talker with this id.

        Parameters
        ----------
        talker_id : str

        Returns
        -------
        talker : Talker

        Raises
        ------
        KeyError
            No talker has this id.
        """
        for t in self.talkers:
            if t.id == talker_id:
                return t
        raise KeyError(talker_id)
