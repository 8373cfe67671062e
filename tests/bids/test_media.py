"""Participant audio/video in beh/: FLAC from session.h5, copies, frame times, .bidsignore."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from avlab.bids.media import BIDSIGNORE_PATTERNS, media_label, update_bidsignore, write_media
from avlab.bids.models import BidsRun
from avlab.bids.timeline import Timeline
from avlab.session import Session

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "session"))
sys.path.insert(0, str(HERE))

from sessionfactory import Recorded, default_streams, write_session  # noqa: E402
from sync.synthetic import make_clock, make_stream  # noqa: E402

AUDIO_FS = 16000.0
DURATION_S = 12.0  # two 10-s FLAC blocks
GAP_AT_S, GAP_N = 5.0, 800  # samples the simulated microphone lost
SPIKES = (1000, 70_000, 150_000)  # sample values outside [-1, 1]
BLOCK = 512  # frames per AudioBlocks sample
CAM_FPS, CAM_FRAMES, CAM_SIZE = 30.0, 90, (64, 48)
RUN = BidsRun(folder=Path("x"), subject="01", session="01", task="tiny", run="01")


def _xml(name: str, desc: str) -> str:
    return (
        f"<?xml version='1.0'?><info><name>{name}</name><hostname>simhost</hostname>"
        f"<desc>{desc}</desc></info>"
    )


def _sim_audio() -> Recorded:
    synth = make_stream(
        make_clock("source", name="sim-Microphone", srate=AUDIO_FS, host_offset_s=37.0),
        duration_s=DURATION_S, gaps=((GAP_AT_S, GAP_N),), seed=21,
    )  # fmt: skip
    n = synth.stamps.size
    t = np.arange(n) / AUDIO_FS
    data = np.column_stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.cos(2 * np.pi * 220 * t)])
    data[list(SPIKES), 0] = [1.5, -2.0, 1.25]
    return Recorded("sim-Microphone", "Audio", "float32", "lsl_time_correction", synth,
                    data.astype(np.float32), ["mic0", "mic1"])  # fmt: skip


def _blocks(n_frames: int) -> Recorded:
    synth = make_stream(
        make_clock("arrival", name="avlab-mic-partner", srate=AUDIO_FS / BLOCK,
                   host_offset_s=37.0, jitter_sd_s=5e-4, seed=3),
        duration_s=n_frames / AUDIO_FS, seed=22,
    )  # fmt: skip
    k = np.arange(synth.stamps.size, dtype=np.float64)
    data = np.column_stack([k * BLOCK, np.full(k.size, BLOCK)])
    return Recorded("avlab-mic-partner", "AudioBlocks", "double64", "lsl_time_correction",
                    synth, data, ["first_sample_index", "n_frames"])  # fmt: skip


def _frames(name: str, n: int) -> Recorded:
    synth = make_stream(
        make_clock("arrival", name=name, srate=CAM_FPS, host_offset_s=37.0, jitter_sd_s=1e-3),
        duration_s=n / CAM_FPS, seed=23,
    )  # fmt: skip
    data = np.arange(synth.stamps.size, dtype=np.int32).reshape(-1, 1)
    return Recorded(name, "VideoFrames", "int32", "lsl_time_correction", synth, data, ["frame"])


def _session(folder: Path) -> Path:
    eeg = next(s for s in default_streams(DURATION_S + 3.0, 0) if s.type == "EEG")
    n_mic = int(DURATION_S * AUDIO_FS) // BLOCK * BLOCK
    streams = [
        eeg, _sim_audio(), _blocks(n_mic), _frames("avlab-camera-scene", CAM_FRAMES),
        _frames("sim-Camera", 60),
    ]  # fmt: skip
    write_session(folder, streams, truth=False)
    descs = {
        "avlab-mic-partner": "<audio><file>/home/lab/old/mic-partner.flac</file><srate>16000"
        "</srate></audio>",
        "avlab-camera-scene": "<camera><width>64</width><height>48</height>"
        "<file>camera-scene.mp4</file></camera>",
        "sim-Camera": "<camera><width>320</width><height>240</height></camera>"
        "<avlab_sim><kind>Camera</kind></avlab_sim>",
    }
    with h5py.File(folder / "session.h5", "r+") as h5:
        for key in h5["streams"]:
            attrs = h5["streams"][key].attrs
            if attrs["name"] in descs:
                attrs["info_xml"] = _xml(attrs["name"], descs[attrs["name"]])
            if attrs["type"] == "AudioBlocks":
                attrs["nominal_srate"] = 0.0  # block times are irregular
    rng = np.random.default_rng(9)
    sf.write(folder / "mic-partner.flac", rng.uniform(-0.5, 0.5, (n_mic, 1)), int(AUDIO_FS),
             subtype="PCM_16")  # fmt: skip
    import cv2

    video = cv2.VideoWriter(str(folder / "camera-scene.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                            CAM_FPS, CAM_SIZE)  # fmt: skip
    for i in range(CAM_FRAMES):
        video.write(np.full((CAM_SIZE[1], CAM_SIZE[0], 3), (i * 3) % 256, np.uint8))
    video.release()
    return folder


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list, dict]:
    folder = _session(tmp_path_factory.mktemp("media") / "ses")
    beh = folder.parent / "bids" / "beh"
    with Session.open(folder) as s:
        files, missing = write_media(s, Timeline.from_session(s), RUN, beh)
    return folder, beh, files, missing


@pytest.mark.parametrize(
    ("name", "label"),
    [("sim-Microphone", "microphone"), ("sim-Talkers", "talkers"), ("mic-partner.flac", "partner"),
     ("camera-scene.mp4", "scene"), ("avlab-mic-Room_2", "room2")],
)  # fmt: skip
def test_labels(name: str, label: str) -> None:
    assert media_label(name) == label


def test_files_and_missing(written: tuple[Path, Path, list, dict]) -> None:
    _, beh, files, missing = written
    stem = RUN.stem()
    assert [(f.kind, f.label, f.path.name) for f in files] == [
        ("audio", "microphone", f"{stem}_recording-microphone_audio.flac"),
        ("audio", "partner", f"{stem}_recording-partner_audio.flac"),
        ("video", "scene", f"{stem}_recording-scene_video.mp4"),
    ]
    assert missing == {"video": "sim-Camera: the simulated camera streams frame numbers only"}
    assert sorted(p.name for p in beh.iterdir()) == sorted(
        [f.path.name for f in files] + [p.name for f in files for p in f.extra_files]
    )
    for p in beh.iterdir():  # nothing host-specific from the LSL XML
        data = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        assert b"simhost" not in data and b"/home/lab" not in data


def test_simulated_audio_flac(written: tuple[Path, Path, list, dict]) -> None:
    folder, _, files, _ = written
    flac = files[0].path
    side = json.loads(flac.with_suffix(".json").read_text())
    audio, fs = sf.read(flac, dtype="float64", always_2d=True)
    info = sf.info(str(flac))
    assert (fs, info.subtype, info.channels) == (16000, "PCM_24", 2)
    with Session.open(folder) as s:
        tl = Timeline.from_session(s)
        mic = s.read("sim-Microphone")
    n = mic.n_samples
    k = int(GAP_AT_S * AUDIO_FS)
    assert audio.shape[0] == n + GAP_N  # the lost samples are silence in the file
    # the spikes beyond full scale are not clipped: the whole stream is scaled down
    peak = float(np.abs(mic.data).max())
    assert peak > 1.0
    gain = side["AmplitudeScale"]
    assert gain == pytest.approx(0.999 / peak)
    expected = mic.data.astype(np.float64) * gain
    np.testing.assert_allclose(audio[:k], expected[:k], rtol=0, atol=2.0**-23 + 1e-9)
    np.testing.assert_allclose(audio[k + GAP_N :], expected[k:], rtol=0, atol=2.0**-23 + 1e-9)
    assert not audio[k : k + GAP_N].any()
    assert side["ClippedSampleCount"] == 0 and "AmplitudeScale" in side["Description"]
    assert side["AudioChannelLabels"] == ["mic0", "mic1"] and side["AudioBitDepth"] == 24
    assert side["SamplingFrequency"] == AUDIO_FS
    assert side["RecordingDuration"] == pytest.approx((n + GAP_N) / AUDIO_FS)
    # StartTime: tau of the first sample, from a stamp per second, as the full alignment
    assert side["StartTime"] == pytest.approx(float(tl.tau(mic.times[0])), abs=1e-6)
    assert side["SamplingFrequencyEffective"] == pytest.approx(AUDIO_FS, rel=2e-4)
    assert files[0].start_s == side["StartTime"]
    assert files[0].acq_time == tl.acq_time + timedelta(seconds=side["StartTime"])


def test_copies_and_frame_times(written: tuple[Path, Path, list, dict]) -> None:
    folder, _, files, _ = written
    mic, cam = files[1], files[2]
    assert mic.path.read_bytes() == (folder / "mic-partner.flac").read_bytes()
    assert cam.path.read_bytes() == (folder / "camera-scene.mp4").read_bytes()
    with Session.open(folder) as s:
        tl = Timeline.from_session(s)
        blocks = s.read("avlab-mic-partner")
        frames = s.read("avlab-camera-scene")
    side = json.loads(mic.path.with_suffix(".json").read_text())
    assert side["AudioBitDepth"] == 16 and side["AudioCodec"] == "flac"
    # block stamps jitter by 0.5 ms; the fitted start is closer than any single block
    assert side["StartTime"] == pytest.approx(float(tl.tau(blocks.times[0])), abs=2e-3)
    assert side["SamplingFrequencyEffective"] == pytest.approx(AUDIO_FS, rel=1e-3)
    vside = json.loads(cam.path.with_suffix(".json").read_text())
    assert (vside["VideoCodec"], vside["Width"], vside["Height"]) == ("mpeg4", 64, 48)
    assert vside["FrameRate"] == CAM_FPS and vside["VideoFrameCount"] == CAM_FRAMES
    times_path = cam.extra_files[1]
    assert vside["FrameTimesFile"] == times_path.name
    assert times_path.name.endswith("_recording-scene_video_frametimes.tsv.gz")
    rows = [ln.split("\t") for ln in gzip.decompress(times_path.read_bytes()).decode().splitlines()]
    assert [int(r[0]) for r in rows] == list(range(CAM_FRAMES))  # headerless, one row per frame
    np.testing.assert_allclose([float(r[1]) for r in rows], tl.tau(frames.times), atol=5.1e-7)
    assert vside["StartTime"] == float(rows[0][1]) == cam.start_s


def test_daysback_and_deterministic_bytes(
    written: tuple[Path, Path, list, dict], tmp_path: Path
) -> None:
    folder, _, files, _ = written
    with Session.open(folder) as s:
        again, _ = write_media(s, Timeline.from_session(s), RUN, tmp_path, daysback=7000)
    for a, b in zip(again, files, strict=True):
        assert a.acq_time == b.acq_time - timedelta(days=7000)
        for p, q in zip((a.path, *a.extra_files), (b.path, *b.extra_files), strict=True):
            assert p.read_bytes() == q.read_bytes(), p.name


def test_bidsignore(tmp_path: Path) -> None:
    path = tmp_path / ".bidsignore"
    path.write_text("extra/\n*_video.mp4\n", encoding="utf-8")
    update_bidsignore(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == ["extra/", "*_video.mp4"]  # the user's lines first, unchanged
    assert sorted(ln for ln in lines if ln.startswith("*")) == sorted(BIDSIGNORE_PATTERNS)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    update_bidsignore(tmp_path)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    fresh = tmp_path / "new"
    fresh.mkdir()
    update_bidsignore(fresh)
    assert set(BIDSIGNORE_PATTERNS) <= set((fresh / ".bidsignore").read_text().splitlines())


def test_official_validator_ignores_the_media(
    written: tuple[Path, Path, list, dict], tmp_path: Path
) -> None:
    bids_validator_deno = pytest.importorskip("bids_validator_deno")
    deno = pytest.importorskip("deno")
    from _tiny import build_tiny

    folder, _, _, _ = written
    tiny = build_tiny(tmp_path / "bids", manifest=False, gaze=False)
    with Session.open(folder) as s:
        files, _ = write_media(s, Timeline.from_session(s), RUN, tiny.eeg_dir.parent / "beh")
    bundle = Path(bids_validator_deno.__file__).with_name("bids-validator.js")
    cmd = [deno.find_deno_bin(), "run", "--allow-read", "--allow-env", "--no-prompt",
           str(bundle), str(tiny.root), "--format", "json"]  # fmt: skip
    env = {**os.environ, "DENO_NO_UPDATE_CHECK": "1", "DENO_NO_PROMPT": "1"}

    def issues() -> list[dict]:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        return json.loads(proc.stdout)["issues"]["issues"]

    # without the .bidsignore the draft files are errors (the validator does see them)
    errors = {
        i.get("location", "").rsplit("_", 1)[-1] for i in issues() if i["severity"] == "error"
    }
    assert {"audio.flac", "audio.json", "video.mp4", "video.json", "frametimes.tsv.gz"} <= errors
    update_bidsignore(tiny.root)
    found = issues()
    assert [i["code"] for i in found if i["severity"] == "error"] == []
    assert [i["code"] for i in found if "/beh/" in i.get("location", "")] == []
    assert len(files) == 3
