"""Typed objects shared by the BIDS converter, validator and report."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from avlab.errors import AvlabError

__all__ = [
    "BidsConflictError",
    "BidsRun",
    "BidsValidationError",
    "DatasetManifest",
    "Issue",
    "LabInfo",
    "RunManifest",
    "StreamSync",
    "ValidatorUnavailableError",
]

#: BIDS version avlab writes (the validator bundled with bids-validator-deno 3.0.2).
BIDS_VERSION = "1.11.1"
#: Newest HED schema both hedtools 1.3.0 and the bundled validator have offline.
HED_VERSION = "8.4.0"


class BidsValidationError(AvlabError):
    """A BIDS dataset has validation errors (official validator or avlab's checks)."""

    exit_code = 12


class BidsConflictError(AvlabError):
    """The BIDS output already holds different data for a run (needs ``--overwrite``)."""

    exit_code = 13


class ValidatorUnavailableError(AvlabError):
    """The official validator (bids-validator-deno) cannot be run."""

    exit_code = 14


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabInfo(_Model):
    """Facts about the lab that no session records (``lab.json`` in the BIDS templates).

    Every field may be overridden by a lab's own ``lab.json`` (``--templates DIR``) or
    on the command line. Lengths in metres, frequencies in Hz. Empty strings are left
    out of the sidecars (``amplifier_serial`` -> ``DeviceSerialNumber``,
    ``subject_artefact_description`` -> ``SubjectArtefactDescription``, ``cog_atlas_id``
    / ``cog_po_id`` -> ``CogAtlasID`` / ``CogPOID``: URIs of the task in the Cognitive
    Atlas / Cognitive Paradigm Ontology).
    """

    institution_name: str = "n/a"
    institution_address: str = "n/a"
    institution_department: str = "n/a"
    line_freq_hz: float = 50.0
    eeg_reference: str = "n/a"
    eeg_ground: str = "n/a"
    cap_manufacturer: str = "n/a"
    cap_model: str = "n/a"
    amplifier_manufacturer: str = "n/a"
    amplifier_model: str = "n/a"
    amplifier_serial: str = ""
    subject_artefact_description: str = ""
    cog_atlas_id: str = ""
    cog_po_id: str = ""
    hardware_filters: str = "n/a"
    screen_size_m: tuple[float, float] | None = None
    screen_distance_m: float | None = None
    head_stabilization: str = "none"
    eyetracker_manufacturer: str = "Pupil Labs"
    eyetracker_model: str = "Neon"
    license: str = "CC0"
    authors: list[str] = Field(default_factory=lambda: ["avlab user", "avlab user 2"])


class BidsRun(_Model):
    """Where one session folder lands in the dataset.

    Attributes
    ----------
    folder : Path
        The session folder (``session.h5`` inside).
    subject, session, task, run : str
        BIDS labels (``[a-zA-Z0-9]+``); ``run`` is two digits (``"01"``).
    protocol : str
        The protocol's name (``plan.json``), e.g. ``competing-talkers``; ``""`` when the
        session has no plan (a plain ``avlab record`` session).
    """

    folder: Path
    subject: str = Field(pattern=r"^[a-zA-Z0-9]+$")
    session: str = Field(pattern=r"^[a-zA-Z0-9]+$")
    task: str = Field(pattern=r"^[a-zA-Z0-9]+$")
    run: str = Field(pattern=r"^[0-9]+$")
    protocol: str = ""

    def stem(self) -> str:
        """Return the BIDS file-name stem, ``sub-X_ses-Y_task-Z_run-NN``."""
        return f"sub-{self.subject}_ses-{self.session}_task-{self.task}_run-{self.run}"

    def session_dir(self, root: Path) -> Path:
        """Return ``<root>/sub-X/ses-Y``."""
        return root / f"sub-{self.subject}" / f"ses-{self.session}"


class Issue(_Model):
    """One finding of a validation, from any source.

    Attributes
    ----------
    code : str
        Validator code (``NOT_INCLUDED``, ``SIDECAR_KEY_RECOMMENDED/EEGGround``) or
        avlab's (``AVLAB_*``) or hedtools' (``HED_*``).
    severity : {"error", "warning"}
    file : str
        Path relative to the dataset root (``""`` for the dataset as a whole).
    message : str
        What is wrong and, for avlab's own checks, how to fix it.
    source : {"bids-validator", "avlab", "hed"}
    """

    code: str
    severity: Literal["error", "warning"]
    file: str = ""
    message: str
    source: Literal["bids-validator", "avlab", "hed"]


class StreamSync(_Model):
    """Sync quality of one recorded stream, kept for ``avlab bids validate`` (ms)."""

    stream: str
    clock_method: str
    offset_residual_rms_ms: float | None = None
    dejitter_residual_max_ms: float | None = None
    samples_lost: int = 0


class RunManifest(_Model):
    """What avlab wrote for one run, in ``sourcedata/avlab/manifest.json``.

    Attributes
    ----------
    subject, session, task, run, protocol : str
        As in :class:`BidsRun`.
    source : str
        The session folder's name (``""`` when de-identified).
    source_uid : str
        The EEG stream's LSL uid: identifies the recording without naming it.
    complete : bool
        False while the run is being written; a crash leaves it False and the next
        conversion removes the run's partial files first.
    fingerprint : str
        SHA-256 over the inputs and converter options; equal fingerprint and
        unchanged outputs mean a re-run has nothing to do.
    required : list of str
        Modalities the protocol demands: ``eeg``, ``eyetrack``, ``events``, ``audio``,
        ``video`` (from the plan's stream types EEG, Gaze, Markers, Audio, VideoFrames).
    present : list of str
        Modalities written for this run (same vocabulary; ``eyetrack-screen`` for the
        screen-mapped gaze).
    missing_reasons : dict of str to str
        Why a required modality is absent (e.g. the simulated camera has no video file).
    duration_s : float
        Length of the EEG file (s).
    sync : list of StreamSync
        Per-stream sync quality at conversion.
    files : dict of str to str
        SHA-256 of every file written for the run, keyed by path relative to the root.
    """

    subject: str
    session: str
    task: str
    run: str
    protocol: str = ""
    source: str = ""
    source_uid: str = ""
    complete: bool = False
    fingerprint: str = ""
    required: list[str] = Field(default_factory=list)
    present: list[str] = Field(default_factory=list)
    missing_reasons: dict[str, str] = Field(default_factory=dict)
    duration_s: float = 0.0
    sync: list[StreamSync] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)

    def key(self) -> tuple[str, str, str, str]:
        """Return ``(subject, session, task, run)``."""
        return (self.subject, self.session, self.task, self.run)


class DatasetManifest(_Model):
    """All runs avlab converted into one dataset (``sourcedata/avlab/manifest.json``)."""

    avlab_version: str = ""
    deidentified: bool = False
    runs: list[RunManifest] = Field(default_factory=list)

    @staticmethod
    def path(root: Path) -> Path:
        """Return the manifest's location under a BIDS root."""
        return root / "sourcedata" / "avlab" / "manifest.json"

    @classmethod
    def load(cls, root: Path) -> DatasetManifest:
        """Read the manifest of a dataset; an empty one when there is none."""
        p = cls.path(root)
        if not p.is_file():
            return cls()
        return cls.model_validate_json(p.read_text(encoding="utf-8"))
