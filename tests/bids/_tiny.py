"""A tiny BIDS dataset for the validator and report tests (a few kB, < 2 s to build).

One EEG run written by mne-bids from a ``RawArray`` (4 channels, 100 Hz, 20 s,
BrainVision), our own ``events.tsv/.json`` with a HED map like avlab's, a stimulus file
under ``stimuli/``, eye tracking as BIDS physio (``recording-eye1``, 50 Hz, starting
0.1 s before the EEG) and ``sourcedata/avlab/manifest.json`` with the files' hashes.
Each test doctors a copy.

``python tests/bids/_tiny.py`` regenerates ``tests/bids/data/validator_sample.json``
and ``validator_sample_errors.json``: the official validator's JSON output on this
dataset, clean and doctored (:func:`doctor_for_errors`), parsed by ``test_validate.py``
without deno.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avlab.bids._io import write_json, write_tsv, write_tsv_gz
from avlab.bids.models import (
    BIDS_VERSION,
    HED_VERSION,
    DatasetManifest,
    RunManifest,
    StreamSync,
)

FS = 100.0  # EEG sampling rate, Hz
DURATION_S = 20.0  # EEG length, s
GAZE_FS = 50.0  # eye-tracker rate, Hz
GAZE_START_S = -0.1  # first gaze sample on the EEG axis, s
TASK = "tiny"
STIM = "tiny/s01.wav"  # relative to stimuli/
SAMPLE_JSON = Path(__file__).with_name("data") / "validator_sample.json"
SAMPLE_ERRORS_JSON = SAMPLE_JSON.with_name("validator_sample_errors.json")

HED_MAP = {
    "cue": "Sensory-event, Cue, Instructional, (Intended-effect, Attend-to)",
    "trial_start": "Experiment-structure, Experimental-trial",
    "speech": "Sensory-event, Experimental-stimulus, Auditory-presentation, "
    "(Vocalized-sound, Language-item, Sentence)",
    "trial_end": "Experiment-structure, Experimental-intertrial",
    "question": "Sensory-event, Visual-presentation, Instructional, Language-item",
    "response": "Agent-action, Participant-response",
    "BAD_ACQ_SKIP": "Data-feature, Data-break-marker",
}

EVENT_COLUMNS = ("onset", "duration", "trial_type", "talker", "stim_file", "correct")
#: (onset s, duration s, trial_type, talker, stim_file, correct)
EVENT_ROWS = [
    (0.5, 0.5, "cue", "A", None, None),
    (1.0, 4.0, "trial_start", None, None, None),
    (1.0, 4.0, "speech", "A", STIM, None),
    (5.0, 0.0, "trial_end", None, None, None),
    (6.0, 1.0, "question", None, None, None),
    (7.0, 0.0, "response", None, None, "True"),
    (12.0, 0.5, "BAD_ACQ_SKIP", None, None, None),
]

README = (
    "Tiny test dataset written by avlab's tests: one EEG run of 20 s at 100 Hz, events with "
    "HED annotations, eye tracking as BIDS physio and one stimulus file. It exists only to "
    "exercise the validator and the dataset report.\n"
)


@dataclass(frozen=True)
class TinyRun:
    """Paths of the tiny dataset's one run (all absolute)."""

    root: Path
    stem: str
    eeg_dir: Path
    events_tsv: Path
    events_json: Path
    physio: Path
    physio_json: Path
    stim: Path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_eeg(root: Path, subject: str, session: str, run: str) -> None:
    import mne
    from mne_bids import BIDSPath, write_raw_bids

    n = int(DURATION_S * FS)
    rng = np.random.default_rng(0)
    info = mne.create_info(["Fz", "Cz", "Pz", "Oz"], FS, "eeg")
    raw = mne.io.RawArray(rng.standard_normal((4, n)) * 1e-5, info, verbose=False)
    raw.set_meas_date(1_700_000_000.0)
    raw.info["line_freq"] = 50.0
    bp = BIDSPath(subject=subject, session=session, task=TASK, run=run, datatype="eeg", root=root)
    with warnings.catch_warnings():
        # mne-bids says it converts the in-memory RawArray to BrainVision: expected
        warnings.filterwarnings("ignore", "Converting data files to BrainVision", RuntimeWarning)
        warnings.filterwarnings("ignore", 'Encountered data in "double" format', RuntimeWarning)
        warnings.filterwarnings("ignore", "Conflicting BIDSVersion", UserWarning)
        write_raw_bids(
            raw,
            bp,
            allow_preload=True,
            format="BrainVision",
            overwrite=True,
            readme=False,
            verbose="ERROR",
        )


def _events_sidecar() -> dict:
    return {
        "onset": {"Description": "Seconds from the first EEG sample.", "Units": "s"},
        "duration": {"Description": "Length of the event.", "Units": "s"},
        "trial_type": {
            "Description": "What happened.",
            "Levels": {k: f"The {k} event." for k in HED_MAP},
            "HED": dict(HED_MAP),
        },
        "talker": {"Description": "Talker of the stimulus or cue.", "HED": "(Agent, Label/#)"},
        "stim_file": {
            "Description": "Stimulus file, relative to the dataset's stimuli/ folder.",
            "HED": "(Experimental-stimulus, Pathname/#)",
        },
        "correct": {
            "Description": "Whether the answer was right.",
            "Levels": {"True": "Right answer.", "False": "Wrong answer."},
            "HED": {"True": "Correct-action", "False": "Incorrect-action"},
        },
    }


def _write_gaze(eeg_dir: Path, stem: str) -> tuple[Path, Path]:
    n = int(round((DURATION_S - GAZE_START_S) * GAZE_FS))
    t = GAZE_START_S + np.arange(n) / GAZE_FS
    block = np.column_stack([t, 800 + 10 * np.sin(t), 600 + 10 * np.cos(t), np.full(n, 3.5)])
    block[5, 1:3] = np.nan  # a lost sample: written as n/a
    tsv = eeg_dir / f"{stem}_recording-eye1_physio.tsv.gz"
    write_tsv_gz(tsv, [block], ["%.6f", "%.2f", "%.2f", "%.4f"])
    meta = {
        "TaskName": TASK,
        "SamplingFrequency": GAZE_FS,
        "StartTime": float(f"{t[0]:.6f}"),
        "Columns": ["timestamp", "x_coordinate", "y_coordinate", "pupil_size"],
        "PhysioType": "eyetrack",
        "RecordedEye": "cyclopean",
        "SampleCoordinateSystem": "eye-in-head",
        "Manufacturer": "Pupil Labs",
        "timestamp": {"Description": "Sample time on the EEG time line.", "Units": "s"},
        "x_coordinate": {"Description": "Gaze x in scene-camera pixels.", "Units": "pixel"},
        "y_coordinate": {"Description": "Gaze y in scene-camera pixels.", "Units": "pixel"},
        "pupil_size": {"Description": "Pupil diameter", "Units": "mm"},
    }
    js = eeg_dir / f"{stem}_recording-eye1_physio.json"
    write_json(js, meta)
    return tsv, js


def build_tiny(
    root: Path,
    *,
    subject: str = "01",
    session: str = "01",
    run: str = "01",
    manifest: bool = True,
    required: tuple[str, ...] = ("eeg", "events", "eyetrack"),
    missing_reasons: dict[str, str] | None = None,
    gaze: bool = True,
    audio: bool = False,
) -> TinyRun:
    """Write (or add one run to) the tiny dataset under ``root``.

    Parameters
    ----------
    root : Path
        Dataset root (created).
    subject, session, run : str
        BIDS labels of the run.
    manifest : bool
        Write ``sourcedata/avlab/manifest.json`` (merging runs already there).
    required : tuple of str
        Modalities the manifest says the protocol demands.
    missing_reasons : dict of str to str | None
        The manifest's reasons for absent modalities.
    gaze : bool
        Write the eye-tracking physio files.
    audio : bool
        Write a participant audio file in ``beh/`` (and a ``.bidsignore`` for it).

    Returns
    -------
    TinyRun
    """
    import soundfile as sf

    root.mkdir(parents=True, exist_ok=True)
    _write_eeg(root, subject, session, run)
    write_json(
        root / "dataset_description.json",
        {
            "Name": "avlab tiny test dataset",
            "BIDSVersion": BIDS_VERSION,
            "HEDVersion": HED_VERSION,
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["Test Author One", "Test Author Two"],
        },
    )
    (root / "README").write_text(README, encoding="utf-8")
    (root / "CHANGES").write_text("1.0.0 2026-01-01\n  - Initial release.\n", encoding="utf-8")
    stim = root / "stimuli" / STIM
    stim.parent.mkdir(parents=True, exist_ok=True)
    if not stim.is_file():
        sf.write(stim, np.zeros(800, dtype=np.float32), 8000, subtype="PCM_16")
    stem = f"sub-{subject}_ses-{session}_task-{TASK}_run-{run}"
    eeg_dir = root / f"sub-{subject}" / f"ses-{session}" / "eeg"
    events_tsv = eeg_dir / f"{stem}_events.tsv"
    write_tsv(events_tsv, EVENT_COLUMNS, EVENT_ROWS)
    events_json = events_tsv.with_suffix(".json")
    write_json(events_json, _events_sidecar())
    physio, physio_json = (
        _write_gaze(eeg_dir, stem) if gaze else (eeg_dir / "none", eeg_dir / "none")
    )
    present = ["eeg", "events", *(["eyetrack"] if gaze else [])]
    written = [
        events_tsv,
        events_json,
        *eeg_dir.glob(f"{stem}_eeg.*"),
        eeg_dir / f"{stem}_channels.tsv",
    ]
    if gaze:
        written += [physio, physio_json]
    if audio:
        beh = eeg_dir.parent / "beh"
        beh.mkdir(exist_ok=True)
        flac = beh / f"{stem}_recording-mic_audio.flac"
        sf.write(flac, np.zeros(1600, dtype=np.float32), 8000, subtype="PCM_16")
        write_json(flac.with_suffix(".json"), {"SamplingFrequency": 8000, "RecordingDuration": 0.2})
        (root / ".bidsignore").write_text("*_audio.flac\n*_audio.json\n", encoding="utf-8")
        present.append("audio")
        written += [flac, flac.with_suffix(".json")]
    if manifest:
        man = DatasetManifest.load(root)
        entry = RunManifest(
            subject=subject,
            session=session,
            task=TASK,
            run=run,
            protocol="tiny",
            source=f"{subject}_{session}_folder",
            complete=True,
            required=sorted(required),
            present=sorted(present),
            missing_reasons=missing_reasons or {},
            duration_s=DURATION_S,
            sync=[
                StreamSync(
                    stream="sim-Gaze",
                    clock_method="time_echo",
                    offset_residual_rms_ms=0.2,
                    dejitter_residual_max_ms=1.0,
                )
            ],
            files={str(p.relative_to(root)): _sha256(p) for p in sorted(written)},
        )
        man.runs = [r for r in man.runs if r.key() != entry.key()] + [entry]
        path = DatasetManifest.path(root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(man.model_dump_json(indent=2), encoding="utf-8")
    return TinyRun(
        root=root,
        stem=stem,
        eeg_dir=eeg_dir,
        events_tsv=events_tsv,
        events_json=events_json,
        physio=physio,
        physio_json=physio_json,
        stim=stim,
    )


def rehash(root: Path) -> None:
    """Update the manifest's sha256 of every listed file to the file's current bytes."""
    man = DatasetManifest.load(root)
    for entry in man.runs:
        entry.files = {rel: _sha256(root / rel) for rel in entry.files if (root / rel).is_file()}
    DatasetManifest.path(root).write_text(man.model_dump_json(indent=2), encoding="utf-8")


def doctor_for_errors(run: TinyRun) -> None:
    """Break the tiny dataset three ways the validator sees: HED tag, stimulus, stray file."""
    text = run.events_json.read_text(encoding="utf-8")
    run.events_json.write_text(text.replace("Experimental-intertrial", "Intertrial-thing"))
    run.stim.unlink()
    (run.root / "sub-01" / "stray.txt").write_text("not BIDS\n", encoding="utf-8")


def _validator_json(root: Path) -> dict:
    from avlab.bids.validate import validator_command, validator_env

    proc = subprocess.run(
        validator_command(root),
        capture_output=True,
        text=True,
        env=validator_env(),
        timeout=300,
        check=False,
    )
    return json.loads(proc.stdout)


def regenerate_samples(tmp: Path) -> list[Path]:
    """Store the official validator's raw JSON on the clean and on the doctored dataset."""
    clean = build_tiny(tmp / "tiny")
    SAMPLE_JSON.parent.mkdir(exist_ok=True)
    SAMPLE_JSON.write_text(json.dumps(_validator_json(clean.root), indent=1) + "\n")
    doctor_for_errors(clean)
    SAMPLE_ERRORS_JSON.write_text(json.dumps(_validator_json(clean.root), indent=1) + "\n")
    return [SAMPLE_JSON, SAMPLE_ERRORS_JSON]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for path in regenerate_samples(Path(d)):
            sys.stdout.write(f"{path}\n")
