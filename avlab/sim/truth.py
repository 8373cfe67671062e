"""Ground truth of the simulated lab: clock models and the truth file.

The simulator and the scorer share this module. The simulator uses a
:class:`StreamClock` to decide *when* sample ``i`` truly happened and *which
time stamp* the source puts on it; the scorer uses the same object to find the
true time of every recorded sample from its source time stamp. Nothing about
time is measured from the simulator's scheduling: the stamps follow the model
exactly, so the truth is exact.

Times called "true" are on the recorder's clock: the LSL clock
(``CLOCK_MONOTONIC``) of the host that records. A simulator that runs in its
own time namespace (``unshare --time --monotonic N``) reads its clock as
``true + N``; ``host_offset_s`` is that ``N``.

Three ways a source stamps its samples (``stamping``):

``"source"``
    The source's own LSL clock at the true sample time:
    ``stamp = true + host_offset_s``. LSL ``time_correction`` recovers it.
``"arrival"``
    An amplifier driver stamping on arrival: one stamp per chunk, taken when
    the chunk's last sample arrives (``true + latency_s + jitter``, jitter
    normal with ``jitter_sd_s``), the earlier samples of the chunk placed
    before it at the *nominal* rate; the true rate is off the nominal by
    ``rate_ppm``. Dejittering recovers it (a constant latency cannot be
    recovered by any clock synchronization and is reported as bias).
``"device"``
    A device with its own clock (Neon-like): ``stamp = device_offset_s +
    true * (1 + drift_ppm * 1e-6)``. The device answers time-echo requests
    with the same clock.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AttentionSpan",
    "MarkerTruth",
    "Segment",
    "SimTruth",
    "StreamClock",
    "load_truth",
    "write_truth",
]


class Segment(BaseModel):
    """A run of samples emitted without interruption.

    Parameters
    ----------
    first_index : int
        Sample index (counted over the whole stream) of the segment's first sample.
    t0_true : float
        True time of that sample, in seconds on the recorder's clock.
    """

    model_config = ConfigDict(extra="forbid")

    first_index: int = Field(ge=0)
    t0_true: float


class StreamClock(BaseModel):
    """How one simulated stream's samples are timed and stamped.

    All times in seconds, rates in Hz.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    nominal_srate: float = Field(ge=0)
    stamping: Literal["source", "arrival", "device"] = "source"
    host_offset_s: float = 0.0
    rate_ppm: float = 0.0
    chunk_size: int = Field(default=1, ge=1)
    jitter_sd_s: float = Field(default=0.0, ge=0)
    latency_s: float = 0.0
    device_offset_s: float = 0.0
    drift_ppm: float = 0.0
    seed: int = 0
    segments: list[Segment] = Field(default_factory=list)

    @property
    def true_srate(self) -> float:
        """Rate at which samples truly occur, in Hz."""
        return self.nominal_srate * (1.0 + self.rate_ppm * 1e-6)

    def jitter_generator(self) -> np.random.Generator:
        """Return the generator of per-chunk arrival jitter, at its start.

        Draw one ``normal()`` per chunk, in chunk order, to reproduce the stamps.
        """
        return np.random.default_rng([self.seed, 0xA11])

    def true_times(self, index: np.ndarray) -> np.ndarray:
        """Return the true times of samples.

        Parameters
        ----------
        index : ndarray, shape (n,)
            Sample indices counted over the whole stream.

        Returns
        -------
        times : ndarray, shape (n,)
            True times in seconds on the recorder's clock.
        """
        index = np.asarray(index, dtype=np.int64)
        if not self.segments:
            raise ValueError(f"stream {self.name!r} has no segments in the truth")
        starts = np.array([s.first_index for s in self.segments])
        t0 = np.array([s.t0_true for s in self.segments])
        seg = np.searchsorted(starts, index, side="right") - 1
        seg = np.clip(seg, 0, len(starts) - 1)
        return t0[seg] + (index - starts[seg]) / self.true_srate

    def device_time(self, true_time: np.ndarray | float) -> np.ndarray | float:
        """Device clock reading at a true time (``stamping == "device"``)."""
        return self.device_offset_s + np.asarray(true_time) * (1.0 + self.drift_ppm * 1e-6)

    def source_stamps(self, index: np.ndarray) -> np.ndarray:
        """Time stamps the source attaches to samples, as LSL carries them.

        Parameters
        ----------
        index : ndarray, shape (n,)
            Sample indices counted over the whole stream, ascending and
            starting at 0 (chunk jitter is drawn in order).

        Returns
        -------
        stamps : ndarray, shape (n,)
            Source time stamps in seconds.
        """
        index = np.asarray(index, dtype=np.int64)
        true = self.true_times(index)
        if self.stamping == "source":
            return true + self.host_offset_s
        if self.stamping == "device":
            return np.asarray(self.device_time(true))
        chunk = index // self.chunk_size
        last = (chunk + 1) * self.chunk_size - 1
        n_chunks = int(chunk.max()) + 1 if chunk.size else 0
        jitter = self.jitter_generator().normal(0.0, 1.0, size=n_chunks) * self.jitter_sd_s
        stamp_last = self.true_times(last) + self.host_offset_s + self.latency_s + jitter[chunk]
        return stamp_last - (last - index) / self.nominal_srate


class MarkerTruth(BaseModel):
    """One marker as the simulator emitted it."""

    model_config = ConfigDict(extra="forbid")

    t_true: float
    value: str


class AttentionSpan(BaseModel):
    """Who is attended between two true times (seconds, recorder's clock)."""

    model_config = ConfigDict(extra="forbid")

    t_start: float
    t_end: float
    talker: int = Field(ge=0, description="index of the attended talker")
    trial: int = Field(ge=0)


class SimTruth(BaseModel):
    """Everything the simulator knows and a recording should recover."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    run_id: str
    seed: int
    host_offset_s: float = 0.0
    streams: dict[str, StreamClock] = Field(default_factory=dict)
    markers: list[MarkerTruth] = Field(default_factory=list)
    attention: list[AttentionSpan] = Field(default_factory=list)
    trf_times_s: list[float] = Field(default_factory=list)
    trf_attended: list[float] = Field(default_factory=list)
    trf_unattended: list[float] = Field(default_factory=list)
    eeg_snr_db: float | None = None
    extra: dict[str, float | int | str | list[float]] = Field(default_factory=dict)

    def match_samples(self, stream: str, stamps: np.ndarray, *, tol_s: float = 1e-6) -> np.ndarray:
        """Find the true time of recorded samples from their source stamps.

        Parameters
        ----------
        stream : str
            Simulated stream name.
        stamps : ndarray, shape (n,)
            Source time stamps as recorded.
        tol_s : float
            Largest difference between a recorded and a modelled stamp, in seconds.

        Returns
        -------
        true_times : ndarray, shape (n,)
            True times in seconds; NaN where no modelled sample matches.
        """
        clock = self.streams[stream]
        stamps = np.asarray(stamps, dtype=np.float64)
        out = np.full(stamps.shape, np.nan)
        if stamps.size == 0:
            return out
        if clock.nominal_srate == 0:
            ref_true = np.array([m.t_true for m in self.markers])
            ref_stamp = ref_true + clock.host_offset_s
        else:
            # Enough modelled samples to reach the last recorded stamp (a restart
            # only moves later samples further out, so this over-covers).
            reach = float(np.nanmax(stamps)) - _stamp0(clock)
            n = int(max(reach, 0.0) * clock.true_srate * 1.001) + 2 * clock.chunk_size + 1000
            idx = np.arange(n)
            ref_stamp = clock.source_stamps(idx)
            ref_true = clock.true_times(idx)
        if np.any(ref_stamp[1:] < ref_stamp[:-1]):  # arrival jitter can reorder chunks
            order = np.argsort(ref_stamp, kind="stable")
            ref_stamp, ref_true = ref_stamp[order], ref_true[order]
        pos = np.clip(np.searchsorted(ref_stamp, stamps), 1, len(ref_stamp) - 1)
        left, right = ref_stamp[pos - 1], ref_stamp[pos]
        pick = np.where(np.abs(stamps - left) <= np.abs(right - stamps), pos - 1, pos)
        ok = np.abs(ref_stamp[pick] - stamps) <= tol_s
        out[ok] = ref_true[pick][ok]
        return out


def _stamp0(clock: StreamClock) -> float:
    return float(clock.source_stamps(np.array([0]))[0])


def write_truth(truth: SimTruth, path: Path) -> None:
    """Write the truth file atomically (write a temporary file, then rename).

    Parameters
    ----------
    truth : SimTruth
        The ground truth.
    path : Path
        Destination, conventionally ``sim_truth.json``.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(truth.model_dump_json(indent=1))
    os.replace(tmp, path)


def load_truth(path: Path) -> SimTruth:
    """Read a truth file written by :func:`write_truth`.

    Parameters
    ----------
    path : Path
        The ``sim_truth.json`` file.

    Returns
    -------
    truth : SimTruth
    """
    return SimTruth.model_validate(json.loads(Path(path).read_text()))
