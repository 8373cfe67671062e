"""BIDS: convert session folders into a dataset, validate it, report on it.

``convert_sessions`` (``avlab bids convert``) writes EEG through mne-bids, events with
HED, eye tracking as BIDS physio, participant audio/video (BEP047 draft names) and the
stimuli; ``validate_dataset`` (``avlab bids validate``) runs the official validator and
avlab's cross-modal checks; ``dataset_report`` (``avlab bids report``) lists subjects,
sessions, runs and missing modalities. Heavy imports (mne, mne-bids, hedtools) happen
on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from avlab.bids.models import (
    BidsConflictError,
    BidsRun,
    BidsValidationError,
    DatasetManifest,
    Issue,
    LabInfo,
    RunManifest,
    ValidatorUnavailableError,
)

__all__ = [
    "BidsConflictError",
    "BidsRun",
    "BidsValidationError",
    "ConvertOptions",
    "DatasetManifest",
    "Issue",
    "LabInfo",
    "RunManifest",
    "ValidatorUnavailableError",
    "convert_sessions",
    "dataset_report",
    "validate_dataset",
]

_LAZY = {
    "ConvertOptions": "avlab.bids.convert",
    "convert_sessions": "avlab.bids.convert",
    "validate_dataset": "avlab.bids.validate",
    "dataset_report": "avlab.bids.report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'avlab.bids' has no attribute {name!r}")
