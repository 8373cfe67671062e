"""Attention decoding: which talker is attended, from EEG, gaze or both.

Estimators on plain arrays (scikit-learn style; see :mod:`avlab.decode.base` for
the call convention):

- :class:`BackwardDecoder`: linear stimulus reconstruction (ridge, nested selection);
- :class:`ForwardTRF`: linear forward model (temporal response function);
- :class:`CCADecoder`: canonical correlation between lagged EEG and envelope;
- :class:`CNNDecoder`: a small PyTorch match-mismatch network (``avlab[deep]``);
- :class:`GazeDecoder`: which talker's face the gaze is on;
- :class:`FusionDecoder`: EEG and gaze decoders stacked by logistic regression.

On BIDS datasets: :func:`load_bids_trials` (the data), :func:`evaluate`
(leakage-free cross-validation and the null control), :func:`decode_dataset`
(what ``avlab decode`` runs), :func:`mesd`, :func:`save_model`, :func:`load_model`.

Names are imported on first use, so ``import avlab.decode`` loads neither torch
nor MNE.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "AttentionDecoder",
    "BackwardDecoder",
    "CCADecoder",
    "CNNDecoder",
    "DecodeError",
    "ForwardTRF",
    "FusionDecoder",
    "GazeDecoder",
    "ModelMismatchError",
    "Trial",
    "decode_dataset",
    "evaluate",
    "load_bids_trials",
    "load_model",
    "mesd",
    "save_model",
]

_WHERE = {
    "AttentionDecoder": "base",
    "DecodeError": "base",
    "ModelMismatchError": "base",
    "Trial": "base",
    "BackwardDecoder": "linear",
    "ForwardTRF": "linear",
    "CCADecoder": "cca",
    "CNNDecoder": "cnn",
    "GazeDecoder": "gaze",
    "FusionDecoder": "fusion",
    "load_bids_trials": "data",
    "evaluate": "cv",
    "mesd": "metrics",
    "save_model": "io",
    "load_model": "io",
    "decode_dataset": "pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"avlab.decode.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'avlab.decode' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
