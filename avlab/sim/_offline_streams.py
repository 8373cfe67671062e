"""Streams of the offline simulator: their descriptions, clocks and block-wise recording.

Private to :mod:`avlab.sim.offline`. :class:`Recording` generates every stream of a
:class:`~avlab.sim.lab.SimLab` (in paradigm mode) block by block from the
presenter's markers and appends it to a :class:`~avlab.record.writer.SessionWriter`
as the recorder would: the samples an open inlet would have received, their source
time stamps (:class:`~avlab.sim.truth.StreamClock`), the chunks and the clock offsets
it would have measured. :class:`SceneVideo` writes a scene camera's MP4 and frame
times as :mod:`avlab.devices.camera` does.
"""

from __future__ import annotations

import hashlib
import math
import queue
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avlab._logging import logger
from avlab.errors import OutputError
from avlab.protocol.plan import TrialPlan
from avlab.record.writer import SessionWriter, StreamSpec
from avlab.sim.lab import SimLab
from avlab.sim.participant import Paradigm
from avlab.sim.presentation import Marker
from avlab.sim.truth import Segment, StreamClock

__all__ = [
    "MARKER_STREAM",
    "T_RECORDER_S",
    "Ids",
    "NumpyFFT",
    "OfflineStream",
    "Prefetch",
    "Recording",
    "SceneVideo",
    "lab_streams",
    "marker_stream",
]

#: Recorder's LSL clock when the session file is created (``created_lsl``), s.
T_RECORDER_S = 10_000.0
#: Name of the presenter's marker stream.
MARKER_STREAM = "avlab-Presenter"
_INLET_LEAD_S = 0.3  # inlets open (first samples kept) this long before the file
_CLOCK_INTERVAL_S = 2.02  # clock-offset rounds, s (2 s + the measurements' own time)
_PIECE_S = 1.0  # the recorder writes at most its 1-s buffer at a time
_FLUSH_S = 60.0  # session.h5 flushed this often (of recording), s
_SCENE = "scene"


@dataclass
class OfflineStream:
    """One recorded stream: how it is generated and which samples are recorded."""

    name: str
    spec: StreamSpec
    clock: StreamClock | None = None  # None: the presenter's markers (recorder clock)
    generate: Callable[[np.ndarray], np.ndarray] | None = None
    first: int = 0  # first recorded sample index
    stop: int = 0  # samples generated (and recorded up to), exclusive
    next: int = 0  # next sample to generate
    offset_s: float = 0.0  # clock offset the recorder measures (lsl_time_correction)
    frames: bool = False  # the data are the sample indices (a camera's frame numbers)

    def index_at(self, t_true: float) -> int:
        """Index of the first sample at or after true time ``t_true``."""
        assert self.clock is not None
        seg = self.clock.segments[0]
        return max(0, math.ceil((t_true - seg.t0_true) * self.clock.true_srate - 1e-9))


# -- stream descriptions -------------------------------------------------------------------
def _xml(info: object, *, created_at: float, uid: str, hostname: str, port: int) -> str:
    """Return the full stream XML as an inlet gets it (header filled in as by an outlet)."""
    xml = info.as_xml()  # type: ignore[attr-defined]
    decimals = max(16 - len(str(int(created_at))), 1)
    fields = {"created_at": f"{created_at:.{decimals}f}", "uid": uid, "session_id": "default",
              "hostname": hostname, "v4data_port": str(port),
              "v4service_port": str(port + 1)}  # fmt: skip
    for tag, value in fields.items():
        xml = re.sub(rf"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", xml, count=1)
    return xml.replace("<v4address></v4address>", "<v4address />").replace(
        "<v6address></v6address>", "<v6address />"
    )


class Ids:
    """Deterministic uids and ports (a seed gives the same folder)."""

    def __init__(self, seed: int, participant: str, session: str) -> None:
        digest = hashlib.sha256(f"{seed}|{participant}|{session}".encode()).digest()
        self.rng = np.random.default_rng(list(digest[:16]))
        self.port = 16572

    def uid(self) -> str:
        return str(uuid.UUID(bytes=self.rng.bytes(16), version=4))

    def hex(self, n: int) -> str:
        return self.rng.bytes(n).hex()[:n]

    def next_port(self) -> int:
        self.port += 2
        return self.port


def lab_streams(lab: SimLab, ids: Ids, host: str, truth_file: Path) -> list[OfflineStream]:
    from avlab.sim.outlets import make_info

    out = []
    cfg = lab.config
    for spec, clock, gen in lab._streams():  # the live lab's stream table (same package)
        if clock is None or gen is None:
            continue
        if spec.kind == "Gaze" and cfg.gaze.stamping == "device":  # the Neon's time echo
            port = cfg.gaze.echo_port or 40000 + int(ids.rng.integers(20000))
            spec.extra = {"time_echo": {"host": cfg.gaze.echo_host, "port": str(port)},
                          **spec.extra}  # fmt: skip
        info = make_info(spec, run_id=lab.run_id, truth_file=str(truth_file))
        uid = ids.uid()
        xml = _xml(info, created_at=lab.t_start + cfg.host_offset_s, uid=uid, hostname=host,
                   port=ids.next_port())  # fmt: skip
        echo = "time_echo" in spec.extra
        wspec = StreamSpec(
            name=spec.name, type=spec.type, channel_count=len(spec.channels),
            nominal_srate=spec.srate, channel_format=spec.fmt, source_id=spec.sid,
            hostname=host, uid=uid, info_xml=xml,
            clock_method="time_echo" if echo else "lsl_time_correction",
            channel_labels=[c[0] for c in spec.channels],
        )  # fmt: skip
        out.append(OfflineStream(spec.name, wspec, clock, gen, offset_s=-cfg.host_offset_s))
    return out


def marker_stream(ids: Ids, host: str, t_open: float) -> OfflineStream:
    """Describe the presenter's marker stream as ``MarkerOutlet`` (avlab.present) does."""
    from avlab.present.markers import marker_stream_info

    sid = f"avlab-presenter-{ids.hex(8)}"
    info = marker_stream_info(MARKER_STREAM, sid)
    uid = ids.uid()
    xml = _xml(info, created_at=t_open, uid=uid, hostname=host, port=ids.next_port())
    spec = StreamSpec(name=MARKER_STREAM, type="Markers", channel_count=1, nominal_srate=0.0,
                      channel_format="string", source_id=sid, hostname=host, uid=uid,
                      info_xml=xml, channel_labels=["event"])  # fmt: skip
    return OfflineStream(MARKER_STREAM, spec)


# -- the scene camera (video=True) ----------------------------------------------------------
class SceneVideo:
    """``camera-scene.mp4`` and its frame-time stream, as :mod:`avlab.devices.camera` writes them.

    Frames are encoded in a thread (OpenCV releases the GIL) from 120 cached
    backgrounds of :func:`avlab.sim.camera.render_frame` with each frame's index
    in the bar code.
    """

    def __init__(self, folder: Path, width: int, height: int, fps: float, seed: int) -> None:
        import cv2

        from avlab.sim.camera import render_frame

        self.path = folder / f"camera-{_SCENE}.mp4"
        self.width, self.height, self.fps = width, height, fps
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                      (width, height))  # fmt: skip
        if not self.writer.isOpened():
            raise OutputError(
                f'cannot write the video "{self.path}".',
                "Check that the folder is writable and OpenCV has FFmpeg (mp4v).",
            )
        self._bases = [np.ascontiguousarray(render_frame(i, width=width, height=height)[..., ::-1])
                       for i in range(120)]  # fmt: skip
        self._rng = np.random.default_rng([seed, 0xCA3])
        self._queue: queue.Queue[tuple[int, int] | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="avlab-offline-video", daemon=True)
        self._thread.start()
        self.n_frames = 0

    def _run(self) -> None:
        from avlab.sim.camera import draw_frame_index

        while (job := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drained until close()
            try:
                for i in range(*job):
                    self.writer.write(draw_frame_index(self._bases[i % 120].copy(), i))
            except Exception as exc:  # reported by frames() and close()
                self._error = exc

    def frames(self, start: int, stop: int) -> None:
        """Queue frames ``start`` to ``stop - 1`` for encoding."""
        if self._error is not None:
            raise OutputError(f"writing {self.path} failed: {self._error}.") from self._error
        if stop > start:
            self._queue.put((start, stop))
            self.n_frames = stop

    def close(self) -> None:
        """Finish encoding and close the MP4."""
        self._queue.put(None)
        self._thread.join()
        self.writer.release()
        if self._error is not None:
            raise OutputError(f"writing {self.path} failed: {self._error}.") from self._error
        logger.info("wrote %s (%d frames)", self.path, self.n_frames)

    def stream(self, ids: Ids, host: str, t0: float) -> OfflineStream:
        """Return the frame-time stream (``avlab-camera-scene``, VideoFrames) and its clock."""
        from avlab.devices.camera import camera_stream_info

        name = f"avlab-camera-{_SCENE}"
        sid = f"avlab-camera-{hashlib.sha1(f'{name}|sim'.encode()).hexdigest()[:12]}"
        info = camera_stream_info(name, sid, fps=float(self.fps), width=self.width,
                                  height=self.height, file=self.path.name, source="sim",
                                  latency_s=0.0)  # fmt: skip
        uid = ids.uid()
        xml = _xml(info, created_at=t0 - 0.1, uid=uid, hostname=host, port=ids.next_port())
        spec = StreamSpec(name=name, type="VideoFrames", channel_count=1,
                          nominal_srate=float(self.fps), channel_format="int32", source_id=sid,
                          hostname=host, uid=uid, info_xml=xml,
                          channel_labels=["frame"])  # fmt: skip
        # grabbed on this host at a camera rate a little off nominal, stamped with ~1 ms
        # scheduling jitter: modelled as "arrival" stamping with one frame per chunk
        clock = StreamClock(name=name, nominal_srate=float(self.fps), stamping="arrival",
                            rate_ppm=-30.0, chunk_size=1, jitter_sd_s=0.0005,
                            latency_s=0.002, seed=int(self._rng.integers(2**31)),
                            segments=[Segment(first_index=0, t0_true=t0)])  # fmt: skip
        return OfflineStream(name, spec, clock, frames=True)


# -- the recording ---------------------------------------------------------------------------
class NumpyFFT:
    """A ``scipy.fft`` backend that runs ``numpy.fft`` (same transforms, rounding aside).

    The simulated participant takes each stimulus's envelope with
    ``scipy.signal.hilbert`` over the whole file. scipy's pocketfft keeps a plan
    per transform length (up to 16), 100-250 MB each for a 40-s stimulus at
    48 kHz, which would hold gigabytes over a long session; numpy's keeps none.
    """

    __ua_domain__ = "numpy.scipy.fft"

    @staticmethod
    def __ua_function__(method: Callable, args: tuple, kwargs: dict) -> object:
        fn = getattr(np.fft, getattr(method, "__name__", ""), None)
        if fn is None or len(args) > 4:
            return NotImplemented  # scipy's own backend takes it
        return fn(*args, **{k: v for k, v in kwargs.items() if k in ("n", "axis", "norm")})


class Prefetch(threading.Thread):
    """Decodes the stimuli in the order the trials play them, ahead of the trials."""

    def __init__(self, paradigm: Paradigm | None, trials: list[TrialPlan]) -> None:
        super().__init__(name="avlab-offline-stimuli", daemon=True)
        self.paradigm = paradigm
        self.ready: dict[str, threading.Event] = {}
        for t in trials if paradigm is not None else []:
            for p in t.talkers[:2]:  # the simulated participant hears two talkers at most
                self.ready.setdefault(p.stim_id, threading.Event())
        self.stopping = threading.Event()

    def run(self) -> None:
        import scipy.fft

        with scipy.fft.set_backend(NumpyFFT()):
            for sid, done in self.ready.items():
                if self.stopping.is_set() or self.paradigm is None:
                    break
                self.paradigm.preload(sid)
                done.set()

    def stop(self) -> None:
        """Stop after the stimulus being decoded."""
        self.stopping.set()
        if self.is_alive():
            self.join()

    def wait(self, stims: list[str]) -> None:
        """Wait until these stimuli are decoded (or the thread ended)."""
        for sid in stims:
            ev = self.ready.get(sid)
            while ev is not None and not ev.wait(0.1) and self.is_alive():
                pass


class Recording:
    """Generates every stream block by block and appends it as the recorder would."""

    def __init__(
        self,
        lab: SimLab,
        writer: SessionWriter,
        streams: list[OfflineStream],
        markers: list[Marker],
        *,
        t_stop: float,
        seed: int,
        video: SceneVideo | None,
        prefetch: Prefetch | None,
    ) -> None:
        self.lab, self.writer, self.streams, self.markers = lab, writer, streams, markers
        self.t_stop, self.video = t_stop, video
        self.t_start = lab.t_start
        self.paradigm = lab.paradigm
        self.emit_delay = lab.emit_delay_s
        self.rng = np.random.default_rng([seed, 0x0FF5])
        self._m = 0  # next marker to feed
        self.prefetch = prefetch
        self._w = 0  # next marker to write
        self._clock_times = self._offset_schedule()
        self._c = 0
        t_first = T_RECORDER_S - _INLET_LEAD_S
        for s in streams:
            if s.clock is None:
                continue
            chunk = s.clock.chunk_size
            s.first = math.ceil(s.index_at(t_first) / chunk) * chunk
            last = s.index_at(t_stop - self.emit_delay)  # emitted emit_delay after their time
            s.stop = max(s.first, last // chunk * chunk)

    def _offset_schedule(self) -> np.ndarray:
        n = int((self.t_stop - T_RECORDER_S) // _CLOCK_INTERVAL_S) + 1
        return np.append(T_RECORDER_S + 0.05 + _CLOCK_INTERVAL_S * np.arange(n), self.t_stop)

    # -- markers ------------------------------------------------------------------
    def _feed(self, until: float) -> None:
        """Let the simulated participant hear/see the markers before ``until``."""
        import scipy.fft

        while self._m < len(self.markers) and self.markers[self._m].t < until:
            m = self.markers[self._m]
            if self.paradigm is not None:
                if self.prefetch is not None and m.event == "trial_start":
                    self.prefetch.wait(list(m.fields.get("stims") or []))
                with scipy.fft.set_backend(NumpyFFT()):  # decoding a stimulus: see NumpyFFT
                    self.paradigm.on_marker(m.as_dict(), m.t - self.t_start)
            self._m += 1

    def _write_markers(self, k: int, until: float) -> None:
        while self._w < len(self.markers) and self.markers[self._w].t < until:
            m = self.markers[self._w]
            self.writer.append_samples(k, np.array([[m.value]], dtype=object), np.array([m.t]),
                                       m.t + 0.3)  # fmt: skip
            self._w += 1

    # -- sample streams -------------------------------------------------------------
    def _emit(self, k: int, s: OfflineStream, hi: int) -> None:
        lo, hi = s.next, min(hi, s.stop)
        if hi <= lo:
            return
        clock = s.clock
        assert clock is not None
        idx = np.arange(lo, hi)
        true = clock.true_times(idx)
        if s.frames:
            data = idx.astype(np.int32)[:, None]
            if self.video is not None:
                self.video.frames(lo, hi)
        else:
            assert s.generate is not None
            data = s.generate(true - self.t_start)
        s.next = hi
        if hi <= s.first:
            return
        if lo < s.first:  # the inlet was not open yet: generated and lost, as in a real run
            data, true, idx = data[s.first - lo :], true[s.first - lo :], idx[s.first - lo :]
        if clock.stamping == "source":  # StreamClock.source_stamps, without recomputing times
            stamps = true + clock.host_offset_s
        elif clock.stamping == "device":
            stamps = np.asarray(clock.device_time(true))
        else:
            stamps = clock.source_stamps(idx)
        step = max(1, int(_PIECE_S * clock.nominal_srate))
        for a in range(0, idx.size, step):
            b = min(a + step, idx.size)
            self.writer.append_samples(k, data[a:b], stamps[a:b],
                                       float(true[b - 1]) + self.emit_delay + 0.25)  # fmt: skip

    def _offsets(self, until: float) -> None:
        while self._c < self._clock_times.size and self._clock_times[self._c] < until:
            t = float(self._clock_times[self._c])
            for k, s in enumerate(self.streams):
                t_rec = t + 0.002 * k
                if s.spec.clock_method == "time_echo":
                    assert s.clock is not None
                    off = t_rec - float(s.clock.device_time(t_rec)) + self.rng.normal(0, 80e-6)
                else:
                    off = s.offset_s + self.rng.normal(0.0, 6e-6)
                self.writer.append_clock_offset(k, t_rec, off)
            self._c += 1

    def run(self, block_s: float, progress: Callable[[float, float], None] | None) -> None:
        """Generate and write everything, block by block."""
        markers_k = next((k for k, s in enumerate(self.streams) if s.clock is None), None)
        gaze_k = next((k for k, s in enumerate(self.streams) if s.spec.type == "Gaze"), None)
        total = self.t_stop - T_RECORDER_S
        b0 = last_flush = self.t_start
        while b0 < self.t_stop:
            b1 = min(b0 + block_s, self.t_stop)
            if gaze_k is not None:  # gaze plans its fixations as markers arrive
                g = self.streams[gaze_k]
                while self._m < len(self.markers) and self.markers[self._m].t < b1:
                    self._emit(gaze_k, g, g.index_at(self.markers[self._m].t))
                    self._feed(self.markers[self._m].t + 1e-9)
                self._emit(gaze_k, g, g.index_at(b1))
            self._feed(b1)
            for k, s in enumerate(self.streams):
                if s.clock is not None and k != gaze_k:
                    self._emit(k, s, s.index_at(b1))
            if markers_k is not None:
                self._write_markers(markers_k, b1)
            self._offsets(b1)
            if b1 - last_flush >= _FLUSH_S:
                self.writer.flush()
                last_flush = b1
            if self.paradigm is not None:
                self.paradigm.forget(b1 - self.t_start - 2.0)  # lab time, as the onsets
            if progress is not None:
                progress(max(0.0, b1 - T_RECORDER_S), total)
            b0 = b1
        for k, s in enumerate(self.streams):  # the last samples up to the stop index
            if s.clock is not None:
                self._emit(k, s, s.stop)
        if markers_k is not None:
            self._write_markers(markers_k, math.inf)
        self._offsets(math.inf)
