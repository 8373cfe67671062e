"""Clock-offset collection in a background thread.

Every ``interval_s`` the collector measures, per stream, the offset between the
source's clock and the recorder's (recorder time = source time + offset):
LSL ``time_correction`` for ordinary streams, a time-echo exchange
(:func:`avlab.devices.timeecho.measure_offset`) for devices that announce a
``<time_echo>`` endpoint in their stream description. Measurements are queued;
the recorder's I/O thread writes them (h5py stays single-threaded).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import pylsl

from avlab._logging import logger

__all__ = ["ClockCollector", "ClockSource", "OffsetSample"]


@dataclass(frozen=True)
class OffsetSample:
    """One measurement: stream position, recorder LSL time (s), offset (s)."""

    index: int
    recorder_time: float
    offset: float


@dataclass
class ClockSource:
    """How to measure one stream's offset.

    Attributes
    ----------
    inlet : pylsl.StreamInlet
        Used for ``time_correction``.
    echo : tuple of (str, int) or None
        Time-echo endpoint (host, port); None for LSL ``time_correction``.
    """

    inlet: pylsl.StreamInlet
    echo: tuple[str, int] | None = None


class ClockCollector(threading.Thread):
    """Measures clock offsets of all streams at a fixed interval.

    Parameters
    ----------
    sources : list of ClockSource
        One per stream, in the recorder's stream order.
    interval_s : float
        Seconds between measurement rounds.
    on_error : callable
        ``on_error(index, message)`` for a failed measurement (logged by the recorder).
    """

    def __init__(
        self,
        sources: list[ClockSource],
        *,
        interval_s: float = 2.0,
        on_error: Callable[[int, str], None] | None = None,
    ) -> None:
        super().__init__(name="avlab-clock", daemon=True)
        self.sources = sources
        self.interval_s = interval_s
        self.queue: deque[OffsetSample] = deque()
        self._stop_evt = threading.Event()
        self._on_error = on_error
        self._failures = [0] * len(sources)

    def stop(self) -> None:
        """Ask the thread to finish after the current measurement."""
        self._stop_evt.set()

    def measure_all(self) -> None:
        """Measure every stream once (also called at start and at the end)."""
        for i, src in enumerate(self.sources):
            if self._stop_evt.is_set() and self.is_alive():
                return
            self._measure(i, src)

    def _measure(self, i: int, src: ClockSource) -> None:
        try:
            if src.echo is not None:
                from avlab.devices.timeecho import measure_offset

                res = measure_offset(src.echo[0], src.echo[1], n_echoes=10, timeout_s=0.5)
                sample = OffsetSample(i, float(res.local_time_s), float(res.offset_s))
            else:
                offset = src.inlet.time_correction(timeout=1.0)
                sample = OffsetSample(i, pylsl.local_clock(), float(offset))
        except Exception as exc:  # noqa: BLE001 - timeouts and socket errors alike
            self._failures[i] += 1
            if self._on_error is not None and self._failures[i] in (1, 10, 100):
                self._on_error(i, f"clock offset measurement failed: {exc}")
            logger.debug("clock offset of stream %d failed: %s", i, exc)
            return
        self.queue.append(sample)

    def run(self) -> None:
        """Measure every ``interval_s`` until stopped."""
        while not self._stop_evt.wait(self.interval_s):
            self.measure_all()

    def drain(self) -> list[OffsetSample]:
        """Return and remove the queued measurements."""
        out = []
        while self.queue:
            out.append(self.queue.popleft())
        return out
