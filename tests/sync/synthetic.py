"""Seeded synthetic streams with known clocks, for sync and session tests.

Built on :mod:`avlab.sim.truth` so that the true time of every sample is the
one the simulator's truth file gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avlab.sim.truth import Segment, StreamClock

T0_TRUE = 12_345.678  # recorder clock at the first sample (s), like an uptime


@dataclass
class SynthStream:
    clock: StreamClock
    stamps: np.ndarray  # (n,) source stamps
    true: np.ndarray  # (n,) true times, recorder clock
    clock_offsets: np.ndarray  # (k, 2) [recorder time, offset]
    gaps: np.ndarray  # (g, 4)
    lost: int  # samples not emitted during gaps


def make_clock(
    kind: str,
    *,
    name: str = "s",
    srate: float = 500.0,
    host_offset_s: float = 37.0,
    rate_ppm: float = 0.0,
    chunk_size: int = 1,
    jitter_sd_s: float = 0.0,
    device_offset_s: float = 0.0,
    drift_ppm: float = 0.0,
    seed: int = 0,
) -> StreamClock:
    return StreamClock(
        name=name,
        nominal_srate=srate,
        stamping=kind,
        host_offset_s=host_offset_s if kind != "device" else 0.0,
        rate_ppm=rate_ppm,
        chunk_size=chunk_size,
        jitter_sd_s=jitter_sd_s,
        device_offset_s=device_offset_s,
        drift_ppm=drift_ppm,
        seed=seed,
    )


def true_offset(clock: StreamClock, t_rec: np.ndarray) -> np.ndarray:
    """recorder - source clock at recorder times (what a perfect measurement gives)."""
    if clock.stamping == "device":
        return t_rec - np.asarray(clock.device_time(t_rec))
    return np.full_like(t_rec, -clock.host_offset_s)


def make_stream(
    clock: StreamClock,
    *,
    duration_s: float = 60.0,
    gaps: tuple[tuple[float, int], ...] = (),
    offset_every_s: float = 5.0,
    offset_noise_s: float = 50e-6,
    outlier_frac: float = 0.0,
    outlier_s: float = 0.02,
    seed: int = 1,
    t0_true: float = T0_TRUE,
) -> SynthStream:
    """Simulate one recorded stream.

    gaps: (at seconds into the stream, samples not emitted) pairs.
    """
    rng = np.random.default_rng(seed)
    rate = clock.true_srate
    n = int(duration_s * clock.nominal_srate)
    segs = [Segment(first_index=0, t0_true=t0_true)]
    for at_s, n_lost in sorted(gaps):
        k = int(at_s * clock.nominal_srate)
        prev = segs[-1]
        t_last = prev.t0_true + (k - 1 - prev.first_index) / rate
        segs.append(Segment(first_index=k, t0_true=t_last + (n_lost + 1) / rate))
    clock = clock.model_copy(update={"segments": segs})
    idx = np.arange(n)
    true = clock.true_times(idx)
    stamps = clock.source_stamps(idx)
    t_off = np.arange(true[0] - 1.0, true[-1] + offset_every_s, offset_every_s)
    off = true_offset(clock, t_off) + rng.normal(0, offset_noise_s, t_off.size)
    bad = rng.random(t_off.size) < outlier_frac
    off[bad] += outlier_s * rng.choice([-1.0, 1.0], bad.sum())
    gap_rows = [
        [s.first_index, stamps[s.first_index - 1], stamps[s.first_index], true[s.first_index]]
        for s in segs[1:]
    ]
    return SynthStream(
        clock=clock,
        stamps=stamps,
        true=true,
        clock_offsets=np.column_stack([t_off, off]),
        gaps=np.array(gap_rows, dtype=np.float64).reshape(-1, 4),
        lost=sum(g[1] for g in gaps),
    )


class _PyxdfStream:
    def __init__(self, s: SynthStream) -> None:
        self.time_stamps = s.stamps.copy()
        # XDF stores offset collection times on the source clock (LabRecorder).
        self.clock_times = list(s.clock_offsets[:, 0] - s.clock_offsets[:, 1])
        self.clock_values = list(s.clock_offsets[:, 1])
        self.clock_segments: list = []
        self.segments: list = []
        self.srate = s.clock.nominal_srate
        self.tdiff = 1.0 / self.srate if self.srate else 0.0
        self.effective_srate = 0.0


def pyxdf_align(s: SynthStream) -> np.ndarray:
    """pyxdf's synchronize_clocks + dejitter_timestamps on the same data."""
    from pyxdf import pyxdf

    streams = {1: _PyxdfStream(s)}
    streams = pyxdf._clock_sync(streams)
    streams = pyxdf._jitter_removal(streams)
    return streams[1].time_stamps


def errors_ms(aligned: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    e = np.abs(aligned - true) * 1e3
    return float(np.median(e)), float(np.percentile(e, 99))
