"""Open a session folder and read its streams, markers, truth and log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from avlab import _format as fmt
from avlab._logging import logger
from avlab.errors import AvlabError, SessionError, StreamNotFoundError
from avlab.session.models import MarkerTable, StreamData, StreamInfo
from avlab.sim.truth import SimTruth, load_truth
from avlab.sync import AlignedTimes, align_stream

__all__ = ["Session"]


def _attr(attrs: h5py.AttributeManager, key: str, default: Any = "") -> Any:
    value = attrs.get(key, default)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _labels(raw: Any) -> list[str]:
    if not raw:
        return []
    try:
        labels = json.loads(raw)
    except (TypeError, ValueError):
        return []
    return [str(x) for x in labels] if isinstance(labels, list) else []


def _rows(group: h5py.Group, name: str, width: int) -> np.ndarray:
    if name not in group:
        return np.zeros((0, width))
    return np.asarray(group[name][()], dtype=np.float64).reshape(-1, width)


class Session:
    """A recorded session, opened read-only.

    Use :meth:`open`; close with :meth:`close` or a ``with`` block.

    Parameters
    ----------
    folder : Path
        The session folder.
    h5 : h5py.File
        The open ``session.h5``.
    swmr : bool
        Whether the file was opened in SWMR read mode (left by a crash or
        still being written).
    """

    def __init__(self, folder: Path, h5: h5py.File, *, swmr: bool = False) -> None:
        self.folder = folder
        self.path = folder / fmt.SESSION_FILE
        self._h5 = h5
        self.swmr = swmr
        self._aligned: dict[str, AlignedTimes] = {}
        self._truth: SimTruth | None = None
        self._truth_loaded = False

    # -- opening -----------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> Session:
        """Open a session folder or its ``session.h5``.

        Parameters
        ----------
        path : str | Path
            The session folder, or the ``session.h5`` inside it.

        Returns
        -------
        session : Session

        Raises
        ------
        SessionError
            The file is missing, not HDF5, corrupt or not an avlab session.
        """
        path = Path(path)
        h5_path = path / fmt.SESSION_FILE if path.is_dir() else path
        folder = h5_path.parent
        if not h5_path.is_file():
            raise SessionError(
                f"no session file at {h5_path}.",
                hint="Pass a session folder written by `avlab record` (it holds session.h5).",
            )
        _check_not_truncated(h5_path)
        swmr = False
        try:
            h5 = h5py.File(h5_path, "r")
        except OSError as exc:
            try:
                h5 = h5py.File(h5_path, "r", swmr=True)
            except OSError:
                raise SessionError(
                    f"{h5_path} cannot be read as HDF5 ({exc}).",
                    hint=f"Run `avlab recover {folder}` to repair it, or check that the "
                    "path is an avlab session.",
                ) from exc
            swmr = True
            logger.warning(
                "%s was not closed (the recorder crashed or is still running); opened "
                "read-only in SWMR mode. Run `avlab recover %s` to repair it.",
                h5_path,
                folder,
            )
        if fmt.STREAMS_GROUP not in h5:
            h5.close()
            raise SessionError(
                f"{h5_path} is not an avlab session (no /{fmt.STREAMS_GROUP} group).",
                hint="Record with `avlab record`, or convert XDF with `avlab import-xdf`.",
            )
        status = _attr(h5.attrs, "status", "")
        if status == fmt.STATUS_RECORDING and not swmr:
            logger.warning(
                "%s has status 'recording': the recorder did not finish. "
                "Run `avlab recover %s` to repair it.",
                h5_path,
                folder,
            )
        return cls(folder, h5, swmr=swmr)

    def close(self) -> None:
        """Close the file."""
        self._h5.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- metadata ------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes of ``session.h5`` (see :data:`avlab._format.ROOT_ATTRS`)."""
        return {k: _attr(self._h5.attrs, k) for k in self._h5.attrs}

    @property
    def status(self) -> str:
        """Session status (``recording``, ``complete``, ``incomplete``, ``recovered``)."""
        return str(_attr(self._h5.attrs, "status", "unknown"))

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Turn HDF5 failures while reading ``what`` into a SessionError."""
        try:
            yield
        except AvlabError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise SessionError(
                f"{self.path}: {what} cannot be read, the file is damaged ({exc}).",
                hint=f"Run `avlab recover {self.folder}` to repair it.",
            ) from exc

    def _group(self, key: str) -> h5py.Group:
        with self._reading(f"stream group {key!r}"):
            group = self._h5[fmt.STREAMS_GROUP][key]
            if self.swmr:
                for ds in group.values():
                    if isinstance(ds, h5py.Dataset):
                        ds.refresh()
        return group

    def _info(self, key: str) -> StreamInfo:
        g = self._group(key)
        with self._reading(f"stream {key!r}"):
            return self._info_of(key, g)

    def _info_of(self, key: str, g: h5py.Group) -> StreamInfo:
        a = g.attrs
        n = min(
            (g[d].shape[0] for d in (fmt.DATA, fmt.TIME_STAMPS) if d in g),
            default=0,
        )
        return StreamInfo(
            key=key,
            name=str(_attr(a, "name", key)),
            type=str(_attr(a, "type", "")),
            channel_count=int(_attr(a, "channel_count", 1)),
            nominal_srate=float(_attr(a, "nominal_srate", 0.0)),
            channel_format=str(_attr(a, "channel_format", "float32")),
            source_id=str(_attr(a, "source_id", "")),
            hostname=str(_attr(a, "hostname", "")),
            channel_labels=_labels(_attr(a, "channel_labels", "")),
            n_samples=int(n),
            clock_method=str(_attr(a, "clock_method", "none")),
        )

    @property
    def streams(self) -> list[StreamInfo]:
        """All recorded streams, in file order."""
        with self._reading(f"/{fmt.STREAMS_GROUP}"):
            keys = list(self._h5[fmt.STREAMS_GROUP])
        return [self._info(k) for k in keys]

    def stream(self, name_or_type: str) -> StreamInfo:
        """Find a stream by exact name, else by type.

        Parameters
        ----------
        name_or_type : str
            A stream name, or a stream type that exactly one stream has.

        Returns
        -------
        info : StreamInfo

        Raises
        ------
        StreamNotFoundError
            No stream matches, or several match; the message lists the streams.
        """
        infos = self.streams
        listing = ", ".join(f"{i.name!r} (type {i.type!r})" for i in infos) or "none"
        by_name = [i for i in infos if i.name == name_or_type]
        if len(by_name) == 1:
            return by_name[0]
        by_type = [i for i in infos if i.type == name_or_type] if not by_name else by_name
        if len(by_type) == 1:
            return by_type[0]
        if by_type:
            raise StreamNotFoundError(
                f"{name_or_type!r} is ambiguous in {self.path}: it matches "
                + ", ".join(f"{i.name!r} ({i.key})" for i in by_type)
                + ".",
                hint=f"Use one exact stream name. Streams: {listing}.",
            )
        raise StreamNotFoundError(
            f"no stream named or typed {name_or_type!r} in {self.path}.",
            hint=f"Streams: {listing}.",
        )

    # -- data ------------------------------------------------------------------
    def _raw(self, info: StreamInfo) -> tuple[np.ndarray, np.ndarray]:
        with self._reading(f"data of stream {info.name!r}"):
            return self._raw_of(info)

    def _raw_of(self, info: StreamInfo) -> tuple[np.ndarray, np.ndarray]:
        g = self._group(info.key)
        n = info.n_samples
        stamps = np.asarray(g[fmt.TIME_STAMPS][:n], dtype=np.float64).ravel()
        ds = g[fmt.DATA]
        if info.is_string:
            raw = ds.asstr()[:n] if h5py.check_string_dtype(ds.dtype) else ds[:n]
            data = np.asarray(raw, dtype=object).reshape(n, info.channel_count)
        else:
            data = np.asarray(ds[:n]).reshape(n, info.channel_count)
        return data, stamps

    def _resolve(self, name_or_type: str | StreamInfo) -> StreamInfo:
        return name_or_type if isinstance(name_or_type, StreamInfo) else self.stream(name_or_type)

    def iter_blocks(
        self, name_or_type: str | StreamInfo, rows: int = 60_000
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Read a numeric stream's samples block by block (memory bounded).

        Parameters
        ----------
        name_or_type : str | StreamInfo
            See :meth:`stream`.
        rows : int
            Samples per block.

        Yields
        ------
        start : int
            Index of the block's first sample.
        block : ndarray, shape (n_rows, n_channels)
            Samples in the stream's dtype.
        """
        info = self._resolve(name_or_type)
        ds = self._group(info.key)[fmt.DATA]
        for start in range(0, info.n_samples, rows):
            stop = min(start + rows, info.n_samples)
            with self._reading(f"samples {start}-{stop} of stream {info.name!r}"):
                block = np.asarray(ds[start:stop])
            yield start, block.reshape(stop - start, info.channel_count)

    def aligned_times(self, name_or_type: str | StreamInfo) -> AlignedTimes:
        """Clock fit, dejittering and quality of one stream (cached).

        Parameters
        ----------
        name_or_type : str
            See :meth:`stream`.

        Returns
        -------
        aligned : AlignedTimes
        """
        return self._align(self._resolve(name_or_type))

    def _align(self, info: StreamInfo) -> AlignedTimes:
        if info.key not in self._aligned:
            g = self._group(info.key)
            with self._reading(f"time stamps of stream {info.name!r}"):
                stamps = np.asarray(g[fmt.TIME_STAMPS][: info.n_samples], dtype=np.float64)
                gaps = _rows(g, fmt.GAPS, 4)
                offsets = _rows(g, fmt.CLOCK_OFFSETS, 2)
            gaps = gaps[gaps[:, 0] < info.n_samples]
            self._aligned[info.key] = align_stream(
                stamps,
                offsets,
                info.nominal_srate,
                gaps,
                clock_method=info.clock_method,
            )
        return self._aligned[info.key]

    def _rows_gaps(self, info: StreamInfo) -> np.ndarray:
        return _rows(self._group(info.key), fmt.GAPS, 4)

    def gaps(self, name_or_type: str | StreamInfo) -> np.ndarray:
        """Return the recorded gaps of a stream, shape (n_gaps, 4) (see :mod:`avlab._format`)."""
        return _rows(self._group(self._resolve(name_or_type).key), fmt.GAPS, 4)

    def clock_offsets(self, name_or_type: str | StreamInfo) -> np.ndarray:
        """Return clock offsets of a stream, shape (n, 2): [recorder time, offset] (s)."""
        return _rows(self._group(self._resolve(name_or_type).key), fmt.CLOCK_OFFSETS, 2)

    def read(self, name_or_type: str | StreamInfo, *, aligned: bool = True) -> StreamData:
        """Read one stream.

        Parameters
        ----------
        name_or_type : str
            See :meth:`stream`.
        aligned : bool
            Put times on the recorder's clock (default), or return raw stamps.

        Returns
        -------
        data : StreamData
        """
        return self._read(self._resolve(name_or_type), aligned=aligned)

    def _read(self, info: StreamInfo, *, aligned: bool = True) -> StreamData:
        data, stamps = self._raw(info)
        if not aligned:
            return StreamData(info, data, stamps.copy(), stamps)
        al = self._align(info)
        return StreamData(info, data, al.times, stamps, al.quality)

    def markers(self) -> MarkerTable:
        """All marker streams (string format or type ``Markers``) as one table.

        Returns
        -------
        table : MarkerTable
            Sorted by aligned time; JSON-object values parsed into ``fields``.
        """
        times: list[np.ndarray] = []
        names: list[str] = []
        values: list[str] = []
        for info in self.streams:
            if not (info.is_string or info.type.lower() == "markers"):
                continue
            d = self._read(info)
            times.append(d.times)
            names += [info.name] * d.n_samples
            values += [str(v) for v in d.data[:, 0]] if d.data.shape[1] else [""] * d.n_samples
        t = np.concatenate(times) if times else np.zeros(0)
        order = np.argsort(t, kind="stable")
        names = [names[i] for i in order]
        values = [values[i] for i in order]
        parsed = [_json_object(v) for v in values]
        keys: list[str] = []
        for p in parsed:
            keys += [k for k in p if k not in keys]
        fields = {k: [p.get(k) for p in parsed] for k in keys}
        return MarkerTable(times=t[order], streams=names, values=values, fields=fields)

    @property
    def truth(self) -> SimTruth | None:
        """Ground truth of the simulated lab (``sim_truth.json``), or None."""
        if not self._truth_loaded:
            path = self.folder / fmt.TRUTH_FILE
            self._truth = load_truth(path) if path.is_file() else None
            self._truth_loaded = True
        return self._truth

    def log(self) -> list[dict[str, Any]]:
        """Entries of ``log.jsonl``, in order (a torn last line is skipped).

        Returns
        -------
        entries : list of dict
            One parsed JSON object per line; empty when there is no log.
        """
        path = self.folder / fmt.LOG_FILE
        if not path.is_file():
            return []
        entries = []
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except ValueError:
                logger.debug("%s line %d is not JSON; skipped", path, i)
        return entries


def _check_not_truncated(path: Path) -> None:
    """Refuse a file shorter than the end address its superblock records.

    HDF5 can loop forever on the object headers of a truncated file, so this is
    checked before h5py touches it (superblock versions 2 and 3, which
    ``libver="latest"`` and SWMR writers use; older ones are left to HDF5).
    """
    with path.open("rb") as f:
        head = f.read(48)
    if len(head) < 36 or head[:8] != b"\x89HDF\r\n\x1a\n" or head[8] not in (2, 3):
        return
    if head[9] != 8:  # size of offsets
        return
    eof = int.from_bytes(head[28:36], "little")
    size = path.stat().st_size
    if size < eof:
        raise SessionError(
            f"{path} is truncated: {size} bytes on disk, {eof} recorded in its superblock.",
            hint=f"Run `avlab recover {path.parent}` to repair it.",
        )


def _json_object(value: str) -> dict[str, Any]:
    s = value.strip()
    if not s.startswith("{"):
        return {}
    try:
        obj = json.loads(s)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}
