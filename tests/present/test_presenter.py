"""The presenter in a real window (Xvfb) with real audio (PulseAudio null sink).

The key measurement: marker times against what was actually on the screen and
in the sound card. Every marked flip also turns a photodiode patch white (top
centre, as a lab photodiode would see it). A poller reads that pixel from
Xvfb's memory-mapped framebuffer (``-fbdir``) in a tight loop and stamps each
black->white change with ``pylsl.local_clock``; ``parec`` records the null
sink's monitor; the markers arrive over a real LSL inlet.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import subprocess
import threading
import time
import uuid

import numpy as np
import pylsl
import pytest
import soundfile as sf
from presenting import SIZE, SR, Capture, finish, make_plan, start_presenter
from scipy import signal

from avlab.present.audio import trial_mix

_FLIP_EVENTS = {"session_start", "cue", "switch", "question", "instructions", "break"}


def _screenshot(fb_file) -> np.ndarray:
    """What is on the Xvfb screen now: RGB, shape (height, width, 3), uint8."""
    with open(fb_file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        hdr = struct.unpack(">25I", mm[:100])
        start = hdr[0] + 12 * hdr[19]
        w, h, bpl = hdr[4], hdr[5], hdr[12]
        px = np.frombuffer(mm[start : start + h * bpl], dtype=np.uint8).reshape(h, bpl // 4, 4)
        return px[:, :w, 2::-1].copy()  # BGRX -> RGB


def _tag_centres(rgb: np.ndarray) -> dict[int, tuple[float, float]]:
    """Detect tag36h11 markers as the gaze mapping does (pupil-apriltags); {id: (x, y)} px."""
    from pupil_apriltags import Detector

    gray = np.ascontiguousarray(rgb.mean(axis=2).astype(np.uint8))
    det = Detector(families="tag36h11")
    return {int(r.tag_id): (float(r.center[0]), float(r.center[1])) for r in det.detect(gray)}


class _Photodiode(threading.Thread):
    """Poll the photodiode pixel of the Xvfb framebuffer, stamp rising edges."""

    def __init__(self, fb_file, x: int, y: int) -> None:
        super().__init__(daemon=True)
        self.f = open(fb_file, "rb")  # noqa: SIM115 - closed in run()
        self.mm = mmap.mmap(self.f.fileno(), 0, access=mmap.ACCESS_READ)
        # XWD header: 25 big-endian uint32; then the colour map, then the pixels
        hdr = struct.unpack(">25I", self.mm[:100])
        header_size, ncolors, bpl, bpp = hdr[0], hdr[19], hdr[12], hdr[11]
        self.offset = header_size + 12 * ncolors + y * bpl + x * bpp // 8
        self.stop = threading.Event()
        self.edges: list[float] = []
        self.reads = 0

    def run(self) -> None:
        try:  # like a photodiode's own clock: don't let the busy machine delay the reads
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except PermissionError:
            pass
        was_white = False
        while not self.stop.is_set():
            white = self.mm[self.offset] > 128
            t = pylsl.local_clock()
            self.reads += 1
            if white and not was_white:
                self.edges.append(t)
            was_white = white
            time.sleep(0.0001)
        self.mm.close()
        self.f.close()


def _audio_errors_ms(audio: np.ndarray, cap: Capture, starts: list[float], ref: np.ndarray):
    """Observed onset of ``ref`` in the capture near each marker, minus the marker, ms."""
    errors = []
    for t in starts:
        t0 = cap.t0_near(t)
        i = int(round((t - t0) * SR))
        lo = max(i - SR // 4, 0)
        seg = audio[lo : i + SR // 4 + ref.size, 0].astype(float)
        xc = signal.correlate(seg, ref, mode="valid", method="fft")
        lag = int(np.argmax(xc))
        assert xc[lag] > 0.5 * np.dot(ref, ref), "the trial sound was not found near its marker"
        errors.append(((lo + lag) / SR + t0 - t) * 1e3)
    return np.array(errors)


def test_marker_times_match_presented_frames_and_sound(tmp_path, av, stimuli) -> None:
    stim, reqs = stimuli
    plan = make_plan(reqs, 4)
    cap = Capture(av.env, av.monitor)
    cap.start()
    proc, ready, cfg = start_presenter(tmp_path, av, stim, plan)
    assert ready["marker_stream"] == cfg["marker_name"]
    assert ready["audio_backend"] == "sounddevice"  # auto on PulseAudio
    assert 30.0 <= ready["refresh_hz"] <= 240.0
    info = pylsl.resolve_byprop("source_id", ready["source_id"], timeout=10)[0]
    inlet = pylsl.StreamInlet(info)
    inlet.open_stream(5.0)
    offset = inlet.time_correction(5.0)
    # photodiode patch centre: (0, 0.47) height units
    x, y = SIZE[0] // 2, int(round(SIZE[1] * (0.5 - 0.47)))
    diode = _Photodiode(av.fbdir / "Xvfb_screen0", x, y)
    diode.start()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    markers = []
    shot = None
    while True:
        value, ts = inlet.pull_sample(timeout=0.5)
        if value is not None:
            markers.append((json.loads(value[0]), ts + offset))
            if shot is None and markers[-1][0]["event"] == "trial_start":
                time.sleep(0.3)  # talker videos playing
                shot = _screenshot(av.fbdir / "Xvfb_screen0")
        elif proc.poll() is not None:
            break
    diode.stop.set()
    diode.join()
    audio, _ = cap.stop()
    assert finish(proc) == 0, (tmp_path / "stderr.log").read_text()
    events = [m["event"] for m, _ in markers]
    assert events[0] == "session_start" and events[-1] == "session_end"
    assert events.count("trial_start") == 4 and events.count("trial_end") == 4
    assert events.count("response") == 4

    # -- flips: marker vs the photodiode pixel actually changing on screen
    flips = np.array([t for m, t in markers if m["event"] in _FLIP_EVENTS])
    edges = np.array(diode.edges)
    assert flips.size == 1 + 4 * 3 + 1  # session_start, cue/switch/question x 4, instructions
    assert edges.size >= flips.size
    err = np.array([edges[np.argmin(np.abs(edges - t))] - t for t in flips])
    ms = np.abs(err) * 1e3
    print(  # noqa: T201 - the acceptance figure, shown with -s
        f"\nmarker-to-flip |error| ms: median {np.median(ms):.2f}, p99 "
        f"{np.percentile(ms, 99):.2f}, max {ms.max():.2f}, n {ms.size}, "
        f"signed median {np.median(err) * 1e3:.2f}, poll reads {diode.reads}"
    )
    names = [m["event"] for m, _ in markers if m["event"] in _FLIP_EVENTS]
    print([f"{n}:{e * 1e3:+.1f}" for n, e in zip(names, err, strict=True)])  # noqa: T201
    (tmp_path.parent / "marker_flip_ms.json").write_text(json.dumps(err.tolist()))
    assert np.median(ms) < 3.0
    # typically all within 1.5 ms; another busy process can delay one stamp by a frame
    assert np.mean(ms < 16.7) >= 0.9

    # -- what was on screen mid-trial: four corner tags, two faces
    tags = _tag_centres(shot)
    assert sorted(tags) == [0, 1, 2, 3]
    w, h = SIZE
    assert tags[0][0] < w / 4 and tags[0][1] < h / 4  # top-left (pixel rows go down)
    assert tags[1][0] > 3 * w / 4 and tags[1][1] < h / 4  # top-right
    assert tags[2][0] > 3 * w / 4 and tags[2][1] > 3 * h / 4  # bottom-right
    assert tags[3][0] < w / 4 and tags[3][1] > 3 * h / 4  # bottom-left
    background = shot[h // 2 + 200, w // 2].astype(int)
    for x_face in (-0.45, 0.45):  # face centres, height units -> pixels
        col = int(w / 2 + x_face * h)
        patch = shot[int(h / 2 - 0.05 * h) - 40 : int(h / 2 - 0.05 * h) + 40, col - 40 : col + 40]
        assert np.abs(patch.astype(int) - background).max() > 60, "no talker face drawn"

    # -- sound: trial_start vs the trial's mix found in the null sink's monitor
    starts = [t for m, t in markers if m["event"] == "trial_start"]
    talkers = [(sf.read(stim / f"{tp.stim_id}.wav")[0], tp.level_db, tp.azimuth_deg, 0.0)
               for tp in plan.trials[0].talkers]  # fmt: skip
    ref = trial_mix(talkers, None, None)[0][:SR, 0].astype(float)
    aerr = _audio_errors_ms(audio, cap, starts, ref)
    out = tmp_path / "out"
    trials = [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines()]
    sure = np.array([not t["audio_onset_uncertain"] for t in trials])
    print(f"audio onset - trial_start marker, ms: {np.round(aerr, 2).tolist()}, "  # noqa: T201
          f"underrun near onset: {(~sure).tolist()}")  # fmt: skip
    (tmp_path.parent / "audio_onset_ms.json").write_text(json.dumps(aerr.tolist()))
    # an underrun of the (loaded, 2-core) machine shifts the sound; the presenter flags it
    assert sure.sum() >= 2
    assert np.all(np.abs(aerr[sure]) < 20.0)
    assert np.ptp(aerr[sure]) < 5.0  # a constant capture-path offset, little jitter

    # -- files written as the trials ran
    assert [t["index"] for t in trials] == [1, 2, 3, 4]
    assert [t["status"] for t in trials] == ["completed"] * 4
    for t, s in zip(trials, starts, strict=True):
        assert abs(t["audio_onset"] - s) < 1e-3  # s: the inlet adds its clock correction
        assert t["audio_offset"] > t["audio_onset"] and t["rt_s"] > 0.2
        assert t["response"] in (0, 1) and t["correct"] == (t["response"] == 0)
        assert t["dropped_frames"] >= 0 and "audio_underflows" in t
    stim_log = [json.loads(x) for x in (out / "stimulus_log.jsonl").read_text().splitlines()]
    assert len(stim_log) == 8 and {s["stim_id"] for s in stim_log} == {"a1", "b1"}
    assert all(len(s["sha256"]) == 64 for s in stim_log)
    assert all(abs(s["onset"] - t["audio_onset"]) < 1e-6
               for s, t in zip(stim_log[::2], trials, strict=True))  # fmt: skip
    log = [json.loads(x) for x in (out / "presenter.jsonl").read_text().splitlines()]
    opened = next(e for e in log if e["event"] == "open")
    assert opened["audio_backend"] == "sounddevice" and abs(opened["clock_offset_s"]) > 0
    assert log[-1]["event"] == "end" and log[-1]["status"] == "complete"
    # the cue is 0.5 s; the sound starts at the first flip 0.25 s (audio_latency_s) later
    cues = [t for m, t in markers if m["event"] == "cue"]
    assert all(0.7 < s - c < 1.1 for s, c in zip(starts, cues, strict=True))


def _xdotool(display: str, *args: str) -> None:
    subprocess.run(["xdotool", *args], env={"DISPLAY": display}, check=True, timeout=10)


def test_keyboard_mouse_and_escape(tmp_path, av, stimuli) -> None:
    """A participant at the keyboard: space, a typed word report, a mouse click, then Esc."""
    stim, reqs = stimuli
    base = make_plan(reqs, 3)
    t1 = base.trials[0].model_copy(update={
        "talkers": base.trials[0].talkers[:1], "attended": 0, "switch": None,
        "question": None, "response": "typed",
    })  # fmt: skip
    plan = base.model_copy(update={"trials": [t1, *base.trials[1:]]})
    proc, ready, _ = start_presenter(tmp_path, av, stim, plan, responder="keyboard")
    info = pylsl.resolve_byprop("source_id", ready["source_id"], timeout=10)[0]
    inlet = pylsl.StreamInlet(info)
    inlet.open_stream(5.0)
    wid = subprocess.run(["xdotool", "search", "--name", "."], env={"DISPLAY": av.display},
                         capture_output=True, text=True).stdout.split()[-1]  # fmt: skip
    proc.stdin.write("go\n")
    proc.stdin.flush()
    w, h = SIZE
    markers = []
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        value, _ = inlet.pull_sample(timeout=0.2)
        if value is None:
            continue
        m = json.loads(value[0])
        markers.append(m)
        if m["event"] == "instructions":
            _xdotool(av.display, "key", "--window", wid, "space")
        elif m["event"] == "question" and m["trial"] == 1:
            _xdotool(av.display, "type", "--window", wid, "two blue ships sailed home")
            _xdotool(av.display, "key", "--window", wid, "Return")
        elif m["event"] == "question" and m["trial"] == 2:
            # option 2 of 2 is drawn at y = 0.01 (height units): click it
            _xdotool(av.display, "mousemove", str(w // 2), str(int(h / 2 - 0.01 * h)))
            _xdotool(av.display, "click", "1")
        elif m["event"] == "cue" and m["trial"] == 3:
            _xdotool(av.display, "key", "--window", wid, "Escape")
    rc = finish(proc, 30)
    assert rc == 10, (tmp_path / "stderr.log").read_text()
    while (s := inlet.pull_sample(timeout=0.5))[0] is not None:
        markers.append(json.loads(s[0][0]))
    resp = {m["trial"]: m for m in markers if m["event"] == "response"}
    assert resp[1]["answer"] == "two blue ships sailed home" and resp[1]["correct"] is True
    assert resp[2]["answer"] == 1 and resp[2]["correct"] is False  # option 0 is right
    assert 0.0 < resp[1]["rt_s"] < 30 and 0.0 < resp[2]["rt_s"] < 30
    abort = [m for m in markers if m["event"] == "abort"]
    assert abort == [{"event": "abort", "trial": 3, "reason": "escape"}]
    assert markers[-1] == {"event": "session_end", "status": "aborted"}
    out = tmp_path / "out" / "trials.jsonl"
    trials = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(t["index"], t["status"]) for t in trials] == [
        (1, "completed"), (2, "completed"), (3, "aborted")]  # fmt: skip
    assert trials[-1]["reason"] == "escape"


def test_sigterm_aborts_cleanly(tmp_path, av, stimuli) -> None:
    stim, reqs = stimuli
    proc, _, _ = start_presenter(tmp_path, av, stim, make_plan(reqs, 4))
    proc.stdin.write("go\n")
    proc.stdin.flush()
    time.sleep(2.0)
    proc.terminate()
    assert finish(proc, 30) == 11
    log = [json.loads(x) for x in (tmp_path / "out" / "presenter.jsonl").read_text().splitlines()]
    assert any(e["event"] == "abort" and e["reason"] == "signal" for e in log)
    assert log[-1]["event"] == "end" and log[-1]["status"] == "aborted"


@pytest.mark.filterwarnings("ignore:'locale.getdefaultlocale' is deprecated:DeprecationWarning")
def test_in_process_subset(tmp_path, av, stimuli, monkeypatch) -> None:
    """``present_session`` in this process, resuming with trial 2 only, no handshake."""
    from avlab.present import PresenterConfig, present_session

    for k, v in av.env.items():
        monkeypatch.setenv(k, v)
    stim, reqs = stimuli
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(make_plan(reqs, 2).model_dump_json())
    cfg = PresenterConfig(
        plan_file=plan_file, stimuli_dir=stim, out_dir=tmp_path / "out", size=SIZE,
        marker_name=f"t{uuid.uuid4().hex[:8]}-Presenter", responder="auto", trials=[2],
        rush=False,
    )  # fmt: skip
    res = present_session(cfg)
    assert res.exit_code == 0 and res.status == "complete" and res.completed == [2]
    assert res.n_markers == 1 + 6 + 1  # session start/end, cue..response of one trial
    trials = [json.loads(x) for x in (tmp_path / "out" / "trials.jsonl").read_text().splitlines()]
    assert [t["index"] for t in trials] == [2]
