"""Repair a session whose recorder died (``avlab recover SESSION``).

A recorder killed mid-run leaves ``session.h5`` in SWMR state: readable with
``h5py.File(path, "r", swmr=True)`` but not by a plain open, possibly with
datasets of one stream flushed to slightly different lengths. Recovery copies
everything consistent into a fresh, ordinary HDF5 file (each stream cut to the
samples that have both data and time stamps), marks it ``recovered`` and swaps
it in atomically; the original stays as ``session.h5.crashed`` until the new
file has been verified.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
from pydantic import BaseModel, ConfigDict

from avlab import _format as fmt
from avlab._logging import logger
from avlab.errors import SessionError
from avlab.record.writer import EventLog

__all__ = ["RecoverReport", "RecoveredStream", "recover", "session_file"]

_BLOCK = 1 << 16


class RecoveredStream(BaseModel):
    """What recovery found in one stream; ``duration_s`` from the source stamps."""

    model_config = ConfigDict(extra="forbid")

    key: str
    samples: int
    dropped_rows: int
    duration_s: float
    last_time_stamp: float
    gaps: int
    clock_offsets: int


class RecoverReport(BaseModel):
    """Outcome of :func:`recover`."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    previous_status: str
    status: str
    streams: list[RecoveredStream]


def session_file(session: Path | str) -> Path:
    """Return the ``session.h5`` of a session folder (or the file itself).

    Raises
    ------
    SessionError
        The folder holds no ``session.h5``.
    """
    p = Path(session)
    f = p / fmt.SESSION_FILE if p.is_dir() else p
    if not f.is_file():
        raise SessionError(
            f"{p} is not an avlab session: {f.name} not found.",
            "Pass the session folder written by `avlab record`.",
        )
    return f


def _open_any(path: Path) -> h5py.File:
    for kwargs in ({"swmr": True}, {}):
        try:
            return h5py.File(path, "r", **kwargs)
        except OSError as exc:
            last = exc
    raise SessionError(
        f"cannot open {path}: {last}.",
        "If the writer died before recording started, the file holds no data; "
        "otherwise try `h5clear -s` on it (HDF5 tools) and run recover again.",
    ) from last


def _copy_dataset(src: h5py.Dataset, dst_group: h5py.Group, name: str, n: int) -> None:
    shape = (n, *src.shape[1:])
    chunks = src.chunks or None
    dst = dst_group.create_dataset(
        name,
        shape=shape,
        maxshape=(None, *src.shape[1:]),
        chunks=chunks if chunks else True,
        dtype=src.dtype,
    )
    for a in range(0, n, _BLOCK):
        b = min(n, a + _BLOCK)
        dst[a:b] = src[a:b]
    for k, v in src.attrs.items():
        dst.attrs[k] = v


def _copy_stream(src: h5py.Group, dst: h5py.Group, key: str) -> RecoveredStream:
    for k, v in src.attrs.items():
        dst.attrs[k] = v
    n_data = src[fmt.DATA].shape[0]
    n_ts = src[fmt.TIME_STAMPS].shape[0]
    n = min(n_data, n_ts)
    _copy_dataset(src[fmt.DATA], dst, fmt.DATA, n)
    _copy_dataset(src[fmt.TIME_STAMPS], dst, fmt.TIME_STAMPS, n)
    chunks = src[fmt.CHUNKS][()]
    keep = chunks[:, 0] + chunks[:, 1] <= n if len(chunks) else np.zeros(0, bool)
    n_chunks = int(np.count_nonzero(keep))
    _copy_dataset(src[fmt.CHUNKS], dst, fmt.CHUNKS, n_chunks)
    for name in (fmt.CLOCK_OFFSETS, fmt.GAPS):
        _copy_dataset(src[name], dst, name, src[name].shape[0])
    ts = dst[fmt.TIME_STAMPS]
    return RecoveredStream(
        key=key,
        samples=n,
        dropped_rows=max(n_data, n_ts) - n,
        duration_s=float(ts[n - 1] - ts[0]) if n > 1 else 0.0,
        last_time_stamp=float(ts[n - 1]) if n else float("nan"),
        gaps=int(dst[fmt.GAPS].shape[0]),
        clock_offsets=int(dst[fmt.CLOCK_OFFSETS].shape[0]),
    )


def recover(session: Path | str) -> RecoverReport:
    """Rewrite a crashed session's ``session.h5`` as a clean file.

    Parameters
    ----------
    session : Path or str
        Session folder (or its ``session.h5``).

    Returns
    -------
    report : RecoverReport
        Per stream: samples kept, rows dropped for consistency, duration.

    Raises
    ------
    SessionError
        The file is missing or cannot be opened even in SWMR read mode.
    """
    path = session_file(session)
    tmp = path.with_name(path.name + ".recovering")
    crashed = path.with_name(path.name + ".crashed")
    streams: list[RecoveredStream] = []
    with _open_any(path) as src:
        previous = str(src.attrs.get("status", "unknown"))
        with h5py.File(tmp, "w", libver="latest") as dst:
            for k, v in src.attrs.items():
                dst.attrs[k] = v
            dst.attrs["status"] = fmt.STATUS_RECOVERED
            root = dst.create_group(fmt.STREAMS_GROUP)
            for key, g in src.get(fmt.STREAMS_GROUP, {}).items():
                streams.append(_copy_stream(g, root.create_group(key), key))
    crashed.unlink(missing_ok=True)
    os.link(path, crashed)
    os.replace(tmp, path)
    try:
        with h5py.File(path, "r") as check:
            ok = check.attrs["status"] == fmt.STATUS_RECOVERED
    except OSError as exc:
        raise SessionError(
            f"the recovered {path} does not open ({exc}); the original is kept as {crashed}."
        ) from exc
    if ok:
        crashed.unlink()
    log_path = path.parent / fmt.LOG_FILE
    if log_path.parent.is_dir():
        log = EventLog(log_path)
        log.write(
            "recover",
            f"recovered from status {previous!r}: "
            + ", ".join(f"{s.key}: {s.samples} samples" for s in streams),
        )
        log.close()
    logger.info("recovered %s", path)
    return RecoverReport(
        path=path, previous_status=previous, status=fmt.STATUS_RECOVERED, streams=streams
    )
