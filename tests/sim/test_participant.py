"""The simulated participant follows a real marker stream (paradigm mode)."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pylsl
import soundfile as sf

from avlab.sim import SimConfig, SimLab, load_truth
from avlab.sim.config import ParadigmConfig
from avlab.sim.participant import screen_to_scene

SR = 48000


def _stimuli(folder) -> None:
    t = np.arange(int(3.0 * SR)) / SR
    for k, f0 in enumerate((4.0, 6.0)):  # distinct syllable rates
        env = 0.5 * (1 - np.cos(2 * np.pi * f0 * t)) * (t < 2.8)
        sf.write(folder / f"s{k}.wav", 0.1 * env * np.sin(2 * np.pi * 220 * (k + 1) * t), SR)


def _marker_outlet(name: str) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, "Markers", 1, 0.0, "string", f"{name}-sid")
    return pylsl.StreamOutlet(info)


def test_participant_follows_markers(tmp_path) -> None:
    prefix = f"p{uuid.uuid4().hex[:8]}_"
    _stimuli(tmp_path)
    marker_name = prefix + "Presenter"
    outlet = _marker_outlet(marker_name)
    cfg = SimConfig(
        seed=3, prefix=prefix, truth_path=tmp_path / "truth.json",
        paradigm=ParadigmConfig(marker_stream=marker_name, stimuli_dir=tmp_path),
    )  # fmt: skip
    cfg.eeg.n_channels = 16
    cfg.camera.enabled = False
    with SimLab(cfg) as lab:
        assert prefix + "Markers" not in lab.stream_names  # the presenter's markers are used
        gaze_info = pylsl.resolve_byprop("name", prefix + "Gaze", timeout=10.0)[0]
        gaze = pylsl.StreamInlet(gaze_info, max_buflen=60)
        gaze.open_stream(5.0)
        assert outlet.wait_for_consumers(10.0)
        t0 = pylsl.local_clock() + 0.5
        plan = [
            (t0, {"event": "cue", "trial": 1, "attended": 0, "side": "left"}),
            (t0 + 0.5, {"event": "trial_start", "trial": 1, "attended": 0,
                        "stims": ["s0", "s1"], "sides": ["left", "right"]}),
            (t0 + 1.5, {"event": "switch", "trial": 1, "attended": 1}),
            (t0 + 3.0, {"event": "trial_end", "trial": 1}),
        ]  # fmt: skip
        for t, m in plan:
            while pylsl.local_clock() < t:
                time.sleep(0.002)
            outlet.push_sample([json.dumps(m)], t)
        time.sleep(1.0)
        data, stamps = gaze.pull_chunk(timeout=1.0, max_samples=100000)
        offset = gaze.time_correction(5.0)
    truth = load_truth(tmp_path / "truth.json")
    spans = [(s.t_start, s.t_end, s.talker) for s in truth.attention]
    assert len(spans) == 2
    # span boundaries are the marker times (through LSL time_correction: ~20 µs bias)
    assert abs(spans[0][0] - t0) < 2e-4 and abs(spans[0][1] - (t0 + 1.5)) < 2e-4
    assert spans[0][2] == 0 and spans[1][2] == 1
    assert abs(spans[1][1] - (t0 + 3.0)) < 2e-4
    # gaze stamps are on the drifting device clock: locate the samples through the truth
    matched = truth.match_samples(prefix + "Gaze", np.asarray(stamps))
    xy = np.asarray(data)[:, :2]
    left, right = screen_to_scene(np.array([[-0.45, 0.05], [0.45, 0.05]]))
    on_left = (matched > t0 + 0.4) & (matched < t0 + 1.5)
    on_right = (matched > t0 + 1.9) & (matched < t0 + 3.0)
    assert on_left.sum() > 100 and on_right.sum() > 150
    d_left = np.linalg.norm(xy[on_left] - left, axis=1)
    d_right = np.linalg.norm(xy[on_right] - right, axis=1)
    assert np.median(d_left) < 80 and np.median(d_right) < 80  # face half-width ~110 px
    assert offset is not None
