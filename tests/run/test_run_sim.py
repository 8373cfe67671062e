"""``avlab run --simulate``: every protocol end to end, a crashed presenter, resume.

Real parts throughout: the PsychoPy presenter in a private Xvfb window with a
PulseAudio null sink, the simulated lab in its own process following the
presenter's markers over LSL (loopback), the recorder writing HDF5.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from avlab.protocol import find_protocol, load_protocol, plan_session, stimulus_requests
from avlab.run import RunIncompleteError, RunOptions, run_session
from avlab.session import Session
from avlab.stimuli import build_stimuli

# Short versions of the shipped protocols' longest trials keep the suite fast;
# the full protocols run in benchmarks/b4_protocols.py.
_SHORT_CONVERSATION_S = 6.0


@pytest.fixture(scope="module")
def stimuli_root(stimuli_cache) -> Path:
    return stimuli_cache


def _protocol_file(name: str, tmp: Path) -> Path:
    src = find_protocol(name)
    if name != "conversation":
        return src
    doc = yaml.safe_load(src.read_text())
    for block in doc["blocks"]:
        for trial in block.get("trials", []):
            if "duration_s" in trial:
                trial["duration_s"] = _SHORT_CONVERSATION_S
    out = tmp / "conversation.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def _options(protocol: Path, out: Path, stim: Path, **kw: object) -> RunOptions:
    tag = uuid.uuid4().hex[:6]
    base = dict(
        protocol=str(protocol), participant="01", session="01", out_dir=out, simulate=True,
        headless=True, stimuli_dir=stim, marker_stream=f"t{tag}-Presenter",
        sim_prefix=f"t{tag}-", eeg_channels=32, eeg_rate=250.0,
    )  # fmt: skip
    base.update(kw)
    return RunOptions(**base)


def _build(protocol: Path, stim: Path) -> None:
    plan = plan_session(load_protocol(protocol), "01", "01")
    build_stimuli(list(plan.stimuli), stim, base_dir=protocol.parent, progress=False)


@pytest.mark.parametrize(
    "name", ["competing-talkers", "attention-switch", "av-speech-in-noise", "conversation"]
)
def test_every_protocol_one_trial_no_loss(name, tmp_path, stimuli_root) -> None:
    protocol = _protocol_file(name, tmp_path)
    stim = stimuli_root / name
    _build(protocol, stim)
    out = tmp_path / "sessions"
    out.mkdir()
    result = run_session(_options(protocol, out, stim, max_trials=1))
    assert result.status == "complete"
    assert result.trials_done == result.trials_planned == 1
    assert result.samples_lost and all(v == 0 for v in result.samples_lost.values())
    folder = result.folder
    for f in ("protocol.yaml", "plan.json", "trials.jsonl", "run.json", "session.h5"):
        assert (folder / f).is_file(), f
    trials = [json.loads(x) for x in (folder / "trials.jsonl").read_text().splitlines()]
    assert [t["status"] for t in trials] == ["completed"]
    with Session.open(folder) as s:
        assert s.status == "complete"
        markers = s.markers()
        events = list(markers.fields.get("event", []))
        assert "trial_start" in events and "trial_end" in events
        eeg = s.read("EEG")
        assert eeg.data.shape[1] == 32 and eeg.n_samples > 250 * 3
        # every simulated stream kept up with real time (none ends early)
        ends = [s.read(i.name, aligned=True).times[-1] for i in s.streams if i.nominal_srate > 0]
        assert max(ends) - min(ends) < 1.0
        truth = s.truth
    assert truth is not None
    if name != "conversation":  # someone was attended, at the presenter's marker times
        starts = markers.times[np.array(events) == "trial_start"]
        assert truth.attention, "the simulated participant attended nobody"
        spans = np.array([[a.t_start, a.t_end] for a in truth.attention])
        assert spans[0, 0] <= starts[0] + 1e-3 and spans[-1, 1] >= starts[0]


def _kill_presenter_after_first_trial(out: Path, stop: threading.Event) -> None:
    while not stop.is_set():
        for trials in out.glob("*/trials.jsonl"):
            if trials.read_text().strip():
                cfg = trials.parent / "presenter_config.json"
                res = subprocess.run(
                    ["pgrep", "-f", f"avlab.present {cfg}"], capture_output=True, text=True
                )
                for pid in res.stdout.split():
                    os.kill(int(pid), signal.SIGKILL)
                return
        time.sleep(0.1)


def test_crashed_presenter_keeps_data_and_resume_finishes(tmp_path, stimuli_root) -> None:
    protocol = _protocol_file("av-speech-in-noise", tmp_path)
    stim = stimuli_root / "av-speech-in-noise"
    _build(protocol, stim)
    out = tmp_path / "sessions"
    out.mkdir()
    stop = threading.Event()
    killer = threading.Thread(target=_kill_presenter_after_first_trial, args=(out, stop))
    killer.start()
    try:
        with pytest.raises(RunIncompleteError) as err:
            run_session(_options(protocol, out, stim, max_trials=3))
    finally:
        stop.set()
        killer.join()
    assert "presenter crashed" in err.value.message and "--resume" in err.value.hint
    assert err.value.exit_code == 9
    first = next(out.iterdir())
    run1 = json.loads((first / "run.json").read_text())
    assert run1["status"] == "incomplete" and run1["presenter_exit"] == -signal.SIGKILL
    done1 = run1["trials_done"]
    assert len(done1) >= 1
    with Session.open(first) as s:
        assert s.status == "incomplete"
        assert s.read("EEG").n_samples > 0  # recorded data kept
    result = run_session(_options(protocol, out, stim, resume=True, max_trials=3 - len(done1)))
    assert result.status == "complete"
    run2 = json.loads((result.folder / "run.json").read_text())
    assert run2["resumes"] == [first.name]
    plan = plan_session(load_protocol(protocol), "01", "01")
    first_three = [t.index for t in plan.trials][:3]
    assert sorted(done1 + run2["trials_done"]) == first_three


def test_stimuli_cover_plan() -> None:
    proto = load_protocol("competing-talkers")
    ids = {r.stim_id for r in stimulus_requests(proto)}
    plan = plan_session(proto, "05", "02")
    assert {s.stim_id for s in plan.stimuli} <= ids
