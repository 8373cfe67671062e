"""CameraRecorder: the real OpenCV capture on a real video file, the real pylsl outlet."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pylsl
import pytest

from avlab.devices.camera import CameraError, CameraLostError, CameraRecorder
from avlab.errors import OutputError
from avlab.sim.camera import decode_frame_index, render_frame

FPS = 30.0
N = 45


@pytest.fixture(scope="module")
def source_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cam") / "source.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (320, 240))
    for k in range(N):
        writer.write(render_frame(k)[..., ::-1].copy())
    writer.release()
    return path


def _inlet(name: str) -> pylsl.StreamInlet:
    infos = [i for i in pylsl.resolve_byprop("name", name, 1, 5.0) if i.name() == name]
    assert infos, f"stream {name} not found"
    inlet = pylsl.StreamInlet(infos[0], max_buflen=30)
    inlet.open_stream(timeout=5.0)
    return inlet


def _read_mp4(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_file_to_mp4_and_lsl(source_video: Path, tmp_path: Path) -> None:
    name = f"test-cam-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "camera-test.mp4"
    rec = CameraRecorder(str(source_video), out, stream_name=name)
    holder: list[pylsl.StreamInlet] = []
    thread = threading.Thread(target=lambda: holder.append(_inlet(name)))
    thread.start()  # the recorder's inlet connects while start() waits for it
    rec.start(wait_for_consumer_s=10.0)
    thread.join()
    inlet = holder[0]
    full = inlet.info(timeout=5.0).as_xml()
    samples, stamps = [], []
    while rec.running:
        chunk, ts = inlet.pull_chunk(timeout=0.2)
        samples += chunk
        stamps += ts
    chunk, ts = inlet.pull_chunk(timeout=0.5)
    samples, stamps = samples + chunk, stamps + ts
    inlet.close_stream()
    result = rec.stop()
    assert result.n_frames == N and result.width == 320 and result.height == 240
    assert result.fps == pytest.approx(FPS)
    assert "<file>camera-test.mp4</file>" in full and "<width>320</width>" in full
    assert "<type>VideoFrames</type>" in full
    # every frame in the MP4 is a sample in LSL, in order
    frames = _read_mp4(out)
    assert len(frames) == N == len(samples)
    assert [s[0] for s in samples] == list(range(N))
    assert [decode_frame_index(f[..., ::-1]) for f in frames] == list(range(N))
    ts = np.array(stamps)
    dt = np.diff(ts)
    assert (dt > 0).all()
    assert np.median(dt) == pytest.approx(1 / FPS, rel=0.1)
    slope = np.polyfit(np.arange(N), ts, 1)[0]  # mean period
    assert slope == pytest.approx(1 / FPS, rel=0.05)
    assert result.duration_s == pytest.approx(ts[-1] - ts[0], abs=1e-6)
    assert result.dropped <= 2  # a busy 2-core CI box may delay a grab


def test_open_failure_names_the_device(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="cannot open camera /nonexistent/video.mp4"):
        CameraRecorder("/nonexistent/video.mp4", tmp_path / "x.mp4", stream_name="x").start()


def test_existing_output_refused(source_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "exists.mp4"
    out.write_bytes(b"")
    with pytest.raises(OutputError, match='exists.mp4" already exists'):
        CameraRecorder(str(source_video), out, stream_name="x").start()


class _DyingCamera:
    """A live 30 fps camera (real capture of the test video underneath) dying after 8 frames.

    Frame 1 is start()'s check, frame 2 the flush of the driver queue: 6 are recorded.
    """

    def __init__(self, path: str) -> None:
        self._cap = cv2.VideoCapture(path)
        self._n = 0

    def __getattr__(self, name: str):  # isOpened, set, get, retrieve, release
        return getattr(self._cap, name)

    def read(self):  # noqa: ANN201
        self._n += 1
        return self._cap.read()

    def grab(self) -> bool:
        self._n += 1
        time.sleep(1 / FPS)  # a live camera blocks until the next frame
        return self._n <= 8 and self._cap.grab()


def test_lost_camera_keeps_the_video(
    source_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import avlab.devices.camera as camera

    monkeypatch.setattr(camera, "_LOST_AFTER_S", 0.3)
    out = tmp_path / "lost.mp4"
    rec = CameraRecorder(
        2, out, stream_name=f"test-cam-{uuid.uuid4().hex[:8]}", fps=FPS,
        capture_factory=lambda _src: _DyingCamera(str(source_video)),
    )  # fmt: skip
    rec.start()
    deadline = pylsl.local_clock() + 5.0
    while rec.running and pylsl.local_clock() < deadline:
        time.sleep(0.05)
    with pytest.raises(
        CameraLostError, match=r"camera 2 \(/dev/video2\) delivered no frame"
    ) as info:
        rec.stop()
    assert info.value.result is not None and info.value.result.n_frames == 6
    assert len(_read_mp4(out)) == 6
