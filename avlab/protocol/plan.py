"""The session plan: what a protocol expands to for one participant and session.

This is the contract between stages. :mod:`avlab.protocol` produces it from a
protocol file (randomized with a seed, counterbalanced across participants);
:mod:`avlab.stimuli` builds the stimuli its :class:`StimulusRequest` list names;
:mod:`avlab.present` shows it; the simulated participant in :mod:`avlab.sim`
reacts to it; the BIDS stage reads it back from the session folder
(``plan.json``). Times are seconds; screen positions are PsychoPy ``height``
units (the screen's height is 1, the centre is ``(0, 0)``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CuePlan",
    "NoisePlan",
    "QuestionPlan",
    "SessionPlan",
    "StimulusRequest",
    "SwitchPlan",
    "TalkerPlay",
    "TrialPlan",
    "Voice",
]

Engine = Literal["espeak-ng", "flite", "festival", "file"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Voice(_Model):
    """A text-to-speech voice.

    Attributes
    ----------
    engine : {"espeak-ng", "flite", "festival", "file"}
        Synthesizer; ``"file"`` means a recorded file is given instead.
    name : str
        Engine-specific voice (``"en-us+m3"`` for espeak-ng, ``"slt"`` for flite,
        ``"voice_kal_diphone"`` for festival); empty for ``"file"``.
    rate_wpm : float | None
        Speaking rate in words per minute, where the engine supports it.
    pitch : float | None
        Engine pitch setting (espeak-ng 0-99), where supported.
    """

    engine: Engine
    name: str = ""
    rate_wpm: float | None = None
    pitch: float | None = None


class StimulusRequest(_Model):
    """One stimulus a plan needs: a talker saying a text (or a given file).

    Attributes
    ----------
    stim_id : str
        Unique, file-name safe id (``[A-Za-z0-9_-]+``); the built files are
        ``<stim_id>.wav`` and, with ``video``, ``<stim_id>.mp4``.
    talker : str
        Talker id in the protocol.
    text : str
        What is said (also the transcript for word scoring); for a given file
        its transcript if known.
    voice : Voice
    file : str | None
        A recorded speech file (WAV/FLAC) to use instead of synthesis, resolved
        relative to the protocol file.
    video : bool
        Whether a talker video (animated face following the speech envelope) is needed.
    face : str
        Face style key for the video (colour/shape variant per talker).
    """

    stim_id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    talker: str
    text: str = ""
    voice: Voice
    file: str | None = None
    video: bool = False
    face: str = "default"


class TalkerPlay(_Model):
    """One talker's part in a trial.

    Attributes
    ----------
    talker : str
        Talker id.
    stim_id : str
        Stimulus played (key of the built stimulus set).
    side : {"left", "right", "center"}
        Where the talker is.
    azimuth_deg : float
        Audio direction, degrees, negative left; spatialized by the presenter.
    position : tuple of float
        Face centre on screen, height units.
    level_db : float
        Gain relative to the stimulus set's normalized loudness, dB.
    video : bool
        Show this talker's face video (False: a still face or nothing).
    onset_s : float
        Start relative to the trial's audio onset, s.
    """

    talker: str
    stim_id: str
    side: Literal["left", "right", "center"] = "center"
    azimuth_deg: float = 0.0
    position: tuple[float, float] = (0.0, 0.0)
    level_db: float = 0.0
    video: bool = True
    onset_s: float = 0.0


class CuePlan(_Model):
    """How the participant is told whom to attend.

    Attributes
    ----------
    modality : {"visual", "auditory", "both"}
        Visual: an arrow/frame at the talker; auditory: a short spoken/tone cue
        from the talker's side.
    duration_s : float
        Cue duration before the talkers start, s.
    text : str
        Optional text shown with the cue.
    """

    modality: Literal["visual", "auditory", "both"] = "both"
    duration_s: float = 2.0
    text: str = ""


class SwitchPlan(_Model):
    """A mid-trial change of the attended talker.

    Attributes
    ----------
    at_s : float
        Time after the trial's audio onset, s.
    to : int
        Index into :attr:`TrialPlan.talkers` of the newly attended talker.
    """

    at_s: float
    to: int


class NoisePlan(_Model):
    """Background noise in a trial.

    Attributes
    ----------
    kind : {"speech-shaped", "babble", "white", "file"}
    snr_db : float
        Target speech level over noise level (loudness, BS.1770), dB.
    stim_id : str | None
        For ``kind="file"`` (and babble built from a file): the noise stimulus id.
    """

    kind: Literal["speech-shaped", "babble", "white", "file"] = "speech-shaped"
    snr_db: float = 0.0
    stim_id: str | None = None


class QuestionPlan(_Model):
    """A question after a trial.

    Attributes
    ----------
    text : str
    options : list of str
        Multiple-choice options (keys 1..n); empty for a typed answer.
    correct : int | None
        Index of the right option, when known.
    """

    text: str
    options: list[str] = Field(default_factory=list)
    correct: int | None = None


class TrialPlan(_Model):
    """One trial as planned.

    Attributes
    ----------
    index : int
        1-based position in the session.
    block : str
        Block id.
    kind : {"attend", "speech-in-noise", "conversation"}
    talkers : list of TalkerPlay
        Talkers heard/seen; their order is the channel order of the trial's
        talker stream and of ``attended``/``switch.to`` indices.
    attended : int | None
        Index of the cued talker at the start (None: no attention task).
    cue : CuePlan | None
    switch : SwitchPlan | None
    noise : NoisePlan | None
    duration_s : float | None
        Trial duration, s; None = the longest talker stimulus.
    question : QuestionPlan | None
    response : {"none", "choice", "typed", "experimenter"}
        How the answer is collected (word report: ``typed`` or ``experimenter``).
    instructions : str
        Text shown before the trial (block start), empty for none.
    break_before : bool
        A self-paced break before this trial.
    iti_s : float
        Blank interval after the trial, s.
    prompt : str
        Conversation trials: the topic prompt shown during the trial (empty: none).
    turn_keys : dict of str to str
        Conversation trials: key name -> speaker label; the presenter sends a
        ``turn`` marker when the experimenter presses one (empty: no turn keys).
    """

    index: int
    block: str
    kind: Literal["attend", "speech-in-noise", "conversation"] = "attend"
    talkers: list[TalkerPlay]
    attended: int | None = None
    cue: CuePlan | None = None
    switch: SwitchPlan | None = None
    noise: NoisePlan | None = None
    duration_s: float | None = None
    question: QuestionPlan | None = None
    response: Literal["none", "choice", "typed", "experimenter"] = "none"
    instructions: str = ""
    break_before: bool = False
    iti_s: float = 1.0
    prompt: str = ""
    turn_keys: dict[str, str] = Field(default_factory=dict)


class SessionPlan(_Model):
    """Everything one session will present, in order.

    Attributes
    ----------
    protocol : str
        Protocol name.
    protocol_file : str
        Path of the protocol file it came from.
    protocol_sha256 : str
        Checksum of that file.
    participant, session : str
    seed : int
        Seed used for this participant's randomization.
    counterbalance : int
        Counterbalancing group of this participant (0-based).
    streams : list of str
        LSL stream types/names the protocol requires (see ``avlab check``).
    trials : list of TrialPlan
    stimuli : list of StimulusRequest
        Every stimulus the trials use.
    """

    protocol: str
    protocol_file: str = ""
    protocol_sha256: str = ""
    participant: str
    session: str
    seed: int
    counterbalance: int = 0
    streams: list[str] = Field(default_factory=list)
    trials: list[TrialPlan]
    stimuli: list[StimulusRequest]
