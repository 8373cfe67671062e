"""The simulated lab over real LSL (loopback): stamps against the truth, faults."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pylsl

from avlab.sim import FaultConfig, SimConfig, SimLab, load_truth
from avlab.sim.config import TrialConfig

SHORT_TRIALS = TrialConfig(trial_s=2.0, iti_s=0.5, cue_s=0.3, first_s=0.2)


def _collect(lab: SimLab, prefix: str, seconds: float) -> dict[str, tuple[list, list]]:
    want = set(lab.stream_names)
    pred = f"starts-with(name,'{prefix}')"
    infos = pylsl.resolve_bypred(pred, minimum=len(want), timeout=10.0)
    assert {i.name() for i in infos} == want
    inlets = {i.name(): pylsl.StreamInlet(i, max_buflen=60, recover=True) for i in infos}
    for inlet in inlets.values():
        inlet.open_stream(5.0)
    got: dict[str, tuple[list, list]] = {n: ([], []) for n in inlets}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for n, inlet in inlets.items():
            d, ts = inlet.pull_chunk(timeout=0.0, max_samples=200000)
            got[n][0].extend(d)
            got[n][1].extend(ts)
        time.sleep(0.05)
    return got


def test_received_stamps_match_truth(tmp_path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    cfg = SimConfig(
        seed=11, duration_s=7.0, prefix=prefix, truth_path=tmp_path / "truth.json",
        trials=SHORT_TRIALS,
    )  # fmt: skip
    cfg.eeg.n_channels = 16
    with SimLab(cfg) as lab:
        got = _collect(lab, prefix, 8.0)
        lab.wait(5.0)
    truth = load_truth(tmp_path / "truth.json")
    assert truth.extra["truth_file"] == str((tmp_path / "truth.json").absolute())
    kinds = {"EEG": "arrival", "Gaze": "device", "Talkers": "source", "Markers": "source"}
    for kind, stamping in kinds.items():
        name = prefix + kind
        assert truth.streams[name].stamping == stamping
        stamps = np.asarray(got[name][1])
        assert stamps.size > 0, name
        matched = truth.match_samples(name, stamps, tol_s=1e-6)
        assert not np.isnan(matched).any(), f"{name}: unmatched stamps"
    # exact model: stamps of what arrived == source_stamps of their indices
    eeg = truth.streams[prefix + "EEG"]
    stamps = np.asarray(got[prefix + "EEG"][1])
    ref = eeg.source_stamps(np.arange(truth.extra[f"n_samples:{prefix}EEG"]))
    first = int(np.argmin(np.abs(ref - stamps[0])))
    assert np.max(np.abs(ref[first : first + stamps.size] - stamps)) < 1e-6
    # arrival jitter is present (1 ms SD) and the true rate is 50 ppm off
    chunk_last = stamps[eeg.chunk_size - 1 :: eeg.chunk_size]
    resid = np.diff(chunk_last) - eeg.chunk_size / eeg.true_srate
    assert 0.5e-3 < resid.std() < 3e-3
    # markers: content and count
    values = [v[0] for v in got[prefix + "Markers"][0]]
    all_values = [m.value for m in truth.markers]
    start = all_values.index(values[0])  # the inlet may connect after the first markers
    assert values == all_values[start : start + len(values)]
    assert len(values) >= 2
    # gaze device clock: stamps ≈ device offset + true time
    gaze = truth.streams[prefix + "Gaze"]
    assert abs(np.asarray(got[prefix + "Gaze"][1])[0] - 1.7e9) < 1e5
    assert gaze.drift_ppm == 20.0
    assert truth.extra["cpu_percent"] < 100.0


def test_restart_and_stall_make_segments(tmp_path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    cfg = SimConfig(
        seed=2, duration_s=9.0, prefix=prefix, truth_path=tmp_path / "t.json",
        trials=SHORT_TRIALS, restart_wait_s=0.0,
        faults=[FaultConfig(stream="EEG", kind="restart", at_s=3.5, duration_s=1.0),
                FaultConfig(stream="Gaze", kind="stall", at_s=3.0, duration_s=1.0)],
    )  # fmt: skip
    cfg.eeg.n_channels = 8
    cfg.audio.enabled = False
    cfg.camera.enabled = False
    with SimLab(cfg) as lab:
        got = _collect(lab, prefix, 4.0)
        # wait until the EEG outlet has been re-created (its second segment is in
        # the truth), so that resolving cannot return the old outlet's info
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if len(load_truth(tmp_path / "t.json").streams[prefix + "EEG"].segments) == 2:
                break
            time.sleep(0.1)
        # the restarted EEG outlet: same source_id, found again by it
        sid = [i for i in pylsl.resolve_byprop("name", prefix + "EEG", 1, 5.0)][0].source_id()
        infos = pylsl.resolve_byprop("source_id", sid, 1, 5.0)
        assert infos and infos[0].name() == prefix + "EEG"
        inlet = pylsl.StreamInlet(infos[0], max_buflen=60)
        inlet.open_stream(5.0)
        time.sleep(2.0)
        _, after = inlet.pull_chunk(timeout=0.0, max_samples=100000)
        lab.wait(10.0)
    truth = load_truth(tmp_path / "t.json")
    for kind in ("EEG", "Gaze"):
        clock = truth.streams[prefix + kind]
        assert len(clock.segments) == 2
        assert clock.segments[1].t0_true - clock.segments[0].t0_true > 3.9  # fault + 1 s
    gaze = np.asarray(got[prefix + "Gaze"][1])
    matched = truth.match_samples(prefix + "Gaze", gaze)
    assert not np.isnan(matched).any()
    assert 0.95 < np.diff(matched).max() < 1.5  # the stall, seen by the same inlet
    eeg_after = truth.match_samples(prefix + "EEG", np.asarray(after))
    assert len(after) > 100 and not np.isnan(eeg_after).any()
    assert eeg_after.min() >= truth.streams[prefix + "EEG"].segments[1].t0_true - 1e-9


def test_source_ids_stable() -> None:
    from avlab.sim.outlets import source_id

    assert source_id("a_", 1, "EEG") == source_id("a_", 1, "EEG")
    assert source_id("a_", 1, "EEG") != source_id("a_", 2, "EEG")
