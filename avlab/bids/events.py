"""``events.tsv`` and ``events.json`` of a run: markers, plan and stimulus log joined.

Sources, all in the session folder: the presenter's marker stream (its JSON
vocabulary is in ``docs/presenter.md``), ``plan.json`` (the trial list as planned:
blocks, talkers, cues, noise), ``stimulus_log.jsonl`` (one line per stimulus played,
with its onset). Every onset is put on the EEG file's time line
(:class:`avlab.bids.timeline.Timeline`), so ``onset * sfreq`` is the sample.

One row per marker, one ``speech`` row per talker stimulus (``stim_file`` relative
to the dataset's ``stimuli/`` folder), one ``noise`` row per masker, and one
``BAD_ACQ_SKIP`` row per zero-padded EEG gap. Every row has a ``trial_type``
(``mne_bids.read_raw_bids`` drops rows whose ``trial_type`` is ``n/a``).
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avlab import __version__
from avlab._logging import logger
from avlab.bids._io import write_json, write_tsv
from avlab.bids.timeline import Timeline
from avlab.protocol.plan import SessionPlan, TrialPlan
from avlab.session import Session

__all__ = ["COLUMNS", "EventRow", "StimulusPresentation", "build_events", "write_events"]

COLUMNS = (
    "onset", "duration", "trial_type", "sample", "trial", "block", "condition", "talker",
    "attended_talker", "role", "side", "face_x", "face_y", "cue_modality", "snr_db", "stim_file",
    "speaker", "response", "correct", "response_time", "marker",
)  # fmt: skip

#: HED annotation of each ``trial_type`` (HED 8.4.0; validated by hedtools in tests).
TRIAL_TYPE_HED = {
    "session_start": "Experiment-structure, (Experiment-control, Label/session-start)",
    "session_end": "Experiment-structure, (Experiment-control, Label/session-end)",
    "instructions": "Sensory-event, Visual-presentation, Instructional",
    "break": "Experiment-structure, Rest",
    "cue": "Sensory-event, Cue, Instructional, (Intended-effect, Attend-to), {talker}",
    "trial_start": "Experiment-structure, Experimental-trial",
    # rows at one onset form one HED event: each stimulus is its own group, told apart
    # by its file, talker and role (curly braces insert those columns' annotations)
    "speech": "(Sensory-event, Experimental-stimulus, Auditory-presentation, "
    "(Vocalized-sound, Language-item, Sentence), {stim_file}, {talker}, {role})",
    "noise": "(Sensory-event, Auditory-presentation, Distractor, Signal-noise, {stim_file})",
    "switch": "Sensory-event, Cue, (Intended-effect, Switch-attention)",
    "trial_end": "Experiment-structure, Experimental-intertrial",
    "question": "Sensory-event, Visual-presentation, Instructional, Language-item",
    "response": "Agent-action, Participant-response",
    "turn": "Agent-action, (Human-agent, Speak)",
    "abort": "Experiment-control, Pause",
    "marker": "Experiment-structure",
    "BAD_ACQ_SKIP": "Data-feature, Data-break-marker",
}

TRIAL_TYPE_DESCRIPTION = {
    "session_start": "The presenter started the session (first flip).",
    "session_end": "The presenter ended the session.",
    "instructions": "An instruction screen was shown (flip time).",
    "break": "A break screen was shown (flip time).",
    "cue": "The cue naming the talker to attend (visual flip or cue-tone onset); "
    "duration = cue length.",
    "trial_start": "Audio onset of the trial's sound (the first sample at the sound "
    "card); duration = until the sound ended.",
    "speech": "One talker's speech stimulus (stim_file) started; duration = its length.",
    "noise": "The background noise (stim_file) started; duration = trial sound length.",
    "switch": "The cue changed the talker to attend (attended_talker = the new one).",
    "trial_end": "The trial's sound ended.",
    "question": "The comprehension question or word-report prompt was shown; "
    "duration = until the response.",
    "response": "The participant answered (key press or click time).",
    "turn": "The experimenter marked a change of speaker in a conversation (speaker).",
    "abort": "The session was aborted (Esc, signal or error).",
    "marker": "A marker from another LSL marker stream (its text in the marker column).",
    "BAD_ACQ_SKIP": "EEG samples never delivered by the amplifier; the file holds zeros "
    "here. MNE reads this as a bad span.",
}


def _column_meta() -> dict[str, dict[str, Any]]:
    return {
        "onset": {"Description": "Seconds from the first EEG sample.", "Units": "s"},
        "duration": {"Description": "Length of the event.", "Units": "s"},
        "trial_type": {
            "Description": "What happened.",
            "Levels": TRIAL_TYPE_DESCRIPTION,
            "HED": TRIAL_TYPE_HED,
        },
        "sample": {"Description": "EEG sample index of the onset (onset x sampling rate)."},
        "trial": {"Description": "Trial number in the session (1-based)."},
        "block": {"Description": "Block of the protocol the trial belongs to."},
        "condition": {
            "Description": "Kind of trial.",
            "Levels": {
                "attend": "Listen to the cued talker among competing talkers.",
                "speech-in-noise": "Repeat the sentence of one talker in noise.",
                "conversation": "Free conversation with a partner.",
            },
        },
        "talker": {"Description": "Talker of the stimulus or cue.", "HED": "(Agent, Label/#)"},
        "attended_talker": {
            "Description": "Talker the participant was cued to attend at this time "
            "(on speech rows: at the stimulus' onset; a switch row changes it).",
        },
        "role": {
            "Description": "Role of a speech stimulus' talker at its onset.",
            "Levels": {
                "target": "The talker the participant was cued to attend.",
                "masker": "A competing talker to ignore.",
            },
            "HED": {"target": "Target", "masker": "Distractor"},
        },
        "side": {"Description": "Where the talker was shown and heard (left/right/center)."},
        "face_x": {
            "Description": "Horizontal centre of the talker's face (video or still) on screen, in "
            "screen heights from the screen centre, right positive (PsychoPy 'height' units); "
            "n/a on rows that are not a talker's speech.",
        },
        "face_y": {
            "Description": "Vertical centre of the talker's face (video or still) on screen, in "
            "screen heights from the screen centre, up positive (PsychoPy 'height' units); "
            "n/a on rows that are not a talker's speech.",
        },
        "cue_modality": {
            "Description": "How the cue was given.",
            "Levels": {
                "visual": "A frame around the face and a text.",
                "auditory": "A tone from the attended side.",
                "both": "Visual and auditory.",
            },
            "HED": {
                "visual": "Visual-presentation",
                "auditory": "Auditory-presentation",
                "both": "Visual-presentation, Auditory-presentation",
            },
        },
        "snr_db": {
            "Description": "Target speech over noise level (BS.1770 loudness).",
            "Units": "dB",
        },
        "stim_file": {
            "Description": "Stimulus file, relative to the dataset's stimuli/ folder.",
            "HED": "(Experimental-stimulus, Pathname/#)",
        },
        "speaker": {
            "Description": "Who spoke from this turn on (conversation).",
            "HED": "(Agent, Label/#)",
        },
        "response": {"Description": "The answer: option number (1-based) or typed text."},
        "correct": {
            "Description": "Whether the answer was right (n/a when unknown).",
            "Levels": {"True": "Right answer.", "False": "Wrong answer."},
            "HED": {"True": "Correct-action", "False": "Incorrect-action"},
        },
        "response_time": {"Description": "Response time from the question.", "Units": "s"},
        "marker": {"Description": "Text of a marker that is not part of avlab's vocabulary."},
    }


@dataclass(frozen=True)
class StimulusPresentation:
    """The ``StimulusPresentation`` object of ``events.json`` (BIDS 1.11).

    Attributes
    ----------
    resolution_px : tuple of int | None
        Window size (width, height) in pixels, from ``presenter.jsonl``.
    refresh_hz : float | None
        Display refresh rate (Hz).
    size_m : tuple of float | None
        Physical screen size (width, height) in metres.
    distance_m : float | None
        Eye-to-screen distance in metres.
    head_stabilization : str
        ``"none"``, ``"chinrest"``, ...
    """

    resolution_px: tuple[int, int] | None = None
    refresh_hz: float | None = None
    size_m: tuple[float, float] | None = None
    distance_m: float | None = None
    head_stabilization: str = "none"

    def to_json(self) -> dict[str, Any]:
        """Return the object as BIDS keys (``n/a`` where unknown)."""
        try:
            import psychopy  # noqa: F401 - only its version

            version = str(psychopy.__version__)
        except ImportError:  # pragma: no cover - lab extra not installed
            version = "n/a"
        return {
            "OperatingSystem": f"{platform.system()} {platform.release().split('-')[0]}",
            "SoftwareName": "PsychoPy (avlab presenter)",
            "SoftwareRRID": "RRID:SCR_006571",
            "SoftwareVersion": version,
            "Code": f"avlab {__version__}",
            "ScreenDistance": self.distance_m if self.distance_m else "n/a",
            "ScreenRefreshRate": self.refresh_hz if self.refresh_hz else "n/a",
            "ScreenResolution": list(self.resolution_px) if self.resolution_px else "n/a",
            "ScreenSize": list(self.size_m) if self.size_m else "n/a",
            "ScreenOrigin": ["top", "left"],
            "HeadStabilization": self.head_stabilization,
        }


@dataclass
class EventRow:
    """One row of ``events.tsv``; times in seconds on the EEG file's time line."""

    onset: float
    duration: float | None
    trial_type: str
    trial: int | None = None
    block: str | None = None
    condition: str | None = None
    talker: str | None = None
    attended_talker: str | None = None
    role: str | None = None
    side: str | None = None
    face_x: float | None = None
    face_y: float | None = None
    cue_modality: str | None = None
    snr_db: float | None = None
    stim_file: str | None = None
    speaker: str | None = None
    response: str | None = None
    correct: bool | None = None
    response_time: float | None = None
    marker: str | None = None

    def cells(self, fs: float) -> list[Any]:
        """Return the row's values in :data:`COLUMNS` order."""
        sample = int(round(self.onset * fs))
        return [
            self.onset, self.duration, self.trial_type, sample, self.trial, self.block,
            self.condition, self.talker, self.attended_talker, self.role, self.side,
            self.face_x, self.face_y, self.cue_modality,
            self.snr_db, self.stim_file, self.speaker, self.response, self.correct,
            self.response_time, self.marker,
        ]  # fmt: skip


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a torn last line after a crash
    return out


def load_plan(folder: Path) -> SessionPlan | None:
    """Read ``plan.json`` of a session folder (None for a plain recording)."""
    path = folder / "plan.json"
    if not path.is_file():
        return None
    return SessionPlan.model_validate_json(path.read_text(encoding="utf-8"))


def _presenter_markers(session: Session) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Markers as dicts; a marker that is not avlab's JSON becomes ``{"event": "marker"}``."""
    table = session.markers()
    times, events = [], []
    for t, value in zip(table.times, table.values, strict=True):
        try:
            obj = json.loads(value)
        except ValueError:
            obj = None
        if not (isinstance(obj, dict) and isinstance(obj.get("event"), str)):
            obj = {"event": "marker", "text": value}
        times.append(t)
        events.append(obj)
    return np.asarray(times, dtype=np.float64), events


def _talker_name(trial: TrialPlan | None, index: Any) -> str | None:
    if trial is None or not isinstance(index, int) or not 0 <= index < len(trial.talkers):
        return None
    return trial.talkers[index].talker


def build_events(
    session: Session, timeline: Timeline, plan: SessionPlan | None, protocol: str
) -> list[EventRow]:
    """Collect the run's events, sorted by onset.

    Parameters
    ----------
    session : Session
        The open session.
    timeline : Timeline
        Maps recorder times to the EEG file's seconds.
    plan : SessionPlan | None
        The session's plan; without it rows carry only what the markers say.
    protocol : str
        Protocol name: the stimuli's folder under the dataset's ``stimuli/``.

    Returns
    -------
    rows : list of EventRow
    """
    trials = {t.index: t for t in plan.trials} if plan else {}
    times, markers = _presenter_markers(session)
    taus = timeline.tau(times) if times.size else times
    ends: dict[int, float] = {}
    for tau, m in zip(taus, markers, strict=True):
        if m["event"] == "trial_end" and isinstance(m.get("trial"), int):
            ends[m["trial"]] = float(tau)
    rows: list[EventRow] = []
    attended_now: dict[int, str | None] = {}
    for i, (tau, m) in enumerate(zip(taus, markers, strict=True)):
        kind = str(m["event"])
        n = m.get("trial") if isinstance(m.get("trial"), int) else None
        trial = trials.get(n) if n is not None else None
        row = EventRow(onset=float(tau), duration=0.0, trial_type=kind, trial=n)
        if trial is not None:
            row.block, row.condition = trial.block, trial.kind
            if trial.noise is not None:
                row.snr_db = trial.noise.snr_db
        if kind == "cue":
            row.talker = m.get("talker")
            row.attended_talker = m.get("talker")
            row.side = m.get("side")
            row.cue_modality = m.get("modality")
            row.duration = trial.cue.duration_s if trial and trial.cue else None
        elif kind == "trial_start":
            row.attended_talker = _talker_name(trial, m.get("attended"))
            row.duration = ends[n] - float(tau) if n in ends else None
            if n is not None:
                attended_now[n] = row.attended_talker
        elif kind == "switch":
            row.attended_talker = _talker_name(trial, m.get("attended"))
        elif kind == "question":
            nxt = [
                float(taus[j])
                for j in range(i + 1, len(markers))
                if markers[j]["event"] == "response" and markers[j].get("trial") == n
            ]
            row.duration = nxt[0] - float(tau) if nxt else None
        elif kind == "response":
            answer = m.get("answer")
            row.response = None if answer is None else str(answer)
            correct = m.get("correct")
            row.correct = correct if isinstance(correct, bool) else None
            rt = m.get("rt_s")
            row.response_time = float(rt) if isinstance(rt, int | float) else None
        elif kind == "turn":
            row.speaker = m.get("speaker")
        elif kind == "marker":
            row.marker = str(m.get("text", ""))
        rows.append(row)
    starts = {r.trial: r.onset for r in rows if r.trial_type == "trial_start" and r.trial}
    rows += _stimulus_rows(session.folder, timeline, trials, ends, starts, attended_now, protocol)
    rows += [
        EventRow(onset=onset, duration=dur, trial_type="BAD_ACQ_SKIP")
        for onset, dur in timeline.pad_spans()
    ]
    rows.sort(key=lambda r: (r.onset, r.trial_type != "trial_start"))
    return rows


def _stimulus_rows(
    folder: Path,
    timeline: Timeline,
    trials: dict[int, TrialPlan],
    ends: dict[int, float],
    starts: dict[int, float],
    attended_now: dict[int, str | None],
    protocol: str,
) -> list[EventRow]:
    rows = []
    durations = _stimulus_durations(folder)
    for entry in _read_jsonl(folder / "stimulus_log.jsonl"):
        n, onset = entry.get("trial"), entry.get("onset")
        if not isinstance(n, int) or not isinstance(onset, int | float):
            continue
        # The presenter logs each stimulus' own onset (trial onset + offset_s) on its LSL
        # clock; tied to the trial_start marker's time when there is one (same instant).
        offset = entry.get("offset_s")
        if n in starts and isinstance(offset, int | float):
            start = starts[n] + float(offset)
        else:
            start = float(timeline.tau(float(onset)))
        trial = trials.get(n)
        stim_id = str(entry.get("stim_id", ""))
        file = Path(str(entry.get("file", ""))).name or f"{stim_id}.wav"
        sub = "noise/" if stim_id.startswith("noise-") else ""
        row = EventRow(
            onset=start,
            duration=durations.get(stim_id, ends[n] - start if n in ends else None),
            trial_type="noise" if sub else "speech",
            trial=n,
            stim_file=f"{protocol}/{sub}{file}" if protocol else f"{sub}{file}",
            attended_talker=attended_now.get(n),
        )
        if trial is not None:
            row.block, row.condition = trial.block, trial.kind
            play = next((p for p in trial.talkers if p.stim_id == stim_id), None)
            if play is not None:
                row.talker, row.side = play.talker, play.side
                row.face_x, row.face_y = (round(float(v), 6) for v in play.position)
                if row.attended_talker is not None:
                    row.role = "target" if play.talker == row.attended_talker else "masker"
            if trial.noise is not None:
                row.snr_db = trial.noise.snr_db
        rows.append(row)
    return rows


def _stimulus_durations(folder: Path) -> dict[str, float]:
    path = folder / "stimuli.json"
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        logger.warning("%s is not JSON; stimulus durations taken from the trial ends", path)
        return {}
    return {
        str(s["stim_id"]): float(s["duration_s"])
        for s in doc.get("stimuli", [])
        if "stim_id" in s and "duration_s" in s
    }


def write_events(
    rows: list[EventRow],
    tsv: Path,
    *,
    fs: float,
    task_name: str,
    presentation: StimulusPresentation,
) -> tuple[Path, Path]:
    """Write ``events.tsv`` and its ``events.json`` sidecar.

    Parameters
    ----------
    rows : list of EventRow
        From :func:`build_events`.
    tsv : Path
        The ``…_events.tsv`` path; the sidecar goes beside it.
    fs : float
        EEG sampling rate (Hz), for the ``sample`` column.
    task_name : str
        The task label (``TaskName`` in the sidecar).
    presentation : StimulusPresentation
        Screen and software facts.

    Returns
    -------
    tsv, json : Path
    """
    write_tsv(tsv, COLUMNS, (r.cells(fs) for r in rows))
    sidecar = tsv.with_suffix(".json")
    # no top-level scalars (e.g. TaskName): hedtools reads every key as a column
    meta: dict[str, Any] = _column_meta()
    meta["StimulusPresentation"] = presentation.to_json()
    write_json(sidecar, meta)
    return tsv, sidecar
