"""Cameras through OpenCV: frames to MP4, per-frame times to LSL.

A :class:`CameraRecorder` owns one ``cv2.VideoCapture``. Its thread grabs a
frame, takes the LSL time, writes the frame to an MP4 (``cv2.VideoWriter``,
codec ``mp4v``) and pushes the frame's index to an LSL stream laid out like the
simulator's Camera stream (type ``VideoFrames``, 1 int32 channel ``frame``,
``desc/camera`` with ``width``, ``height`` and the MP4 ``file`` name), so the
recorder stores the frame times next to the other streams and frame ``k`` of
the MP4 is sample ``k`` of the stream.

Timing: each frame is stamped ``t = local_clock()`` right after
``VideoCapture.grab()`` returns, minus ``latency_s``. ``grab()`` returns when
the driver hands over a frame, i.e. after exposure, read-out and USB transfer;
for UVC webcams that is typically 1-2 frame periods (30-70 ms) after the middle
of the exposure. That latency is not measured here (no camera in this
project's test rig): give ``latency_s`` from a measurement (e.g. filming a
flashing screen whose flip times are in LSL) to remove it. The jitter of the
stamps is the scheduling jitter of this thread (≈ 1 ms when the CPU is free).

A file source (a video path) is read at its own frame rate (``fps``) so that
its stamps look like a live camera's; this is what the tests use.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from avlab._logging import logger
from avlab.errors import AvlabError, OutputError

if TYPE_CHECKING:
    import numpy as np
    import pylsl

__all__ = ["CameraError", "CameraLostError", "CameraRecorder", "CameraResult"]

_LOST_AFTER_S = 2.0  # a live camera silent this long is lost


class CameraError(AvlabError, RuntimeError):
    """A camera cannot be opened or read."""

    exit_code = 11


class CameraLostError(CameraError):
    """A camera stopped delivering frames during a recording.

    ``result`` holds what was recorded up to then (the MP4 is closed and valid).
    """

    def __init__(self, message: str, hint: str = "", result: CameraResult | None = None) -> None:
        super().__init__(message, hint)
        self.result = result


class CameraResult(BaseModel):
    """What a camera recording produced.

    Attributes
    ----------
    n_frames : int
        Frames written to the MP4 (= samples pushed to LSL).
    dropped : int
        Frames the camera skipped, estimated from gaps longer than 1.5 frame
        periods between grabs.
    path : Path
        The MP4 file.
    width, height : int
        Frame size, pixels.
    fps : float
        Nominal frame rate, Hz.
    duration_s : float
        LSL time from the first to the last frame, s.
    """

    model_config = ConfigDict(extra="forbid")

    n_frames: int
    dropped: int
    path: Path
    width: int
    height: int
    fps: float
    duration_s: float = 0.0


def _describe(source: int | str) -> str:
    if isinstance(source, int):
        return f"camera {source} (/dev/video{source})"
    return f"camera {source}"


def camera_stream_info(
    name: str, source_id: str, *, fps: float, width: int, height: int, file: str, source: str,
    latency_s: float,
) -> pylsl.StreamInfo:  # fmt: skip
    """Describe a camera's frame-time stream (type ``VideoFrames``, one ``frame`` channel).

    Parameters
    ----------
    name, source_id : str
        LSL stream name and source id.
    fps : float
        Nominal frame rate (Hz; 0 for a variable rate).
    width, height : int
        Frame size in pixels.
    file : str
        Name of the MP4 in the session folder.
    source : str
        The capture device or file.
    latency_s : float
        Capture latency subtracted from the grab time (s).

    Returns
    -------
    info : pylsl.StreamInfo
    """
    import pylsl

    info = pylsl.StreamInfo(name, "VideoFrames", 1, fps, "int32", source_id)
    desc = info.desc()
    desc.append_child_value("manufacturer", "avlab")
    ch = desc.append_child("channels").append_child("channel")
    ch.append_child_value("label", "frame")
    ch.append_child_value("unit", "index")
    ch.append_child_value("type", "FrameIndex")
    cam = desc.append_child("camera")
    cam.append_child_value("width", str(width))
    cam.append_child_value("height", str(height))
    cam.append_child_value("file", file)
    cam.append_child_value("source", source)
    cam.append_child_value("latency_s", f"{latency_s:.6f}")
    return info


class CameraRecorder:
    """Record a camera (or a video file, paced) to MP4 with per-frame LSL times.

    Parameters
    ----------
    source : int or str
        Camera index (``/dev/videoN``), a device path or URL, or a video file.
    out_path : Path
        MP4 file to write.
    stream_name : str
        Name of the LSL stream of frame times.
    fps : float, optional
        Requested frame rate, Hz (default: what the capture reports, else 30).
    size : tuple of (int, int), optional
        Requested (width, height), pixels; the first frame's size is used.
    latency_s : float
        Constant subtracted from each grab time, s (see module docstring).
    source_id : str, optional
        LSL source_id (default derived from the stream name and source).
    overwrite : bool
        Replace an existing ``out_path``.
    capture_factory : callable, optional
        Builds the capture from ``source`` (default ``cv2.VideoCapture``);
        for tests of hardware-only failure paths.
    """

    def __init__(
        self,
        source: int | str,
        out_path: Path,
        *,
        stream_name: str,
        fps: float | None = None,
        size: tuple[int, int] | None = None,
        latency_s: float = 0.0,
        source_id: str | None = None,
        overwrite: bool = False,
        capture_factory: Callable[[int | str], Any] | None = None,
    ) -> None:
        self.source = source
        self.out_path = Path(out_path)
        self.stream_name = stream_name
        self.fps = fps
        self.size = size
        self.latency_s = latency_s
        digest = hashlib.sha1(f"{stream_name}|{source}".encode()).hexdigest()[:12]
        self.source_id = source_id or f"avlab-camera-{digest}"
        self.overwrite = overwrite
        self._factory = capture_factory
        self._is_file = isinstance(source, str) and Path(source).is_file()
        self._cap: Any = None
        self._writer: Any = None
        self._outlet: pylsl.StreamOutlet | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._first_frame: np.ndarray | None = None
        self.n_frames = 0
        self.dropped = 0
        self.error: str | None = None
        self._t_first = self._t_last = 0.0
        self._width = self._height = 0

    @property
    def name(self) -> str:
        """Human-readable name of the camera, for messages."""
        return _describe(self.source)

    def start(self, *, wait_for_consumer_s: float = 0.0) -> CameraRecorder:
        """Open the camera, the MP4 and the LSL outlet; start the grab thread.

        Parameters
        ----------
        wait_for_consumer_s : float
            Wait up to this long (s) for an inlet (the recorder) to connect
            before the first frame, so that MP4 frame ``k`` is the recorder's
            sample ``k`` (LSL does not replay samples pushed before an inlet
            connects). 0: start at once.

        Returns
        -------
        self : CameraRecorder

        Raises
        ------
        CameraError
            The camera cannot be opened or gives no first frame.
        OutputError
            The MP4 exists (without ``overwrite``) or cannot be written.
        """
        import cv2

        if self.out_path.exists() and not self.overwrite:
            raise OutputError(
                f'"{self.out_path}" already exists.', "Pass overwrite=True or another path."
            )
        factory = self._factory or cv2.VideoCapture
        cap = factory(self.source)
        if not cap.isOpened():
            raise CameraError(
                f"cannot open {self.name}.",
                "Check that it is connected, not used by another program, and that the "
                "index or path is right (`avlab devices` lists cameras).",
            )
        if self.size is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        if self.fps is not None and not self._is_file:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        fps = float(self.fps or cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if fps > 0 else 30.0
        ok, frame = cap.read()
        if not ok or frame is None:
            cap.release()
            raise CameraError(
                f"{self.name} opened but delivered no frame.",
                "Check the camera's format and resolution, or unplug and re-plug it.",
            )
        self._first_frame = frame
        self._height, self._width = int(frame.shape[0]), int(frame.shape[1])
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        writer = cv2.VideoWriter(str(self.out_path), fourcc, self.fps, (self._width, self._height))
        if not writer.isOpened():
            cap.release()
            raise OutputError(
                f'cannot write the video "{self.out_path}".',
                "Check that the folder is writable and OpenCV has FFmpeg (mp4v).",
            )
        self._cap, self._writer = cap, writer
        self._outlet = self._make_outlet()
        if wait_for_consumer_s > 0 and not self._outlet.wait_for_consumers(wait_for_consumer_s):
            logger.warning(
                "%s: no consumer of %s yet; recording anyway", self.name, self.stream_name
            )
        self._thread = threading.Thread(
            target=self._run, name=f"avlab-camera-{self.stream_name}", daemon=True
        )
        self._thread.start()
        logger.info("recording %s to %s at %.2f fps", self.name, self.out_path, self.fps)
        return self

    def _grab_time(self) -> float:
        import pylsl

        return pylsl.local_clock() - self.latency_s

    def _make_outlet(self) -> pylsl.StreamOutlet:
        import pylsl

        info = camera_stream_info(
            self.stream_name, self.source_id, fps=float(self.fps or 0.0), width=self._width,
            height=self._height, file=self.out_path.name, source=str(self.source),
            latency_s=self.latency_s,
        )  # fmt: skip
        return pylsl.StreamOutlet(info, chunk_size=1, max_buffered=360)

    def _emit(self, frame: np.ndarray, t: float) -> None:
        import cv2

        if frame.shape[0] != self._height or frame.shape[1] != self._width:
            frame = cv2.resize(frame, (self._width, self._height))
        self._writer.write(frame)
        assert self._outlet is not None
        self._outlet.push_sample([self.n_frames], t)
        if self.n_frames == 0:
            self._t_first = t
        else:
            gap = (t - self._t_last) * float(self.fps or 30.0)
            if gap > 1.5:
                self.dropped += int(round(gap)) - 1
        self.n_frames += 1
        self._t_last = t

    def _run(self) -> None:
        period = 1.0 / float(self.fps or 30.0)
        if self._is_file:  # the frame read in start() is frame 0 of the file
            assert self._first_frame is not None
            self._t_first = self._grab_time()
            self._emit(self._first_frame, self._t_first)
        else:  # that frame was only a check; drop frames queued in the driver since
            self._flush(period)
        self._first_frame = None
        t0 = time.perf_counter()
        last_ok = time.perf_counter()
        try:
            while not self._stop.is_set():
                if self._is_file:  # pace a file at its frame rate
                    wait = t0 + self.n_frames * period - time.perf_counter()
                    if wait > 0 and self._stop.wait(wait):
                        break
                ok = self._cap.grab()
                t = self._grab_time()
                if ok:
                    ok, frame = self._cap.retrieve()
                if not ok:
                    if self._is_file:
                        logger.info("%s: end of file after %d frames", self.name, self.n_frames)
                        break
                    if time.perf_counter() - last_ok > _LOST_AFTER_S:
                        self.error = (
                            f"{self.name} delivered no frame for {_LOST_AFTER_S:.1f} s "
                            f"after {self.n_frames} frames."
                        )
                        logger.error("%s", self.error)
                        break
                    time.sleep(0.005)
                    continue
                last_ok = time.perf_counter()
                self._emit(frame, t)
        except Exception as exc:  # noqa: BLE001 - OpenCV raises cv2.error and others
            self.error = f"{self.name} failed after {self.n_frames} frames: {exc}."
            logger.exception("camera thread failed")

    def _flush(self, period: float) -> None:
        """Grab until a grab blocks (the driver's queue is empty), at most 10 frames."""
        for _ in range(10):
            t = time.perf_counter()
            if not self._cap.grab() or time.perf_counter() - t > 0.3 * period:
                return

    @property
    def running(self) -> bool:
        """Whether the grab thread is alive (False after a lost camera or end of file)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> CameraResult:
        """Stop grabbing, close the MP4 and the outlet.

        Returns
        -------
        result : CameraResult

        Raises
        ------
        CameraLostError
            The camera stopped delivering frames during the recording (the MP4
            is closed and keeps what was recorded; ``exc.result`` has it).
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._writer is not None:
            self._writer.release()
        if self._cap is not None:
            self._cap.release()
        self._outlet = None
        if self._writer is not None:
            logger.info("wrote %s (%d frames)", self.out_path, self.n_frames)
        self._writer = self._cap = None
        result = CameraResult(
            n_frames=self.n_frames,
            dropped=self.dropped,
            path=self.out_path,
            width=self._width,
            height=self._height,
            fps=float(self.fps or 0.0),
            duration_s=max(0.0, self._t_last - self._t_first),
        )
        if self.error is not None:
            raise CameraLostError(
                self.error,
                "Check the cable and power of the camera; the video up to the loss is kept.",
                result=result,
            )
        return result

    def __enter__(self) -> CameraRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self.stop()
