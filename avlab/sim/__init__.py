"""The simulated lab: every stream of a real session, with known ground truth."""

from __future__ import annotations

from avlab.sim.camera import decode_frame_index, render_frame
from avlab.sim.config import FaultConfig, SimConfig, load_sim_config
from avlab.sim.lab import SimLab
from avlab.sim.run import run_sim, run_sim_in_namespace
from avlab.sim.truth import SimTruth, StreamClock, load_truth, write_truth

__all__ = [
    "FaultConfig",
    "SimConfig",
    "SimLab",
    "SimTruth",
    "StreamClock",
    "decode_frame_index",
    "load_sim_config",
    "load_truth",
    "render_frame",
    "run_sim",
    "run_sim_in_namespace",
    "write_truth",
]
