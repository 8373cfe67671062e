"""Session folder writer: ``session.h5`` in HDF5 SWMR mode plus ``log.jsonl``.

The writer creates every group and dataset of :mod:`avlab._format` up front
(chunked, resizable), then switches the file to single-writer/multiple-reader
(SWMR) mode and only appends. A file in SWMR mode stays readable after the
writing process dies (``h5py.File(path, "r", swmr=True)``), losing only what was
not flushed; the recorder flushes at least once a second.

All methods must be called from one thread (h5py is not thread-safe).
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from avlab import __version__
from avlab import _format as fmt
from avlab._logging import logger
from avlab.errors import OutputError

__all__ = ["mark_status", "EventLog", "SessionWriter", "StreamSpec", "stream_key"]

#: Bytes kept free in the session folder so that the file can be closed and
#: its status written after the disk fills up.
_RESERVE_BYTES = 256 * 1024
_RESERVE_FILE = ".avlab-reserve"


class StreamSpec(BaseModel):
    """What the writer needs to know about one stream.

    Parameters mirror :data:`avlab._format.STREAM_ATTRS`; ``nominal_srate`` is
    in Hz (0 for irregular streams).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    type: str = ""
    channel_count: int = Field(ge=1)
    nominal_srate: float = Field(ge=0)
    channel_format: str
    source_id: str = ""
    hostname: str = ""
    uid: str = ""
    info_xml: str = ""
    clock_method: str = "lsl_time_correction"
    channel_labels: list[str] = Field(default_factory=list)

    @property
    def is_string(self) -> bool:
        """Whether the stream carries strings."""
        return fmt.LSL_DTYPES.get(self.channel_format, "float32") is None

    @property
    def dtype(self) -> np.dtype:
        """Numpy dtype of the data (object for strings)."""
        name = fmt.LSL_DTYPES.get(self.channel_format)
        if self.channel_format not in fmt.LSL_DTYPES:
            raise ValueError(
                f"stream {self.name!r}: unsupported channel_format {self.channel_format!r}"
            )
        return np.dtype(object) if name is None else np.dtype(name)


def stream_key(name: str, taken: set[str]) -> str:
    """Return a unique HDF5 group name for a stream.

    Parameters
    ----------
    name : str
        The LSL stream name.
    taken : set of str
        Keys already used; the new key is added to it.

    Returns
    -------
    key : str
        ``name`` with ``/`` and leading dots replaced, suffixed ``_2``, ``_3``
        ... when taken.
    """
    base = name.replace("/", "_").lstrip(".") or "stream"
    key, i = base, 1
    while key in taken:
        i += 1
        key = f"{base}_{i}"
    taken.add(key)
    return key


class EventLog:
    """Append-only JSON-lines log of what happened during a session.

    Parameters
    ----------
    path : Path
        The ``log.jsonl`` file (appended to).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - long-lived
        self._dirty = False

    def write(
        self, event: str, message: str, *, level: str = "info", stream: str | None = None
    ) -> None:
        """Append one record (not flushed until :meth:`flush`).

        Parameters
        ----------
        event : str
            Short machine-readable event name (``"start"``, ``"stall"``, ``"gap"`` ...).
        message : str
            Human-readable text.
        level : str
            ``"debug"``, ``"info"``, ``"warning"`` or ``"error"``.
        stream : str or None
            Stream the event concerns.
        """
        from pylsl import local_clock

        rec = {
            "time": local_clock(),
            "wall": datetime.now().astimezone().isoformat(timespec="milliseconds"),
            "level": level,
            "stream": stream,
            "event": event,
            "message": message,
        }
        try:
            self._fh.write(json.dumps(rec) + "\n")
            self._dirty = True
        except OSError as exc:  # a full disk must not take the recording down
            logger.warning("could not write %s: %s", self.path, exc)
        getattr(logger, level if level in ("debug", "warning", "error") else "info")(
            "%s%s", f"[{stream}] " if stream else "", message
        )

    def flush(self) -> None:
        """Flush and fsync the log if anything was written since the last flush."""
        if not self._dirty or self._fh.closed:
            return
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._dirty = False
        except OSError as exc:
            logger.warning("could not flush %s: %s", self.path, exc)

    def close(self) -> None:
        """Flush and close the log."""
        self.flush()
        try:
            self._fh.close()
        except OSError as exc:
            logger.warning("could not close %s: %s", self.path, exc)


class _StreamDatasets:
    """The five datasets of one stream group and their current lengths."""

    def __init__(self, group: h5py.Group) -> None:
        self.data = group[fmt.DATA]
        self.time_stamps = group[fmt.TIME_STAMPS]
        self.clock_offsets = group[fmt.CLOCK_OFFSETS]
        self.chunks = group[fmt.CHUNKS]
        self.gaps = group[fmt.GAPS]
        self.n_samples = int(self.time_stamps.shape[0])


@contextmanager
def _io_errors() -> Iterator[None]:
    """Turn HDF5's RuntimeError on a failed write into ``OSError`` with its errno."""
    try:
        yield
    except RuntimeError as exc:
        m = re.search(r"errno = (\d+)", str(exc))
        code = int(m.group(1)) if m else errno.EIO
        raise OSError(code, f"{os.strerror(code)} ({exc})") from exc


def _append(ds: h5py.Dataset, rows: np.ndarray | list[Any]) -> None:
    n = len(rows)
    if n == 0:
        return
    with _io_errors():
        if ds.dtype.kind == "O":  # variable-length strings: h5py's high-level path
            start = ds.shape[0]
            ds.resize(start + n, axis=0)
            ds[start : start + n] = rows
            return
        # Numeric rows: h5py's low-level calls, about five times cheaper per append
        # than resize + __setitem__ (this runs several times a second per stream).
        arr = np.ascontiguousarray(rows, dtype=ds.dtype)
        dsid = ds.id
        start = dsid.shape[0]
        dsid.set_extent((start + n, *arr.shape[1:]))
        fspace = dsid.get_space()
        fspace.select_hyperslab((start, *(0,) * (arr.ndim - 1)), arr.shape)
        dsid.write(h5py.h5s.create_simple(arr.shape), fspace, arr)


class SessionWriter:
    """Create a session folder and append stream data to its ``session.h5``.

    Parameters
    ----------
    folder : Path
        The session folder; created (its parent must exist and be writable).
    specs : list of StreamSpec
        The streams; one group each under ``/streams``.
    participant, session : str
        Stored as root attributes.
    created_lsl : float or None
        Recorder LSL clock at the start in seconds (``pylsl.local_clock()`` when None).
    swmr : bool
        Switch to SWMR mode after creating the layout (the recorder); False
        writes a plain HDF5 file (the XDF importer).
    exist_ok : bool
        Accept an existing folder (``avlab run`` creates it first for the
        presenter's files) as long as it holds no ``session.h5``.

    Attributes
    ----------
    keys : list of str
        Group name of each spec, in order.
    log : EventLog
        The session's ``log.jsonl``.
    """

    def __init__(
        self,
        folder: Path,
        specs: list[StreamSpec],
        *,
        participant: str = "",
        session: str = "",
        created_lsl: float | None = None,
        swmr: bool = True,
        exist_ok: bool = False,
    ) -> None:
        folder = Path(folder)
        check_output_parent(folder.parent)
        try:
            if exist_ok and (folder / fmt.SESSION_FILE).exists():
                raise FileExistsError(folder / fmt.SESSION_FILE)
            folder.mkdir(exist_ok=exist_ok)
        except FileExistsError as exc:
            raise OutputError(
                f"session folder {folder} already exists.",
                "Choose another output directory or remove the old session.",
            ) from exc
        except OSError as exc:
            raise OutputError(f"cannot create session folder {folder}: {exc}.") from exc
        self.folder = folder
        self.path = folder / fmt.SESSION_FILE
        self.specs = list(specs)
        self.swmr = swmr
        self._reserve = folder / _RESERVE_FILE
        self._closed = False
        try:
            self._reserve.write_bytes(b"\0" * _RESERVE_BYTES)
            self.log = EventLog(folder / fmt.LOG_FILE)
            self._file = h5py.File(self.path, "w", libver="latest")
            self.keys = self._create_layout(participant, session, created_lsl)
            self._file.flush()
            if swmr:
                self._file.swmr_mode = True
        except OSError as exc:
            raise OutputError(f"cannot write session file {self.path}: {exc}.") from exc
        self._ds = [
            _StreamDatasets(self._file[fmt.STREAMS_GROUP][k])  # type: ignore[index]
            for k in self.keys
        ]
        logger.info("writing %s", self.path)

    def _create_layout(
        self, participant: str, session: str, created_lsl: float | None
    ) -> list[str]:
        from pylsl import local_clock

        f = self._file
        f.attrs["format_version"] = fmt.FORMAT_VERSION
        f.attrs["avlab_version"] = __version__
        f.attrs["created"] = datetime.now().astimezone().isoformat(timespec="seconds")
        f.attrs["created_lsl"] = float(local_clock() if created_lsl is None else created_lsl)
        f.attrs["hostname"] = socket.gethostname()
        f.attrs["status"] = fmt.STATUS_RECORDING
        f.attrs["participant"] = participant
        f.attrs["session"] = session
        root = f.create_group(fmt.STREAMS_GROUP)
        taken: set[str] = set()
        keys = []
        for spec in self.specs:
            key = stream_key(spec.name, taken)
            keys.append(key)
            g = root.create_group(key)
            attrs = spec.model_dump()
            attrs["channel_labels"] = json.dumps(spec.channel_labels)
            for name in fmt.STREAM_ATTRS:
                g.attrs[name] = attrs[name]
            rate = spec.nominal_srate or 10.0
            rows = int(min(max(rate, 16), 65536 // max(spec.channel_count, 1) or 1))
            rows = max(rows, 1)
            n_ch = spec.channel_count
            if spec.is_string:
                g.create_dataset(
                    fmt.DATA,
                    shape=(0, n_ch),
                    maxshape=(None, n_ch),
                    chunks=(64, n_ch),
                    dtype=h5py.string_dtype("utf-8"),
                )
            else:
                g.create_dataset(
                    fmt.DATA,
                    shape=(0, n_ch),
                    maxshape=(None, n_ch),
                    chunks=(rows, n_ch),
                    dtype=spec.dtype,
                )
            g.create_dataset(
                fmt.TIME_STAMPS,
                shape=(0,),
                maxshape=(None,),
                chunks=(max(int(rate), 64),),
                dtype="f8",
            )
            for name, width in ((fmt.CLOCK_OFFSETS, 2), (fmt.CHUNKS, 3), (fmt.GAPS, 4)):
                g.create_dataset(
                    name, shape=(0, width), maxshape=(None, width), chunks=(256, width), dtype="f8"
                )
        return keys

    def n_samples(self, index: int) -> int:
        """Return the samples written so far to stream ``index``."""
        return self._ds[index].n_samples

    def append_samples(
        self,
        index: int,
        data: np.ndarray,
        time_stamps: np.ndarray,
        arrival_time: float,
    ) -> None:
        """Append samples of one stream.

        Parameters
        ----------
        index : int
            Position of the stream in ``specs``.
        data : ndarray, shape (n_samples, n_channels)
            Sample values (object array of str for string streams).
        time_stamps : ndarray, shape (n_samples,)
            Source time stamps in seconds.
        arrival_time : float
            Recorder LSL time in seconds when these samples were pulled.
        """
        n = len(time_stamps)
        if n == 0:
            return
        ds = self._ds[index]
        _append(ds.data, data)
        _append(ds.time_stamps, np.asarray(time_stamps, dtype=np.float64))
        _append(ds.chunks, np.array([[ds.n_samples, n, arrival_time]], dtype=np.float64))
        ds.n_samples += n

    def append_clock_offset(self, index: int, recorder_time: float, offset: float) -> None:
        """Append one clock-offset measurement (recorder time = source time + offset), in s."""
        _append(self._ds[index].clock_offsets, np.array([[recorder_time, offset]]))

    def append_gap(
        self,
        index: int,
        resume_index: int,
        before: float,
        after: float,
        detected: float,
    ) -> None:
        """Append one gap row (see :data:`avlab._format.GAPS`); times in seconds."""
        _append(self._ds[index].gaps, np.array([[resume_index, before, after, detected]]))

    def flush(self) -> None:
        """Flush ``session.h5`` and the log to disk."""
        with _io_errors():
            self._file.flush()
        self.log.flush()

    def release_reserve(self) -> None:
        """Free the space kept for closing the file (call when the disk is full)."""
        self._reserve.unlink(missing_ok=True)

    def close(self, status: str) -> None:
        """Close the file and record the final ``status`` root attribute.

        Parameters
        ----------
        status : str
            One of the ``STATUS_*`` values of :mod:`avlab._format`.
        """
        if self._closed:
            return
        self._closed = True
        self._reserve.unlink(missing_ok=True)  # room for the last metadata
        try:
            self._file.close()
        except (OSError, RuntimeError) as exc:
            logger.error("closing %s failed: %s", self.path, exc)
        try:
            with h5py.File(self.path, "r+", libver="latest") as f:
                f.attrs["status"] = status
        except OSError as exc:
            logger.error("could not mark %s as %s: %s", self.path, status, exc)
        self.log.write("close", f"session closed with status {status!r}")
        self.log.close()
        _fsync_dir(self.folder)
        logger.info("wrote %s (status %s)", self.path, status)


def mark_status(folder: Path, status: str, reason: str = "") -> None:
    """Set the ``status`` root attribute of a closed session (e.g. ``incomplete``).

    Parameters
    ----------
    folder : Path
        Session folder.
    status : str
        One of the ``STATUS_*`` values of :mod:`avlab._format`.
    reason : str
        Why, stored as the ``status_reason`` attribute and in the log.
    """
    path = Path(folder) / fmt.SESSION_FILE
    try:
        with h5py.File(path, "r+", libver="latest") as f:
            f.attrs["status"] = status
            f.attrs["status_reason"] = reason
    except OSError as exc:
        raise OutputError(
            f"cannot mark {path} as {status!r}: {exc}.", "Check that the file is writable."
        ) from exc
    log = EventLog(Path(folder) / fmt.LOG_FILE)
    log.write("status", f"session marked {status!r}: {reason}")
    log.close()


def check_output_parent(parent: Path) -> None:
    """Raise :class:`OutputError` unless ``parent`` is an existing writable directory.

    Parameters
    ----------
    parent : Path
        Directory in which the session folder will be created.
    """
    if not parent.is_dir():
        raise OutputError(
            f"output directory {parent} does not exist.",
            f"Create it first (mkdir -p {parent}) or choose another one.",
        )
    probe = parent / f".avlab-write-test-{os.getpid()}-{time.monotonic_ns()}"
    try:
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        raise OutputError(
            f"output directory {parent} is not writable ({exc.strerror}).",
            "Choose a directory you can write to, or fix its permissions.",
        ) from exc


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
