"""The offline simulator writes the session folder of ``avlab run --simulate``, fast.

One competing-talkers session (2 trials, 16-channel EEG at 250 Hz, audio on) is
checked in depth: streams and their descriptions, zero samples lost, markers
against the plan, the EEG's TRF response to the attended versus the unattended
talker, truth spans at the marker times, files. Then determinism, repetition to a
minimum duration, one trial of every other protocol and the command line.
Stimuli are built once per protocol into a module folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import signal
from typer.testing import CliRunner

from avlab.cli.commands import app
from avlab.session import Session
from avlab.session.summary import summarize
from avlab.sim.config import AudioConfig, EEGConfig, SimConfig
from avlab.sim.offline import T_RECORDER_S, simulate_session
from avlab.sim.participant import Paradigm

SIM_STREAMS = ["sim-EEG", "sim-Gaze", "sim-Talkers", "sim-Microphone", "sim-Camera"]


def _config(seed: int = 0, audio: bool = True) -> SimConfig:
    return SimConfig(
        seed=seed,
        eeg=EEGConfig(n_channels=16, srate=250.0),
        audio=AudioConfig(enabled=audio, mic_channels=2),
    )


@pytest.fixture(scope="module")
def stimuli(stimuli_cache: Path) -> Path:
    return stimuli_cache


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory, stimuli: Path) -> Path:
    out = tmp_path_factory.mktemp("sessions")
    return simulate_session("competing-talkers", out, stimuli_dir=stimuli / "competing-talkers",
                            max_trials=2, config=_config())  # fmt: skip


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_session_streams_and_files(ct: Path) -> None:
    assert ct.name.startswith("sub-01_ses-01_")
    for name in ("session.h5", "log.jsonl", "plan.json", "protocol.yaml", "stimuli.json",
                 "trials.jsonl", "stimulus_log.jsonl", "presenter.jsonl", "run.json",
                 "run_result.json", "sim_truth.json", "sim/sim_truth.json"):  # fmt: skip
        assert (ct / name).is_file(), name
    summary = summarize(ct)
    assert summary.status == "complete"
    assert [s.name for s in summary.streams] == sorted([*SIM_STREAMS, "avlab-Presenter"])
    for s in summary.streams:
        assert s.samples_lost == 0 and s.gaps == 0 and s.segments == 1, s.name
        if s.sync_error_ms is not None:  # aligned times against the truth: well below 1 ms
            assert s.sync_error_ms.median < 0.5, s.name
    by_name = {s.name: s for s in summary.streams}
    assert by_name["sim-EEG"].channels == 16 and by_name["sim-EEG"].nominal_srate == 250
    assert by_name["sim-EEG"].effective_srate == pytest.approx(250 * (1 + 50e-6), rel=1e-6)
    assert by_name["sim-Gaze"].clock.method == "time_echo"
    assert by_name["sim-Gaze"].clock.median_offset_s == pytest.approx(-1.7e9, abs=1.0)
    assert by_name["sim-Microphone"].channels == 2
    with Session.open(ct) as s:
        attrs = s.attrs
        assert attrs["participant"] == "01" and attrs["session"] == "01"
        assert attrs["created_lsl"] == T_RECORDER_S and attrs["hostname"]
        eeg = s.stream("EEG")
        assert eeg.name == "sim-EEG" and eeg.channel_labels[:3] == ["Fp1", "Fp2", "F7"]
    with h5py.File(ct / "session.h5", "r") as f:
        xml = f["streams"]["sim-EEG"].attrs["info_xml"]
        assert xml.count("<location>") == 16 and "<unit>microvolts</unit>" in xml
        assert "<hostname />" not in xml and "<uid></uid>" not in xml
        gxml = f["streams"]["sim-Gaze"].attrs["info_xml"]
        assert "<time_echo>" in gxml and "<camera_width>1600</camera_width>" in gxml
    run = json.loads((ct / "run.json").read_text())
    assert run["status"] == "complete" and run["trials_done"] == [1, 2] and run["simulate"]
    assert json.loads((ct / "run_result.json").read_text())["samples_lost"]["sim-EEG"] == 0
    assert _lines(ct / "presenter.jsonl")[0]["window"] == [1280, 720]
    log = _lines(ct / "log.jsonl")
    assert log[0]["time"] == T_RECORDER_S and log[-1]["event"] == "close"


def test_markers_match_plan(ct: Path) -> None:
    plan = json.loads((ct / "plan.json").read_text())
    with Session.open(ct) as s:
        m = s.markers()
    events = m.fields["event"]
    assert events[0] == "session_start" and events[-1] == "session_end"
    starts = [i for i, e in enumerate(events) if e == "trial_start"]
    assert len(starts) == 2
    for i, trial in zip(starts, plan["trials"][:2], strict=True):
        assert m.fields["attended"][i] == trial["attended"]
        assert m.fields["stims"][i] == [t["stim_id"] for t in trial["talkers"]]
        assert m.fields["sides"][i] == [t["side"] for t in trial["talkers"]]
    assert events.count("response") == 2
    resp = [i for i, e in enumerate(events) if e == "response"]
    assert all(m.fields["rt_s"][i] > 0.2 for i in resp)
    # trials.jsonl and the stimulus log carry the marker times
    trials = _lines(ct / "trials.jsonl")
    assert [t["index"] for t in trials] == [1, 2]
    assert all(t["status"] == "completed" for t in trials)
    onsets = [m.times[i] for i in starts]
    np.testing.assert_allclose([t["audio_onset"] for t in trials], onsets, atol=1e-4)
    log = _lines(ct / "stimulus_log.jsonl")
    assert len(log) == 4
    assert [e["stim_id"] for e in log] == [s for i in starts for s in m.fields["stims"][i]]
    np.testing.assert_allclose([e["onset"] for e in log], np.repeat(onsets, 2), atol=1e-4)


def test_truth_spans_at_markers(ct: Path) -> None:
    with Session.open(ct) as s:
        m = s.markers()
        truth = s.truth
        raw = s.read("avlab-Presenter", aligned=False).times  # the presenter's stamps
    assert truth is not None
    ev = m.fields["event"]
    cues = [raw[i] for i, e in enumerate(ev) if e == "cue"]
    ends = [raw[i] for i, e in enumerate(ev) if e == "trial_end"]
    att = [m.fields["attended"][i] for i, e in enumerate(ev) if e == "trial_start"]
    assert [(a.trial, a.talker) for a in truth.attention] == [(1, att[0]), (2, att[1])]
    np.testing.assert_allclose([a.t_start for a in truth.attention], cues, atol=1e-6)
    np.testing.assert_allclose([a.t_end for a in truth.attention], ends, atol=1e-6)
    assert set(truth.streams) == set(SIM_STREAMS)
    assert truth.eeg_snr_db == -10.0 and len(truth.trf_attended) == 126  # 0.5 s at 250 Hz


def test_eeg_follows_attended_talker(ct: Path, stimuli: Path) -> None:
    with Session.open(ct) as s:
        eeg = s.read("EEG")
        m = s.markers()
        truth = s.truth
    assert truth is not None
    t0 = float(truth.extra["t_start"])
    tau = eeg.times - t0
    heard = Paradigm(stimuli / "competing-talkers")  # the stimuli played, as the sim hears them
    for t, v in zip(m.times, m.values, strict=True):
        heard.on_marker(json.loads(v), t - t0)
    h = np.array(truth.trf_attended)
    resp = [np.convolve(heard.envelope(k, tau), h)[: tau.size] for k in (0, 1)]
    att = heard.attended(tau)
    inside = att >= 0
    band = signal.butter(2, [1.0, 15.0], "bandpass", fs=eeg.info.nominal_srate, output="sos")
    fz = signal.sosfiltfilt(band, eeg.data[:, eeg.info.channel_labels.index("Fz")].astype(float))
    pred_att = signal.sosfiltfilt(band, np.where(att == 1, resp[1], resp[0]))
    pred_unatt = signal.sosfiltfilt(band, np.where(att == 1, resp[0], resp[1]))
    r_att = np.corrcoef(fz[inside], pred_att[inside])[0, 1]
    r_unatt = np.corrcoef(fz[inside], pred_unatt[inside])[0, 1]
    assert r_att > 0.25  # 0.29 with this seed and stimuli
    assert r_att > 2.0 * abs(r_unatt)  # 0.11: the unattended response is 0.3 of the attended


def test_deterministic(ct: Path, stimuli: Path, tmp_path: Path) -> None:
    # same seed, audio left out: the other streams are the same, value for value
    stim = stimuli / "competing-talkers"
    again = simulate_session("competing-talkers", tmp_path, stimuli_dir=stim, max_trials=2,
                             config=_config(audio=False))  # fmt: skip
    other = simulate_session("competing-talkers", tmp_path, stimuli_dir=stim, max_trials=1,
                             config=_config(seed=1, audio=False), seed=1)  # fmt: skip
    assert again != ct
    with Session.open(ct) as a, Session.open(again) as b, Session.open(other) as c:
        assert [i.name for i in b.streams] == sorted(["avlab-Presenter", "sim-Camera", "sim-EEG",
                                                      "sim-Gaze"])  # fmt: skip
        for name in ("sim-EEG", "sim-Gaze", "avlab-Presenter"):
            da, db = a.read(name, aligned=False), b.read(name, aligned=False)
            np.testing.assert_array_equal(da.data, db.data)
            np.testing.assert_array_equal(da.times, db.times)
        n = min(a.stream("EEG").n_samples, c.stream("EEG").n_samples)
        ea, ec = a.read("EEG").data[:n], c.read("EEG").data[:n]
        assert not np.array_equal(ea, ec)


def test_min_duration_repeats_trials(stimuli: Path, tmp_path: Path) -> None:
    folder = simulate_session("competing-talkers", tmp_path,
                              stimuli_dir=stimuli / "competing-talkers", max_trials=1,
                              min_duration_s=100.0, config=_config(audio=False))  # fmt: skip
    plan = json.loads((folder / "plan.json").read_text())
    n = len(plan["trials"])
    assert n >= 2
    assert [t["index"] for t in plan["trials"]] == list(range(1, n + 1))
    stims = [[p["stim_id"] for p in t["talkers"]] for t in plan["trials"]]
    assert all(s == stims[0] for s in stims)
    assert not plan["trials"][0]["break_before"]
    assert all(t["break_before"] for t in plan["trials"][1:])
    with Session.open(folder) as s:
        m = s.markers()
        eeg = s.aligned_times("EEG").times
    assert eeg[-1] - eeg[0] >= 100.0 - 1.0
    starts = [i for i, e in enumerate(m.fields["event"]) if e == "trial_start"]
    assert [m.fields["trial"][i] for i in starts] == list(range(1, n + 1))
    assert m.fields["event"].count("break") == n - 1
    trials = _lines(folder / "trials.jsonl")
    assert len(trials) == n and len(_lines(folder / "stimulus_log.jsonl")) == 2 * n
    assert json.loads((folder / "run.json").read_text())["trials_planned"] == list(range(1, n + 1))
    truth = json.loads((folder / "sim_truth.json").read_text())
    assert [a["trial"] for a in truth["attention"]] == list(range(1, n + 1))


@pytest.mark.parametrize(
    ("protocol", "audio", "video"),
    [("attention-switch", False, False), ("av-speech-in-noise", True, True),
     ("conversation", False, False)],
)  # fmt: skip
def test_other_protocols(protocol: str, audio: bool, video: bool, stimuli: Path,
                         tmp_path: Path) -> None:  # fmt: skip
    folder = simulate_session(protocol, tmp_path, participant="02", stimuli_dir=stimuli / protocol,
                              max_trials=1, config=_config(audio=audio), video=video)  # fmt: skip
    summary = summarize(folder)
    assert summary.status == "complete"
    assert all(s.samples_lost == 0 and s.gaps == 0 for s in summary.streams)
    with Session.open(folder) as s:
        m = s.markers()
        names = [i.name for i in s.streams]
        assert s.attrs["participant"] == "02"
    ev = m.fields["event"]
    assert ev.count("trial_start") == 1 and ev.count("trial_end") == 1
    assert ("sim-Talkers" in names) == audio
    if protocol == "attention-switch":
        i = ev.index("switch")
        assert m.fields["attended"][i] != m.fields["attended"][ev.index("cue")]
        truth = json.loads((folder / "sim_truth.json").read_text())
        first = m.fields["attended"][ev.index("cue")]
        assert [a["talker"] for a in truth["attention"]] == [first, 1 - first]
    if protocol == "conversation":
        assert ev.count("turn") > 10 and not _lines(folder / "stimulus_log.jsonl")
    if protocol == "av-speech-in-noise":
        i = ev.index("trial_start")
        assert m.fields["snr_db"][i] is not None and ev.count("response") == 1
        log = _lines(folder / "stimulus_log.jsonl")
        assert log[-1]["stim_id"] == "noise-speech-shaped"
    if video:
        import cv2

        from avlab.sim.camera import decode_frame_index

        cap = cv2.VideoCapture(str(folder / "camera-scene.mp4"))
        n_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = cap.read()
        cap.release()
        assert ok and decode_frame_index(frame[..., ::-1]) == 0
        with Session.open(folder) as s:
            cam = s.read("avlab-camera-scene")
        assert cam.info.type == "VideoFrames" and cam.data.shape[0] == n_frames
        np.testing.assert_array_equal(cam.data[:, 0], np.arange(n_frames))


def test_cli(stimuli: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, [
        "simulate", "conversation", str(tmp_path), "-p", "03", "-s", "02", "--trials", "1",
        "--no-audio", "--eeg-channels", "8", "--eeg-rate", "250", "--seed", "4", "--quiet",
        "--stimuli", str(stimuli / "conversation"),
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    folder = Path(res.output.strip().splitlines()[-1])
    assert folder.parent == tmp_path and folder.name.startswith("sub-03_ses-02_")
    with Session.open(folder) as s:
        assert s.stream("EEG").channel_count == 8
        assert s.truth is not None and s.truth.seed == 4
