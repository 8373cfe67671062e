"""The LSL recorder: streams in, one crash-safe session folder out.

Design, for low CPU and zero loss:

* one ``StreamInlet`` per stream with a generous ``max_buflen`` (liblsl buffers
  while the recorder writes), pulled without blocking every ``poll_s``;
* numeric samples are pulled by liblsl directly into preallocated numpy
  buffers; a single thread does all pulling and all HDF5 I/O, writing each
  stream's buffered block and flushing every ``write_s`` (< 1 s, the crash
  loss bound);
* clock offsets are measured in a background thread and queued.
"""

from __future__ import annotations

import errno
import shutil
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pylsl
from pydantic import BaseModel, ConfigDict

from avlab import _format as fmt
from avlab._logging import logger
from avlab.devices.lsl import describe_info, parse_desc
from avlab.errors import OutputError
from avlab.record.clock import ClockCollector, ClockSource
from avlab.record.inlets import StreamReader
from avlab.record.resolve import resolve_requested
from avlab.record.writer import SessionWriter, StreamSpec, check_output_parent

__all__ = ["RecordSummary", "Recorder", "StreamStatus", "record"]

#: liblsl buffer per inlet, in seconds (pre-sizes its queue; LabRecorder uses 360).
MAX_BUFLEN_S = 30


class StreamStatus(BaseModel):
    """Live state of one recorded stream.

    ``effective_rate`` in Hz, ``lag_s`` = recorder now − corrected time of the
    last sample, in seconds (NaN before the first sample or offset).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    key: str
    samples: int
    effective_rate: float
    nominal_srate: float
    lag_s: float
    gaps: int
    stalled: bool


class RecordSummary(BaseModel):
    """What a recording produced."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    status: str
    duration_s: float
    streams: list[StreamStatus]


def _session_name(participant: str, session: str) -> str:
    stamp = datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    parts = [f"sub-{participant}" if participant else "", f"ses-{session}" if session else ""]
    return "_".join([p for p in parts if p] + [stamp])


class Recorder:
    """Records resolved LSL streams into a session folder.

    Parameters
    ----------
    infos : list of pylsl.StreamInfo
        Resolved streams (see :func:`avlab.record.resolve.resolve_requested`).
    folder : Path
        Session folder to create (its parent must exist and be writable).
    participant, session : str
        Root attributes.
    poll_s : float
        Seconds between pulls.
    write_s : float
        Seconds between writes + flushes (the crash-loss bound; < 1).
    clock_interval_s : float
        Seconds between clock-offset measurements.
    exist_ok : bool
        Accept an existing session folder without a ``session.h5``.
    """

    def __init__(
        self,
        infos: list[pylsl.StreamInfo],
        folder: Path,
        *,
        participant: str = "",
        session: str = "",
        poll_s: float = 0.5,
        write_s: float = 0.45,
        clock_interval_s: float = 2.0,
        exist_ok: bool = False,
    ) -> None:
        self.poll_s = poll_s
        self.write_s = write_s
        self.readers: list[StreamReader] = []
        self.truth_files: list[Path] = []
        clock_sources: list[ClockSource] = []
        specs: list[StreamSpec] = []
        for info in infos:
            inlet = pylsl.StreamInlet(info, max_buflen=MAX_BUFLEN_S, recover=True)
            inlet.open_stream(timeout=5.0)
            full = inlet.info(timeout=5.0)
            xml = full.as_xml()
            desc = parse_desc(xml)
            d = describe_info(full)
            echo = None
            if "time_echo_host" in desc:
                echo = (str(desc["time_echo_host"]), int(str(desc["time_echo_port"])))
            if "truth_file" in desc:
                self.truth_files.append(Path(str(desc["truth_file"])))
            spec = StreamSpec(
                **d.model_dump(),
                info_xml=xml,
                clock_method="time_echo" if echo else "lsl_time_correction",
                channel_labels=list(desc["channel_labels"]),
            )
            specs.append(spec)
            clock_sources.append(ClockSource(inlet, echo))
            self.readers.append(StreamReader(inlet, spec))
        self.writer = SessionWriter(
            folder, specs, participant=participant, session=session, exist_ok=exist_ok
        )
        self.log = self.writer.log
        self.clock = ClockCollector(
            clock_sources,
            interval_s=clock_interval_s,
            on_error=lambda i, m: self.log.write("clock", m, level="warning", stream=specs[i].name),
        )
        self.status = fmt.STATUS_RECORDING
        self.error: OutputError | None = None
        self._t0 = pylsl.local_clock()
        self._last_offset = [float("nan")] * len(specs)

    # -- the loop ----------------------------------------------------------------

    def run(
        self,
        *,
        duration: float | None = None,
        stop_event: threading.Event | None = None,
        status_callback: Callable[[list[StreamStatus]], None] | None = None,
        status_interval_s: float = 0.5,
    ) -> RecordSummary:
        """Record until ``duration`` elapses or ``stop_event`` is set.

        Returns
        -------
        summary : RecordSummary
        """
        stop_event = stop_event or threading.Event()
        for r in self.readers:
            self.log.write(
                "stream",
                f"recording {r.spec.name!r} ({r.spec.type}, {r.spec.channel_count} ch, "
                f"{r.spec.nominal_srate:g} Hz, {r.spec.channel_format}, "
                f"source_id {r.spec.source_id!r}, clock {r.spec.clock_method})",
                stream=r.spec.name,
            )
        self._copy_truth()
        self.clock.measure_all()
        self.clock.start()
        self._t0 = pylsl.local_clock()
        self.log.write("start", f"recording to {self.writer.folder}")
        last_write = last_status = self._t0
        try:
            while True:
                now = pylsl.local_clock()
                stopping = stop_event.is_set() or (
                    duration is not None and now - self._t0 >= duration
                )
                self._pull_all(now)
                if stopping:
                    break
                if now - last_write >= self.write_s:
                    self._write_all(now)
                    last_write = now
                if status_callback is not None and now - last_status >= status_interval_s:
                    status_callback(self.stream_status(now))
                    last_status = now
                stop_event.wait(self.poll_s)
            self._drain()
            self.status = fmt.STATUS_COMPLETE
        except OSError as exc:
            self._on_output_error(exc)
        finally:
            self.clock.stop()
            self._finish()
        summary = RecordSummary(
            path=self.writer.folder,
            status=self.status,
            duration_s=pylsl.local_clock() - self._t0,
            streams=self.stream_status(pylsl.local_clock()),
        )
        if status_callback is not None:
            status_callback(summary.streams)
        if self.error is not None:
            raise self.error
        return summary

    def _pull_all(self, now: float) -> None:
        for i, r in enumerate(self.readers):
            while True:
                if r.pull(now) == 0 and not r.full:
                    break
                if r.full:
                    self._write_stream(i, now)
            change = r.check_stall(now)
            if change is True:
                self.log.write(
                    "stall",
                    f"no data for {r.stall_after_s:g} s after sample {r.n_total}; waiting "
                    "for the source to come back",
                    level="warning",
                    stream=r.spec.name,
                )
            elif change is False:
                self.log.write("resume", f"data resumed at sample {r.n_total}", stream=r.spec.name)

    def _write_stream(self, i: int, now: float) -> None:
        r = self.readers[i]
        data, stamps = r.take()
        self.writer.append_samples(i, data, stamps, now)
        for g in r.pending_gaps:
            self.writer.append_gap(i, g.resume_index, g.before, g.after, now)
            r.gaps += 1
            self.log.write(
                "gap",
                f"time stamps jump by {g.after - g.before:.3f} s before sample "
                f"{g.resume_index} (source times {g.before:.4f} -> {g.after:.4f})",
                level="warning",
                stream=r.spec.name,
            )
        r.pending_gaps.clear()

    def _write_all(self, now: float) -> None:
        for i in range(len(self.readers)):
            self._write_stream(i, now)
        for s in self.clock.drain():
            self.writer.append_clock_offset(s.index, s.recorder_time, s.offset)
            self._last_offset[s.index] = s.offset
        self.writer.flush()

    def _drain(self) -> None:
        """Pull what liblsl still holds (and what is in flight) after a stop."""
        deadline = pylsl.local_clock() + 0.3
        passes = 0
        while True:
            now = pylsl.local_clock()
            passes += 1
            got = 0
            for i, r in enumerate(self.readers):
                while (n := r.pull(now)) or r.full:
                    got += n
                    if r.full:
                        self._write_stream(i, now)
            if now >= deadline or (got == 0 and passes >= 3):
                break
            time.sleep(0.02)
        self.clock.measure_all()
        self._write_all(pylsl.local_clock())

    def _on_output_error(self, exc: OSError) -> None:
        full = exc.errno == errno.ENOSPC or "space" in str(exc).lower()
        try:
            free = shutil.disk_usage(self.writer.folder).free
            full = full or free < 1024 * 1024
        except OSError:
            pass
        self.writer.release_reserve()
        self.status = fmt.STATUS_INCOMPLETE
        what = "the disk is full" if full else f"writing failed ({exc})"
        self.log.write("error", f"recording stopped: {what}", level="error")
        self.error = OutputError(
            f"recording to {self.writer.path} stopped: {what}; the data flushed so far are kept "
            "(status 'incomplete').",
            "Free disk space or record to another directory."
            if full
            else "Check the output directory.",
        )

    def _finish(self) -> None:
        if self.clock.is_alive():
            self.clock.join(timeout=3.0)
        self._copy_truth()
        for r in self.readers:
            self.log.write(
                "summary",
                f"{r.n_total} samples, {r.gaps} gaps, effective rate {r.effective_rate():.4f} Hz",
                stream=r.spec.name,
            )
        self.writer.close(self.status)
        for r in self.readers:
            try:
                r.inlet.close_stream()
            except Exception as exc:  # noqa: BLE001 - closing must not mask errors
                logger.debug("closing inlet failed: %s", exc)

    def _copy_truth(self) -> None:
        for src in self.truth_files[:1]:
            dst = self.writer.folder / fmt.TRUTH_FILE
            try:
                tmp = dst.with_suffix(".tmp")
                shutil.copyfile(src, tmp)
                tmp.replace(dst)
            except OSError as exc:
                self.log.write(
                    "truth", f"could not copy ground truth {src}: {exc}", level="warning"
                )

    def stream_status(self, now: float) -> list[StreamStatus]:
        """Return the per-stream status (samples, effective rate, lag, gaps)."""
        out = []
        for i, r in enumerate(self.readers):
            off = self._last_offset[i]
            lag = now - (r.last_stamp + off) if r.n_total else float("nan")
            out.append(
                StreamStatus(
                    name=r.spec.name,
                    key=self.writer.keys[i],
                    samples=r.n_total,
                    effective_rate=r.effective_rate(),
                    nominal_srate=r.spec.nominal_srate,
                    lag_s=lag,
                    gaps=r.gaps + len(r.pending_gaps),
                    stalled=r.stalled,
                )
            )
        return out


def record(
    out_dir: Path | str,
    *,
    streams: list[str] | None = None,
    duration: float | None = None,
    wait_s: float = 5.0,
    participant: str = "",
    session: str = "",
    status_callback: Callable[[list[StreamStatus]], None] | None = None,
    stop_event: threading.Event | None = None,
) -> RecordSummary:
    """Record LSL streams into a new session folder inside ``out_dir``.

    Parameters
    ----------
    out_dir : Path or str
        Existing, writable directory; the session folder
        ``[sub-P_][ses-S_]YYYY-MM-DDTHH-MM-SS`` is created in it.
    streams : list of str or None
        Stream names or types to record; None records all visible streams.
    duration : float or None
        Seconds to record; None records until ``stop_event``, SIGINT or SIGTERM.
    wait_s : float
        Seconds to wait for the requested streams to appear.
    participant, session : str
        Labels stored in the session and used in the folder name.
    status_callback : callable or None
        Called about twice a second with a list of :class:`StreamStatus`.
    stop_event : threading.Event or None
        Set it to stop the recording.

    Returns
    -------
    summary : RecordSummary

    Raises
    ------
    StreamNotFoundError
        A requested stream is not visible within ``wait_s`` (nothing is written).
    OutputError
        ``out_dir`` is missing or not writable (nothing is written), or writing
        failed mid-run (the session is kept with status ``incomplete``).
    """
    out = Path(out_dir)
    check_output_parent(out)
    infos = resolve_requested(streams, wait_s=wait_s)
    folder = out / _session_name(participant, session)
    rec = Recorder(infos, folder, participant=participant, session=session)
    stop_event = stop_event or threading.Event()
    restore = _install_signal_handlers(stop_event)
    try:
        return rec.run(duration=duration, stop_event=stop_event, status_callback=status_callback)
    finally:
        restore()


def _install_signal_handlers(stop_event: threading.Event) -> Callable[[], None]:
    """Make SIGINT and SIGTERM set ``stop_event`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {}

    def handler(signum: int, frame: object) -> None:
        logger.info("signal %d received, stopping", signum)
        stop_event.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    return restore
