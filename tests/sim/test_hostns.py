"""A simulator on "another host": its own time namespace, seen by LSL time_correction."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import numpy as np
import pylsl
import pytest

from avlab.sim import SimConfig, load_truth
from avlab.sim.config import TrialConfig
from avlab.sim.run import INSIDE_NS_ENV, namespace_command

OFFSET = 37


@pytest.mark.skipif(os.geteuid() != 0, reason="time namespaces need root")
def test_time_namespace_offset_seen_by_time_correction(tmp_path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    cfg = SimConfig(
        seed=3, duration_s=8.0, prefix=prefix, truth_path=tmp_path / "truth.json",
        host_offset_s=OFFSET, trials=TrialConfig(trial_s=1.5, iti_s=0.3, cue_s=0.2, first_s=0.1),
    )  # fmt: skip
    cfg.eeg.n_channels = 8
    cfg.audio.enabled = cfg.camera.enabled = cfg.gaze.enabled = False
    argv = namespace_command(cfg, tmp_path / "cfg.json")
    env = dict(os.environ, **{INSIDE_NS_ENV: str(OFFSET)})
    proc = subprocess.Popen(argv, env=env)
    try:
        infos = pylsl.resolve_bypred(f"starts-with(name,'{prefix}')", minimum=2, timeout=10.0)
        by_name = {i.name(): i for i in infos}
        inlet = pylsl.StreamInlet(by_name[prefix + "Markers"])
        inlet.open_stream(5.0)
        corr = inlet.time_correction(timeout=5.0)
        assert corr == pytest.approx(-OFFSET, abs=5e-3)
        values, stamps = [], []
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            v, t = inlet.pull_chunk(timeout=0.2)
            values += v
            stamps += t
    finally:
        proc.wait(timeout=20.0)
    assert proc.returncode == 0
    truth = load_truth(tmp_path / "truth.json")
    assert truth.host_offset_s == OFFSET
    # stamps are on the simulator's clock; true times are on ours
    true = truth.match_samples(prefix + "Markers", np.asarray(stamps))
    assert len(stamps) >= 2 and not np.isnan(true).any()
    assert np.allclose(np.asarray(stamps) + corr - true, 0.0, atol=5e-3)
    assert abs(truth.extra["t_start"] - pylsl.local_clock()) < 60.0  # recorder's clock


def test_unshare_needs_whole_seconds() -> None:
    with pytest.raises(ValueError, match="whole number"):
        SimConfig(host_offset_s=0.5)
