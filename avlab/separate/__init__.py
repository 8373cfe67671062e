"""Speech separation steered by attention: keep the talker the listener attends to.

- :class:`Separator`: the shipped Conv-TasNet networks (``causal``: 4 ms algorithmic
  latency, for hearing aids; ``noncausal``: offline), trained by
  :func:`~avlab.separate.train.train` (``avlab separate train``);
- :class:`StreamingSeparator`: the causal network block by block;
- steering (:mod:`avlab.separate.steer`): pick a separated talker from EEG, gaze or
  the ground truth; :func:`steer_bids` does it for every trial of a BIDS dataset;
- :func:`mvdr`: the classical multi-microphone baseline steered to a direction;
- metrics (:mod:`avlab.separate.metrics`): SI-SDR(i), STOI/ESTOI, PESQ and the
  reference-free SRMR; :func:`evaluate_folder` scores a folder of mixtures.

Names are imported on first use, so ``import avlab.separate`` loads neither torch
nor MNE.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "SeparateError",
    "Separator",
    "SeparatorConfig",
    "StreamingSeparator",
    "evaluate_folder",
    "mvdr",
    "run_separation",
    "steer_bids",
]

_WHERE = {
    "SeparateError": "inference",
    "Separator": "inference",
    "SeparatorConfig": "model",
    "StreamingSeparator": "stream",
    "evaluate_folder": "evaluate",
    "mvdr": "beamform",
    "run_separation": "pipeline",
    "steer_bids": "session",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"avlab.separate.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'avlab.separate' has no attribute {name!r}")
