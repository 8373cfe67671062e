"""One LSL inlet per stream, pulled into preallocated buffers; stall and gap detection.

A :class:`StreamReader` is driven by the recorder's single I/O thread: ``pull``
moves whatever liblsl has buffered into numpy memory (numeric streams are pulled
by liblsl straight into the buffer, no Python objects per sample), ``take``
hands the buffered block to the writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pylsl

from avlab.record.writer import StreamSpec

__all__ = ["GapEvent", "StreamReader"]

#: Samples kept in memory per stream before a write is forced, in seconds of data.
_BUFFER_S = 1.0
#: A jump of the source stamps larger than this (s) is a gap even without a stall.
_RESTART_JUMP_S = 0.25


@dataclass
class GapEvent:
    """A jump of the time stamps of a regular stream.

    Attributes
    ----------
    resume_index : int
        Sample index (over the whole stream) of the first sample after the gap.
    before, after : float
        Source time stamps of the samples around the gap, in seconds.
    """

    resume_index: int
    before: float
    after: float


@dataclass
class StreamReader:
    """Pulls one stream into memory and watches it for stalls and gaps.

    Parameters
    ----------
    inlet : pylsl.StreamInlet
        An open inlet (``recover=True``).
    spec : StreamSpec
        The stream's description.
    """

    inlet: pylsl.StreamInlet
    spec: StreamSpec
    n_total: int = 0
    first_stamp: float = float("nan")
    last_stamp: float = float("nan")
    last_data_time: float = 0.0
    stalled: bool = False
    gaps: int = 0
    pending_gaps: list[GapEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        rate = self.spec.nominal_srate
        self.period = 1.0 / rate if rate > 0 else 0.0
        self.stall_after_s = max(1.0, 10.0 * self.period) if rate > 0 else float("inf")
        self.capacity = max(int(rate * _BUFFER_S), 512)
        if self.spec.is_string:
            self._strings: list[list[str]] = []
        else:
            self._data = np.empty((self.capacity, self.spec.channel_count), self.spec.dtype)
        self._stamps = np.empty(self.capacity, np.float64)
        self.n_buffered = 0
        self.last_data_time = pylsl.local_clock()

    @property
    def full(self) -> bool:
        """Whether the buffer has no room left (the caller must ``take``)."""
        return self.n_buffered >= self.capacity

    def pull(self, now: float) -> int:
        """Move available samples from liblsl into the buffer.

        Parameters
        ----------
        now : float
            Recorder LSL time in seconds.

        Returns
        -------
        n : int
            Samples pulled (0 when nothing was available or the buffer is full).
        """
        room = self.capacity - self.n_buffered
        if room <= 0:
            return 0
        start = self.n_buffered
        if self.spec.is_string:
            samples, stamps = self.inlet.pull_chunk(timeout=0.0, max_samples=room)
            n = len(stamps)
            if n:
                self._strings.extend(samples)
                self._stamps[start : start + n] = stamps
        else:
            _, stamps = self.inlet.pull_chunk(
                timeout=0.0, max_samples=room, dest_obj=self._data[start:], as_numpy=True
            )
            n = len(stamps)
            if n:
                self._stamps[start : start + n] = stamps
        if n:
            self._check_gaps(self._stamps[start : start + n])
            self.n_buffered += n
            self.n_total += n
            self.last_data_time = now
        return n

    def _check_gaps(self, stamps: np.ndarray) -> None:
        if self.n_total == 0:
            self.first_stamp = float(stamps[0])
        if self.period > 0:
            small = 1.5 * self.period
            big = max(small, _RESTART_JUMP_S)
            prev = self.last_stamp
            if self.n_total > 0:
                jump = stamps[0] - prev
                if abs(jump) > (small if self.stalled else big):
                    self.pending_gaps.append(GapEvent(self.n_total, prev, float(stamps[0])))
            if len(stamps) > 1:
                d = np.diff(stamps)
                for i in np.flatnonzero(np.abs(d) > big):
                    self.pending_gaps.append(
                        GapEvent(self.n_total + int(i) + 1, float(stamps[i]), float(stamps[i + 1]))
                    )
        self.last_stamp = float(stamps[-1])

    def check_stall(self, now: float) -> bool | None:
        """Update the stall state.

        Parameters
        ----------
        now : float
            Recorder LSL time in seconds.

        Returns
        -------
        change : bool or None
            True when the stream just stalled, False when it just resumed,
            None when nothing changed.
        """
        if self.last_data_time >= now - self.stall_after_s:
            if self.stalled:
                self.stalled = False
                return False
            return None
        if not self.stalled:
            self.stalled = True
            return True
        return None

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the buffered block and empty the buffer.

        Returns
        -------
        data : ndarray, shape (n, n_channels)
            Numeric values (a view, valid until the next ``pull``), or an object
            array of str for string streams.
        stamps : ndarray, shape (n,)
            Source time stamps in seconds.
        """
        n = self.n_buffered
        self.n_buffered = 0
        if self.spec.is_string:
            data = np.empty((n, self.spec.channel_count), dtype=object)
            if n:
                data[:] = self._strings
            self._strings = []
        else:
            data = self._data[:n]
        return data, self._stamps[:n]

    def effective_rate(self) -> float:
        """Return samples per second of source time since the first sample (0 when unknown)."""
        span = self.last_stamp - self.first_stamp
        if self.n_total < 2 or not span > 0:
            return 0.0
        return (self.n_total - 1) / span
